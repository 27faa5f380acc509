// The comparison report: run methods side by side, write Markdown, JSON and PNG plots (compare.h).
#include <c10/core/InferenceMode.h>
#include <ATen/ATen.h>

#include <nlohmann/json.hpp>

#include <chrono>
#include <cmath>
#include <filesystem>
#include <limits>
#include <sstream>

#include "latmix/compare.h"
#include "latmix/distributed.h"
#include "latmix/error.h"
#include "latmix/files.h"
#include "latmix/text_stream.h"
#include "latmix/plot.h"
#include "latmix/png.h"
#include "latmix/recovery.h"

namespace latmix {

namespace {

using Clock = std::chrono::steady_clock;
using nlohmann::json;

double since(Clock::time_point t) {
  return std::chrono::duration<double>(Clock::now() - t).count();
}

// Accumulates signal and quantization-noise energy per layer at the inputs of the linears.
class SqnrHook : public CaptureHook {
 public:
  SqnrHook(MxFormat format, int64_t layers) : format_(std::move(format)), signal_(layers, 0.0), noise_(layers, 0.0) {}
  bool wants(CapturePoint point, int64_t layer) const override {
    return layer >= 0 && layer < static_cast<int64_t>(signal_.size()) &&
           (point == CapturePoint::AttnIn || point == CapturePoint::OIn || point == CapturePoint::MlpIn ||
            point == CapturePoint::DownIn);
  }
  at::Tensor on_capture(CapturePoint, int64_t layer, const at::Tensor& x) override {
    at::Tensor xf = x.to(at::kFloat);
    at::Tensor q = fake_quantize(xf, format_, -1);
    signal_[static_cast<size_t>(layer)] += xf.pow(2).sum().item<double>();
    noise_[static_cast<size_t>(layer)] += (xf - q).pow(2).sum().item<double>();
    return {};
  }
  std::vector<double> sqnr_db() const {
    std::vector<double> out;
    for (size_t l = 0; l < signal_.size(); ++l) {
      out.push_back(noise_[l] > 0 ? 10 * std::log10(signal_[l] / noise_[l]) : std::numeric_limits<double>::infinity());
    }
    return out;
  }

 private:
  MxFormat format_;
  std::vector<double> signal_, noise_;
};

std::string fmt(double v, int digits) {
  if (!std::isfinite(v)) return "n/a";
  std::ostringstream s;
  s.setf(std::ios::fixed);
  s.precision(digits);
  s << v;
  return s.str();
}

const TaskResult* find_task(const std::vector<TaskResult>& results, const std::string& task) {
  for (const auto& r : results) {
    if (r.task == task) return &r;
  }
  return nullptr;
}

// "mean ± se" in percent (the ± only where the standard error is defined).
std::string mean_text(const Estimate& m) {
  return fmt(100 * m.value, 2) + (std::isfinite(m.se) ? " ± " + fmt(100 * m.se, 2) : std::string());
}

// Recovery in percent, "value ± se" (the ± only where defined; `with_se` false: the value only).
std::string recovery_text(const Estimate& r, bool with_se = true) {
  return fmt(r.value, 1) + (with_se && std::isfinite(r.se) ? " ± " + fmt(r.se, 1) : std::string());
}

// "| method | COLUMN | ... |" and its rule line.
void method_table_head(std::ostringstream& md, const std::vector<std::string>& columns) {
  md << "| method |";
  for (const auto& c : columns) md << " " << c << " |";
  md << "\n|---|";
  for (size_t i = 0; i < columns.size(); ++i) md << "---|";
  md << "\n";
}

}  // namespace

double gap_closed(double fp, double baseline, double value) {
  if (baseline == fp) return std::nan("");
  return (baseline - value) / (baseline - fp) * 100.0;
}

double mean_kl_divergence(const Model& reference, const Model& model, const at::Tensor& ids, int64_t batch) {
  c10::InferenceMode guard;
  double sum = 0;
  int64_t tokens = 0;
  for (int64_t first = 0; first < ids.size(0); first += batch) {
    at::Tensor chunk = ids.narrow(0, first, std::min(batch, ids.size(0) - first)).to(reference.device());
    at::Tensor lr = at::log_softmax(reference.forward(chunk), -1);
    at::Tensor lm = at::log_softmax(model.forward(chunk), -1);
    sum += (lr.exp() * (lr - lm)).sum().to(at::kDouble).item<double>();
    tokens += chunk.numel();
  }
  return tokens > 0 ? sum / static_cast<double>(tokens) : std::nan("");
}

double mean_cross_entropy(const Model& model, const at::Tensor& ids, int64_t batch) {
  c10::InferenceMode guard;
  double sum = 0;
  int64_t tokens = 0;
  for (int64_t first = 0; first < ids.size(0); first += batch) {
    at::Tensor chunk = ids.narrow(0, first, std::min(batch, ids.size(0) - first)).to(model.device());
    if (chunk.size(1) < 2) continue;
    at::Tensor logp = at::log_softmax(model.forward(chunk).to(at::kFloat), -1).narrow(1, 0, chunk.size(1) - 1);
    at::Tensor next = chunk.narrow(1, 1, chunk.size(1) - 1).unsqueeze(-1);
    sum -= logp.gather(-1, next).sum().to(at::kDouble).item<double>();
    tokens += next.numel();
  }
  return tokens > 0 ? sum / static_cast<double>(tokens) : std::nan("");
}

std::vector<double> layer_activation_sqnr(const Model& model, const MxFormat& format, const at::Tensor& ids) {
  c10::InferenceMode guard;
  Model m = model.to(model.device(), model.dtype());
  auto hook = std::make_shared<SqnrHook>(format, model.config().num_layers);
  m.add_hook(hook);
  m.hidden_states(ids.to(model.device()));
  return hook->sqnr_db();
}

Comparison run_comparison(const Model& fp, const Tokenizer& tokenizer, const CalibrationSet& calib,
                          const CompareOptions& options, const LearnControl& control) {
  if (options.methods.empty()) throw UsageError("compare: no methods given");
  const auto start = Clock::now();
  Comparison c;
  c.calibration = calib.describe();
  c.tasks = options.tasks;
  const JobControl& job = control.job;
  // Data-parallel (LearnControl::group): the other ranks only learn with rank 0, which evaluates.
  const bool worker = control.group != nullptr && control.group->rank() != 0;
  if (!worker) c.fp = run_tasks(fp, tokenizer, options.tasks, options.eval, job);
  const at::Tensor sqnr_ids = calib.batch(0, std::min<int64_t>(options.sqnr_sequences, calib.size()), fp.device());
  // Fidelity to the FP model on held-out text: the first perplexity task's first windows, no more
  // than the evaluation's window limit (--limit N: N windows per text) when one is set.
  at::Tensor kl_ids;
  const int64_t kl_windows =
      options.eval.limit > 0 ? std::min<int64_t>(options.kl_windows, options.eval.limit) : options.kl_windows;
  for (const auto& task : options.tasks) {
    const auto file = perplexity_task_file(task);
    if (!file || kl_windows <= 0 || worker) continue;
    const std::string path = task.rfind("text:", 0) == 0 ? *file : (std::filesystem::path(options.eval.data_dir) / *file).string();
    const int64_t L = options.eval.seqlen;
    const std::vector<int32_t> ids = encode_text_file(tokenizer, path, kl_windows * L).ids;
    const int64_t n = std::min<int64_t>(kl_windows, static_cast<int64_t>(ids.size()) / L);
    if (n < 1) continue;
    kl_ids = at::empty({n, L}, at::kLong);
    auto acc = kl_ids.accessor<int64_t, 2>();
    for (int64_t w = 0; w < n; ++w) {
      for (int64_t t = 0; t < L; ++t) acc[w][t] = ids[static_cast<size_t>(w * L + t)];
    }
    c.kl_text = "mean per-token KL(FP || quantized) over the first " + std::to_string(n) + " windows of " +
                std::to_string(L) + " tokens of " + task + " (no BOS)";
    break;
  }
  for (const std::string& method : options.methods) {
    job.cancel.check();
    MethodRow row;
    row.method = method;
    row.settings = options.settings_for(method);
    LearnControl lc = control;
    lc.job.progress = [&](std::string_view stage, int64_t done, int64_t total) {
      job.report(method + ": " + std::string(stage), done, total);
    };
    MethodResult learned = obtain_plan(fp, &calib, row.settings, lc);
    if (worker) continue;
    row.curve = learned.curve;
    row.conditions = learned.conditions;
    row.learn_seconds = learned.seconds;
    row.validation_curve = learned.validation_curve;
    row.best_step = learned.best_step;
    row.validation_note = learned.validation_note;
    row.deployed_start = learned.deployed_start;
    row.deployed_result = learned.deployed_result;
    auto t = Clock::now();
    const bool gptq = row.settings.quant.method == WeightMethod::Gptq;
    QuantizedModel q = apply_plan(fp, learned.plan, row.settings.quant, gptq ? &calib : nullptr, lc.job);
    row.quantize_seconds = since(t);
    if (q.activation_hook) {
      q.model.remove_hook(q.activation_hook);
      row.layer_sqnr_db = layer_activation_sqnr(q.model, q.activation_hook->format(), sqnr_ids);
      q.model.add_hook(q.activation_hook);
    }
    row.kl_to_fp = kl_ids.defined() ? mean_kl_divergence(fp, q.model, kl_ids) : std::nan("");
    t = Clock::now();
    row.results = run_tasks(q.model, tokenizer, options.tasks, options.eval, lc.job);
    row.eval_seconds = since(t);
    c.rows.push_back(std::move(row));
  }
  c.seconds = since(start);
  return c;
}

json Comparison::to_json() const {
  json j = {{"model", model}, {"calibration", calibration}, {"tasks", tasks}, {"seconds", seconds}, {"kl_text", kl_text}};
  j["fp"] = json::array();
  for (const auto& r : fp) j["fp"].push_back(latmix::to_json(r));
  j["methods"] = json::array();
  for (const auto& row : rows) {
    json m = {{"method", row.method},
              {"settings", row.settings.to_json()},
              {"learn_seconds", row.learn_seconds},
              {"quantize_seconds", row.quantize_seconds},
              {"eval_seconds", row.eval_seconds},
              {"kl_to_fp", std::isfinite(row.kl_to_fp) ? json(row.kl_to_fp) : json()},
              {"layer_sqnr_db", row.layer_sqnr_db}};
    m["results"] = json::array();
    for (const auto& r : row.results) m["results"].push_back(latmix::to_json(r));
    m["recovery"] = recovery_json(headline_recovery(fp, row.results));
    m["recovery"]["basis"] = headline_recovery_basis(fp);
    m["curve"] = json::array();
    for (const auto& e : row.curve) m["curve"].push_back(e.to_json());
    json cond = json::object();
    for (const auto& [name, value] : row.conditions) cond[name] = value;
    m["condition_numbers"] = cond;
    // The same in their order (the object's keys are sorted), for a reader that shows them as run.
    m["conditions"] = json::array();
    for (const auto& [name, value] : row.conditions) m["conditions"].push_back({{"name", name}, {"value", value}});
    if (!row.validation_curve.empty()) {
      json v = json::array();
      for (const auto& [step, value] : row.validation_curve) v.push_back({{"step", step}, {"loss", value}});
      m["validation"] = {{"curve", v}, {"best_step", row.best_step}, {"note", row.validation_note}};
      if (std::isfinite(row.deployed_start)) {
        m["validation"]["deployed"] = {{"start", row.deployed_start}, {"result", row.deployed_result}};
      }
    }
    j["methods"].push_back(m);
  }
  return j;
}

std::string Comparison::markdown(const std::vector<std::string>& plots) const {
  std::ostringstream md;
  md << "# Method comparison\n\n";
  md << "- model: `" << model << "`\n";
  md << "- calibration: " << calibration << "\n";
  if (!rows.empty()) md << "- formats: `" << to_string(rows.front().settings.quant) << "` (weights= per method)\n";
  md << "- total wall time: " << fmt(seconds, 1) << " s\n\n";
  // The table: one column per perplexity task, then the zero-shot mean.
  std::vector<std::string> ppl_tasks;
  bool any_zero_shot = false;
  for (const auto& r : fp) {
    if (is_perplexity_task(r)) {
      ppl_tasks.push_back(r.task);
    } else {
      any_zero_shot = true;
    }
  }
  const bool with_kl = !kl_text.empty();
  if (with_kl) md << "- KL to FP: " << kl_text << "\n\n";
  // Recovery (recovery.h): of the zero-shot mean accuracy when zero-shot tasks ran, else of the
  // first text's perplexity; the same figure as the studio's methods table.
  const std::string basis = headline_recovery_basis(fp);
  const bool with_recovery = !basis.empty();
  md << "| method |";
  for (const auto& t : ppl_tasks) md << " " << t << " ppl |";
  if (any_zero_shot) md << " zero-shot acc (mean ± se) |";
  if (with_recovery) {
    md << " recovery % of FP (" << basis << (any_zero_shot ? ", quantized / FP" : ", FP / quantized") << "; ± se) |";
  }
  if (with_kl) md << " KL to FP |";
  md << " learn s | quantize s | eval s |\n|---|";
  for (size_t i = 0; i < ppl_tasks.size() + (any_zero_shot ? 1 : 0) + (with_recovery ? 1 : 0) + (with_kl ? 1 : 0) + 3;
       ++i)
    md << "---|";
  md << "\n| FP |";
  for (const auto& t : ppl_tasks) md << " " << fmt(find_task(fp, t)->metrics.at("ppl"), 3) << " |";
  if (any_zero_shot) md << " " << mean_text(zero_shot_mean(fp)) << " |";
  if (with_recovery) md << " " << recovery_text(headline_recovery(fp, fp), false) << " |";
  if (with_kl) md << " 0 |";
  md << " | | |\n";
  for (const auto& row : rows) {
    md << "| " << row.method << " |";
    for (const auto& t : ppl_tasks) {
      const TaskResult* r = find_task(row.results, t);
      md << " " << (r ? fmt(r->metrics.at("ppl"), 3) : "n/a") << " |";
    }
    if (any_zero_shot) md << " " << mean_text(zero_shot_mean(row.results)) << " |";
    if (with_recovery) md << " " << recovery_text(headline_recovery(fp, row.results)) << " |";
    if (with_kl) md << " " << fmt(row.kl_to_fp, 4) << " |";
    md << " " << fmt(row.learn_seconds, 1) << " | " << fmt(row.quantize_seconds, 1) << " | "
       << fmt(row.eval_seconds, 1) << " |\n";
  }
  // Gap closed relative to RTN, per perplexity task.
  const MethodRow* rtn = nullptr;
  for (const auto& row : rows) {
    if (row.method == "rtn") rtn = &row;
  }
  if (rtn != nullptr && !ppl_tasks.empty()) {
    md << "\n## Share of the FP-to-RTN perplexity gap each method closes\n\n";
    method_table_head(md, ppl_tasks);
    for (const auto& row : rows) {
      md << "| " << row.method << " |";
      for (const auto& t : ppl_tasks) {
        const TaskResult* r = find_task(row.results, t);
        const TaskResult* b = find_task(rtn->results, t);
        const double closed =
            r && b ? gap_closed(find_task(fp, t)->metrics.at("ppl"), b->metrics.at("ppl"), r->metrics.at("ppl"))
                   : std::nan("");
        md << " " << fmt(closed, 1) << " % |";
      }
      md << "\n";
    }
  }
  if (any_zero_shot) {
    md << "\n## Zero-shot tasks (acc %, ± standard error)\n\n| task | FP |";
    for (const auto& row : rows) md << " " << row.method << " |";
    md << "\n|---|---|";
    for (size_t i = 0; i < rows.size(); ++i) md << "---|";
    md << "\n";
    for (const auto& r : fp) {
      if (is_perplexity_task(r)) continue;
      auto cell = [](const TaskResult* t) {
        if (!t || !t->metrics.count("acc")) return std::string("n/a");
        auto se = t->standard_errors.find("acc");
        return fmt(100 * t->metrics.at("acc"), 2) +
               (se != t->standard_errors.end() ? " ± " + fmt(100 * se->second, 2) : std::string());
      };
      md << "| " << r.task << " | " << cell(&r) << " |";
      for (const auto& row : rows) md << " " << cell(find_task(row.results, r.task)) << " |";
      md << "\n";
    }
  }
  if (!fp.empty() && !rows.empty()) {
    md << "\n## Recovery per task (% of FP: accuracy quantized / FP, perplexity FP / quantized; ± se)\n\n";
    std::vector<std::string> columns;
    for (const auto& r : fp) columns.push_back(r.task + (is_perplexity_task(r) ? " ppl" : " acc"));
    method_table_head(md, columns);
    for (const auto& row : rows) {
      md << "| " << row.method << " |";
      for (const auto& r : fp) {
        const TaskResult* q = find_task(row.results, r.task);
        const std::string metric = is_perplexity_task(r) ? "ppl" : "acc";
        md << " " << (q ? recovery_text(recovery(metric, r, *q)) : "n/a") << " |";
      }
      md << "\n";
    }
  }
  md << "\n## Per-layer activation SQNR (dB)\n\n| method |";
  size_t layers = 0;
  for (const auto& row : rows) layers = std::max(layers, row.layer_sqnr_db.size());
  for (size_t l = 0; l < layers; ++l) md << " L" << l << " |";
  md << "\n|---|";
  for (size_t l = 0; l < layers; ++l) md << "---|";
  md << "\n";
  for (const auto& row : rows) {
    md << "| " << row.method << " |";
    for (size_t l = 0; l < layers; ++l) {
      md << " " << (l < row.layer_sqnr_db.size() ? fmt(row.layer_sqnr_db[l], 2) : "") << " |";
    }
    md << "\n";
  }
  md << "\n## Learning\n\n| method | steps | first loss | final loss | condition numbers | settings |\n"
        "|---|---|---|---|---|---|\n";
  for (const auto& row : rows) {
    std::string cond;
    for (const auto& [name, value] : row.conditions) cond += (cond.empty() ? "" : "; ") + name + " " + fmt(value, 3);
    md << "| " << row.method << " | " << row.curve.size() << " | "
       << (row.curve.empty() ? "" : fmt(row.curve.front().loss, 5)) << " | "
       << (row.curve.empty() ? "" : fmt(row.curve.back().loss, 5)) << " | " << cond << " | `"
       << row.settings.to_json().dump() << "` |\n";
  }
  bool any_validation = false;
  for (const auto& row : rows) any_validation = any_validation || !row.validation_note.empty();
  if (any_validation) {
    md << "\n## Validation (held-out calibration sequences; the result is never worse than the start)\n\n";
    for (const auto& row : rows) {
      if (!row.validation_note.empty()) md << "- " << row.method << ": " << row.validation_note << "\n";
    }
  }
  md << "\n## Conventions\n\n";
  for (const auto& r : fp) md << "- " << r.task << ": " << r.convention << "\n";
  md << markdown_plot_links(plots);
  return md.str();
}

std::vector<std::string> write_comparison_report(const Comparison& c, const std::string& dir) {
  namespace fs = std::filesystem;
  create_report_folder(dir);
  std::vector<std::string> written, plots;
  auto png = [&](const std::string& name, const Image& image) {
    const std::string path = (fs::path(dir) / name).string();
    write_png(path, image);
    plots.push_back(path);
  };
  LinePlot loss{"Learning curves", "step", "loss", true, {}, 900, 520};
  for (const auto& row : c.rows) {
    if (row.curve.empty()) continue;
    Series s;
    s.name = row.method;
    for (const auto& e : row.curve) {
      s.x.push_back(static_cast<double>(e.step));
      s.y.push_back(e.loss);
    }
    loss.series.push_back(std::move(s));
  }
  if (!loss.series.empty()) png("loss.png", render(loss));
  BarChart ppl{"Perplexity (lower is better)", "perplexity", {}, {}, true, true, 900, 520};
  std::vector<std::string> ppl_tasks, zs_tasks;
  for (const auto& r : c.fp) (is_perplexity_task(r) ? ppl_tasks : zs_tasks).push_back(r.task);
  ppl.series_names = ppl_tasks;
  auto ppl_group = [&](const std::string& label, const std::vector<TaskResult>& results) {
    BarGroup g{label, {}, {}};
    for (const auto& t : ppl_tasks) {
      const TaskResult* r = find_task(results, t);
      g.values.push_back(r ? r->metrics.at("ppl") : std::nan(""));
    }
    ppl.groups.push_back(std::move(g));
  };
  if (!ppl_tasks.empty()) {
    ppl_group("FP", c.fp);
    for (const auto& row : c.rows) ppl_group(row.method, row.results);
    png("perplexity.png", render(ppl));
  }
  if (!zs_tasks.empty()) {
    BarChart acc{"Zero-shot accuracy (± standard error)", "accuracy %", zs_tasks, {}, false, false, 1100, 520};
    auto acc_group = [&](const std::string& label, const std::vector<TaskResult>& results) {
      BarGroup g{label, {}, {}};
      for (const auto& t : zs_tasks) {
        const TaskResult* r = find_task(results, t);
        const bool ok = r && r->metrics.count("acc");
        g.values.push_back(ok ? 100 * r->metrics.at("acc") : std::nan(""));
        auto se = ok ? r->standard_errors.find("acc") : r->standard_errors.end();
        g.errors.push_back(ok && se != r->standard_errors.end() ? 100 * se->second : 0.0);
      }
      acc.groups.push_back(std::move(g));
    };
    acc_group("FP", c.fp);
    for (const auto& row : c.rows) acc_group(row.method, row.results);
    png("accuracy.png", render(acc));
  }
  if (!c.kl_text.empty()) {
    BarChart kl{"KL divergence from the FP model on held-out text (lower is better)", "KL (nats / token)", {}, {}, false,
                true, 900, 520};
    for (const auto& row : c.rows) kl.groups.push_back({row.method, {row.kl_to_fp}, {}});
    png("kl.png", render(kl));
  }
  LinePlot sqnr{"Activation SQNR per layer (higher is better)", "decoder layer", "SQNR dB", false, {}, 900, 520};
  for (const auto& row : c.rows) {
    if (row.layer_sqnr_db.empty()) continue;
    Series s;
    s.name = row.method;
    s.markers = true;
    for (size_t l = 0; l < row.layer_sqnr_db.size(); ++l) {
      s.x.push_back(static_cast<double>(l));
      s.y.push_back(row.layer_sqnr_db[l]);
    }
    sqnr.series.push_back(std::move(s));
  }
  if (!sqnr.series.empty()) png("sqnr.png", render(sqnr));
  const std::string md = (fs::path(dir) / "report.md").string();
  const std::string js = (fs::path(dir) / "report.json").string();
  write_file_atomic(md, c.markdown(plots));
  write_file_atomic(js, c.to_json().dump(2) + "\n");
  written.push_back(md);
  written.push_back(js);
  written.insert(written.end(), plots.begin(), plots.end());
  return written;
}

}  // namespace latmix
