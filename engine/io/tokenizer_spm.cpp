// SentencePiece tokenizer.model through libsentencepiece.
#include <sentencepiece_processor.h>

#include "io/tokenizer_internal.h"
#include "latmix/error.h"

namespace latmix::tok {

namespace {

const std::string kSpaceSymbol = "\xE2\x96\x81";  // "▁"

class SentencePieceTokenizer final : public Tokenizer {
 public:
  SentencePieceTokenizer(std::string file, std::unique_ptr<sentencepiece::SentencePieceProcessor> sp);
  std::vector<int32_t> encode(std::string_view text) const override;
  std::string decode(const std::vector<int32_t>& ids) const override;
  std::string token_text(int32_t id) const override;
  std::optional<int32_t> token_id(std::string_view token) const override;
  int32_t vocab_size() const override { return sp_->GetPieceSize(); }
  std::string kind() const override { return "SentencePiece (tokenizer.model)"; }

 private:
  static SpecialTokenIds specials_of(const sentencepiece::SentencePieceProcessor& sp);
  static std::vector<AddedToken> literal_specials(const sentencepiece::SentencePieceProcessor& sp);
  void encode_plain(std::string_view text, std::vector<int32_t>& ids) const;
  void decode_one(int32_t id, bool strip_space, std::string& out) const;

  std::unique_ptr<sentencepiece::SentencePieceProcessor> sp_;
  AddedTokenMatcher specials_;
  bool dummy_prefix_ = true;
};

SpecialTokenIds SentencePieceTokenizer::specials_of(const sentencepiece::SentencePieceProcessor& sp) {
  SpecialTokenIds ids;
  if (sp.bos_id() >= 0) ids.bos = sp.bos_id();
  if (sp.eos_id() >= 0) ids.eos = sp.eos_id();
  ids.add_bos = ids.bos.has_value();  // Llama's convention for SentencePiece models
  return ids;
}

// Control pieces (<s>, </s>) and the unknown piece are not matched by sentencepiece itself;
// Hugging Face's slow tokenizers split them out of the text, and so do we.
std::vector<AddedToken> SentencePieceTokenizer::literal_specials(const sentencepiece::SentencePieceProcessor& sp) {
  std::vector<AddedToken> out;
  for (int id = 0; id < sp.GetPieceSize(); ++id) {
    if (!sp.IsControl(id) && !sp.IsUnknown(id)) continue;
    AddedToken t;
    t.id = id;
    t.content = sp.IdToPiece(id);
    t.special = true;
    out.push_back(std::move(t));
  }
  return out;
}

SentencePieceTokenizer::SentencePieceTokenizer(std::string file,
                                               std::unique_ptr<sentencepiece::SentencePieceProcessor> sp)
    : Tokenizer(std::move(file), specials_of(*sp)), sp_(std::move(sp)), specials_(literal_specials(*sp_)) {
  // The normalizer spec is not reachable without the protobuf headers; whether the model adds
  // a dummy prefix shows in how it encodes one letter.
  std::vector<std::string> pieces;
  if (sp_->Encode("a", &pieces).ok() && !pieces.empty()) {
    dummy_prefix_ = pieces[0].compare(0, kSpaceSymbol.size(), kSpaceSymbol) == 0;
  }
}

void SentencePieceTokenizer::encode_plain(std::string_view text, std::vector<int32_t>& ids) const {
  std::vector<int> piece_ids;
  const auto status = sp_->Encode(text, &piece_ids);
  if (!status.ok()) fail(source_file(), "sentencepiece could not encode the text", "", status.ToString());
  ids.insert(ids.end(), piece_ids.begin(), piece_ids.end());
}

std::vector<int32_t> SentencePieceTokenizer::encode(std::string_view text) const {
  std::vector<int32_t> ids;
  for (const Segment& s : specials_.split({std::string(text), true, -1})) {
    if (s.added_id >= 0) {
      ids.push_back(s.added_id);
    } else {
      encode_plain(s.text, ids);
    }
  }
  return ids;
}

void SentencePieceTokenizer::decode_one(int32_t id, bool strip_space, std::string& out) const {
  const std::string& piece = sp_->IdToPiece(id);
  if (sp_->IsControl(id) || sp_->IsUnknown(id)) {
    out += piece;
    return;
  }
  if (sp_->IsByte(id)) {
    if (const auto byte = parse_byte_token(piece)) {
      out += static_cast<char>(*byte);
      return;
    }
  }
  std::string text = replace_all(piece, kSpaceSymbol, " ");
  if (strip_space && dummy_prefix_ && !text.empty() && text[0] == ' ') text.erase(0, 1);
  out += text;
}

std::string SentencePieceTokenizer::decode(const std::vector<int32_t>& ids) const {
  std::string out;
  for (size_t i = 0; i < ids.size(); ++i) {
    check_id(ids[i]);
    const bool after_bos = i > 0 && bos_id() && ids[i - 1] == *bos_id();
    decode_one(ids[i], i == 0 || after_bos, out);
  }
  return out;
}

std::string SentencePieceTokenizer::token_text(int32_t id) const {
  check_id(id);
  return sp_->IdToPiece(id);
}

std::optional<int32_t> SentencePieceTokenizer::token_id(std::string_view token) const {
  const int id = sp_->PieceToId(token);
  if (id < 0 || id >= sp_->GetPieceSize() || sp_->IdToPiece(id) != token) return std::nullopt;
  return id;
}

}  // namespace

std::unique_ptr<Tokenizer> load_sentencepiece_model(const std::string& path) {
  auto sp = std::make_unique<sentencepiece::SentencePieceProcessor>();
  const std::string bytes = read_file(path);
  const auto status = sp->LoadFromSerializedProto(bytes);
  if (!status.ok()) {
    fail(path, "not a valid SentencePiece model", "a serialized SentencePiece ModelProto", status.ToString());
  }
  return std::make_unique<SentencePieceTokenizer>(path, std::move(sp));
}

}  // namespace latmix::tok
