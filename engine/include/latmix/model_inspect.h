#pragma once
/// \file model_inspect.h
/// Room: engine/formats/ (latmix_core, no LibTorch).
/// A model described from its file headers alone, without reading a weight: what `latmix info`
/// and a model summary need, in milliseconds and a few kB of memory whatever the model's size.

#include <cstdint>
#include <map>
#include <string>

#include "latmix/config.h"

namespace latmix {

struct ModelHeaders {
  ModelConfig config;
  /// Bytes of the tensors the model uses, as stored in its files (dtype of the files).
  uint64_t weight_bytes = 0;
  /// Stored dtype ("BF16", "F32", ...) -> number of tensors of the model in it.
  std::map<std::string, int64_t> dtypes;
};

/// A Hugging Face folder: config.json, and every tensor the loader reads checked by name, shape
/// and dtype against the safetensors headers (the same errors as load_model()); a llama2.c
/// `.bin`: its 28-byte header and the file size. No weight data is read.
/// \throws latmix::Error naming the file and the problem.
ModelHeaders inspect_model(const std::string& path);

}  // namespace latmix
