// Weight quantizers of one linear layer: RTN, the MX element grid, block scales, Hessians and
// MX-aware GPTQ (quant_gptq.h, docs/quantization.md). The sweep itself is in gptq_sweep.cpp.
#include <cmath>
#include <limits>
#include <set>
#include <string>
#include <vector>

#include "latmix/error.h"
#include "latmix/quant_gptq.h"
#include "mx/mx_internal.h"
#include "quant/gptq_sweep.h"

namespace latmix {

namespace gptq_detail {

GridTables make_grid(const MxFormat& format, at::Device device) {
  const ElementInfo& info = format.info();
  std::set<double> grid;
  for (int code = 0; code < (1 << info.bits); ++code) {
    const double v = element_decode(format.element, static_cast<uint8_t>(code));
    // MX quantization never produces INT8's -128 (-2.0): the element range is -127..127.
    if (std::isfinite(v) && std::fabs(v) <= info.max) grid.insert(v + 0.0);
  }
  const std::vector<double> g(grid.begin(), grid.end());
  std::vector<float> values(g.begin(), g.end()), mids;
  std::vector<int64_t> upper;
  for (size_t i = 0; i + 1 < g.size(); ++i) {
    mids.push_back(static_cast<float>((g[i] + g[i + 1]) / 2));
    if (format.rounding == Rounding::NearestAway) {
      upper.push_back(std::fabs(g[i + 1]) > std::fabs(g[i]) ? 1 : 0);
    } else {
      upper.push_back((element_encode(format.element, g[i + 1]) & 1) == 0 ? 1 : 0);
    }
  }
  const auto f32 = at::TensorOptions().dtype(at::kFloat);
  GridTables t;
  t.values = at::tensor(values, f32).to(device);
  t.midpoints = at::tensor(mids, f32).to(device);
  t.pick_upper = at::tensor(upper, at::TensorOptions().dtype(at::kLong)).to(device);
  t.signed_zero = format.element != ElementFormat::INT8;
  return t;
}

// q = X * grid(v / X): nearest grid value, ties by the tables, saturating (beyond the last
// midpoint bucketize returns the last index). Midpoints of grid values are exact in fp32.
at::Tensor round_on_grid(const at::Tensor& values, const at::Tensor& scales, const GridTables& t) {
  const at::Tensor y = values.to(at::kFloat) / scales.to(at::kFloat);
  const at::Tensor lo = at::bucketize(y, t.midpoints, /*out_int32=*/false, /*right=*/false);
  const at::Tensor hi = at::bucketize(y, t.midpoints, /*out_int32=*/false, /*right=*/true);
  const int64_t last_mid = t.midpoints.size(0) - 1;
  const at::Tensor tie_up = t.pick_upper.index_select(0, lo.clamp_max(last_mid).flatten()).view(lo.sizes());
  const at::Tensor idx = at::where(lo != hi, lo + tie_up, lo);
  at::Tensor q = t.values.index_select(0, idx.flatten()).view(idx.sizes()) * scales.to(at::kFloat);
  return t.signed_zero ? at::copysign(q, y) : q;
}

}  // namespace gptq_detail

namespace {

void check_gptq_inputs(const at::Tensor& weight, const at::Tensor& hessian, const MxFormat& format,
                       const GptqOptions& options) {
  format.validate();
  if (format.scale_type != ScaleType::E8M0) {
    throw UsageError("GPTQ: weight format " + format.name() + " has non-power-of-two block scales; use an MX format");
  }
  if (options.block_columns < 1) {
    throw UsageError("GPTQ: block_columns: expected 1 or more, found " + std::to_string(options.block_columns));
  }
  if (!(options.percdamp >= 0)) throw UsageError("GPTQ: percdamp: expected a number >= 0");
  if (weight.dim() != 2) fail("", "GPTQ weight", "2 dimensions [out, in]", std::to_string(weight.dim()));
  const int64_t in = weight.size(1);
  if (hessian.dim() != 2 || hessian.size(0) != in || hessian.size(1) != in) {
    fail("", "GPTQ Hessian", "[" + std::to_string(in) + ", " + std::to_string(in) + "]",
         std::to_string(hessian.dim()) + " dimensions of " + std::to_string(hessian.size(0)));
  }
  if (!at::isfinite(weight).all().item<bool>()) fail("", "GPTQ weight", "finite values", "NaN or Inf");
}

double relative_output_error(const at::Tensor& W, const at::Tensor& Q, const at::Tensor& H) {
  const at::Tensor dW = W - Q;
  const double num = (dW.matmul(H) * dW).sum().item<double>();
  const double den = (W.matmul(H) * W).sum().item<double>();
  return den > 0 ? num / den : 0.0;
}

// 2^e for int32 e in -127..127 as fp32, built from the bits (2^-127 is the subnormal 0x00400000).
at::Tensor pow2_tensor(const at::Tensor& e) {
  const at::Tensor normal = (e + 127) * 8388608;  // the biased exponent << 23
  return at::where(e.ge(-126), normal, at::full_like(e, 0x00400000)).to(at::kInt).view(at::kFloat);
}

}  // namespace

at::Tensor rtn_quantize_weight(const at::Tensor& weight, const MxFormat& format) {
  return fake_quantize(weight, format, -1);
}

at::Tensor round_to_mx_grid(const at::Tensor& values, const at::Tensor& scales, const MxFormat& format) {
  return gptq_detail::round_on_grid(values, scales, gptq_detail::make_grid(format, values.device()));
}

at::Tensor mx_block_scales(const at::Tensor& x, const MxFormat& format) {
  if (format.scale_type != ScaleType::E8M0)
    throw UsageError("mx_block_scales: " + format.name() + " is not an MX format");
  mx_detail::require_floating(x, "MX block scales input");
  mx_detail::normalize_axis(x, -1);  // throws for a 0-dimensional x
  format.validate();
  const at::Tensor xf = x.detach().to(at::kFloat);
  std::vector<int64_t> shape = xf.sizes().vec();
  const int64_t n = shape.back();
  const int64_t nb = (n + format.block - 1) / format.block;
  shape.back() = nb;
  if (xf.numel() == 0) return at::empty(shape, xf.options());
  // Zeros padded into the tail block change neither its maximum nor whether it holds NaN/Inf.
  const at::Tensor xp = nb * format.block == n ? xf : at::constant_pad_nd(xf, {0, nb * format.block - n}, 0);
  const at::Tensor xb = xp.reshape({-1, nb, format.block});
  const at::Tensor bad = at::isfinite(xb).logical_not().any(-1);
  const at::Tensor amax = at::where(bad, at::zeros({}, xb.options()), xb.abs().amax(-1));
  const at::Tensor scales = pow2_tensor(mx_detail::e8m0_exponents(amax, format));
  return at::where(bad, at::full_like(scales, std::numeric_limits<float>::quiet_NaN()), scales).view(shape);
}

void HessianAccumulator::add(const at::Tensor& x) {
  if (x.size(-1) != features_) {
    fail("", "Hessian input", std::to_string(features_) + " features", std::to_string(x.size(-1)));
  }
  const at::Tensor rows = x.detach().reshape({-1, features_}).to(at::kFloat);
  const int64_t n = rows.size(0);
  if (n == 0) return;
  if (!hessian_.defined()) hessian_ = at::zeros({features_, features_}, rows.options());
  // The reference running mean: H <- H n/(n+b) + 2/(n+b) X^T X.
  hessian_.mul_(static_cast<double>(samples_) / static_cast<double>(samples_ + n));
  const at::Tensor scaled = rows * std::sqrt(2.0 / static_cast<double>(samples_ + n));
  hessian_.addmm_(scaled.t(), scaled);
  samples_ += n;
}

namespace gptq_detail {

GptqResult quantize_weight(const at::Tensor& weight, const at::Tensor& hessian, const MxFormat& format,
                           const GptqOptions& options, const JobControl& job, SweepKernel kernel,
                           const HessianFactor* factor) {
  check_gptq_inputs(weight, hessian, format, options);
  const at::Tensor W0 = weight.detach().to(at::kFloat);
  const at::Tensor H0 = hessian.detach().to(W0.device(), at::kFloat);
  const HessianFactor own = factor != nullptr ? HessianFactor{} : factor_hessian(H0, options, W0.device());
  const HessianFactor& f = factor != nullptr ? *factor : own;
  GptqResult result;
  result.dead_columns = f.dead.sum().item<int64_t>();
  const at::Tensor Q = gptq_sweep(W0.masked_fill(f.dead.unsqueeze(0), 0.0), f, format, options, job, kernel);
  const at::Tensor projected = fake_quantize(Q, format, -1);
  result.reprojected = (projected != Q).sum().item<int64_t>();
  result.relative_output_error = relative_output_error(W0, projected, H0);
  result.weight = projected.to(weight.scalar_type());
  return result;
}

}  // namespace gptq_detail

GptqResult gptq_quantize_weight(const at::Tensor& weight, const at::Tensor& hessian, const MxFormat& format,
                                const GptqOptions& options, const JobControl& job) {
  return gptq_detail::quantize_weight(weight, hessian, format, options, job, gptq_detail::SweepKernel::Auto);
}

}  // namespace latmix
