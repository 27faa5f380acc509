#include "latmix/model_files.h"

#include <filesystem>
#include <vector>

#include "latmix/error.h"

namespace latmix {

namespace fs = std::filesystem;

namespace {

bool is_llama2c_tokenizer_file(const fs::path& p) {
  const std::string name = p.filename().string();
  return p.extension() == ".bin" && (name.rfind("tok", 0) == 0);
}

std::unique_ptr<Tokenizer> load_tokenizer_file(const std::string& path, int32_t vocab_size) {
  if (fs::path(path).extension() == ".bin") return load_llama2c_tokenizer(path, vocab_size);
  return load_tokenizer(path);
}

}  // namespace

std::unique_ptr<Tokenizer> load_model_tokenizer(const std::string& model_path, const std::string& tokenizer_path,
                                                int32_t vocab_size) {
  if (!tokenizer_path.empty()) return load_tokenizer_file(tokenizer_path, vocab_size);
  if (fs::is_directory(model_path)) return load_tokenizer(model_path);
  const fs::path dir = fs::path(model_path).parent_path();
  std::vector<fs::path> candidates;
  for (const auto& entry : fs::directory_iterator(dir.empty() ? fs::path(".") : dir)) {
    if (entry.is_regular_file() && is_llama2c_tokenizer_file(entry.path())) candidates.push_back(entry.path());
  }
  if (candidates.size() == 1) return load_tokenizer_file(candidates.front().string(), vocab_size);
  fail(model_path, candidates.empty() ? "no tokenizer found beside the checkpoint"
                                      : "several tokenizer files beside the checkpoint",
       "one tok*.bin or tokenizer.bin in " + dir.string() + ", or --tokenizer FILE",
       std::to_string(candidates.size()) + " candidates");
}

}  // namespace latmix
