// latmix learn: one method's transforms, learned (or built) on calibration text.
#include <algorithm>
#include <cmath>
#include <cstdio>
#include <fstream>
#include <iostream>
#include <nlohmann/json.hpp>

#include "commands.h"
#include "commands_learn.h"
#include "console.h"
#include "latmix/calib_data.h"
#include "latmix/compare.h"
#include "latmix/error.h"
#include "latmix/export.h"
#include "latmix/files.h"
#include "latmix/learn.h"
#include "latmix/tasks.h"

namespace latmix::cli {

using json = nlohmann::json;

std::vector<OptionSpec> learn_options() {
  return {
      {"quant", "SPEC", "formats (latmix/quant.h grammar; weights= is the method's unless given)", "mxfp4", false},
      {"calib", "FILES", "calibration text: gutenberg (the training books) or comma-separated files", "gutenberg",
       false},
      {"samples", "N", "calibration sequences (default: 32 on CPU, 256 on CUDA)", "", false},
      {"seqlen", "N", "calibration sequence length (default: 128 on CPU, min(context, 2048) on CUDA)", "", false},
      {"data-dir", "DIR", "shared data folder (for --calib gutenberg)", "", false},
      {"steps", "N", "optimizer steps (layer-wise: per layer; default: the method's)", "", false},
      {"batch", "N", "sequences per step (default: the method's)", "", false},
      {"lr", "X", "learning rate (default: the method's)", "", false},
      {"optimizer", "adamw|sgd", "optimizer (default: the method's)", "", false},
      {"momentum", "X", "SGD momentum", "", false},
      {"weight-decay", "X", "AdamW decoupled weight decay", "", false},
      {"warmup", "X", "fraction of the steps with a linear warm-up", "", false},
      {"schedule", "cosine|constant", "learning-rate schedule after the warm-up", "", false},
      {"grad-clip", "X", "max global gradient norm (0: off)", "", false},
      {"lambda", "X", "latmix: weight of the volume term (sum log|s|)^2", "", false},
      {"param", "lu|qr", "latmix: affine parametrization (LU, the paper's: P L (U + diag s); QR: Q R; docs/methods.md)", "lu", false},
      {"init", "hadamard|block_hadamard|random|identity", "rotation the learned transforms start from", "", false},
      {"affine-bias", "yes|no", "latmix: learn the bias v of T1 (T(x) = A x + v)", "", false},
      {"rotation-map", "cayley|exp", "spinquant: map of the skew generator", "", false},
      {"mode", "e2e|layerwise", "end-to-end, or one decoder layer at a time", "", false},
      {"loss", "kl|ce|mse", "objective (mse: layer-wise only)", "", false},
      {"seed", "N", "seed of the random rotations and the batch order", "0", false},
      {"micro-batch", "N",
       "end-to-end: sequences per forward/backward pass, gradients accumulated over the batch "
       "(default: the most that fit in the device's free memory; CPU: the batch)",
       "", false},
      {"loss-chunk", "N", "end-to-end: positions per lm_head + loss chunk (default: 256 MB of logits)", "", false},
      {"recompute", "yes|no",
       "end-to-end: keep only each layer's input and recompute the layer in the backward pass", "yes", false},
      {"validation", "N",
       "calibration sequences held out as the validation set (default: one in eight; 0: none); the plan with "
       "the lowest validation loss, the initialization included, is the result",
       "", false},
      {"eval-every", "N", "steps between validation measurements (default: an eighth of the steps)", "", false},
      {"patience", "N", "end-to-end: stop after N validation measurements without a new best (0: never)", "4",
       false},
      {"deployed-check", "ends|every|no",
       "with GPTQ weights: judge the plan as deployed. ends: the plan validation chose is kept only if its "
       "model with GPTQ weights beats the start's on the held-out sequences (two GPTQ runs); every: every "
       "validation measurement is of the model with GPTQ weights (a GPTQ run each); no: the RTN student only",
       "ends", false},
      {"kept-layers", "N",
       "end-to-end with --recompute yes: the last N layers keep their graph instead (default: as many as fit "
       "in 30 % of the GPU's memory; CPU: 0)",
       "", false},
      {"teacher-cache", "yes|no",
       "end-to-end KL: keep the FP model's final hidden states of every calibration sequence after its first "
       "use (default: yes on a GPU when sequences repeat and it fits in 30 % of its memory; CPU: no)",
       "", false},
  };
}

LearnSettings settings_from_args(const Args& args, const std::string& method, at::Device device) {
  QuantSpec spec = parse_quant_spec(args.get("quant"));
  LearnSettings s = method_defaults(method, spec, device);
  s.seed = static_cast<uint64_t>(args.integer("seed"));
  // weights=rtn|gptq given explicitly wins over the method's weight quantizer.
  if (args.get("quant").find("weights=") != std::string::npos) s.quant.method = spec.method;
  if (!find_method(method).learned) return s;  // the learning knobs do not apply
  if (args.has("steps")) s.steps = args.integer("steps");
  if (args.has("batch")) s.batch = args.integer("batch");
  if (args.has("lr")) s.lr = args.number("lr");
  if (args.has("optimizer")) s.optimizer = parse_optimizer(args.get("optimizer"));
  if (args.has("momentum")) s.momentum = args.number("momentum");
  if (args.has("weight-decay")) s.weight_decay = args.number("weight-decay");
  if (args.has("warmup")) s.warmup = args.number("warmup");
  if (args.has("schedule")) {
    const std::string v = args.get("schedule");
    if (v != "cosine" && v != "constant") throw UsageError("--schedule: expected cosine or constant, found '" + v + "'");
    s.cosine = v == "cosine";
  }
  if (args.has("grad-clip")) s.grad_clip = args.number("grad-clip");
  if (args.has("lambda")) s.lambda = args.number("lambda");
  if (args.has("param")) {
    const std::string v = args.get("param");
    if (v != "qr" && v != "lu") throw UsageError("--param: expected qr or lu, found '" + v + "'");
    s.param = v == "qr" ? AffineTransform::Param::QR : AffineTransform::Param::LU;
  }
  if (args.has("init")) s.init = parse_transform_init(args.get("init"));
  if (args.has("affine-bias")) {
    const std::string v = args.get("affine-bias");
    if (v != "yes" && v != "no") throw UsageError("--affine-bias: expected yes or no, found '" + v + "'");
    s.affine_bias = v == "yes";
  }
  if (args.has("rotation-map")) {
    const std::string v = args.get("rotation-map");
    if (v != "cayley" && v != "exp") throw UsageError("--rotation-map: expected cayley or exp, found '" + v + "'");
    s.rotation_map = v == "exp" ? RotationTransform::Map::Exp : RotationTransform::Map::Cayley;
  }
  if (args.has("micro-batch")) {
    s.micro_batch = args.integer("micro-batch");
    if (s.micro_batch < 1) throw UsageError("--micro-batch: expected 1 or more");
  }
  if (args.has("loss-chunk")) {
    s.loss_chunk = args.integer("loss-chunk");
    if (s.loss_chunk < 1) throw UsageError("--loss-chunk: expected 1 or more");
  }
  const std::string recompute = args.get("recompute");
  if (recompute != "yes" && recompute != "no") throw UsageError("--recompute: expected yes or no, found '" + recompute + "'");
  s.checkpoint_layers = recompute == "yes";
  if (args.has("validation")) {
    s.validation = args.integer("validation");
    if (s.validation < 0) throw UsageError("--validation: expected 0 or more");
  }
  if (args.has("eval-every")) {
    s.eval_every = args.integer("eval-every");
    if (s.eval_every < 1) throw UsageError("--eval-every: expected 1 or more");
  }
  s.deployed_check = parse_deployed_check(args.get("deployed-check"));
  s.patience = args.integer("patience");
  if (s.patience < 0) throw UsageError("--patience: expected 0 or more");
  if (args.has("kept-layers")) {
    s.kept_layers = args.integer("kept-layers");
    if (*s.kept_layers < 0) throw UsageError("--kept-layers: expected 0 or more");
  }
  if (args.has("teacher-cache")) {
    const std::string v = args.get("teacher-cache");
    if (v != "yes" && v != "no") throw UsageError("--teacher-cache: expected yes or no, found '" + v + "'");
    s.cache_teacher = v == "yes";
  }
  if (args.has("mode")) s.mode = parse_learn_mode(args.get("mode"));
  if (args.has("loss")) s.loss = parse_learn_loss(args.get("loss"));
  if (args.has("mode") && !args.has("loss")) {
    s.loss = s.mode == LearnMode::LayerWise ? LearnLoss::LayerMse
                                            : (s.loss == LearnLoss::LayerMse ? LearnLoss::Kl : s.loss);
  }
  return s;
}

CalibrationSet calibration_for_learning(const Args& args, const Model& model, const Tokenizer& tok) {
  const bool gpu = model.device().is_cuda();
  CalibrationOptions co;
  co.samples = args.has("samples") ? args.integer("samples") : (gpu ? 256 : 32);
  const int64_t context = model.config().max_position > 0 ? model.config().max_position : 2048;
  co.seqlen = args.has("seqlen") ? args.integer("seqlen") : (gpu ? std::min<int64_t>(context, 2048) : 128);
  if (co.samples < 1) throw UsageError("--samples: expected 1 or more");
  if (co.seqlen < 2) throw UsageError("--seqlen: expected 2 or more");
  const std::string data_dir = args.has("data-dir") ? args.get("data-dir") : default_eval_data_dir();
  const std::vector<std::string> files = calibration_files(args.get("calib"), data_dir);
  // Enough text for the windows to be spread over several books, without tokenizing all of them.
  return load_calibration_files(files, tok, co, 4 * co.samples * co.seqlen);
}

std::string event_line(const LearnEvent& e) {
  char buf[256];
  std::string terms;
  for (const auto& [name, value] : e.terms) {
    char t[64];
    std::snprintf(t, sizeof t, " %s %.5g", name.c_str(), value);
    terms += t;
  }
  if (e.validation) {
    char t[64];
    std::snprintf(t, sizeof t, " val %.5g", *e.validation);
    terms += t;
  }
  std::snprintf(buf, sizeof buf, "step %lld/%lld%s loss %.5g%s lr %.3g |g| %.3g  %s, ETA %s",
                static_cast<long long>(e.step), static_cast<long long>(e.total),
                e.layer >= 0 ? (" layer " + std::to_string(e.layer)).c_str() : "", e.loss, terms.c_str(), e.lr,
                e.grad_norm, format_duration(e.seconds).c_str(), format_duration(e.eta).c_str());
  return buf;
}

namespace {

int run_learn(const Args& args) {
  const std::string method = args.get("method");
  find_method(method);
  LoadedModel m = load_model_from_args(args, parse_compute_dtype(args.get("dtype")));
  LearnSettings s = settings_from_args(args, method, m.model.device());
  if (args.has("checkpoint")) s.checkpoint_prefix = args.get("checkpoint");
  s.checkpoint_every = args.integer("checkpoint-every");
  s.resume = args.flag("resume");
  const MethodPreset& preset = find_method(method);
  std::optional<CalibrationSet> calib;
  if (preset.learned || s.quant.method == WeightMethod::Gptq) {
    calib = calibration_for_learning(args, m.model, *m.tokenizer);
    // The method's default batch fits the samples given; a --batch given larger is refused.
    if (!args.has("batch")) s.batch = std::min(s.batch, calib->size());
  }
  const bool quiet = args.flag("quiet");
  const bool tty = stderr_is_terminal();
  std::unique_ptr<std::ofstream> events;
  if (args.has("events")) {
    events = std::make_unique<std::ofstream>(args.get("events"), std::ios::trunc);
    if (!*events) fail(args.get("events"), "events file", "writable", "cannot open");
  }
  if (!quiet && calib) std::fprintf(stderr, "calibration: %s\n", calib->describe().c_str());
  if (!quiet && preset.learned) {
    std::fprintf(stderr, "learning %s: %s, %lld steps%s, batch %lld, %s lr %g\n", method.c_str(),
                 to_string(s.quant).c_str(), static_cast<long long>(s.steps),
                 s.mode == LearnMode::LayerWise ? " per layer" : "", static_cast<long long>(s.batch),
                 to_string(s.optimizer).c_str(), s.lr);
  }
  LearnControl control;
  control.job.cancel = interrupt_token();
  control.on_note = [&](const std::string& note) {
    if (!quiet) std::fprintf(stderr, "%s\n", note.c_str());
  };
  control.on_step = [&](const LearnEvent& e) {
    if (events) *events << e.to_json().dump() << "\n" << std::flush;
    if (quiet) return;
    const std::string line = event_line(e);
    if (tty) {
      std::fprintf(stderr, "\r\033[K%s", line.c_str());
      if (e.step == e.total) std::fprintf(stderr, "\n");
    } else if (e.step == 1 || e.step == e.total || e.validation ||
               e.step % std::max<int64_t>(1, e.total / 20) == 0) {
      std::fprintf(stderr, "%s\n", line.c_str());
    }
  };
  MethodResult r = obtain_plan(m.model, calib ? &*calib : nullptr, s, control);
  json out = {{"method", method},
              {"settings", s.to_json()},
              {"seconds", r.seconds},
              {"steps", r.curve.size()},
              {"resumed", r.resumed},
              {"calibration", calib ? calib->describe() : ""}};
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
  if (args.has("out")) {
    if (r.plan.empty()) throw UsageError("method '" + method + "' has no transforms to write (--out)");
    // With the model's fingerprint, so export and the studio can refuse it for another model.
    save_transforms_for_model(args.get("out"), r.plan, args.get("model"), s.to_json());
    out["transforms"] = args.get("out") + ".safetensors";
  }
  if (args.flag("json")) {
    std::cout << out.dump(2) << "\n";
    return 0;
  }
  std::printf("method     %s (%s)\n", method.c_str(), preset.summary.c_str());
  std::printf("settings   %s\n", out["settings"].dump().c_str());
  if (!r.curve.empty()) {
    std::printf("loss       %.5g -> %.5g over %zu steps in %s%s\n", r.curve.front().loss, r.curve.back().loss,
                r.curve.size(), format_duration(r.seconds).c_str(), r.resumed ? " (resumed)" : "");
  } else {
    std::printf("transforms fixed (%s), built in %s\n", preset.transforms.c_str(), format_duration(r.seconds).c_str());
  }
  if (!r.validation_note.empty()) std::printf("%s\n", r.validation_note.c_str());
  for (const auto& [name, value] : r.conditions) std::printf("condition  %s: %.4g\n", name.c_str(), value);
  if (args.has("out")) std::printf("written    %s.safetensors, %s.json\n", args.get("out").c_str(), args.get("out").c_str());
  return 0;
}

int run_compare(const Args& args) {
  std::vector<std::string> methods;
  {
    std::string list = args.get("methods");
    size_t start = 0;
    while (start <= list.size()) {
      const size_t comma = list.find(',', start);
      std::string name = list.substr(start, comma == std::string::npos ? std::string::npos : comma - start);
      if (!name.empty()) methods.push_back(find_method(name).name);
      if (comma == std::string::npos) break;
      start = comma + 1;
    }
  }
  CompareOptions o;
  o.methods = methods;
  o.tasks = parse_task_list(args.get("tasks"));
  o.eval.data_dir = args.has("data-dir") ? args.get("data-dir") : default_eval_data_dir();
  o.eval.limit = args.integer("limit");
  o.eval.seqlen = args.integer("eval-seqlen");
  if (o.eval.limit < 0) throw UsageError("--limit: expected 0 (all) or more");
  LoadedModel m = load_model_from_args(args, parse_compute_dtype(args.get("dtype")));
  const at::Device device = m.model.device();
  for (const auto& method : methods) settings_from_args(args, method, device);  // bad settings fail early
  const CalibrationSet calib = calibration_for_learning(args, m.model, *m.tokenizer);
  o.settings_for = [&](const std::string& method) {
    LearnSettings s = settings_from_args(args, method, device);
    if (!args.has("batch")) s.batch = std::min(s.batch, calib.size());  // a given --batch is checked as it is
    return s;
  };
  const bool quiet = args.flag("quiet");
  if (!quiet) std::fprintf(stderr, "calibration: %s\n", calib.describe().c_str());
  ProgressPrinter progress(quiet);
  LearnControl control;
  control.job.cancel = interrupt_token();
  control.job.progress = progress.callback();
  Comparison c = run_comparison(m.model, *m.tokenizer, calib, o, control);
  progress.finish();
  c.model = args.get("model");
  const std::vector<std::string> files = write_comparison_report(c, args.get("out"));
  if (args.flag("json")) {
    std::cout << c.to_json().dump(2) << "\n";
    return 0;
  }
  std::printf("%s", c.markdown({}).c_str());
  std::printf("\nwritten:\n");
  for (const auto& f : files) std::printf("  %s\n", f.c_str());
  return 0;
}

}  // namespace

std::vector<Command> compare_commands() {
  std::vector<OptionSpec> options = {
      model_option(),
      tokenizer_option(),
      {"methods", "LIST", "comma-separated presets", "rtn,gptq,quarot,mr-gptq,spinquant,flatquant,latmix", false},
      {"tasks", "LIST", "evaluation tasks (see latmix eval --help)", "frankenstein,wikitext2", false},
      {"limit", "N", "first N items per zero-shot task / N windows per text (0: all)", "0", false},
      {"eval-seqlen", "N", "perplexity window in tokens", "512", false},
      {"out", "DIR", "report folder (report.md, report.json, *.png)", "", true}};
  for (const auto& o : learn_options()) options.push_back(o);
  options.push_back(dtype_option());
  return {
      {{"compare",
        "Run several methods on the same data and write a comparison report.",
        "Every method gets the same calibration sequences, formats and evaluation. Per method: learn (or build)\n"
        "the transforms, fold them, quantize the weights with the method's quantizer (weights= in --quant\n"
        "overrides it for all), evaluate, and measure the per-layer activation SQNR. Writes DIR/report.md,\n"
        "DIR/report.json and PNG plots (loss curves, perplexity, accuracy, SQNR). Learning options apply to\n"
        "every learned method; see latmix learn --help and docs/methods.md.",
        options},
       run_compare},
  };
}

std::vector<Command> learn_commands() {
  std::vector<OptionSpec> options = {model_option(), tokenizer_option(),
                                     {"method", "NAME", "rtn, gptq, quarot, mr-gptq, spinquant, flatquant or latmix", "",
                                      true}};
  for (const auto& o : learn_options()) options.push_back(o);
  for (const auto& o : std::vector<OptionSpec>{
           {"out", "PREFIX", "write the transforms to PREFIX.safetensors + PREFIX.json", "", false},
           {"events", "FILE", "write every step as a JSON line to FILE", "", false},
           {"checkpoint", "PREFIX", "checkpoint the transforms and optimizer to the folder PREFIX.checkpoint/ (and on cancel)", "", false},
           {"checkpoint-every", "N", "checkpoint every N steps (0: only at the end and on cancel)", "0", false},
           {"resume", "", "continue from --checkpoint when it exists (same model and settings)", "", false},
           dtype_option()}) {
    options.push_back(o);
  }
  return {
      {{"learn",
        "Learn (or build) one method's transforms on calibration text.",
        "Methods: rtn, gptq (no transforms), quarot, mr-gptq (fixed Hadamard transforms), spinquant, flatquant,\n"
        "latmix (learned; see docs/methods.md). The student is the transformed model with fake-quantized weights\n"
        "(RTN) and activations; only the transforms learn. Every default can be changed; the defaults depend on\n"
        "the device (CPU: minutes on the bundled model; CUDA: the papers' scale). Ctrl-C cancels (with\n"
        "--checkpoint PREFIX the checkpoint is written first); --checkpoint-every N and --resume continue a run.\n"
        "Memory (end-to-end): the loss runs through lm_head in chunks of positions, each decoder layer is\n"
        "recomputed in the backward pass with its transforms folded as it runs, and the batch is split into\n"
        "micro-batches (gradients accumulated) sized from the device's free memory; on a GPU up to 30 % of its\n"
        "memory then buys speed (the teacher's hidden states kept, the top layers' graph kept). The plan is\n"
        "printed before the first step, and a run that cannot fit stops there with the numbers (docs/methods.md).",
        options},
       run_learn},
  };
}

}  // namespace latmix::cli
