// Weight quantizers of one linear layer: RTN, the MX element grid, Hessians and MX-aware GPTQ
// (quant_gptq.h, docs/quantization.md).
#include <cmath>
#include <set>
#include <string>
#include <vector>

#include "latmix/error.h"
#include "latmix/quant_gptq.h"

namespace latmix {

namespace {

// The finite element values of a format, sorted, with what a tie between neighbours picks.
struct GridTables {
  at::Tensor values;      // fp32 [G]
  at::Tensor midpoints;   // fp32 [G - 1]
  at::Tensor pick_upper;  // int64 [G - 1]: 1 when a tie between values[i] and values[i + 1] goes up
  bool signed_zero = true;
};

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

// The upper Cholesky factor of (H + damp I)^-1, as the reference GPTQ uses it.
at::Tensor inverse_hessian_factor(at::Tensor H, double percdamp) {
  const double damp = percdamp * H.diagonal().mean().item<double>();
  H.diagonal().add_(damp);
  auto [L, info] = at::linalg_cholesky_ex(H, /*upper=*/false, /*check_errors=*/false);
  if (info.item<int64_t>() != 0) {
    fail("", "GPTQ Hessian", "positive definite after damping",
         "not (raise damp, now " + std::to_string(percdamp) + ")");
  }
  return at::linalg_cholesky(at::cholesky_inverse(L), /*upper=*/true);
}

// State of one GPTQ sweep over the permuted columns.
struct Sweep {
  at::Tensor W;                        // [rows, n] permuted, updated by the lazy batch updates
  at::Tensor Hinv;                     // [n, n] upper factor, permuted
  std::vector<int64_t> perm, invperm;  // position -> original column, and back
  at::Tensor scales;                   // [rows, groups]
  std::vector<bool> scaled;
  MxFormat format;
  GridTables grid;
};

// The current weights of MX block g's columns (in original order) when the sweep is at position
// i1 + i, with W1 the current lazy batch [i1, i2) and Err1 its errors so far: columns of the
// batch are current in W1; later ones still owe the batch's pending update -Err1 Hinv.
at::Tensor current_block(const Sweep& s, int64_t g, int64_t i1, int64_t i2, int64_t i, const at::Tensor& W1,
                         const at::Tensor& Err1) {
  const int64_t n = s.W.size(1), B = s.format.block;
  const int64_t c0 = g * B, c1 = std::min(n, c0 + B);
  std::vector<int64_t> slot_in, pos_in, slot_out, pos_out;
  for (int64_t c = c0; c < c1; ++c) {
    const int64_t p = s.invperm[static_cast<size_t>(c)];
    if (p < i2) {
      slot_in.push_back(c - c0);
      pos_in.push_back(p - i1);
    } else {
      slot_out.push_back(c - c0);
      pos_out.push_back(p);
    }
  }
  const auto idx = [&](const std::vector<int64_t>& v) { return at::tensor(v, at::kLong).to(s.W.device()); };
  at::Tensor G = at::empty({s.W.size(0), c1 - c0}, s.W.options());
  if (!slot_in.empty()) G.index_copy_(1, idx(slot_in), W1.index_select(1, idx(pos_in)));
  if (!slot_out.empty()) {
    at::Tensor upd = s.W.index_select(1, idx(pos_out));
    if (i > 0) upd = upd - Err1.slice(1, 0, i).matmul(s.Hinv.slice(0, i1, i1 + i).index_select(1, idx(pos_out)));
    G.index_copy_(1, idx(slot_out), upd);
  }
  return G;
}

// Quantizes the lazy batch [i1, i2) column by column and applies its update to later columns.
void sweep_batch(Sweep& s, int64_t i1, int64_t i2, at::Tensor& Q) {
  const int64_t count = i2 - i1;
  at::Tensor W1 = s.W.slice(1, i1, i2).clone();
  at::Tensor Err1 = at::zeros_like(W1);
  const at::Tensor Hinv1 = s.Hinv.slice(0, i1, i2).slice(1, i1, i2);
  for (int64_t i = 0; i < count; ++i) {
    const int64_t g = s.perm[static_cast<size_t>(i1 + i)] / s.format.block;
    if (!s.scaled[static_cast<size_t>(g)]) {
      at::Tensor block = current_block(s, g, i1, i2, i, W1, Err1);
      s.scales.select(1, g).copy_(mx_block_scales(block, s.format).select(1, 0));
      s.scaled[static_cast<size_t>(g)] = true;
    }
    const at::Tensor w = W1.select(1, i);
    const at::Tensor q = round_on_grid(w, s.scales.select(1, g), s.grid);
    Q.select(1, i1 + i).copy_(q);
    const at::Tensor err = (w - q) / Hinv1[i][i];
    W1.slice(1, i).sub_(err.unsqueeze(1) * Hinv1[i].slice(0, i).unsqueeze(0));
    Err1.select(1, i).copy_(err);
  }
  if (i2 < s.W.size(1)) s.W.slice(1, i2).sub_(Err1.matmul(s.Hinv.slice(0, i1, i2).slice(1, i2)));
}

// Orders the columns (act-order or not), factors H^-1 and prepares the block scales.
Sweep start_sweep(const at::Tensor& W, const at::Tensor& H, const MxFormat& format, const GptqOptions& options) {
  const int64_t n = W.size(1);
  Sweep s;
  s.format = format;
  s.grid = make_grid(format, W.device());
  const at::Tensor perm = options.act_order ? at::argsort(H.diagonal(), /*dim=*/0, /*descending=*/true)
                                            : at::arange(n, at::TensorOptions().dtype(at::kLong).device(W.device()));
  const at::Tensor perm_cpu = perm.to(at::kCPU).contiguous();
  s.perm.assign(perm_cpu.data_ptr<int64_t>(), perm_cpu.data_ptr<int64_t>() + n);
  s.invperm.assign(static_cast<size_t>(n), 0);
  for (int64_t p = 0; p < n; ++p) s.invperm[static_cast<size_t>(s.perm[static_cast<size_t>(p)])] = p;
  const int64_t groups = (n + format.block - 1) / format.block;
  if (options.static_scales) {
    s.scales = mx_block_scales(W, format);
    s.scaled.assign(static_cast<size_t>(groups), true);
  } else {
    s.scales = at::zeros({W.size(0), groups}, W.options());
    s.scaled.assign(static_cast<size_t>(groups), false);
  }
  s.W = W.index_select(1, perm);
  s.Hinv = inverse_hessian_factor(H.index_select(0, perm).index_select(1, perm), options.percdamp);
  return s;
}

double relative_output_error(const at::Tensor& W, const at::Tensor& Q, const at::Tensor& H) {
  const at::Tensor dW = W - Q;
  const double num = (dW.matmul(H) * dW).sum().item<double>();
  const double den = (W.matmul(H) * W).sum().item<double>();
  return den > 0 ? num / den : 0.0;
}

}  // namespace

at::Tensor rtn_quantize_weight(const at::Tensor& weight, const MxFormat& format) {
  return fake_quantize(weight, format, -1);
}

at::Tensor round_to_mx_grid(const at::Tensor& values, const at::Tensor& scales, const MxFormat& format) {
  return round_on_grid(values, scales, make_grid(format, values.device()));
}

at::Tensor mx_block_scales(const at::Tensor& x, const MxFormat& format) {
  if (format.scale_type != ScaleType::E8M0)
    throw UsageError("mx_block_scales: " + format.name() + " is not an MX format");
  const MxPacked packed = mx_encode(x.detach().to(at::kCPU, at::kFloat), format, -1, false);
  const at::Tensor codes = packed.scales.to(at::kFloat);
  at::Tensor scales = at::exp2(codes - 127.0f);
  scales = at::where(codes == 255.0f, at::full_like(scales, std::nanf("")), scales);
  return scales.to(x.device());
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

GptqResult gptq_quantize_weight(const at::Tensor& weight, const at::Tensor& hessian, const MxFormat& format,
                                const GptqOptions& options, const JobControl& job) {
  check_gptq_inputs(weight, hessian, format, options);
  const at::Tensor W0 = weight.detach().to(at::kFloat);
  at::Tensor H = hessian.detach().to(W0.device(), at::kFloat).clone();
  const at::Tensor H0 = H.clone();
  const int64_t n = W0.size(1);
  GptqResult result;
  const at::Tensor dead = H.diagonal() == 0;
  result.dead_columns = dead.sum().item<int64_t>();
  H.diagonal().masked_fill_(dead, 1.0);
  Sweep s = start_sweep(W0.masked_fill(dead.unsqueeze(0), 0.0), H, format, options);
  at::Tensor Q = at::zeros_like(s.W);
  for (int64_t i1 = 0; i1 < n; i1 += options.block_columns) {
    job.cancel.check();
    sweep_batch(s, i1, std::min(n, i1 + options.block_columns), Q);
  }
  const at::Tensor inv = at::tensor(s.invperm, at::kLong).to(W0.device());
  Q = Q.index_select(1, inv);
  const at::Tensor projected = fake_quantize(Q, format, -1);
  result.reprojected = (projected != Q).sum().item<int64_t>();
  result.relative_output_error = relative_output_error(W0, projected, H0);
  result.weight = projected.to(weight.scalar_type());
  return result;
}

}  // namespace latmix
