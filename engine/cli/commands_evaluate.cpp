// latmix eval
#include <algorithm>
#include <cmath>
#include <cstdio>
#include <filesystem>
#include <iostream>
#include <nlohmann/json.hpp>

#include "commands.h"
#include "latmix/api/export.h"
#include "console.h"
#include "latmix/calib_data.h"
#include "latmix/error.h"
#include "latmix/files.h"
#include "latmix/quant.h"
#include "latmix/recovery.h"
#include "latmix/tasks.h"

namespace latmix::cli {

using json = nlohmann::json;

namespace {

std::optional<bool> parse_bos(const std::string& value) {
  if (value == "auto") return std::nullopt;
  if (value == "yes") return true;
  if (value == "no") return false;
  throw UsageError("--bos: expected auto, yes or no, found '" + value + "'");
}

EvalOptions eval_options(const Args& args) {
  EvalOptions o;
  o.data_dir = args.has("data-dir") ? args.get("data-dir") : default_eval_data_dir();
  o.limit = args.integer("limit");
  o.seqlen = args.integer("seqlen");
  o.batch_size = args.integer("batch");
  o.bos = parse_bos(args.get("bos"));
  o.ppl_bos = args.flag("ppl-bos");
  o.prefix_cache = args.flag("prefix-cache");
  if (o.limit < 0) throw UsageError("--limit: expected 0 (all) or more");
  if (o.batch_size < 1) throw UsageError("--batch: expected 1 or more");
  if (o.seqlen < 2) throw UsageError("--seqlen: expected 2 or more");
  return o;
}

json result_json(const TaskResult& r) {
  return {{"task", r.task},   {"metrics", r.metrics},       {"stderr", r.standard_errors},
          {"items", r.items}, {"convention", r.convention}, {"seconds", r.seconds}};
}

/// Per task and metric, the recovery.h figures `latmix eval`'s table prints, and the headline one.
json recovery_json(const std::vector<TaskResult>& fp, const std::vector<TaskResult>& quantized) {
  json tasks = json::array();
  for (size_t i = 0; i < fp.size() && i < quantized.size(); ++i) {
    json metrics = json::object();
    for (const auto& [metric, v] : fp[i].metrics) metrics[metric] = recovery_json(recovery(metric, fp[i], quantized[i]));
    tasks.push_back({{"task", fp[i].task}, {"metrics", metrics}});
  }
  json headline = recovery_json(headline_recovery(fp, quantized));
  headline["basis"] = headline_recovery_basis(fp);
  return {{"tasks", tasks}, {"headline", headline}};
}

json settings_json(const Args& args, const EvalOptions& o, const std::vector<std::string>& tasks) {
  return {{"model", args.get("model")},
          {"tokenizer", args.get("tokenizer")},
          {"tasks", tasks},
          {"data_dir", o.data_dir},
          {"limit", o.limit},
          {"limit_rule", "first N items of each zero-shot file; at most N windows of each perplexity text"},
          {"seqlen", o.seqlen},
          {"ppl_bos", o.ppl_bos},
          {"bos", args.get("bos")},
          {"batch", o.batch_size},
          {"prefix_cache", o.prefix_cache},
          {"dtype", args.get("dtype")},
          {"device", args.get("device")},
          {"quant", args.get("quant")},
          {"calib", args.get("calib")}};
}

std::string value_text(const TaskResult& r, const std::string& metric) {
  char buf[96];
  const double v = r.metrics.at(metric);
  const bool pct = metric.rfind("acc", 0) == 0;
  auto se = r.standard_errors.find(metric);
  if (pct && se != r.standard_errors.end())
    std::snprintf(buf, sizeof(buf), "%6.2f ± %.2f", 100 * v, 100 * se->second);
  else if (pct)
    std::snprintf(buf, sizeof(buf), "%6.2f", 100 * v);
  else
    std::snprintf(buf, sizeof(buf), "%.4f", v);
  return buf;
}

/// "95.1% ± 3.2" (the ± where the recovery has a standard error), "n/a" where it is undefined.
std::string recovery_text(const Estimate& rec) {
  if (std::isnan(rec.value)) return "n/a";
  char buf[64];
  if (std::isfinite(rec.se))
    std::snprintf(buf, sizeof(buf), "%5.1f%% ± %.1f", rec.value, rec.se);
  else
    std::snprintf(buf, sizeof(buf), "%5.1f%%", rec.value);
  return buf;
}

/// One line per (task, metric); with `quantized`, FP / quantized / recovery columns.
void print_table(const std::vector<TaskResult>& fp, const std::vector<TaskResult>* quantized) {
  int w = 14;
  for (const TaskResult& r : fp) w = std::max(w, static_cast<int>(r.task.size()));
  if (quantized)
    std::printf("%-*s %-9s %-16s %-16s %-14s %7s\n", w, "task", "metric", "FP", "quantized", "recovery", "items");
  else
    std::printf("%-*s %-9s %-18s %7s %10s\n", w, "task", "metric", "value", "items", "time");
  for (size_t i = 0; i < fp.size(); ++i) {
    for (const auto& [metric, v] : fp[i].metrics) {
      const char* task = fp[i].task.c_str();
      if (!quantized) {
        std::printf("%-*s %-9s %-18s %7lld %10s\n", w, task, metric.c_str(), value_text(fp[i], metric).c_str(),
                    static_cast<long long>(fp[i].items), format_duration(fp[i].seconds).c_str());
        continue;
      }
      const TaskResult& q = (*quantized)[i];
      // recovery.h: accuracy quantized / FP, perplexity and NLL FP / quantized; ± its standard error.
      const Estimate rec = recovery(metric, fp[i], q);
      std::printf("%-*s %-9s %-16s %-16s %-14s %7lld\n", w, task, metric.c_str(), value_text(fp[i], metric).c_str(),
                  value_text(q, metric).c_str(), recovery_text(rec).c_str(), static_cast<long long>(fp[i].items));
    }
  }
  std::printf("\nconventions:\n");
  for (const TaskResult& r : fp) std::printf("  %-*s %s\n", w, r.task.c_str(), r.convention.c_str());
}


std::vector<TaskResult> run_quantized(const Args& args, const LoadedModel& m, const std::vector<std::string>& tasks,
                                      const EvalOptions& o, const JobControl& job, json& info) {
  const QuantSpec spec = parse_quant_spec(args.get("quant"));
  std::optional<CalibrationSet> calib;
  if (args.has("calib") || spec.method == WeightMethod::Gptq)
    calib = calibration_from_args(args, m.model, *m.tokenizer);
  QuantizedModel q = quantize_model(m.model, spec, calib ? &*calib : nullptr, job);
  info = {{"spec", q.report.spec}, {"seconds", q.report.seconds}};
  return run_tasks(q.model, *m.tokenizer, tasks, o, job);
}

// -----------------------------------------------------------------------------------------------

int run_eval(const Args& args) {
  const std::vector<std::string> tasks = parse_task_list(args.get("tasks"));
  const EvalOptions o = eval_options(args);
  if (args.has("quant")) parse_quant_spec(args.get("quant"));  // a bad spec fails before the model loads
  if (args.has("calib") && !args.has("quant")) throw UsageError("--calib needs --quant");
  LoadedModel m = load_model_from_args(args, parse_compute_dtype(args.get("dtype")), mapped_weights(args));
  ProgressPrinter progress(args.flag("quiet"));
  JobControl job;
  job.cancel = interrupt_token();
  job.progress = progress.callback();
  const std::vector<TaskResult> fp = run_tasks(m.model, *m.tokenizer, tasks, o, job);
  std::vector<TaskResult> quantized;
  json quant_info;
  if (args.has("quant")) quantized = run_quantized(args, m, tasks, o, job, quant_info);
  progress.finish();
  json out = {{"settings", settings_json(args, o, tasks)}, {"results", json::array()}};
  for (const TaskResult& r : fp) out["results"].push_back(result_json(r));
  if (args.has("quant")) {
    out["quantization"] = quant_info;
    out["quantized_results"] = json::array();
    for (const TaskResult& r : quantized) out["quantized_results"].push_back(result_json(r));
    out["recovery"] = recovery_json(fp, quantized);
  }
  if (args.has("out")) write_file_atomic(args.get("out"), out.dump(2) + "\n");
  if (args.flag("json"))
    std::cout << out.dump(2) << "\n";
  else
    print_table(fp, args.has("quant") ? &quantized : nullptr);
  return 0;
}

}  // namespace

CalibrationSet calibration_from_args(const Args& args, const Model& model, const Tokenizer& tok, std::string* file) {
  const std::string res = bundled_resources_dir();
  auto count = [&args](const char* name) {
    return args.has(name) ? std::optional<int64_t>(args.integer(name)) : std::nullopt;
  };
  api::GptqCalibration c =
      api::gptq_calibration(args.get("calib"), count("calib-samples"), count("calib-seqlen"), model, tok,
                            res.empty() ? std::string() : res + "/calibration/pride_and_prejudice_ch1-6.txt");
  if (file) *file = c.file;
  std::fprintf(stderr, "%s\n", c.note.c_str());
  return std::move(c.set);
}

std::vector<OptionSpec> calibration_options() {
  return {{"calib", "FILE", "calibration text (GPTQ; default: the bundled sample)", "", false},
          {"calib-samples", "N", "calibration sequences (default: 128 on CUDA, 16 on the CPU)", "", false},
          {"calib-seqlen", "N",
           "calibration sequence length (default: 2048 on CUDA, 256 on the CPU; at most the context)", "", false}};
}

std::vector<Command> evaluate_commands() {
  Command eval{
      {"eval",
       "Perplexity and zero-shot accuracy on named tasks.",
       "Tasks: wikitext2, ptb, frankenstein, alice (perplexity of the text file as it is, windows of --seqlen,\n"
       "tail dropped, no BOS unless --ppl-bos), text:PATH (any text file, same protocol), and the lm-eval\n"
       "zero-shot tasks arc_easy, arc_challenge, boolq, hellaswag, openbookqa, piqa, winogrande, lambada, copa\n"
       "(acc, acc_norm where lm-eval reports it, stderr sqrt(p(1-p)/(n-1))); 'all' is every named task.\n"
       "--limit N takes the first N items of each zero-shot file (file order) and at most N perplexity windows.\n"
       "Data: --data-dir, else $LATMIX_DATA_DIR, else ../shared/data. See docs/evaluation.md.",
       {model_option(),
        tokenizer_option(),
        {"tasks", "LIST", "comma-separated task names, or all", "", true},
        {"limit", "N", "first N items per zero-shot task / N windows per text (0: all)", "0", false},
        {"seqlen", "N", "perplexity window in tokens", "512", false},
        {"ppl-bos", "", "perplexity: start every window with BOS", "", false},
        {"bos", "auto|yes|no", "zero-shot: BOS before each context (auto: the tokenizer's default)", "auto", false},
        {"batch", "N", "zero-shot rows per forward pass", "16", false},
        {"prefix-cache", "", "zero-shot: run each context once with a KV cache", "", false},
        {"data-dir", "DIR", "shared data folder (holding eval/ and corpus/)", "", false},
        {"out", "FILE", "also write the JSON results (settings included) to FILE", "", false},
        {"quant", "SPEC", "also evaluate the model quantized by SPEC (latmix/quant.h grammar)", "", false},
        dtype_option(),
        weights_option()}},
      run_eval};
  for (auto& o : calibration_options()) eval.spec.options.insert(eval.spec.options.end() - 2, o);
  return {eval};
}

}  // namespace latmix::cli
