#include "latmix/config.h"

#include <nlohmann/json.hpp>

#include <cstdio>
#include <filesystem>
#include <limits>

#include "latmix/error.h"
#include "latmix/files.h"
#include "latmix/json.h"

namespace latmix {

using json = nlohmann::json;

namespace {

// A name from the file as messages show it: whole when short, cut when long (a 50 MB value is never
// echoed in full; issue 20, item 21).
std::string shortened(const std::string& s) {
  return s.size() <= 60 ? s : s.substr(0, 57) + "...(" + std::to_string(s.size()) + " bytes)";
}

// Each size in config.json is at most this: far above any real model (vocabularies of ~260k,
// hidden sizes of ~16k), small enough that a product of two sizes never overflows, and token ids
// below it fit in int32. The parameter count, a product of several, is bounded on its own.
constexpr int64_t kMaxSize = int64_t{1} << 24;

std::string describe_number(double v) {
  char text[32];
  std::snprintf(text, sizeof text, "%.6g", v);
  return text;
}

Architecture parse_architecture(const JsonObject& r, std::string* name) {
  const json& list = r.has("architectures") ? r.at("architectures") : json();
  if (!list.is_array() || list.empty() || !list[0].is_string()) {
    r.fail_key("architectures", "a list with one architecture name", list);
  }
  *name = list[0].get<std::string>();
  if (*name == "LlamaForCausalLM") return Architecture::Llama;
  if (*name == "MistralForCausalLM") return Architecture::Mistral;
  if (*name == "Qwen2ForCausalLM") return Architecture::Qwen2;
  if (*name == "Qwen3ForCausalLM") return Architecture::Qwen3;
  fail(r.file(), "unsupported architecture",
       "LlamaForCausalLM, MistralForCausalLM, Qwen2ForCausalLM or Qwen3ForCausalLM", shortened(*name));
}

// theta is used as a float; below 1 the frequency schedule inverts, at 0 or below it yields NaN.
constexpr double kMaxTheta = std::numeric_limits<float>::max();
const char* const kThetaRange = "a number in 1..3.4e38";

double rope_theta(const JsonObject& obj, double fallback) {
  if (!obj.has("rope_theta")) return fallback;
  const double theta = obj.number("rope_theta");
  if (!(theta >= 1.0 && theta <= kMaxTheta)) obj.fail_key("rope_theta", kThetaRange, obj.at("rope_theta"));
  return theta;
}

std::string rope_type_of(const JsonObject& obj) {
  for (const char* k : {"rope_type", "type"}) {
    if (obj.has(k) && obj.at(k).is_string()) return obj.at(k).get<std::string>();
  }
  return "default";
}

void parse_llama3_rope(const JsonObject& obj, RopeConfig* rope) {
  auto num = [&](const char* k) {
    if (!obj.has(k)) fail(obj.file(), "key '" + obj.path_of(k) + "' (needed by llama3 rope)", "a number", "nothing");
    return obj.number(k);
  };
  rope->factor = num("factor");
  rope->low_freq_factor = num("low_freq_factor");
  rope->high_freq_factor = num("high_freq_factor");
  rope->original_max_position = obj.integer_in("original_max_position_embeddings", 1, INT32_MAX);
  // transformers' llama3 schedule divides by (high - low) and by each factor.
  if (!(rope->factor > 0)) obj.fail_key("factor", "a number > 0", obj.at("factor"));
  if (!(rope->low_freq_factor > 0)) obj.fail_key("low_freq_factor", "a number > 0", obj.at("low_freq_factor"));
  if (!(rope->high_freq_factor > rope->low_freq_factor)) {
    obj.fail_key("high_freq_factor", "a number > low_freq_factor", obj.at("high_freq_factor"));
  }
}

/// Reads one rope parameter object (transformers 5 `rope_parameters`, or 4's `rope_scaling`).
void parse_rope_object(const JsonObject& obj, RopeConfig* rope) {
  const std::string type = rope_type_of(obj);
  rope->theta = rope_theta(obj, rope->theta);
  if (type == "default") {
    rope->type = RopeType::Default;
  } else if (type == "llama3") {
    rope->type = RopeType::Llama3;
    parse_llama3_rope(obj, rope);
  } else {
    fail(obj.file(), "unsupported rope type in '" + obj.path_of("") + "'", "default or llama3", shortened(type));
  }
  if (obj.has("partial_rotary_factor") && obj.number("partial_rotary_factor") != 1.0) {
    fail(obj.file(), "partial rotary embeddings are not supported", "partial_rotary_factor 1.0",
         json_excerpt(obj.at("partial_rotary_factor")));
  }
}

RopeConfig parse_rope(const JsonObject& r) {
  RopeConfig rope;
  rope.theta = rope_theta(r, 10000.0);
  if (r.has("rope_parameters")) {
    parse_rope_object(r.object("rope_parameters"), &rope);
  } else if (r.has("rope_scaling")) {
    parse_rope_object(r.object("rope_scaling"), &rope);
  }
  return rope;
}

bool is_token_id(const json& v, int64_t vocab_size) {
  if (v.is_number_unsigned()) return v.get<uint64_t>() < static_cast<uint64_t>(vocab_size);
  return v.is_number_integer() && v.get<int64_t>() >= 0 && v.get<int64_t>() < vocab_size;
}

// config.json writes an id as n or [n, ...] (several EOS ids: all are checked, the first is used).
// Run after validate_model_config, so vocab_size is within kMaxSize and an id fits in int32.
std::optional<int32_t> token_id(const JsonObject& r, const char* key, int64_t vocab_size) {
  if (!r.has(key)) return std::nullopt;
  const json& v = r.at(key);
  const std::string expected = "a token id in 0.." + std::to_string(vocab_size - 1) + " (below vocab_size)";
  if (!v.is_array()) {
    if (!is_token_id(v, vocab_size)) r.fail_key(key, expected, v);
    return static_cast<int32_t>(v.get<int64_t>());
  }
  for (size_t i = 0; i < v.size(); ++i) {
    if (!is_token_id(v[i], vocab_size)) {
      fail(r.file(), "key '" + r.path_of(key) + "[" + std::to_string(i) + "]'", expected, json_excerpt(v[i]));
    }
  }
  if (v.empty()) return std::nullopt;
  return static_cast<int32_t>(v[0].get<int64_t>());
}

void check_unsupported_options(const JsonObject& r, const ModelConfig& cfg) {
  std::string act = r.string_or("hidden_act", "silu");
  if (act != "silu") fail(r.file(), "unsupported activation 'hidden_act'", "silu", shortened(act));
  if (cfg.arch == Architecture::Mistral && r.has("sliding_window")) {
    int64_t window = r.integer("sliding_window");
    if (window < cfg.max_position) {
      fail(r.file(), "sliding-window attention is not supported", "sliding_window null", std::to_string(window));
    }
  }
  if ((cfg.arch == Architecture::Qwen2 || cfg.arch == Architecture::Qwen3) &&
      r.boolean_or("use_sliding_window", false)) {
    fail(r.file(), "sliding-window attention is not supported", "use_sliding_window false", "true");
  }
}

void parse_sizes(const JsonObject& r, ModelConfig& cfg) {
  cfg.vocab_size = r.integer("vocab_size");
  cfg.hidden_size = r.integer("hidden_size");
  cfg.intermediate_size = r.integer("intermediate_size");
  cfg.num_layers = r.integer("num_hidden_layers");
  cfg.num_heads = r.integer("num_attention_heads");
  cfg.num_kv_heads = r.integer_or("num_key_value_heads", cfg.num_heads);
  cfg.head_dim = r.integer_or("head_dim", cfg.num_heads > 0 ? cfg.hidden_size / cfg.num_heads : 0);
  cfg.max_position = r.integer_or("max_position_embeddings", 2048);
  cfg.rms_norm_eps = r.number_or("rms_norm_eps", 1e-6);
}

void parse_biases(const JsonObject& r, ModelConfig& cfg) {
  bool attention_bias = r.boolean_or("attention_bias", false);
  switch (cfg.arch) {
    case Architecture::Qwen2:
      cfg.attention_bias = true;  // Qwen2 always has q/k/v biases and no o_proj bias
      cfg.o_bias = false;
      break;
    case Architecture::Qwen3:
      cfg.qk_norm = true;
      cfg.attention_bias = cfg.o_bias = attention_bias;
      break;
    default:
      cfg.attention_bias = cfg.o_bias = attention_bias;
      cfg.mlp_bias = r.boolean_or("mlp_bias", false);
  }
}

}  // namespace

std::string to_string(Architecture arch) {
  switch (arch) {
    case Architecture::Llama: return "llama";
    case Architecture::Mistral: return "mistral";
    case Architecture::Qwen2: return "qwen2";
    case Architecture::Qwen3: return "qwen3";
  }
  return "unknown";
}

std::string to_string(RopeType type) { return type == RopeType::Llama3 ? "llama3" : "default"; }

int64_t ModelConfig::parameter_count() const {
  int64_t per_layer = 2 * hidden_size                                  // two norms
                      + hidden_size * (q_size() + 2 * kv_size())      // q, k, v
                      + q_size() * hidden_size                         // o
                      + 3 * hidden_size * intermediate_size;           // gate, up, down
  if (attention_bias) per_layer += q_size() + 2 * kv_size();
  if (o_bias) per_layer += hidden_size;
  if (mlp_bias) per_layer += 2 * intermediate_size + hidden_size;
  if (qk_norm) per_layer += 2 * head_dim;
  int64_t total = num_layers * per_layer + vocab_size * hidden_size + hidden_size;
  if (!tie_word_embeddings) total += vocab_size * hidden_size;
  return total;
}

ModelConfig parse_model_config(const std::string& json_text, const std::string& path) {
  const json j = parse_json_file(path, json_text);
  if (!j.is_object()) fail(path, "config must be a JSON object", "object", j.type_name());
  const JsonObject r(j, path);
  ModelConfig cfg;
  cfg.arch = parse_architecture(r, &cfg.architecture_name);
  parse_sizes(r, cfg);
  cfg.rope = parse_rope(r);
  cfg.tie_word_embeddings = r.boolean_or("tie_word_embeddings", false);
  parse_biases(r, cfg);
  // Sizes first: the token ids are checked against the vocabulary.
  validate_model_config(cfg, path);
  cfg.bos_token_id = token_id(r, "bos_token_id", cfg.vocab_size);
  cfg.eos_token_id = token_id(r, "eos_token_id", cfg.vocab_size);
  cfg.dtype = r.string_or("dtype", r.string_or("torch_dtype", "float32"));
  check_unsupported_options(r, cfg);
  return cfg;
}

ModelConfig load_model_config(const std::string& model_dir) {
  std::string path = (std::filesystem::path(model_dir) / "config.json").string();
  if (!std::filesystem::exists(path)) fail(model_dir, "not a model folder: config.json is missing");
  return parse_model_config(read_text_file(path), path);
}

namespace {

// An upper bound of parameter_count() (every bias counted) in floating point: sizes that pass one
// by one can still multiply past int64, where LibTorch would fail later without naming the file.
double parameter_bound(const ModelConfig& c) {
  const double h = static_cast<double>(c.hidden_size);
  const double q = static_cast<double>(c.num_heads) * static_cast<double>(c.head_dim);
  const double kv = static_cast<double>(c.num_kv_heads) * static_cast<double>(c.head_dim);
  const double mlp = static_cast<double>(c.intermediate_size);
  const double per_layer = (h + 1) * (2 * q + 2 * kv) + 3 * (h + 1) * mlp + 4 * h + 2 * static_cast<double>(c.head_dim);
  return static_cast<double>(c.num_layers) * per_layer + (2 * static_cast<double>(c.vocab_size) + 1) * h;
}

void validate_rope(const ModelConfig& cfg, const std::string& origin) {
  if (!(cfg.rope.theta >= 1.0 && cfg.rope.theta <= kMaxTheta)) {
    fail(origin, "key 'rope_theta'", kThetaRange, describe_number(cfg.rope.theta));
  }
}

}  // namespace

void validate_model_config(const ModelConfig& cfg, const std::string& origin) {
  auto size = [&](int64_t v, const char* key, int64_t max) {
    if (v <= 0 || v > max) {
      fail(origin, std::string("key '") + key + "'", "an integer in 1.." + std::to_string(max), std::to_string(v));
    }
  };
  size(cfg.vocab_size, "vocab_size", kMaxSize);
  size(cfg.hidden_size, "hidden_size", kMaxSize);
  size(cfg.intermediate_size, "intermediate_size", kMaxSize);
  size(cfg.num_layers, "num_hidden_layers", kMaxSize);
  size(cfg.num_heads, "num_attention_heads", kMaxSize);
  size(cfg.num_kv_heads, "num_key_value_heads", kMaxSize);
  size(cfg.head_dim, "head_dim", kMaxSize);
  size(cfg.max_position, "max_position_embeddings", INT32_MAX);
  if (cfg.head_dim % 2 != 0) fail(origin, "head_dim must be even for rotary embeddings", "even", std::to_string(cfg.head_dim));
  if (cfg.num_heads % cfg.num_kv_heads != 0) {
    fail(origin, "num_attention_heads must be a multiple of num_key_value_heads",
         "a divisor of " + std::to_string(cfg.num_heads), std::to_string(cfg.num_kv_heads));
  }
  if (parameter_bound(cfg) > 0x1p53) {
    fail(origin,
         "the sizes (hidden_size, intermediate_size, num_hidden_layers, heads, head_dim, vocab_size) multiply out",
         "at most 2^53 parameters", describe_number(parameter_bound(cfg)));
  }
  if (!(cfg.rms_norm_eps > 0 && cfg.rms_norm_eps < 1)) {
    fail(origin, "key 'rms_norm_eps'", "a number in (0, 1)", describe_number(cfg.rms_norm_eps));
  }
  validate_rope(cfg, origin);
}

}  // namespace latmix
