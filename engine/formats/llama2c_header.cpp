#include <cstring>

#include "latmix/error.h"
#include "latmix/llama2c.h"

namespace latmix {

uint64_t Llama2cHeader::parameter_count() const {
  const uint64_t d = static_cast<uint64_t>(dim), hd = static_cast<uint64_t>(hidden_dim);
  const uint64_t L = static_cast<uint64_t>(n_layers), V = static_cast<uint64_t>(vocab_size);
  const uint64_t kv = static_cast<uint64_t>(n_kv_heads) * (d / static_cast<uint64_t>(n_heads));
  uint64_t per_layer = 2 * d + d * d + 2 * kv * d + d * d + 3 * d * hd;
  uint64_t total = V * d + L * per_layer + d;
  if (!shared_classifier) total += V * d;
  return total;
}

uint64_t Llama2cHeader::expected_file_size() const {
  const uint64_t head_size = static_cast<uint64_t>(dim / n_heads);
  const uint64_t rope = static_cast<uint64_t>(seq_len) * head_size;  // real + imag, head_size/2 each
  return 28 + 4 * (parameter_count() + rope);
}

Llama2cHeader parse_llama2c_header(const uint8_t* bytes, size_t available, uint64_t file_size,
                                   const std::string& path) {
  if (available < 28 || file_size < 28) {
    fail(path, "not a llama2.c checkpoint: file shorter than its 28-byte header", ">= 28 bytes",
         std::to_string(file_size) + " bytes");
  }
  int32_t f[7];
  std::memcpy(f, bytes, sizeof(f));
  // A negative vocab_size means an unshared classifier. Negate in 64 bits: -INT32_MIN overflows int32
  // (undefined behaviour that let such a header past the range check below).
  const int64_t raw_vocab = f[5];
  const int64_t vocab = raw_vocab < 0 ? -raw_vocab : raw_vocab;
  if (vocab > (1 << 22) || vocab == 0) {
    fail(path, "llama2.c header field vocab_size out of range", "1..4194304 (negative: unshared classifier)",
         std::to_string(raw_vocab));
  }
  Llama2cHeader h{f[0], f[1], f[2], f[3], f[4], static_cast<int32_t>(vocab), f[6], raw_vocab > 0};
  const char* names[] = {"dim", "hidden_dim", "n_layers", "n_heads", "n_kv_heads", "vocab_size", "seq_len"};
  const int32_t values[] = {h.dim, h.hidden_dim, h.n_layers, h.n_heads, h.n_kv_heads, h.vocab_size, h.seq_len};
  const int32_t limits[] = {1 << 16, 1 << 18, 1024, 1024, 1024, 1 << 22, 1 << 22};
  for (int i = 0; i < 7; ++i) {
    if (values[i] <= 0 || values[i] > limits[i]) {
      fail(path, std::string("llama2.c header field ") + names[i] + " out of range",
           "1.." + std::to_string(limits[i]), std::to_string(values[i]));
    }
  }
  if (h.dim % h.n_heads != 0 || h.n_heads % h.n_kv_heads != 0 || (h.dim / h.n_heads) % 2 != 0) {
    fail(path, "llama2.c header: inconsistent heads", "dim divisible by n_heads, n_heads by n_kv_heads, even head size",
         "dim " + std::to_string(h.dim) + ", n_heads " + std::to_string(h.n_heads) + ", n_kv_heads " +
             std::to_string(h.n_kv_heads));
  }
  if (h.expected_file_size() != file_size) {
    fail(path, "llama2.c checkpoint size does not match its header (truncated, or not a version-0 file)",
         std::to_string(h.expected_file_size()) + " bytes", std::to_string(file_size) + " bytes");
  }
  return h;
}

ModelConfig llama2c_model_config(const Llama2cHeader& h) {
  ModelConfig c;
  c.arch = Architecture::Llama;
  c.architecture_name = "LlamaForCausalLM";
  c.source_format = "llama2.c";
  c.vocab_size = h.vocab_size;
  c.hidden_size = h.dim;
  c.intermediate_size = h.hidden_dim;
  c.num_layers = h.n_layers;
  c.num_heads = h.n_heads;
  c.num_kv_heads = h.n_kv_heads;
  c.head_dim = h.dim / h.n_heads;
  c.max_position = h.seq_len;
  c.rms_norm_eps = 1e-5;
  c.rope.theta = 10000.0;
  c.tie_word_embeddings = h.shared_classifier;
  c.bos_token_id = 1;
  c.eos_token_id = 2;
  c.dtype = "float32";
  return c;
}

}  // namespace latmix
