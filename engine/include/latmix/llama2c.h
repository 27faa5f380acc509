#pragma once
/// \file llama2c.h
/// Room: engine/formats/ (latmix_core, no LibTorch).
/// llama2.c legacy (version 0) checkpoints: a 7 x int32 header followed by fp32 weights.
/// Layout in shared/data/SOURCES.md; RMSNorm eps 1e-5, RoPE theta 10000 on adjacent pairs.

#include <cstdint>
#include <string>

#include "latmix/config.h"

namespace latmix {

struct Llama2cHeader {
  int32_t dim = 0, hidden_dim = 0, n_layers = 0, n_heads = 0, n_kv_heads = 0, vocab_size = 0, seq_len = 0;
  bool shared_classifier = true;  ///< vocab_size > 0 in the file: lm_head tied to the embedding
  /// Byte size the file must have for this header (weights, RoPE tables, optional classifier).
  uint64_t expected_file_size() const;
  /// Number of model parameters (excluding the RoPE tables).
  uint64_t parameter_count() const;
};

/// Parses and validates the 28-byte header against the file size. Throws latmix::Error naming
/// `path` on a short file, non-positive dimensions, or a size that does not match the layout.
Llama2cHeader parse_llama2c_header(const uint8_t* bytes, size_t available, uint64_t file_size,
                                   const std::string& path);

/// The ModelConfig equivalent (LlamaForCausalLM; q/k rows are permuted to the halves layout on load).
ModelConfig llama2c_model_config(const Llama2cHeader& header);

}  // namespace latmix
