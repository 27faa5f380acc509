#pragma once
// The scalar steps of MX quantization in the form the fused CUDA kernels use. Each function
// mirrors its counterpart in mx/mx_internal.h (e8m0_exponent, quantize_magnitude,
// quantize_value, nvfp4_block_scale, code_of_value) and gives the same bits; they differ only in
// how they get there (bit manipulation instead of frexp, exact power-of-two reciprocals instead of
// divisions by powers of two). Plain C++ as well as CUDA: compiled by a host compiler the
// functions can be checked against the CPU definitions directly.
//
// Rules kept for bit exactness on the device: no fused multiply-add contraction (the kernels are
// compiled with --fmad=false and use the _rn intrinsics), IEEE division where the CPU divides by a
// non-power of two (NVFP4), no flush-to-zero (fp32 subnormals matter), and integer comparisons on
// the bits of non-negative floats instead of fmaxf (whose NaN rules differ from std::max).

#include <cmath>
#include <cstdint>
#include <cstring>

#if defined(__CUDACC__)
#define LATMIX_HD __host__ __device__ __forceinline__
#else
#define LATMIX_HD inline
#endif

namespace latmix::mx_cuda {

/// An element format as the kernels see it (see mx_detail::ElementParams).
struct ElemParams {
  int is_int = 0;
  int int_neg_zero = 0;      ///< INT4 (sign-magnitude) keeps -0; INT8 does not
  int ebits = 0;
  int mbits = 0;             ///< FP: mantissa bits; INT: fractional bits
  int bias = 0;
  int emax = 0;
  float max = 0;             ///< saturation magnitude
  uint32_t min_normal_bits = 0;  ///< bits of 2^emin (FP formats)
  float int_step = 0;        ///< 2^-mbits (INT formats)
  float int_inv_step = 0;    ///< 2^mbits (INT formats)
  int min_exp = 0;           ///< exponent of the smallest non-zero magnitude (FP: emin - mbits)
  uint32_t max_code = 0;     ///< FP: the code of the largest finite magnitude (max)
  float sub_magic = 0;       ///< FP: 2^(23 + emin - mbits), whose fp32 ulp is the subnormal step 2^(emin - mbits)
  float sub_inv_step = 0;    ///< FP: 2^(mbits - emin), the reciprocal of the subnormal step
};

/// Everything a kernel needs to quantize a [rows, n] row-major tensor along its rows.
struct QuantParams {
  ElemParams el;    ///< the element format
  ElemParams e4m3;  ///< NVFP4's block-scale format
  int64_t rows = 0;
  int64_t n = 0;
  int64_t block = 32;
  int rule = 0;          ///< ScaleRule: 0 floor, 1 ceil, 2 rceil, 3 even
  int away = 0;          ///< rounding ties away from zero (else to even)
  int nvfp4 = 0;         ///< E4M3 block scale (else E8M0)
  int tensor_scale = 0;  ///< NVFP4's fp32 tensor scale in use
  float s2 = 1.0f;       ///< NVFP4's fp32 tensor scale
};

LATMIX_HD uint32_t f2u(float f) {
#if defined(__CUDA_ARCH__)
  return __float_as_uint(f);
#else
  uint32_t u;
  std::memcpy(&u, &f, sizeof u);
  return u;
#endif
}

LATMIX_HD float u2f(uint32_t u) {
#if defined(__CUDA_ARCH__)
  return __uint_as_float(u);
#else
  float f;
  std::memcpy(&f, &u, sizeof f);
  return f;
#endif
}

LATMIX_HD uint64_t d2u(double d) {
#if defined(__CUDA_ARCH__)
  return static_cast<uint64_t>(__double_as_longlong(d));
#else
  uint64_t u;
  std::memcpy(&u, &d, sizeof u);
  return u;
#endif
}

LATMIX_HD float mul_rn(float a, float b) {
#if defined(__CUDA_ARCH__)
  return __fmul_rn(a, b);
#else
  return a * b;
#endif
}

LATMIX_HD float div_rn(float a, float b) {
#if defined(__CUDA_ARCH__)
  return __fdiv_rn(a, b);
#else
  return a / b;
#endif
}

LATMIX_HD float add_rn(float a, float b) {
#if defined(__CUDA_ARCH__)
  return __fadd_rn(a, b);
#else
  return a + b;
#endif
}

LATMIX_HD float rint_even(float t) {
#if defined(__CUDA_ARCH__)
  return rintf(t);
#else
  return std::nearbyint(t);
#endif
}

LATMIX_HD float floor_f(float t) {
#if defined(__CUDA_ARCH__)
  return floorf(t);
#else
  return std::floor(t);
#endif
}

/// |v| with the sign bit copied from s.
LATMIX_HD float copy_sign(float mag, float s) { return u2f((f2u(mag) & 0x7FFFFFFFu) | (f2u(s) & 0x80000000u)); }

/// Index of the highest set bit of a non-zero 32-bit value.
LATMIX_HD int high_bit(uint32_t v) {
#if defined(__CUDA_ARCH__)
  return 31 - __clz(static_cast<int>(v));
#else
  return 31 - __builtin_clz(v);
#endif
}

/// 2^e as an fp32 for e in -127..127 (2^-127 is a subnormal).
LATMIX_HD float pow2f(int e) {
  return e >= -126 ? u2f(static_cast<uint32_t>(e + 127) << 23) : u2f(0x00400000u);
}

/// The bits of |v| for the block maximum, with every non-finite value (Inf, NaN) mapped to the bits
/// of +Inf: the integer maximum of these over a block is the block's amax, or +Inf exactly when
/// the block holds a NaN or an Inf.
LATMIX_HD uint32_t amax_bits(float v) {
  const uint32_t a = f2u(v) & 0x7FFFFFFFu;
  return a < 0x7F800000u ? a : 0x7F800000u;
}

/// mx_detail::e8m0_exponent for a finite amax >= 0 given as fp32 bits.
LATMIX_HD int e8m0_exponent(uint32_t amax_u, int rule, const ElemParams& p) {
  if (amax_u == 0) return -127;
  const uint32_t field = amax_u >> 23;
  int fl;        // floor(log2 amax)
  uint32_t sig;  // the significand normalized to [2^23, 2^24)
  if (field != 0) {
    fl = static_cast<int>(field) - 127;
    sig = (amax_u & 0x7FFFFFu) | 0x800000u;
  } else {  // subnormal: amax = mant 2^-149
    const int hb = high_bit(amax_u);
    fl = hb - 149;
    sig = amax_u << (23 - hb);
  }
  int e;
  if (rule == 0) {  // floor
    e = fl - p.emax;
  } else if (rule == 1) {  // ceil
    e = (sig == 0x800000u ? fl : fl + 1) - p.emax;
  } else if (rule == 2) {  // rceil: the fp64 quotient is correctly rounded (as on the CPU)
    const double d = static_cast<double>(u2f(amax_u)) / static_cast<double>(p.max);
    const uint64_t b = d2u(d);
    const int e2 = static_cast<int>((b >> 52) & 0x7FFu) - 1023;  // d is a normal double
    e = (b & 0xFFFFFFFFFFFFFull) == 0 ? e2 : e2 + 1;
  } else {  // even: m = sig / 2^24 >= 1 - 2^-(mbits + 2)
    e = (sig >= (1u << 24) - (1u << (22 - p.mbits)) ? fl + 1 : fl) - p.emax;
  }
  return e < -127 ? -127 : (e > 127 ? 127 : e);
}

/// mx_detail::quantize_magnitude: a >= 0 to the element grid, saturated. kFinite: the caller
/// guarantees a finite a (true inside good blocks, where every scaled value is finite), which
/// drops the Inf/NaN branch and lets the saturation use fminf.
template <bool kFinite = false>
LATMIX_HD float quantize_magnitude(float a, const ElemParams& p, int away) {
  float step, inv;
  if (p.is_int) {
    step = p.int_step;
    inv = p.int_inv_step;
  } else {
    const uint32_t ea = f2u(a) & 0x7F800000u;  // 2^floor(log2 a), 0 if subnormal
    if (!kFinite && ea == 0x7F800000u) return u2f(0x7FC00000u);  // Inf/NaN: the CPU's Inf/Inf is NaN too
    const uint32_t es = ea < p.min_normal_bits ? p.min_normal_bits : ea;
    const uint32_t step_bits = es - (static_cast<uint32_t>(p.mbits) << 23);  // times 2^-mbits
    step = u2f(step_bits);
    inv = u2f((254u << 23) - step_bits);  // 1 / step, exact: a / step == a * inv bit for bit
  }
  const float t = mul_rn(a, inv);
  float r;
  if (!away) {
    r = rint_even(t);
  } else {
    const float fl = floor_f(t);
    r = (t - fl >= 0.5f) ? fl + 1.0f : fl;
  }
  const float q = mul_rn(r, step);
#if defined(__CUDA_ARCH__)
  if (kFinite) return fminf(q, p.max);  // q is not NaN here, so fminf is std::min
#endif
  return p.max < q ? p.max : q;  // std::min(q, max)
}

/// mx_detail::quantize_value: the signed element value of v.
template <bool kFinite = false>
LATMIX_HD float quantize_value(float v, const ElemParams& p, int away) {
  const float q = quantize_magnitude<kFinite>(u2f(f2u(v) & 0x7FFFFFFFu), p, away);
  if (p.is_int && !p.int_neg_zero && q == 0.0f) return 0.0f;
  return copy_sign(q, v);
}

/// The code of an exact element value q (mx_detail::code_of_value for values on the grid).
LATMIX_HD uint32_t element_code(float q, const ElemParams& p) {
  const uint32_t u = f2u(q);
  const bool neg = (u >> 31) != 0;
  const float a = u2f(u & 0x7FFFFFFFu);
  if (p.is_int) {
    if (p.int_neg_zero) {  // INT4: sign | k, value k / 4
      return (neg ? 0x8u : 0u) | static_cast<uint32_t>(mul_rn(a, p.int_inv_step));
    }
    const int k = static_cast<int>(mul_rn(a, p.int_inv_step));  // INT8: two's complement k / 64
    return static_cast<uint32_t>(neg ? -k : k) & 0xFFu;
  }
  const uint32_t sign = neg ? (1u << (p.ebits + p.mbits)) : 0u;
  if (a == 0.0f) return sign;
  const int e = static_cast<int>((u >> 23) & 0xFFu) - 127;  // grid values are normal fp32
  const int emin = 1 - p.bias;
  if (e < emin) {  // an element subnormal: a = k 2^(emin - mbits)
    return sign | static_cast<uint32_t>(mul_rn(a, pow2f(p.mbits - emin)));
  }
  const uint32_t mant = (u & 0x7FFFFFu) >> (23 - p.mbits);
  return sign | (static_cast<uint32_t>(e + p.bias) << p.mbits) | mant;
}

/// One block's scale, from the integer maximum of amax_bits over the block.
struct BlockScale {
  int bad = 0;     ///< the block holds a NaN or an Inf
  int e = 0;       ///< E8M0: the exponent
  float mul = 1;   ///< E8M0: 2^-e, the exact reciprocal of X
  float X = 1;     ///< E8M0: 2^e; NVFP4: S (the effective scale, NaN for a bad block)
  uint32_t code = 0;  ///< the scale code (E8M0 e + 127 or 0xFF; NVFP4's E4M3 code or 0x7F)
};

LATMIX_HD BlockScale block_scale(uint32_t amax_u, const QuantParams& p) {
  BlockScale s;
  if (amax_u == 0x7F800000u) {
    s.bad = 1;
    s.X = u2f(0x7FC00000u);
    s.code = p.nvfp4 ? 0x7Fu : 0xFFu;
    return s;
  }
  if (!p.nvfp4) {
    const int e = e8m0_exponent(amax_u, p.rule, p.el);
    s.e = e;
    s.mul = pow2f(-e);
    s.X = pow2f(e);
    s.code = static_cast<uint32_t>(e + 127);
    return s;
  }
  float t = div_rn(u2f(amax_u), 6.0f);
  if (p.tensor_scale) t = div_rn(t, p.s2);
  const float sb = quantize_magnitude(t, p.e4m3, 0);
  s.X = p.tensor_scale ? mul_rn(sb, p.s2) : sb;
  s.code = element_code(sb, p.e4m3);
  return s;
}

/// The signed element value of v in a good block; the dequantized value is this times s.X. The
/// scaled value is finite in a good block (E8M0: |v| 2^-e < 2^(emax + 1) or < 2; NVFP4: |v| / S is
/// bounded by 6 times the rounding error of S), which is what kFinite may assume.
template <bool kFinite = false>
LATMIX_HD float element_value(float v, const BlockScale& s, const QuantParams& p) {
  if (p.nvfp4) return s.X == 0.0f ? copy_sign(0.0f, v) : quantize_value<kFinite>(div_rn(v, s.X), p.el, p.away);
  return quantize_value<kFinite>(mul_rn(v, s.mul), p.el, p.away);
}

/// The code of a finite scaled value x of an FP element format (the element code of x / X), bit
/// for bit element_code(quantize_value(x)), without computing the element value: above the
/// element's smallest normal, the rounding to mbits mantissa bits (ties as quantize_magnitude
/// breaks them) is an integer addition on the fp32 bits whose carry moves into the exponent exactly
/// as the CPU's r * step does, and the code is those bits re-biased, saturated at max_code (codes
/// grow with the magnitude). Below it, adding sub_magic rounds to the subnormal grid (ties to even:
/// the fp32 adder's own rounding) and the count of steps is the code (2^mbits, the smallest
/// normal's code, when it rounds up). Branch-free; the constants are computed once per thread.
struct FpEncoder {
  uint32_t sign_shift, sh, half_m1, offset, max_code, min_normal, magic_bits;
  float magic, sub_inv_step;
  int away;

  LATMIX_HD explicit FpEncoder(const QuantParams& p)
      : sign_shift(static_cast<uint32_t>(p.el.ebits + p.el.mbits)),
        sh(static_cast<uint32_t>(23 - p.el.mbits)),
        half_m1((1u << (22 - p.el.mbits)) - 1u),
        offset(static_cast<uint32_t>(127 - p.el.bias) << p.el.mbits),
        max_code(p.el.max_code),
        min_normal(p.el.min_normal_bits),
        magic_bits(f2u(p.el.sub_magic)),
        magic(p.el.sub_magic),
        sub_inv_step(p.el.sub_inv_step),
        away(p.away) {}

  LATMIX_HD uint32_t code(float x) const {
    const uint32_t u = f2u(x);
    const uint32_t a = u & 0x7FFFFFFFu;
    const uint32_t sign = (u >> 31) << sign_shift;
    uint32_t sub;
    if (!away) {
      sub = f2u(add_rn(u2f(a), magic)) - magic_bits;
    } else {
      const float t = mul_rn(u2f(a), sub_inv_step);  // exact: a power of two, no underflow
      const float fl = floor_f(t);
      sub = static_cast<uint32_t>((t - fl >= 0.5f) ? fl + 1.0f : fl);
    }
    const uint32_t rnd = away ? half_m1 + 1u : half_m1 + ((a >> sh) & 1u);
    uint32_t nrm = ((a + rnd) >> sh) - offset;  // wraps below min_normal, where it is not used
    nrm = nrm < max_code ? nrm : max_code;
    return sign | (a < min_normal ? sub : nrm);
  }
};

/// The scaled value of v in a good block (v / X): the value element_value rounds.
LATMIX_HD float scaled_value(float v, const BlockScale& s, const QuantParams& p) {
  return p.nvfp4 ? div_rn(v, s.X) : mul_rn(v, s.mul);
}

/// The element code of v in a good block: element_code(element_value(v, s, p), p.el), bit for bit;
/// FP formats through FpEncoder. INT formats and non-finite scaled values (never in a good block:
/// see element_value; kFinite drops the check) take the general path.
template <bool kFinite = false>
LATMIX_HD uint32_t encode_element(float v, const BlockScale& s, const QuantParams& p) {
  if (p.el.is_int) return element_code(element_value<kFinite>(v, s, p), p.el);
  if (p.nvfp4 && s.X == 0.0f) return (f2u(v) >> 31) << (p.el.ebits + p.el.mbits);
  const float x = scaled_value(v, s, p);
  if (!kFinite && (f2u(x) & 0x7FFFFFFFu) >= 0x7F800000u) return element_code(element_value<kFinite>(v, s, p), p.el);
  return FpEncoder(p).code(x);
}

/// Everything the decode kernels need: the value of every element code and of every scale code,
/// as mx_decode's tables hold them (element_decode; e8m0_decode, or NVFP4's E4M3 value times the
/// tensor scale), so that a decoded value is the same fp32 product on the device as on the CPU.
struct DecodeParams {
  int64_t rows = 0;
  int64_t n = 0;          ///< values per row
  int64_t block = 32;
  int nibbles = 0;        ///< codes packed two per byte (element 2i low nibble, 2i+1 high)
  int e8m0 = 1;           ///< E8M0 scales (else NVFP4's E4M3)
  int min_exp = 0;        ///< ElemParams::min_exp of the element format
  int has_nan = 0;        ///< the element format has NaN codes (E4M3, E5M2)
  float values[256];      ///< element value of every code (4-bit formats use the first 16)
  float scales[256];      ///< scale value of every scale code (NaN for the NaN code)
};

/// The decoded fp32 value of an element code in a block with scale code `scode`.
LATMIX_HD float decode_value(uint32_t code, uint32_t scode, const DecodeParams& p) {
  return mul_rn(p.values[code], p.scales[scode]);
}

/// Whether every value decoded from an E8M0 scale code is exact in bf16, so that rounding fp32 to
/// bf16 is a truncation (bf16_exact for a scale code): no NaN (neither the scale nor an element
/// code) and a normal smallest non-zero product.
LATMIX_HD bool decode_bf16_exact(uint32_t scode, const DecodeParams& p) {
  return p.e8m0 && !p.has_nan && scode != 0xFFu && static_cast<int>(scode) - 127 + p.min_exp >= -126;
}

/// The dequantized value of v (the block must not be bad).
template <bool kFinite = false>
LATMIX_HD float fake_quant_value(float v, const BlockScale& s, const QuantParams& p) {
  return mul_rn(element_value<kFinite>(v, s, p), s.X);
}

/// Whether every dequantized value of an E8M0 block is exact in bf16, so that rounding fp32 to
/// bf16 is a truncation: the smallest non-zero |q X| is a normal number (q has at most 8
/// significant bits in every format, and products beyond the fp32 range are Inf either way).
LATMIX_HD bool bf16_exact(const BlockScale& s, const QuantParams& p) {
  return !p.nvfp4 && s.e + p.el.min_exp >= -126;
}

}  // namespace latmix::mx_cuda
