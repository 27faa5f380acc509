#include "latmix/model.h"

#include <c10/core/InferenceMode.h>

#include <cmath>
#include <limits>
#include <mutex>
#include <vector>

#if __has_include(<ATen/ops/scaled_dot_product_attention.h>)
#include <ATen/ops/scaled_dot_product_attention.h>
#endif

#include "latmix/error.h"

namespace latmix {

namespace {

/// inv_freq as transformers computes it (float32), with llama3 smoothing when configured.
at::Tensor make_inv_freq(const ModelConfig& cfg) {
  const int64_t dim = cfg.head_dim;
  at::Tensor exponents = at::arange(0, dim, 2, at::kLong).to(at::kFloat) / static_cast<float>(dim);
  at::Tensor inv_freq = 1.0 / at::pow(static_cast<float>(cfg.rope.theta), exponents);
  if (cfg.rope.type != RopeType::Llama3) return inv_freq;
  const auto& r = cfg.rope;
  const double old_len = static_cast<double>(r.original_max_position);
  const double low_wavelen = old_len / r.low_freq_factor;
  const double high_wavelen = old_len / r.high_freq_factor;
  at::Tensor wavelen = 2 * M_PI / inv_freq;
  at::Tensor scaled = at::where(wavelen > low_wavelen, inv_freq / r.factor, inv_freq);
  at::Tensor smooth = (old_len / wavelen - r.low_freq_factor) / (r.high_freq_factor - r.low_freq_factor);
  at::Tensor smoothed = (1 - smooth) * scaled / r.factor + smooth * scaled;
  at::Tensor medium = (wavelen >= high_wavelen).logical_and(wavelen <= low_wavelen);
  return at::where(medium, smoothed, scaled);
}

at::Tensor rotate_half(const at::Tensor& x) {
  const int64_t half = x.size(-1) / 2;
  return at::cat({-x.narrow(-1, half, half), x.narrow(-1, 0, half)}, -1);
}

}  // namespace

std::string capture_point_name(CapturePoint point) {
  switch (point) {
    case CapturePoint::Residual: return "residual";
    case CapturePoint::AttnIn: return "attn_in";
    case CapturePoint::OIn: return "o_in";
    case CapturePoint::ResidualMid: return "residual_mid";
    case CapturePoint::MlpIn: return "mlp_in";
    case CapturePoint::DownIn: return "down_in";
    case CapturePoint::FinalNormOut: return "lm_head_in";
  }
  return "unknown";
}

CapturePoint parse_capture_point(const std::string& name) {
  for (auto p : {CapturePoint::Residual, CapturePoint::AttnIn, CapturePoint::OIn, CapturePoint::ResidualMid,
                 CapturePoint::MlpIn, CapturePoint::DownIn, CapturePoint::FinalNormOut}) {
    if (capture_point_name(p) == name) return p;
  }
  throw UsageError("unknown capture point '" + name +
                   "' (expected residual, attn_in, o_in, residual_mid, mlp_in, down_in or lm_head_in)");
}

namespace {

// Elements of the largest of the layers' seven linears.
int64_t largest_linear(const ModelWeights& w) {
  int64_t most = 0;
  for (const auto& l : w.layers) {
    for (const at::Tensor* t : {&l.q, &l.k, &l.v, &l.o, &l.gate, &l.up, &l.down}) most = std::max(most, t->numel());
  }
  return most;
}

}  // namespace

class ConversionBuffers {
 public:
  explicit ConversionBuffers(int64_t budget_bytes) : budget_(budget_bytes) {}

  /// `t` converted to `dtype` (contiguous, on the CPU): the same cast as t.to(dtype), written into a
  /// buffer of the same size that no tensor refers to any more, or a new one (kept while the
  /// buffers stay within the budget).
  at::Tensor convert(const at::Tensor& t, at::ScalarType dtype) {
    const int64_t bytes = t.numel() * static_cast<int64_t>(c10::elementSize(dtype));
    if (bytes > budget_ / 2) return t.to(dtype);  // the embedding and lm_head: once a pass
    at::Tensor buffer;
    {
      std::lock_guard<std::mutex> lock(mutex_);
      // A buffer is free when only this list refers to its storage: every tensor handed out is a
      // view of it (in grad mode the view also holds the list's tensor as its base).
      // A buffer made in inference mode is an inference tensor, which cannot be written outside
      // it: each is reused in the mode it was made in.
      const bool inference = c10::InferenceMode::is_enabled();
      for (const at::Tensor& owner : buffers_) {
        if (owner.scalar_type() == dtype && owner.numel() == t.numel() && owner.is_inference() == inference &&
            owner.storage().use_count() == 1) {
          buffer = owner.view(t.sizes());
          break;
        }
      }
      if (!buffer.defined() && held_ + bytes <= budget_) {
        buffers_.push_back(at::empty({t.numel()}, at::TensorOptions().dtype(dtype)));
        held_ += bytes;
        buffer = buffers_.back().view(t.sizes());
      }
    }
    if (!buffer.defined()) return t.to(dtype);
    buffer.copy_(t);
    return buffer;
  }

 private:
  std::mutex mutex_;
  std::vector<at::Tensor> buffers_;
  int64_t held_ = 0;
  const int64_t budget_;
};

Model::Model(ModelConfig config, ModelWeights weights)
    : Model(std::move(config), std::move(weights), at::kFloat, at::kCPU) {
  // The embedding's dtype and device; a layer share without the embedding (layer_share): its
  // first layer's, else lm_head's or the final norm's.
  at::Tensor first = weights_.embed;
  for (size_t l = 0; !first.defined() && l < weights_.layers.size(); ++l) first = weights_.layers[l].q;
  if (!first.defined()) first = weights_.lm_head;
  if (!first.defined()) first = weights_.final_norm;
  if (!first.defined()) throw Error("model: no weights (neither an embedding, a layer, lm_head nor a final norm)");
  dtype_ = first.scalar_type();
  device_ = first.device();
  mapped_ = false;
  inv_freq_ = inv_freq_.to(device_);
}

Model::Model(ModelConfig config, ModelWeights weights, at::ScalarType dtype, at::Device device)
    : config_(std::move(config)), weights_(std::move(weights)), dtype_(dtype), device_(device), mapped_(true) {
  inv_freq_ = make_inv_freq(config_).to(device_);
  if (config_.rope.bf16_inv_freq) inv_freq_ = inv_freq_.to(at::kBFloat16).to(at::kFloat);
  if (device_.is_cpu()) {
    buffers_ = std::make_shared<ConversionBuffers>(2 * largest_linear(weights_) *
                                                   static_cast<int64_t>(c10::elementSize(dtype_)));
  }
}

ModelWeights& Model::weights() {
  if (mapped_) *this = to(device_, dtype_);
  return weights_;
}

at::Tensor DeferredMatrices::add(const std::vector<int64_t>& shape, at::ScalarType dtype,
                                  std::function<at::Tensor()> decode) {
  at::Tensor base = at::full({1}, std::numeric_limits<double>::quiet_NaN(), at::TensorOptions().dtype(dtype));
  at::Tensor placeholder = base.expand(shape);
  const void* key = base.data_ptr();
  entries_[key] = {std::move(base), std::move(decode)};
  return placeholder;
}

at::Tensor DeferredMatrices::decode(const at::Tensor& t) const {
  if (!t.defined() || entries_.empty() || t.numel() == 0) return {};
  const auto found = entries_.find(t.data_ptr());
  if (found == entries_.end()) return {};
  return found->second.decode();
}

at::Tensor Model::compute(const at::Tensor& t) const {
  // In memory, tensors are used exactly as stored (as they always were).
  if (!mapped_ || !t.defined()) return t;
  if (deferred_) {
    const at::Tensor decoded = deferred_->decode(t);
    if (decoded.defined()) return decoded.to(device_, dtype_);
  }
  if (t.scalar_type() == dtype_ && t.device() == device_) return t;
  if (buffers_ && t.device().is_cpu() && t.is_contiguous() && !t.requires_grad()) return buffers_->convert(t, dtype_);
  return t.to(device_, dtype_);
}

uint64_t Model::largest_conversion_bytes() const {
  if (!mapped_) return 0;
  const int64_t most = std::max({weights_.embed.numel(), weights_.lm_head.numel(), largest_linear(weights_)});
  return static_cast<uint64_t>(most) * static_cast<uint64_t>(c10::elementSize(dtype_));
}

at::Tensor Model::linear(const at::Tensor& x, const at::Tensor& w, const at::Tensor& b) const {
  // One converted matrix at a time on a mapped model: the copy dies with this statement.
  return b.defined() ? at::linear(x, compute(w), compute(b)) : at::matmul(x, compute(w).t());
}

void Model::add_hook(std::shared_ptr<CaptureHook> hook) { hooks_.push_back(std::move(hook)); }

void Model::remove_hook(const std::shared_ptr<CaptureHook>& hook) {
  hooks_.erase(std::remove(hooks_.begin(), hooks_.end(), hook), hooks_.end());
}

at::Tensor Model::capture(CapturePoint point, int64_t layer, const at::Tensor& x) const {
  at::Tensor out = x;
  for (const auto& hook : hooks_) {
    if (!hook->wants(point, layer)) continue;
    at::Tensor replaced = hook->on_capture(point, layer, out);
    if (replaced.defined()) {
      TORCH_CHECK(replaced.sizes() == out.sizes(), "capture hook changed the activation shape at ",
                  capture_point_name(point));
      out = replaced;
    }
  }
  return out;
}

at::Tensor Model::rms_norm(const at::Tensor& x, const at::Tensor& weight) const {
  // As transformers: normalize in float32, cast back, then scale by the gain.
  at::Tensor xf = x.to(at::kFloat);
  at::Tensor var = xf.pow(2).mean(-1, true);
  at::Tensor normed = (xf * at::rsqrt(var + config_.rms_norm_eps)).to(x.scalar_type());
  return weight * normed;
}

std::pair<at::Tensor, at::Tensor> Model::rope_tables(int64_t offset, int64_t length,
                                                     at::ScalarType dtype) const {
  at::Tensor pos = at::arange(offset, offset + length, inv_freq_.options());
  at::Tensor freqs = at::outer(pos, inv_freq_);
  at::Tensor emb = at::cat({freqs, freqs}, -1);
  return {emb.cos().to(dtype), emb.sin().to(dtype)};
}

at::Tensor Model::attention(const LayerWeights& w, int64_t layer, const at::Tensor& x, KvCache* cache,
                            int64_t offset) const {
  const int64_t B = x.size(0), T = x.size(1);
  const int64_t H = config_.num_heads, KVH = config_.num_kv_heads, D = config_.head_dim;
  at::Tensor q = linear(x, w.q, w.q_bias).view({B, T, H, D});
  at::Tensor k = linear(x, w.k, w.k_bias).view({B, T, KVH, D});
  at::Tensor v = linear(x, w.v, w.v_bias).view({B, T, KVH, D});
  if (config_.qk_norm) {
    q = rms_norm(q, w.q_norm);
    k = rms_norm(k, w.k_norm);
  }
  q = q.transpose(1, 2);  // [B, H, T, D]
  k = k.transpose(1, 2);
  v = v.transpose(1, 2);
  auto [cos, sin] = rope_tables(offset, T, q.scalar_type());
  q = q * cos + rotate_half(q) * sin;
  k = k * cos + rotate_half(k) * sin;
  if (cache != nullptr) {
    auto& ck = cache->keys_[static_cast<size_t>(layer)];
    auto& cv = cache->values_[static_cast<size_t>(layer)];
    ck = ck.defined() ? at::cat({ck, k}, 2) : k;
    cv = cv.defined() ? at::cat({cv, v}, 2) : v;
    k = ck;
    v = cv;
  }
  const int64_t S = k.size(2);
  if (KVH != H) {
    k = k.repeat_interleave(H / KVH, 1);
    v = v.repeat_interleave(H / KVH, 1);
  }
#if __has_include(<ATen/ops/scaled_dot_product_attention.h>)
  // On a GPU with LibTorch 2: the fused (flash / memory-efficient) causal attention, as
  // transformers' default "sdpa" does; no [B, H, T, T] scores in memory. The CPU keeps the
  // explicit form below, which the golden logits are checked against bit for bit.
  if (q.is_cuda() && S == T && offset == 0) {
    at::Tensor fused = at::scaled_dot_product_attention(q, k, v, /*attn_mask=*/{}, /*dropout_p=*/0.0,
                                                        /*is_causal=*/T > 1);
    at::Tensor out = fused.transpose(1, 2).reshape({B, T, H * D});
    out = capture(CapturePoint::OIn, layer, out);
    return linear(out, w.o, w.o_bias);
  }
#endif
  at::Tensor scores = at::matmul(q, k.transpose(2, 3)) * (1.0 / std::sqrt(static_cast<double>(D)));
  if (T > 1) {
    // query i (absolute position offset + i) sees keys j <= offset + i
    at::Tensor mask = at::ones({T, S}, at::TensorOptions().dtype(at::kBool).device(x.device()))
                          .triu(offset + 1);
    scores = scores.masked_fill(mask, -std::numeric_limits<float>::infinity());
  }
  at::Tensor probs = at::softmax(scores, -1, at::kFloat).to(q.scalar_type());
  at::Tensor out = at::matmul(probs, v).transpose(1, 2).reshape({B, T, H * D});
  out = capture(CapturePoint::OIn, layer, out);
  return linear(out, w.o, w.o_bias);
}

at::Tensor Model::mlp(const LayerWeights& w, int64_t layer, const at::Tensor& x) const {
  at::Tensor h = at::silu(linear(x, w.gate, w.gate_bias)) * linear(x, w.up, w.up_bias);
  h = capture(CapturePoint::DownIn, layer, h);
  return linear(h, w.down, w.down_bias);
}

at::Tensor Model::hidden_states(const at::Tensor& ids_in, KvCache* cache) const {
  TORCH_CHECK(ids_in.dim() == 2, "hidden_states expects ids [B, T]");
  at::Tensor ids = ids_in.to(device(), at::kLong);
  const int64_t offset = cache != nullptr ? cache->length_ : 0;
  if (cache != nullptr && cache->keys_.empty()) {
    cache->keys_.resize(static_cast<size_t>(config_.num_layers));
    cache->values_.resize(static_cast<size_t>(config_.num_layers));
  }
  at::Tensor h = embed(ids);
  for (int64_t l = 0; l < config_.num_layers; ++l) h = layer_step(l, h, cache, offset);
  if (cache != nullptr) cache->length_ += ids.size(1);
  return final_hidden(h);
}

at::Tensor Model::final_hidden(const at::Tensor& h) const {
  return capture(CapturePoint::FinalNormOut, config_.num_layers, rms_norm(h, weights_.final_norm));
}

at::Tensor Model::layer_step(int64_t l, at::Tensor h, KvCache* cache, int64_t offset) const {
  const LayerWeights& w = weights_.layers[static_cast<size_t>(l)];
  h = capture(CapturePoint::Residual, l, h);
  at::Tensor a = capture(CapturePoint::AttnIn, l, rms_norm(h, w.attn_norm));
  h = h + attention(w, l, a, cache, offset);
  h = capture(CapturePoint::ResidualMid, l, h);
  at::Tensor m = capture(CapturePoint::MlpIn, l, rms_norm(h, w.mlp_norm));
  return h + mlp(w, l, m);
}

at::Tensor Model::embed(const at::Tensor& ids) const {
  // A tokenizer that is not the model's can give ids past its table: say so, not LibTorch's "index out
  // of range in self". Checked where the ids are on the CPU (no device sync); they are made there.
  if (ids.device().is_cpu() && ids.numel() > 0) {
    const int64_t top = ids.max().item<int64_t>(), bottom = ids.min().item<int64_t>();
    if (top >= config_.vocab_size || bottom < 0)
      throw Error("token id " + std::to_string(top >= config_.vocab_size ? top : bottom) +
                  " is outside the model's vocabulary (0.." + std::to_string(config_.vocab_size - 1) +
                  "): is the tokenizer this model's?");
  }
  if (!mapped_) return at::embedding(weights_.embed, ids.to(device(), at::kLong));
  // Gather the rows from the mapped table, then convert: the same values as converting first.
  const at::Tensor& table = weights_.embed;
  return compute(at::embedding(table, ids.to(table.device(), at::kLong)));
}

at::Tensor Model::forward_layer(int64_t layer, const at::Tensor& h) const {
  TORCH_CHECK(layer >= 0 && layer < config_.num_layers, "forward_layer: layer ", layer, " out of range");
  TORCH_CHECK(h.dim() == 3 && h.size(2) == config_.hidden_size, "forward_layer expects h [B, T, hidden]");
  return layer_step(layer, h, nullptr, 0);
}

at::Tensor Model::logits_from_hidden(const at::Tensor& hidden) const {
  return at::matmul(hidden, compute(weights_.lm_head).t()).to(at::kFloat);
}

at::Tensor Model::forward(const at::Tensor& ids, KvCache* cache) const {
  if (ids.dim() == 1) return forward(ids.unsqueeze(0), cache).squeeze(0);
  return logits_from_hidden(hidden_states(ids, cache));
}

Model Model::to(at::Device device, at::ScalarType dtype) const {
  auto conv = [&](const at::Tensor& stored) {
    if (!stored.defined()) return stored;
    const at::Tensor decoded = deferred_ ? deferred_->decode(stored) : at::Tensor();
    const at::Tensor& t = decoded.defined() ? decoded : stored;
    at::Tensor r = t.to(device, dtype);
    // A mapped tensor already in the target dtype comes back as itself: copy it out of the
    // read-only mapping (the result is an ordinary, writable in-memory model).
    if (mapped_ && r.data_ptr() == stored.data_ptr()) r = r.clone();
    return r;
  };
  ModelWeights w;
  w.embed = conv(weights_.embed);
  w.final_norm = conv(weights_.final_norm);
  w.lm_head = weights_.lm_head.is_same(weights_.embed) ? w.embed : conv(weights_.lm_head);
  for (const auto& l : weights_.layers) {
    w.layers.push_back({conv(l.attn_norm), conv(l.q), conv(l.k), conv(l.v), conv(l.o), conv(l.q_bias),
                        conv(l.k_bias), conv(l.v_bias), conv(l.o_bias), conv(l.q_norm), conv(l.k_norm),
                        conv(l.mlp_norm), conv(l.gate), conv(l.up), conv(l.down), conv(l.gate_bias),
                        conv(l.up_bias), conv(l.down_bias)});
  }
  Model m(config_, std::move(w));
  m.hooks_ = hooks_;
  return m;
}

Model Model::layer_share(int64_t first, int64_t last, bool embed, bool head) const {
  if (first < 0 || last > config_.num_layers || first > last) {
    throw UsageError("layer share " + std::to_string(first) + ".." + std::to_string(last) + " of a model with " +
                     std::to_string(config_.num_layers) + " layers");
  }
  auto conv = [&](const at::Tensor& stored) {
    if (!stored.defined()) return stored;
    const at::Tensor decoded = deferred_ ? deferred_->decode(stored) : at::Tensor();
    at::Tensor r = (decoded.defined() ? decoded : stored).to(device_, dtype_);
    if (r.data_ptr() == stored.data_ptr()) r = r.clone();  // never shares storage with the source
    return r;
  };
  ModelWeights w;
  if (embed) w.embed = conv(weights_.embed);
  w.final_norm = conv(weights_.final_norm);
  if (head) w.lm_head = embed && weights_.lm_head.is_same(weights_.embed) ? w.embed : conv(weights_.lm_head);
  w.layers.resize(weights_.layers.size());
  for (int64_t i = first; i < last; ++i) {
    const LayerWeights& l = weights_.layers[static_cast<size_t>(i)];
    w.layers[static_cast<size_t>(i)] = {
        conv(l.attn_norm), conv(l.q),      conv(l.k),      conv(l.v),         conv(l.o),       conv(l.q_bias),
        conv(l.k_bias),    conv(l.v_bias), conv(l.o_bias), conv(l.q_norm),    conv(l.k_norm),  conv(l.mlp_norm),
        conv(l.gate),      conv(l.up),     conv(l.down),   conv(l.gate_bias), conv(l.up_bias), conv(l.down_bias)};
  }
  Model m(config_, std::move(w), dtype_, device_);
  m.mapped_ = false;
  m.buffers_.reset();
  m.inv_freq_ = inv_freq_;
  m.hooks_ = hooks_;
  return m;
}

std::vector<int32_t> generate_greedy(const Model& model, const std::vector<int32_t>& prompt, int64_t max_new,
                                     std::optional<int32_t> stop_id, const JobControl& job) {
  if (prompt.empty()) throw UsageError("generate: the prompt has no tokens");
  KvCache cache;
  std::vector<int64_t> ids64(prompt.begin(), prompt.end());
  at::Tensor input = at::tensor(ids64, at::kLong).unsqueeze(0);
  std::vector<int32_t> out;
  for (int64_t step = 0; step < max_new; ++step) {
    job.cancel.check();
    if (cache.length() + input.size(1) > model.config().max_position) break;
    at::Tensor logits = model.forward(input, &cache);
    int64_t next = logits[0][-1].argmax().item<int64_t>();
    out.push_back(static_cast<int32_t>(next));
    job.report("generate", step + 1, max_new);
    if (stop_id && next == *stop_id) break;
    input = at::full({1, 1}, next, at::kLong);
  }
  return out;
}

at::Device parse_device(const std::string& name) {
  if (name == "cpu") return at::kCPU;
  if (name.rfind("cuda", 0) == 0) {
    if (!at::hasCUDA()) {
      throw UsageError("--device " + name + ": this build's LibTorch has no CUDA support (or no GPU is visible)");
    }
    return at::Device(name);
  }
  throw UsageError("unknown device '" + name + "' (expected cpu, cuda or cuda:N)");
}

at::ScalarType parse_compute_dtype(const std::string& name) {
  if (name == "fp32" || name == "float32") return at::kFloat;
  if (name == "bf16" || name == "bfloat16") return at::kBFloat16;
  throw UsageError("unknown dtype '" + name + "' (expected fp32 or bf16)");
}

}  // namespace latmix
