#include "latmix/config.h"

#include <nlohmann/json.hpp>

#include <filesystem>

#include "latmix/error.h"
#include "latmix/files.h"

namespace latmix {

using json = nlohmann::json;

namespace {

class ConfigReader {
 public:
  ConfigReader(const json& j, std::string path) : j_(j), path_(std::move(path)) {}

  bool has(const char* key) const { return j_.contains(key) && !j_.at(key).is_null(); }

  int64_t integer(const char* key) const {
    if (!has(key)) fail(path_, std::string("missing key '") + key + "'", "an integer", "nothing");
    return integer_of(j_.at(key), key);
  }
  int64_t integer_or(const char* key, int64_t fallback) const {
    return has(key) ? integer_of(j_.at(key), key) : fallback;
  }
  double number_or(const char* key, double fallback) const {
    if (!has(key)) return fallback;
    return number_of(j_.at(key), key);
  }
  bool boolean_or(const char* key, bool fallback) const {
    if (!has(key)) return fallback;
    if (!j_.at(key).is_boolean()) fail(path_, std::string("key '") + key + "'", "a boolean", j_.at(key).dump());
    return j_.at(key).get<bool>();
  }
  std::string string_or(const char* key, const std::string& fallback) const {
    if (!has(key)) return fallback;
    if (!j_.at(key).is_string()) fail(path_, std::string("key '") + key + "'", "a string", j_.at(key).dump());
    return j_.at(key).get<std::string>();
  }
  const json& at(const char* key) const { return j_.at(key); }
  const std::string& path() const { return path_; }

  int64_t integer_of(const json& v, const std::string& key) const {
    if (!v.is_number_integer()) fail(path_, "key '" + key + "'", "an integer", v.dump());
    return v.get<int64_t>();
  }
  double number_of(const json& v, const std::string& key) const {
    if (!v.is_number()) fail(path_, "key '" + key + "'", "a number", v.dump());
    return v.get<double>();
  }

 private:
  const json& j_;
  std::string path_;
};

Architecture parse_architecture(const ConfigReader& r, std::string* name) {
  if (!r.has("architectures") || !r.at("architectures").is_array() || r.at("architectures").empty() ||
      !r.at("architectures")[0].is_string()) {
    fail(r.path(), "key 'architectures'", "a list with one architecture name", "nothing usable");
  }
  *name = r.at("architectures")[0].get<std::string>();
  if (*name == "LlamaForCausalLM") return Architecture::Llama;
  if (*name == "MistralForCausalLM") return Architecture::Mistral;
  if (*name == "Qwen2ForCausalLM") return Architecture::Qwen2;
  if (*name == "Qwen3ForCausalLM") return Architecture::Qwen3;
  fail(r.path(), "unsupported architecture",
       "LlamaForCausalLM, MistralForCausalLM, Qwen2ForCausalLM or Qwen3ForCausalLM", *name);
}

/// Reads one rope parameter object (transformers 5 `rope_parameters`, or 4's `rope_scaling`).
void parse_rope_object(const json& obj, const std::string& key, const ConfigReader& r, RopeConfig* rope) {
  if (!obj.is_object()) fail(r.path(), "key '" + key + "'", "an object", obj.dump());
  std::string type = "default";
  for (const char* k : {"rope_type", "type"}) {
    if (obj.contains(k) && obj.at(k).is_string()) {
      type = obj.at(k).get<std::string>();
      break;
    }
  }
  if (obj.contains("rope_theta") && !obj.at("rope_theta").is_null()) {
    rope->theta = r.number_of(obj.at("rope_theta"), key + ".rope_theta");
  }
  if (type == "default") {
    rope->type = RopeType::Default;
  } else if (type == "llama3") {
    rope->type = RopeType::Llama3;
    auto num = [&](const char* k) {
      if (!obj.contains(k)) fail(r.path(), "key '" + key + "." + k + "' (needed by llama3 rope)", "a number", "nothing");
      return r.number_of(obj.at(k), key + "." + k);
    };
    rope->factor = num("factor");
    rope->low_freq_factor = num("low_freq_factor");
    rope->high_freq_factor = num("high_freq_factor");
    rope->original_max_position = static_cast<int64_t>(num("original_max_position_embeddings"));
  } else {
    fail(r.path(), "unsupported rope type in '" + key + "'", "default or llama3", type);
  }
  if (obj.contains("partial_rotary_factor") && !obj.at("partial_rotary_factor").is_null() &&
      r.number_of(obj.at("partial_rotary_factor"), key + ".partial_rotary_factor") != 1.0) {
    fail(r.path(), "partial rotary embeddings are not supported", "partial_rotary_factor 1.0",
         obj.at("partial_rotary_factor").dump());
  }
}

RopeConfig parse_rope(const ConfigReader& r) {
  RopeConfig rope;
  rope.theta = r.number_or("rope_theta", 10000.0);
  if (r.has("rope_parameters")) {
    parse_rope_object(r.at("rope_parameters"), "rope_parameters", r, &rope);
  } else if (r.has("rope_scaling")) {
    parse_rope_object(r.at("rope_scaling"), "rope_scaling", r, &rope);
  }
  return rope;
}

std::optional<int32_t> token_id(const ConfigReader& r, const char* key) {
  if (!r.has(key)) return std::nullopt;
  const json& v = r.at(key);
  if (v.is_array()) {
    if (v.empty()) return std::nullopt;
    return static_cast<int32_t>(r.integer_of(v[0], key));
  }
  return static_cast<int32_t>(r.integer_of(v, key));
}

void check_unsupported_options(const ConfigReader& r, const ModelConfig& cfg) {
  std::string act = r.string_or("hidden_act", "silu");
  if (act != "silu") fail(r.path(), "unsupported activation 'hidden_act'", "silu", act);
  if (cfg.arch == Architecture::Mistral && r.has("sliding_window")) {
    int64_t window = r.integer("sliding_window");
    if (window < cfg.max_position) {
      fail(r.path(), "sliding-window attention is not supported", "sliding_window null",
           std::to_string(window));
    }
  }
  if ((cfg.arch == Architecture::Qwen2 || cfg.arch == Architecture::Qwen3) &&
      r.boolean_or("use_sliding_window", false)) {
    fail(r.path(), "sliding-window attention is not supported", "use_sliding_window false", "true");
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
  json j;
  if (json_text.find('\0') != std::string::npos) fail(path, "invalid JSON: contains a NUL byte");
  try {
    j = json::parse(json_text);
  } catch (const json::parse_error& e) {
    fail(path, std::string("invalid JSON: ") + e.what());
  }
  if (!j.is_object()) fail(path, "config must be a JSON object", "object", j.type_name());
  ConfigReader r(j, path);
  ModelConfig cfg;
  cfg.arch = parse_architecture(r, &cfg.architecture_name);
  cfg.vocab_size = r.integer("vocab_size");
  cfg.hidden_size = r.integer("hidden_size");
  cfg.intermediate_size = r.integer("intermediate_size");
  cfg.num_layers = r.integer("num_hidden_layers");
  cfg.num_heads = r.integer("num_attention_heads");
  cfg.num_kv_heads = r.integer_or("num_key_value_heads", cfg.num_heads);
  cfg.head_dim = r.integer_or("head_dim", cfg.num_heads > 0 ? cfg.hidden_size / cfg.num_heads : 0);
  cfg.max_position = r.integer_or("max_position_embeddings", 2048);
  cfg.rms_norm_eps = r.number_or("rms_norm_eps", 1e-6);
  cfg.rope = parse_rope(r);
  cfg.tie_word_embeddings = r.boolean_or("tie_word_embeddings", false);
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
  cfg.bos_token_id = token_id(r, "bos_token_id");
  cfg.eos_token_id = token_id(r, "eos_token_id");
  cfg.dtype = r.string_or("dtype", r.string_or("torch_dtype", "float32"));
  check_unsupported_options(r, cfg);
  validate_model_config(cfg, path);
  return cfg;
}

ModelConfig load_model_config(const std::string& model_dir) {
  std::string path = (std::filesystem::path(model_dir) / "config.json").string();
  if (!std::filesystem::exists(path)) fail(model_dir, "not a model folder: config.json is missing");
  return parse_model_config(read_text_file(path), path);
}

void validate_model_config(const ModelConfig& cfg, const std::string& origin) {
  auto positive = [&](int64_t v, const char* what) {
    if (v <= 0) fail(origin, std::string(what) + " must be positive", "> 0", std::to_string(v));
  };
  positive(cfg.vocab_size, "vocab_size");
  positive(cfg.hidden_size, "hidden_size");
  positive(cfg.intermediate_size, "intermediate_size");
  positive(cfg.num_layers, "num_hidden_layers");
  positive(cfg.num_heads, "num_attention_heads");
  positive(cfg.num_kv_heads, "num_key_value_heads");
  positive(cfg.head_dim, "head_dim");
  if (cfg.head_dim % 2 != 0) fail(origin, "head_dim must be even for rotary embeddings", "even", std::to_string(cfg.head_dim));
  if (cfg.num_heads % cfg.num_kv_heads != 0) {
    fail(origin, "num_attention_heads must be a multiple of num_key_value_heads",
         "a divisor of " + std::to_string(cfg.num_heads), std::to_string(cfg.num_kv_heads));
  }
  if (cfg.rms_norm_eps <= 0) fail(origin, "rms_norm_eps must be positive");
}

}  // namespace latmix
