#pragma once
/// \file api/learn.h
/// Room: engine/api, the use-case layer (issue 16). One request value and one function per task;
/// the `latmix` CLI parses its flags into the request, the studio fills it from its widgets, and
/// both print or draw the result. This file is the learn task: `latmix learn`, the studio's Learn
/// tab, and the learning options that `latmix compare` and the Compare tab share.
///
/// Every default lives here once: the calibration size (learn_calibration_defaults), the method's
/// settings with the request applied ("an explicit weights= in the quant spec wins",
/// learn_settings), and the default batch fitted to the calibration set.

#include <ATen/ATen.h>

#include <nlohmann/json.hpp>

#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include "latmix/calib_data.h"
#include "latmix/learn.h"
#include "latmix/model.h"
#include "latmix/tokenizer.h"

namespace latmix::api {

/// What to learn: the values of `latmix learn`'s options, by the same names (snake_case in JSON and
/// here, --kebab-case on the command line). Every learning knob is optional: unset means the
/// method's default for the device (method_defaults()), as when the CLI option is left out.
/// Enumerated knobs hold the CLI's names ("adamw", "cosine", "lu", ...) and are checked by
/// learn_settings() with the CLI's messages.
struct LearnRequest {
  // The model (the client opens it; run_learn() takes it open).
  std::string model;              ///< --model: Hugging Face folder or llama2.c .bin
  std::string tokenizer;          ///< --tokenizer ("": the model's own)
  std::string device = "cpu";     ///< --device: cpu, cuda, cuda:N
  std::string dtype = "fp32";     ///< --dtype: compute dtype, fp32 or bf16
  std::string method = "latmix";  ///< --method: rtn, gptq, quarot, mr-gptq, spinquant, flatquant, latmix
  std::string quant = "mxfp4";    ///< --quant: QuantSpec text; weights= given here overrides the method's

  // Calibration text.
  std::string calib = "gutenberg";  ///< --calib: "gutenberg" (the training books) or comma-separated files
  std::string data_dir;             ///< --data-dir ("": default_eval_data_dir()), for gutenberg
  std::optional<int64_t> samples;   ///< --samples (unset: learn_calibration_defaults())
  std::optional<int64_t> seqlen;    ///< --seqlen (unset: learn_calibration_defaults())
  uint64_t seed = 0;                ///< --seed: random rotations and batch order

  // The learning knobs (ignored by the fixed presets rtn, gptq, quarot, mr-gptq).
  std::optional<int64_t> steps;             ///< --steps (layer-wise: per layer)
  std::optional<int64_t> batch;             ///< --batch (unset: the method's, at most the samples)
  std::optional<double> lr;                 ///< --lr
  std::optional<std::string> optimizer;     ///< --optimizer: adamw | sgd
  std::optional<double> momentum;           ///< --momentum (SGD)
  std::optional<double> weight_decay;       ///< --weight-decay (AdamW, decoupled)
  std::optional<double> warmup;             ///< --warmup: fraction of the steps
  std::optional<std::string> schedule;      ///< --schedule: cosine | constant
  std::optional<double> grad_clip;          ///< --grad-clip (0: off)
  std::optional<double> lambda;             ///< --lambda: latmix's volume term
  std::optional<std::string> param;         ///< --param: lu | qr (latmix)
  std::optional<std::string> init;          ///< --init: hadamard | block_hadamard | random | identity
  std::optional<bool> affine_bias;          ///< --affine-bias yes|no (latmix)
  std::optional<std::string> rotation_map;  ///< --rotation-map: cayley | exp (spinquant)
  std::optional<std::string> mode;          ///< --mode: e2e | layerwise
  std::optional<std::string> loss;          ///< --loss: kl | ce | mse (unset with mode: that mode's)

  // Memory of end-to-end learning (no effect on the result beyond float rounding).
  std::optional<int64_t> micro_batch;  ///< --micro-batch (unset: from the device's free memory)
  std::optional<int64_t> loss_chunk;   ///< --loss-chunk (unset: 256 MB of logits)
  std::optional<bool> recompute;       ///< --recompute yes|no (unset: yes)
  std::optional<int64_t> kept_layers;  ///< --kept-layers (unset: what fits in 30 % of a GPU)
  std::optional<bool> teacher_cache;   ///< --teacher-cache yes|no (unset: decided by memory)

  // Validation (docs/methods.md, "Never worse than the start").
  std::optional<int64_t> validation;          ///< --validation: held-out sequences (0: none)
  std::optional<int64_t> eval_every;          ///< --eval-every: steps between measurements
  std::optional<int64_t> patience;            ///< --patience (0: never stop early)
  std::optional<std::string> deployed_check;  ///< --deployed-check: ends | every | no
  std::optional<int64_t> gptq_refresh;        ///< --gptq-refresh K: GPTQ in the loop every K steps (0: off)

  // Outputs of `latmix learn` ("" / 0 / false: none).
  std::string out;               ///< --out PREFIX: PREFIX.safetensors + PREFIX.json
  std::string events;            ///< --events FILE: every step as a JSON line
  std::string checkpoint;        ///< --checkpoint PREFIX: PREFIX.checkpoint/
  int64_t checkpoint_every = 0;  ///< --checkpoint-every N (0: at the end and on cancel only)
  bool resume = false;           ///< --resume from --checkpoint when it exists

  /// --split: how the processes of a group (--nproc, LearnControl::group) share layer-wise
  /// learning: "batch" (each takes a share of every batch's rows) or "layers" (each learns its share
  /// of the layers, holding only those: LearnControl::split_layers).
  std::string split = "batch";
};

/// One calibration or learning option as `latmix learn --help` documents it; the studio's Learn tab
/// quotes the same texts in its tooltips.
struct LearnOptionHelp {
  std::string name;   ///< without "--": "quant", "weight-decay"
  std::string value;  ///< placeholder: "SPEC", "N", "adamw|sgd"
  std::string help;
  std::string fallback;  ///< the default the help shows ("" none)
};
/// --quant ... --teacher-cache, in the help's order (shared by `latmix learn` and `latmix compare`).
const std::vector<LearnOptionHelp>& learn_option_help();
/// The help text of one of them (name without "--"); std::logic_error for an unknown name (a bug).
const std::string& learn_option_help(const std::string& name);

/// Every field, unset optionals as null (the key is always there).
nlohmann::json to_json(const LearnRequest& request);
/// The inverse of to_json(). Strict: an unknown key or a value of the wrong type is a
/// latmix::UsageError naming the key; a key left out (or null for an optional) keeps the default.
/// Values are checked by learn_settings(), not here.
LearnRequest learn_request_from_json(const nlohmann::json& json);

/// The `latmix learn` / `latmix compare` options that repeat the request's calibration and
/// learning knobs (--quant ... --deployed-check ...): what is set, in the CLI's help order,
/// numbers in their shortest exact form. --data-dir only with --calib gutenberg.
std::vector<std::string> learn_option_arguments(const LearnRequest& request);
/// The whole `latmix learn` command line of the request: "latmix", "learn", --model, --method,
/// the learn options, --tokenizer / --dtype when not the default, --device, and the outputs set.
std::vector<std::string> learn_command_line(const LearnRequest& request);

/// The calibration size when the request leaves it unset: 32 sequences of 128 tokens on the CPU
/// (minutes on the bundled model), 256 of min(context, 2048) on a GPU (the papers' scale).
/// `max_position` <= 0: unknown (2048).
struct CalibrationSize {
  int64_t samples = 0;
  int64_t seqlen = 0;
};
CalibrationSize learn_calibration_defaults(bool gpu, int64_t max_position);

/// The method's defaults for `device` with the request applied (the CLI's rules: an explicit
/// weights=rtn|gptq in `quant` wins over the method's weight quantizer; the learning knobs apply to
/// learned presets only; --mode without --loss takes that mode's loss). With `calibration`, a batch
/// the request leaves unset is at most its size (a given batch is kept, and refused later when it
/// is larger). \throws latmix::UsageError for a bad method, spec, name or value (the CLI's
/// messages, naming the option; `split` too).
LearnSettings learn_settings(const LearnRequest& request, at::Device device,
                             const CalibrationSet* calibration = nullptr);

/// Whether the request's run reads calibration text: a learned preset, or GPTQ weights.
bool learn_needs_calibration(const LearnSettings& settings);

/// The request's calibration sequences for `model`: the files of `calib` (gutenberg: the data
/// folder's training books), read until there are 4 x samples x seqlen tokens (spread over several
/// books without tokenizing all of them), then sampled evenly. \throws latmix::UsageError for a
/// size below 1 sequence / 2 tokens, latmix::Error for a missing file.
CalibrationSet learn_calibration(const LearnRequest& request, const Model& model, const Tokenizer& tokenizer);

/// What run_learn() did: the settings it used, the calibration, the method's result, and the
/// transforms file written (with --out).
struct LearnResult {
  LearnSettings settings;   ///< learn_settings() with the checkpoint options and the batch fitted
  std::string calibration;  ///< CalibrationSet::describe() ("" without calibration)
  MethodResult run;         ///< plan, loss curve, validation, condition numbers
  std::string transforms;   ///< "PREFIX.safetensors" written for request.out ("" when none)
};
/// The result as `latmix learn --json` prints it (and `latmix serve` returns it): method, settings
/// (LearnSettings::to_json()), seconds, steps, resumed, calibration, memory (when planned),
/// validation {samples, curve, best_step, stopped_early, note[, deployed]} (with held-out
/// sequences), first_loss and final_loss (with steps), condition_numbers (by name), conditions
/// ([{name, value}] in their order), transforms (when written), curve (every step's
/// LearnEvent::to_json()).
nlohmann::json to_json(const LearnResult& result);
/// The inverse of to_json(). Strict: an unknown key (at any depth) or a value of the wrong type is a
/// latmix::UsageError naming the key's path ("learn result: key 'curve[3].loss': ..."), and so are
/// steps / first_loss / final_loss that disagree with the curve; a key left out keeps the default.
/// run.method and run.settings are the result's settings. What the round trip does not restore
/// (to_json() does not write it): the learned plan (run.plan: its tensors stay on the side that ran
/// the task; with request.out they are in the transforms file `transforms` names), the settings'
/// fields outside LearnSettings::to_json() (a fixed preset's learning knobs, the memory and
/// checkpoint fields: their defaults), the validation fields when there were no held-out sequences,
/// and a loss term's place among the terms (they come back in name order: kl / ce before reg, as
/// learning writes them). Everything `latmix learn` prints is restored.
LearnResult learn_result_from_json(const nlohmann::json& json);
/// One learning step read back from LearnEvent::to_json() (a remote engine's "step" events), strict
/// as learn_result_from_json() ("learn event: key 'loss': ...").
LearnEvent learn_event_from_json(const nlohmann::json& json);

/// Learns (or builds) the request's method on `model`: learn_settings() for the model's device,
/// the calibration when needed (learn_calibration()), obtain_plan() with `control`, then the
/// outputs the request names (events: every step as a JSON line, written before on_step sees it;
/// out: the transforms with the model's fingerprint). `control.on_note` also receives
/// "calibration: ..." and the "learning ..." line before the first step, as the CLI prints them.
/// The model is not modified. \throws latmix::UsageError for bad settings, latmix::Cancelled.
LearnResult run_learn(const LearnRequest& request, const Model& model, const Tokenizer& tokenizer,
                      const LearnControl& control = {});

}  // namespace latmix::api
