// latmix learn: one method's transforms, learned (or built) on calibration text.
#include <ATen/Parallel.h>

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <fstream>
#include <functional>
#include <iostream>
#include <nlohmann/json.hpp>

#include "commands.h"
#include "commands_learn.h"
#include "console.h"
#include "data_parallel.h"
#include "latmix/api/evaluate.h"
#include "latmix/api/learn.h"
#include "latmix/calib_data.h"
#include "latmix/compare.h"
#include "latmix/error.h"
#include "latmix/export.h"
#include "latmix/files.h"
#include "latmix/json.h"
#include "latmix/learn.h"
#include "latmix/tasks.h"
#include "remote.h"
#include "result_text.h"

namespace latmix::cli {

using json = nlohmann::json;

std::vector<OptionSpec> learn_options() {
  std::vector<OptionSpec> out;
  for (const auto& o : api::learn_option_help()) out.push_back({o.name, o.value, o.help, o.fallback, false});
  return out;
}

namespace {

std::optional<bool> yes_no_option(const Args& args, const std::string& name) {
  if (!args.has(name)) return std::nullopt;
  const std::string v = args.get(name);
  if (v != "yes" && v != "no") throw UsageError("--" + name + ": expected yes or no, found '" + v + "'");
  return v == "yes";
}

}  // namespace

void read_learn_options(const Args& args, api::LearnRequest& r) {
  auto integer = [&args](const std::string& name) {
    return args.has(name) ? std::optional<int64_t>(args.integer(name)) : std::nullopt;
  };
  auto number = [&args](const std::string& name) {
    return args.has(name) ? std::optional<double>(args.number(name)) : std::nullopt;
  };
  auto text = [&args](const std::string& name) {
    return args.has(name) ? std::optional<std::string>(args.get(name)) : std::nullopt;
  };
  r.model = args.get("model");
  r.tokenizer = args.get("tokenizer");
  r.device = args.get("device");
  r.dtype = args.get("dtype");
  r.quant = args.get("quant");
  r.calib = args.get("calib");
  r.data_dir = args.get("data-dir");
  r.samples = integer("samples");
  r.seqlen = integer("seqlen");
  r.seed = static_cast<uint64_t>(args.integer("seed"));
  r.steps = integer("steps");
  r.batch = integer("batch");
  r.lr = number("lr");
  r.optimizer = text("optimizer");
  r.momentum = number("momentum");
  r.weight_decay = number("weight-decay");
  r.warmup = number("warmup");
  r.schedule = text("schedule");
  r.grad_clip = number("grad-clip");
  r.lambda = number("lambda");
  r.param = text("param");
  r.init = text("init");
  r.affine_bias = yes_no_option(args, "affine-bias");
  r.rotation_map = text("rotation-map");
  r.mode = text("mode");
  r.loss = text("loss");
  r.micro_batch = integer("micro-batch");
  r.loss_chunk = integer("loss-chunk");
  r.recompute = yes_no_option(args, "recompute");
  r.kept_layers = integer("kept-layers");
  r.teacher_cache = yes_no_option(args, "teacher-cache");
  r.validation = integer("validation");
  r.eval_every = integer("eval-every");
  r.patience = integer("patience");
  r.deployed_check = text("deployed-check");
  r.gptq_refresh = integer("gptq-refresh");
}

api::LearnRequest learn_request_from_args(const Args& args) {
  api::LearnRequest r;
  r.method = args.get("method");
  read_learn_options(args, r);
  r.out = args.get("out");
  r.events = args.get("events");
  r.checkpoint = args.get("checkpoint");
  r.checkpoint_every = args.integer("checkpoint-every");
  r.resume = args.flag("resume");
  r.split = args.get("split");
  return r;
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

// compare --nproc starts processes on this host: through --engine it is refused (learn's runs on
// the engine's host).
void refuse_nproc_on_engine(const Args& args) {
  if (remote_engine() && args.integer("nproc") != 1) {
    throw UsageError(
        "--nproc: compare learns in several processes on this host only, not through --engine "
        "(latmix --engine URL learn --nproc N runs them on the engine's host)");
  }
}

// Runs `body(model, rank0)` in this process as one rank of `--nproc N` (or of an external launcher's
// processes; one process alone without either): starts the workers when it is rank 0, loads the model
// on this rank's device, and turns a failure into rank 0's message naming the worker that ended.
// Returns true on rank 0 (the one that prints); a worker's cancel (rank 0 stopped every rank) is quiet.
// `split_layers` (learn --split layers): each process holds only its share of the layers
// (Model::layer_share of the model opened memory-mapped).
bool run_as_rank(const Args& args, bool learns, const std::string& dtype, LearnControl& control,
                 const std::function<void(LoadedModel&, bool rank0)>& body, bool split_layers = false) {
  DataParallel dp(args, learns);
  if (dp.world() > 1 && args.integer("threads") == 0) {
    // The cores shared between the processes (the host's, not one process's each).
    at::set_num_threads(static_cast<int>(std::max<int64_t>(1, available_cores() / dp.world())));
  }
  control.group = dp.group();
  try {
    const bool share = split_layers && dp.world() > 1;
    LoadedModel m =
        load_model_from_args(args, parse_compute_dtype(dtype), share, dp.device(parse_device(args.get("device"))));
    if (share) {
      const auto [first, last] = layer_share_range(m.model.config().num_layers, dp.rank(), dp.world());
      m.model = m.model.layer_share(first, last, dp.rank() == 0, dp.rank() == dp.world() - 1);
    }
    body(m, dp.rank() == 0);
    dp.finish();
  } catch (const Cancelled&) {
    if (dp.rank() != 0) return false;  // rank 0 stopped every rank and says so
    throw;
  } catch (const UsageError&) {
    throw;
  } catch (const Error& e) {
    if (dp.rank() != 0) throw Error("rank " + std::to_string(dp.rank()) + " of --nproc: " + e.what());
    throw Error(dp.explain(e.what()));
  }
  return dp.rank() == 0;
}

int run_learn(const Args& args) {
  find_method(args.get("method"));
  api::LearnRequest request = learn_request_from_args(args);
  // A worker of a server's learn job (latmix serve, "nproc"): the job's request.
  if (const char* file = DataParallel::worker_request()) request = api::learn_request_from_json(read_json_file(file));
  const bool quiet = args.flag("quiet");
  const bool tty = stderr_is_terminal();
  LearnControl control;
  control.job.cancel = interrupt_token();
  control.on_note = [&](const std::string& note) {
    if (!quiet) std::fprintf(stderr, "%s\n", note.c_str());
  };
  control.on_step = [&](const LearnEvent& e) {
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
  api::LearnResult result;
  if (remote_engine()) {
    RemoteHooks hooks;
    hooks.on_note = control.on_note;
    hooks.on_step = [&control](const nlohmann::json& step) { control.on_step(api::learn_event_from_json(step)); };
    nlohmann::json r = api::to_json(request);
    const int64_t nproc = args.integer("nproc");
    if (nproc < 1 || nproc > 1024) throw UsageError("--nproc: expected 1 to 1024, found " + std::to_string(nproc));
    if (nproc > 1) r["nproc"] = nproc;  // the engine starts the processes on its host
    result = api::learn_result_from_json(run_remote("learn", r, hooks));
  } else {
    const bool learns = find_method(request.method).learned;
    // --split's value is checked by learn_settings(); that it needs layer-wise learning, here
    // (before the model loads; the engine refuses it too, in a group).
    const bool split = request.split != "batch";
    if (split && api::learn_settings(request, at::kCPU).mode != LearnMode::LayerWise && learns) {
      throw UsageError(
          "--split layers: each process learns its share of the layers, which needs layer-wise learning "
          "(--mode layerwise)");
    }
    const bool rank0 = run_as_rank(
        args, learns, request.dtype, control,
        [&](LoadedModel& m, bool first) {
          api::LearnRequest r = request;
          if (!first) {  // rank 0 writes
            r.out.clear();
            r.events.clear();
          }
          result = api::run_learn(r, m.model, *m.tokenizer, control);
        },
        split);
    if (!rank0) return 0;
  }
  if (args.flag("json")) {
    std::cout << api::to_json(result).dump(2) << "\n";
    return 0;
  }
  std::printf("%s", format_learn_text(result).c_str());
  return 0;
}

int run_compare(const Args& args) {
  const api::CompareRequest request = compare_request_from_args(args);
  api::check_compare_request(request);  // bad methods, tasks or settings fail before the model loads
  const bool quiet = args.flag("quiet");
  ProgressPrinter progress(quiet);
  LearnControl control;
  control.job.cancel = interrupt_token();
  control.job.progress = progress.callback();
  if (!quiet) control.on_note = [](const std::string& note) { std::fprintf(stderr, "%s\n", note.c_str()); };
  api::CompareResult result;
  refuse_nproc_on_engine(args);
  if (remote_engine()) {
    result = api::compare_result_from_json(
        run_remote("compare", api::to_json(request), {control.job.progress, control.on_note}));
  } else {
    bool learns = false;
    for (const std::string& method : api::check_compare_request(request)) learns = learns || find_method(method).learned;
    const bool rank0 = run_as_rank(args, learns, request.learning.dtype, control, [&](LoadedModel& m, bool first) {
      api::CompareRequest r = request;
      if (!first) r.out.clear();  // rank 0 writes the report; the other ranks only learn with it
      result = api::run_compare(r, m.model, *m.tokenizer, control);
    });
    if (!rank0) return 0;
  }
  progress.finish();
  if (args.flag("json")) {
    std::cout << api::to_json(result).dump(2) << "\n";
    return 0;
  }
  std::printf("%s", format_compare_text(result).c_str());
  return 0;
}

}  // namespace

std::string format_learn_text(const api::LearnResult& result) {
  const MethodResult& r = result.run;
  const MethodPreset& preset = find_method(result.settings.method);
  std::string out;
  appendf(out, "method     %s (%s)\n", result.settings.method.c_str(), preset.summary.c_str());
  appendf(out, "settings   %s\n", result.settings.to_json().dump().c_str());
  if (!r.curve.empty()) {
    appendf(out, "loss       %.5g -> %.5g over %zu steps in %s%s\n", r.curve.front().loss, r.curve.back().loss,
            r.curve.size(), format_duration(r.seconds).c_str(), r.resumed ? " (resumed)" : "");
  } else {
    appendf(out, "transforms fixed (%s), built in %s\n", preset.transforms.c_str(), format_duration(r.seconds).c_str());
  }
  if (!r.validation_note.empty()) appendf(out, "%s\n", r.validation_note.c_str());
  for (const auto& [name, value] : r.conditions) appendf(out, "condition  %s: %.4g\n", name.c_str(), value);
  // The transforms file is PREFIX.safetensors for --out PREFIX.
  const std::string suffix = ".safetensors";
  const std::string& file = result.transforms;
  if (!file.empty()) {
    const std::string prefix =
        file.size() > suffix.size() && file.compare(file.size() - suffix.size(), suffix.size(), suffix) == 0
            ? file.substr(0, file.size() - suffix.size())
            : file;
    appendf(out, "written    %s.safetensors, %s.json\n", prefix.c_str(), prefix.c_str());
  }
  return out;
}

std::string format_compare_text(const api::CompareResult& result) {
  std::string out = result.comparison.markdown({});
  appendf(out, "\nwritten:\n");
  for (const auto& f : result.files) appendf(out, "  %s\n", f.c_str());
  return out;
}

api::CompareRequest compare_request_from_args(const Args& args) {
  api::CompareRequest r;
  r.methods = args.get("methods");
  r.tasks = args.get("tasks");
  r.limit = args.integer("limit");
  r.eval_seqlen = args.integer("eval-seqlen");
  r.out = args.get("out");
  read_learn_options(args, r.learning);
  return r;
}

std::vector<Command> compare_commands() {
  std::vector<OptionSpec> options = {
      model_option(),
      tokenizer_option(),
      {"methods", "LIST", "comma-separated presets", "rtn,gptq,quarot,mr-gptq,spinquant,flatquant,latmix", false},
      {"tasks", "LIST", "evaluation tasks (see latmix eval --help)", "frankenstein,wikitext2", false},
      {"limit", "N", "first N items per zero-shot task / N windows per text and for the KL to FP (at most 32; 0: all)", "0", false},
      {"eval-seqlen", "N", "perplexity window in tokens", "512", false},
      {"out", "DIR", "report folder (report.md, report.json, *.png)", "", true}};
  for (const auto& o : learn_options()) options.push_back(o);
  options.push_back(dtype_option());
  options.push_back(nproc_option());
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
           nproc_option(),
           {"split", "batch|layers",
            "how --nproc's processes share layer-wise learning: a share of every batch, or a share of the layers "
            "(each process loads only its layers; the activations pass from process to process)",
            "batch", false},
           {"checkpoint", "PREFIX",
            "checkpoint the transforms and optimizer to the folder PREFIX.checkpoint/ (and on cancel)", "", false},
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
