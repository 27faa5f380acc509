#pragma once
/// \file model.h
/// Room: engine/model/ (latmix_engine).
/// One decoder-only transformer for the Llama, Mistral, Qwen2 and Qwen3 families: GQA, RoPE
/// (default and llama3 scaling), SwiGLU, RMSNorm, causal attention, fp32 or bf16, CPU or CUDA,
/// batches of sequences, a KV cache for generation, and named capture points where statistics,
/// transforms and fake quantization hook in.

#include <ATen/ATen.h>

#include <algorithm>
#include <functional>
#include <map>
#include <memory>
#include <string>
#include <vector>

#include "latmix/config.h"
#include "latmix/progress.h"

namespace latmix {

/// Where activations can be observed or replaced. Each is the input of one or more linear layers
/// or a point of the residual stream. `layer` is the decoder layer index (FinalNormOut: num_layers).
enum class CapturePoint {
  Residual,     ///< residual stream entering layer l (before input_layernorm)   [B, T, hidden]
  AttnIn,       ///< normalized input of q_proj/k_proj/v_proj                      [B, T, hidden]
  OIn,          ///< attention output, input of o_proj                             [B, T, heads*head_dim]
  ResidualMid,  ///< residual stream after attention (before post_attention_layernorm) [B, T, hidden]
  MlpIn,        ///< normalized input of gate_proj/up_proj                         [B, T, hidden]
  DownIn,       ///< SwiGLU output, input of down_proj                             [B, T, intermediate]
  FinalNormOut  ///< normalized final hidden state, input of lm_head              [B, T, hidden]
};

/// Stable lower-case name ("residual", "attn_in", "o_in", "residual_mid", "mlp_in", "down_in", "lm_head_in").
std::string capture_point_name(CapturePoint point);
/// Inverse of capture_point_name; throws UsageError listing the valid names.
CapturePoint parse_capture_point(const std::string& name);

/// A hook on the model's capture points. The model first asks wants(); only then does it call
/// on_capture(). With no hooks installed a capture point costs one empty-vector check.
class CaptureHook {
 public:
  virtual ~CaptureHook() = default;
  virtual bool wants(CapturePoint point, int64_t layer) const = 0;
  /// Observes x. Returns a replacement of the same shape (a transformed or fake-quantized
  /// activation), or an undefined tensor to leave x as it is.
  virtual at::Tensor on_capture(CapturePoint point, int64_t layer, const at::Tensor& x) = 0;
};

/// Progress through the decoder layers of the forward passes that run while it is installed:
/// reports (stage, layers run so far, passes x layers) as each layer starts and checks the cancel
/// token there. For callers whose passes are long (a mapped 8B model takes minutes per pass on a
/// CPU) and who want a bar that moves, with an ETA, within one pass.
class LayerProgressHook : public CaptureHook {
 public:
  LayerProgressHook(std::string stage, int64_t num_layers, int64_t passes, JobControl job)
      : stage_(std::move(stage)), total_(num_layers * passes), job_(std::move(job)) {}
  bool wants(CapturePoint point, int64_t) const override { return point == CapturePoint::Residual; }
  at::Tensor on_capture(CapturePoint, int64_t, const at::Tensor&) override {
    job_.cancel.check();
    job_.report(stage_, std::min(done_, total_), total_);
    ++done_;
    return {};
  }

 private:
  std::string stage_;
  int64_t total_, done_ = 0;
  JobControl job_;
};

/// The weights of one decoder layer, in Hugging Face orientation (Linear: [out, in]).
/// Optional tensors (biases, q/k norms) are undefined when the architecture has none.
struct LayerWeights {
  at::Tensor attn_norm, q, k, v, o;
  at::Tensor q_bias, k_bias, v_bias, o_bias;
  at::Tensor q_norm, k_norm;
  at::Tensor mlp_norm, gate, up, down;
  at::Tensor gate_bias, up_bias, down_bias;
};

struct ModelWeights {
  at::Tensor embed;  ///< [vocab, hidden]
  std::vector<LayerWeights> layers;
  at::Tensor final_norm;  ///< [hidden]
  at::Tensor lm_head;     ///< [vocab, hidden]; the same tensor as embed when tied
};

/// Key/value cache for incremental decoding. One per sequence batch.
class KvCache {
 public:
  int64_t length() const { return length_; }
  void clear() {
    keys_.clear();
    values_.clear();
    length_ = 0;
  }

 private:
  friend class Model;
  std::vector<at::Tensor> keys_, values_;  // per layer [B, kv_heads, T, head_dim]
  int64_t length_ = 0;
};

/// Matrices a mapped model decodes when they are used rather than at load: compressed-tensors'
/// packed MXFP4 linears. The stored tensor is a placeholder of the right shape and dtype that
/// holds no memory (one NaN broadcast, so code that reads it without decoding sees NaN, never a
/// plausible weight); Model::compute() decodes it for the one use, Model::to() and weights()
/// decode every one. An 8B compressed-tensors folder is evaluated holding one decoded linear.
class DeferredMatrices {
 public:
  /// A placeholder of `shape` in `dtype` whose value is decode() (called at each use).
  at::Tensor add(const std::vector<int64_t>& shape, at::ScalarType dtype, std::function<at::Tensor()> decode);
  /// The decoded matrix when `t` is one of the placeholders, else an undefined tensor.
  at::Tensor decode(const at::Tensor& t) const;
  size_t size() const { return entries_.size(); }

 private:
  struct Entry {
    at::Tensor base;  // the one element the placeholder broadcasts (kept: its address is the key)
    std::function<at::Tensor()> decode;
  };
  std::map<const void*, Entry> entries_;
};

/// Reused CPU buffers for a mapped model's conversions (model.cpp): a fresh fp32 copy of each
/// matrix at each use costs the kernel's page faults and zeroing, about five times the conversion.
class ConversionBuffers;

/// A model's weights live in one of two ways:
///  - in memory: every tensor converted to the compute dtype and device at load (the default);
///  - mapped: the matrices (embedding, the seven linears of each layer, lm_head) stay as the
///    checkpoint stores them (bf16/fp16/fp32), read-only views of the memory-mapped safetensors
///    files; each is converted to the compute dtype and device when it is used (one linear at a
///    time, the embedding rows that are looked up, lm_head per call) and the converted copy is
///    dropped right after. On the CPU the copies of the layers' matrices are written into a few
///    reused buffers (at most twice the largest linear in all; a buffer is reused only when no
///    tensor refers to it any more), so a pass does not pay fresh pages for every matrix. Norm
///    gains and biases (vectors) are converted at load. The conversion is the same cast the
///    in-memory load does, so every result is bit for bit the in-memory model's; anonymous memory
///    stays at one converted matrix (plus those buffers) and the activations.
/// A stored tensor of another dtype than the compute dtype is converted at use in either mode, so
/// a mapped model can have some tensors replaced by computed ones (GPTQ does, layer by layer).
/// A mapped model can also hold DeferredMatrices (decoded at use, see there).
class Model {
 public:
  /// An in-memory model: the compute dtype and device are the embedding's.
  Model(ModelConfig config, ModelWeights weights);
  /// A mapped model (see above): weights as stored; computes in `dtype` on `device`.
  Model(ModelConfig config, ModelWeights weights, at::ScalarType dtype, at::Device device);

  const ModelConfig& config() const { return config_; }
  /// The weights for editing. On a mapped model this first converts every tensor to the compute
  /// dtype in memory (the model becomes an in-memory one), so code that edits weights in place
  /// never writes into the read-only mapping; use stored_weights() to read or replace tensors
  /// without that.
  ModelWeights& weights();
  /// The weights as stored: on a mapped model the matrices are in the file's dtype, read-only.
  const ModelWeights& weights() const { return weights_; }
  /// The stored weights for replacing whole tensors (never for writing into one in place): the
  /// mapped matrices stay mapped. A replaced tensor of the compute dtype is used as it is.
  ModelWeights& stored_weights() { return weights_; }
  /// The compute dtype and device.
  at::ScalarType dtype() const { return dtype_; }
  at::Device device() const { return device_; }
  /// Whether the matrices are memory-mapped and converted at use (see above).
  bool mapped() const { return mapped_; }
  /// Placeholders among the stored matrices that are decoded at use (mapped models only).
  void set_deferred(std::shared_ptr<const DeferredMatrices> deferred) { deferred_ = std::move(deferred); }
  /// How many stored matrices are decoded at use (0 for most models).
  size_t deferred_count() const { return deferred_ ? deferred_->size() : 0; }
  /// A stored tensor in the compute dtype on the compute device: `t` itself when it already is,
  /// else a converted copy (undefined stays undefined).
  at::Tensor compute(const at::Tensor& t) const;
  /// Anonymous memory the conversions of one forward pass need at most: the largest matrix in the
  /// compute dtype when mapped (0 in memory). For "will it fit" checks before a job starts.
  uint64_t largest_conversion_bytes() const;

  /// Logits [B, T, vocab] in float32 for token ids [B, T] (or [T]: then [T, vocab]).
  /// With a cache, ids continue the cached sequence and the cache grows by T.
  at::Tensor forward(const at::Tensor& ids, KvCache* cache = nullptr) const;

  /// Final normalized hidden states [B, T, hidden] (the lm_head input), in the model's dtype.
  at::Tensor hidden_states(const at::Tensor& ids, KvCache* cache = nullptr) const;

  /// The final norm (and its capture point) on the residual stream leaving the last layer: what
  /// hidden_states() ends with. Layer-split validation runs the layers on several processes.
  at::Tensor final_hidden(const at::Tensor& h) const;

  /// Applies lm_head to hidden states and returns float32 logits.
  at::Tensor logits_from_hidden(const at::Tensor& hidden) const;

  /// The residual stream entering layer 0: the embeddings of ids [B, T] ([B, T, hidden]).
  at::Tensor embed(const at::Tensor& ids) const;
  /// Runs decoder layer `layer` alone on the residual stream h [B, T, hidden] (positions 0..T-1,
  /// no cache) and returns the residual stream leaving it; the layer's capture points fire.
  /// Used by layer-wise transform learning.
  at::Tensor forward_layer(int64_t layer, const at::Tensor& h) const;
  const std::vector<std::shared_ptr<CaptureHook>>& hooks() const { return hooks_; }
  void add_hook(std::shared_ptr<CaptureHook> hook);
  void remove_hook(const std::shared_ptr<CaptureHook>& hook);
  void clear_hooks() { hooks_.clear(); }

  /// A copy on another device / dtype (norm gains and biases follow the dtype too); always an
  /// in-memory model (a mapped model's matrices are converted and held).
  Model to(at::Device device, at::ScalarType dtype) const;
  /// One process's share of a layer-split learning run (learn.h, LearnControl::split_layers): an
  /// in-memory copy, on this model's device and in its dtype, holding only decoder layers
  /// [first, last) (the others empty), the embedding when `embed`, lm_head when `head` (the final
  /// norm always). A mapped model converts just those tensors, so a process holds its share alone.
  Model layer_share(int64_t first, int64_t last, bool embed, bool head) const;

 private:
  at::Tensor capture(CapturePoint point, int64_t layer, const at::Tensor& x) const;
  at::Tensor attention(const LayerWeights& w, int64_t layer, const at::Tensor& x, KvCache* cache,
                       int64_t offset) const;
  at::Tensor mlp(const LayerWeights& w, int64_t layer, const at::Tensor& x) const;
  at::Tensor linear(const at::Tensor& x, const at::Tensor& w, const at::Tensor& b) const;
  at::Tensor layer_step(int64_t layer, at::Tensor h, KvCache* cache, int64_t offset) const;
  at::Tensor rms_norm(const at::Tensor& x, const at::Tensor& weight) const;
  std::pair<at::Tensor, at::Tensor> rope_tables(int64_t offset, int64_t length, at::ScalarType dtype) const;

  ModelConfig config_;
  ModelWeights weights_;
  at::Tensor inv_freq_;  // float32 [head_dim/2] on the model's device
  at::ScalarType dtype_;
  at::Device device_;
  bool mapped_ = false;
  std::shared_ptr<const DeferredMatrices> deferred_;
  std::shared_ptr<ConversionBuffers> buffers_;  // mapped CPU models only
  std::vector<std::shared_ptr<CaptureHook>> hooks_;
};

/// How to load: compute dtype (fp32 or bf16) and device.
struct LoadOptions {
  at::ScalarType dtype = at::kFloat;
  at::Device device = at::kCPU;
  /// Keep the matrices memory-mapped in the file's dtype and convert them at use (see Model).
  /// Hugging Face folders only; a llama2.c `.bin` is read into memory either way.
  bool mapped = false;
  /// See RopeConfig::bf16_inv_freq.
  bool bf16_rope_frequencies = false;
  JobControl job;
};

/// Loads a model from a Hugging Face folder (config.json + safetensors, sharded or not) or a
/// llama2.c `.bin` file. Throws latmix::Error naming the file and the problem.
Model load_model(const std::string& path, const LoadOptions& options = {});

/// True when `path` names a llama2.c checkpoint (a regular file, not a folder).
bool is_llama2c_checkpoint(const std::string& path);

/// Greedy decoding with a KV cache; stops after max_new tokens or at `stop_id` when given.
std::vector<int32_t> generate_greedy(const Model& model, const std::vector<int32_t>& prompt,
                                     int64_t max_new, std::optional<int32_t> stop_id = std::nullopt,
                                     const JobControl& job = {});

/// Parses "cpu", "cuda", "cuda:N"; throws UsageError when CUDA is requested but unavailable.
at::Device parse_device(const std::string& name);
/// Parses "fp32"/"float32" or "bf16"/"bfloat16"; throws UsageError otherwise.
at::ScalarType parse_compute_dtype(const std::string& name);

}  // namespace latmix

namespace latmix {

/// Runs the model on `ids` [T] (or [B, T]) and returns the activation seen at one capture point
/// of one layer, as float32 on the CPU ([T, features], or [B, T, features]). Other hooks of the
/// model stay active (a transform hook installed before it changes what is captured). Only the
/// layers up to `layer` run (all of them for the final norm's output); `control` hears
/// ("layers", done, needed) after each one and its cancel is checked between them.
at::Tensor capture_activation(const Model& model, const at::Tensor& ids, CapturePoint point, int64_t layer,
                              const JobControl& control = {});

}  // namespace latmix
