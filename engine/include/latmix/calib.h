#pragma once
/// \file calib.h
/// Room: engine/calib/ (latmix_engine).
/// Activation statistics: what a streaming collector (calib_collector.h) learned about the
/// activations at the model's capture points, as plain values ready for tables, JSON and heatmaps.
///
/// For every observed (capture point, layer) there is a LayerStats with one ViewStats of the
/// activation x as the model computes it ("original") and, when a transform T was given, one of
/// T(x), the activation the quantizer would see after the transform ("transformed"). Channels are
/// the last dimension of the activation (a linear layer's input features); an MX block is a group
/// of `block` consecutive channels (the last block may be shorter), as the quantizer groups them.
///
/// Conventions: energy = sum of squares over every observed token; RMS = sqrt(energy / count);
/// kurtosis is Pearson's (E[(x - mean)^4] / var^2, 3 for a Gaussian; 0 when the variance is 0);
/// SQNR = 10 log10(signal energy / error energy) in dB and +inf when the quantizer is exact
/// (JSON writes +inf as null and reads null back as +inf). NaN or Inf activations propagate.

#include <nlohmann/json_fwd.hpp>

#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include "latmix/model.h"

namespace latmix {

/// One of the tokens that produced a large value in a channel.
struct OutlierToken {
  int32_t token_id = -1;  ///< vocabulary id (-1 when the collector was not told the ids)
  int64_t sequence = 0;   ///< index of the calibration sequence
  int64_t position = 0;   ///< position in the sequence
  float value = 0;        ///< the activation value (signed)
};

/// A channel whose RMS stands out, with the tokens of its largest magnitudes.
struct OutlierChannel {
  int64_t channel = 0;
  int64_t block = 0;  ///< channel / block size
  float max_abs = 0;
  float rms = 0;
  float rms_ratio = 0;               ///< rms / median channel rms of the layer
  float energy_share = 0;            ///< the channel's share of the layer's energy
  std::vector<OutlierToken> tokens;  ///< largest |value| first
};

/// Per-channel figures, each vector of length `features`.
struct ChannelStats {
  std::vector<float> max_abs, rms, mean, kurtosis;
};

/// Per-MX-block figures, each vector of length ceil(features / block).
struct BlockEnergyMap {
  int64_t block = 32;
  std::vector<double> energy;       ///< sum of squares over the block's channels and every token
  std::vector<float> energy_share;  ///< energy / the layer's energy (sums to 1; 0s for an all-zero layer)
  std::vector<float> max_abs;       ///< largest |x| in the block
  std::vector<float> max_over_rms;  ///< max_abs / RMS of the block (over all its values)
  std::vector<float> mean_crest;    ///< mean over tokens of the per-token block amax / block RMS
                                    ///< (what sets the MX scale; all-zero instances count 0)
  /// Index of the block with the largest energy share (-1 when empty).
  int64_t top_block() const;
};

/// Quantization error in one MX format: x versus fake_quantize(x) along the channels.
struct QuantStats {
  std::string format;  ///< MxFormat::name()
  int64_t elements = 0;
  int64_t clipped = 0;  ///< elements whose scaled magnitude exceeded the element max
  double mse = 0;
  double sqnr_db = 0;
  double clip_rate = 0;
  std::vector<float> block_mse, block_sqnr_db, block_clip_rate;  ///< per MX block
  /// Counts of block scales by E8M0 code (exponent + 127), 256 entries. For NVFP4 (E4M3
  /// scales) the bin is floor(log2 scale) + 127.
  std::vector<int64_t> scale_histogram;
};

/// Everything about one view (original or transformed) of one capture.
struct ViewStats {
  double mean = 0, rms = 0, max_abs = 0, kurtosis = 0, energy = 0;  ///< over all values of the layer
  ChannelStats channels;
  BlockEnergyMap blocks;
  QuantStats quant;
  std::vector<OutlierChannel> outliers;  ///< the top channels by RMS, largest first
};

/// Which view of a capture.
enum class StatsView { Original, Transformed };

/// The statistics of one (capture point, layer).
struct LayerStats {
  CapturePoint point = CapturePoint::Residual;
  int64_t layer = 0;
  int64_t features = 0;
  int64_t tokens = 0;  ///< token vectors observed
  ViewStats original;
  std::optional<ViewStats> transformed;  ///< present when a transform was given
  /// The transformed view when asked for and present, else the original.
  const ViewStats& view(StatsView which) const;
};

/// The statistics of a whole run.
struct ActivationStats {
  std::string format;              ///< MxFormat::name() of the quantization figures
  std::string format_description;  ///< MxFormat::describe()
  int64_t block = 32;
  std::string transform = "none";  ///< the transform's name, "none" without one
  int64_t sequences = 0;
  int64_t seqlen = 0;
  int64_t tokens = 0;
  std::vector<LayerStats> layers;  ///< ordered by layer, then capture point

  /// The entry of (point, layer), or nullptr.
  const LayerStats* find(CapturePoint point, int64_t layer) const;
  /// The capture points present, in CapturePoint order.
  std::vector<CapturePoint> points() const;
};

/// Per-block metrics a heatmap can show.
enum class HeatmapMetric { EnergyShare, BlockMax, MaxOverRms, MeanCrest, QuantMse, SqnrDb, ClipRate };

/// "energy_share", "block_max", "max_over_rms", "mean_crest", "mse", "sqnr_db", "clip_rate".
std::string heatmap_metric_name(HeatmapMetric metric);
/// Inverse of heatmap_metric_name. \throws latmix::UsageError listing the names.
HeatmapMetric parse_heatmap_metric(const std::string& name);

/// A layers x blocks grid, row-major: values[r * cols + c] is block c of layers[r]. SQNR cells
/// may be +inf (exact blocks).
struct Heatmap {
  std::string metric;
  int64_t rows = 0, cols = 0;
  std::vector<int64_t> layers;  ///< the layer of each row
  std::vector<float> values;
};

/// The metric for every layer of `point` (rows in layer order). Empty (0 x 0) when the point was
/// not observed; for StatsView::Transformed, empty when there is no transformed view.
Heatmap heatmap(const ActivationStats& stats, HeatmapMetric metric, CapturePoint point,
                StatsView view = StatsView::Original);

/// The whole result as JSON text (indent < 0: compact).
std::string stats_to_json(const ActivationStats& stats, int indent = -1);
/// stats_to_json() before it is text (the use-case results embed it; no text round trip).
nlohmann::json stats_json(const ActivationStats& stats);
/// Parses stats_to_json()'s output. \throws latmix::Error naming `origin` on malformed input.
ActivationStats stats_from_json(const std::string& text, const std::string& origin = "stats");
/// stats_from_json() of a parsed value (keys other than the statistics' own are not read).
ActivationStats stats_from_json_value(const nlohmann::json& json, const std::string& origin = "stats");
/// Writes stats_to_json() atomically.
void write_stats_json(const std::string& path, const ActivationStats& stats);
/// Writes the vectors as tensors "POINT.LAYER.VIEW.NAME" (e.g. "residual.3.original.block_energy",
/// float32 or int64) with the scalar facts as metadata; atomic.
void write_stats_safetensors(const std::string& path, const ActivationStats& stats);

}  // namespace latmix
