// SentencePiece tokenizer.model: the ModelProto read here (tokenizer_spm_model.h says why not
// through libsentencepiece) and sentencepiece 0.1.9x's BPE encoding reproduced: the identity
// normalizer's whitespace rules, user-defined pieces kept whole, pairs merged best score first
// (leftmost on ties), UNUSED pieces split back, unknown characters as bytes or <unk>.
#include <queue>
#include <unordered_map>

#include "tokenizer/tokenizer_internal.h"
#include "tokenizer/tokenizer_spm_model.h"
#include "latmix/error.h"

namespace latmix::tok {

namespace {

const std::string kSpaceSymbol = "\xE2\x96\x81";  // "▁"
const std::string kReplacementChar = "\xEF\xBF\xBD";
constexpr size_t kMaxModelBytes = 256u << 20;

class SentencePieceTokenizer final : public Tokenizer {
 public:
  SentencePieceTokenizer(std::string file, SpmModel model);
  std::vector<int32_t> encode(std::string_view text) const override;
  std::string decode(const std::vector<int32_t>& ids) const override;
  std::string token_text(int32_t id) const override;
  std::optional<int32_t> token_id(std::string_view token) const override;
  int32_t vocab_size() const override { return static_cast<int32_t>(m_.pieces.size()); }
  std::string kind() const override { return "SentencePiece (tokenizer.model)"; }

 private:
  static SpecialTokenIds specials_of(const SpmModel& m, const std::string& file);
  static std::vector<AddedToken> literal_specials(const SpmModel& m);
  SpmPieceType type(int32_t id) const { return m_.pieces[static_cast<size_t>(id)].type; }
  std::string normalize(std::string_view text) const;
  int32_t piece_to_id(std::string_view piece) const;  // unk_id_ when not a piece
  void encode_plain(std::string_view text, std::vector<int32_t>& ids) const;
  void emit(std::string_view piece, const std::unordered_map<std::string, std::pair<std::string, std::string>>& split,
            std::vector<int32_t>& ids) const;
  void decode_one(int32_t id, bool strip_space, std::string& out) const;

  SpmModel m_;
  std::unordered_map<std::string, int32_t> pieces_;    // normal, user-defined and unused pieces
  std::unordered_map<std::string, int32_t> reserved_;  // control, unknown and byte pieces
  std::vector<std::string> user_defined_;              // longest first
  std::array<int32_t, 256> byte_ids_{};
  int32_t unk_id_ = -1;
  AddedTokenMatcher specials_;
};

std::optional<int32_t> control_id(const SpmModel& m, const std::string& piece) {
  for (size_t i = 0; i < m.pieces.size(); ++i) {
    if (m.pieces[i].piece == piece && (m.pieces[i].type == SpmPieceType::Control ||
                                       m.pieces[i].type == SpmPieceType::UserDefined)) {
      return static_cast<int32_t>(i);
    }
  }
  return std::nullopt;
}

SpecialTokenIds SentencePieceTokenizer::specials_of(const SpmModel& m, const std::string& file) {
  const auto unsupported = [&](const std::string& what, const std::string& expected, const std::string& found) {
    fail(file, "SentencePiece model: " + what + " not supported", expected,
         found + "; a tokenizer.json of the model, where there is one, is read instead of tokenizer.model");
  };
  if (m.model_type != 2) {
    const char* names[] = {"?", "UNIGRAM", "BPE", "WORD", "CHAR"};
    const std::string name = m.model_type >= 1 && m.model_type <= 4 ? names[m.model_type] : std::to_string(m.model_type);
    unsupported("model type " + name, "BPE (Llama, Mistral, llama2.c)", name);
  }
  if (m.has_charsmap || m.has_denormalizer_charsmap) {
    unsupported("normalizer '" + m.normalizer_name + "'", "the identity normalizer (no precompiled_charsmap)",
                "a character map");
  }
  if (m.treat_whitespace_as_suffix) unsupported("treat_whitespace_as_suffix", "false", "true");
  if (m.pieces.empty()) fail(file, "SentencePiece model: no pieces", "at least one", "none");
  SpecialTokenIds ids;
  ids.bos = control_id(m, m.bos_piece);
  ids.eos = control_id(m, m.eos_piece);
  ids.add_bos = ids.bos.has_value();  // Llama's convention for SentencePiece models
  return ids;
}

// Control pieces (<s>, </s>) and the unknown piece are not matched by sentencepiece itself;
// Hugging Face's slow tokenizers split them out of the text, and so do we.
std::vector<AddedToken> SentencePieceTokenizer::literal_specials(const SpmModel& m) {
  std::vector<AddedToken> out;
  for (size_t id = 0; id < m.pieces.size(); ++id) {
    if (m.pieces[id].type != SpmPieceType::Control && m.pieces[id].type != SpmPieceType::Unknown) continue;
    AddedToken t;
    t.id = static_cast<int32_t>(id);
    t.content = m.pieces[id].piece;
    t.special = true;
    out.push_back(std::move(t));
  }
  return out;
}

SentencePieceTokenizer::SentencePieceTokenizer(std::string file, SpmModel model)
    : Tokenizer(file, specials_of(model, file)), m_(std::move(model)), specials_(literal_specials(m_)) {
  byte_ids_.fill(-1);
  for (size_t i = 0; i < m_.pieces.size(); ++i) {
    const SpmPiece& p = m_.pieces[i];
    const auto id = static_cast<int32_t>(i);
    const bool normal =
        p.type == SpmPieceType::Normal || p.type == SpmPieceType::UserDefined || p.type == SpmPieceType::Unused;
    if (!(normal ? pieces_ : reserved_).emplace(p.piece, id).second) {
      fail(file, "SentencePiece model: pieces[" + std::to_string(i) + "]", "a piece not seen before",
           quote(p.piece) + " twice");
    }
    if (p.type == SpmPieceType::UserDefined) user_defined_.push_back(p.piece);
    if (p.type == SpmPieceType::Unknown) {
      if (unk_id_ >= 0) fail(file, "SentencePiece model: unknown piece", "one", "two (" + quote(p.piece) + ")");
      unk_id_ = id;
    }
    if (p.type == SpmPieceType::Byte) {
      const auto byte = parse_byte_token(p.piece);
      if (!byte || !m_.byte_fallback) {
        fail(file, "SentencePiece model: byte piece pieces[" + std::to_string(i) + "]",
             "<0xNN> in a model with byte_fallback", quote(p.piece));
      }
      byte_ids_[*byte] = id;
    }
  }
  if (unk_id_ < 0) fail(file, "SentencePiece model: unknown piece", "one piece of type UNKNOWN", "none");
  if (m_.byte_fallback) {
    for (int b = 0; b < 256; ++b) {
      if (byte_ids_[b] < 0) fail(file, "SentencePiece model: byte_fallback", "all 256 byte pieces", "no " + byte_token(b));
    }
  }
  std::sort(user_defined_.begin(), user_defined_.end(),
            [](const std::string& a, const std::string& b) { return a.size() > b.size(); });
}

int32_t SentencePieceTokenizer::piece_to_id(std::string_view piece) const {
  const std::string key(piece);
  if (auto it = reserved_.find(key); it != reserved_.end()) return it->second;
  if (auto it = pieces_.find(key); it != pieces_.end()) return it->second;
  return unk_id_;
}

// sentencepiece's Normalizer::Normalize with no character map (the identity rule): invalid
// UTF-8 bytes become U+FFFD one byte at a time; only ' ' counts as whitespace.
std::string SentencePieceTokenizer::normalize(std::string_view text) const {
  size_t pos = 0;
  if (m_.remove_extra_whitespaces) {
    while (pos < text.size() && text[pos] == ' ') ++pos;
  }
  std::string out;
  if (pos == text.size()) return out;
  const std::string space = m_.escape_whitespaces ? kSpaceSymbol : " ";
  if (m_.add_dummy_prefix) out += space;
  bool prev_space = m_.remove_extra_whitespaces;
  while (pos < text.size()) {
    const size_t len = utf8_valid_len(text, pos);
    const std::string_view ch = len == 0 ? std::string_view(kReplacementChar) : text.substr(pos, len);
    pos += len == 0 ? 1 : len;
    if (ch == " ") {
      if (!(prev_space && m_.remove_extra_whitespaces)) out += space;
      prev_space = true;
    } else {
      out += ch;
      prev_space = false;
    }
    if (!m_.remove_extra_whitespaces) prev_space = false;
  }
  if (m_.remove_extra_whitespaces) {
    while (out.size() >= space.size() && out.compare(out.size() - space.size(), space.size(), space) == 0) {
      out.resize(out.size() - space.size());
    }
  }
  return out;
}

// sentencepiece's bpe::Model::Encode on normalized text.
void SentencePieceTokenizer::encode_plain(std::string_view text, std::vector<int32_t>& ids) const {
  const std::string norm = normalize(text);
  struct Symbol {
    int prev, next;
    std::string_view piece;
    bool freeze;
  };
  std::vector<Symbol> symbols;
  for (size_t pos = 0; pos < norm.size();) {
    size_t len = 0;
    bool user = false;
    for (const std::string& u : user_defined_) {
      if (norm.compare(pos, u.size(), u) == 0) {
        len = u.size();
        user = true;
        break;
      }
    }
    if (!user) len = std::max<size_t>(utf8_char_len(norm, pos), 1);
    const int index = static_cast<int>(symbols.size());
    symbols.push_back({index - 1, pos + len < norm.size() ? index + 1 : -1,
                       std::string_view(norm).substr(pos, len), user});
    pos += len;
  }
  struct Pair {
    float score;
    int left, right;
    size_t size;
  };
  const auto later = [](const Pair& a, const Pair& b) {
    return a.score < b.score || (a.score == b.score && a.left > b.left);
  };
  std::priority_queue<Pair, std::vector<Pair>, decltype(later)> agenda(later);
  std::unordered_map<std::string, std::pair<std::string, std::string>> split;  // UNUSED pieces
  const auto add_pair = [&](int left, int right) {
    if (left < 0 || right < 0 || symbols[left].freeze || symbols[right].freeze) return;
    const std::string_view l = symbols[left].piece, r = symbols[right].piece;
    const std::string_view both(l.data(), l.size() + r.size());  // adjacent in `norm`
    const auto it = pieces_.find(std::string(both));
    if (it == pieces_.end()) return;
    agenda.push({m_.pieces[it->second].score, left, right, both.size()});
    if (type(it->second) == SpmPieceType::Unused) split[std::string(both)] = {std::string(l), std::string(r)};
  };
  for (int i = 1; i < static_cast<int>(symbols.size()); ++i) add_pair(i - 1, i);
  while (!agenda.empty()) {
    const Pair top = agenda.top();
    agenda.pop();
    Symbol& l = symbols[top.left];
    Symbol& r = symbols[top.right];
    if (l.piece.empty() || r.piece.empty() || l.piece.size() + r.piece.size() != top.size) continue;
    l.piece = std::string_view(l.piece.data(), top.size);
    l.next = r.next;
    if (r.next >= 0) symbols[r.next].prev = top.left;
    r.piece = {};
    add_pair(l.prev, top.left);
    add_pair(top.left, l.next);
  }
  for (int i = symbols.empty() ? -1 : 0; i >= 0; i = symbols[i].next) emit(symbols[i].piece, split, ids);
}

void SentencePieceTokenizer::emit(std::string_view piece,
                                  const std::unordered_map<std::string, std::pair<std::string, std::string>>& split,
                                  std::vector<int32_t>& ids) const {
  const int32_t id = piece_to_id(piece);
  if (type(id) == SpmPieceType::Unused) {
    if (const auto it = split.find(std::string(piece)); it != split.end()) {
      emit(it->second.first, split, ids);
      emit(it->second.second, split, ids);
      return;
    }
  }
  if (id == unk_id_ && m_.byte_fallback) {
    for (const char c : piece) ids.push_back(byte_ids_[static_cast<uint8_t>(c)]);
    return;
  }
  ids.push_back(id);
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
  const std::string& piece = m_.pieces[static_cast<size_t>(id)].piece;
  const SpmPieceType t = type(id);
  if (t == SpmPieceType::Control || t == SpmPieceType::Unknown) {
    out += piece;
    return;
  }
  if (t == SpmPieceType::Byte) {
    if (const auto byte = parse_byte_token(piece)) {
      out += static_cast<char>(*byte);
      return;
    }
  }
  std::string text = replace_all(piece, kSpaceSymbol, " ");
  if (strip_space && m_.add_dummy_prefix && !text.empty() && text[0] == ' ') text.erase(0, 1);
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
  return m_.pieces[static_cast<size_t>(id)].piece;
}

std::optional<int32_t> SentencePieceTokenizer::token_id(std::string_view token) const {
  const int32_t id = piece_to_id(token);
  if (id < 0 || m_.pieces[static_cast<size_t>(id)].piece != token) return std::nullopt;
  return id;
}

}  // namespace

std::unique_ptr<Tokenizer> load_sentencepiece_model(const std::string& path) {
  const std::string bytes = read_file(path);
  if (bytes.size() > kMaxModelBytes) {
    fail(path, "too large for a SentencePiece model", "at most " + std::to_string(kMaxModelBytes >> 20) + " MiB",
         std::to_string(bytes.size()) + " bytes");
  }
  return std::make_unique<SentencePieceTokenizer>(path, parse_spm_model(bytes, path));
}

}  // namespace latmix::tok
