// Test support: GGUF v3 metadata reader and llama.cpp tokenizer test vectors.
#include "core_tokenizer_gguf.h"

#include <cstring>
#include <fstream>
#include <sstream>
#include <stdexcept>

namespace latmix::test {

namespace {

std::string slurp(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) throw std::runtime_error(path + ": cannot open");
  std::ostringstream buffer;
  buffer << in.rdbuf();
  return buffer.str();
}

class Reader {
 public:
  // A vector rather than a string: GCC 12 warns (falsely) about memcpy out of a moved string's buffer.
  Reader(std::string path, const std::string& bytes) : path_(std::move(path)), bytes_(bytes.begin(), bytes.end()) {}

  template <class T>
  T scalar() {
    need(sizeof(T));
    T value{};
    std::memcpy(&value, bytes_.data() + offset_, sizeof value);
    offset_ += sizeof value;
    return value;
  }

  std::string string() {
    const auto length = scalar<uint64_t>();
    need(length);
    std::string s(bytes_.data() + offset_, length);
    offset_ += length;
    return s;
  }

  // A scalar of GGUF type `type` as a double (strings and arrays are handled by value()).
  double number(uint32_t type) {
    switch (type) {
      case 0:
        return scalar<uint8_t>();
      case 1:
        return scalar<int8_t>();
      case 2:
        return scalar<uint16_t>();
      case 3:
        return scalar<int16_t>();
      case 4:
        return scalar<uint32_t>();
      case 5:
        return scalar<int32_t>();
      case 6:
        return scalar<float>();
      case 7:
        return scalar<uint8_t>();
      case 10:
        return static_cast<double>(scalar<uint64_t>());
      case 11:
        return static_cast<double>(scalar<int64_t>());
      case 12:
        return scalar<double>();
      default:
        fail("unknown value type " + std::to_string(type));
    }
  }

  GgufValue value(uint32_t type) {
    GgufValue v;
    v.type = type;
    if (type == 8) {
      v.text = string();
    } else if (type == 9) {
      const auto element_type = scalar<uint32_t>();
      const auto count = scalar<uint64_t>();
      if (element_type == 9) fail("nested arrays are not supported");
      for (uint64_t i = 0; i < count; ++i) {
        if (element_type == 8) {
          v.texts.push_back(string());
        } else {
          v.numbers.push_back(number(element_type));
        }
      }
    } else {
      v.number = number(type);
    }
    return v;
  }

  [[noreturn]] void fail(const std::string& what) const {
    throw std::runtime_error(path_ + ": offset " + std::to_string(offset_) + ": " + what);
  }

 private:
  void need(uint64_t count) const {
    if (count > bytes_.size() - offset_) fail("truncated (need " + std::to_string(count) + " bytes)");
  }
  std::string path_;
  std::vector<char> bytes_;
  size_t offset_ = 0;
};

std::vector<std::string> split_cases(const std::string& text) {
  const std::string separator = "\n__ggml_vocab_test__\n";
  std::vector<std::string> parts;
  size_t pos = 0;
  while (true) {
    const size_t hit = text.find(separator, pos);
    if (hit == std::string::npos) break;
    parts.push_back(text.substr(pos, hit - pos));
    pos = hit + separator.size();
  }
  if (pos < text.size()) parts.push_back(text.substr(pos));  // the file ends with a separator
  return parts;
}

}  // namespace

std::map<std::string, GgufValue> read_gguf_metadata(const std::string& path) {
  Reader reader(path, slurp(path));
  if (reader.scalar<uint32_t>() != 0x46554747u) reader.fail("not a GGUF file (magic)");
  const auto version = reader.scalar<uint32_t>();
  if (version != 3) reader.fail("GGUF version " + std::to_string(version) + ", expected 3");
  reader.scalar<uint64_t>();  // tensor count
  const auto kv_count = reader.scalar<uint64_t>();
  std::map<std::string, GgufValue> kv;
  for (uint64_t i = 0; i < kv_count; ++i) {
    std::string key = reader.string();
    const auto type = reader.scalar<uint32_t>();
    kv.emplace(std::move(key), reader.value(type));
  }
  return kv;
}

VocabTestCases read_vocab_test_cases(const std::string& gguf_path) {
  VocabTestCases cases;
  cases.texts = split_cases(slurp(gguf_path + ".inp"));
  std::istringstream out(slurp(gguf_path + ".out"));
  std::string line;
  while (std::getline(out, line)) {
    std::istringstream numbers(line);
    std::vector<int32_t> ids;
    for (int32_t id = 0; numbers >> id;) ids.push_back(id);
    cases.ids.push_back(std::move(ids));
  }
  return cases;
}

}  // namespace latmix::test
