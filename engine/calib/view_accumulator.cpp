// Streaming accumulators of one view: per-channel moments (Pébay's pairwise update), a bounded
// top-|x| heap per channel, per-block energy / crest / quantization error, and a scale histogram.
#include "calib/view_accumulator.h"

#include "mx/mx_internal.h"

#include <algorithm>
#include <cmath>
#include <limits>
#include <numeric>

namespace latmix::calib_detail {

namespace {

at::Tensor pow2_of(const at::Tensor& e) {
  return at::exp2(e.to(at::kDouble)).to(at::kFloat);
}

// NVFP4's block scale: E4M3(amax / 6 [/ s2]) [* s2].
at::Tensor nvfp4_scales(const at::Tensor& amax, const at::Tensor& x2d, const MxFormat& f) {
  double s2 = 1.0;
  if (f.tensor_scale) {
    const at::Tensor xf = x2d.to(at::kFloat);
    const at::Tensor a = at::where(at::isfinite(xf), xf.abs(), at::zeros_like(xf));
    const float amax_all = a.numel() ? a.max().item<float>() : 0.0f;
    s2 = amax_all > 0.0f ? static_cast<double>(amax_all / 2688.0f) : 1.0;
  }
  at::Tensor t = amax.to(at::kFloat) / 6.0f;
  if (f.tensor_scale) t = t / static_cast<float>(s2);
  const at::Tensor pow2 = t.contiguous().view(at::kInt).bitwise_and(0x7F800000).view(at::kFloat);
  const at::Tensor step = pow2.clamp_min(std::ldexp(1.0f, -6)) * std::ldexp(1.0f, -3);
  at::Tensor sb = ((t / step).round() * step).clamp_max(448.0f);
  return f.tensor_scale ? sb * static_cast<float>(s2) : sb;
}

double pooled_kurtosis(const std::vector<double>& mean, const std::vector<double>& m2, const std::vector<double>& m3,
                       const std::vector<double>& m4, double n, double* out_mean, double* out_var) {
  const auto F = static_cast<double>(mean.size());
  const double mu = std::accumulate(mean.begin(), mean.end(), 0.0) / F;
  double M2 = 0, M4 = 0;
  for (size_t c = 0; c < mean.size(); ++c) {
    const double d = mean[c] - mu;
    M2 += m2[c] + n * d * d;
    M4 += m4[c] + 4 * d * m3[c] + 6 * d * d * m2[c] + n * d * d * d * d;
  }
  const double N = n * F;
  *out_mean = mu;
  *out_var = M2 / N;
  return M2 > 0 ? N * M4 / (M2 * M2) : 0.0;
}

std::vector<double> to_doubles(const at::Tensor& t) {
  const at::Tensor c = t.to(at::kCPU).to(at::kDouble).contiguous();
  return std::vector<double>(c.data_ptr<double>(), c.data_ptr<double>() + c.numel());
}

std::vector<float> to_floats(const std::vector<double>& v) {
  return std::vector<float>(v.begin(), v.end());
}

float sqnr_db(double signal, double noise) {
  if (noise <= 0) return std::numeric_limits<float>::infinity();
  return static_cast<float>(10.0 * std::log10(signal / noise));
}

}  // namespace

std::pair<at::Tensor, at::Tensor> block_scales(const at::Tensor& amax, const at::Tensor& x2d, const MxFormat& f) {
  if (f.scale_type == ScaleType::E8M0) {
    const at::Tensor e = mx_detail::e8m0_exponents(amax, f).to(at::kLong);
    return {pow2_of(e), e + 127};
  }
  const at::Tensor s = nvfp4_scales(amax, x2d, f);
  const at::Tensor bin = std::get<1>(at::frexp(s.to(at::kDouble))).to(at::kLong) - 1 + 127;
  return {s, at::where(s.gt(0), bin, at::zeros_like(bin)).clamp(0, 255)};
}

ViewAccumulator::ViewAccumulator(int64_t features, const MxFormat& format, int64_t tokens_per_channel,
                                 at::Device device)
    : features_(features),
      blocks_((features + format.block - 1) / format.block),
      width_(format.block),
      k_(tokens_per_channel),
      format_(format) {
  const auto d = at::TensorOptions().dtype(at::kDouble).device(device);
  const auto f = at::TensorOptions().dtype(at::kFloat).device(device);
  const auto l = at::TensorOptions().dtype(at::kLong).device(device);
  mean_ = at::zeros({features}, d);
  m2_ = at::zeros({features}, d);
  m3_ = at::zeros({features}, d);
  m4_ = at::zeros({features}, d);
  max_abs_ = at::zeros({features}, f);
  top_abs_ = at::full({features, k_}, -1.0f, f);
  top_value_ = at::zeros({features, k_}, f);
  top_id_ = at::full({features, k_}, -1, l);
  top_seq_ = at::zeros({features, k_}, l);
  top_pos_ = at::zeros({features, k_}, l);
  block_energy_ = at::zeros({blocks_}, d);
  block_crest_ = at::zeros({blocks_}, d);
  block_error_ = at::zeros({blocks_}, d);
  block_clipped_ = at::zeros({blocks_}, l);
  block_max_ = at::zeros({blocks_}, f);
  histogram_ = at::zeros({256}, l);
}

int64_t ViewAccumulator::bytes() const {
  int64_t b = 0;
  for (const at::Tensor* t :
       {&mean_, &m2_, &m3_, &m4_, &max_abs_, &top_abs_, &top_value_, &top_id_, &top_seq_, &top_pos_, &block_energy_,
        &block_crest_, &block_error_, &block_clipped_, &block_max_, &histogram_}) {
    b += static_cast<int64_t>(t->nbytes());
  }
  return b;
}

void ViewAccumulator::add(const at::Tensor& x, const TokenIndex& tokens) {
  TORCH_CHECK(x.dim() == 2 && x.size(1) == features_, "ViewAccumulator::add: expected [N, ", features_, "]");
  if (x.size(0) == 0) return;
  const at::Tensor xf = x.to(at::kFloat).contiguous();
  add_moments(xf.to(at::kDouble));
  add_top_tokens(xf, tokens);
  add_blocks(xf);
  n_ += x.size(0);
}

void ViewAccumulator::add_moments(const at::Tensor& xd) {
  const auto na = static_cast<double>(n_);
  const auto nb = static_cast<double>(xd.size(0));
  const double n = na + nb;
  const at::Tensor mb = xd.mean(0);
  const at::Tensor dev = xd - mb;
  const at::Tensor dev2 = dev * dev;
  const at::Tensor M2b = dev2.sum(0);
  const at::Tensor M3b = (dev2 * dev).sum(0);
  const at::Tensor M4b = (dev2 * dev2).sum(0);
  const at::Tensor d = mb - mean_;
  const at::Tensor d2 = d * d;
  // Pébay (2008): moments of the union of two sets from those of each set.
  m4_ = m4_ + M4b + d2 * d2 * (na * nb * (na * na - na * nb + nb * nb) / (n * n * n)) +
        6.0 * d2 * (na * na * M2b + nb * nb * m2_) / (n * n) + 4.0 * d * (na * M3b - nb * m3_) / n;
  m3_ = m3_ + M3b + d2 * d * (na * nb * (na - nb) / (n * n)) + 3.0 * d * (na * M2b - nb * m2_) / n;
  m2_ = m2_ + M2b + d2 * (na * nb / n);
  mean_ = mean_ + d * (nb / n);
}

void ViewAccumulator::add_top_tokens(const at::Tensor& x, const TokenIndex& tokens) {
  const at::Tensor a = x.abs();
  max_abs_ = at::maximum(max_abs_, std::get<0>(a.max(0)));
  const int64_t k = std::min(k_, x.size(0));
  auto top = a.topk(k, 0);
  const at::Tensor rows = std::get<1>(top).t().contiguous();  // [F, k]
  const at::Tensor flat = rows.flatten();
  const at::Tensor values = x.t().gather(1, rows);
  const at::Tensor abs_all = at::cat({top_abs_, std::get<0>(top).t()}, 1);
  const at::Tensor pick = std::get<1>(abs_all.topk(k_, 1));
  auto merge = [&](const at::Tensor& kept, const at::Tensor& fresh) {
    return at::cat({kept, fresh}, 1).gather(1, pick);
  };
  top_value_ = merge(top_value_, values);
  top_id_ = merge(top_id_, tokens.ids.index_select(0, flat).view({features_, k}));
  top_seq_ = merge(top_seq_, tokens.sequence.index_select(0, flat).view({features_, k}));
  top_pos_ = merge(top_pos_, tokens.position.index_select(0, flat).view({features_, k}));
  top_abs_ = abs_all.gather(1, pick);
}

void ViewAccumulator::add_blocks(const at::Tensor& x) {
  const int64_t padded = blocks_ * width_;
  const at::Tensor xp = padded == features_ ? x : at::constant_pad_nd(x, {0, padded - features_}, 0);
  const at::Tensor xb = xp.view({x.size(0), blocks_, width_});
  const at::Tensor amax = xb.abs().amax(2);  // [N, nb]
  const at::Tensor sumsq = (xb * xb).sum(2).to(at::kDouble);
  at::Tensor widths = at::full({blocks_}, static_cast<double>(width_), sumsq.options());
  widths[blocks_ - 1] = static_cast<double>(features_ - (blocks_ - 1) * width_);
  const at::Tensor rms = (sumsq / widths).sqrt();
  const at::Tensor crest = at::where(rms.gt(0), amax.to(at::kDouble) / rms, at::zeros_like(rms));
  block_energy_ = block_energy_ + sumsq.sum(0);
  block_crest_ = block_crest_ + crest.sum(0);
  block_max_ = at::maximum(block_max_, std::get<0>(amax.max(0)));

  const at::Tensor q = fake_quantize(x, format_, -1);
  const at::Tensor err = q - x;
  const at::Tensor errp = padded == features_ ? err : at::constant_pad_nd(err, {0, padded - features_}, 0);
  block_error_ = block_error_ + (errp * errp).view({x.size(0), blocks_, width_}).sum(2).to(at::kDouble).sum(0);
  auto scales = block_scales(amax, x, format_);
  const at::Tensor S = scales.first.unsqueeze(2);
  const at::Tensor clipped = (xb.abs() / S).gt(format_.element_max()) & S.gt(0);
  block_clipped_ = block_clipped_ + clipped.sum(2).sum(0);
  histogram_ = histogram_ + at::bincount(scales.second.flatten(), {}, 256);
}

namespace {

std::vector<OutlierChannel> rank_outliers(const ChannelStats& ch, const std::vector<double>& energy, double total,
                                          int64_t block, int64_t top, const std::vector<at::Tensor>& heap) {
  const auto F = static_cast<int64_t>(ch.rms.size());
  std::vector<int64_t> order(static_cast<size_t>(F));
  std::iota(order.begin(), order.end(), 0);
  std::vector<float> sorted = ch.rms;
  std::nth_element(sorted.begin(), sorted.begin() + F / 2, sorted.end());
  const float median = sorted[static_cast<size_t>(F / 2)];
  const int64_t count = std::min(top, F);
  std::partial_sort(order.begin(), order.begin() + count, order.end(), [&](int64_t a, int64_t b) {
    return ch.rms[static_cast<size_t>(a)] > ch.rms[static_cast<size_t>(b)];
  });
  const auto abs = heap[0].accessor<float, 2>();
  const auto val = heap[1].accessor<float, 2>();
  const auto ids = heap[2].accessor<int64_t, 2>();
  const auto seq = heap[3].accessor<int64_t, 2>();
  const auto pos = heap[4].accessor<int64_t, 2>();
  std::vector<OutlierChannel> out;
  for (int64_t i = 0; i < count; ++i) {
    const int64_t c = order[static_cast<size_t>(i)];
    const auto cs = static_cast<size_t>(c);
    OutlierChannel o{c,
                     c / block,
                     ch.max_abs[cs],
                     ch.rms[cs],
                     median > 0 ? ch.rms[cs] / median : 0.0f,
                     total > 0 ? static_cast<float>(energy[cs] / total) : 0.0f,
                     {}};
    for (int64_t j = 0; j < heap[0].size(1); ++j) {
      if (abs[c][j] < 0) break;
      o.tokens.push_back({static_cast<int32_t>(ids[c][j]), seq[c][j], pos[c][j], val[c][j]});
    }
    out.push_back(std::move(o));
  }
  return out;
}

}  // namespace

ViewStats ViewAccumulator::finish(int64_t top_channels) const {
  ViewStats v;
  const auto n = static_cast<double>(n_);
  const std::vector<double> mean = to_doubles(mean_), m2 = to_doubles(m2_), m3 = to_doubles(m3_), m4 = to_doubles(m4_);
  std::vector<double> energy(mean.size()), rms(mean.size()), kurt(mean.size());
  for (size_t c = 0; c < mean.size(); ++c) {
    energy[c] = m2[c] + n * mean[c] * mean[c];
    rms[c] = n > 0 ? std::sqrt(energy[c] / n) : 0.0;
    kurt[c] = m2[c] > 0 ? n * m4[c] / (m2[c] * m2[c]) : 0.0;
  }
  v.channels = {to_floats(to_doubles(max_abs_)), to_floats(rms), to_floats(mean), to_floats(kurt)};
  double var = 0;
  v.kurtosis = n > 0 ? pooled_kurtosis(mean, m2, m3, m4, n, &v.mean, &var) : 0.0;
  v.max_abs = *std::max_element(v.channels.max_abs.begin(), v.channels.max_abs.end());

  const std::vector<double> be = to_doubles(block_energy_), crest = to_doubles(block_crest_),
                            bmax = to_doubles(block_max_), berr = to_doubles(block_error_),
                            bclip = to_doubles(block_clipped_);
  v.energy = std::accumulate(be.begin(), be.end(), 0.0);
  v.rms = n > 0 ? std::sqrt(v.energy / (n * static_cast<double>(features_))) : 0.0;
  BlockEnergyMap& b = v.blocks;
  QuantStats& q = v.quant;
  b.block = width_;
  b.energy = be;
  q.format = format_.name();
  double err_total = 0;
  for (int64_t i = 0; i < blocks_; ++i) {
    const auto s = static_cast<size_t>(i);
    const double w = static_cast<double>(std::min(width_, features_ - i * width_));
    const double cells = n * w;
    const double block_rms = cells > 0 ? std::sqrt(be[s] / cells) : 0.0;
    b.energy_share.push_back(v.energy > 0 ? static_cast<float>(be[s] / v.energy) : 0.0f);
    b.max_abs.push_back(static_cast<float>(bmax[s]));
    b.max_over_rms.push_back(block_rms > 0 ? static_cast<float>(bmax[s] / block_rms) : 0.0f);
    b.mean_crest.push_back(n > 0 ? static_cast<float>(crest[s] / n) : 0.0f);
    q.block_mse.push_back(cells > 0 ? static_cast<float>(berr[s] / cells) : 0.0f);
    q.block_sqnr_db.push_back(sqnr_db(be[s], berr[s]));
    q.block_clip_rate.push_back(cells > 0 ? static_cast<float>(bclip[s] / cells) : 0.0f);
    err_total += berr[s];
    q.clipped += static_cast<int64_t>(bclip[s]);
  }
  q.elements = n_ * features_;
  q.mse = q.elements ? err_total / static_cast<double>(q.elements) : 0.0;
  q.sqnr_db = err_total > 0 ? 10.0 * std::log10(v.energy / err_total) : std::numeric_limits<double>::infinity();
  q.clip_rate = q.elements ? static_cast<double>(q.clipped) / static_cast<double>(q.elements) : 0.0;
  const at::Tensor hist = histogram_.to(at::kCPU).contiguous();
  q.scale_histogram.assign(hist.data_ptr<int64_t>(), hist.data_ptr<int64_t>() + 256);

  const std::vector<at::Tensor> heap = {top_abs_.to(at::kCPU).contiguous(), top_value_.to(at::kCPU).contiguous(),
                                        top_id_.to(at::kCPU).contiguous(), top_seq_.to(at::kCPU).contiguous(),
                                        top_pos_.to(at::kCPU).contiguous()};
  v.outliers = rank_outliers(v.channels, energy, v.energy, width_, top_channels, heap);
  return v;
}

}  // namespace latmix::calib_detail
