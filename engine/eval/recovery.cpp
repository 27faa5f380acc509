// Recovery of a quantized model and the zero-shot mean, with standard errors (recovery.h).
#include "latmix/recovery.h"

#include <cmath>

#include "latmix/tasks.h"

namespace latmix {

bool lower_is_better(const std::string& metric) {
  return metric == "ppl" || metric == "mean_nll";
}

Estimate recovery(const std::string& metric, const Estimate& fp, const Estimate& quantized) {
  Estimate r;
  const double f = fp.value, q = quantized.value;
  if (std::isnan(q) || !std::isfinite(f) || f <= 0) return r;
  if (lower_is_better(metric)) {
    if (q <= 0) return r;
    r.value = 100 * f / q;
  } else {
    r.value = 100 * q / f;
  }
  if (std::isfinite(fp.se) && std::isfinite(quantized.se) && std::isfinite(q) && q > 0) {
    const double a = fp.se / f, b = quantized.se / q;
    r.se = std::abs(r.value) * std::sqrt(a * a + b * b);
  }
  return r;
}

Estimate metric_estimate(const TaskResult& result, const std::string& metric) {
  Estimate e;
  if (auto it = result.metrics.find(metric); it != result.metrics.end()) e.value = it->second;
  if (auto it = result.standard_errors.find(metric); it != result.standard_errors.end()) e.se = it->second;
  return e;
}

Estimate recovery(const std::string& metric, const TaskResult& fp, const TaskResult& quantized) {
  return recovery(metric, metric_estimate(fp, metric), metric_estimate(quantized, metric));
}

bool is_perplexity_task(const TaskResult& result) {
  return result.metrics.count("ppl") != 0U && result.metrics.count("acc") == 0U;
}

Estimate zero_shot_mean(const std::vector<TaskResult>& results) {
  double sum = 0, var = 0;
  bool all_se = true;
  int n = 0;
  for (const auto& r : results) {
    const auto it = r.metrics.find("acc");
    if (it == r.metrics.end()) continue;
    sum += it->second;
    const auto se = r.standard_errors.find("acc");
    if (se != r.standard_errors.end() && std::isfinite(se->second)) {
      var += se->second * se->second;
    } else {
      all_se = false;
    }
    ++n;
  }
  Estimate m;
  if (n == 0) return m;
  m.value = sum / n;
  if (all_se) m.se = std::sqrt(var) / n;
  return m;
}

namespace {

bool has_zero_shot(const std::vector<TaskResult>& fp) {
  for (const auto& r : fp) {
    if (!is_perplexity_task(r)) return true;
  }
  return false;
}

const TaskResult* first_perplexity_task(const std::vector<TaskResult>& fp) {
  for (const auto& r : fp) {
    if (is_perplexity_task(r)) return &r;
  }
  return nullptr;
}

}  // namespace

Estimate headline_recovery(const std::vector<TaskResult>& fp, const std::vector<TaskResult>& quantized) {
  if (has_zero_shot(fp)) return recovery("acc", zero_shot_mean(fp), zero_shot_mean(quantized));
  const TaskResult* t = first_perplexity_task(fp);
  if (t == nullptr) return {};
  for (const auto& r : quantized) {
    if (r.task == t->task) return recovery("ppl", *t, r);
  }
  return {};
}

nlohmann::json recovery_json(const Estimate& recovery) {
  auto number = [](double v) { return std::isfinite(v) ? nlohmann::json(v) : nlohmann::json(nullptr); };
  return {{"percent", number(recovery.value)}, {"se", number(recovery.se)}};
}

std::string headline_recovery_basis(const std::vector<TaskResult>& fp) {
  if (has_zero_shot(fp)) return "zero-shot mean accuracy";
  const TaskResult* t = first_perplexity_task(fp);
  return t != nullptr ? t->task + " perplexity" : std::string();
}

}  // namespace latmix
