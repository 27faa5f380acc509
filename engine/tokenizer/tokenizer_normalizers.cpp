// tokenizer.json normalizers: the subset decoder-only LLM tokenizers use.
#include <utf8proc.h>

#include <cstdlib>

#include "tokenizer/tokenizer_internal.h"
#include "latmix/error.h"

namespace latmix::tok {

namespace {

class SequenceNormalizer final : public Normalizer {
 public:
  explicit SequenceNormalizer(std::vector<std::unique_ptr<Normalizer>> steps) : steps_(std::move(steps)) {}
  void apply(std::string& text) const override {
    for (const auto& step : steps_) step->apply(text);
  }

 private:
  std::vector<std::unique_ptr<Normalizer>> steps_;
};

// NFC / NFD / NFKC / NFKD through utf8proc. Text that is not valid UTF-8 is left as it is
// (Hugging Face never sees such text: Python strings are always valid).
class UnicodeNormalizer final : public Normalizer {
 public:
  explicit UnicodeNormalizer(utf8proc_option_t options) : options_(options) {}
  void apply(std::string& text) const override {
    if (text.empty()) return;
    utf8proc_uint8_t* out = nullptr;
    const utf8proc_ssize_t len = utf8proc_map(reinterpret_cast<const utf8proc_uint8_t*>(text.data()),
                                              static_cast<utf8proc_ssize_t>(text.size()), &out, options_);
    if (len >= 0) text.assign(reinterpret_cast<const char*>(out), static_cast<size_t>(len));
    std::free(out);
  }

 private:
  utf8proc_option_t options_;
};

// Hugging Face prepends only to non-empty text.
class PrependNormalizer final : public Normalizer {
 public:
  explicit PrependNormalizer(std::string prefix) : prefix_(std::move(prefix)) {}
  void apply(std::string& text) const override {
    if (!text.empty()) text.insert(0, prefix_);
  }

 private:
  std::string prefix_;
};

class ReplaceNormalizer final : public Normalizer {
 public:
  ReplaceNormalizer(std::string pattern, bool is_regex, std::string content, const std::string& file)
      : pattern_(std::move(pattern)), content_(std::move(content)) {
    if (is_regex) regex_ = std::make_unique<Regex>(pattern_, file);
  }
  void apply(std::string& text) const override {
    if (!regex_) {
      if (!pattern_.empty()) text = replace_all(text, pattern_, content_);
      return;
    }
    std::string out;
    size_t pos = 0;
    for (const auto& [begin, end] : regex_->find_all(text)) {
      out.append(text, pos, begin - pos);
      out += content_;
      pos = end;
    }
    out.append(text, pos, std::string::npos);
    text = std::move(out);
  }

 private:
  std::string pattern_;
  std::string content_;
  std::unique_ptr<Regex> regex_;
};

class LowercaseNormalizer final : public Normalizer {
 public:
  void apply(std::string& text) const override {
    std::string out;
    out.reserve(text.size());
    for (size_t pos = 0; pos < text.size();) {
      const size_t len = utf8_valid_len(text, pos);
      if (len == 0) {
        out += text[pos++];
        continue;
      }
      append_utf8(out,
                  static_cast<uint32_t>(utf8proc_tolower(static_cast<utf8proc_int32_t>(utf8_decode(text, pos, len)))));
      pos += len;
    }
    text = std::move(out);
  }
};

class StripNormalizer final : public Normalizer {
 public:
  StripNormalizer(bool left, bool right) : left_(left), right_(right) {}
  void apply(std::string& text) const override {
    size_t begin = 0;
    size_t end = text.size();
    while (left_ && begin < end) {
      const size_t len = utf8_valid_len(text, begin);
      if (len == 0 || !is_unicode_space(utf8_decode(text, begin, len))) break;
      begin += len;
    }
    while (right_ && end > begin) {
      size_t start = end - 1;
      while (start > begin && (static_cast<unsigned char>(text[start]) & 0xC0) == 0x80) --start;
      const size_t len = utf8_valid_len(text, start);
      if (len != end - start || !is_unicode_space(utf8_decode(text, start, len))) break;
      end = start;
    }
    text = text.substr(begin, end - begin);
  }

 private:
  bool left_, right_;
};

}  // namespace

std::unique_ptr<Normalizer> parse_normalizer(const Json& j, const std::string& file) {
  if (j.is_null()) return nullptr;
  if (!j.is_object()) fail(file, "normalizer is not an object", "object or null", j.type_name());
  const std::string type = json_string(j, "type", file);
  if (type == "Sequence") {
    const Json& list = j.contains("normalizers") ? j["normalizers"] : Json();
    if (!list.is_array()) fail(file, "normalizer Sequence: \"normalizers\" is not an array");
    std::vector<std::unique_ptr<Normalizer>> steps;
    for (const Json& item : list) {
      if (item.is_null()) fail(file, "normalizer Sequence: null entry");
      steps.push_back(parse_normalizer(item, file));
    }
    return std::make_unique<SequenceNormalizer>(std::move(steps));
  }
  const auto stable = UTF8PROC_STABLE;
  if (type == "NFC") return std::make_unique<UnicodeNormalizer>(utf8proc_option_t(stable | UTF8PROC_COMPOSE));
  if (type == "NFD") return std::make_unique<UnicodeNormalizer>(utf8proc_option_t(stable | UTF8PROC_DECOMPOSE));
  if (type == "NFKC") {
    return std::make_unique<UnicodeNormalizer>(utf8proc_option_t(stable | UTF8PROC_COMPOSE | UTF8PROC_COMPAT));
  }
  if (type == "NFKD") {
    return std::make_unique<UnicodeNormalizer>(utf8proc_option_t(stable | UTF8PROC_DECOMPOSE | UTF8PROC_COMPAT));
  }
  if (type == "Prepend") return std::make_unique<PrependNormalizer>(json_string(j, "prepend", file));
  if (type == "Replace") {
    const auto [pattern, is_regex] = json_pattern(j, file, "normalizer Replace");
    return std::make_unique<ReplaceNormalizer>(pattern, is_regex, json_string(j, "content", file), file);
  }
  if (type == "Lowercase") return std::make_unique<LowercaseNormalizer>();
  if (type == "Strip") {
    return std::make_unique<StripNormalizer>(json_bool(j, "strip_left", file, true),
                                             json_bool(j, "strip_right", file, true));
  }
  fail(file, "unsupported normalizer type " + quote(type),
       "Sequence, NFC, NFD, NFKC, NFKD, Prepend, Replace, Lowercase or Strip", quote(type));
}

}  // namespace latmix::tok
