// latmix eval
#include <algorithm>
#include <cmath>
#include <cstdio>
#include <filesystem>
#include <iostream>
#include <nlohmann/json.hpp>

#include "commands.h"
#include "commands_evaluate.h"
#include "console.h"
#include "remote.h"
#include "latmix/api/evaluate.h"
#include "latmix/calib_data.h"
#include "latmix/error.h"
#include "latmix/files.h"
#include "latmix/quant.h"
#include "latmix/recovery.h"
#include "latmix/tasks.h"
#include "result_text.h"

namespace latmix::cli {

using json = nlohmann::json;

namespace {

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
void append_table(std::string& out, const std::vector<TaskResult>& fp, const std::vector<TaskResult>* quantized) {
  int w = 14;
  for (const TaskResult& r : fp) w = std::max(w, static_cast<int>(r.task.size()));
  if (quantized)
    appendf(out, "%-*s %-9s %-16s %-16s %-14s %7s\n", w, "task", "metric", "FP", "quantized", "recovery", "items");
  else
    appendf(out, "%-*s %-9s %-18s %7s %10s\n", w, "task", "metric", "value", "items", "time");
  for (size_t i = 0; i < fp.size(); ++i) {
    for (const auto& [metric, v] : fp[i].metrics) {
      const char* task = fp[i].task.c_str();
      if (!quantized) {
        appendf(out, "%-*s %-9s %-18s %7lld %10s\n", w, task, metric.c_str(), value_text(fp[i], metric).c_str(),
                static_cast<long long>(fp[i].items), format_duration(fp[i].seconds).c_str());
        continue;
      }
      const TaskResult& q = (*quantized)[i];
      // recovery.h: accuracy quantized / FP, perplexity and NLL FP / quantized; ± its standard error.
      const Estimate rec = recovery(metric, fp[i], q);
      appendf(out, "%-*s %-9s %-16s %-16s %-14s %7lld\n", w, task, metric.c_str(), value_text(fp[i], metric).c_str(),
              value_text(q, metric).c_str(), recovery_text(rec).c_str(), static_cast<long long>(fp[i].items));
    }
  }
  appendf(out, "\nconventions:\n");
  for (const TaskResult& r : fp) appendf(out, "  %-*s %s\n", w, r.task.c_str(), r.convention.c_str());
}

int run_eval(const Args& args) {
  const api::EvaluateRequest request = evaluate_request_from_args(args);
  api::check_evaluate_request(request);  // bad options fail before the model loads
  const bool quiet = args.flag("quiet");
  ProgressPrinter progress(quiet);
  const auto note = [](const std::string& line) { std::fprintf(stderr, "%s\n", line.c_str()); };
  api::EvaluateResult result;
  if (remote_engine()) {
    result = api::evaluate_result_from_json(run_remote("evaluate", api::to_json(request), {progress.callback(), note}));
  } else {
    LoadedModel m = load_model_from_args(args, parse_compute_dtype(request.dtype), mapped_weights(args));
    api::EvaluateControl control;
    control.job.cancel = interrupt_token();
    control.job.progress = progress.callback();
    control.bundled_sample = bundled_sample();
    control.on_note = note;
    result = api::run_evaluate(request, m.model, *m.tokenizer, control);
  }
  progress.finish();
  if (args.flag("json"))
    std::cout << api::to_json(result).dump(2) << "\n";
  else
    std::printf("%s", format_eval_text(result).c_str());
  return 0;
}

}  // namespace

std::string format_eval_text(const api::EvaluateResult& result) {
  std::string out;
  append_table(out, result.fp, result.quantized.empty() ? nullptr : &result.quantized.front().results);
  return out;
}

api::EvaluateRequest evaluate_request_from_args(const Args& args) {
  api::EvaluateRequest r;
  r.model = args.get("model");
  r.tokenizer = args.get("tokenizer");
  r.device = args.get("device");
  r.dtype = args.get("dtype");
  r.weights = args.get("weights");
  r.tasks = args.get("tasks");
  r.data_dir = args.get("data-dir");
  r.limit = args.integer("limit");
  r.seqlen = args.integer("seqlen");
  r.ppl_bos = args.flag("ppl-bos");
  r.bos = args.get("bos");
  r.batch = args.integer("batch");
  r.prefix_cache = args.flag("prefix-cache");
  if (args.has("quant")) r.quant = {args.get("quant")};
  r.calib = args.get("calib");
  if (args.has("calib-samples")) r.calib_samples = args.integer("calib-samples");
  if (args.has("calib-seqlen")) r.calib_seqlen = args.integer("calib-seqlen");
  r.out = args.get("out");
  return r;
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
