// Loading models: Hugging Face folders (through TensorStore) and llama2.c .bin files.
#include <sys/stat.h>

#include <cmath>
#include <filesystem>
#include <fstream>
#include <map>
#include <string_view>

#include "latmix/error.h"
#include "latmix/memory.h"
#include "latmix/llama2c.h"
#include "latmix/model.h"
#include "latmix/model_inspect.h"
#include "latmix/mx.h"
#include "latmix/tensor_io.h"

namespace latmix {

namespace fs = std::filesystem;

namespace {

// Reads (or, with `headers`, only checks against the safetensors headers and tallies) the
// tensors a model needs: one list of names and shapes for loading and for inspect_model().
class HfWeightReader {
 public:
  HfWeightReader(const TensorStore& store, const std::string& folder, const LoadOptions& opts,
                 ModelHeaders* headers = nullptr)
      : store_(store), folder_(folder), opts_(opts), headers_(headers) {
    index_input_transforms();
  }

  at::Tensor get(const std::string& name, std::vector<int64_t> shape) const {
    const std::string base = name.size() > 7 ? name.substr(0, name.size() - 7) : std::string();  // less ".weight"
    if (!store_.contains(name) && !base.empty() && store_.contains(base + ".weight_packed")) {
      return packed(base, shape);
    }
    if (!store_.contains(name)) fail(folder_, "tensor '" + name + "' is missing", "present", "absent");
    const TensorInfo& info = store_.info(name);
    if (info.shape != shape) {
      fail(folder_, "tensor '" + name + "' has the wrong shape", shape_to_string(shape), shape_to_string(info.shape));
    }
    const DType d = info.dtype;
    if (d != DType::F32 && d != DType::F16 && d != DType::BF16 && d != DType::F64) {
      fail(folder_, "tensor '" + name + "' is not floating point", "F32, F16 or BF16", std::string(dtype_name(d)));
    }
    if (headers_ != nullptr) {
      headers_->weight_bytes += info.byte_size();
      ++headers_->dtypes[std::string(dtype_name(d))];
      return {};
    }
    // Mapped: the matrices stay views of the file (converted at use, Model); vectors are tiny. A
    // weight with an input transform beside it is computed, so it is held (converted) either way.
    if (opts_.mapped && shape.size() == 2) {
      at::Tensor view = store_.get(name);
      return base.empty() ? view : with_input_transform(base, view);
    }
    at::Tensor t = store_.get(name).to(opts_.device, opts_.dtype).contiguous().clone();
    return base.empty() ? t : with_input_transform(base, t);
  }
  bool contains(const std::string& name) const {
    return store_.contains(name) ||
           (name.size() > 7 && store_.contains(name.substr(0, name.size() - 7) + ".weight_packed"));
  }

  // compressed-tensors mxfp4-pack-quantized: weight_packed U8 [out, in/2] (element 2i in the low
  // nibble) and weight_scale U8 [out, in/32] (E8M0), decoded to the weight they stand for.
  at::Tensor packed(const std::string& base, const std::vector<int64_t>& shape) const {
    const std::string pn = base + ".weight_packed", sn = base + ".weight_scale";
    if (!store_.contains(sn)) fail(folder_, "tensor '" + pn + "' has no '" + sn + "' beside it", "present", "absent");
    const TensorInfo& pi = store_.info(pn);
    const TensorInfo& si = store_.info(sn);
    if (shape.size() != 2 || shape[1] % 32 != 0) fail(folder_, "tensor '" + pn + "': the weight's width is not a multiple of 32");
    const std::vector<int64_t> want_p = {shape[0], shape[1] / 2}, want_s = {shape[0], shape[1] / 32};
    if (pi.dtype != DType::U8 || pi.shape != want_p)
      fail(folder_, "tensor '" + pn + "'", "U8 " + shape_to_string(want_p), std::string(dtype_name(pi.dtype)) + " " + shape_to_string(pi.shape));
    if (si.dtype != DType::U8 || si.shape != want_s)
      fail(folder_, "tensor '" + sn + "'", "U8 " + shape_to_string(want_s), std::string(dtype_name(si.dtype)) + " " + shape_to_string(si.shape));
    if (headers_ != nullptr) {
      headers_->weight_bytes += pi.byte_size() + si.byte_size();
      ++headers_->dtypes["U8"];
      const auto found = input_transforms_.find(base);
      if (found != input_transforms_.end()) headers_->weight_bytes += store_.info(found->second).byte_size();
      return {};
    }
    MxPacked p;
    p.codes = store_.raw_bytes(pn).view({want_p[0], want_p[1]});
    p.scales = store_.raw_bytes(sn).view({want_s[0], want_s[1]});
    p.shape = shape;
    p.axis = 1;
    p.format = MxFormat::parse("mxfp4");
    p.nibbles = true;
    const InputTransform transform = input_transform(base, shape[1]);
    if (!opts_.mapped) {
      return apply_input_transform(decode_packed(p, opts_.device, opts_.dtype), transform, opts_.device, opts_.dtype);
    }
    // Mapped: decoded when used, one linear at a time (DeferredMatrices), from the mapped codes.
    // Without a transform the decoded matrix is held in bf16 like a mapped matrix and converted
    // at use. Exact: an MXFP4 value has at most two significant bits and an E8M0 scale only
    // moves the exponent, so bf16 holds it as fp32 does.
    const at::ScalarType dtype = transform.weight.defined() ? opts_.dtype : at::kBFloat16;
    const at::Device device = opts_.device;
    return deferred_->add(shape, dtype, [p, transform, device, dtype]() {
      return apply_input_transform(decode_packed(p, at::kCPU, at::kBFloat16), transform, device, dtype);
    });
  }

  // The MXFP4 values of packed codes.
  static at::Tensor decode_packed(const MxPacked& p, at::Device device, at::ScalarType dtype) {
    return mx_decode(p, at::kFloat).to(device, dtype).contiguous();
  }

  /// An input transform stored beside a linear: the matrix (undefined when none) and its block.
  struct InputTransform {
    at::Tensor weight;  // [b, b], as stored
    int64_t block = 0;
  };
  InputTransform input_transform(const std::string& base, int64_t n) const {
    const auto found = input_transforms_.find(base);
    if (found == input_transforms_.end()) return {};
    const std::string& tn = found->second;
    const TensorInfo& ti = store_.info(tn);
    // [n, n]: the whole input; [b, b] with b dividing n: one block applied to every b-wide block of
    // the input (the scheme's head_dim), x_blk W / sqrt(b).
    const int64_t b = ti.shape.size() == 2 && ti.shape[0] == ti.shape[1] ? ti.shape[0] : 0;
    if (b < 1 || b > n || n % b != 0)
      fail(folder_, "tensor '" + tn + "' has the wrong shape",
           shape_to_string(std::vector<int64_t>{n, n}) + " or a square block dividing " + std::to_string(n),
           shape_to_string(ti.shape));
    return {store_.get(tn), b};
  }
  static at::Tensor apply_input_transform(const at::Tensor& weight, const InputTransform& t, at::Device device,
                                          at::ScalarType dtype) {
    if (!t.weight.defined()) return weight;
    const int64_t n = weight.size(1), b = t.block;
    const at::Tensor w = t.weight.to(at::kDouble);
    const at::Tensor wd = weight.to(at::kCPU, at::kDouble);
    const at::Tensor eff =
        at::matmul(wd.reshape({wd.size(0), n / b, b}), w.t()).reshape({wd.size(0), n}) / std::sqrt(static_cast<double>(b));
    return eff.to(device, dtype).contiguous();
  }

  // An input transform of transform_config stored beside a linear ("<linear>.<group>_input.weight",
  // applied as x W / sqrt(n)) becomes part of the weight: W_eff = Q W^T / sqrt(n). The group is the
  // scheme's name ("down_online"), or "down_online_1" etc. when a scheme has one group per distinct
  // matrix: every such tensor counts, so that none is silently left out.
  at::Tensor with_input_transform(const std::string& base, const at::Tensor& weight) const {
    if (weight.dim() != 2) return weight;  // norm gains and biases: never transformed
    return apply_input_transform(weight, input_transform(base, weight.size(1)), opts_.device, opts_.dtype);
  }
  const std::string& folder() const { return folder_; }
  at::Tensor optional(const std::string& name, std::vector<int64_t> shape, bool expected) const {
    if (!expected) return {};
    return get(name, std::move(shape));
  }

 private:
  // "<linear>.<group>_input.weight" by "<linear>" (the group: no dot). Two transforms on one
  // input would be applied twice by a runtime: refused.
  void index_input_transforms() {
    static constexpr std::string_view kSuffix = "_input.weight";
    for (const std::string& name : store_.names_ending_with(kSuffix)) {
      const std::string stem = name.substr(0, name.size() - kSuffix.size());
      const size_t dot = stem.rfind('.');
      if (dot == std::string::npos || dot == 0 || dot + 1 == stem.size()) continue;
      const std::string base = stem.substr(0, dot);
      const auto [it, added] = input_transforms_.emplace(base, name);
      if (!added)
        fail(folder_, "linear '" + base + "' has two input transforms", "one", "'" + it->second + "' and '" + name + "'");
    }
  }

  const TensorStore& store_;
  std::string folder_;
  const LoadOptions& opts_;
  std::map<std::string, std::string> input_transforms_;
  ModelHeaders* headers_;

 public:
  /// The packed linears of a mapped load, decoded at use.
  std::shared_ptr<DeferredMatrices> deferred_ = std::make_shared<DeferredMatrices>();
};

LayerWeights read_hf_layer(const HfWeightReader& r, const ModelConfig& c, int64_t l) {
  const std::string p = "model.layers." + std::to_string(l) + ".";
  const int64_t H = c.hidden_size, I = c.intermediate_size, Q = c.q_size(), KV = c.kv_size();
  LayerWeights w;
  w.attn_norm = r.get(p + "input_layernorm.weight", {H});
  w.q = r.get(p + "self_attn.q_proj.weight", {Q, H});
  w.k = r.get(p + "self_attn.k_proj.weight", {KV, H});
  w.v = r.get(p + "self_attn.v_proj.weight", {KV, H});
  w.o = r.get(p + "self_attn.o_proj.weight", {H, Q});
  w.q_bias = r.optional(p + "self_attn.q_proj.bias", {Q}, c.attention_bias);
  w.k_bias = r.optional(p + "self_attn.k_proj.bias", {KV}, c.attention_bias);
  w.v_bias = r.optional(p + "self_attn.v_proj.bias", {KV}, c.attention_bias);
  w.o_bias = r.optional(p + "self_attn.o_proj.bias", {H}, c.o_bias);
  w.q_norm = r.optional(p + "self_attn.q_norm.weight", {c.head_dim}, c.qk_norm);
  w.k_norm = r.optional(p + "self_attn.k_norm.weight", {c.head_dim}, c.qk_norm);
  w.mlp_norm = r.get(p + "post_attention_layernorm.weight", {H});
  w.gate = r.get(p + "mlp.gate_proj.weight", {I, H});
  w.up = r.get(p + "mlp.up_proj.weight", {I, H});
  w.down = r.get(p + "mlp.down_proj.weight", {H, I});
  w.gate_bias = r.optional(p + "mlp.gate_proj.bias", {I}, c.mlp_bias);
  w.up_bias = r.optional(p + "mlp.up_proj.bias", {I}, c.mlp_bias);
  w.down_bias = r.optional(p + "mlp.down_proj.bias", {H}, c.mlp_bias);
  return w;
}

ModelWeights read_hf_weights(const HfWeightReader& r, const ModelConfig& cfg, const LoadOptions& opts) {
  ModelWeights w;
  const int64_t total = cfg.num_layers + 2;
  opts.job.report("load", 0, total);
  w.embed = r.get("model.embed_tokens.weight", {cfg.vocab_size, cfg.hidden_size});
  for (int64_t l = 0; l < cfg.num_layers; ++l) {
    opts.job.cancel.check();
    w.layers.push_back(read_hf_layer(r, cfg, l));
    opts.job.report("load", l + 2, total);
  }
  w.final_norm = r.get("model.norm.weight", {cfg.hidden_size});
  if (cfg.tie_word_embeddings) {
    w.lm_head = w.embed;
  } else if (r.contains("lm_head.weight")) {
    w.lm_head = r.get("lm_head.weight", {cfg.vocab_size, cfg.hidden_size});
  } else {
    fail(r.folder(), "tensor 'lm_head.weight' is missing and tie_word_embeddings is false", "present", "absent");
  }
  opts.job.report("load", total, total);
  return w;
}

Model load_hf_folder(const std::string& folder, const LoadOptions& opts) {
  ModelConfig cfg = load_model_config(folder);
  TensorStore store = TensorStore::open(folder);
  // compressed-tensors: the packed MXFP4 linears are decoded at load in memory, at use mapped
  const bool packed = !store.names_ending_with(".weight_packed").empty();
  // Every weight converted at load (or decoded): refused before reading when it cannot fit.
  if (!opts.mapped) {
    check_memory_fits(folder + (packed ? " (its packed MXFP4 weights are decoded at load)" : ""),
                      model_weight_bytes(cfg, opts.dtype), opts.device,
                      opts.device.is_cpu() ? "Load it memory-mapped (--weights mapped), or as bf16 (--dtype bf16)"
                                           : "Use a smaller dtype (--dtype bf16), or the CPU with mapped weights");
  }
  HfWeightReader r(store, folder, opts);
  ModelWeights w = read_hf_weights(r, cfg, opts);
  if (!opts.mapped) return Model(std::move(cfg), std::move(w));
  Model m(std::move(cfg), std::move(w), opts.dtype, opts.device);
  if (r.deferred_->size() > 0) m.set_deferred(r.deferred_);
  return m;
}

/// Sequential reader of the fp32 arrays that follow a llama2.c header.
class Llama2cReader {
 public:
  Llama2cReader(const std::string& path, uint64_t size) : in_(path, std::ios::binary), path_(path), size_(size) {
    in_.seekg(28);
  }
  at::Tensor next(std::vector<int64_t> shape) {
    at::Tensor t = at::empty(shape, at::kFloat);
    const auto bytes = static_cast<std::streamsize>(t.numel() * 4);
    in_.read(static_cast<char*>(t.data_ptr()), bytes);
    if (in_.gcount() != bytes) fail(path_, "unexpected end of llama2.c checkpoint", std::to_string(size_), "less");
    return t;
  }
  /// [L, rows, cols] stacked per-layer arrays, returned as L tensors.
  std::vector<at::Tensor> per_layer(int64_t layers, std::vector<int64_t> shape) {
    shape.insert(shape.begin(), layers);
    return next(shape).unbind(0);
  }
  void skip(uint64_t bytes) { in_.seekg(static_cast<std::streamoff>(bytes), std::ios::cur); }

 private:
  std::ifstream in_;
  std::string path_;
  uint64_t size_;
};

/// llama2.c rotates adjacent pairs; Hugging Face rotates halves. Permute q/k rows per head so that
/// the halves layout computes the same attention (transformers' conversion script does the same).
at::Tensor permute_for_halves(const at::Tensor& w, int64_t heads) {
  const int64_t rows = w.size(0), cols = w.size(1);
  return w.view({heads, rows / heads / 2, 2, cols}).transpose(1, 2).reshape({rows, cols}).contiguous();
}

Llama2cHeader read_llama2c_header(const std::string& path) {
  const uint64_t size = fs::file_size(path);
  uint8_t head[28] = {};
  {
    std::ifstream in(path, std::ios::binary);
    if (!in) fail(path, "cannot open file");
    in.read(reinterpret_cast<char*>(head), 28);
  }
  return parse_llama2c_header(head, size >= 28 ? 28 : static_cast<size_t>(size), size, path);
}

Model load_llama2c(const std::string& path, const LoadOptions& opts) {
  const uint64_t size = fs::file_size(path);
  Llama2cHeader h = read_llama2c_header(path);
  ModelConfig cfg = llama2c_model_config(h);
  // Read as fp32 (the file's dtype), then converted: at least the model in the compute dtype.
  check_memory_fits(path, model_weight_bytes(cfg, opts.dtype), opts.device, "Use a smaller dtype (--dtype bf16)");
  const int64_t D = cfg.hidden_size, I = cfg.intermediate_size, L = cfg.num_layers, KV = cfg.kv_size();
  Llama2cReader r(path, size);
  at::Tensor embed = r.next({cfg.vocab_size, D});
  auto att_norm = r.per_layer(L, {D});
  auto wq = r.per_layer(L, {D, D});
  auto wk = r.per_layer(L, {KV, D});
  auto wv = r.per_layer(L, {KV, D});
  auto wo = r.per_layer(L, {D, D});
  auto ffn_norm = r.per_layer(L, {D});
  auto w1 = r.per_layer(L, {I, D});
  auto w2 = r.per_layer(L, {D, I});
  auto w3 = r.per_layer(L, {I, D});
  at::Tensor final_norm = r.next({D});
  r.skip(static_cast<uint64_t>(cfg.max_position * cfg.head_dim) * 4);  // freq_cis_real + imag (unused)
  at::Tensor cls = h.shared_classifier ? at::Tensor() : r.next({cfg.vocab_size, D});
  auto conv = [&](const at::Tensor& t) { return t.to(opts.device, opts.dtype).contiguous(); };
  ModelWeights w;
  w.embed = conv(embed);
  for (int64_t l = 0; l < L; ++l) {
    const auto i = static_cast<size_t>(l);
    LayerWeights lw;
    lw.attn_norm = conv(att_norm[i]);
    lw.q = conv(permute_for_halves(wq[i], cfg.num_heads));
    lw.k = conv(permute_for_halves(wk[i], cfg.num_kv_heads));
    lw.v = conv(wv[i]);
    lw.o = conv(wo[i]);
    lw.mlp_norm = conv(ffn_norm[i]);
    lw.gate = conv(w1[i]);
    lw.down = conv(w2[i]);
    lw.up = conv(w3[i]);
    w.layers.push_back(std::move(lw));
  }
  w.final_norm = conv(final_norm);
  w.lm_head = h.shared_classifier ? w.embed : conv(cls);
  opts.job.report("load", 1, 1);
  return Model(std::move(cfg), std::move(w));
}

}  // namespace

bool is_llama2c_checkpoint(const std::string& path) { return fs::is_regular_file(path); }

namespace {

void check_model_path(const std::string& path) {
  if (!fs::exists(path)) fail(path, "no such file or folder");
  if (fs::path(path).extension() == ".safetensors") {
    fail(path, "a single weights file is not a model: pass the folder that holds config.json");
  }
}

}  // namespace

ModelHeaders inspect_model(const std::string& path) {
  check_model_path(path);
  ModelHeaders out;
  if (is_llama2c_checkpoint(path)) {
    const Llama2cHeader h = read_llama2c_header(path);
    out.config = llama2c_model_config(h);
    out.weight_bytes = 4 * h.parameter_count();
    out.dtypes["F32"] = 9 * h.n_layers + 2 + (h.shared_classifier ? 0 : 1);
    return out;
  }
  out.config = load_model_config(path);
  const TensorStore store = TensorStore::open(path);
  const LoadOptions none;
  const HfWeightReader r(store, path, none, &out);
  read_hf_weights(r, out.config, none);
  return out;
}

Model load_model(const std::string& path, const LoadOptions& options) {
  check_model_path(path);
  Model model = is_llama2c_checkpoint(path) ? load_llama2c(path, options) : load_hf_folder(path, options);
  if (!options.bf16_rope_frequencies) return model;
  ModelConfig cfg = model.config();
  cfg.rope.bf16_inv_freq = true;
  if (model.mapped()) return Model(std::move(cfg), std::move(model.stored_weights()), model.dtype(), model.device());
  return Model(std::move(cfg), std::move(model.stored_weights()));
}

}  // namespace latmix
