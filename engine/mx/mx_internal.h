#pragma once
// Scalar building blocks shared by the CPU loop, the encoder and (as the definition the tensor
// code mirrors) the ATen path. Every operation here is exact in fp32 unless stated, which is
// why the paths agree bit for bit.

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <cstring>

#include "latmix/mx.h"

namespace latmix::mx_detail {

inline float bits_to_float(uint32_t u) {
  float f;
  std::memcpy(&f, &u, sizeof f);
  return f;
}
inline uint32_t float_to_bits(float f) {
  uint32_t u;
  std::memcpy(&u, &f, sizeof u);
  return u;
}

/// 2^e as an fp32 for e in -127..127 (2^-127 is a subnormal).
inline float pow2f(int e) {
  return e >= -126 ? bits_to_float(static_cast<uint32_t>(e + 127) << 23) : bits_to_float(0x00400000u);
}

/// Element parameters in the form the kernels use.
struct ElementParams {
  bool is_int = false;
  bool int_has_negative_zero = false;  // INT4 is sign-magnitude, INT8 two's complement
  int mbits = 0;
  int emax = 0;
  float max = 0;          // saturation magnitude
  float min_normal = 0;   // 2^emin (FP formats)
  float mant_scale = 0;   // 2^-mbits (FP formats)
  float int_step = 0;     // 2^-mbits (integer formats)
};

ElementParams element_params(ElementFormat f);

/// The unbiased E8M0 exponent (-127..127) of a block whose largest magnitude is the finite
/// `amax`. amax == 0 gives -127.
inline int e8m0_exponent(float amax, ScaleRule rule, const ElementParams& p) {
  if (amax == 0.0f) return -127;
  int ex = 0;
  const double m = std::frexp(static_cast<double>(amax), &ex);  // amax = m 2^ex, m in [0.5, 1)
  const int fl = ex - 1;                                          // floor(log2 amax)
  int e = 0;
  switch (rule) {
    case ScaleRule::Floor: e = fl - p.emax; break;
    case ScaleRule::Ceil: e = (m == 0.5 ? fl : fl + 1) - p.emax; break;
    case ScaleRule::RCeil: {
      int ex2 = 0;  // the quotient is correctly rounded in fp64, which keeps the ceil exact
      const double m2 = std::frexp(static_cast<double>(amax) / static_cast<double>(p.max), &ex2);
      e = m2 == 0.5 ? ex2 - 1 : ex2;
      break;
    }
    case ScaleRule::Even: e = (m >= 1.0 - std::ldexp(1.0, -(p.mbits + 2)) ? fl + 1 : fl) - p.emax; break;
  }
  return std::clamp(e, -127, 127);
}

/// Rounds a finite non-negative magnitude to the element grid (ties by `rounding`), saturating.
inline float quantize_magnitude(float a, const ElementParams& p, Rounding rounding) {
  float step = p.int_step;
  if (!p.is_int) {
    const float pow2 = bits_to_float(float_to_bits(a) & 0x7F800000u);  // 2^floor(log2 a), 0 if subnormal
    step = std::max(pow2, p.min_normal) * p.mant_scale;
  }
  const float t = a / step;  // exact: step is a power of two
  float r;
  if (rounding == Rounding::NearestEven) {
    r = std::nearbyint(t);
  } else {
    const float fl = std::floor(t);
    r = (t - fl >= 0.5f) ? fl + 1.0f : fl;
  }
  return std::min(r * step, p.max);
}

/// The signed quantized value of v (finite).
inline float quantize_value(float v, const ElementParams& p, Rounding rounding) {
  const float q = quantize_magnitude(std::fabs(v), p, rounding);
  if (p.is_int && !p.int_has_negative_zero && q == 0.0f) return 0.0f;
  return std::copysign(q, v);
}

/// The code of an exact element value (as produced by quantize_value).
uint8_t code_of_value(ElementFormat f, float q);

/// NVFP4's per-block scale for a finite block maximum: E4M3(amax / 6 [/ s2]) as a value.
inline float nvfp4_block_scale(float amax, float s2, bool tensor_scale, const ElementParams& e4m3) {
  float t = amax / 6.0f;
  if (tensor_scale) t = t / s2;
  return quantize_magnitude(t, e4m3, Rounding::NearestEven);
}

/// NVFP4's fp32 tensor scale: amax / (6 * 448) over the finite values, 1 when that is 0.
float nvfp4_tensor_scale(const at::Tensor& x);

/// Moves `axis` of x last; returns the normalized axis.
int64_t normalize_axis(const at::Tensor& x, int64_t axis);

/// Throws unless x is a floating tensor with at least one dimension.
void require_floating(const at::Tensor& x, const char* what);

/// The implementations of fake quantization (no autograd).
at::Tensor fake_quantize_aten(const at::Tensor& x, const MxFormat& f, int64_t axis);
at::Tensor fake_quantize_cpu(const at::Tensor& x, const MxFormat& f, int64_t axis);
/// The fused CUDA kernel (mx/cuda/, mx_cuda_dispatch.cpp). \throws latmix::Error for a tensor
/// that is not on a CUDA device, and always in builds without CUDA.
at::Tensor fake_quantize_cuda(const at::Tensor& x, const MxFormat& f, int64_t axis);

/// CPU encoder over rows of the last dimension of a contiguous fp32 [rows, n] tensor: element
/// codes (uint8 [rows, n], unpacked) and scale codes (uint8 [rows, ceil(n / block)]).
void encode_rows_cpu(const at::Tensor& x2d, const MxFormat& f, float s2, at::Tensor& codes, at::Tensor& scales);
/// The same on a CUDA [rows, n] tensor (fp32, bf16, fp16; others are rounded to fp32): codes and
/// scales are CUDA tensors. With `pack_nibbles` and a 4-bit format the codes come packed two per
/// byte from the same kernel (uint8 [rows, ceil(n / 2)], as pack_nibbles packs them).
/// \throws latmix::Error as fake_quantize_cuda.
void encode_rows_cuda(const at::Tensor& x2d, const MxFormat& f, float s2, at::Tensor& codes, at::Tensor& scales,
                      bool pack_nibbles = false);
/// Decoding on the device in one kernel: CUDA codes [rows, n] (or [rows, ceil(n / 2)] with
/// `nibbles`) and scale codes [rows, ceil(n / block)] to values [rows, n] of `dtype`, bit for bit
/// mx_decode's CPU result. \throws latmix::Error as fake_quantize_cuda, and for scales on another
/// device or byte codes without an element value.
at::Tensor decode_rows_cuda(const at::Tensor& codes2d, const at::Tensor& scales2d, const MxFormat& f,
                            float tensor_scale, int64_t n, bool nibbles, at::ScalarType dtype);

/// The E8M0 exponents (int32, -127..127) of block maxima `amax` on any device, bit for bit
/// e8m0_exponent()'s scalar rule (every ScaleRule; amax 0 gives -127). Used by GPTQ's device
/// scales and the statistics' block views.
at::Tensor e8m0_exponents(const at::Tensor& amax, const MxFormat& format);

/// The value of every block scale of packed data (fp32, NaN for the NaN code), shaped like
/// m.scales; NVFP4's include the tensor scale.
at::Tensor scale_values(const MxPacked& m);

}  // namespace latmix::mx_detail
