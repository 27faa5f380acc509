// Tokenizer base class and load_tokenizer(): which file to read, and the special-token facts from
// tokenizer_config.json / config.json beside it.
#include <algorithm>
#include <cctype>
#include <filesystem>

#include "tokenizer/tokenizer_internal.h"
#include "latmix/error.h"

namespace fs = std::filesystem;

namespace latmix {

void Tokenizer::check_id(int32_t id) const {
  if (id < 0 || id >= vocab_size()) {
    fail(source_file_, "token id out of range", "0.." + std::to_string(vocab_size() - 1), std::to_string(id));
  }
}

std::vector<int32_t> Tokenizer::encode_with_bos(std::string_view text, std::optional<bool> add_bos) const {
  std::vector<int32_t> ids;
  if (add_bos.value_or(special_.add_bos)) {
    if (!special_.bos) fail(source_file_, "BOS requested but the tokenizer defines no BOS token");
    ids.push_back(*special_.bos);
  }
  const std::vector<int32_t> body = encode(text);
  ids.insert(ids.end(), body.begin(), body.end());
  return ids;
}

namespace {

using tok::Json;

Json read_json(const fs::path& path) {
  return read_json_file(path.string());
}

// tokenizer_config.json writes a token as "<s>" or as {"content": "<s>", ...}.
std::optional<int32_t> config_token(const Json& config, const char* key, const Tokenizer& tok,
                                    const std::string& file) {
  if (!config.contains(key) || config[key].is_null()) return std::nullopt;
  const Json& value = config[key];
  std::string text;
  if (value.is_string()) {
    text = value.get<std::string>();
  } else if (value.is_object() && value.contains("content") && value["content"].is_string()) {
    text = value["content"].get<std::string>();
  } else {
    fail(file, std::string("\"") + key + "\" is malformed", "a string or {\"content\": ...}", json_excerpt(value));
  }
  const auto id = tok.token_id(text);
  if (!id) fail(file, std::string("\"") + key + "\" is not in the vocabulary", "", tok::quote(text));
  return id;
}

// config.json writes an id as n or [n, ...] (several EOS ids; the first is taken).
std::optional<int32_t> config_id(const Json& config, const char* key, const Tokenizer& tok) {
  if (!config.contains(key)) return std::nullopt;
  const Json* value = &config[key];
  if (value->is_array() && !value->empty()) value = &(*value)[0];
  if (!value->is_number_integer()) return std::nullopt;
  const auto id = value->get<int64_t>();
  if (id < 0 || id >= tok.vocab_size()) return std::nullopt;
  return static_cast<int32_t>(id);
}

void apply_tokenizer_config(Tokenizer& tok, const fs::path& file) {
  const Json config = read_json(file);
  if (!config.is_object()) fail(file.string(), "not a JSON object");
  SpecialTokenIds& special = detail::TokenizerAccess::special(tok);
  if (const auto bos = config_token(config, "bos_token", tok, file.string())) special.bos = bos;
  if (const auto eos = config_token(config, "eos_token", tok, file.string())) special.eos = eos;
  if (config.contains("add_bos_token") && !config["add_bos_token"].is_null()) {
    if (!config["add_bos_token"].is_boolean()) {
      fail(file.string(), "\"add_bos_token\" is not a boolean", "true or false", json_excerpt(config["add_bos_token"]));
    }
    special.add_bos = config["add_bos_token"].get<bool>();
  }
}

void apply_model_config(Tokenizer& tok, const fs::path& file) {
  const Json config = read_json(file);
  if (!config.is_object()) return;
  SpecialTokenIds& special = detail::TokenizerAccess::special(tok);
  if (!special.bos) special.bos = config_id(config, "bos_token_id", tok);
  if (!special.eos) special.eos = config_id(config, "eos_token_id", tok);
}

void apply_configs_beside(Tokenizer& tok, const fs::path& file) {
  const fs::path dir = file.parent_path();
  std::error_code ec;
  if (fs::is_regular_file(dir / "tokenizer_config.json", ec)) {
    apply_tokenizer_config(tok, dir / "tokenizer_config.json");
  }
  const SpecialTokenIds& special = detail::TokenizerAccess::special(tok);
  if ((!special.bos || !special.eos) && fs::is_regular_file(dir / "config.json", ec)) {
    apply_model_config(tok, dir / "config.json");
  }
}

fs::path tokenizer_file_in(const fs::path& dir) {
  for (const char* name : {"tokenizer.json", "tokenizer.model", "tokenizer.bin"}) {
    std::error_code ec;
    if (fs::is_regular_file(dir / name, ec)) return dir / name;
  }
  fail(dir.string(), "the folder holds no tokenizer", "tokenizer.json, tokenizer.model or tokenizer.bin",
       "none of them");
}

std::string lower_extension(const fs::path& file) {
  std::string ext = file.extension().string();
  std::transform(ext.begin(), ext.end(), ext.begin(),
                 [](unsigned char c) { return static_cast<char>(std::tolower(c)); });
  return ext;
}

}  // namespace

std::unique_ptr<Tokenizer> load_tokenizer(const std::string& path) {
  std::error_code ec;
  fs::path file(path);
  if (fs::is_directory(file, ec)) {
    file = tokenizer_file_in(file);
  } else if (!fs::exists(file, ec)) {
    fail(path, "no such file or folder");
  }
  const std::string ext = lower_extension(file);
  std::unique_ptr<Tokenizer> tok;
  if (ext == ".json") {
    tok = tok::load_hf_tokenizer_json(file.string());
  } else if (ext == ".model") {
    tok = tok::load_sentencepiece_model(file.string());
  } else if (ext == ".bin") {
    tok = tok::load_llama2c_bin(file.string(), std::nullopt);
  } else {
    fail(file.string(), "unknown tokenizer file type",
         "tokenizer.json (*.json), SentencePiece (*.model) or llama2.c (*.bin)", tok::quote(ext));
  }
  apply_configs_beside(*tok, file);
  return tok;
}

std::unique_ptr<Tokenizer> load_llama2c_tokenizer(const std::string& path, int32_t vocab_size) {
  return tok::load_llama2c_bin(path, vocab_size);
}

}  // namespace latmix
