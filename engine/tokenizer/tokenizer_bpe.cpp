// BPE model: merges by rank over the characters of one pre-tokenized word.
#include <algorithm>

#include "tokenizer/tokenizer_internal.h"
#include "latmix/error.h"

namespace latmix::tok {

namespace {
// Words longer than this are rare (long runs of one character) and not worth caching.
constexpr size_t kMaxCachedWordBytes = 256;
// Bound on the cache; it is cleared when full (simple, and hit rates stay high on real text).
constexpr size_t kMaxCacheEntries = 1 << 18;

int32_t lookup_merge_part(const std::unordered_map<std::string, int32_t>& vocab, const std::string& token, size_t rank,
                          const std::string& file) {
  const auto it = vocab.find(token);
  if (it == vocab.end()) {
    fail(file, "model.merges[" + std::to_string(rank) + "] refers to a token not in model.vocab",
         "a token of model.vocab", quote(token));
  }
  return it->second;
}
}  // namespace

BpeModel::BpeModel(BpeSpec spec, const std::string& file)
    : vocab_(std::move(spec.vocab)),
      byte_fallback_(spec.byte_fallback),
      fuse_unk_(spec.fuse_unk),
      ignore_merges_(spec.ignore_merges) {
  int32_t max_id = -1;
  for (const auto& [token, id] : vocab_) {
    if (id < 0) fail(file, "model.vocab: negative id for token " + quote(token));
    max_id = std::max(max_id, id);
  }
  id_to_token_.resize(static_cast<size_t>(max_id) + 1);
  id_used_.assign(id_to_token_.size(), false);
  for (const auto& [token, id] : vocab_) {
    if (id_used_[id]) {
      fail(file, "model.vocab: id " + std::to_string(id) + " is used twice", "one token per id",
           quote(id_to_token_[id]) + " and " + quote(token));
    }
    id_used_[id] = true;
    id_to_token_[id] = token;
  }
  merges_.reserve(spec.merges.size());
  for (size_t rank = 0; rank < spec.merges.size(); ++rank) {
    const auto& [left, right] = spec.merges[rank];
    const int32_t a = lookup_merge_part(vocab_, left, rank, file);
    const int32_t b = lookup_merge_part(vocab_, right, rank, file);
    const int32_t merged = lookup_merge_part(vocab_, left + right, rank, file);
    // A repeated pair keeps its last rank, as Hugging Face's map construction does.
    merges_.insert_or_assign(pair_key(a, b), Merge{static_cast<int32_t>(rank), merged});
  }
  for (int b = 0; b < 256; ++b) {
    const auto it = vocab_.find(byte_token(static_cast<uint8_t>(b)));
    byte_ids_[b] = it == vocab_.end() ? -1 : it->second;
  }
  if (spec.unk_token) {
    const auto it = vocab_.find(*spec.unk_token);
    if (it == vocab_.end()) {
      fail(file, "model.unk_token is not in model.vocab", "a token of model.vocab", quote(*spec.unk_token));
    }
    unk_id_ = it->second;
  }
}

std::optional<int32_t> BpeModel::id_of(const std::string& token) const {
  const auto it = vocab_.find(token);
  if (it == vocab_.end()) return std::nullopt;
  return it->second;
}

const std::string* BpeModel::token_of(int32_t id) const {
  if (id < 0 || id >= size() || !id_used_[id]) return nullptr;
  return &id_to_token_[id];
}

void BpeModel::encode_word(std::string_view word, std::vector<int32_t>& out) const {
  if (word.empty()) return;
  if (word.size() > kMaxCachedWordBytes) {
    encode_uncached(word, out);
    return;
  }
  std::string key(word);
  {
    std::lock_guard<std::mutex> lock(cache_mutex_);
    const auto it = cache_.find(key);
    if (it != cache_.end()) {
      out.insert(out.end(), it->second.begin(), it->second.end());
      return;
    }
  }
  std::vector<int32_t> ids;
  encode_uncached(word, ids);
  out.insert(out.end(), ids.begin(), ids.end());
  std::lock_guard<std::mutex> lock(cache_mutex_);
  if (cache_.size() >= kMaxCacheEntries) cache_.clear();
  cache_.emplace(std::move(key), std::move(ids));
}

void BpeModel::encode_uncached(std::string_view word, std::vector<int32_t>& out) const {
  if (ignore_merges_) {
    const auto it = vocab_.find(std::string(word));
    if (it != vocab_.end()) {
      out.push_back(it->second);
      return;
    }
  }
  std::vector<int32_t> ids;
  initial_symbols(word, ids);
  apply_merges(ids);
  out.insert(out.end(), ids.begin(), ids.end());
}

// One symbol per character; a character outside the vocabulary becomes its <0xNN> byte tokens
// (byte_fallback), else the unknown token (consecutive ones fused when fuse_unk), else nothing
// (Hugging Face drops it when the model has no unk_token).
void BpeModel::initial_symbols(std::string_view word, std::vector<int32_t>& ids) const {
  bool previous_unknown = false;
  for (size_t pos = 0; pos < word.size();) {
    const size_t len = utf8_char_len(word, pos);
    const std::string_view ch = word.substr(pos, len);
    pos += len;
    const auto it = vocab_.find(std::string(ch));
    if (it != vocab_.end()) {
      ids.push_back(it->second);
      previous_unknown = false;
      continue;
    }
    if (byte_fallback_ &&
        std::all_of(ch.begin(), ch.end(), [&](char c) { return byte_ids_[static_cast<unsigned char>(c)] >= 0; })) {
      for (const char c : ch) ids.push_back(byte_ids_[static_cast<unsigned char>(c)]);
      previous_unknown = false;
      continue;
    }
    if (!unk_id_) continue;
    if (!(fuse_unk_ && previous_unknown)) ids.push_back(*unk_id_);
    previous_unknown = true;
  }
}

void BpeModel::apply_merges(std::vector<int32_t>& ids) const {
  merge_symbols(ids, [this](int32_t a, int32_t b) -> std::optional<std::pair<double, int32_t>> {
    const auto it = merges_.find(pair_key(a, b));
    if (it == merges_.end()) return std::nullopt;
    return std::make_pair(static_cast<double>(it->second.rank), it->second.merged_id);
  });
}

}  // namespace latmix::tok
