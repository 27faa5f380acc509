// The evaluate and compare tasks (latmix/api/evaluate.h): requests <-> JSON, and the one place where
// an evaluation request becomes FP and quantized columns, and a comparison request a report.
#include "latmix/api/evaluate.h"

#include <algorithm>
#include <chrono>

#include "latmix/api/calibration.h"
#include "latmix/error.h"
#include "latmix/files.h"
#include "latmix/memory.h"
#include "latmix/quant.h"
#include "latmix/recovery.h"
#include "lists.h"
#include "request_json.h"
#include "result_json.h"

namespace latmix::api {

using json = nlohmann::json;

namespace {

// In the order of `latmix eval --help`.
const detail::FieldTable<EvaluateRequest>& evaluate_fields() {
  using R = EvaluateRequest;
  using detail::as_bool;
  using detail::as_integer;
  using detail::as_string;
  using detail::optional;
  using detail::required;
  auto as_strings = [](const json& v) {
    if (!v.is_array()) throw detail::WrongType{"an array of strings"};
    std::vector<std::string> out;
    for (const auto& e : v) {
      if (!e.is_string()) throw detail::WrongType{"an array of strings"};
      out.push_back(e.get<std::string>());
    }
    return out;
  };
  static const detail::FieldTable<R> table = {
      {"model", required(&R::model, as_string)},
      {"tokenizer", required(&R::tokenizer, as_string)},
      {"tasks", required(&R::tasks, as_string)},
      {"limit", required(&R::limit, as_integer)},
      {"seqlen", required(&R::seqlen, as_integer)},
      {"ppl_bos", required(&R::ppl_bos, as_bool)},
      {"bos", required(&R::bos, as_string)},
      {"batch", required(&R::batch, as_integer)},
      {"prefix_cache", required(&R::prefix_cache, as_bool)},
      {"data_dir", required(&R::data_dir, as_string)},
      {"out", required(&R::out, as_string)},
      {"quant", required(&R::quant, as_strings)},
      {"calib", required(&R::calib, as_string)},
      {"calib_samples", optional(&R::calib_samples, as_integer)},
      {"calib_seqlen", optional(&R::calib_seqlen, as_integer)},
      {"dtype", required(&R::dtype, as_string)},
      {"weights", required(&R::weights, as_string)},
      {"device", required(&R::device, as_string)},
  };
  return table;
}

const detail::FieldTable<CompareRequest>& compare_fields() {
  using R = CompareRequest;
  using detail::as_integer;
  using detail::as_string;
  using detail::required;
  static const detail::FieldTable<R> table = {
      {"methods", required(&R::methods, as_string)},
      {"tasks", required(&R::tasks, as_string)},
      {"limit", required(&R::limit, as_integer)},
      {"eval_seqlen", required(&R::eval_seqlen, as_integer)},
      {"out", required(&R::out, as_string)},
      {"learning",
       {[](const R& r) { return to_json(r.learning); },
        [](R& r, const json& v) {
          if (!v.is_object()) throw detail::WrongType{"an object (a learn request)"};
          r.learning = learn_request_from_json(v);
        },
        false}},
  };
  return table;
}

std::optional<bool> parse_bos(const std::string& value) {
  if (value == "auto") return std::nullopt;
  if (value == "yes") return true;
  if (value == "no") return false;
  throw UsageError("--bos: expected auto, yes or no, found '" + value + "'");
}

bool needs_gptq_text(const EvaluateRequest& r) {
  if (!r.calib.empty()) return true;
  return std::any_of(r.quant.begin(), r.quant.end(),
                     [](const std::string& s) { return parse_quant_spec(s).method == WeightMethod::Gptq; });
}

/// Per task and metric, the recovery.h figures `latmix eval`'s table prints, and the headline one.
json recovery_tables(const std::vector<TaskResult>& fp, const std::vector<TaskResult>& quantized) {
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

json results_json(const std::vector<TaskResult>& results) {
  json out = json::array();
  for (const TaskResult& r : results) out.push_back(to_json(r));
  return out;
}

// std::nullopt when `model` is held in memory, else its in-memory copy (refused first when it cannot fit).
std::optional<Model> held_copy(const Model& model, const std::string& job, const std::string& why) {
  if (!model.mapped()) return std::nullopt;
  check_memory_fits(job, model_weight_bytes(model.config(), model.dtype()), model.device(), why);
  return model.to(model.device(), model.dtype());
}

}  // namespace

// ---- evaluate ------------------------------------------------------------------------------------------

json to_json(const EvaluateRequest& request) { return detail::write_request(evaluate_fields(), request); }

EvaluateRequest evaluate_request_from_json(const json& j) {
  return detail::read_request("evaluate request", evaluate_fields(), j);
}

EvalOptions check_evaluate_request(const EvaluateRequest& r) {
  parse_task_list(r.tasks);
  EvalOptions o;
  o.data_dir = r.data_dir.empty() ? default_eval_data_dir() : r.data_dir;
  o.limit = r.limit;
  o.seqlen = r.seqlen;
  o.batch_size = r.batch;
  o.bos = parse_bos(r.bos);
  o.ppl_bos = r.ppl_bos;
  o.prefix_cache = r.prefix_cache;
  if (o.limit < 0) throw UsageError("--limit: expected 0 (all) or more");
  if (o.batch_size < 1) throw UsageError("--batch: expected 1 or more");
  if (o.seqlen < 2) throw UsageError("--seqlen: expected 2 or more");
  for (const auto& s : r.quant) parse_quant_spec(s);  // a bad spec fails before the model loads
  if (r.quant.empty() && (!r.calib.empty() || r.calib_samples || r.calib_seqlen)) {
    throw UsageError("--calib needs --quant");
  }
  if (r.calib_samples && *r.calib_samples < 1) throw UsageError("--calib-samples: expected 1 or more");
  if (r.calib_seqlen && *r.calib_seqlen < 2) throw UsageError("--calib-seqlen: expected 2 or more");
  return o;
}

json to_json(const EvaluateResult& result) {
  const EvaluateRequest& r = result.request;
  const EvalOptions& o = result.options;
  json settings = {{"model", r.model},
                   {"tokenizer", r.tokenizer},
                   {"tasks", result.tasks},
                   {"data_dir", o.data_dir},
                   {"limit", o.limit},
                   {"limit_rule", "first N items of each zero-shot file; at most N windows of each perplexity text"},
                   {"seqlen", o.seqlen},
                   {"ppl_bos", o.ppl_bos},
                   {"bos", r.bos},
                   {"batch", o.batch_size},
                   {"prefix_cache", o.prefix_cache},
                   {"dtype", r.dtype},
                   {"device", r.device},
                   {"quant", r.quant},
                   {"calib", r.calib},
                   {"calibration", result.calibration}};
  json out = {{"settings", settings}, {"results", results_json(result.fp)}};
  if (!result.quantized.empty()) {
    out["quantized"] = json::array();
    for (const EvaluatedSpec& q : result.quantized) {
      out["quantized"].push_back({{"spec", q.spec},
                                  {"describe", q.describe},
                                  {"seconds", q.quantize_seconds},
                                  {"results", results_json(q.results)},
                                  {"recovery", recovery_tables(result.fp, q.results)}});
    }
  }
  return out;
}

EvaluateResult evaluate_result_from_json(const json& j) {
  const std::string what = "evaluate result";
  const detail::ResultReader r(what, "", j, {"settings", "results", "quantized"});
  EvaluateResult out;
  EvaluateRequest& q = out.request;
  EvalOptions& o = out.options;
  const detail::ResultReader s =
      r.object("settings", {"model", "tokenizer", "tasks", "data_dir", "limit", "limit_rule", "seqlen", "ppl_bos",
                            "bos", "batch", "prefix_cache", "dtype", "device", "quant", "calib", "calibration"});
  s.get("model", q.model, detail::as_string);
  s.get("tokenizer", q.tokenizer, detail::as_string);
  s.get("tasks", out.tasks, detail::as_strings);
  for (const std::string& t : out.tasks) q.tasks += (q.tasks.empty() ? "" : ",") + t;
  s.get("data_dir", o.data_dir, detail::as_string);
  q.data_dir = o.data_dir;
  s.get("limit", o.limit, detail::as_integer);
  q.limit = o.limit;
  std::string limit_rule;  // a constant sentence of to_json(): checked, not kept
  s.get("limit_rule", limit_rule, detail::as_string);
  s.get("seqlen", o.seqlen, detail::as_integer);
  q.seqlen = o.seqlen;
  s.get("ppl_bos", o.ppl_bos, detail::as_bool);
  q.ppl_bos = o.ppl_bos;
  s.get("bos", q.bos, detail::as_string);
  try {
    o.bos = parse_bos(q.bos);
  } catch (const UsageError& e) {
    throw UsageError(what + ": key 'settings.bos': " + e.what());
  }
  s.get("batch", o.batch_size, detail::as_integer);
  q.batch = o.batch_size;
  s.get("prefix_cache", o.prefix_cache, detail::as_bool);
  q.prefix_cache = o.prefix_cache;
  s.get("dtype", q.dtype, detail::as_string);
  s.get("device", q.device, detail::as_string);
  s.get("quant", q.quant, detail::as_strings);
  s.get("calib", q.calib, detail::as_string);
  s.get("calibration", out.calibration, detail::as_string);
  out.fp = detail::read_task_results(r, "results");
  r.list("quantized", out.quantized, [&what](const std::string& path, const json& v) {
    const detail::ResultReader c(what, path, v, {"spec", "describe", "seconds", "results", "recovery"});
    EvaluatedSpec spec;
    c.get("spec", spec.spec, detail::as_string);
    c.get("describe", spec.describe, detail::as_string);
    c.get("seconds", spec.quantize_seconds, detail::as_number);
    spec.results = detail::read_task_results(c, "results");
    c.derived_object("recovery");  // recomputed from the results by to_json()
    return spec;
  });
  return out;
}

EvaluateResult run_evaluate(const EvaluateRequest& request, const Model& model, const Tokenizer& tokenizer,
                            const EvaluateControl& control) {
  EvaluateResult out;
  out.request = request;
  out.options = check_evaluate_request(request);
  out.tasks = parse_task_list(request.tasks);
  const JobControl& job = control.job;
  // Each spec's column holds a quantized copy of the weights in the compute dtype: refused before
  // the FP column runs.
  if (!request.quant.empty()) {
    check_memory_fits("Quantized evaluation", model_weight_bytes(model.config(), model.dtype()), model.device(),
                      "each quantization spec's column holds a copy of the model's weights; a machine with more "
                      "memory, or the bf16 compute dtype, can run it");
  }
  out.fp = run_tasks(model, tokenizer, out.tasks, out.options, job);
  std::optional<CalibrationSet> calib;
  if (needs_gptq_text(request)) {
    GptqCalibration c = gptq_calibration(request.calib, request.calib_samples, request.calib_seqlen, model, tokenizer,
                                         control.bundled_sample);
    out.calibration = c.note;
    if (control.on_note) control.on_note(c.note);
    calib = std::move(c.set);
  }
  for (const std::string& spec : request.quant) {
    job.cancel.check();
    QuantizedModel q = quantize_model(model, parse_quant_spec(spec), calib ? &*calib : nullptr, job);
    EvaluatedSpec column;
    column.spec = spec;
    column.describe = q.report.spec;
    column.quantize_seconds = q.report.seconds;
    column.results = run_tasks(q.model, tokenizer, out.tasks, out.options, job);
    out.quantized.push_back(std::move(column));
  }
  if (!request.out.empty()) write_file_atomic(request.out, to_json(out).dump(2) + "\n");
  return out;
}

// ---- compare -------------------------------------------------------------------------------------------

json to_json(const CompareRequest& request) { return detail::write_request(compare_fields(), request); }

CompareRequest compare_request_from_json(const json& j) {
  return detail::read_request("compare request", compare_fields(), j);
}

std::vector<std::string> compare_command_line(const CompareRequest& r) {
  const LearnRequest& l = r.learning;
  std::vector<std::string> a = {"latmix", "compare", "--model", l.model};
  if (!l.tokenizer.empty()) a.insert(a.end(), {"--tokenizer", l.tokenizer});
  a.insert(a.end(), {"--methods", r.methods, "--tasks", r.tasks, "--limit", std::to_string(r.limit), "--eval-seqlen",
                     std::to_string(r.eval_seqlen)});
  for (auto& s : learn_option_arguments(l)) a.push_back(std::move(s));
  if (l.dtype != "fp32") a.insert(a.end(), {"--dtype", l.dtype});
  a.insert(a.end(), {"--device", l.device, "--out", r.out.empty() ? std::string("DIR") : r.out});
  return a;
}

std::vector<std::string> check_compare_request(const CompareRequest& r) {
  std::vector<std::string> methods;
  for (const std::string& name : detail::comma_list(r.methods)) {
    const std::string canonical = find_method(name).name;
    if (std::find(methods.begin(), methods.end(), canonical) == methods.end()) methods.push_back(canonical);
  }
  if (methods.empty()) throw UsageError("--methods: expected one or more of rtn, gptq, quarot, mr-gptq, spinquant, "
                                        "flatquant, latmix");
  parse_task_list(r.tasks);
  if (r.limit < 0) throw UsageError("--limit: expected 0 (all) or more");
  if (r.eval_seqlen < 2) throw UsageError("--eval-seqlen: expected 2 or more");
  const at::Device device = parse_device(r.learning.device);
  for (const auto& method : methods) {
    LearnRequest one = r.learning;
    one.method = method;
    learn_settings(one, device);  // bad settings fail before the model loads
  }
  return methods;
}

json to_json(const CompareResult& result) {
  json out = result.comparison.to_json();
  out["files"] = result.files;
  return out;
}

namespace {

// ---- the comparison's JSON read back (Comparison::to_json()) ------------------------------------------

MethodRow read_method_row(const std::string& what, const std::string& path, const json& j) {
  const detail::ResultReader r(
      what, path, j,
      {"method", "settings", "learn_seconds", "quantize_seconds", "eval_seconds", "kl_to_fp", "layer_sqnr_db",
       "results", "recovery", "curve", "condition_numbers", "conditions", "validation"});
  MethodRow row;
  r.get("method", row.method, detail::as_string);
  if (r.has("settings")) row.settings = detail::read_learn_settings(what, r.name("settings"), r.raw("settings"));
  r.get("learn_seconds", row.learn_seconds, detail::as_number);
  r.get("quantize_seconds", row.quantize_seconds, detail::as_number);
  r.get("eval_seconds", row.eval_seconds, detail::as_number);
  r.get("kl_to_fp", row.kl_to_fp, detail::number_or(detail::kNaN));
  r.get("layer_sqnr_db", row.layer_sqnr_db, [](const json& v) { return detail::as_numbers_or(v, detail::kInf); });
  row.results = detail::read_task_results(r, "results");
  r.derived_object("recovery");  // recomputed from the results by to_json()
  r.list("curve", row.curve,
         [&what](const std::string& at, const json& v) { return detail::read_learn_event(what, at, v); });
  r.derived_object("condition_numbers");  // "conditions" by name
  row.conditions = detail::read_conditions(r, "conditions");
  if (r.has("validation")) {
    const detail::ResultReader v = r.object("validation", {"curve", "best_step", "note", "deployed"});
    row.validation_curve = detail::read_validation_curve(v, "curve");
    v.get("best_step", row.best_step, detail::as_integer);
    v.get("note", row.validation_note, detail::as_string);
    if (v.has("deployed")) {
      const detail::ResultReader d = v.object("deployed", {"start", "result"});
      d.get("start", row.deployed_start, detail::number_or(detail::kNaN));
      d.get("result", row.deployed_result, detail::number_or(detail::kNaN));
    }
  }
  return row;
}

}  // namespace

CompareResult compare_result_from_json(const json& j) {
  const std::string what = "compare result";
  const detail::ResultReader r(what, "", j,
                               {"model", "calibration", "tasks", "seconds", "kl_text", "fp", "methods", "files"});
  CompareResult out;
  Comparison& c = out.comparison;
  r.get("model", c.model, detail::as_string);
  r.get("calibration", c.calibration, detail::as_string);
  r.get("tasks", c.tasks, detail::as_strings);
  r.get("seconds", c.seconds, detail::as_number);
  r.get("kl_text", c.kl_text, detail::as_string);
  c.fp = detail::read_task_results(r, "fp");
  r.list("methods", c.rows, [&what](const std::string& at, const json& v) { return read_method_row(what, at, v); });
  r.get("files", out.files, detail::as_strings);
  return out;
}

std::shared_ptr<Model> held_model(const std::shared_ptr<Model>& model, const std::string& job, const std::string& why) {
  std::optional<Model> copy = held_copy(*model, job, why);
  return copy ? std::make_shared<Model>(std::move(*copy)) : model;
}

CompareResult run_compare(const CompareRequest& request, const Model& model, const Tokenizer& tokenizer,
                          const LearnControl& control) {
  const std::vector<std::string> methods = check_compare_request(request);
  CompareOptions o;
  o.methods = methods;
  o.tasks = parse_task_list(request.tasks);
  o.eval.data_dir = request.learning.data_dir.empty() ? default_eval_data_dir() : request.learning.data_dir;
  o.eval.limit = request.limit;
  o.eval.seqlen = request.eval_seqlen;
  // Learning and quantizing every method needs every weight converted: a mapped model is copied.
  const std::optional<Model> copy =
      held_copy(model, "Comparing methods", "comparing methods holds the model in memory; a machine with more memory, or a "
                                  "GPU server, can run it");
  const Model& held = copy ? *copy : model;
  const at::Device device = held.device();
  const CalibrationSet calib = learn_calibration(request.learning, held, tokenizer);
  if (control.on_note) control.on_note("calibration: " + calib.describe());
  o.settings_for = [&](const std::string& method) {
    LearnRequest one = request.learning;
    one.method = method;
    return learn_settings(one, device, &calib);
  };
  CompareResult out;
  out.comparison = run_comparison(held, tokenizer, calib, o, control);
  out.comparison.model = request.learning.model;
  if (!request.out.empty()) out.files = write_comparison_report(out.comparison, request.out);
  return out;
}

}  // namespace latmix::api
