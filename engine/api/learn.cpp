// The learn task (latmix/api/learn.h): request <-> JSON, the one place where a request becomes
// LearnSettings and calibration, and the run itself.
#include "latmix/api/learn.h"

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <fstream>
#include <functional>
#include <map>
#include <memory>
#include <stdexcept>

#include "latmix/error.h"
#include "latmix/export.h"
#include "latmix/quant.h"
#include "latmix/tasks.h"
#include "request_json.h"
#include "result_json.h"

namespace latmix::api {

using json = nlohmann::json;

namespace {

// ---- JSON: one table of fields (request_json.h) --------------------------------------------------

using detail::as_bool;
using detail::as_integer;
using detail::as_number;
using detail::as_string;
using detail::as_unsigned;
using detail::number_text;
using Field = detail::Field<LearnRequest>;

template <typename T, typename Conv>
Field required(T LearnRequest::*member, Conv conv) {
  return detail::required(member, conv);
}
template <typename T, typename Conv>
Field optional(std::optional<T> LearnRequest::*member, Conv conv) {
  return detail::optional(member, conv);
}

// In the order of `latmix learn --help`.
const std::vector<std::pair<std::string, Field>>& fields() {
  static const std::vector<std::pair<std::string, Field>> table = {
      {"model", required(&LearnRequest::model, as_string)},
      {"tokenizer", required(&LearnRequest::tokenizer, as_string)},
      {"device", required(&LearnRequest::device, as_string)},
      {"dtype", required(&LearnRequest::dtype, as_string)},
      {"method", required(&LearnRequest::method, as_string)},
      {"quant", required(&LearnRequest::quant, as_string)},
      {"calib", required(&LearnRequest::calib, as_string)},
      {"data_dir", required(&LearnRequest::data_dir, as_string)},
      {"samples", optional(&LearnRequest::samples, as_integer)},
      {"seqlen", optional(&LearnRequest::seqlen, as_integer)},
      {"seed", required(&LearnRequest::seed, as_unsigned)},
      {"steps", optional(&LearnRequest::steps, as_integer)},
      {"batch", optional(&LearnRequest::batch, as_integer)},
      {"lr", optional(&LearnRequest::lr, as_number)},
      {"optimizer", optional(&LearnRequest::optimizer, as_string)},
      {"momentum", optional(&LearnRequest::momentum, as_number)},
      {"weight_decay", optional(&LearnRequest::weight_decay, as_number)},
      {"warmup", optional(&LearnRequest::warmup, as_number)},
      {"schedule", optional(&LearnRequest::schedule, as_string)},
      {"grad_clip", optional(&LearnRequest::grad_clip, as_number)},
      {"lambda", optional(&LearnRequest::lambda, as_number)},
      {"param", optional(&LearnRequest::param, as_string)},
      {"init", optional(&LearnRequest::init, as_string)},
      {"affine_bias", optional(&LearnRequest::affine_bias, as_bool)},
      {"rotation_map", optional(&LearnRequest::rotation_map, as_string)},
      {"mode", optional(&LearnRequest::mode, as_string)},
      {"loss", optional(&LearnRequest::loss, as_string)},
      {"micro_batch", optional(&LearnRequest::micro_batch, as_integer)},
      {"loss_chunk", optional(&LearnRequest::loss_chunk, as_integer)},
      {"recompute", optional(&LearnRequest::recompute, as_bool)},
      {"kept_layers", optional(&LearnRequest::kept_layers, as_integer)},
      {"teacher_cache", optional(&LearnRequest::teacher_cache, as_bool)},
      {"validation", optional(&LearnRequest::validation, as_integer)},
      {"eval_every", optional(&LearnRequest::eval_every, as_integer)},
      {"patience", optional(&LearnRequest::patience, as_integer)},
      {"deployed_check", optional(&LearnRequest::deployed_check, as_string)},
      {"gptq_refresh", optional(&LearnRequest::gptq_refresh, as_integer)},
      {"out", required(&LearnRequest::out, as_string)},
      {"events", required(&LearnRequest::events, as_string)},
      {"checkpoint", required(&LearnRequest::checkpoint, as_string)},
      {"checkpoint_every", required(&LearnRequest::checkpoint_every, as_integer)},
      {"resume", required(&LearnRequest::resume, as_bool)},
      {"split", required(&LearnRequest::split, as_string)},
  };
  return table;
}

// ---- command line --------------------------------------------------------------------------------

std::string yes_no(bool v) {
  return v ? "yes" : "no";
}

// One of `allowed`, else the CLI's message for --option.
std::string checked_name(const std::string& option, const std::string& value, const std::string& a,
                         const std::string& b) {
  if (value != a && value != b) {
    throw UsageError("--" + option + ": expected " + a + " or " + b + ", found '" + value + "'");
  }
  return value;
}

}  // namespace

const std::vector<LearnOptionHelp>& learn_option_help() {
  static const std::vector<LearnOptionHelp> table = {
      {"quant", "SPEC", "formats (latmix/quant.h grammar; weights= is the method's unless given)", "mxfp4"},
      {"calib", "FILES", "calibration text: gutenberg (the training books) or comma-separated files", "gutenberg"},
      {"samples", "N", "calibration sequences (default: 32 on CPU, 256 on CUDA)", ""},
      {"seqlen", "N", "calibration sequence length (default: 128 on CPU, min(context, 2048) on CUDA)", ""},
      {"data-dir", "DIR", "shared data folder (for --calib gutenberg)", ""},
      {"steps", "N", "optimizer steps (layer-wise: per layer; default: the method's)", ""},
      {"batch", "N", "sequences per step (default: the method's)", ""},
      {"lr", "X", "learning rate (default: the method's)", ""},
      {"optimizer", "adamw|sgd", "optimizer (default: the method's)", ""},
      {"momentum", "X", "SGD momentum", ""},
      {"weight-decay", "X", "AdamW decoupled weight decay", ""},
      {"warmup", "X", "fraction of the steps with a linear warm-up", ""},
      {"schedule", "cosine|constant", "learning-rate schedule after the warm-up", ""},
      {"grad-clip", "X", "max global gradient norm (0: off)", ""},
      {"lambda", "X", "latmix: weight of the volume term (sum log|s|)^2", ""},
      {"param", "lu|qr", "latmix: affine parametrization (LU, the paper's: P L (U + diag s); QR: Q R; docs/methods.md)",
       "lu"},
      {"init", "hadamard|block_hadamard|random|identity", "rotation the learned transforms start from", ""},
      {"affine-bias", "yes|no", "latmix: learn the bias v of T1 (T(x) = A x + v)", ""},
      {"rotation-map", "cayley|exp", "spinquant: map of the skew generator", ""},
      {"mode", "e2e|layerwise", "end-to-end, or one decoder layer at a time", ""},
      {"loss", "kl|ce|mse", "objective (mse: layer-wise only)", ""},
      {"seed", "N", "seed of the random rotations and the batch order", "0"},
      {"micro-batch", "N",
       "end-to-end: sequences per forward/backward pass, gradients accumulated over the batch "
       "(default: the most that fit in the device's free memory; CPU: the batch)",
       ""},
      {"loss-chunk", "N", "end-to-end: positions per lm_head + loss chunk (default: 256 MB of logits)", ""},
      {"recompute", "yes|no", "end-to-end: keep only each layer's input and recompute the layer in the backward pass",
       "yes"},
      {"validation", "N",
       "calibration sequences held out as the validation set (default: one in eight; 0: none); the plan with "
       "the lowest validation loss, the initialization included, is the result",
       ""},
      {"eval-every", "N", "steps between validation measurements (default: an eighth of the steps)", ""},
      {"patience", "N", "end-to-end: stop after N validation measurements without a new best (0: never)", "4"},
      {"deployed-check", "ends|every|no",
       "with GPTQ weights: judge the plan as deployed. ends: the plan validation chose is kept only if its "
       "model with GPTQ weights beats the start's on the held-out sequences (two GPTQ runs); every: every "
       "validation measurement is of the model with GPTQ weights (a GPTQ run each); no: the RTN student only",
       "ends"},
      {"gptq-refresh", "K",
       "end-to-end with GPTQ weights: GPTQ in the loop. Every K steps and at every validation measurement the "
       "plan's weights are quantized by GPTQ and the student learns against them: its weight is RTN(W + d), d "
       "the GPTQ residual of the last refresh (0: off, the student rounds to nearest)",
       "0"},
      {"kept-layers", "N",
       "end-to-end with --recompute yes: the last N layers keep their graph instead (default: as many as fit "
       "in 30 % of the GPU's memory; CPU: 0)",
       ""},
      {"teacher-cache", "yes|no",
       "end-to-end KL: keep the FP model's final hidden states of every calibration sequence after its first "
       "use (default: yes on a GPU when sequences repeat and it fits in 30 % of its memory; CPU: no)",
       ""},
  };
  return table;
}

const std::string& learn_option_help(const std::string& name) {
  for (const auto& o : learn_option_help()) {
    if (o.name == name) return o.help;
  }
  throw std::logic_error("learn_option_help: no option '" + name + "'");
}

json to_json(const LearnRequest& request) { return detail::write_request(fields(), request); }

LearnRequest learn_request_from_json(const json& j) { return detail::read_request("learn request", fields(), j); }

std::vector<std::string> learn_option_arguments(const LearnRequest& r) {
  std::vector<std::string> a = {"--quant", r.quant, "--calib", r.calib};
  auto integer = [&a](const char* option, const std::optional<int64_t>& v) {
    if (v) a.insert(a.end(), {option, std::to_string(*v)});
  };
  auto number = [&a](const char* option, const std::optional<double>& v) {
    if (v) a.insert(a.end(), {option, number_text(*v)});
  };
  auto name = [&a](const char* option, const std::optional<std::string>& v) {
    if (v) a.insert(a.end(), {option, *v});
  };
  auto flag = [&a](const char* option, const std::optional<bool>& v) {
    if (v) a.insert(a.end(), {option, yes_no(*v)});
  };
  integer("--samples", r.samples);
  integer("--seqlen", r.seqlen);
  if (!r.data_dir.empty() && r.calib == "gutenberg") a.insert(a.end(), {"--data-dir", r.data_dir});
  integer("--steps", r.steps);
  integer("--batch", r.batch);
  number("--lr", r.lr);
  name("--optimizer", r.optimizer);
  number("--momentum", r.momentum);
  number("--weight-decay", r.weight_decay);
  number("--warmup", r.warmup);
  name("--schedule", r.schedule);
  number("--grad-clip", r.grad_clip);
  number("--lambda", r.lambda);
  name("--param", r.param);
  name("--init", r.init);
  flag("--affine-bias", r.affine_bias);
  name("--rotation-map", r.rotation_map);
  name("--mode", r.mode);
  name("--loss", r.loss);
  if (r.seed != 0) a.insert(a.end(), {"--seed", std::to_string(r.seed)});
  integer("--micro-batch", r.micro_batch);
  integer("--loss-chunk", r.loss_chunk);
  flag("--recompute", r.recompute);
  integer("--validation", r.validation);
  integer("--eval-every", r.eval_every);
  integer("--patience", r.patience);
  name("--deployed-check", r.deployed_check);
  integer("--gptq-refresh", r.gptq_refresh);
  integer("--kept-layers", r.kept_layers);
  flag("--teacher-cache", r.teacher_cache);
  return a;
}

std::vector<std::string> learn_command_line(const LearnRequest& r) {
  std::vector<std::string> a = {"latmix", "learn", "--model", r.model};
  if (!r.tokenizer.empty()) a.insert(a.end(), {"--tokenizer", r.tokenizer});
  a.insert(a.end(), {"--method", r.method});
  for (auto& s : learn_option_arguments(r)) a.push_back(std::move(s));
  if (!r.out.empty()) a.insert(a.end(), {"--out", r.out});
  if (!r.events.empty()) a.insert(a.end(), {"--events", r.events});
  if (!r.checkpoint.empty()) a.insert(a.end(), {"--checkpoint", r.checkpoint});
  if (r.checkpoint_every != 0) a.insert(a.end(), {"--checkpoint-every", std::to_string(r.checkpoint_every)});
  if (r.resume) a.emplace_back("--resume");
  if (r.split != "batch") a.insert(a.end(), {"--split", r.split});
  if (r.dtype != "fp32") a.insert(a.end(), {"--dtype", r.dtype});
  a.insert(a.end(), {"--device", r.device});
  return a;
}

CalibrationSize learn_calibration_defaults(bool gpu, int64_t max_position) {
  const int64_t context = max_position > 0 ? max_position : 2048;
  return gpu ? CalibrationSize{256, std::min<int64_t>(context, 2048)} : CalibrationSize{32, 128};
}

LearnSettings learn_settings(const LearnRequest& r, at::Device device, const CalibrationSet* calibration) {
  const QuantSpec spec = parse_quant_spec(r.quant);
  LearnSettings s = method_defaults(r.method, spec, device);
  s.seed = r.seed;
  // weights=rtn|gptq given explicitly wins over the method's weight quantizer.
  if (r.quant.find("weights=") != std::string::npos) s.quant.method = spec.method;
  if (!r.checkpoint.empty()) s.checkpoint_prefix = r.checkpoint;
  s.checkpoint_every = r.checkpoint_every;
  s.resume = r.resume;
  checked_name("split", r.split, "batch", "layers");
  if (!find_method(r.method).learned) return s;  // the learning knobs do not apply
  if (r.steps) s.steps = *r.steps;
  if (r.batch) s.batch = *r.batch;
  if (r.lr) s.lr = *r.lr;
  if (r.optimizer) s.optimizer = parse_optimizer(*r.optimizer);
  if (r.momentum) s.momentum = *r.momentum;
  if (r.weight_decay) s.weight_decay = *r.weight_decay;
  if (r.warmup) s.warmup = *r.warmup;
  if (r.schedule) s.cosine = checked_name("schedule", *r.schedule, "cosine", "constant") == "cosine";
  if (r.grad_clip) s.grad_clip = *r.grad_clip;
  if (r.lambda) s.lambda = *r.lambda;
  if (r.param) {
    s.param =
        checked_name("param", *r.param, "qr", "lu") == "qr" ? AffineTransform::Param::QR : AffineTransform::Param::LU;
  }
  if (r.init) s.init = parse_transform_init(*r.init);
  if (r.affine_bias) s.affine_bias = *r.affine_bias;
  if (r.rotation_map) {
    s.rotation_map = checked_name("rotation-map", *r.rotation_map, "cayley", "exp") == "exp"
                         ? RotationTransform::Map::Exp
                         : RotationTransform::Map::Cayley;
  }
  if (r.micro_batch) {
    s.micro_batch = *r.micro_batch;
    if (s.micro_batch < 1) throw UsageError("--micro-batch: expected 1 or more");
  }
  if (r.loss_chunk) {
    s.loss_chunk = *r.loss_chunk;
    if (s.loss_chunk < 1) throw UsageError("--loss-chunk: expected 1 or more");
  }
  s.checkpoint_layers = r.recompute.value_or(true);
  if (r.validation) {
    s.validation = *r.validation;
    if (s.validation < 0) throw UsageError("--validation: expected 0 or more");
  }
  if (r.eval_every) {
    s.eval_every = *r.eval_every;
    if (s.eval_every < 1) throw UsageError("--eval-every: expected 1 or more");
  }
  if (r.deployed_check) s.deployed_check = parse_deployed_check(*r.deployed_check);
  if (r.gptq_refresh) {
    s.gptq_refresh = *r.gptq_refresh;
    if (s.gptq_refresh < 0) throw UsageError("--gptq-refresh: expected 0 or more");
  }
  if (r.patience) {
    s.patience = *r.patience;
    if (s.patience < 0) throw UsageError("--patience: expected 0 or more");
  }
  if (r.kept_layers) {
    s.kept_layers = *r.kept_layers;
    if (*s.kept_layers < 0) throw UsageError("--kept-layers: expected 0 or more");
  }
  if (r.teacher_cache) s.cache_teacher = *r.teacher_cache;
  if (r.mode) s.mode = parse_learn_mode(*r.mode);
  if (r.loss) s.loss = parse_learn_loss(*r.loss);
  if (r.mode && !r.loss) {
    s.loss =
        s.mode == LearnMode::LayerWise ? LearnLoss::LayerMse : (s.loss == LearnLoss::LayerMse ? LearnLoss::Kl : s.loss);
  }
  // The method's default batch fits the samples given; a batch given larger is refused by the learner.
  if (calibration != nullptr && !r.batch) s.batch = std::min(s.batch, calibration->size());
  return s;
}

bool learn_needs_calibration(const LearnSettings& settings) {
  return find_method(settings.method).learned || settings.quant.method == WeightMethod::Gptq;
}

CalibrationSet learn_calibration(const LearnRequest& r, const Model& model, const Tokenizer& tokenizer) {
  const CalibrationSize d = learn_calibration_defaults(model.device().is_cuda(), model.config().max_position);
  CalibrationOptions co;
  co.samples = r.samples.value_or(d.samples);
  co.seqlen = r.seqlen.value_or(d.seqlen);
  if (co.samples < 1) throw UsageError("--samples: expected 1 or more");
  if (co.seqlen < 2) throw UsageError("--seqlen: expected 2 or more");
  const std::string data_dir = r.data_dir.empty() ? default_eval_data_dir() : r.data_dir;
  const std::vector<std::string> files = calibration_files(r.calib, data_dir);
  // Enough text for the windows to be spread over several books, without tokenizing all of them.
  return load_calibration_files(files, tokenizer, co, 4 * co.samples * co.seqlen);
}

json to_json(const LearnResult& result) {
  const MethodResult& r = result.run;
  json out = {{"method", result.settings.method},
              {"settings", result.settings.to_json()},
              {"seconds", r.seconds},
              {"steps", r.curve.size()},
              {"resumed", r.resumed},
              {"calibration", result.calibration}};
  if (!r.memory_plan.empty()) out["memory"] = r.memory_plan;
  if (r.validation_samples > 0) {
    json curve = json::array();
    for (const auto& [step, value] : r.validation_curve) curve.push_back({{"step", step}, {"loss", value}});
    out["validation"] = {{"samples", r.validation_samples},
                         {"curve", curve},
                         {"best_step", r.best_step},
                         {"stopped_early", r.stopped_early},
                         {"note", r.validation_note}};
    if (std::isfinite(r.deployed_start)) {
      out["validation"]["deployed"] = {{"start", r.deployed_start}, {"result", r.deployed_result}};
    }
  }
  if (!r.curve.empty()) {
    out["first_loss"] = r.curve.front().loss;
    out["final_loss"] = r.curve.back().loss;
  }
  json cond = json::object();
  for (const auto& [name, value] : r.conditions) cond[name] = value;
  out["condition_numbers"] = cond;
  out["conditions"] = detail::conditions_json(r.conditions);
  if (!result.transforms.empty()) out["transforms"] = result.transforms;
  json events = json::array();
  for (const LearnEvent& e : r.curve) events.push_back(e.to_json());
  out["curve"] = events;
  return out;
}

LearnEvent learn_event_from_json(const json& j) { return detail::read_learn_event("learn event", "", j); }

LearnResult learn_result_from_json(const json& j) {
  const std::string what = "learn result";
  const detail::ResultReader r(
      what, "", j,
      {"method", "settings", "seconds", "steps", "resumed", "calibration", "memory", "validation", "first_loss",
       "final_loss", "condition_numbers", "conditions", "transforms", "curve"});
  LearnResult out;
  MethodResult& run = out.run;
  if (r.has("settings")) out.settings = detail::read_learn_settings(what, "settings", r.raw("settings"));
  r.get("method", out.settings.method, detail::as_string);
  run.method = out.settings.method;
  run.settings = out.settings;
  r.get("seconds", run.seconds, detail::as_number);
  r.get("resumed", run.resumed, detail::as_bool);
  r.get("calibration", out.calibration, detail::as_string);
  r.get("memory", run.memory_plan, detail::as_string);
  if (r.has("validation")) {
    const detail::ResultReader v =
        r.object("validation", {"samples", "curve", "best_step", "stopped_early", "note", "deployed"});
    v.get("samples", run.validation_samples, detail::as_integer);
    run.validation_curve = detail::read_validation_curve(v, "curve");
    v.get("best_step", run.best_step, detail::as_integer);
    v.get("stopped_early", run.stopped_early, detail::as_bool);
    v.get("note", run.validation_note, detail::as_string);
    if (v.has("deployed")) {
      const detail::ResultReader d = v.object("deployed", {"start", "result"});
      d.get("start", run.deployed_start, detail::number_or(detail::kNaN));
      d.get("result", run.deployed_result, detail::number_or(detail::kNaN));
    }
  }
  r.list("curve", run.curve,
         [&what](const std::string& path, const json& v) { return detail::read_learn_event(what, path, v); });
  // steps, first_loss and final_loss repeat the curve: they must agree with it.
  int64_t steps = static_cast<int64_t>(run.curve.size());
  r.get("steps", steps, detail::as_integer);
  double first = run.curve.empty() ? 0.0 : run.curve.front().loss,
         last = run.curve.empty() ? 0.0 : run.curve.back().loss;
  r.get("first_loss", first, detail::number_or(detail::kNaN));
  r.get("final_loss", last, detail::number_or(detail::kNaN));
  const bool agree = steps == static_cast<int64_t>(run.curve.size()) &&
                     (run.curve.empty() || (json(first).dump() == json(run.curve.front().loss).dump() &&
                                            json(last).dump() == json(run.curve.back().loss).dump()));
  if (!agree) {
    throw UsageError(what + ": keys 'steps', 'first_loss' and 'final_loss' do not match the 'curve' (" +
                     std::to_string(run.curve.size()) + " steps)");
  }
  r.derived_object("condition_numbers");  // "conditions" by name
  run.conditions = detail::read_conditions(r, "conditions");
  r.get("transforms", out.transforms, detail::as_string);
  return out;
}

LearnResult run_learn(const LearnRequest& request, const Model& model, const Tokenizer& tokenizer,
                      const LearnControl& control) {
  LearnResult result;
  result.settings = learn_settings(request, model.device());
  LearnSettings& s = result.settings;
  std::optional<CalibrationSet> calib;
  if (learn_needs_calibration(s)) {
    calib = learn_calibration(request, model, tokenizer);
    s = learn_settings(request, model.device(), &*calib);
    result.calibration = calib->describe();
  }
  std::shared_ptr<std::ofstream> events;
  if (!request.events.empty()) {
    events = std::make_shared<std::ofstream>(request.events, std::ios::trunc);
    if (!*events) fail(request.events, "events file", "writable", "cannot open");
  }
  auto note = [&control](const std::string& line) {
    if (control.on_note) control.on_note(line);
  };
  if (calib) note("calibration: " + result.calibration);
  if (find_method(s.method).learned) {
    char line[512];
    std::snprintf(line, sizeof line, "learning %s: %s, %lld steps%s, batch %lld, %s lr %g", s.method.c_str(),
                  to_string(s.quant).c_str(), static_cast<long long>(s.steps),
                  s.mode == LearnMode::LayerWise ? " per layer" : "", static_cast<long long>(s.batch),
                  to_string(s.optimizer).c_str(), s.lr);
    note(line);
  }
  LearnControl c = control;
  c.split_layers = request.split == "layers";  // checked by learn_settings() above
  if (events) {
    c.on_step = [events, on_step = control.on_step](const LearnEvent& e) {
      *events << e.to_json().dump() << "\n" << std::flush;
      if (on_step) on_step(e);
    };
  }
  result.run = obtain_plan(model, calib ? &*calib : nullptr, s, c);
  if (!request.out.empty()) {
    if (result.run.plan.empty()) {
      throw UsageError("method '" + request.method + "' has no transforms to write (--out)");
    }
    // With the model's fingerprint, so export and the studio can refuse it for another model.
    save_transforms_for_model(request.out, result.run.plan, request.model, s.to_json());
    result.transforms = request.out + ".safetensors";
  }
  return result;
}

}  // namespace latmix::api
