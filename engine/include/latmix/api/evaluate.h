#pragma once
/// \file api/evaluate.h
/// Room: engine/api, the use-case layer (issue 16). The two evaluation tasks:
///  - evaluate: the model in full precision and, beside it, under quantization specs (`latmix eval
///    [--quant SPEC]`, the studio's "Quantization specs" page): the tasks, the GPTQ calibration and
///    its one default (api/calibration.h), the recovery of each spec (recovery.h);
///  - compare: several methods on the same calibration, format and evaluation (`latmix compare`,
///    the studio's "Methods" page): learning options as api/learn.h's request, the report.
/// Each client only converts between its own form and these requests and results.

#include <nlohmann/json.hpp>

#include <cstdint>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "latmix/api/learn.h"
#include "latmix/compare.h"
#include "latmix/model.h"
#include "latmix/progress.h"
#include "latmix/tasks.h"
#include "latmix/tokenizer.h"

namespace latmix::api {

// ---- evaluate ------------------------------------------------------------------------------------------

/// What to evaluate: the values of `latmix eval`'s options, by the same names (snake_case here and
/// in JSON, --kebab-case on the command line).
struct EvaluateRequest {
  std::string model;             ///< --model (the client opens it; run_evaluate() takes it open)
  std::string tokenizer;         ///< --tokenizer ("": the model's own)
  std::string device = "cpu";    ///< --device
  std::string dtype = "fp32";    ///< --dtype: compute dtype
  std::string weights = "auto";  ///< --weights: auto | mapped | memory (how the CLI loads the model)
  std::string tasks;             ///< --tasks: comma-separated names, or all
  std::string data_dir;          ///< --data-dir ("": default_eval_data_dir())
  int64_t limit = 0;             ///< --limit: first N items per zero-shot task / N windows per text (0: all)
  int64_t seqlen = 512;          ///< --seqlen: perplexity window
  bool ppl_bos = false;          ///< --ppl-bos
  std::string bos = "auto";      ///< --bos: auto | yes | no (zero-shot)
  int64_t batch = 16;            ///< --batch: zero-shot rows per forward pass
  bool prefix_cache = false;     ///< --prefix-cache
  /// --quant SPEC: each a column beside FP (the CLI takes one, the studio several), in this order.
  std::vector<std::string> quant;
  std::string calib;                     ///< --calib FILE: the GPTQ text ("": the bundled sample)
  std::optional<int64_t> calib_samples;  ///< --calib-samples (unset: gptq_calibration_defaults())
  std::optional<int64_t> calib_seqlen;   ///< --calib-seqlen (unset: gptq_calibration_defaults())
  std::string out;                       ///< --out FILE: also write the result's JSON there ("": no)
};

/// Every field (calib_samples / calib_seqlen null when unset).
nlohmann::json to_json(const EvaluateRequest& request);
/// The inverse of to_json(). Strict: an unknown key or a value of the wrong type is a
/// latmix::UsageError naming the key ("evaluate request: key 'limit': ..."); a key left out keeps
/// the default. Values are checked by check_evaluate_request().
EvaluateRequest evaluate_request_from_json(const nlohmann::json& json);

/// The checks that need no model (the CLI's messages, naming the option): the task names, the
/// sizes, --bos, every spec's grammar, --calib-... without a spec. Returns the evaluation options
/// (data_dir resolved). run_evaluate() runs them first; a client calls them before opening the model.
/// \throws latmix::UsageError.
EvalOptions check_evaluate_request(const EvaluateRequest& request);

/// One quantization spec's column.
struct EvaluatedSpec {
  std::string spec;              ///< as given
  std::string describe;          ///< QuantizedModel's report spec (the parsed spec's full text)
  double quantize_seconds = 0;   ///< quantizing the weights (GPTQ included)
  std::vector<TaskResult> results;  ///< in the request's task order
};

/// What run_evaluate() measured.
struct EvaluateResult {
  EvaluateRequest request;
  std::vector<std::string> tasks;    ///< the request's tasks expanded ("all") and checked
  EvalOptions options;               ///< as run (data_dir resolved)
  std::vector<TaskResult> fp;        ///< the model as opened
  std::vector<EvaluatedSpec> quantized;  ///< one per spec, in order
  std::string calibration;           ///< the GPTQ calibration's note ("" when none was read)
};
/// The result as `latmix eval --json` prints it (and --out writes it): "settings" (the request's
/// values as run), "results" (FP: task, metrics, stderr, items, convention, seconds), and with
/// specs "quantized": one object per spec {spec, describe, seconds, results, recovery}, recovery as
/// recovery_json(): each task's and metric's percent and se, and the "headline" figure with its basis.
nlohmann::json to_json(const EvaluateResult& result);
/// The inverse of to_json(). Strict: an unknown key (at any depth) or a value of the wrong type is a
/// latmix::UsageError naming the key's path ("evaluate result: key 'results[1].items': ..."); a key
/// left out keeps the default. The "recovery" objects are recomputed from the results, not read.
/// What the round trip does not restore (to_json() does not write it; nothing the CLI prints):
/// the request's weights, calib_samples, calib_seqlen and out (defaults), its tasks as given (the
/// expanded list joined by commas instead, "all" expanded) and its data_dir as given (the resolved
/// folder instead); EvalOptions::keep_item_scores and each TaskResult's item_scores; a metric that is
/// not finite (written as null) reads back as NaN.
EvaluateResult evaluate_result_from_json(const nlohmann::json& json);

/// What run_evaluate() needs beside the request: the job (progress per task stage, cancel), the
/// bundled sample text ("" when not installed: the GPTQ default), and where the notes go as they
/// happen ("calibration: ..." before GPTQ runs; the CLI prints them on stderr).
struct EvaluateControl {
  JobControl job;
  std::string bundled_sample;
  std::function<void(const std::string&)> on_note;
};

/// Evaluates `model` (opened from request.model with `tokenizer`): check_evaluate_request(), then,
/// when there are specs, a refusal before any work if a quantized copy of the weights cannot fit;
/// the tasks on the model as it is; the GPTQ calibration when a spec quantizes with GPTQ or
/// request.calib is given (read once, shared by every spec); each spec's quantized copy evaluated
/// in turn and dropped. Writes request.out atomically when set.
/// \throws latmix::UsageError, latmix::Error (data files, memory), latmix::Cancelled.
EvaluateResult run_evaluate(const EvaluateRequest& request, const Model& model, const Tokenizer& tokenizer,
                            const EvaluateControl& control = {});

// ---- compare -------------------------------------------------------------------------------------------

/// What to compare: `latmix compare`'s options. The calibration, format and learning options are
/// api/learn.h's request, shared by every method (its method, events, checkpoint and out fields are
/// not used here).
struct CompareRequest {
  std::string methods = "rtn,gptq,quarot,mr-gptq,spinquant,flatquant,latmix";  ///< --methods
  std::string tasks = "frankenstein,wikitext2";  ///< --tasks
  int64_t limit = 0;                             ///< --limit
  int64_t eval_seqlen = 512;                     ///< --eval-seqlen
  std::string out;  ///< --out DIR: the report folder ("": no report written; the studio saves on demand)
  LearnRequest learning;  ///< --model, --tokenizer, --device, --dtype, --quant, --calib, ... --gptq-refresh
};

/// {methods, tasks, limit, eval_seqlen, out, learning: to_json(LearnRequest)}.
nlohmann::json to_json(const CompareRequest& request);
/// Strict, as evaluate_request_from_json() ("compare request: ..."; the learning object's keys as
/// learn_request_from_json() reads them).
CompareRequest compare_request_from_json(const nlohmann::json& json);
/// The `latmix compare` command line of the request: --model, --methods, --tasks, --limit,
/// --eval-seqlen, the learn options set (learn_option_arguments()), --tokenizer / --dtype when not
/// the default, --device, and --out (the placeholder DIR when unset).
std::vector<std::string> compare_command_line(const CompareRequest& request);

/// The request's methods, checked, without repeats and empty names, and the tasks;
/// every method's settings checked for the request's device. \throws latmix::UsageError.
std::vector<std::string> check_compare_request(const CompareRequest& request);

/// What run_compare() did.
struct CompareResult {
  Comparison comparison;           ///< its model is request.learning.model
  std::vector<std::string> files;  ///< the report's files (request.out), empty without
};
/// The result as `latmix compare --json` prints it (and `latmix serve` returns it): the keys of the
/// comparison's to_json() (what the report's report.json holds), then "files".
nlohmann::json to_json(const CompareResult& result);
/// The inverse of to_json(), strict as evaluate_result_from_json() ("compare result: key
/// 'methods[0].curve[2].loss': ..."); each method's settings as LearnSettings::to_json() writes them,
/// its conditions from the ordered "conditions" ("condition_numbers" repeats them by name; checked to
/// be an object, not read), its "recovery" recomputed. What the round trip does not restore
/// (to_json() does not write it; nothing the CLI prints): the settings' fields outside
/// LearnSettings::to_json() (a fixed preset's learning knobs, the memory and checkpoint fields: their
/// defaults), the task results' item_scores; kl_to_fp and the validation figures that are not finite
/// read back as NaN, a layer SQNR that is not finite as +inf.
CompareResult compare_result_from_json(const nlohmann::json& json);

/// Runs the comparison: check_compare_request(); the model held in memory (a copy of a mapped
/// model, refused first when it cannot fit: learning needs every weight converted); the learning
/// calibration once (api::learn_calibration(), "calibration: ..." to control.on_note); every method
/// learned or built with api::learn_settings(), quantized and evaluated (run_comparison()); the
/// report written into request.out when set. \throws latmix::UsageError, latmix::Error,
/// latmix::Cancelled.
CompareResult run_compare(const CompareRequest& request, const Model& model, const Tokenizer& tokenizer,
                          const LearnControl& control = {});

/// `model` itself when it is held in memory, else an in-memory copy in its compute dtype (learning,
/// a comparison of methods, an export that folds transforms need every weight converted); refused
/// first when it cannot fit: latmix::Error "JOB: needs about N GiB of host memory ..., M GiB
/// available; nothing was started ...", `why` ending the message.
std::shared_ptr<Model> held_model(const std::shared_ptr<Model>& model, const std::string& job, const std::string& why);

}  // namespace latmix::api
