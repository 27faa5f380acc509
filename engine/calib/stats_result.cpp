// Queries on ActivationStats: lookups, heatmaps, metric names.
#include <algorithm>

#include "latmix/calib.h"
#include "latmix/error.h"

namespace latmix {

int64_t BlockEnergyMap::top_block() const {
  if (energy_share.empty()) return -1;
  return std::max_element(energy_share.begin(), energy_share.end()) - energy_share.begin();
}

const ViewStats& LayerStats::view(StatsView which) const {
  return which == StatsView::Transformed && transformed ? *transformed : original;
}

const LayerStats* ActivationStats::find(CapturePoint point, int64_t layer) const {
  for (const LayerStats& l : layers) {
    if (l.point == point && l.layer == layer) return &l;
  }
  return nullptr;
}

std::vector<CapturePoint> ActivationStats::points() const {
  std::vector<CapturePoint> out;
  for (const LayerStats& l : layers) {
    if (std::find(out.begin(), out.end(), l.point) == out.end()) out.push_back(l.point);
  }
  std::sort(out.begin(), out.end(),
            [](CapturePoint a, CapturePoint b) { return static_cast<int>(a) < static_cast<int>(b); });
  return out;
}

namespace {

const HeatmapMetric kMetrics[] = {HeatmapMetric::EnergyShare, HeatmapMetric::BlockMax, HeatmapMetric::MaxOverRms,
                                  HeatmapMetric::MeanCrest,   HeatmapMetric::QuantMse, HeatmapMetric::SqnrDb,
                                  HeatmapMetric::ClipRate};

std::vector<float> metric_row(const ViewStats& v, HeatmapMetric metric) {
  switch (metric) {
    case HeatmapMetric::EnergyShare:
      return v.blocks.energy_share;
    case HeatmapMetric::BlockMax:
      return v.blocks.max_abs;
    case HeatmapMetric::MaxOverRms:
      return v.blocks.max_over_rms;
    case HeatmapMetric::MeanCrest:
      return v.blocks.mean_crest;
    case HeatmapMetric::QuantMse:
      return v.quant.block_mse;
    case HeatmapMetric::SqnrDb:
      return v.quant.block_sqnr_db;
    case HeatmapMetric::ClipRate:
      return v.quant.block_clip_rate;
  }
  return {};
}

}  // namespace

std::string heatmap_metric_name(HeatmapMetric metric) {
  switch (metric) {
    case HeatmapMetric::EnergyShare:
      return "energy_share";
    case HeatmapMetric::BlockMax:
      return "block_max";
    case HeatmapMetric::MaxOverRms:
      return "max_over_rms";
    case HeatmapMetric::MeanCrest:
      return "mean_crest";
    case HeatmapMetric::QuantMse:
      return "mse";
    case HeatmapMetric::SqnrDb:
      return "sqnr_db";
    case HeatmapMetric::ClipRate:
      return "clip_rate";
  }
  return "?";
}

HeatmapMetric parse_heatmap_metric(const std::string& name) {
  std::string valid;
  for (HeatmapMetric m : kMetrics) {
    if (heatmap_metric_name(m) == name) return m;
    valid += (valid.empty() ? "" : ", ") + heatmap_metric_name(m);
  }
  throw UsageError("unknown heatmap metric '" + name + "' (expected one of " + valid + ")");
}

Heatmap heatmap(const ActivationStats& stats, HeatmapMetric metric, CapturePoint point, StatsView view) {
  Heatmap h;
  h.metric = heatmap_metric_name(metric);
  for (const LayerStats& l : stats.layers) {
    if (l.point != point) continue;
    if (view == StatsView::Transformed && !l.transformed) return Heatmap{h.metric, 0, 0, {}, {}};
    const std::vector<float> row = metric_row(l.view(view), metric);
    if (h.rows == 0) h.cols = static_cast<int64_t>(row.size());
    if (static_cast<int64_t>(row.size()) != h.cols) {
      throw Error("heatmap: " + capture_point_name(point) + " layer " + std::to_string(l.layer) + " has " +
                  std::to_string(row.size()) + " blocks, expected " + std::to_string(h.cols));
    }
    h.values.insert(h.values.end(), row.begin(), row.end());
    h.layers.push_back(l.layer);
    ++h.rows;
  }
  return h;
}

}  // namespace latmix
