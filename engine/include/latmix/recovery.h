#pragma once
/// \file recovery.h
/// Room: engine/eval, the evaluation suite's summaries (issue 16: "one recovery, one zero-shot
/// mean"). How much of the FP model's quality a quantized model keeps, and the mean zero-shot
/// accuracy, each with its standard error. Every client uses these: `latmix eval`'s table, the
/// comparison report (compare.h) and the studio's Compare tab, in both of its modes.

#include <nlohmann/json.hpp>

#include <cmath>
#include <string>
#include <vector>

namespace latmix {

struct TaskResult;  // tasks.h

/// A value with one standard error; NaN where not defined.
struct Estimate {
  double value = std::nan("");
  double se = std::nan("");
};

/// Metrics where lower is better: "ppl" and "mean_nll".
bool lower_is_better(const std::string& metric);

/// Recovery of `quantized` relative to `fp` on `metric`, in percent (100: the FP value).
/// Accuracies (higher is better): quantized / FP; perplexity and NLL (lower_is_better): FP /
/// quantized. NaN when either value is NaN, when FP is not finite or not positive, or (lower is
/// better) when the quantized value is not positive. A quantized perplexity of infinity recovers 0 %.
/// The standard error, by first-order propagation for the ratio of two independent estimates:
/// recovery * sqrt((se_fp / fp)^2 + (se_q / q)^2); NaN unless both standard errors are finite and
/// both values positive and finite.
Estimate recovery(const std::string& metric, const Estimate& fp, const Estimate& quantized);

/// One task's metric from two results (the value of `metric` and its standard error, where the
/// result has one); NaN when either result lacks the metric.
Estimate recovery(const std::string& metric, const TaskResult& fp, const TaskResult& quantized);

/// The metric's value and standard error in one result (NaN where absent).
Estimate metric_estimate(const TaskResult& result, const std::string& metric);

/// True for a perplexity task: a "ppl" metric and no "acc" (lambada, zero-shot, has both).
bool is_perplexity_task(const TaskResult& result);

/// Mean accuracy ("acc") over the results that have one (the zero-shot tasks), as a fraction, and
/// its standard error sqrt(sum se_i^2) / n (the tasks' items are independent samples); the standard
/// error is NaN when any of those results lacks one (fewer than 2 items), both are NaN when no
/// result has an accuracy.
Estimate zero_shot_mean(const std::vector<TaskResult>& results);

/// A model's recovery in one figure, as the comparison report and the studio's methods table show
/// it: with zero-shot tasks among `fp`, the recovery of the zero-shot mean accuracy; otherwise of
/// the perplexity of `fp`'s first perplexity task (NaN when `quantized` lacks it or `fp` has no
/// task).
Estimate headline_recovery(const std::vector<TaskResult>& fp, const std::vector<TaskResult>& quantized);

/// A recovery as the JSON outputs give it: {"percent": value, "se": se}, null where undefined
/// (`latmix eval --json`, the comparison's report.json).
nlohmann::json recovery_json(const Estimate& recovery);

/// Which figure headline_recovery() is: "zero-shot mean accuracy", "TASK perplexity", or "" (none).
std::string headline_recovery_basis(const std::vector<TaskResult>& fp);

}  // namespace latmix
