// The statistics hook and the calibration loop that drives it.
#include <c10/core/GradMode.h>
#include <ATen/ATen.h>
#include <c10/core/InferenceMode.h>

#include <algorithm>

#include "calib/view_accumulator.h"
#include "latmix/calib_collector.h"
#include "latmix/error.h"
#include "latmix/scoped_hook.h"

namespace latmix {

using calib_detail::TokenIndex;
using calib_detail::ViewAccumulator;

struct StatsCollector::Entry {
  CapturePoint point;
  int64_t layer;
  int64_t features;
  int64_t sequences_seen = 0;  // for rows without ids
  ViewAccumulator original;
  std::unique_ptr<ViewAccumulator> transformed;
};

StatsCollector::StatsCollector(StatsOptions options, ActivationTransform transform)
    : options_(std::move(options)), transform_(std::move(transform)) {
  if (options_.points.empty()) throw UsageError("statistics: no capture point selected");
  if (options_.top_channels < 1) throw UsageError("statistics: top_channels must be 1 or more");
  if (options_.tokens_per_channel < 1) throw UsageError("statistics: tokens_per_channel must be 1 or more");
  if (options_.batch_size < 1) throw UsageError("statistics: batch_size must be 1 or more");
  options_.format.validate();
}

StatsCollector::~StatsCollector() = default;

bool StatsCollector::wants(CapturePoint point, int64_t layer) const {
  if (std::find(options_.points.begin(), options_.points.end(), point) == options_.points.end()) return false;
  return options_.layers.empty() ||
         std::find(options_.layers.begin(), options_.layers.end(), layer) != options_.layers.end();
}

at::Tensor StatsCollector::on_capture(CapturePoint point, int64_t layer, const at::Tensor& x) {
  observe(point, layer, x);
  return {};
}

void StatsCollector::begin_batch(const at::Tensor& ids, int64_t first_sequence) {
  batch_ids_ = ids.dim() == 1 ? ids.unsqueeze(0) : ids;
  batch_first_ = first_sequence;
}

void StatsCollector::set_run_info(int64_t sequences, int64_t seqlen) {
  sequences_ = sequences;
  seqlen_ = seqlen;
}

StatsCollector::Entry& StatsCollector::entry(CapturePoint point, int64_t layer, int64_t features, at::Device device) {
  auto key = std::make_pair(static_cast<int>(point), layer);
  auto it = entries_.find(key);
  if (it == entries_.end()) {
    const int64_t k = options_.tokens_per_channel;
    auto e = std::unique_ptr<Entry>(
        new Entry{point, layer, features, 0, ViewAccumulator(features, options_.format, k, device), nullptr});
    if (transform_) e->transformed = std::make_unique<ViewAccumulator>(features, options_.format, k, device);
    it = entries_.emplace(key, std::move(e)).first;
  }
  if (it->second->features != features) {
    throw Error("statistics: " + capture_point_name(point) + " layer " + std::to_string(layer) + ": expected " +
                std::to_string(it->second->features) + " channels, found " + std::to_string(features));
  }
  return *it->second;
}

namespace {

TokenIndex token_index(const at::Tensor& ids, int64_t first_sequence, int64_t B, int64_t T, at::Device device) {
  const auto l = at::TensorOptions().dtype(at::kLong).device(device);
  TokenIndex t;
  t.ids = ids.defined() ? ids.to(device, at::kLong).reshape({B * T}) : at::full({B * T}, -1, l);
  t.sequence = (at::arange(B, l) + first_sequence).repeat_interleave(T);
  t.position = at::arange(T, l).repeat({B});
  return t;
}

}  // namespace

void StatsCollector::observe(CapturePoint point, int64_t layer, const at::Tensor& x, const at::Tensor& ids) {
  if (x.dim() != 2 && x.dim() != 3) {
    throw Error("statistics: " + capture_point_name(point) + ": expected an activation [B, T, F] or [T, F], found " +
                std::to_string(x.dim()) + " dimensions");
  }
  c10::NoGradGuard no_grad;
  const at::Tensor x3 = x.dim() == 2 ? x.unsqueeze(0) : x;
  const int64_t B = x3.size(0), T = x3.size(1), F = x3.size(2);
  Entry& e = entry(point, layer, F, x.device());
  at::Tensor use_ids = ids;
  int64_t first = e.sequences_seen;
  if (!use_ids.defined() && batch_ids_.defined() && batch_ids_.size(0) == B && batch_ids_.size(1) == T) {
    use_ids = batch_ids_;
    first = batch_first_;
  }
  const TokenIndex tokens = token_index(use_ids, first, B, T, x.device());
  e.sequences_seen = std::max(e.sequences_seen, first + B);
  const at::Tensor x2 = x3.reshape({B * T, F});
  e.original.add(x2, tokens);
  if (e.transformed) {
    const at::Tensor y = transform_(point, layer, x3);
    if (!y.defined() || y.sizes() != x3.sizes()) {
      throw Error("statistics: the transform for " + capture_point_name(point) + " layer " + std::to_string(layer) +
                  " changed the activation's shape");
    }
    e.transformed->add(y.reshape({B * T, F}), tokens);
  }
}

ActivationStats StatsCollector::result() const {
  c10::NoGradGuard no_grad;
  ActivationStats s;
  s.format = options_.format.name();
  s.format_description = options_.format.describe();
  s.block = options_.format.block;
  s.transform = transform_ ? options_.transform_name : "none";
  s.sequences = sequences_;
  s.seqlen = seqlen_;
  std::vector<const Entry*> order;
  for (const auto& kv : entries_) order.push_back(kv.second.get());
  std::stable_sort(order.begin(), order.end(), [](const Entry* a, const Entry* b) {
    return a->layer != b->layer ? a->layer < b->layer : static_cast<int>(a->point) < static_cast<int>(b->point);
  });
  for (const Entry* e : order) {
    LayerStats l;
    l.point = e->point;
    l.layer = e->layer;
    l.features = e->features;
    l.tokens = e->original.count();
    l.original = e->original.finish(options_.top_channels);
    if (e->transformed) l.transformed = e->transformed->finish(options_.top_channels);
    s.tokens = std::max(s.tokens, l.tokens);
    s.layers.push_back(std::move(l));
  }
  return s;
}

int64_t StatsCollector::accumulator_bytes() const {
  int64_t b = 0;
  for (const auto& kv : entries_) {
    b += kv.second->original.bytes();
    if (kv.second->transformed) b += kv.second->transformed->bytes();
  }
  return b;
}

ActivationStats collect_activation_stats(Model& model, const CalibrationSet& data, const StatsOptions& options,
                                         const ActivationTransform& transform, const JobControl& job) {
  auto collector = std::make_shared<StatsCollector>(options, transform);
  collector->set_run_info(data.size(), data.seqlen());
  const ScopedHook guard(model, collector);
  c10::InferenceMode inference;
  const int64_t total = data.size();
  job.report("stats", 0, total);
  for (int64_t first = 0; first < total; first += options.batch_size) {
    job.cancel.check();
    const int64_t count = std::min(options.batch_size, total - first);
    const at::Tensor ids = data.batch(first, count, model.device());
    collector->begin_batch(ids, first);
    model.hidden_states(ids);
    job.report("stats", first + count, total);
  }
  return collector->result();
}

}  // namespace latmix
