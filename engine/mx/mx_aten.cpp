// Fake quantization with unfused ATen operations: runs on any device. Mirrors the scalar
// definitions in mx_internal.h step by step; every step is exact, so the bits agree.
//
// Divisions by non-powers of two (NVFP4) always divide by a full tensor: ATen turns a division
// by a CPU scalar into a multiplication by its reciprocal on CUDA, which would round differently.
#include <limits>

#include "latmix/mx.h"
#include "mx/mx_internal.h"

namespace latmix::mx_detail {

namespace {

// 2^e (int32 tensor, -127..127) as fp32.
at::Tensor pow2_tensor(const at::Tensor& e) {
  at::Tensor normal = (e + 127) * 8388608;  // biased exponent << 23
  at::Tensor bits = at::where(e.ge(-126), normal, at::full_like(e, 0x00400000));
  return bits.to(at::kInt).view(at::kFloat);
}

at::Tensor e8m0_exponent_aten(const at::Tensor& amax, ScaleRule rule, const ElementParams& p) {
  const at::Tensor ad = amax.to(at::kDouble);
  auto fr = at::frexp(ad);
  const at::Tensor m = std::get<0>(fr);
  const at::Tensor ex = std::get<1>(fr).to(at::kInt);
  const at::Tensor fl = ex - 1;
  at::Tensor e;
  switch (rule) {
    case ScaleRule::Floor: e = fl - p.emax; break;
    case ScaleRule::Ceil: e = at::where(m.eq(0.5), fl, ex) - p.emax; break;
    case ScaleRule::RCeil: {
      auto fr2 = at::frexp(ad / at::full_like(ad, static_cast<double>(p.max)));
      const at::Tensor ex2 = std::get<1>(fr2).to(at::kInt);
      e = at::where(std::get<0>(fr2).eq(0.5), ex2 - 1, ex2);
      break;
    }
    case ScaleRule::Even: {
      const double threshold = 1.0 - std::ldexp(1.0, -(p.mbits + 2));
      e = at::where(m.ge(threshold), ex, fl) - p.emax;
      break;
    }
  }
  e = at::where(amax.eq(0), at::full_like(e, -127), e);
  return e.clamp(-127, 127).to(at::kInt);
}

at::Tensor quantize_magnitude_aten(const at::Tensor& a, const ElementParams& p, Rounding rounding) {
  at::Tensor step;
  if (p.is_int) {
    step = at::full_like(a, p.int_step);
  } else {
    const at::Tensor pow2 = a.contiguous().view(at::kInt).bitwise_and(0x7F800000).view(at::kFloat);
    step = pow2.clamp_min(p.min_normal) * p.mant_scale;
  }
  const at::Tensor t = a / step;
  at::Tensor r;
  if (rounding == Rounding::NearestEven) {
    r = t.round();
  } else {
    const at::Tensor fl = t.floor();
    r = at::where((t - fl).ge(0.5), fl + 1, fl);
  }
  return (r * step).clamp_max(p.max);
}

at::Tensor quantize_value_aten(const at::Tensor& v, const ElementParams& p, Rounding rounding) {
  const at::Tensor q = quantize_magnitude_aten(v.abs(), p, rounding);
  const at::Tensor s = at::copysign(q, v);
  if (p.is_int && !p.int_has_negative_zero) return at::where(q.eq(0), q, s);
  return s;
}

// NVFP4 on blocks xb [rows, nb, 16] with block maxima amax [rows, nb, 1].
at::Tensor nvfp4_aten(const at::Tensor& xb, const at::Tensor& amax, const MxFormat& f, float s2) {
  const ElementParams e4 = element_params(ElementFormat::E4M3);
  const ElementParams e2 = element_params(ElementFormat::E2M1);
  at::Tensor t = amax / at::full_like(amax, 6.0f);
  const at::Tensor s2t = at::full_like(amax, s2);
  if (f.tensor_scale) t = t / s2t;
  const at::Tensor sb = quantize_magnitude_aten(t, e4, Rounding::NearestEven);
  const at::Tensor S = f.tensor_scale ? sb * s2t : sb;
  const at::Tensor v = xb / S.expand_as(xb);
  at::Tensor q = quantize_value_aten(v, e2, f.rounding);
  q = at::where(S.eq(0).expand_as(xb), at::copysign(at::zeros_like(xb), xb), q);
  return q * S;
}

}  // namespace

float nvfp4_tensor_scale(const at::Tensor& x) {
  const at::Tensor xf = x.detach().to(at::kFloat);
  const at::Tensor a = at::where(at::isfinite(xf), xf.abs(), at::zeros_like(xf));
  const float amax = a.numel() ? a.max().item<float>() : 0.0f;
  if (!(amax > 0.0f)) return 1.0f;
  return amax / 2688.0f;  // 6 * 448, divided in fp32
}

at::Tensor fake_quantize_aten(const at::Tensor& x, const MxFormat& f, int64_t axis) {
  const int64_t ax = normalize_axis(x, axis);
  at::Tensor xf = x.to(at::kFloat).movedim(ax, -1);
  const std::vector<int64_t> moved_shape = xf.sizes().vec();
  const int64_t n = xf.size(-1);
  const int64_t B = f.block;
  const int64_t nb = (n + B - 1) / B;
  if (nb * B != n) xf = at::constant_pad_nd(xf, {0, nb * B - n}, 0);
  const at::Tensor xb = xf.reshape({-1, nb, B});
  const at::Tensor bad = at::isfinite(xb).logical_not().any(-1, true);
  at::Tensor amax = xb.abs().amax(-1, true);
  amax = at::where(bad, at::zeros_like(amax), amax);
  const ElementParams p = element_params(f.element);
  at::Tensor y;
  if (f.scale_type == ScaleType::E8M0) {
    const at::Tensor e = e8m0_exponent_aten(amax, f.scale, p);
    y = quantize_value_aten(xb * pow2_tensor(-e), p, f.rounding) * pow2_tensor(e);
  } else {
    y = nvfp4_aten(xb, amax, f, f.tensor_scale ? nvfp4_tensor_scale(x) : 1.0f);
  }
  y = at::where(bad, at::full_like(y, std::numeric_limits<float>::quiet_NaN()), y);
  std::vector<int64_t> padded_shape = moved_shape;
  padded_shape.back() = nb * B;
  y = y.reshape(padded_shape).narrow(-1, 0, n).movedim(-1, ax);
  return y.to(x.scalar_type()).contiguous();
}

// The E8M0 exponents (int32, -127..127) of finite block maxima amax (fp32), exactly as
// mx_detail::e8m0_exponent computes them on the CPU: frexp of the value as fp64, and for RCeil a
// correctly rounded fp64 quotient (a division by a tensor: ATen turns a division by a scalar into
// a multiplication by its reciprocal on CUDA, which would round differently).
at::Tensor e8m0_exponents(const at::Tensor& amax, const MxFormat& format) {
  const ElementParams p = element_params(format.element);
  const at::Tensor ad = amax.to(at::kDouble);
  const auto fr = at::frexp(ad);  // amax = m 2^ex, m in [0.5, 1)
  const at::Tensor& m = std::get<0>(fr);
  const at::Tensor ex = std::get<1>(fr).to(at::kInt);
  const at::Tensor fl = ex - 1;  // floor(log2 amax)
  at::Tensor e;
  switch (format.scale) {
    case ScaleRule::Floor:
      e = fl - p.emax;
      break;
    case ScaleRule::Ceil:
      e = at::where(m.eq(0.5), fl, ex) - p.emax;
      break;
    case ScaleRule::RCeil: {
      const auto fr2 = at::frexp(ad / at::full_like(ad, static_cast<double>(p.max)));
      const at::Tensor ex2 = std::get<1>(fr2).to(at::kInt);
      e = at::where(std::get<0>(fr2).eq(0.5), ex2 - 1, ex2);
      break;
    }
    case ScaleRule::Even:
      e = at::where(m.ge(1.0 - std::ldexp(1.0, -(p.mbits + 2))), ex, fl) - p.emax;
      break;
  }
  return at::where(amax.eq(0), at::full_like(e, -127), e).clamp(-127, 127).to(at::kInt);
}

}  // namespace latmix::mx_detail
