#pragma once
/// \file json.h
/// Room: engine/base/ (latmix_core, no LibTorch).
/// The one way the engine reads JSON files (config.json, tokenizer.json, tokenizer_config.json,
/// shard indexes, export manifests, checkpoint state, transforms and statistics files).
///
/// Parsing refuses nesting deeper than a limit: nlohmann's parser is iterative, but copying,
/// comparing or printing a parsed value recurses once per level, so a file of 100,000 nested
/// brackets would end the process by stack overflow far from the parser. Every failure is a
/// latmix::Error that names the file and, where there is one, the key.
///
/// Reading values goes through JsonObject: a missing key, a value of the wrong type or a number
/// outside the range asked for becomes "FILE: key 'a.b' (expected ..., found ...)" instead of
/// nlohmann's "type must be number, but is string".

#include <cstdint>
#include <string>
#include <string_view>

#include <nlohmann/json.hpp>

namespace latmix {

/// Deepest nesting accepted in any JSON file. Real files stay under 10 levels (a tokenizer.json
/// normalizer Sequence is the deepest seen); 256 is far from both and from the stack's end.
constexpr int kMaxJsonDepth = 256;

/// Parses JSON text that was read from `file` (used in messages only). Throws latmix::Error naming
/// the file for invalid JSON (with line and column), a NUL byte, a number out of range such as
/// 1e400 (naming the key), and nesting deeper than `max_depth` levels.
nlohmann::json parse_json_file(const std::string& file, std::string_view text, int max_depth = kMaxJsonDepth);

/// parse_json_file keeping the keys in file order (for JSON that is written back, e.g. the
/// config.json of an export).
nlohmann::ordered_json parse_ordered_json_file(const std::string& file, std::string_view text,
                                               int max_depth = kMaxJsonDepth);

/// read_text_file(file) (which refuses FIFOs and devices) then parse_json_file.
nlohmann::json read_json_file(const std::string& file, int max_depth = kMaxJsonDepth);

/// A value for an error message: its JSON text, cut to about 60 characters.
std::string json_excerpt(const nlohmann::json& value);

/// Typed, checked reads of the keys of one JSON object. A key counts as absent when it is missing
/// or null. Errors name the file and the key's path ("rope_scaling.factor", "files[3].bytes").
/// Holds a reference: the json value must outlive the JsonObject.
class JsonObject {
 public:
  /// `where` is the path of `value` inside the file ("" for the root). Throws unless `value` is
  /// an object.
  JsonObject(const nlohmann::json& value, std::string file, std::string where = {});

  /// True when the key is present and not null.
  bool has(std::string_view key) const;
  /// The value of a present key, any type; throws when it is absent.
  const nlohmann::json& at(std::string_view key) const;

  /// An integer that fits in 64 bits (1.0 and "1" are refused: configs write integers plainly).
  int64_t integer(std::string_view key) const;
  int64_t integer_or(std::string_view key, int64_t fallback) const;
  /// An integer within [min, max], both inclusive.
  int64_t integer_in(std::string_view key, int64_t min, int64_t max) const;
  /// Any finite JSON number.
  double number(std::string_view key) const;
  double number_or(std::string_view key, double fallback) const;
  bool boolean_or(std::string_view key, bool fallback) const;
  std::string string(std::string_view key) const;
  std::string string_or(std::string_view key, const std::string& fallback) const;
  /// A nested object; object_or_empty gives an empty object when the key is absent.
  JsonObject object(std::string_view key) const;
  JsonObject object_or_empty(std::string_view key) const;
  /// A present array (any element types).
  const nlohmann::json& array(std::string_view key) const;
  /// The element `index` of an array value, read as an object ("files[3]").
  JsonObject element(std::string_view key, size_t index) const;

  /// The path of a key of this object, as errors print it.
  std::string path_of(std::string_view key) const;
  const std::string& file() const { return file_; }
  const nlohmann::json& value() const { return value_; }

  /// Throws latmix::Error "FILE: key 'PATH' (expected EXPECTED, found <value>)".
  [[noreturn]] void fail_key(std::string_view key, const std::string& expected, const nlohmann::json& found) const;

 private:
  const nlohmann::json& value_;
  std::string file_;
  std::string where_;
};

}  // namespace latmix
