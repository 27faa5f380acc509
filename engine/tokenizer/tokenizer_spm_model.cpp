// A SentencePiece ModelProto read strictly, without protobuf (tokenizer_spm_model.h).
#include "tokenizer/tokenizer_spm_model.h"

#include <cstring>

#include "latmix/error.h"

namespace latmix::tok {

namespace {

enum WireType : uint32_t { kVarint = 0, kFixed64 = 1, kBytes = 2, kFixed32 = 5 };

/// A protobuf message: (field, wire type, value) one at a time.
class Reader {
 public:
  Reader(std::string_view bytes, size_t base, const std::string& file, std::string message)
      : data_(bytes), base_(base), file_(file), message_(std::move(message)) {}

  bool next() {
    if (pos_ >= data_.size()) return false;
    start_ = pos_;
    const uint64_t key = varint("a field key");
    field_ = static_cast<uint32_t>(key >> 3);
    wire_ = static_cast<uint32_t>(key & 7);
    if (field_ == 0 || key >> 32 != 0) bad("a field key", "field number " + std::to_string(key >> 3));
    switch (wire_) {
      case kVarint: value_ = varint(name()); break;
      case kFixed64: bytes_ = take(8); break;
      case kFixed32: bytes_ = take(4); break;
      case kBytes: {
        const uint64_t n = varint(name());
        if (n > data_.size() - pos_) {
          bad(name() + " length", "at most " + std::to_string(data_.size() - pos_) + " bytes left", std::to_string(n));
        }
        value_start_ = pos_;
        bytes_ = take(static_cast<size_t>(n));
        break;
      }
      default: bad(name(), "wire type 0, 1, 2 or 5", std::to_string(wire_) + " (a group)");
    }
    return true;
  }
  uint32_t field() const { return field_; }
  /// The value as a varint, a length-delimited string, a float, or a nested message.
  uint64_t as_varint() const {
    expect(kVarint, "a varint");
    return value_;
  }
  bool as_bool() const { return as_varint() != 0; }
  std::string as_string() const {
    expect(kBytes, "a length-delimited string");
    return std::string(bytes_);
  }
  float as_float() const {
    expect(kFixed32, "a 32-bit float");
    float f = 0;
    std::memcpy(&f, bytes_.data(), 4);
    return f;
  }
  Reader as_message(const std::string& name) const {
    expect(kBytes, "a length-delimited message");
    return Reader(bytes_, base_ + value_start_, file_, name);
  }
  std::string name() const { return message_ + " field " + std::to_string(field_); }
  [[noreturn]] void bad(const std::string& what, const std::string& expected, const std::string& found = {}) const {
    fail(file_, "SentencePiece model: " + what + " at byte " + std::to_string(base_ + start_), expected, found);
  }

 private:
  void expect(uint32_t wire, const char* what) const {
    if (wire_ != wire) bad(name(), what, "wire type " + std::to_string(wire_));
  }
  uint64_t varint(const std::string& what) {
    uint64_t v = 0;
    for (int shift = 0; shift < 64; shift += 7) {
      if (pos_ >= data_.size()) bad(what, "a complete varint", "the end of the data");
      const auto b = static_cast<uint8_t>(data_[pos_++]);
      v |= static_cast<uint64_t>(b & 0x7f) << shift;
      if (!(b & 0x80)) return v;
    }
    bad(what, "a varint of at most 10 bytes", "more");
  }
  std::string_view take(size_t n) {
    if (n > data_.size() - pos_) bad(name(), std::to_string(n) + " bytes", std::to_string(data_.size() - pos_) + " left");
    const std::string_view out = data_.substr(pos_, n);
    pos_ += n;
    return out;
  }

  std::string_view data_;
  size_t base_;  // offset of data_ in the file (for messages)
  const std::string& file_;
  std::string message_;
  size_t pos_ = 0, start_ = 0, value_start_ = 0;
  uint32_t field_ = 0, wire_ = 0;
  uint64_t value_ = 0;
  std::string_view bytes_;
};

SpmPiece read_piece(Reader r, size_t index) {
  SpmPiece p;
  bool have_piece = false;
  while (r.next()) {
    switch (r.field()) {
      case 1: p.piece = r.as_string(); have_piece = true; break;
      case 2: p.score = r.as_float(); break;
      case 3: {
        const uint64_t t = r.as_varint();
        if (t < 1 || t > 6) r.bad("pieces[" + std::to_string(index) + "].type", "1..6", std::to_string(t));
        p.type = static_cast<SpmPieceType>(t);
        break;
      }
      default: break;
    }
  }
  if (!have_piece || p.piece.empty()) r.bad("pieces[" + std::to_string(index) + "].piece", "a non-empty string", "none");
  return p;
}

void read_trainer_spec(Reader r, SpmModel& m) {
  while (r.next()) {
    switch (r.field()) {
      case 3: m.model_type = static_cast<int>(r.as_varint()); break;
      case 24: m.treat_whitespace_as_suffix = r.as_bool(); break;
      case 35: m.byte_fallback = r.as_bool(); break;
      case 46: m.bos_piece = r.as_string(); break;
      case 47: m.eos_piece = r.as_string(); break;
      default: break;
    }
  }
}

void read_normalizer_spec(Reader r, SpmModel& m) {
  while (r.next()) {
    switch (r.field()) {
      case 1: m.normalizer_name = r.as_string(); break;
      case 2: m.has_charsmap = !r.as_string().empty(); break;
      case 3: m.add_dummy_prefix = r.as_bool(); break;
      case 4: m.remove_extra_whitespaces = r.as_bool(); break;
      case 5: m.escape_whitespaces = r.as_bool(); break;
      default: break;
    }
  }
}

}  // namespace

SpmModel parse_spm_model(const std::string& bytes, const std::string& file) {
  SpmModel m;
  Reader r(bytes, 0, file, "ModelProto");
  while (r.next()) {
    switch (r.field()) {
      case 1: m.pieces.push_back(read_piece(r.as_message("pieces[" + std::to_string(m.pieces.size()) + "]"), m.pieces.size())); break;
      case 2: read_trainer_spec(r.as_message("trainer_spec"), m); break;
      case 3: read_normalizer_spec(r.as_message("normalizer_spec"), m); break;
      case 5: {
        SpmModel d;
        read_normalizer_spec(r.as_message("denormalizer_spec"), d);
        m.has_denormalizer_charsmap = d.has_charsmap;
        break;
      }
      default: break;
    }
  }
  return m;
}

}  // namespace latmix::tok
