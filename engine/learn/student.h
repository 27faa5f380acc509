#pragma once
// The student of end-to-end learning (not public API): the learned transforms as dense matrices,
// the quantized student model, and one step's loss and gradients with bounded memory
// (micro-batches, per-layer recomputation, chunked lm_head + loss).
#include <ATen/ATen.h>

#include <functional>
#include <string>
#include <utility>
#include <vector>

#include "latmix/learn.h"

namespace latmix::learn_detail {

/// A learned transform frozen into dense matrices for one step: A, A^-1 and v are computed once
/// from the parameters and every fold and online application reuses them.
class DenseTransform : public Transform {
 public:
  /// `matmul_dtype`: the dtype of the products with weights and activations (float32, or the
  /// model's bfloat16 on a GPU: tensor-core products with float32 accumulation, as a PyTorch
  /// user's bf16 step does); the matrices stay float32 leaves of the parameters either way.
  DenseTransform(at::Tensor a, at::Tensor a_inv, at::Tensor v, at::ScalarType matmul_dtype = at::kFloat)
      : Transform(a.size(0)), a_(std::move(a)), a_inv_(std::move(a_inv)), v_(std::move(v)), dtype_(matmul_dtype) {}
  std::string kind() const override { return "dense"; }
  at::Tensor bias() const override { return v_; }
  void to(at::Device) override {}
  /// y A^-T (no bias).
  at::Tensor inverse_linear(const at::Tensor& y) const { return apply_inverse_linear(y); }
  NamedTensors state() const override { return {{"a", a_}}; }

 protected:
  // In float32 whatever the caller's dtype: the folds call these with float64 weights, which
  // learning does not need (and which cost 2x on a CPU, more on most GPUs).
  at::Tensor apply_linear(const at::Tensor& x) const override;
  at::Tensor apply_inverse_linear(const at::Tensor& y) const override;
  at::Tensor apply_inverse_right(const at::Tensor& w) const override;

 private:
  at::Tensor a_, a_inv_, v_;
  at::ScalarType dtype_;
};

// The residual transform at the embedding output and (its linear inverse) at the lm_head input,
// instead of folded into the vocab x hidden matrices (FoldOptions::residual_skips_embedding_and_head).
class EmbedHeadHook : public CaptureHook {
 public:
  EmbedHeadHook(std::shared_ptr<DenseTransform> t, int64_t layers) : t_(std::move(t)), layers_(layers) {}
  bool wants(CapturePoint point, int64_t layer) const override {
    return (point == CapturePoint::Residual && layer == 0) || (point == CapturePoint::FinalNormOut && layer == layers_);
  }
  at::Tensor on_capture(CapturePoint point, int64_t, const at::Tensor& x) override {
    return point == CapturePoint::Residual ? t_->forward(x) : t_->inverse_linear(x);
  }

 private:
  std::shared_ptr<DenseTransform> t_;
  int64_t layers_;
};

bool trainable(const TransformPtr& t);

/// The plan with every trainable transform replaced by a DenseTransform of its current matrices
/// (with autograd to the parameters); fixed transforms are kept as they are.
TransformPlan densify(const TransformPlan& plan);

/// A plan whose dense matrices are leaves of their own: the step's many backward passes
/// (micro-batches, layers, loss chunks) accumulate into the leaves, and finish() carries the sum
/// to the transform parameters through one backward pass of the (small) matrix graph.
class LeafPlan {
 public:
  /// `matmul_dtype`: see DenseTransform.
  explicit LeafPlan(const TransformPlan& plan, at::ScalarType matmul_dtype = at::kFloat);
  const TransformPlan& dense() const { return dense_; }
  /// Backward from the leaves' gradients into the parameters (adds to their .grad).
  void finish();

 private:
  TransformPtr leaf(const TransformPtr& t);
  TransformPlan dense_;
  std::vector<std::pair<at::Tensor, at::Tensor>> pairs_;  // (graph tensor, leaf)
  at::ScalarType dtype_;
};

/// folded_weights() of one layer: the same arithmetic as folding the whole model, for layer l
/// alone (the residual transform's embedding and lm_head parts are left out: see
/// FoldOptions::residual_skips_embedding_and_head). `plan` has the model's per-layer lists.
LayerWeights fold_layer(const Model& fp, const TransformPlan& plan, int64_t l);

/// A model that holds only layer l (the other layers are empty; forward_layer(l) is all it can
/// run), with fp's embedding, final norm, lm_head and hooks. Costs no weight copies.
Model layer_model(const Model& fp, int64_t l, LayerWeights weights);

/// `t` as a DenseTransform (itself when it is one).
std::shared_ptr<DenseTransform> as_dense(const TransformPtr& t);

/// GPTQ in the loop (LearnSettings::gptq_refresh): per decoder layer, each covered linear's
/// residual d = GPTQ(W') - W' (float32) at the last refresh, W' the student's folded weight then.
/// A layer without residuals (undefined tensors) rounds to nearest.
struct WeightResiduals {
  std::vector<LayerWeights> layers;
};

/// The residuals of `plan` now: the plan folded and its weights quantized by GPTQ on `calib` as
/// apply_plan() deploys them, minus the weights the student folds (fold_layer, in `matmul_dtype`
/// as LeafPlan's), so that the student's RTN(W' + d) is GPTQ's weight at this plan.
/// `deployed`: receives that deployed model when given.
WeightResiduals gptq_residuals(const Model& fp, const TransformPlan& plan, const QuantSpec& spec,
                               const CalibrationSet& calib, at::ScalarType matmul_dtype, const JobControl& job,
                               QuantizedModel* deployed = nullptr, dist::Group* group = nullptr);

/// When the student's residuals are refreshed (LearnSettings::gptq_refresh): every K optimizer
/// updates, and whenever the caller asks (before a validation measurement, so that it measures the
/// deployed model). Enabled for end-to-end learning whose weights are deployed with GPTQ.
class GptqLoop {
 public:
  /// `group`: data-parallel GPTQ (QuantizeOptions::group; every process refreshes together).
  GptqLoop(const Model& fp, const CalibrationSet* calib, const LearnSettings& s, const JobControl& job,
           dist::Group* group = nullptr);
  bool enabled() const { return enabled_; }
  /// Before the step that follows `updates` optimizer updates of `plan`: refreshes when due (no
  /// residuals yet, a multiple of K, or `now`) unless they were computed at this count already;
  /// with `deployed`, always, and calls it with the refresh's deployed model (GPTQ weights).
  void before(int64_t updates, const TransformPlan& plan, bool now = false,
              const std::function<void(const Model&)>& deployed = {});
  /// The residuals (null when disabled: RTN weights).
  const WeightResiduals* residuals() const { return enabled_ ? &residuals_ : nullptr; }
  int64_t refreshes() const { return refreshes_; }

 private:
  const Model& fp_;
  const CalibrationSet* calib_;
  const LearnSettings& s_;
  const JobControl& job_;
  dist::Group* group_ = nullptr;
  bool enabled_ = false;
  int64_t at_ = -1, refreshes_ = 0;
  WeightResiduals residuals_;
};

/// Fake quantization of layer l's linear weights when the spec's weight format covers it: RTN,
/// or with `residuals` RTN(W + d) (straight-through: the gradient of W is the identity).
void fake_quantize_layer(LayerWeights& lw, const QuantSpec& spec, int64_t l, int64_t layers,
                         const WeightResiduals* residuals = nullptr);

/// The student's hooks: fp's own, the plan's online transforms, activation quantization, and the
/// residual transform at the embedding output and lm_head input (`embed_head`, may be null).
void add_student_hooks(Model& student, const Model& fp, const TransformPlan& dense, const QuantSpec& spec,
                       const std::shared_ptr<DenseTransform>& embed_head);

/// The quantized student with the whole model folded (see trainer.cpp). `only_layer` >= 0: only
/// that layer's weights are quantized (layer-wise learning). `residuals`: see WeightResiduals.
Model build_student(const Model& fp, TransformPlan dense, const QuantSpec& spec, int64_t only_layer,
                    const WeightResiduals* residuals = nullptr);

/// How an end-to-end step uses memory.
struct StepMemory {
  int64_t micro_batch = 1;
  int64_t loss_chunk = 1;  // positions
  bool checkpoint_layers = false;
  int64_t kept_layers = 0;      // with checkpoint_layers: the last layers whose graph is kept
  bool teacher_cache = false;   // the teacher's hidden states of every sequence kept (TeacherCache)
  uint64_t cache_bytes = 0;     // its size
  uint64_t estimate_bytes = 0;  // the estimated peak of a step (device memory), 0 when not estimated
  uint64_t free_bytes = 0;      // the device's free memory when planned (0: unknown / CPU)
  std::string describe() const;
};

/// Chooses micro-batch, loss chunk, checkpointing, kept layers and the teacher cache for
/// `settings` on the model's device (`samples` calibration sequences of `seqlen`).
/// \throws latmix::Error before any step when even one sequence cannot fit, with the numbers.
StepMemory plan_step_memory(const Model& fp, const LearnSettings& settings, int64_t samples, int64_t seqlen);

/// The teacher's final hidden states (what goes into lm_head) of every calibration sequence,
/// computed at a sequence's first use and kept: the FP model is fixed, so later batches that draw
/// the sequence again read them instead of running the teacher.
class TeacherCache {
 public:
  TeacherCache() = default;  // disabled
  TeacherCache(int64_t samples, int64_t seqlen, int64_t hidden, at::TensorOptions options);
  bool enabled() const { return store_.defined(); }
  /// [rows.size(), T, D] for calibration rows `rows` whose ids are `ids` [rows.size(), T]; the
  /// rows not yet kept run through fp in passes of at most `micro_batch` sequences.
  at::Tensor get(const Model& fp, const std::vector<int64_t>& rows, const at::Tensor& ids, int64_t micro_batch);

 private:
  at::Tensor store_;
  std::vector<bool> have_;
};

/// The KL (teacher fp) or CE loss of one batch of ids [B, T] for the plan's student, with the
/// gradients added to the transform parameters. Returns the loss term (detached, a 0-dim float).
/// `teacher`: the teacher's final hidden states of the batch when known (TeacherCache), else
/// computed here for KL. `residuals`: GPTQ in the loop (WeightResiduals; null: RTN weights).
/// `batch_rows`: the rows of the whole step when `ids` is one process's share of it (data-parallel
/// learning, LearnControl::group): the loss is divided as the whole batch's, so that the ranks'
/// losses and gradients add up to it; 0: ids.size(0).
at::Tensor end_to_end_loss_backward(const Model& fp, const TransformPlan& plan, const LearnSettings& settings,
                                    const at::Tensor& ids, const StepMemory& memory,
                                    const at::Tensor& teacher = at::Tensor(),
                                    const WeightResiduals* residuals = nullptr, int64_t batch_rows = 0);

/// Memory for end_to_end_loss() when no end-to-end step was planned (layer-wise learning): the
/// micro-batch a step would use (one sequence when even that would not fit a step), streamed.
StepMemory validation_memory(const Model& fp, const LearnSettings& settings, int64_t seqlen);

/// The same loss as end_to_end_loss_backward() without gradients (validation): the student
/// streamed one layer at a time, the lm_head + loss in chunks. Returns a 0-dim float tensor.
at::Tensor end_to_end_loss(const Model& fp, const TransformPlan& plan, const LearnSettings& settings,
                           const at::Tensor& ids, const StepMemory& memory, const at::Tensor& teacher = at::Tensor(),
                           const WeightResiduals* residuals = nullptr);

/// end_to_end_loss() (KL) of a layer-split run (LearnControl::split_layers): this process runs the
/// student's and the FP model's layers [first, last) on what the previous rank sent (rank 0: the
/// embeddings of ids) and sends both on (through host memory); the last rank adds the loss. `memory.micro_batch` must
/// be the same on every rank. Returns the loss sum on the last rank, 0 on the others (a 0-dim float).
at::Tensor pipelined_loss(const Model& fp, const TransformPlan& plan, const LearnSettings& settings,
                          const at::Tensor& ids, const StepMemory& memory, int64_t first, int64_t last,
                          dist::Group& group);

}  // namespace latmix::learn_detail
