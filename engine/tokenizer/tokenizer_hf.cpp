// Hugging Face tokenizer.json with a BPE model: parsing and the encode / decode pipeline
// (added tokens -> normalizer -> pre-tokenizer -> BPE; decoder chain on the way back).
#include <algorithm>
#include <iterator>

#include "tokenizer/tokenizer_internal.h"
#include "latmix/error.h"
#include "latmix/json.h"

namespace latmix::tok {

std::string json_string(const Json& j, const char* key, const std::string& file,
                        const std::optional<std::string>& fallback) {
  const std::string type =
      j.contains("type") && j["type"].is_string() ? j["type"].get<std::string>() + ": " : std::string();
  if (!j.contains(key) || j[key].is_null()) {
    if (fallback) return *fallback;
    fail(file, type + "missing \"" + key + "\"");
  }
  if (!j[key].is_string()) {
    fail(file, type + "\"" + key + "\" is not a string", "string", j[key].type_name());
  }
  return j[key].get<std::string>();
}

bool json_bool(const Json& j, const char* key, const std::string& file, bool fallback) {
  if (!j.contains(key) || j[key].is_null()) return fallback;
  if (!j[key].is_boolean()) {
    fail(file, std::string("\"") + key + "\" is not a boolean", "true or false", json_excerpt(j[key]));
  }
  return j[key].get<bool>();
}

int32_t json_token_id(const Json& id, const std::string& file, const std::string& where) {
  const bool ok =
      id.is_number_unsigned() ? id.get<uint64_t>() <= INT32_MAX : id.is_number_integer() && id.get<int64_t>() >= 0;
  if (!ok) fail(file, where + ": token id", "an integer in 0..2147483647", json_excerpt(id));
  return static_cast<int32_t>(id.get<int64_t>());
}

std::pair<std::string, bool> json_pattern(const Json& j, const std::string& file, const std::string& where) {
  const Json& p = j.contains("pattern") ? j["pattern"] : Json();
  if (p.is_object() && p.size() == 1) {
    if (p.contains("String") && p["String"].is_string()) return {p["String"].get<std::string>(), false};
    if (p.contains("Regex") && p["Regex"].is_string()) return {p["Regex"].get<std::string>(), true};
  }
  fail(file, where + ": malformed \"pattern\"", "{\"String\": ...} or {\"Regex\": ...}", json_excerpt(p));
}

namespace {

class HfTokenizer final : public Tokenizer {
 public:
  struct Parts {
    std::unique_ptr<BpeModel> model;
    std::vector<AddedToken> added;
    std::unique_ptr<Normalizer> normalizer;
    std::unique_ptr<PreTokenizer> pre_tokenizer;
    std::unique_ptr<Decoder> decoder;
    std::string kind;
  };

  HfTokenizer(std::string file, SpecialTokenIds special, Parts parts);
  std::vector<int32_t> encode(std::string_view text) const override;
  std::string decode(const std::vector<int32_t>& ids) const override;
  std::string token_text(int32_t id) const override;
  std::optional<int32_t> token_id(std::string_view token) const override;
  int32_t vocab_size() const override { return vocab_size_; }
  std::string kind() const override { return kind_; }

 private:
  static std::vector<AddedToken> select(const std::vector<AddedToken>& all, bool normalized);
  void encode_text(const Segment& segment, std::vector<int32_t>& ids) const;
  void encode_normalized(const Segment& segment, std::vector<int32_t>& ids) const;
  const std::string& token_of(int32_t id) const;

  std::unique_ptr<BpeModel> model_;
  std::unique_ptr<Normalizer> normalizer_;
  std::unique_ptr<PreTokenizer> pre_tokenizer_;
  std::unique_ptr<Decoder> decoder_;
  AddedTokenMatcher raw_matcher_;         // added tokens with normalized = false
  AddedTokenMatcher normalized_matcher_;  // added tokens with normalized = true
  std::unordered_map<int32_t, std::string> added_by_id_;
  std::unordered_map<std::string, int32_t> added_by_text_;
  int32_t vocab_size_ = 0;
  std::string kind_;
};

std::vector<AddedToken> HfTokenizer::select(const std::vector<AddedToken>& all, bool normalized) {
  std::vector<AddedToken> out;
  std::copy_if(all.begin(), all.end(), std::back_inserter(out),
               [&](const AddedToken& t) { return t.normalized == normalized; });
  return out;
}

HfTokenizer::HfTokenizer(std::string file, SpecialTokenIds special, Parts parts)
    : Tokenizer(std::move(file), special),
      model_(std::move(parts.model)),
      normalizer_(std::move(parts.normalizer)),
      pre_tokenizer_(std::move(parts.pre_tokenizer)),
      decoder_(std::move(parts.decoder)),
      raw_matcher_(select(parts.added, false)),
      normalized_matcher_(select(parts.added, true)),
      kind_(std::move(parts.kind)) {
  vocab_size_ = model_->size();
  for (const AddedToken& t : parts.added) {
    added_by_id_[t.id] = t.content;
    added_by_text_.emplace(t.content, t.id);
    vocab_size_ = std::max(vocab_size_, t.id + 1);
  }
}

std::vector<int32_t> HfTokenizer::encode(std::string_view text) const {
  std::vector<int32_t> ids;
  ids.reserve(text.size() / 3 + 4);
  const Segment whole{std::string(text), true, -1};
  if (raw_matcher_.empty()) {
    encode_text(whole, ids);
    return ids;
  }
  for (const Segment& s : raw_matcher_.split(whole)) {
    if (s.added_id >= 0) {
      ids.push_back(s.added_id);
    } else {
      encode_text(s, ids);
    }
  }
  return ids;
}

void HfTokenizer::encode_text(const Segment& segment, std::vector<int32_t>& ids) const {
  if (segment.text.empty()) return;
  Segment normalized = segment;
  if (normalizer_) normalizer_->apply(normalized.text);
  if (normalized_matcher_.empty()) {
    encode_normalized(normalized, ids);
    return;
  }
  for (const Segment& s : normalized_matcher_.split(normalized)) {
    if (s.added_id >= 0) {
      ids.push_back(s.added_id);
    } else {
      encode_normalized(s, ids);
    }
  }
}

void HfTokenizer::encode_normalized(const Segment& segment, std::vector<int32_t>& ids) const {
  Pieces pieces{{segment.text, segment.at_start}};
  if (pre_tokenizer_) pre_tokenizer_->apply(pieces);
  for (const Piece& piece : pieces) model_->encode_word(piece.text, ids);
}

const std::string& HfTokenizer::token_of(int32_t id) const {
  check_id(id);
  const auto it = added_by_id_.find(id);
  if (it != added_by_id_.end()) return it->second;
  const std::string* token = model_->token_of(id);
  if (token == nullptr) {
    fail(source_file(), "token id " + std::to_string(id) + " is not assigned to any token");
  }
  return *token;
}

std::string HfTokenizer::decode(const std::vector<int32_t>& ids) const {
  std::vector<std::string> tokens;
  tokens.reserve(ids.size());
  for (const int32_t id : ids) tokens.push_back(token_of(id));
  std::string out;
  if (!decoder_) {
    // Hugging Face joins with spaces when the file has no decoder.
    for (size_t i = 0; i < tokens.size(); ++i) out += (i ? " " : "") + tokens[i];
    return out;
  }
  decoder_->apply(tokens);
  for (const std::string& t : tokens) out += t;
  return out;
}

std::string HfTokenizer::token_text(int32_t id) const {
  return token_of(id);
}

std::optional<int32_t> HfTokenizer::token_id(std::string_view token) const {
  const std::string key(token);
  const auto it = added_by_text_.find(key);
  if (it != added_by_text_.end()) return it->second;
  return model_->id_of(key);
}

// ---- parsing ---------------------------------------------------------------------------------

std::pair<std::string, std::string> parse_merge(const Json& m, size_t rank, const std::string& file) {
  const std::string where = "model.merges[" + std::to_string(rank) + "]";
  if (m.is_string()) {
    const std::string s = m.get<std::string>();
    const size_t space = s.find(' ');
    if (space == std::string::npos || space == 0 || s.find(' ', space + 1) != std::string::npos ||
        space + 1 == s.size()) {
      fail(file, where + " is not two tokens separated by one space", "\"a b\"", quote(s));
    }
    return {s.substr(0, space), s.substr(space + 1)};
  }
  if (m.is_array() && m.size() == 2 && m[0].is_string() && m[1].is_string()) {
    return {m[0].get<std::string>(), m[1].get<std::string>()};
  }
  fail(file, where + " is malformed", "\"a b\" or [\"a\", \"b\"]", json_excerpt(m));
}

void check_model_options(const Json& model, const std::string& file) {
  for (const char* key : {"continuing_subword_prefix", "end_of_word_suffix"}) {
    if (model.contains(key) && !model[key].is_null() &&
        !(model[key].is_string() && model[key].get<std::string>().empty())) {
      fail(file, std::string("model.") + key + " is not supported", "null", json_excerpt(model[key]));
    }
  }
}

// Ids are dense in real files (0..n-1 over the vocabulary and the added tokens); a few reserved
// gaps are fine, but the tokenizer allocates one slot per id up to the largest, so an id far past
// the number of tokens (1e8 in a 60-byte file) is refused instead of costing gigabytes.
constexpr int64_t kMaxIdGap = 1 << 16;

int64_t token_id_limit(const Json& root) {
  const auto count = [&](const Json& parent, const char* key) {
    return parent.is_object() && parent.contains(key) && parent[key].is_structured() ? parent[key].size() : size_t{0};
  };
  const Json& model = root.contains("model") ? root["model"] : Json();
  const int64_t tokens = static_cast<int64_t>(count(model, "vocab") + count(root, "added_tokens"));
  return std::min<int64_t>(tokens + kMaxIdGap, INT32_MAX);
}

/// The id of a model.vocab or added_tokens entry: an integer in 0..limit-1, never truncated.
int32_t token_id_of(const Json& id, int64_t limit, const std::string& file, const std::string& where) {
  const int32_t value = json_token_id(id, file, where);
  if (value >= limit) {
    fail(file, where + ": token id far beyond the number of tokens",
         "below " + std::to_string(limit) + " (the number of tokens + " + std::to_string(kMaxIdGap) + ")",
         std::to_string(value));
  }
  return value;
}

BpeSpec parse_bpe_spec(const Json& model, const std::string& file, int64_t id_limit) {
  BpeSpec spec;
  const Json& vocab = model.contains("vocab") ? model["vocab"] : Json();
  if (!vocab.is_object()) fail(file, "model.vocab is not an object", "{token: id}", vocab.type_name());
  spec.vocab.reserve(vocab.size());
  for (const auto& [token, id] : vocab.items()) {
    if (!id.is_number_integer()) fail(file, "model.vocab[" + quote(token) + "] is not an integer id");
    spec.vocab.emplace(token, token_id_of(id, id_limit, file, "model.vocab[" + quote(token) + "]"));
  }
  const Json& merges = model.contains("merges") ? model["merges"] : Json();
  if (!merges.is_array()) fail(file, "model.merges is not an array", "array", merges.type_name());
  spec.merges.reserve(merges.size());
  for (size_t i = 0; i < merges.size(); ++i) spec.merges.push_back(parse_merge(merges[i], i, file));
  if (model.contains("unk_token") && !model["unk_token"].is_null()) {
    spec.unk_token = json_string(model, "unk_token", file);
  }
  spec.byte_fallback = json_bool(model, "byte_fallback", file, false);
  spec.fuse_unk = json_bool(model, "fuse_unk", file, false);
  spec.ignore_merges = json_bool(model, "ignore_merges", file, false);
  check_model_options(model, file);
  return spec;
}

std::unique_ptr<BpeModel> parse_model(const Json& root, const std::string& file) {
  if (!root.contains("model") || !root["model"].is_object()) {
    fail(file, "missing \"model\" object", "a \"model\" with type BPE", "none");
  }
  const Json& model = root["model"];
  // Old files omit the type; a model with merges is a BPE there.
  const std::string type =
      json_string(model, "type", file, model.contains("merges") ? std::optional<std::string>("BPE") : std::nullopt);
  if (type != "BPE") fail(file, "unsupported model type " + quote(type), "BPE", quote(type));
  // JSON dropout is a training-time setting; encoding here is always deterministic.
  return std::make_unique<BpeModel>(parse_bpe_spec(model, file, token_id_limit(root)), file);
}

std::vector<AddedToken> parse_added_tokens(const Json& root, const std::string& file) {
  std::vector<AddedToken> out;
  if (!root.contains("added_tokens") || root["added_tokens"].is_null()) return out;
  const Json& list = root["added_tokens"];
  if (!list.is_array()) fail(file, "added_tokens is not an array");
  const int64_t id_limit = token_id_limit(root);
  for (const Json& item : list) {
    if (!item.is_object() || !item.contains("id") || !item["id"].is_number_integer()) {
      fail(file, "malformed added_tokens entry", "{\"id\": n >= 0, \"content\": ...}", json_excerpt(item));
    }
    AddedToken t;
    t.id = token_id_of(item["id"], id_limit, file, "added_tokens[" + std::to_string(out.size()) + "]");
    t.content = json_string(item, "content", file);
    t.special = json_bool(item, "special", file, false);
    t.normalized = json_bool(item, "normalized", file, !t.special);
    t.lstrip = json_bool(item, "lstrip", file, false);
    t.rstrip = json_bool(item, "rstrip", file, false);
    t.single_word = json_bool(item, "single_word", file, false);
    out.push_back(std::move(t));
  }
  return out;
}

std::string kind_of(const Json& root, const HfTokenizer::Parts& parts) {
  if (parts.pre_tokenizer && parts.pre_tokenizer->byte_level()) {
    return "byte-level BPE (tokenizer.json)";
  }
  const bool byte_fallback = json_bool(root["model"], "byte_fallback", "", false);
  if (byte_fallback || (parts.pre_tokenizer && parts.pre_tokenizer->metaspace())) {
    return "SentencePiece-style BPE (tokenizer.json)";
  }
  return "BPE (tokenizer.json)";
}

Json read_tokenizer_json(const std::string& path) {
  Json root = read_json_file(path);
  if (!root.is_object()) fail(path, "not a JSON object", "object", root.type_name());
  return root;
}

std::unique_ptr<Tokenizer> build_hf_tokenizer(const Json& root, const std::string& path) {
  HfTokenizer::Parts parts;
  parts.model = parse_model(root, path);
  parts.added = parse_added_tokens(root, path);
  parts.normalizer = parse_normalizer(root.value("normalizer", Json()), path);
  parts.pre_tokenizer = parse_pre_tokenizer(root.value("pre_tokenizer", Json()), path);
  parts.decoder = parse_decoder(root.value("decoder", Json()), path);
  parts.kind = kind_of(root, parts);
  const PostProcessorInfo post = parse_post_processor(root.value("post_processor", Json()), path);
  auto tokenizer = std::make_unique<HfTokenizer>(path, SpecialTokenIds{}, std::move(parts));
  if (post.bos_token) {
    const std::optional<int32_t> id = post.bos_id ? post.bos_id : tokenizer->token_id(*post.bos_token);
    if (!id || *id >= tokenizer->vocab_size()) {
      fail(path, "post_processor names a token that is not in the vocabulary", "",
           quote(*post.bos_token) + (id ? " with id " + std::to_string(*id) : ""));
    }
    detail::TokenizerAccess::special(*tokenizer) = SpecialTokenIds{id, std::nullopt, true};
  }
  return tokenizer;
}

}  // namespace

std::unique_ptr<Tokenizer> load_hf_tokenizer_json(const std::string& path) {
  const Json root = read_tokenizer_json(path);
  try {
    return build_hf_tokenizer(root, path);
  } catch (const Json::exception& e) {
    // Type errors nlohmann reports from a value of the wrong kind somewhere not checked above.
    fail(path, "malformed tokenizer.json", "", e.what());
  }
}

}  // namespace latmix::tok
