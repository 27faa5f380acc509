// Quantization error figures (SQNR, clip rate) of a tensor in one format.
#include <cmath>
#include <limits>

#include "latmix/mx.h"
#include "mx/mx_internal.h"

namespace latmix {

MxErrorStats mx_error_stats(const at::Tensor& x, const MxFormat& format, int64_t axis) {
  const MxPacked m = mx_encode(x, format, axis, false);
  MxErrorStats s;
  s.numel = x.numel();
  s.blocks = m.scales.numel();
  if (s.numel == 0) return s;
  const int64_t n = m.codes.size(-1);
  const int64_t B = format.block;
  const at::Tensor xm = x.detach().to(at::kCPU).to(at::kFloat).movedim(m.axis, -1).reshape({-1, n});
  const at::Tensor q = mx_decode(m, at::kFloat).movedim(m.axis, -1).reshape({-1, n});
  const at::Tensor sc = mx_detail::scale_values(m).reshape({-1, m.scales.size(-1)});
  const at::Tensor sce = sc.repeat_interleave(B, 1).narrow(1, 0, n);
  const at::Tensor ok = at::isfinite(sce);
  s.nan_blocks = at::isnan(sc).sum().item<int64_t>();
  const at::Tensor xd = at::where(ok, xm, at::zeros_like(xm)).to(at::kDouble);
  const at::Tensor qd = at::where(ok, q, at::zeros_like(q)).to(at::kDouble);
  const double signal = xd.square().sum().item<double>();
  const double noise = (xd - qd).square().sum().item<double>();
  const int64_t finite = ok.sum().item<int64_t>();
  const at::Tensor v = (xm / sce).abs();  // the scaled magnitude, as the quantizer saw it
  s.clipped = (v.gt(format.element_max()) & ok & sce.gt(0)).sum().item<int64_t>();
  s.clip_rate = finite ? static_cast<double>(s.clipped) / static_cast<double>(finite) : 0.0;
  s.mse = finite ? noise / static_cast<double>(finite) : 0.0;
  s.sqnr_db = noise > 0 ? 10.0 * std::log10(signal / noise) : std::numeric_limits<double>::infinity();
  return s;
}

}  // namespace latmix
