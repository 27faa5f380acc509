// tokenizer.json decoders and what the post_processor says about BOS.
#include "tokenizer/tokenizer_internal.h"
#include "latmix/error.h"

namespace latmix::tok {

namespace {

class SequenceDecoder final : public Decoder {
 public:
  explicit SequenceDecoder(std::vector<std::unique_ptr<Decoder>> steps) : steps_(std::move(steps)) {}
  void apply(std::vector<std::string>& tokens) const override {
    for (const auto& step : steps_) step->apply(tokens);
  }

 private:
  std::vector<std::unique_ptr<Decoder>> steps_;
};

// Maps each token's characters back to bytes; a token holding a character outside the byte map
// (an added token such as "<|im_start|>" written with other characters) is kept as it is.
class ByteLevelDecoder final : public Decoder {
 public:
  void apply(std::vector<std::string>& tokens) const override {
    const ByteUnicodeMap& map = ByteUnicodeMap::get();
    std::string out;
    for (const std::string& token : tokens) {
      std::string bytes;
      bool mapped = true;
      for (size_t pos = 0; pos < token.size() && mapped;) {
        const size_t len = utf8_valid_len(token, pos);
        const int byte = len == 0 ? -1 : map.decode(utf8_decode(token, pos, len));
        mapped = byte >= 0;
        bytes += static_cast<char>(byte);
        pos += len;
      }
      out += mapped ? bytes : token;
    }
    tokens.clear();
    tokens.push_back(std::move(out));
  }
};

// Hugging Face drops every replacement character of the first token (not only a leading one)
// unless the prepend scheme is "never".
class MetaspaceDecoder final : public Decoder {
 public:
  MetaspaceDecoder(std::string replacement, bool drop_first)
      : replacement_(std::move(replacement)), drop_first_(drop_first) {}
  void apply(std::vector<std::string>& tokens) const override {
    for (size_t i = 0; i < tokens.size(); ++i) {
      tokens[i] = replace_all(tokens[i], replacement_, i == 0 && drop_first_ ? "" : " ");
    }
  }

 private:
  std::string replacement_;
  bool drop_first_;
};

class ReplaceDecoder final : public Decoder {
 public:
  ReplaceDecoder(std::string pattern, std::string content)
      : pattern_(std::move(pattern)), content_(std::move(content)) {}
  void apply(std::vector<std::string>& tokens) const override {
    if (pattern_.empty()) return;
    for (std::string& token : tokens) token = replace_all(token, pattern_, content_);
  }

 private:
  std::string pattern_;
  std::string content_;
};

// Runs of <0xNN> tokens become their bytes. Hugging Face turns a run that is not valid UTF-8
// into U+FFFD characters; here the bytes are kept, so decode() is byte-exact.
class ByteFallbackDecoder final : public Decoder {
 public:
  void apply(std::vector<std::string>& tokens) const override {
    std::vector<std::string> out;
    std::string bytes;
    bool in_run = false;
    for (std::string& token : tokens) {
      if (const auto byte = parse_byte_token(token)) {
        bytes += static_cast<char>(*byte);
        in_run = true;
        continue;
      }
      if (in_run) out.push_back(std::move(bytes));
      bytes.clear();
      in_run = false;
      out.push_back(std::move(token));
    }
    if (in_run) out.push_back(std::move(bytes));
    tokens = std::move(out);
  }
};

class FuseDecoder final : public Decoder {
 public:
  void apply(std::vector<std::string>& tokens) const override {
    std::string out;
    for (const std::string& token : tokens) out += token;
    tokens.clear();
    tokens.push_back(std::move(out));
  }
};

// Removes up to `start` leading and `stop` trailing copies of `content` from every token.
class StripDecoder final : public Decoder {
 public:
  StripDecoder(std::string content, size_t start, size_t stop)
      : content_(std::move(content)), start_(start), stop_(stop) {}
  void apply(std::vector<std::string>& tokens) const override {
    if (content_.empty()) return;
    const size_t n = content_.size();
    for (std::string& token : tokens) {
      size_t begin = 0;
      for (size_t i = 0; i < start_ && token.compare(begin, n, content_) == 0; ++i) begin += n;
      size_t end = token.size();
      for (size_t i = 0; i < stop_ && end >= begin + n && token.compare(end - n, n, content_) == 0; ++i) {
        end -= n;
      }
      token = token.substr(begin, end - begin);
    }
  }

 private:
  std::string content_;
  size_t start_, stop_;
};

size_t json_count(const Json& j, const char* key, const std::string& file) {
  if (!j.contains(key) || !j[key].is_number_unsigned()) {
    fail(file, std::string("decoder Strip: \"") + key + "\" is not a non-negative integer");
  }
  return j[key].get<size_t>();
}

std::unique_ptr<Decoder> parse_metaspace_decoder(const Json& j, const std::string& file) {
  const std::string replacement = json_string(j, "replacement", file, std::string("\xE2\x96\x81"));
  bool drop_first = json_bool(j, "add_prefix_space", file, true);
  if (j.contains("prepend_scheme") && !j["prepend_scheme"].is_null()) {
    drop_first = json_string(j, "prepend_scheme", file) != "never";
  }
  return std::make_unique<MetaspaceDecoder>(replacement, drop_first);
}

}  // namespace

std::unique_ptr<Decoder> parse_decoder(const Json& j, const std::string& file) {
  if (j.is_null()) return nullptr;
  if (!j.is_object()) fail(file, "decoder is not an object", "object or null", j.type_name());
  const std::string type = json_string(j, "type", file);
  if (type == "Sequence") {
    const Json& list = j.contains("decoders") ? j["decoders"] : Json();
    if (!list.is_array()) fail(file, "decoder Sequence: \"decoders\" is not an array");
    std::vector<std::unique_ptr<Decoder>> steps;
    for (const Json& item : list) {
      if (item.is_null()) fail(file, "decoder Sequence: null entry");
      steps.push_back(parse_decoder(item, file));
    }
    return std::make_unique<SequenceDecoder>(std::move(steps));
  }
  if (type == "ByteLevel") return std::make_unique<ByteLevelDecoder>();
  if (type == "Metaspace") return parse_metaspace_decoder(j, file);
  if (type == "Replace") {
    const auto [pattern, is_regex] = json_pattern(j, file, "decoder Replace");
    if (is_regex) fail(file, "decoder Replace with a regex pattern is not supported");
    return std::make_unique<ReplaceDecoder>(pattern, json_string(j, "content", file));
  }
  if (type == "ByteFallback") return std::make_unique<ByteFallbackDecoder>();
  if (type == "Fuse") return std::make_unique<FuseDecoder>();
  if (type == "Strip") {
    return std::make_unique<StripDecoder>(json_string(j, "content", file), json_count(j, "start", file),
                                          json_count(j, "stop", file));
  }
  fail(file, "unsupported decoder type " + quote(type),
       "Sequence, ByteLevel, Metaspace, Replace, ByteFallback, Fuse or Strip", quote(type));
}

namespace {

PostProcessorInfo parse_template(const Json& j, const std::string& file) {
  PostProcessorInfo info;
  const Json& single = j.contains("single") ? j["single"] : Json();
  if (!single.is_array()) fail(file, "post_processor TemplateProcessing: \"single\" is not an array");
  for (const Json& item : single) {
    if (item.is_object() && item.contains("Sequence")) break;  // only what comes before $A
    if (!item.is_object() || !item.contains("SpecialToken") || !item["SpecialToken"].is_object()) {
      fail(file, "post_processor TemplateProcessing: malformed \"single\" item",
           "{\"SpecialToken\": ...} or {\"Sequence\": ...}", json_excerpt(item));
    }
    info.bos_token = json_string(item["SpecialToken"], "id", file);
    break;
  }
  if (!info.bos_token) return info;
  const Json& specials = j.contains("special_tokens") ? j["special_tokens"] : Json();
  if (specials.is_object() && specials.contains(*info.bos_token)) {
    const Json& ids = specials[*info.bos_token].contains("ids") ? specials[*info.bos_token]["ids"] : Json();
    if (ids.is_array() && ids.size() == 1 && ids[0].is_number_integer()) {
      info.bos_id = json_token_id(ids[0], file, "post_processor special_tokens." + quote(*info.bos_token) + ".ids");
    }
  }
  return info;
}

}  // namespace

PostProcessorInfo parse_post_processor(const Json& j, const std::string& file) {
  if (j.is_null()) return {};
  if (!j.is_object()) fail(file, "post_processor is not an object", "object or null", j.type_name());
  const std::string type = json_string(j, "type", file);
  if (type == "TemplateProcessing") return parse_template(j, file);
  if (type == "ByteLevel") return {};
  if (type == "Sequence") {
    const Json& list = j.contains("processors") ? j["processors"] : Json();
    if (!list.is_array()) fail(file, "post_processor Sequence: \"processors\" is not an array");
    for (const Json& item : list) {
      PostProcessorInfo info = parse_post_processor(item, file);
      if (info.bos_token) return info;
    }
    return {};
  }
  if (type == "RobertaProcessing" || type == "BertProcessing") {
    const Json& cls = j.contains("cls") ? j["cls"] : Json();
    if (!cls.is_array() || cls.size() != 2 || !cls[0].is_string() || !cls[1].is_number_integer()) {
      fail(file, "post_processor " + type + ": malformed \"cls\"", "[token, id]", json_excerpt(cls));
    }
    return {cls[0].get<std::string>(), json_token_id(cls[1], file, "post_processor " + type + " cls")};
  }
  fail(file, "unsupported post_processor type " + quote(type),
       "TemplateProcessing, ByteLevel, Sequence, RobertaProcessing or BertProcessing", quote(type));
}

}  // namespace latmix::tok
