// llama2.c tokenizer.bin, encoded and decoded as llama2.c's run.c does it.
//
// Layout: uint32 max_token_length, then per id: float32 score, int32 length, `length` bytes of
// UTF-8 (SentencePiece's "▁" already written as a space). Ids 1 and 2 are BOS and EOS.
#include <cstring>

#include "tokenizer/tokenizer_internal.h"
#include "latmix/error.h"

namespace latmix::tok {

namespace {

constexpr int32_t kBosId = 1;
constexpr int32_t kEosId = 2;
constexpr int32_t kByteOffset = 3;  // run.c's byte fallback: id = byte + 3
// run.c only merges pairs scoring above its initial best score.
constexpr float kMinMergeScore = -1e10f;

struct Llama2cVocab {
  std::vector<std::string> pieces;
  std::vector<float> scores;
};

template <class T>
T read_le(const std::string& bytes, size_t offset) {
  T value{};
  std::memcpy(&value, bytes.data() + offset, sizeof value);  // the format and hosts are little-endian
  return value;
}

void need(const std::string& path, const std::string& bytes, size_t offset, size_t count, const std::string& what) {
  if (offset + count <= bytes.size()) return;
  fail(path, "truncated at offset " + std::to_string(offset) + " while reading " + what,
       std::to_string(count) + " bytes", std::to_string(bytes.size() - offset) + " bytes");
}

Llama2cVocab parse_vocab(const std::string& path, const std::string& bytes, std::optional<int32_t> vocab_size) {
  need(path, bytes, 0, 4, "max_token_length");
  Llama2cVocab vocab;
  size_t offset = 4;
  for (int32_t id = 0; vocab_size ? id < *vocab_size : offset < bytes.size(); ++id) {
    const std::string what = "token " + std::to_string(id);
    need(path, bytes, offset, 8, what + " (score and length)");
    const auto score = read_le<float>(bytes, offset);
    const auto length = read_le<int32_t>(bytes, offset + 4);
    if (length < 0) {
      fail(path, "negative length at offset " + std::to_string(offset + 4) + " for " + what, "length >= 0",
           std::to_string(length));
    }
    offset += 8;
    need(path, bytes, offset, static_cast<size_t>(length), what + " (its bytes)");
    vocab.pieces.emplace_back(bytes, offset, static_cast<size_t>(length));
    vocab.scores.push_back(score);
    offset += static_cast<size_t>(length);
  }
  if (vocab.pieces.empty()) fail(path, "no tokens", "at least one token", "none");
  return vocab;
}

class Llama2cTokenizer final : public Tokenizer {
 public:
  Llama2cTokenizer(std::string file, Llama2cVocab vocab);
  std::vector<int32_t> encode(std::string_view text) const override;
  std::string decode(const std::vector<int32_t>& ids) const override;
  std::string token_text(int32_t id) const override;
  std::optional<int32_t> token_id(std::string_view token) const override;
  int32_t vocab_size() const override { return static_cast<int32_t>(vocab_.pieces.size()); }
  std::string kind() const override { return "llama2.c tokenizer.bin"; }

 private:
  static SpecialTokenIds specials_for(size_t size);
  void push_piece_or_bytes(std::string_view piece, std::vector<int32_t>& ids) const;
  std::optional<int32_t> lookup(const std::string& piece) const;

  Llama2cVocab vocab_;
  std::unordered_map<std::string, int32_t> ids_;
};

SpecialTokenIds Llama2cTokenizer::specials_for(size_t size) {
  SpecialTokenIds ids;
  if (size > static_cast<size_t>(kBosId)) ids.bos = kBosId;
  if (size > static_cast<size_t>(kEosId)) ids.eos = kEosId;
  ids.add_bos = ids.bos.has_value();  // run.c always starts with BOS
  return ids;
}

Llama2cTokenizer::Llama2cTokenizer(std::string file, Llama2cVocab vocab)
    : Tokenizer(std::move(file), specials_for(vocab.pieces.size())), vocab_(std::move(vocab)) {
  ids_.reserve(vocab_.pieces.size());
  for (size_t id = 0; id < vocab_.pieces.size(); ++id) {
    ids_.emplace(vocab_.pieces[id], static_cast<int32_t>(id));  // first id wins on duplicates
  }
}

std::optional<int32_t> Llama2cTokenizer::lookup(const std::string& piece) const {
  const auto it = ids_.find(piece);
  if (it == ids_.end()) return std::nullopt;
  return it->second;
}

void Llama2cTokenizer::push_piece_or_bytes(std::string_view piece, std::vector<int32_t>& ids) const {
  if (const auto id = lookup(std::string(piece))) {
    ids.push_back(*id);
    return;
  }
  for (const char c : piece) {
    const auto byte = static_cast<unsigned char>(c);
    const int32_t id = byte + kByteOffset;
    // run.c assumes byte pieces; a vocabulary without them (byte_fallback off) gets <unk> (0).
    const bool is_byte_piece = id < vocab_size() && parse_byte_token(vocab_.pieces[id]) == byte;
    ids.push_back(is_byte_piece ? id : 0);
  }
}

// run.c: a dummy-prefix " " token for non-empty text, one token per UTF-8 sequence (a lead byte
// and up to three continuation bytes, unvalidated) or its bytes + 3, then greedy merging of the
// best-scoring adjacent pair (leftmost on ties) until no pair is in the vocabulary.
std::vector<int32_t> Llama2cTokenizer::encode(std::string_view text) const {
  std::vector<int32_t> ids;
  if (text.empty()) return ids;
  push_piece_or_bytes(" ", ids);
  for (size_t pos = 0; pos < text.size();) {
    size_t len = 1;
    while (pos + len < text.size() && len < 4 && (static_cast<unsigned char>(text[pos + len]) & 0xC0) == 0x80) {
      ++len;
    }
    push_piece_or_bytes(text.substr(pos, len), ids);
    pos += len;
  }
  merge_symbols(ids, [this](int32_t a, int32_t b) -> std::optional<std::pair<double, int32_t>> {
    const auto id = lookup(vocab_.pieces[a] + vocab_.pieces[b]);
    if (!id || !(vocab_.scores[*id] > kMinMergeScore)) return std::nullopt;
    return std::make_pair(-static_cast<double>(vocab_.scores[*id]), *id);
  });
  return ids;
}

// run.c: the leading space of a piece after BOS is dropped (here also at the start), and
// "<0xNN>" pieces become their byte.
std::string Llama2cTokenizer::decode(const std::vector<int32_t>& ids) const {
  std::string out;
  for (size_t i = 0; i < ids.size(); ++i) {
    check_id(ids[i]);
    const std::string& piece = vocab_.pieces[ids[i]];
    if (const auto byte = parse_byte_token(piece)) {
      out += static_cast<char>(*byte);
      continue;
    }
    const bool strip = i == 0 || ids[i - 1] == kBosId;
    out.append(piece, strip && !piece.empty() && piece[0] == ' ' ? 1 : 0, std::string::npos);
  }
  return out;
}

std::string Llama2cTokenizer::token_text(int32_t id) const {
  check_id(id);
  return vocab_.pieces[id];
}

std::optional<int32_t> Llama2cTokenizer::token_id(std::string_view token) const {
  return lookup(std::string(token));
}

}  // namespace

std::unique_ptr<Tokenizer> load_llama2c_bin(const std::string& path, std::optional<int32_t> vocab_size) {
  if (vocab_size && *vocab_size <= 0) {
    fail(path, "invalid vocab size for a llama2.c tokenizer", "> 0", std::to_string(*vocab_size));
  }
  const std::string bytes = read_file(path);
  return std::make_unique<Llama2cTokenizer>(path, parse_vocab(path, bytes, vocab_size));
}

}  // namespace latmix::tok
