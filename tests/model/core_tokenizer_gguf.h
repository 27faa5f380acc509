#pragma once
// Test support: reads the key/value section of a GGUF v3 file (llama.cpp's vocab-only files used
// by its tokenizer tests). Not part of the engine: the engine does not read GGUF.

#include <cstdint>
#include <map>
#include <string>
#include <vector>

namespace latmix::test {

/// One GGUF value. Scalars land in `number` (integers and floats alike, as double) or `text`;
/// arrays of strings in `texts`, arrays of numbers in `numbers`.
struct GgufValue {
  uint32_t type = 0;  ///< GGUF type code (8 string, 9 array, ...)
  double number = 0;
  std::string text;
  std::vector<std::string> texts;
  std::vector<double> numbers;
};

/// The metadata of a GGUF v3 file (tensor infos are not read). Throws std::runtime_error naming
/// the file and offset on anything malformed.
std::map<std::string, GgufValue> read_gguf_metadata(const std::string& path);

/// GGUF token types (llama.cpp's llama_token_type).
enum GgufTokenType {
  kGgufNormal = 1,
  kGgufUnknown = 2,
  kGgufControl = 3,
  kGgufUserDefined = 4,
  kGgufUnused = 5,
  kGgufByte = 6
};

/// A llama.cpp tokenizer test case set: `<vocab>.gguf.inp` (texts separated by lines
/// "__ggml_vocab_test__") and `<vocab>.gguf.out` (ids of each text, one line each).
struct VocabTestCases {
  std::vector<std::string> texts;
  std::vector<std::vector<int32_t>> ids;
};
VocabTestCases read_vocab_test_cases(const std::string& gguf_path);

}  // namespace latmix::test
