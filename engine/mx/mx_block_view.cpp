#include <algorithm>
#include <cmath>
#include <limits>

#include "latmix/error.h"
#include "latmix/mx_block.h"

namespace latmix {

namespace {

std::vector<double> positive_grid(const MxFormat& f) {
  const int codes = 1 << f.info().bits;
  std::vector<double> grid;
  for (int c = 0; c < codes / 2; ++c) {  // codes with the sign bit clear (INT8: 0..127)
    const double v = element_decode(f.element, static_cast<uint8_t>(c));
    if (std::isfinite(v) && v >= 0 && v <= f.element_max()) grid.push_back(v);
  }
  std::sort(grid.begin(), grid.end());
  grid.erase(std::unique(grid.begin(), grid.end()), grid.end());
  return grid;
}

}  // namespace

MxBlockView inspect_mx_block(const at::Tensor& block, const MxFormat& format) {
  format.validate();
  if (block.dim() != 1 || block.numel() == 0 || block.numel() > format.block) {
    throw UsageError("inspect_mx_block: expected 1.." + std::to_string(format.block) + " values, found shape " +
                     std::to_string(block.numel()));
  }
  at::Tensor x = block.to(at::kCPU, at::kFloat).contiguous();
  MxPacked packed = mx_encode(x, format, 0, /*pack_nibbles=*/false);
  at::Tensor q = mx_decode(packed, at::kFloat);
  MxBlockView v;
  v.format = format.name();
  v.format_details = format.describe();
  v.values.assign(x.data_ptr<float>(), x.data_ptr<float>() + x.numel());
  v.quantized.assign(q.data_ptr<float>(), q.data_ptr<float>() + q.numel());
  at::Tensor codes = packed.codes.to(at::kInt).flatten();
  v.codes.assign(codes.data_ptr<int>(), codes.data_ptr<int>() + codes.numel());
  v.amax = x.abs().max().item<double>();
  v.scale_code = packed.scales.flatten()[0].item<int>();
  v.element_max = format.element_max();
  if (format.scale_type == ScaleType::E8M0) {
    v.scale = e8m0_decode(static_cast<uint8_t>(v.scale_code));
    v.scale_rule = to_string(format.scale);
  } else {
    v.scale = element_decode(ElementFormat::E4M3, static_cast<uint8_t>(v.scale_code)) * packed.tensor_scale;
    v.scale_rule = "amax/6 rounded to E4M3";
  }
  for (double g : positive_grid(format)) v.grid.push_back(g * v.scale);
  double signal = 0, noise = 0;
  for (size_t i = 0; i < v.values.size(); ++i) {
    const double a = v.values[i], b = v.quantized[i];
    signal += a * a;
    noise += (a - b) * (a - b);
    if (std::abs(a) > v.element_max * v.scale) ++v.clipped;
  }
  v.mse = noise / static_cast<double>(v.values.size());
  v.sqnr_db = noise == 0 ? std::numeric_limits<double>::infinity() : 10 * std::log10(signal / noise);
  return v;
}

}  // namespace latmix
