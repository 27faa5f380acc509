#pragma once
/// \file compare.h
/// Room: engine/learn/ (latmix_engine).
/// The comparison report: several methods on the same model, calibration data, formats and
/// evaluation; report.md, report.json and PNG plots drawn by the project (plot.h).

#include <nlohmann/json_fwd.hpp>

#include <cmath>
#include <functional>
#include <string>
#include <vector>

#include "latmix/calib_data.h"
#include "latmix/learn.h"
#include "latmix/recovery.h"
#include "latmix/tasks.h"

namespace latmix {

struct CompareOptions {
  std::vector<std::string> methods;
  std::vector<std::string> tasks;
  EvalOptions eval;
  /// The settings of each method (e.g. method_defaults() with the command line applied).
  std::function<LearnSettings(const std::string& method)> settings_for;
  /// Tokens per sequence and sequences used for the per-layer SQNR (taken from the calibration set).
  int64_t sqnr_sequences = 4;
  /// Windows (of eval.seqlen tokens) of the first perplexity task's text on which the KL divergence
  /// from the FP model's next-token distribution is measured (0: not measured).
  int64_t kl_windows = 32;
};

/// One method's row.
struct MethodRow {
  std::string method;
  LearnSettings settings;
  std::vector<TaskResult> results;
  std::vector<LearnEvent> curve;
  std::vector<std::pair<std::string, double>> conditions;
  /// Per decoder layer: SQNR (dB) of the activation fake-quantization at the inputs of the
  /// quantized linears (energy-weighted over q/k/v, o, gate/up and down inputs), measured on the
  /// transformed weight-quantized model.
  std::vector<double> layer_sqnr_db;
  /// Mean KL(FP || quantized) per token on held-out text (Comparison::kl_text); NaN when not measured.
  double kl_to_fp = 0;
  double learn_seconds = 0, quantize_seconds = 0, eval_seconds = 0;
  /// Learned methods: MethodResult's validation (curve, best step, the sentence, the deployed check).
  std::vector<std::pair<int64_t, double>> validation_curve;
  int64_t best_step = -1;
  std::string validation_note;
  double deployed_start = std::nan(""), deployed_result = std::nan("");
};

struct Comparison {
  std::string model;        ///< path as given
  std::string calibration;  ///< CalibrationSet::describe()
  std::vector<std::string> tasks;
  std::string kl_text;  ///< how the KL to the FP model was measured (empty: not measured)
  std::vector<TaskResult> fp;
  std::vector<MethodRow> rows;
  double seconds = 0;
  nlohmann::json to_json() const;
  /// The report as Markdown: settings, the table (FP, each method; its recovery % of FP with one
  /// standard error, recovery.h's headline_recovery), gap closed vs RTN, the zero-shot tasks, the
  /// recovery per task, per-layer SQNR, condition numbers, wall times; `plots` lists the PNG files
  /// to reference. to_json() gives each method's recovery too ("recovery": percent, se, basis).
  std::string markdown(const std::vector<std::string>& plots) const;
};

/// Runs every method: obtain_plan(), apply_plan() (the method's weight quantizer), run_tasks();
/// and the FP model once. Progress stages "METHOD: learn", "METHOD: quantize", task stages.
Comparison run_comparison(const Model& fp, const Tokenizer& tokenizer, const CalibrationSet& calib,
                          const CompareOptions& options, const LearnControl& control = {});

/// Writes DIR/report.md, DIR/report.json, DIR/loss.png (learned methods), DIR/perplexity.png,
/// DIR/accuracy.png (when zero-shot tasks ran), DIR/sqnr.png. Creates DIR; files are atomic.
/// Returns the files written.
std::vector<std::string> write_comparison_report(const Comparison& comparison, const std::string& dir);

/// Per-layer activation SQNR (dB) of `spec`'s activation format on `model` (which should hold the
/// transforms, folded or online, and no activation quantization) over `ids` [B, T].
std::vector<double> layer_activation_sqnr(const Model& model, const MxFormat& format, const at::Tensor& ids);

/// Mean per-token KL(reference || model) of the next-token distributions over ids [N, T], in
/// batches of `batch` sequences.
double mean_kl_divergence(const Model& reference, const Model& model, const at::Tensor& ids, int64_t batch = 4);

/// Mean next-token cross-entropy (nats) of `model` over `ids` [B, T] (positions 1..T-1 predicted
/// from the ones before), `batch` sequences at a time.
double mean_cross_entropy(const Model& model, const at::Tensor& ids, int64_t batch = 4);

/// Share of the FP-to-baseline gap a value closes, in percent: (base - value) / (base - fp) * 100
/// (NaN when base == fp).
double gap_closed(double fp, double baseline, double value);

}  // namespace latmix
