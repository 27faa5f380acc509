// The folded, quantized model of an export and the tensors of each format (export.h).
#include <c10/core/InferenceMode.h>

#include <cmath>
#include <cstring>
#include <filesystem>
#include <map>
#include <memory>
#include <utility>

#include "export/export_internal.h"
#include "latmix/error.h"
#include "latmix/memory.h"
#include "latmix/files.h"

namespace latmix::export_detail {

namespace fs = std::filesystem;

namespace {

struct LinearSlot {
  const char* name;  // "q", ...
  at::Tensor LayerWeights::*weight;
  at::Tensor LayerWeights::*bias;
};

const LinearSlot kLinears[] = {
    {"q", &LayerWeights::q, &LayerWeights::q_bias},          {"k", &LayerWeights::k, &LayerWeights::k_bias},
    {"v", &LayerWeights::v, &LayerWeights::v_bias},          {"o", &LayerWeights::o, &LayerWeights::o_bias},
    {"gate", &LayerWeights::gate, &LayerWeights::gate_bias}, {"up", &LayerWeights::up, &LayerWeights::up_bias},
    {"down", &LayerWeights::down, &LayerWeights::down_bias},
};

bool is_attention(const std::string& name) {
  return name == "q" || name == "k" || name == "v" || name == "o";
}

bool nonzero_bias(const TransformPtr& t) {
  if (!t) return false;
  const at::Tensor v = t->bias();
  return v.defined() && v.ne(0).any().item<bool>();
}

bool any_online_bias(const TransformPlan& plan) {
  for (const auto* list : {&plan.down_online, &plan.attn_online, &plan.mlp_online}) {
    for (const auto& t : *list) {
      if (nonzero_bias(t)) return true;
    }
  }
  return false;
}

at::Tensor bf16(const at::Tensor& t) {
  return t.detach().to(at::kCPU).to(at::kBFloat16).contiguous();
}

TensorSource bf16_source(std::string name, std::function<at::Tensor()> produce, std::vector<int64_t> shape) {
  return {std::move(name), DType::BF16, std::move(shape), [p = std::move(produce)] { return bf16(p()); }};
}

TensorSource bf16_of(std::string name, const at::Tensor& t) {
  return bf16_source(
      std::move(name), [t] { return t; }, t.sizes().vec());
}

// A quantized weight of a streaming export as bf16: produced when written, checked to hold the
// fake-quantized values exactly, its bytes' digest kept for the verification.
TensorSource streamed_bf16(const ExportModel& m, const std::string& tensor, int64_t layer, const std::string& linear,
                           std::vector<int64_t> shape) {
  return {tensor, DType::BF16, std::move(shape),
          [stream = m.stream, rec = m.streamed, tensor, layer, linear] {
            const at::Tensor q = stream->weight(layer, linear).detach().to(at::kCPU, at::kFloat);
            at::Tensor b = q.to(at::kBFloat16).contiguous();
            if (rec->first_mismatch.empty() && !at::equal(b.to(at::kFloat), q)) {
              rec->first_mismatch = tensor + ": bf16 does not hold the fake-quantized values";
            }
            rec->digests[tensor] = bytes_digest(b);
            ++rec->tensors;
            rec->values += q.numel();
            return b;
          }};
}

// Decides which bias tensors the export declares; throws where the architecture has no such option.
void resolve_biases(ExportModel& m) {
  const ModelConfig& c = m.fp.config();
  bool attn = false, o = false, mlp = false;
  for (const LayerWeights& lw : std::as_const(m.quantized).weights().layers) {
    attn = attn || (!c.attention_bias && (lw.q_bias.defined() || lw.k_bias.defined() || lw.v_bias.defined()));
    o = o || (!c.o_bias && lw.o_bias.defined());
    mlp = mlp || (!c.mlp_bias && (lw.gate_bias.defined() || lw.up_bias.defined() || lw.down_bias.defined()));
  }
  const bool llama_like = c.arch == Architecture::Llama || c.arch == Architecture::Qwen3;
  if ((attn || o) && !llama_like) {
    throw UsageError("export: the folded transforms need attention biases, which " + c.architecture_name +
                     " cannot declare (Llama and Qwen3 can, through attention_bias); use transforms without a bias v");
  }
  if (mlp && c.arch != Architecture::Llama) {
    throw UsageError("export: the folded transforms need MLP biases, which " + c.architecture_name +
                     " cannot declare (Llama can, through mlp_bias); use transforms without a bias v");
  }
  m.attention_bias = attn || o;
  m.mlp_bias = mlp;
  if (m.attention_bias)
    m.notes.push_back("config.json: attention_bias set to true (the folded transforms added biases)");
  if (m.mlp_bias) m.notes.push_back("config.json: mlp_bias set to true (the folded transforms added biases)");
}

// The bias to write for a linear: its own, a zero one when the export declares biases it lacks, or none.
at::Tensor bias_to_write(const ExportModel& m, const LayerWeights& lw, const LinearSlot& s) {
  const at::Tensor b = lw.*(s.bias);
  const ModelConfig& c = m.fp.config();
  const std::string n = s.name;
  bool declared = false;
  if (is_attention(n))
    declared = n == "o" ? (c.o_bias || m.attention_bias) : (c.attention_bias || m.attention_bias);
  else
    declared = c.mlp_bias || m.mlp_bias;
  if (!declared) return {};
  if (b.defined()) return b;
  return at::zeros({(lw.*(s.weight)).size(0)}, (lw.*(s.weight)).options());
}

bool lm_head_written(const ExportModel& m) {
  if (m.stream) return !m.fp.config().tie_word_embeddings || m.spec.lm_head.has_value();  // no plan when streaming
  const ModelWeights& w = m.quantized.weights();
  return !(m.fp.config().tie_word_embeddings && w.lm_head.is_same(w.embed));
}

// The tensors every format writes as bf16: embedding, norms; `linear` adds each linear's tensors.
std::vector<TensorSource> model_tensors(
    const ExportModel& m,
    const std::function<void(std::vector<TensorSource>&, int64_t, const LinearSlot&, const LayerWeights&)>& linear,
    const std::function<void(std::vector<TensorSource>&)>& lm_head) {
  const ModelWeights& w = m.quantized.weights();
  std::vector<TensorSource> out;
  out.push_back(bf16_of("model.embed_tokens.weight", w.embed));
  for (size_t l = 0; l < w.layers.size(); ++l) {
    const LayerWeights& lw = w.layers[l];
    const std::string p = "model.layers." + std::to_string(l) + ".";
    out.push_back(bf16_of(p + "input_layernorm.weight", lw.attn_norm));
    for (int i = 0; i < 4; ++i) linear(out, static_cast<int64_t>(l), kLinears[i], lw);
    if (lw.q_norm.defined()) out.push_back(bf16_of(p + "self_attn.q_norm.weight", lw.q_norm));
    if (lw.k_norm.defined()) out.push_back(bf16_of(p + "self_attn.k_norm.weight", lw.k_norm));
    out.push_back(bf16_of(p + "post_attention_layernorm.weight", lw.mlp_norm));
    for (int i = 4; i < 7; ++i) linear(out, static_cast<int64_t>(l), kLinears[i], lw);
  }
  out.push_back(bf16_of("model.norm.weight", w.final_norm));
  if (lm_head_written(m)) lm_head(out);
  return out;
}

}  // namespace

std::string transform_scheme_name(const std::string& linear) {
  if (linear == "down") return "down_online";
  if (linear == "gate" || linear == "up") return "mlp_online";
  return "attn_online";
}

MxFormat compressed_tensors_format() {
  return MxFormat::parse("mxfp4");
}

std::string hf_linear_name(int64_t layer, const std::string& name) {
  const std::string p = "model.layers." + std::to_string(layer) + ".";
  if (is_attention(name)) return p + "self_attn." + name + "_proj";
  return p + "mlp." + name + "_proj";
}

TransformPtr online_transform(const TransformPlan& plan, int64_t layer, const std::string& name) {
  auto at = [&](const std::vector<TransformPtr>& list) -> TransformPtr {
    return layer < static_cast<int64_t>(list.size()) ? list[static_cast<size_t>(layer)] : nullptr;
  };
  if (name == "q" || name == "k" || name == "v") return at(plan.attn_online);
  if (name == "gate" || name == "up") return at(plan.mlp_online);
  if (name == "down") return at(plan.down_online);
  return nullptr;
}

at::Tensor effective_weight(const at::Tensor& q, const Transform& t) {
  c10::InferenceMode guard;
  const at::Tensor qd = q.to(at::kDouble);
  // For an orthogonal A, A^-T = A, so the inverse map of the rows is exactly q A.
  if (t.is_orthogonal()) return t.inverse(qd);
  at::Tensor a_t = t.forward(at::eye(t.dim(), qd.options()));  // rows e_i A^T + v
  const at::Tensor v = t.bias();
  if (v.defined()) a_t = a_t - v.to(qd.options()).unsqueeze(0);
  return at::matmul(qd, a_t.t());
}

at::Tensor effective_bias(const at::Tensor& bias, const at::Tensor& q, const Transform& t) {
  const at::Tensor v = t.bias();
  if (!v.defined() || !v.ne(0).any().item<bool>()) return bias;
  const at::Tensor qv = at::matmul(q.to(at::kDouble), v.to(q.device(), at::kDouble));
  return bias.defined() ? bias.to(at::kDouble) + qv : qv;
}

bool linear_quantized(const ExportModel& m, int64_t layer, const std::string& name) {
  if (name == "lm_head") return m.spec.lm_head.has_value();
  return m.spec.weights.has_value() && m.spec.covers_layer(layer, m.fp.config().num_layers);
}

bool streams(const Model& fp, const TransformPlan& plan, const QuantSpec& spec, ExportKind kind) {
  return fp.mapped() && plan.empty() && !(spec.method == WeightMethod::Gptq && spec.lm_head) &&
         (kind == ExportKind::FoldedBf16 || kind == ExportKind::CompressedTensors);
}

at::Tensor ExportModel::quantized_weight(int64_t layer, const std::string& name) const {
  if (stream) return stream->weight(layer, name);
  const ModelWeights& w = quantized.weights();
  if (name == "lm_head") return w.lm_head;
  const LayerWeights& lw = w.layers[static_cast<size_t>(layer)];
  for (const LinearSlot& s : kLinears) {
    if (name == s.name) return lw.*(s.weight);
  }
  throw UsageError("export: no linear '" + name + "'");
}

uint64_t bytes_digest(const at::Tensor& t) {
  TORCH_CHECK(t.is_contiguous() && t.device().is_cpu(), "bytes_digest: a contiguous CPU tensor");
  const auto* p = static_cast<const uint8_t*>(t.data_ptr());
  const size_t n = static_cast<size_t>(t.numel()) * t.element_size();
  uint64_t h = 0xcbf29ce484222325ull ^ n;
  size_t i = 0;
  for (; i + 8 <= n; i += 8) {
    uint64_t w;
    std::memcpy(&w, p + i, 8);
    h = (h ^ w) * 0x100000001b3ull;
    h ^= h >> 29;
  }
  for (; i < n; ++i) h = (h ^ p[i]) * 0x100000001b3ull;
  return h;
}

namespace {
// What a held or streamed export model settles last: the biases its config declares, and an
// lm_head of its own when folding or quantizing made it differ from the embedding.
void finish_export_model(ExportModel& m) {
  resolve_biases(m);
  if (lm_head_written(m) && m.fp.config().tie_word_embeddings) {
    m.untied_lm_head = true;
    m.notes.push_back(
        "config.json: tie_word_embeddings set to false (lm_head is its own tensor after folding or quantizing)");
  }
}
}  // namespace

ExportModel prepare_export_model(const Model& fp, const TransformPlan& plan, const QuantSpec& spec,
                                 const CalibrationSet* calib, const JobControl& job, ExportKind kind) {
  ExportModel m{fp, fp, plan, spec, {}, {}, false, false, false, std::nullopt};
  if (streams(fp, plan, spec, kind)) {
    // Nothing is quantized here: each weight is, when the writer asks for its tensor.
    // The writer reports progress ("write", bytes); quantizing happens inside it, so the quantizer
    // only shares the cancel token (two interleaved stages would reset the console's bar and ETA).
    JobControl cancel_only;
    cancel_only.cancel = job.cancel;
    m.stream = std::make_shared<StreamingQuantizer>(fp, spec, calib, cancel_only);
    m.streamed = std::make_shared<StreamedWeights>();
    m.report.spec = to_string(spec);
    finish_export_model(m);
    return m;
  }
  // Held next to the FP model: the quantized copy (compressed-tensors: its layers on the host as they
  // are made) and, with a plan, the folded FP copy on the model's device.
  {
    const uint64_t copy = model_weight_bytes(fp.config(), fp.dtype());
    const bool to_host = kind == ExportKind::CompressedTensors && !fp.device().is_cpu();
    const std::string hint = fp.mapped() || !plan.empty() || (spec.method == WeightMethod::Gptq && spec.lm_head)
                                 ? "Export as bf16 (--dtype bf16), or on a machine with more memory"
                                 : "Load the model mapped (--weights mapped): an rtn/gptq export then streams";
    if (to_host) {
      check_memory_fits("export", copy, at::kCPU, hint);
      if (!plan.empty()) check_memory_fits("export", copy, fp.device(), hint);
    } else {
      check_memory_fits("export", copy * (plan.empty() ? 1 : 2), fp.device(), hint);
    }
  }
  Model work = fp;
  if (!plan.empty()) {
    FoldOptions options;
    // A value transform's bias folds away exactly without new tensors (Drop); an online one needs a home.
    options.missing_bias = any_online_bias(plan) ? MissingBias::Create : MissingBias::Drop;
    FoldResult folded = fold_transforms(work, plan, options);
    for (auto& n : folded.notes) m.notes.push_back(std::move(n));
  }
  QuantizeOptions memory;
  memory.layers_to_host = kind == ExportKind::CompressedTensors;
  QuantizedModel q = quantize_model(work, spec, calib, job, memory);
  if (q.activation_hook) q.model.remove_hook(q.activation_hook);
  m.quantized = std::move(q.model);
  m.report = std::move(q.report);
  finish_export_model(m);
  return m;
}

std::vector<TensorSource> folded_bf16_tensors(const ExportModel& m) {
  auto linear = [&m](std::vector<TensorSource>& out, int64_t l, const LinearSlot& s, const LayerWeights& lw) {
    const std::string name = hf_linear_name(l, s.name);
    const at::Tensor q = lw.*(s.weight);
    const TransformPtr t = online_transform(m.plan, l, s.name);
    if (t) {
      out.push_back(bf16_source(
          name + ".weight", [q, t] { return effective_weight(q, *t); }, q.sizes().vec()));
    } else if (m.stream && linear_quantized(m, l, s.name)) {
      out.push_back(streamed_bf16(m, name + ".weight", l, s.name, q.sizes().vec()));
    } else {
      out.push_back(bf16_of(name + ".weight", q));
    }
    at::Tensor b = bias_to_write(m, lw, s);
    if (b.defined()) {
      if (t)
        out.push_back(bf16_source(
            name + ".bias", [b, q, t] { return effective_bias(b, q, *t); }, b.sizes().vec()));
      else
        out.push_back(bf16_of(name + ".bias", b));
    }
  };
  auto lm_head = [&m](std::vector<TensorSource>& out) {
    const at::Tensor w = m.quantized.weights().lm_head;
    if (m.stream && m.spec.lm_head)
      out.push_back(streamed_bf16(m, "lm_head.weight", m.fp.config().num_layers, "lm_head", w.sizes().vec()));
    else
      out.push_back(bf16_of("lm_head.weight", w));
  };
  return model_tensors(m, linear, lm_head);
}

void check_compressed_tensors_spec(const QuantSpec& spec, const TransformPlan& plan, const ModelConfig& c) {
  auto is_mxfp4 = [](const MxFormat& f) {
    return f.element == ElementFormat::E2M1 && f.block == 32 && f.scale_type == ScaleType::E8M0;
  };
  if (!spec.weights || !is_mxfp4(*spec.weights)) {
    throw UsageError(
        "compressed-tensors export: the mxfp4-pack-quantized format holds MXFP4 weights (E2M1, block 32, "
        "E8M0 scales); the spec has w=" +
        (spec.weights ? spec.weights->name() : std::string("none")) + " (use --as folded-bf16 for other formats)");
  }
  if (spec.activations && !is_mxfp4(*spec.activations)) {
    throw UsageError("compressed-tensors export: activations must be mxfp4 (block 32) or none, not " +
                     spec.activations->name());
  }
  if (spec.lm_head && !is_mxfp4(*spec.lm_head)) {
    throw UsageError("compressed-tensors export: lm_head must be mxfp4 (block 32) or none, not " +
                     spec.lm_head->name());
  }
  for (int64_t width : {c.hidden_size, c.intermediate_size, c.q_size()}) {
    if (width % 32 != 0) {
      throw UsageError(
          "compressed-tensors export: every linear's input width must be a multiple of 32; this model has " +
          std::to_string(width));
    }
  }
  for (const auto* list : {&plan.down_online, &plan.attn_online, &plan.mlp_online}) {
    for (size_t l = 0; l < list->size(); ++l) {
      const TransformPtr& t = (*list)[l];
      if (nonzero_bias(t)) {
        throw UsageError("compressed-tensors export: the online transform of layer " + std::to_string(l) + " (" +
                         t->kind() +
                         ") has a bias v, which transform_config cannot declare (a runtime applies x W "
                         "to the input of a linear without bias); use --as folded-bf16");
      }
    }
  }
}

std::vector<TensorSource> compressed_tensors_tensors(const ExportModel& m) {
  const MxFormat format = compressed_tensors_format();
  // Encoded on the FP model's device (the CUDA encoder equals the CPU one bit for bit; the
  // 8B-shaped export spent minutes encoding on the host), the codes then go to the host.
  // `quantized` gives the fake-quantized weight (held, or streamed: then the encoding is checked
  // to decode to it and the digests of both tensors are kept for the verification).
  const at::Device device = m.fp.device();
  const std::shared_ptr<StreamedWeights> rec = m.stream ? m.streamed : nullptr;
  auto packed = [format, device, rec](std::vector<TensorSource>& out, const std::string& name,
                                      std::vector<int64_t> shape, std::function<at::Tensor()> quantized) {
    const int64_t rows = shape[0], cols = shape[1];
    // Both tensors come from one encode; produce() runs once per tensor, in order, so the
    // scales wait in a shared slot until their turn.
    auto scales = std::make_shared<at::Tensor>();
    out.push_back({name + ".weight_packed", DType::U8, {rows, cols / 2}, [quantized, format, scales, device, rec, name] {
                     const at::Tensor q = quantized().detach().to(device, at::kFloat);
                     MxPacked p = mx_encode(q, format, -1, true);
                     const at::Tensor codes = p.codes.to(at::kCPU).contiguous();
                     *scales = p.scales.to(at::kCPU).contiguous();
                     if (rec) {
                       if (rec->first_mismatch.empty() && !at::equal(mx_decode(p, at::kFloat), q))
                         rec->first_mismatch = name + ": the packed codes do not decode to the fake-quantized weight";
                       rec->digests[name + ".weight_packed"] = bytes_digest(codes);
                       rec->digests[name + ".weight_scale"] = bytes_digest(*scales);
                       ++rec->tensors;
                       rec->values += q.numel();
                     }
                     return codes;
                   }});
    out.push_back({name + ".weight_scale", DType::U8, {rows, cols / 32}, [scales] {
                     at::Tensor s = *scales;
                     scales->reset();
                     return s;
                   }});
  };
  // Each transformed linear's group (float32 matrix, one block when the transform is block-diagonal).
  std::map<std::string, const CtTransformGroup*> group_of;
  auto groups = std::make_shared<std::vector<CtTransformGroup>>(ct_transform_groups(m.plan, m.fp.config()));
  for (const auto& g : *groups) {
    for (const auto& module : g.modules) group_of[module] = &g;
  }
  auto linear = [&m, packed, group_of, groups](std::vector<TensorSource>& out, int64_t l, const LinearSlot& s,
                                               const LayerWeights& lw) {
    const std::string name = hf_linear_name(l, s.name);
    const at::Tensor q = lw.*(s.weight);
    const std::string linear_name = s.name;
    if (linear_quantized(m, l, s.name) && m.stream)
      packed(out, name, q.sizes().vec(), [stream = m.stream, l, linear_name] { return stream->weight(l, linear_name); });
    else if (linear_quantized(m, l, s.name))
      packed(out, name, q.sizes().vec(), [q] { return q; });
    else
      out.push_back(bf16_of(name + ".weight", q));
    const at::Tensor b = bias_to_write(m, lw, s);
    const auto g = group_of.find(name);
    if (g != group_of.end() && b.defined()) {
      const std::string origin = (lw.*(s.bias)).defined() ? "" : " (a zero bias the export must declare)";
      throw UsageError("compressed-tensors export: " + name + " has an online transform in front of it and a bias" +
                       origin +
                       "; vLLM's transform support requires a linear without bias and a bias cannot be folded "
                       "through the transform: use --as folded-bf16, or transforms without a bias v");
    }
    if (b.defined()) out.push_back(bf16_of(name + ".bias", b));
    if (g != group_of.end()) {
      // transform_config semantics (compressed-tensors and vLLM): input x -> x W / sqrt(n) with the
      // stored W (per block of head_dim when set), so W = sqrt(b) B^T gives x A^T; float32, as both load it.
      const at::Tensor w = g->second->matrix;
      out.push_back(
          {ct_transform_tensor_name(name, g->second->name), DType::F32, w.sizes().vec(), [w, groups] { return w; }});
    }
  };
  auto lm_head = [&m, packed](std::vector<TensorSource>& out) {
    const at::Tensor w = m.quantized.weights().lm_head;
    const int64_t layers = m.fp.config().num_layers;
    if (m.spec.lm_head && m.stream)
      packed(out, "lm_head", w.sizes().vec(), [stream = m.stream, layers] { return stream->weight(layers, "lm_head"); });
    else if (m.spec.lm_head)
      packed(out, "lm_head", w.sizes().vec(), [w] { return w; });
    else
      out.push_back(bf16_of("lm_head.weight", w));
  };
  return model_tensors(m, linear, lm_head);
}

uint64_t estimate_export_bytes(const ExportModel& m, const std::string& source_path, ExportKind kind) {
  uint64_t bytes = 1u << 20;  // config, README, manifest, headers
  if (kind == ExportKind::Transforms) {
    for (const auto& t : m.plan.all()) {
      for (const auto& [name, tensor] : t->state()) bytes += static_cast<uint64_t>(tensor.numel()) * 4;
    }
    return bytes;
  }
  if (kind == ExportKind::Gguf) {
    // An upper bound from the shapes (the tensors are produced only when written): F32 for all.
    for (const auto& t : folded_bf16_tensors(m)) {
      uint64_t n = 1;
      for (int64_t d : t.shape) n *= static_cast<uint64_t>(d);
      bytes += n * 4 + 96 + t.name.size();
    }
    return bytes + 64 * static_cast<uint64_t>(m.fp.config().vocab_size);  // vocabulary and merges
  }
  const std::vector<TensorSource> tensors =
      kind == ExportKind::FoldedBf16 ? folded_bf16_tensors(m) : compressed_tensors_tensors(m);
  for (const TensorSource& t : tensors) bytes += *tensor_byte_size(t.dtype, t.shape) + 64 + t.name.size();
  std::error_code ec;
  const fs::path dir = fs::is_directory(source_path, ec) ? fs::path(source_path) : fs::path(source_path).parent_path();
  for (const char* f : {"tokenizer.json", "tokenizer.model", "tokenizer_config.json", "generation_config.json"}) {
    if (fs::is_regular_file(dir / f, ec)) bytes += static_cast<uint64_t>(fs::file_size(dir / f, ec));
  }
  return bytes;
}

}  // namespace latmix::export_detail
