#pragma once
/// \file model_files.h
/// Room: engine/formats/ (latmix_core, no LibTorch).
/// Finding the files that belong to a model.

#include <cstdint>
#include <memory>
#include <string>

#include "latmix/tokenizer.h"

namespace latmix {

/// The tokenizer of a model. `tokenizer_path` (may be empty) wins; otherwise a Hugging Face
/// folder's tokenizer.json / tokenizer.model, or for a llama2.c `.bin` the single `tok*.bin` or
/// `tokenizer.bin` beside it. llama2.c tokenizer files take their size from `vocab_size`.
/// Throws latmix::Error saying where it looked when nothing is found.
std::unique_ptr<Tokenizer> load_model_tokenizer(const std::string& model_path, const std::string& tokenizer_path,
                                                int32_t vocab_size);

}  // namespace latmix
