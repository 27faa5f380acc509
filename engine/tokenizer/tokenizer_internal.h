#pragma once
// Private to the tokenizer implementation files (engine/tokenizer/tokenizer*.cpp).

#include <array>
#include <cstdint>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <string_view>
#include <unordered_map>
#include <utility>
#include <vector>

#include <nlohmann/json.hpp>

#include "tokenizer/tokenizer_merge_queue.h"
#include "latmix/json.h"
#include "latmix/tokenizer.h"

namespace latmix {

namespace detail {
/// Lets the loader set what tokenizer_config.json says after the tokenizer is built.
struct TokenizerAccess {
  static SpecialTokenIds& special(Tokenizer& t) { return t.special_; }
};
}  // namespace detail

namespace tok {

using Json = nlohmann::json;

// ---- text helpers (tokenizer_text.cpp) -------------------------------------------------------

/// Length of the UTF-8 sequence at s[pos] when it is a valid one (1..4), else 0.
size_t utf8_valid_len(std::string_view s, size_t pos);
/// Length of the character at s[pos]: utf8_valid_len, or 1 for an invalid byte.
size_t utf8_char_len(std::string_view s, size_t pos);
/// Code point of the valid sequence at s[pos] of length len.
uint32_t utf8_decode(std::string_view s, size_t pos, size_t len);
void append_utf8(std::string& out, uint32_t cp);
/// Replaces every occurrence of `from` by `to` (nothing when `from` is empty).
std::string replace_all(std::string_view s, std::string_view from, std::string_view to);
/// "<0xNN>" for a byte.
std::string byte_token(uint8_t byte);
/// The byte of a "<0xNN>" token (hex digits of either case), if it is one.
std::optional<uint8_t> parse_byte_token(std::string_view token);
/// Unicode White_Space (as Rust's char::is_whitespace).
bool is_unicode_space(uint32_t cp);
/// Quotes and shortens a string for error messages.
std::string quote(std::string_view s);

/// GPT-2's reversible byte <-> printable-character mapping used by byte-level BPE.
class ByteUnicodeMap {
 public:
  static const ByteUnicodeMap& get();
  /// The UTF-8 text of the character standing for `byte`.
  const std::string& encode(uint8_t byte) const { return byte_to_text_[byte]; }
  /// Maps every byte of `raw` to its character.
  std::string encode_all(std::string_view raw) const;
  /// The byte a character stands for, or -1 when it is not one of the 256.
  int decode(uint32_t cp) const;

 private:
  ByteUnicodeMap();
  std::array<std::string, 256> byte_to_text_;
  std::vector<int> cp_to_byte_;
};

/// A PCRE2 regex compiled with UTF + UCP (and JIT when available). Invalid UTF-8 in subjects is
/// tolerated (it never matches character classes).
class Regex {
 public:
  /// Throws Error naming `file` when the pattern does not compile.
  Regex(const std::string& pattern, const std::string& file);
  ~Regex();
  Regex(const Regex&) = delete;
  Regex& operator=(const Regex&) = delete;
  /// Non-empty, non-overlapping matches [begin, end) from left to right.
  std::vector<std::pair<size_t, size_t>> find_all(std::string_view subject) const;

 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

/// The regex GPT-2's ByteLevel pre-tokenizer splits with (use_regex = true).
extern const char* const kGpt2SplitPattern;

// ---- pipeline pieces (tokenizer_pretok.cpp, tokenizer_decoders.cpp) --------------------------

/// A piece of text on its way through the pre-tokenizers. `at_start`: the piece begins at offset
/// 0 of the original text (Metaspace's prepend_scheme "first" looks at this).
struct Piece {
  std::string text;
  bool at_start = false;
};
using Pieces = std::vector<Piece>;

class Normalizer {
 public:
  virtual ~Normalizer() = default;
  virtual void apply(std::string& text) const = 0;
};

class PreTokenizer {
 public:
  virtual ~PreTokenizer() = default;
  virtual void apply(Pieces& pieces) const = 0;
  /// Whether pieces come out byte-mapped (a ByteLevel step ran).
  virtual bool byte_level() const { return false; }
  /// Whether the pieces come out with spaces as "▁" (a Metaspace step ran).
  virtual bool metaspace() const { return false; }
};

class Decoder {
 public:
  virtual ~Decoder() = default;
  virtual void apply(std::vector<std::string>& tokens) const = 0;
};

/// Each returns nullptr for a JSON null; throws Error naming `file` for an unknown or malformed
/// component.
std::unique_ptr<Normalizer> parse_normalizer(const Json& j, const std::string& file);
std::unique_ptr<PreTokenizer> parse_pre_tokenizer(const Json& j, const std::string& file);
std::unique_ptr<Decoder> parse_decoder(const Json& j, const std::string& file);

/// What the post_processor says about BOS: the special token placed before the text, if any.
struct PostProcessorInfo {
  std::optional<std::string> bos_token;
  std::optional<int32_t> bos_id;  ///< when the template gives the id
};
PostProcessorInfo parse_post_processor(const Json& j, const std::string& file);

/// Reads a JSON string member; `fallback` when it is absent or null (Error when there is no
/// fallback); Error when it has another type. `j` must be an object.
std::string json_string(const Json& j, const char* key, const std::string& file,
                        const std::optional<std::string>& fallback = std::nullopt);
bool json_bool(const Json& j, const char* key, const std::string& file, bool fallback);
/// A token id written in the file: an integer in 0..INT32_MAX (never truncated); `where` names it.
int32_t json_token_id(const Json& id, const std::string& file, const std::string& where);
/// A {"String": s} or {"Regex": r} pattern: returns (text, is_regex).
std::pair<std::string, bool> json_pattern(const Json& j, const std::string& file, const std::string& where);

// ---- added tokens (tokenizer_added.cpp) ------------------------------------------------------

struct AddedToken {
  int32_t id = -1;
  std::string content;
  bool special = false;
  bool normalized = false;
  bool lstrip = false;
  bool rstrip = false;
  bool single_word = false;
};

/// A part of the input: either text to tokenize or one matched added token.
struct Segment {
  std::string text;
  bool at_start = false;  ///< begins at offset 0 of the original text
  int32_t added_id = -1;  ///< >= 0 when the segment is an added token
};

/// Finds added tokens in text, leftmost first and longest at a position (as HF does).
class AddedTokenMatcher {
 public:
  explicit AddedTokenMatcher(std::vector<AddedToken> tokens);
  bool empty() const { return tokens_.empty(); }
  /// Splits text into segments; text segments keep their at_start flag.
  std::vector<Segment> split(const Segment& text) const;

 private:
  struct Match {
    size_t begin, end;
    int32_t id;
  };
  std::optional<Match> find(std::string_view text, size_t from) const;
  bool accept(std::string_view text, size_t begin, size_t end, const AddedToken& t) const;
  std::vector<AddedToken> tokens_;
  std::array<std::vector<size_t>, 256> by_first_byte_;  // indices into tokens_, longest first
};

// ---- BPE model (tokenizer_bpe.cpp) -----------------------------------------------------------

struct BpeSpec {
  std::unordered_map<std::string, int32_t> vocab;
  std::vector<std::pair<std::string, std::string>> merges;
  std::optional<std::string> unk_token;
  bool byte_fallback = false;
  bool fuse_unk = false;
  bool ignore_merges = false;
};

/// A BPE model: vocabulary, merge ranks, byte fallback, unknown handling, and a word cache.
class BpeModel {
 public:
  /// Validates the merges (both parts and their concatenation must be in the vocabulary) and
  /// throws Error naming `file` otherwise.
  BpeModel(BpeSpec spec, const std::string& file);
  /// Appends the ids of one pre-tokenized word.
  void encode_word(std::string_view word, std::vector<int32_t>& out) const;
  std::optional<int32_t> id_of(const std::string& token) const;
  /// The token of an id, or nullptr when the id is unused.
  const std::string* token_of(int32_t id) const;
  /// Largest id + 1.
  int32_t size() const { return static_cast<int32_t>(id_to_token_.size()); }

 private:
  struct Merge {
    int32_t rank;
    int32_t merged_id;
  };
  static uint64_t pair_key(int32_t a, int32_t b) {
    return (static_cast<uint64_t>(static_cast<uint32_t>(a)) << 32) | static_cast<uint32_t>(b);
  }
  void initial_symbols(std::string_view word, std::vector<int32_t>& ids) const;
  void apply_merges(std::vector<int32_t>& ids) const;
  void encode_uncached(std::string_view word, std::vector<int32_t>& out) const;

  std::unordered_map<std::string, int32_t> vocab_;
  std::vector<std::string> id_to_token_;
  std::vector<bool> id_used_;
  std::unordered_map<uint64_t, Merge> merges_;
  std::array<int32_t, 256> byte_ids_{};
  std::optional<int32_t> unk_id_;
  bool byte_fallback_ = false;
  bool fuse_unk_ = false;
  bool ignore_merges_ = false;

  mutable std::mutex cache_mutex_;
  mutable std::unordered_map<std::string, std::vector<int32_t>> cache_;
};

// ---- the loaders (one per format) ------------------------------------------------------------

std::unique_ptr<Tokenizer> load_hf_tokenizer_json(const std::string& path);
std::unique_ptr<Tokenizer> load_sentencepiece_model(const std::string& path);
/// vocab_size: entries to read; nullopt: read entries up to the end of the file.
std::unique_ptr<Tokenizer> load_llama2c_bin(const std::string& path, std::optional<int32_t> vocab_size);

/// Reads a whole file; throws Error naming it when it cannot be read.
std::string read_file(const std::string& path);

}  // namespace tok
}  // namespace latmix
