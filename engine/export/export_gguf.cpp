// The GGUF export (export.h): llama.cpp's "llama" architecture, its byte-level BPE vocabulary,
// q/k rows in llama.cpp's rotary layout, linear weights as ggml MXFP4 blocks from our own codes.
#include <c10/core/InferenceMode.h>

#include <cmath>
#include <filesystem>

#include "export/export_internal.h"
#include "latmix/error.h"
#include "latmix/json.h"

namespace latmix::export_detail {

namespace fs = std::filesystem;
using nlohmann::json;

namespace {

// The pre-tokenizer regexes llama.cpp knows by name (its llama-vocab.cpp), as tokenizer.json
// writes them in a Split pre-tokenizer.
struct KnownPreTokenizer {
  const char* name;
  const char* regex;
};
const KnownPreTokenizer kPreTokenizers[] = {
    {"llama-bpe",
     "(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\\r\\n\\p{L}\\p{N}]?\\p{L}+|\\p{N}{1,3}| ?[^\\s\\p{L}\\p{N}]+[\\r\\n]*|"
     "\\s*[\\r\\n]+|\\s+(?!\\S)|\\s+"},
    {"qwen2",
     "(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\\r\\n\\p{L}\\p{N}]?\\p{L}+|\\p{N}| ?[^\\s\\p{L}\\p{N}]+[\\r\\n]*|"
     "\\s*[\\r\\n]+|\\s+(?!\\S)|\\s+"},
};

fs::path tokenizer_path(const std::string& source_path) {
  return fs::path(source_path) / "tokenizer.json";
}

// The Split regex of a Sequence [Split, ByteLevel(use_regex false)], "" for a plain
// ByteLevel(use_regex true) (GPT-2), or nullopt for anything else.
std::optional<std::string> split_regex(const json& pre) {
  if (!pre.is_object()) return std::nullopt;
  const std::string type = pre.value("type", "");
  if (type == "ByteLevel") return pre.value("use_regex", true) ? std::optional<std::string>("") : std::nullopt;
  if (type != "Sequence" || !pre.contains("pretokenizers") || pre["pretokenizers"].size() != 2) return std::nullopt;
  const json& split = pre["pretokenizers"][0];
  const json& bytes = pre["pretokenizers"][1];
  if (split.value("type", "") != "Split" || bytes.value("type", "") != "ByteLevel" || bytes.value("use_regex", true))
    return std::nullopt;
  if (!split.contains("pattern") || !split["pattern"].contains("Regex")) return std::nullopt;
  return split["pattern"]["Regex"].get<std::string>();
}

// Whether the post-processor puts a special token in front of every text (Llama 3's BOS).
bool adds_bos(const json& post) {
  if (!post.is_object()) return false;
  if (post.value("type", "") == "Sequence") {
    for (const auto& p : post.value("processors", json::array())) {
      if (adds_bos(p)) return true;
    }
    return false;
  }
  if (post.value("type", "") != "TemplateProcessing") return false;
  const json single = post.value("single", json::array());
  return !single.empty() && single[0].contains("SpecialToken");
}

struct GgufVocab {
  std::string pre;
  std::vector<std::string> tokens;
  std::vector<int32_t> types;
  std::vector<std::string> merges;
  bool add_bos = false;
};

GgufVocab read_vocab(const std::string& source_path, int64_t vocab_size) {
  const std::string path = tokenizer_path(source_path).string();
  const json t = read_json_file(path);
  const json& model = t["model"];
  if (!model.is_object() || model.value("type", "") != "BPE" || !t["pre_tokenizer"].is_object() ||
      !t["decoder"].is_object() || t["decoder"].value("type", "") != "ByteLevel" || !t["normalizer"].is_null()) {
    fail(path, "GGUF export: the tokenizer",
         "byte-level BPE (model BPE, ByteLevel pre-tokenizer and decoder, no normalizer)",
         "another kind (GGUF's gpt2 vocabulary could not reproduce it)");
  }
  GgufVocab v;
  const auto regex = split_regex(t["pre_tokenizer"]);
  if (regex && regex->empty()) v.pre = "gpt-2";
  for (const auto& k : kPreTokenizers) {
    if (regex && *regex == k.regex) v.pre = k.name;
  }
  if (v.pre.empty()) {
    fail(path, "GGUF export: the pre-tokenizer", "one llama.cpp knows by name (llama-bpe, qwen2, gpt-2)",
         regex ? "the regex " + *regex : t["pre_tokenizer"].dump().substr(0, 200));
  }
  v.tokens.assign(static_cast<size_t>(vocab_size), "");
  v.types.assign(static_cast<size_t>(vocab_size), 0);
  for (const auto& [piece, id] : model["vocab"].items()) {
    const int64_t i = id.get<int64_t>();
    if (i < 0 || i >= vocab_size)
      fail(path, "token " + piece, "an id below vocab_size " + std::to_string(vocab_size), std::to_string(i));
    v.tokens[static_cast<size_t>(i)] = piece;
    v.types[static_cast<size_t>(i)] = 1;  // normal
  }
  for (const auto& a : t.value("added_tokens", json::array())) {
    const int64_t i = a.value("id", int64_t{-1});
    if (i < 0 || i >= vocab_size) continue;
    v.tokens[static_cast<size_t>(i)] = a.value("content", "");
    v.types[static_cast<size_t>(i)] = a.value("special", false) ? 3 : 4;  // control, user defined
  }
  for (size_t i = 0; i < v.tokens.size(); ++i) {
    if (v.types[i] == 0) {  // ids of the embedding beyond the tokenizer: llama.cpp's padding
      v.tokens[i] = "[PAD" + std::to_string(i) + "]";
      v.types[i] = 5;  // unused
    }
  }
  for (const auto& m : model.value("merges", json::array())) {
    v.merges.push_back(m.is_string() ? m.get<std::string>() : m[0].get<std::string>() + " " + m[1].get<std::string>());
  }
  v.add_bos = adds_bos(t["post_processor"]);
  return v;
}

GgufKeyValue kv_u32(std::string key, int64_t v) {
  return {std::move(key), GgufType::U32, json(static_cast<uint32_t>(v))};
}
GgufKeyValue kv_f32(std::string key, double v) {
  return {std::move(key), GgufType::F32, json(static_cast<float>(v))};
}
GgufKeyValue kv_str(std::string key, std::string v) {
  return {std::move(key), GgufType::STRING, json(std::move(v))};
}
GgufKeyValue kv_bool(std::string key, bool v) {
  return {std::move(key), GgufType::BOOL, json(v)};
}

bool any_bias(const ModelWeights& w) {
  for (const LayerWeights& lw : w.layers) {
    for (const at::Tensor* b :
         {&lw.q_bias, &lw.k_bias, &lw.v_bias, &lw.o_bias, &lw.gate_bias, &lw.up_bias, &lw.down_bias}) {
      if (b->defined()) return true;
    }
  }
  return false;
}

// llama.cpp's llama3 rope: per-frequency factors (the rope_freqs tensor its converter writes).
at::Tensor llama3_rope_factors(const ModelConfig& c) {
  const RopeConfig& r = c.rope;
  const int64_t half = c.head_dim / 2;
  std::vector<float> f(static_cast<size_t>(half));
  const double low_wavelen = static_cast<double>(r.original_max_position) / r.low_freq_factor;
  const double high_wavelen = static_cast<double>(r.original_max_position) / r.high_freq_factor;
  for (int64_t i = 0; i < half; ++i) {
    const double freq = 1.0 / std::pow(r.theta, static_cast<double>(2 * i) / static_cast<double>(c.head_dim));
    const double wavelen = 2 * M_PI / freq;
    double factor = 1;
    if (wavelen > low_wavelen) {
      factor = r.factor;
    } else if (wavelen >= high_wavelen) {
      const double smooth = (static_cast<double>(r.original_max_position) / wavelen - r.low_freq_factor) /
                            (r.high_freq_factor - r.low_freq_factor);
      factor = 1 / ((1 - smooth) / r.factor + smooth);
    }
    f[static_cast<size_t>(i)] = static_cast<float>(factor);
  }
  return at::tensor(f, at::kFloat);
}

at::Tensor cast_to(const at::Tensor& t, GgmlType type) {
  const at::Tensor c = t.detach().to(at::kCPU);
  switch (type) {
    case GgmlType::F16:
      return c.to(at::kHalf).contiguous();
    case GgmlType::BF16:
      return c.to(at::kBFloat16).contiguous();
    default:
      return c.to(at::kFloat).contiguous();
  }
}

std::vector<int64_t> ggml_shape(const at::Tensor& t) {
  std::vector<int64_t> ne(t.sizes().rbegin(), t.sizes().rend());
  return ne;
}

}  // namespace

at::Tensor gguf_permute_rows(const at::Tensor& w, int64_t heads) {
  const int64_t rows = w.size(0);
  std::vector<int64_t> split = {heads, 2, rows / heads / 2};
  for (int64_t d = 1; d < w.dim(); ++d) split.push_back(w.size(d));
  return w.reshape(split).transpose(1, 2).reshape(w.sizes()).contiguous();
}

std::string gguf_linear_name(int64_t layer, const std::string& name) {
  static const std::map<std::string, std::string> names = {{"q", "attn_q"},      {"k", "attn_k"},      {"v", "attn_v"},
                                                           {"o", "attn_output"}, {"gate", "ffn_gate"}, {"up", "ffn_up"},
                                                           {"down", "ffn_down"}};
  return "blk." + std::to_string(layer) + "." + names.at(name) + ".weight";
}

void check_gguf_spec(const QuantSpec& spec, const TransformPlan& plan, const ModelConfig& c,
                     const std::string& source_path) {
  for (const auto* list : {&plan.down_online, &plan.attn_online, &plan.mlp_online}) {
    for (size_t l = 0; l < list->size(); ++l) {
      if ((*list)[l]) {
        throw UsageError("GGUF export: layer " + std::to_string(l) + " has an online transform (" + (*list)[l]->kind() +
                         ") applied to activations at run time; GGUF has no online transforms, so llama.cpp would run "
                         "the model without it. Use a plan whose transforms all fold (residual, value), or --as "
                         "folded-bf16 (effective weights) or compressed-tensors (vLLM applies it)");
      }
    }
  }
  auto is_mxfp4 = [](const MxFormat& f) {
    return f.element == ElementFormat::E2M1 && f.block == 32 && f.scale_type == ScaleType::E8M0;
  };
  if (spec.weights && !is_mxfp4(*spec.weights)) {
    throw UsageError("GGUF export: ggml has MXFP4 blocks (E2M1, block 32, E8M0) but no block type for " +
                     spec.weights->name() + "; use w=mxfp4, or w=none for a float GGUF");
  }
  if (spec.lm_head && !is_mxfp4(*spec.lm_head)) {
    throw UsageError("GGUF export: lm_head must be mxfp4 or none, not " + spec.lm_head->name());
  }
  if (c.arch != Architecture::Llama && c.arch != Architecture::Mistral) {
    throw UsageError("GGUF export: writes llama.cpp's llama architecture (Llama, Mistral); this model is " +
                     c.architecture_name);
  }
  std::error_code ec;
  if (!fs::is_regular_file(tokenizer_path(source_path), ec)) {
    throw UsageError("GGUF export: needs the model folder's tokenizer.json (byte-level BPE); " + source_path +
                     " has none (a llama2.c checkpoint: use --as folded-bf16)");
  }
  if (c.head_dim % 2 != 0) throw UsageError("GGUF export: head_dim must be even");
  read_vocab(source_path, c.vocab_size);  // refuses an unknown pre-tokenizer before any work
}

std::vector<GgufKeyValue> gguf_metadata(const ExportModel& m, const std::string& source_path, GgmlType float_type,
                                        const std::string& description) {
  const ModelConfig& c = m.fp.config();
  const GgufVocab vocab = read_vocab(source_path, c.vocab_size);
  std::vector<GgufKeyValue> kv;
  kv.push_back(kv_str("general.architecture", "llama"));
  kv.push_back(kv_str("general.name", fs::path(source_path).lexically_normal().filename().string()));
  kv.push_back(kv_str("general.description", description));
  uint32_t file_type = float_type == GgmlType::F16 ? 1 : float_type == GgmlType::BF16 ? 32 : 0;
  if (m.spec.weights) file_type = 38;  // LLAMA_FTYPE_MOSTLY_MXFP4_MOE, ggml's only MXFP4 file type
  kv.push_back(kv_u32("general.file_type", file_type));
  kv.push_back(kv_u32("general.quantization_version", 2));
  kv.push_back(kv_u32("llama.vocab_size", c.vocab_size));
  kv.push_back(kv_u32("llama.context_length", c.max_position));
  kv.push_back(kv_u32("llama.embedding_length", c.hidden_size));
  kv.push_back(kv_u32("llama.block_count", c.num_layers));
  kv.push_back(kv_u32("llama.feed_forward_length", c.intermediate_size));
  kv.push_back(kv_u32("llama.attention.head_count", c.num_heads));
  kv.push_back(kv_u32("llama.attention.head_count_kv", c.num_kv_heads));
  kv.push_back(kv_u32("llama.attention.key_length", c.head_dim));
  kv.push_back(kv_u32("llama.attention.value_length", c.head_dim));
  kv.push_back(kv_u32("llama.rope.dimension_count", c.head_dim));
  kv.push_back(kv_f32("llama.rope.freq_base", c.rope.theta));
  kv.push_back(kv_f32("llama.attention.layer_norm_rms_epsilon", c.rms_norm_eps));
  kv.push_back(kv_str("tokenizer.ggml.model", "gpt2"));
  kv.push_back(kv_str("tokenizer.ggml.pre", vocab.pre));
  kv.push_back({"tokenizer.ggml.tokens", GgufType::ARRAY, json(vocab.tokens), GgufType::STRING});
  kv.push_back({"tokenizer.ggml.token_type", GgufType::ARRAY, json(vocab.types), GgufType::I32});
  kv.push_back({"tokenizer.ggml.merges", GgufType::ARRAY, json(vocab.merges), GgufType::STRING});
  if (c.bos_token_id) kv.push_back(kv_u32("tokenizer.ggml.bos_token_id", *c.bos_token_id));
  if (c.eos_token_id) kv.push_back(kv_u32("tokenizer.ggml.eos_token_id", *c.eos_token_id));
  kv.push_back(kv_bool("tokenizer.ggml.add_bos_token", vocab.add_bos));
  kv.push_back(kv_bool("tokenizer.ggml.add_eos_token", false));
  return kv;
}

std::vector<GgufTensorSource> gguf_tensors(const ExportModel& m, GgmlType float_type) {
  const ModelConfig& c = m.fp.config();
  const ModelWeights& w = m.quantized.weights();
  if (any_bias(w)) {
    throw UsageError(
        "GGUF export: the folded plan gives linear layers biases (a transform with a bias v); this GGUF export "
        "writes llama.cpp's llama architecture without biases. Use transforms without a bias, or --as folded-bf16");
  }
  std::vector<GgufTensorSource> out;
  auto floating = [&out](std::string name, const at::Tensor& t, GgmlType type) {
    out.push_back({std::move(name), type, ggml_shape(t), [t, type] { return cast_to(t, type); }});
  };
  auto linear = [&](std::string name, const at::Tensor& weight, bool quantized, int64_t permute_heads) {
    const at::Tensor q = weight;
    if (!quantized) {
      floating(std::move(name), permute_heads ? gguf_permute_rows(q, permute_heads) : q, float_type);
      return;
    }
    const MxFormat format = *m.spec.weights;
    out.push_back({std::move(name), GgmlType::MXFP4, ggml_shape(q), [q, permute_heads, format] {
                     c10::InferenceMode guard;
                     const at::Tensor x = q.detach().to(at::kCPU, at::kFloat);
                     return gguf_mxfp4_encode(permute_heads ? gguf_permute_rows(x, permute_heads) : x, format);
                   }});
  };
  floating("token_embd.weight", w.embed, float_type);
  if (c.rope.type == RopeType::Llama3) floating("rope_freqs.weight", llama3_rope_factors(c), GgmlType::F32);
  for (size_t i = 0; i < w.layers.size(); ++i) {
    const auto l = static_cast<int64_t>(i);
    const LayerWeights& lw = w.layers[i];
    const bool q = linear_quantized(m, l, "q");
    const std::string p = "blk." + std::to_string(l) + ".";
    floating(p + "attn_norm.weight", lw.attn_norm, GgmlType::F32);
    linear(gguf_linear_name(l, "q"), lw.q, q, c.num_heads);
    linear(gguf_linear_name(l, "k"), lw.k, q, c.num_kv_heads);
    linear(gguf_linear_name(l, "v"), lw.v, q, 0);
    linear(gguf_linear_name(l, "o"), lw.o, q, 0);
    floating(p + "ffn_norm.weight", lw.mlp_norm, GgmlType::F32);
    linear(gguf_linear_name(l, "gate"), lw.gate, q, 0);
    linear(gguf_linear_name(l, "up"), lw.up, q, 0);
    linear(gguf_linear_name(l, "down"), lw.down, q, 0);
  }
  floating("output_norm.weight", w.final_norm, GgmlType::F32);
  if (!(c.tie_word_embeddings && w.lm_head.is_same(w.embed))) {
    linear("output.weight", w.lm_head, linear_quantized(m, 0, "lm_head"), 0);
  }
  return out;
}

std::string gguf_runtime_note() {
  return "llama.cpp (and what embeds it: ollama, LM Studio, node-llama-cpp) loads this file as a `llama` model.\n"
         "What it applies: the weights exactly as exported (MXFP4 blocks decode to the fake-quantized weights bit\n"
         "for bit; the other tensors as stored). What it does not: the spec's activation quantization (`a=`);\n"
         "llama.cpp's CPU path instead rounds activations to Q8_0 before an MXFP4 matrix product, so its logits\n"
         "differ slightly from the weight-only model (measured in docs/export.md). GGUF has no online transforms:\n"
         "plans with one are refused.\n";
}

}  // namespace latmix::export_detail

namespace latmix::export_detail {

void verify_gguf_written(const ExportModel& m, const std::string& file, GgmlType float_type, ExportVerification& out) {
  c10::InferenceMode guard;
  const GgufFile f = read_gguf(file);
  const std::vector<GgufTensorSource> want = gguf_tensors(m, float_type);
  int64_t blocks = 0, floats = 0;
  std::string problem;
  if (f.tensors.size() != want.size()) {
    problem = std::to_string(f.tensors.size()) + " tensors read back, " + std::to_string(want.size()) + " written";
  }
  for (const GgufTensorSource& w : want) {
    if (!problem.empty()) break;
    const GgufTensorInfo* info = f.tensor(w.name);
    if (info == nullptr || info->type != w.type || info->ne != w.ne) {
      problem = w.name + ": missing, or another type or shape when read back";
      break;
    }
    const at::Tensor got = read_gguf_tensor(f, *info);
    at::Tensor expected;
    if (w.type == GgmlType::MXFP4) {
      // The reference is the fake-quantized weight itself (not the blocks we wrote), rows permuted.
      const std::string& n = w.name;
      const ModelWeights& mw = m.quantized.weights();
      at::Tensor q;
      int64_t heads = 0;
      if (n == "output.weight") {
        q = mw.lm_head;
      } else {
        const int64_t layer = std::stoll(n.substr(4, n.find('.', 4) - 4));
        const LayerWeights& lw = mw.layers[static_cast<size_t>(layer)];
        for (const auto& [linear, tensor, h] :
             {std::tuple<const char*, const at::Tensor*, int64_t>{"q", &lw.q, m.fp.config().num_heads},
              {"k", &lw.k, m.fp.config().num_kv_heads},
              {"v", &lw.v, 0},
              {"o", &lw.o, 0},
              {"gate", &lw.gate, 0},
              {"up", &lw.up, 0},
              {"down", &lw.down, 0}}) {
          if (gguf_linear_name(layer, linear) == n) {
            q = *tensor;
            heads = h;
          }
        }
      }
      expected = q.detach().to(at::kCPU, at::kFloat);
      if (heads) expected = gguf_permute_rows(expected, heads);
      blocks += info->ne[0] / 32 * (static_cast<int64_t>(got.numel()) / info->ne[0]);
    } else {
      expected = w.produce().to(at::kFloat);
      ++floats;
    }
    if (!expected.defined() || !at::equal(got, expected.reshape(got.sizes()))) {
      problem = w.name + " (" + to_string(w.type) + "): read back, it differs from the in-memory model";
    }
  }
  out.add("GGUF tensors read back", problem.empty(),
          problem.empty()
              ? std::to_string(blocks) + " MXFP4 blocks decode to the fake-quantized weights bit for bit, " +
                    std::to_string(floats) + " float tensors equal"
              : problem);
  const GgufKeyValue* tokens = f.find("tokenizer.ggml.tokens");
  const bool vocab_ok = tokens && static_cast<int64_t>(tokens->value.size()) == m.fp.config().vocab_size;
  out.add("GGUF vocabulary", vocab_ok,
          tokens ? std::to_string(tokens->value.size()) + " tokens for vocab_size " +
                       std::to_string(m.fp.config().vocab_size)
                 : "tokenizer.ggml.tokens missing");
}

void check_gguf_file(const std::string& file, ExportVerification& out) {
  const GgufFile f = read_gguf(file);
  std::string problem;
  for (const char* key :
       {"general.architecture", "llama.block_count", "llama.embedding_length", "llama.attention.head_count",
        "tokenizer.ggml.model", "tokenizer.ggml.tokens", "tokenizer.ggml.merges"}) {
    if (!f.find(key) && problem.empty()) problem = std::string("key ") + key + " missing";
  }
  out.add("GGUF metadata", problem.empty(),
          problem.empty() ? f.tensors.size() == 0 ? "no tensors" : "llama keys and tokenizer present" : problem);
  int64_t mx = 0;
  std::string bad;
  for (const GgufTensorInfo& t : f.tensors) {
    if (t.type != GgmlType::MXFP4) continue;
    const at::Tensor v = read_gguf_tensor(f, t);
    if (!at::isfinite(v).all().item<bool>() && bad.empty()) bad = t.name + ": NaN scales (E8M0 0xFF)";
    ++mx;
  }
  out.add("GGUF tensors", bad.empty() && !f.tensors.empty(),
          bad.empty() ? std::to_string(f.tensors.size()) + " tensors inside the file, " + std::to_string(mx) +
                            " MXFP4 tensors decode to finite values"
                      : bad);
}

}  // namespace latmix::export_detail
