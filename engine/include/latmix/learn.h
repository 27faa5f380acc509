#pragma once
/// \file learn.h
/// Room: engine/learn/ (latmix_engine).
/// Transform learning: the method presets (rtn, gptq, quarot, mr-gptq, spinquant, flatquant,
/// latmix), the learning loop with its events, and applying a method to a model
/// (docs/methods.md says what each preset does and which choices were ours).
///
/// The student of a learning step is the model with the plan's transforms folded into its weights
/// through autograd (folded_weights()), its covered weights fake-quantized round-to-nearest with a
/// straight-through gradient, the online transforms applied by a hook and the activations
/// fake-quantized (straight-through) at the inputs of the quantized linears. Only the transforms'
/// parameters are trained; the model's weights never change. The final weights are quantized
/// afterwards by the preset's weight method (GPTQ or RTN) on the folded model.

#include <ATen/ATen.h>

#include <nlohmann/json_fwd.hpp>

#include <chrono>
#include <condition_variable>
#include <cstdint>
#include <functional>
#include <limits>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <utility>
#include <vector>

#include "latmix/calib_data.h"
#include "latmix/model.h"
#include "latmix/progress.h"
#include "latmix/quant.h"
#include "latmix/transform_fold.h"
#include "latmix/transforms.h"

namespace latmix {

/// Whole model at once, or one decoder layer at a time (bounded memory).
enum class LearnMode { EndToEnd, LayerWise };
/// KL(teacher || student) over the vocabulary; next-token cross-entropy of the student; or
/// (layer-wise) the mean squared error between the FP and the student layer outputs.
enum class LearnLoss { Kl, CrossEntropy, LayerMse };
enum class OptimizerKind { AdamW, Sgd };
/// How validation judges a plan whose weights are deployed with GPTQ (the student learns with
/// RTN weights; docs/methods.md, "Never worse than the start"). Off: the RTN student only. Ends:
/// the plan validation chose is kept only if the deployed model (plan folded, GPTQ weights) beats
/// the start's deployed model on the held-out sequences (two GPTQ runs). Every: every validation
/// measurement is of the deployed model (one GPTQ run each). With RTN weights the student is the
/// deployed model, so all three are the same.
enum class DeployedCheck { Off, Ends, Every };
/// The rotation a learned transform starts from: a full-width Hadamard with random signs, a
/// block-diagonal one of the MX block size (MR-GPTQ's transform), a Haar-random rotation, or I.
enum class TransformInit { Hadamard, BlockHadamard, Random, Identity };

std::string to_string(LearnMode mode);
std::string to_string(LearnLoss loss);
std::string to_string(OptimizerKind kind);
std::string to_string(TransformInit init);
/// Parsers for the names above (and "e2e"/"layerwise", "kl"/"ce"/"mse", "adamw"/"sgd",
/// "hadamard"/"random"/"identity"). \throws latmix::UsageError listing the valid names.
LearnMode parse_learn_mode(const std::string& name);
LearnLoss parse_learn_loss(const std::string& name);
OptimizerKind parse_optimizer(const std::string& name);
TransformInit parse_transform_init(const std::string& name);

/// Every knob of a method. method_defaults() fills it for a preset; every field can be changed.
struct LearnSettings {
  std::string method = "latmix";
  /// Formats of the student and of the final model; its weight method (rtn/gptq) is applied
  /// after learning.
  QuantSpec quant;
  LearnMode mode = LearnMode::EndToEnd;
  LearnLoss loss = LearnLoss::Kl;
  int64_t steps = 0;   ///< optimizer steps (layer-wise: per layer); 0 for the fixed presets
  int64_t batch = 4;   ///< calibration sequences per step
  OptimizerKind optimizer = OptimizerKind::AdamW;
  double lr = 1e-3;
  double momentum = 0.0;      ///< SGD only
  double weight_decay = 0.0;  ///< AdamW (decoupled)
  double warmup = 0.05;       ///< fraction of the steps with a linear warm-up
  bool cosine = true;         ///< cosine decay to zero after the warm-up (else constant)
  double grad_clip = 1.0;     ///< max global gradient norm (0: off)
  double lambda = 0.1;        ///< LATMiX volume regularizer weight: lambda * (sum_i log|s_i|)^2
  AffineTransform::Param param = AffineTransform::Param::LU;  ///< latmix: LU (the paper's; docs/results.md)
  TransformInit init = TransformInit::Hadamard;
  RotationTransform::Map rotation_map = RotationTransform::Map::Cayley;  ///< spinquant
  bool affine_bias = true;  ///< latmix: learn the bias v of T1 too
  uint64_t seed = 0;
  /// Write a checkpoint of the transforms every N steps (0: never) and on cancel, to
  /// checkpoint_prefix: one folder PREFIX.checkpoint/ (transforms, optimizer moments, state.json),
  /// swapped in with one rename.
  int64_t checkpoint_every = 0;
  std::string checkpoint_prefix;
  /// Start from checkpoint_prefix when it exists (after checking the fingerprint).
  bool resume = false;

  /// Validation (docs/methods.md, "Never worse than the start"): `validation` calibration
  /// sequences, evenly spaced over the set, are held out of training (-1: one in eight, none when
  /// fewer than 8 sequences); the student's loss on them (KL to the FP model; CE when training
  /// with CE) is measured before the first step, every `eval_every` steps (0: an eighth of the
  /// steps) and after the last; the plan with the lowest validation loss is the result, so it is
  /// never worse than the initialization on validation. End-to-end learning stops early after
  /// `patience` evaluations without a new best (0: never); layer-wise learning is measured at the
  /// start and the end only.
  int64_t validation = -1;
  int64_t eval_every = 0;
  int64_t patience = 4;
  DeployedCheck deployed_check = DeployedCheck::Ends;
  /// GPTQ in the loop (docs/methods.md, "GPTQ in the loop"), end-to-end learning with GPTQ
  /// weights only: every `gptq_refresh` steps (0: never; the student rounds its weights to nearest)
  /// the current plan is folded and its weights quantized by GPTQ as the deployed model's are, and
  /// each covered weight's residual delta = GPTQ(W') - W' is kept; until the next refresh the
  /// student's weight is RTN(W'(theta) + delta) with a straight-through gradient, which at the
  /// refresh step is GPTQ(W') exactly. Every validation measurement refreshes and measures that
  /// refresh's deployed model (so deployed_check is not needed). Refused with layer-wise learning.
  int64_t gptq_refresh = 0;

  /// Memory of end-to-end learning (docs/methods.md, "How memory is chosen"). None of these change
  /// the step's result beyond float rounding, so they are not in to_json() nor in a checkpoint's
  /// fingerprint: a run may resume with other values.
  /// Sequences per forward/backward pass; the gradients of a step's batch are accumulated over
  /// its micro-batches. 0: chosen from the device's free memory (CPU: the whole batch).
  int64_t micro_batch = 0;
  /// Positions per lm_head + loss chunk (the [positions, vocab] logits exist one chunk at a time).
  /// 0: chunks of about 256 MB of float32 logits.
  int64_t loss_chunk = 0;
  /// Keep only each decoder layer's input in the forward pass and recompute the layer in the
  /// backward pass (activation checkpointing, with the transforms folded layer by layer). Not
  /// available when lm_head is quantized (the residual transform then folds into it).
  bool checkpoint_layers = true;
  /// With checkpoint_layers: the last N decoder layers keep their autograd graph instead of being
  /// recomputed (faster, more memory). Unset: as many as fit in the speed budget (on a GPU, 30 %
  /// of its memory for the whole step; CPU: 0).
  std::optional<int64_t> kept_layers;
  /// Keep the FP model's final hidden states of every calibration sequence on the device after
  /// its first use (KL loss), instead of running the teacher for every batch. Unset: on a GPU when
  /// sequences repeat (steps x batch > samples) and the cache fits in the speed budget; CPU: no.
  std::optional<bool> cache_teacher;

  /// Every setting as JSON (for reports, manifests and the checkpoint fingerprint).
  nlohmann::json to_json() const;
};

/// One preset: what it is, and whether it learns.
struct MethodPreset {
  std::string name;         ///< "latmix", ...
  std::string summary;      ///< one line
  std::string transforms;   ///< where its transforms go
  bool learned = false;     ///< false: fixed transforms (or none)
};
const std::vector<MethodPreset>& method_presets();
/// \throws latmix::UsageError naming the valid presets.
const MethodPreset& find_method(const std::string& name);

/// The preset's settings for `format` (the spec's weights/activations; its weights= is replaced
/// by the preset's weight method), sized for `device`: a CPU default that runs in minutes on the
/// bundled model, the papers' scale on a GPU. Step count and batch are the only differences.
std::string to_string(DeployedCheck check);
/// "no", "ends" or "every".
DeployedCheck parse_deployed_check(const std::string& text);

LearnSettings method_defaults(const std::string& method, const QuantSpec& format, at::Device device);

/// One learning step's figures.
struct LearnEvent {
  int64_t step = 0;   ///< 1-based, counted over the whole run (layer-wise: over all layers)
  int64_t total = 0;
  int64_t layer = -1;  ///< layer-wise: the layer being learned
  double loss = 0;     ///< total loss
  /// The loss terms ("kl", "ce", "mse", "reg"), in a fixed order.
  std::vector<std::pair<std::string, double>> terms;
  double lr = 0;
  double grad_norm = 0;
  double seconds = 0;  ///< since the start of learning
  double eta = 0;      ///< seconds left (estimated)
  /// The validation loss measured after this step (LearnSettings::validation), when it was.
  std::optional<double> validation;
  nlohmann::json to_json() const;
};
using LearnCallback = std::function<void(const LearnEvent&)>;

/// Pauses a learning run between steps. Cheap to copy; copies share the state.
class PauseToken {
 public:
  PauseToken();
  void pause() const;
  void resume() const;
  bool paused() const;
  /// Blocks while paused; returns early (and lets check() throw) when `cancel` is cancelled.
  void wait(const CancelToken& cancel) const;
  /// wait() for at most `timeout`: returns when resumed, when `cancel` is cancelled, or when the
  /// time is up, whichever comes first.
  void wait_for(const CancelToken& cancel, std::chrono::milliseconds timeout) const;

 private:
  struct State {
    std::mutex mutex;
    std::condition_variable cv;
    bool paused = false;
  };
  std::shared_ptr<State> state_;
};

struct LearnControl;
namespace dist {
class Group;
}

/// Work asked for while a learning run goes on, run between two of its steps on the run's thread,
/// with the plan as it is then (a heatmap of the transforms being learned, computed with the model
/// the run holds): LearnControl::on_snapshot, with snapshot_every = 1, calls serve(). While the run
/// is paused it holds in serve(), so that work asked for during a pause runs at once. Cheap to copy;
/// copies share the state. Thread-safe.
class StepEndWork {
 public:
  /// `step`: the last step ended. Throwing latmix::Cancelled ends the run; report other errors yourself.
  using Work = std::function<void(const TransformPlan& plan, int64_t step, const JobControl& job)>;
  StepEndWork();
  void push(Work work) const;
  /// The step just ended (LearnControl::on_step calls it).
  void set_step(int64_t step) const;
  int64_t step() const;
  /// At a step end: runs the work pushed so far (and any pushed meanwhile), then, while `pause` is
  /// paused and the job not cancelled, waits for more (wake() or 50 ms). `on_hold` is told once per
  /// hold, with the step.
  /// With `hold` false it runs the work and returns, telling `on_hold` once per paused step.
  void serve(const TransformPlan& plan, const JobControl& job, const PauseToken& pause,
             const std::function<void(int64_t step)>& on_hold = {}, bool hold = true) const;
  /// serve() has something to do (LearnControl::snapshot_wanted): work is waiting, or `pause` is
  /// paused (with `hold` false: paused and on_hold not yet told of this step).
  bool wanted(const PauseToken& pause, bool hold = true) const;
  /// Ends a hold's wait at once (a resume, more work).
  void wake() const;
  /// Drops the work not yet run (the run has ended).
  void drop() const;
  /// Makes `control`'s run serve this at every step end: its on_step (wrapped) tells set_step(),
  /// snapshot_every = 1, snapshot_wanted() is wanted(pause), on_snapshot() is serve() with
  /// control.job (set it first), `pause` and `on_hold`.
  /// With control.group set (set it first), step ends do not hold (`hold` false below): the run's
  /// processes hold together at the next step's start (LearnControl::group), where work asked for
  /// meanwhile is served within 50 ms.
  void attach(LearnControl& control, const PauseToken& pause, std::function<void(int64_t step)> on_hold = {}) const;

 private:
  struct State;
  std::shared_ptr<State> state_;
};

/// What learning (or building a fixed plan) produced.
struct MethodResult {
  std::string method;
  LearnSettings settings;
  TransformPlan plan;
  std::vector<LearnEvent> curve;  ///< empty for fixed presets
  double seconds = 0;
  bool resumed = false;  ///< started from a checkpoint
  /// Condition numbers of the learned transforms (name, value): the invertibility check.
  std::vector<std::pair<std::string, double>> conditions;
  /// How end-to-end learning used memory (what on_note said); empty otherwise.
  std::string memory_plan;
  /// Validation: the held-out sequences, the loss measured (step, value; step 0 is the
  /// initialization), the step whose plan is the result, and a sentence saying what happened
  /// (best step, early stop, or "learning added nothing").
  int64_t validation_samples = 0;
  std::vector<std::pair<int64_t, double>> validation_curve;
  int64_t best_step = -1;
  bool stopped_early = false;
  std::string validation_note;
  /// The deployed check (LearnSettings::deployed_check): the held-out loss of the deployed model
  /// (plan folded, weights quantized as the spec says, GPTQ included) of the start and of the
  /// result; NaN when it was not measured.
  double deployed_start = std::numeric_limits<double>::quiet_NaN();
  double deployed_result = std::numeric_limits<double>::quiet_NaN();
};

struct LearnControl {
  JobControl job;  ///< cancel; progress stage "learn", done/total in steps
  PauseToken pause;
  LearnCallback on_step;
  /// Called with the current plan every `snapshot_every` steps (0: never), on the learning
  /// thread, e.g. to refresh a heatmap with the transforms as they are. The plan's tensors are
  /// detached copies.
  std::function<void(const TransformPlan&)> on_snapshot;
  int64_t snapshot_every = 0;
  /// Asked at each such step before the plan is copied (null: always): false skips on_snapshot
  /// for that step (StepEndWork::wanted(): nothing asked for and not paused).
  std::function<bool()> snapshot_wanted;
  /// Called once before the first step with how memory was planned (micro-batch, loss chunk,
  /// checkpointing, the estimate and the device's free memory), e.g. for the log.
  std::function<void(const std::string&)> on_note;
  /// Data-parallel learning (latmix/distributed.h; null: this process alone). Every process of the
  /// group runs obtain_plan() with the same model, calibration and settings; each takes its share of
  /// every batch (contiguous rows, in rank order), the loss keeps the whole batch's denominator, and
  /// the transforms' gradients and the loss terms are summed over the processes before each optimizer
  /// step: the run equals one process's with the same batch, up to the order of float sums. A cancel
  /// in any process stops all of them at the same step. Only rank 0 writes checkpoints; the callbacks
  /// above are called in every process that sets them (set them in rank 0's). A pause in any process
  /// holds every process at the next step's start; while held, a process whose snapshot_wanted()
  /// (set it) turns true runs on_snapshot() there.
  dist::Group* group = nullptr;
  /// With a group and layer-wise learning: each process learns its share of the decoder layers
  /// (layer_share_range) with whole batches, instead of a share of every batch's rows in every
  /// layer. The FP activations go from rank to rank at the shares' boundaries (Group::send), the
  /// processes learn their layers side by side, validation runs as a pipeline, and the learned
  /// transforms are gathered at the end: every process returns the whole plan. The model each
  /// process passes need hold only its share (Model::layer_share: its layers, the embedding on rank
  /// 0, lm_head on the last); a run equals one process's layer-wise run up to float rounding. Every
  /// process takes part in the checkpoints (rank 0 writes them, with each layer's progress), so a
  /// run resumes with any number of processes.
  bool split_layers = false;
};

/// Layers [first, last) of process `rank` of `world` in a layer-split run: contiguous, in rank
/// order, the first `layers % world` processes one layer more.
std::pair<int64_t, int64_t> layer_share_range(int64_t layers, int rank, int world);

/// The plan of a preset: the fixed transforms of quarot / mr-gptq, nothing for rtn / gptq, and
/// for the learned presets the transforms learned on `calib` (which they need). The model is not
/// modified. \throws latmix::UsageError for bad settings (unknown method, a width no Hadamard
/// supports, learned method without calibration data, layer-wise with a global transform that
/// cannot be learned layer by layer...), latmix::Cancelled on cancel (after writing the
/// checkpoint when one is configured).
MethodResult obtain_plan(const Model& fp, const CalibrationSet* calib, const LearnSettings& settings,
                         const LearnControl& control = {});

/// Applies a plan and the final weight quantization: a copy of `fp` with the plan folded (online
/// hook installed), then quantize_model() with settings.quant. `calib` is needed for GPTQ.
/// `group`: data-parallel GPTQ, every process of the group calling it alike (QuantizeOptions::group).
QuantizedModel apply_plan(const Model& fp, const TransformPlan& plan, const QuantSpec& spec,
                          const CalibrationSet* calib, const JobControl& job = {}, dist::Group* group = nullptr);

/// FNV-1a 64 (hex) over the model's config, its weights' shapes and values and the settings: what a
/// checkpoint must match to be resumed. `split`: the group of a layer-split run (every process
/// calls it), each process holding its share (Model::layer_share).
std::string learn_fingerprint(const Model& model, const LearnSettings& settings, dist::Group* split = nullptr);

}  // namespace latmix
