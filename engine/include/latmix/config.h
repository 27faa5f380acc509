#pragma once
/// \file config.h
/// Room: engine/formats/ (latmix_core, no LibTorch).
/// Model configuration: what a Hugging Face `config.json` (transformers 4 or 5 spelling) or a
/// llama2.c `.bin` header says about a decoder-only transformer.

#include <cstdint>
#include <optional>
#include <string>
#include <vector>

namespace latmix {

/// Architecture families the engine runs. All share one decoder implementation.
enum class Architecture { Llama, Mistral, Qwen2, Qwen3 };

/// RoPE frequency schedule. Rotary pairs are always (i, i + head_dim/2) as in Hugging Face's
/// `rotate_half`; llama2.c checkpoints rotate adjacent pairs, so their q/k rows are permuted into
/// this layout at load time (exactly as transformers' Llama conversion script does).
enum class RopeType { Default, Llama3 };

struct RopeConfig {
  RopeType type = RopeType::Default;
  double theta = 10000.0;
  // llama3 scaling (only when type == Llama3)
  double factor = 1.0;
  double low_freq_factor = 1.0;
  double high_freq_factor = 4.0;
  int64_t original_max_position = 8192;
  /// Round the inverse frequencies to bf16, as transformers ends up doing when a model is loaded
  /// in bf16 (its non-persistent inv_freq buffer is cast with the weights and stays rounded
  /// after an upcast). Off by default: exact float32 frequencies. The gutenberg models' golden
  /// logits were produced that way (measured: 1.1e-5 from them with this set, 4.9e-3 without).
  bool bf16_inv_freq = false;
};

struct ModelConfig {
  Architecture arch = Architecture::Llama;
  std::string architecture_name;  ///< as written in config.json (e.g. "LlamaForCausalLM")
  int64_t vocab_size = 0;
  int64_t hidden_size = 0;
  int64_t intermediate_size = 0;
  int64_t num_layers = 0;
  int64_t num_heads = 0;
  int64_t num_kv_heads = 0;
  int64_t head_dim = 0;
  int64_t max_position = 0;
  double rms_norm_eps = 1e-6;
  RopeConfig rope;
  bool tie_word_embeddings = false;
  bool attention_bias = false;  ///< q/k/v (and o for Llama) carry biases
  bool o_bias = false;          ///< o_proj has a bias (Llama attention_bias; not Qwen2)
  bool mlp_bias = false;
  bool qk_norm = false;  ///< Qwen3: RMSNorm over each q and k head
  std::optional<int32_t> bos_token_id;
  std::optional<int32_t> eos_token_id;
  std::string dtype = "float32";  ///< checkpoint dtype as declared (informational)
  std::string source_format = "huggingface";  ///< "huggingface" or "llama2.c"

  int64_t q_size() const { return num_heads * head_dim; }
  int64_t kv_size() const { return num_kv_heads * head_dim; }
  /// Parameter count of the weights (tied head counted once).
  int64_t parameter_count() const;
};

std::string to_string(Architecture arch);
std::string to_string(RopeType type);

/// Parses config.json text. `path` is used in error messages. Throws latmix::Error for an
/// unknown architecture, a missing or mistyped key, or an option the engine does not implement
/// (e.g. a sliding window, an unsupported rope type, a non-SiLU activation).
ModelConfig parse_model_config(const std::string& json_text, const std::string& path);

/// Reads and parses DIR/config.json.
ModelConfig load_model_config(const std::string& model_dir);

/// Checks internal consistency (divisibility, positivity); throws latmix::Error naming `origin`.
void validate_model_config(const ModelConfig& cfg, const std::string& origin);

}  // namespace latmix
