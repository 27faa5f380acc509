#pragma once
/// \file calib_collector.h
/// Room: engine/calib/ (latmix_engine).
/// The streaming activation-statistics collector: a CaptureHook that selects capture points
/// (wants), observes them (on_capture) and folds each batch into fixed-size accumulators on the
/// activation's device. Nothing of the activations is kept: the accumulators have the size of
/// the layer's channels and blocks (plus a few tokens per channel), whatever the number of
/// tokens (llama.cpp's imatrix works the same way). Results move to the CPU at the end.
///
/// Per observed (point, layer) and per view (x, and T(x) when a transform is given):
/// per channel mean / M2 / M3 / M4 (merged batch by batch with Pébay's formulas, in fp64),
/// max |x| and the `tokens_per_channel` largest |x| with their token id, sequence and position;
/// per MX block energy, max, summed crest factor, quantization error energy, clip counts; per
/// layer a histogram of the block scales. See calib.h for what the results mean.

#include <ATen/ATen.h>

#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <string>
#include <utility>
#include <vector>

#include "latmix/calib.h"
#include "latmix/calib_data.h"
#include "latmix/model.h"
#include "latmix/mx.h"
#include "latmix/progress.h"

namespace latmix {

/// The transform whose effect is measured: returns T(x) for the activation x [..., F] of a
/// capture (same shape). It only feeds the statistics: the model keeps running on x.
using ActivationTransform = std::function<at::Tensor(CapturePoint point, int64_t layer, const at::Tensor& x)>;

struct StatsOptions {
  std::vector<CapturePoint> points{CapturePoint::Residual};  ///< capture points to observe
  std::vector<int64_t> layers;                               ///< layers to observe (empty: all)
  MxFormat format;                                           ///< quantization figures and block size (default MXFP4)
  int64_t top_channels = 8;                                  ///< outlier channels reported per view
  int64_t tokens_per_channel = 4;                            ///< tokens kept per channel (bounded heap)
  int64_t batch_size = 4;                                    ///< sequences per forward pass (collect_activation_stats)
  std::string transform_name = "none";                       ///< reported in ActivationStats::transform
};

class StatsCollector : public CaptureHook {
 public:
  /// \throws latmix::UsageError for no points, top_channels < 1 or tokens_per_channel < 1.
  explicit StatsCollector(StatsOptions options, ActivationTransform transform = {});
  ~StatsCollector() override;
  StatsCollector(const StatsCollector&) = delete;
  StatsCollector& operator=(const StatsCollector&) = delete;

  bool wants(CapturePoint point, int64_t layer) const override;
  /// Observes x (with the ids of begin_batch()) and returns an undefined tensor (no change).
  at::Tensor on_capture(CapturePoint point, int64_t layer, const at::Tensor& x) override;

  /// Declares the token ids [B, T] of the batch about to run and the index of its first
  /// sequence, so that outlier tokens can be named. Call before each forward pass.
  void begin_batch(const at::Tensor& ids, int64_t first_sequence);
  /// Folds x [B, T, F] (or [T, F]) into the accumulators of (point, layer), also when wants()
  /// would say no. Token ids come from `ids` [B, T] when defined, else from begin_batch() when
  /// the shapes match, else they are -1 with sequences counted from 0.
  void observe(CapturePoint point, int64_t layer, const at::Tensor& x, const at::Tensor& ids = {});

  /// The statistics so far (small tensors copied to the CPU; the collector can go on).
  ActivationStats result() const;
  /// Bytes held by all accumulators (constant in the number of tokens observed).
  int64_t accumulator_bytes() const;
  const StatsOptions& options() const { return options_; }

  /// Run facts copied into result().
  void set_run_info(int64_t sequences, int64_t seqlen);

 private:
  struct Entry;
  Entry& entry(CapturePoint point, int64_t layer, int64_t features, at::Device device);

  StatsOptions options_;
  ActivationTransform transform_;
  std::map<std::pair<int, int64_t>, std::unique_ptr<Entry>> entries_;
  at::Tensor batch_ids_;  // [B, T] int64
  int64_t batch_first_ = 0;
  int64_t sequences_ = 0, seqlen_ = 0;
};

/// Runs the model over the calibration sequences in batches with a StatsCollector installed and
/// returns its result. The model is not changed (the hook is removed again, also on error).
/// Progress: stage "stats", done/total in sequences; cancel is checked before every batch.
ActivationStats collect_activation_stats(Model& model, const CalibrationSet& data, const StatsOptions& options,
                                         const ActivationTransform& transform = {}, const JobControl& job = {});

}  // namespace latmix
