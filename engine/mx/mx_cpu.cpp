// The CPU loop: one pass per block (maximum, scale, elements) over rows of the last dimension,
// parallel over blocks. Shared by fake quantization and the encoder.
#include <ATen/Parallel.h>

#include <cmath>
#include <limits>
#include <vector>

#include "latmix/error.h"
#include "latmix/mx.h"
#include "mx/mx_internal.h"

namespace latmix::mx_detail {

namespace {

constexpr float kNaN = std::numeric_limits<float>::quiet_NaN();

// Quantizes one block held in `buf` in place: buf[j] becomes the signed element value. Returns
// the block's scale value (E8M0 2^e, or NVFP4's S; NaN for a block with NaN/Inf input) and its
// scale code.
class BlockQuantizer {
 public:
  BlockQuantizer(const MxFormat& f, float s2)
      : f_(f), p_(element_params(f.element)), e4_(element_params(ElementFormat::E4M3)), s2_(s2) {}

  float run(float* buf, int64_t len, uint8_t* scale_code) const {
    float amax = 0.0f;
    bool bad = false;
    for (int64_t j = 0; j < len; ++j) {
      const float a = std::fabs(buf[j]);
      bad |= !(a <= std::numeric_limits<float>::max());
      amax = a > amax ? a : amax;
    }
    if (bad) {
      for (int64_t j = 0; j < len; ++j) buf[j] = 0.0f;
      *scale_code = f_.scale_type == ScaleType::E8M0 ? 0xFF : 0x7F;
      return kNaN;
    }
    return f_.scale_type == ScaleType::E8M0 ? run_e8m0(buf, len, amax, scale_code)
                                            : run_nvfp4(buf, len, amax, scale_code);
  }

 private:
  float run_e8m0(float* buf, int64_t len, float amax, uint8_t* scale_code) const {
    const int e = e8m0_exponent(amax, f_.scale, p_);
    const float inv = pow2f(-e);
    for (int64_t j = 0; j < len; ++j) buf[j] = quantize_value(buf[j] * inv, p_, f_.rounding);
    *scale_code = static_cast<uint8_t>(e + 127);
    return pow2f(e);
  }

  float run_nvfp4(float* buf, int64_t len, float amax, uint8_t* scale_code) const {
    const float sb = nvfp4_block_scale(amax, s2_, f_.tensor_scale, e4_);
    const float S = f_.tensor_scale ? sb * s2_ : sb;
    for (int64_t j = 0; j < len; ++j) {
      buf[j] = S == 0.0f ? std::copysign(0.0f, buf[j]) : quantize_value(buf[j] / S, p_, f_.rounding);
    }
    *scale_code = code_of_value(ElementFormat::E4M3, sb);
    return S;
  }

  MxFormat f_;
  ElementParams p_, e4_;
  float s2_;
};

int64_t grain_blocks(int64_t block) { return std::max<int64_t>(1, 32768 / std::max<int64_t>(block, 1)); }

template <typename T>
void fake_quant_rows(const T* in, T* out, int64_t rows, int64_t n, const MxFormat& f, float s2) {
  const int64_t B = f.block;
  const int64_t nb = (n + B - 1) / B;
  const BlockQuantizer bq(f, s2);
  at::parallel_for(0, rows * nb, grain_blocks(B), [&](int64_t begin, int64_t end) {
    std::vector<float> buf(static_cast<size_t>(B));
    for (int64_t i = begin; i < end; ++i) {
      const int64_t start = (i / nb) * n + (i % nb) * B;
      const int64_t len = std::min(B, n - (i % nb) * B);
      for (int64_t j = 0; j < len; ++j) buf[j] = static_cast<float>(in[start + j]);
      uint8_t code = 0;
      const float X = bq.run(buf.data(), len, &code);
      for (int64_t j = 0; j < len; ++j) out[start + j] = static_cast<T>(buf[j] * X);
    }
  });
}

}  // namespace

at::Tensor fake_quantize_cpu(const at::Tensor& x, const MxFormat& f, int64_t axis) {
  if (!x.device().is_cpu()) {
    fail("", "MX fake quantization with the CPU loop", "a CPU tensor", x.device().str());
  }
  const int64_t ax = normalize_axis(x, axis);
  const at::ScalarType st = x.scalar_type();
  const bool native = st == at::kFloat || st == at::kBFloat16 || st == at::kHalf;
  at::Tensor xm = (native ? x : x.to(at::kFloat)).detach().movedim(ax, -1).contiguous();
  at::Tensor out = at::empty_like(xm);
  const int64_t n = xm.size(-1);
  const int64_t rows = n == 0 ? 0 : xm.numel() / n;
  const float s2 = f.scale_type == ScaleType::E4M3 && f.tensor_scale ? nvfp4_tensor_scale(x) : 1.0f;
  if (xm.scalar_type() == at::kFloat) {
    fake_quant_rows(xm.data_ptr<float>(), out.data_ptr<float>(), rows, n, f, s2);
  } else if (xm.scalar_type() == at::kBFloat16) {
    fake_quant_rows(xm.data_ptr<at::BFloat16>(), out.data_ptr<at::BFloat16>(), rows, n, f, s2);
  } else {
    fake_quant_rows(xm.data_ptr<at::Half>(), out.data_ptr<at::Half>(), rows, n, f, s2);
  }
  return out.movedim(-1, ax).to(st).contiguous();
}

void encode_rows_cpu(const at::Tensor& x2d, const MxFormat& f, float s2, at::Tensor& codes, at::Tensor& scales) {
  const int64_t rows = x2d.size(0);
  const int64_t n = x2d.size(1);
  const int64_t B = f.block;
  const int64_t nb = (n + B - 1) / B;
  codes = at::empty({rows, n}, at::kByte);
  scales = at::empty({rows, nb}, at::kByte);
  const float* in = x2d.data_ptr<float>();
  uint8_t* cp = codes.data_ptr<uint8_t>();
  uint8_t* sp = scales.data_ptr<uint8_t>();
  const BlockQuantizer bq(f, s2);
  at::parallel_for(0, rows * nb, grain_blocks(B), [&](int64_t begin, int64_t end) {
    std::vector<float> buf(static_cast<size_t>(B));
    for (int64_t i = begin; i < end; ++i) {
      const int64_t start = (i / nb) * n + (i % nb) * B;
      const int64_t len = std::min(B, n - (i % nb) * B);
      for (int64_t j = 0; j < len; ++j) buf[j] = in[start + j];
      bq.run(buf.data(), len, sp + i);
      for (int64_t j = 0; j < len; ++j) cp[start + j] = code_of_value(f.element, buf[j]);
    }
  });
}

}  // namespace latmix::mx_detail
