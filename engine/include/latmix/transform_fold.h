#pragma once
/// \file transform_fold.h
/// Room: engine/transforms/ (latmix_engine).
/// Placing transforms in a decoder and folding them into its weights (docs/transforms.md).
///
/// Placements (Llama-family block, HF orientation W [out, in], activations as rows):
///  - residual (R1/T1, width hidden_size): the RMSNorm gains are first fused into the weights
///    that read them (q/k/v, gate/up, lm_head) and set to one; then T goes into the embedding
///    (rows: e -> T(e), i.e. the bias v lives in the embedding) and into the outputs of o_proj and
///    down_proj (W -> A W, b -> A b), and T^-1 into q/k/v/gate/up and lm_head (W -> W A^-1; their
///    biases are unchanged). Exact for orthogonal T without bias; not for a general affine T,
///    because RMSNorm then sees A h + v instead of h (LATMiX trains that deviation away).
///  - value (R2/T2, width head_dim, one transform per layer shared by every kv head): v_proj's
///    rows of each kv head W_g -> A W_g, b_g -> A b_g (+ v), o_proj's columns of each query head
///    W_h -> W_h A^-1. Exact for any invertible affine T (softmax rows sum to one, so v passes
///    through attention unchanged and o_proj's bias absorbs it: b_o -= sum_h W_o,h A^-1 v).
///  - down_online (width intermediate_size): applied at run time by a CaptureHook at
///    CapturePoint::DownIn; down_proj W -> W A^-1, b -> b - W A^-1 v. Exact.
///  - attn_online / mlp_online (per layer, width hidden_size; FlatQuant's placement): applied at
///    run time at CapturePoint::AttnIn / MlpIn (the normalized input of q/k/v resp. gate/up),
///    their inverse folded into q/k/v resp. gate/up like down_online (biases: attention_bias resp.
///    mlp_bias). Folded after the residual transform, so they act in its basis. Exact.

#include <ATen/ATen.h>

#include <memory>
#include <string>
#include <vector>

#include "latmix/model.h"
#include "latmix/transforms.h"

namespace latmix {

/// Which transform goes where. Null pointers (and empty vectors) mean "none".
struct TransformPlan {
  TransformPtr residual;                  ///< width hidden_size
  std::vector<TransformPtr> value;        ///< per layer (empty, or num_layers entries), width head_dim
  std::vector<TransformPtr> down_online;  ///< per layer (empty, or num_layers entries), width intermediate_size
  std::vector<TransformPtr> attn_online;  ///< per layer (empty, or num_layers entries), width hidden_size
  std::vector<TransformPtr> mlp_online;   ///< per layer (empty, or num_layers entries), width hidden_size

  bool empty() const;
  /// Every transform of the plan, in a fixed order (residual, value, down, attn, mlp; nulls skipped).
  std::vector<TransformPtr> all() const;
  /// Every trainable leaf tensor of every transform.
  std::vector<at::Tensor> parameters() const;
  /// Moves every transform to `device`.
  void to(at::Device device) const;
};

/// What to do when a transform's bias v needs a bias tensor the architecture does not have
/// (value: v_proj and o_proj biases; down_online: down_proj bias).
enum class MissingBias {
  Fail,    ///< throw latmix::Error (the default)
  Create,  ///< create zero bias tensors and report them (the export then needs attention_bias / mlp_bias)
  Drop     ///< value only: leave v out of the folded weights (still exact: v cancels in o_proj);
           ///< for down_online, Drop fails like Fail
};

struct FoldOptions {
  MissingBias missing_bias = MissingBias::Fail;
  /// Leave the embedding and lm_head out of the residual transform (norm gains are still fused):
  /// the caller applies T to the embedding output and the linear part of T^-1 to the lm_head
  /// input at run time. Transform learning does this: folding into vocab x hidden matrices every
  /// step costs more than the rest of the model (for Llama-3.2-1B's 128256 x 2048).
  bool residual_skips_embedding_and_head = false;
};

/// A hook that applies per-layer transforms at one or more capture points (forward, with autograd).
class OnlineTransformHook : public CaptureHook {
 public:
  OnlineTransformHook(CapturePoint point, std::vector<TransformPtr> transforms);
  /// The online transforms of a plan: down_online at DownIn, attn_online at AttnIn, mlp_online at
  /// MlpIn. Returns null when the plan has none.
  static std::shared_ptr<OnlineTransformHook> for_plan(const TransformPlan& plan);
  void add(CapturePoint point, std::vector<TransformPtr> transforms);
  bool wants(CapturePoint point, int64_t layer) const override;
  at::Tensor on_capture(CapturePoint point, int64_t layer, const at::Tensor& x) override;

 private:
  const TransformPtr* find(CapturePoint point, int64_t layer) const;
  std::vector<std::pair<CapturePoint, std::vector<TransformPtr>>> slots_;
};

/// What fold_transforms() did, and what unfold_transforms() needs to undo it.
struct FoldResult {
  /// The weights before folding. Folding writes new tensors and never modifies these in place,
  /// so they cost no copy; the model holds both until the result is dropped.
  ModelWeights original;
  /// Installed on the model for down_online transforms (null when there are none).
  std::shared_ptr<CaptureHook> online_hook;
  bool norms_fused = false;     ///< RMSNorm gains were fused and set to ones
  bool untied_lm_head = false;  ///< lm_head was tied to the embedding and is now its own tensor
  /// Bias tensors created (MissingBias::Create), e.g. "layers.0.o_bias": the exported
  /// architecture then needs attention_bias (v/o) or mlp_bias (down).
  std::vector<std::string> created_biases;
  /// Value biases left out (MissingBias::Drop), e.g. "layers.0.value.v".
  std::vector<std::string> dropped_biases;
  /// Human-readable notes on the above, one line each.
  std::vector<std::string> notes;
};

/// Folds `plan` into `model` in place (see the file comment) and installs the online hook.
/// Transforms are moved to the model's device. Folding runs without autograd.
/// \throws latmix::Error for a width mismatch, a per-layer list of the wrong length, or a bias
/// without a home (MissingBias::Fail); the model is unchanged when it throws.
FoldResult fold_transforms(Model& model, const TransformPlan& plan, const FoldOptions& options = {});

/// The folded weights of `model` under `plan` (see the file comment), computed with autograd
/// when it is enabled: the result is differentiable in the transforms' parameters (a bias v that
/// requires grad is always folded, even while it is zero). Does not install the online hook
/// (use OnlineTransformHook::for_plan). `info` (optional) receives the notes of FoldResult.
/// Used by transform learning; fold_transforms() is this under NoGradGuard plus the hook.
ModelWeights folded_weights(const Model& model, const TransformPlan& plan, const FoldOptions& options = {},
                            FoldResult* info = nullptr);

/// Restores the weights saved in `result` exactly and removes its hook from the model.
void unfold_transforms(Model& model, const FoldResult& result);

/// Writes PREFIX.safetensors (every transform's state(), named "residual.NAME",
/// "value.L.NAME", "down_online.L.NAME") and PREFIX.json ({"format": "latmix-transforms",
/// "version": 1, "residual": description or null, "value": [...], "down_online": [...]},
/// each description being Transform::describe()). Both files are written atomically.
void save_transforms(const std::string& path_prefix, const TransformPlan& plan);

/// Reads what save_transforms() wrote. \throws latmix::Error naming the file on any mismatch.
TransformPlan load_transforms(const std::string& path_prefix);

/// save_transforms() with provenance: `metadata` (a JSON object, e.g. the model fingerprint and
/// the settings the transforms were learned with; null: none) is stored as "metadata" in PREFIX.json.
/// load_transforms() ignores it. latmix/export.h writes and checks model fingerprints this way.
void save_transforms(const std::string& path_prefix, const TransformPlan& plan, const nlohmann::json& metadata);

/// The "metadata" object of PREFIX.json, or null when the file has none.
/// \throws latmix::Error naming the file when it cannot be read or "metadata" is not an object.
nlohmann::json load_transforms_metadata(const std::string& path_prefix);

}  // namespace latmix
