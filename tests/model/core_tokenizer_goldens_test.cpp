// Token ids from the reference libraries for a fixed list of texts (Unicode, emoji, CJK, whitespace
// runs, digits, contractions, special tokens inside text, the empty string):
// tests/fixtures/tokenizer/goldens.json, written by tests/golden/make_tokenizer_goldens.py with
// Hugging Face `tokenizers` (cross-checked with `transformers`) and `sentencepiece`.
#include <gtest/gtest.h>

#include <filesystem>
#include <fstream>

#include <nlohmann/json.hpp>

#include "latmix/tokenizer.h"
#include "test_paths.h"

namespace {

using Ids = std::vector<int32_t>;

class TokenizerGoldens : public ::testing::Test {
 protected:
  void SetUp() override {
    const std::string path = latmix::test::fixtures_path("tokenizer/goldens.json");
    if (!std::filesystem::exists(path)) {
      GTEST_SKIP() << path << " does not exist yet: run tests/golden/make_tokenizer_goldens.py";
    }
    std::ifstream in(path);
    golden = nlohmann::json::parse(in);
    ASSERT_GE(golden["cases"].size(), 30u);
  }
  std::unique_ptr<latmix::Tokenizer> load(const char* which) const {
    return latmix::load_tokenizer(latmix::test::data_path(golden[which]["path"].get<std::string>()));
  }
  nlohmann::json golden;
};

TEST_F(TokenizerGoldens, TokenizerJsonMatchesHuggingFace) {
  LATMIX_REQUIRE_DATA(golden["tokenizer_json"]["path"].get<std::string>());
  const auto tok = load("tokenizer_json");
  for (const auto& c : golden["cases"]) {
    const auto text = c["text"].get<std::string>();
    const auto& ref = c["tokenizer_json"];
    EXPECT_EQ(tok->encode(text), ref["ids"].get<Ids>()) << "text: " << text;
    // add_special_tokens=True is what encode_with_bos() does by default.
    EXPECT_EQ(tok->encode_with_bos(text), ref["ids_with_special"].get<Ids>()) << "text: " << text;
    EXPECT_EQ(tok->decode(ref["ids"].get<Ids>()), ref["decoded"].get<std::string>()) << "text: " << text;
  }
}

TEST_F(TokenizerGoldens, SentencePieceModelMatchesSentencePiece) {
  LATMIX_REQUIRE_DATA(golden["sentencepiece_model"]["path"].get<std::string>());
  const auto tok = load("sentencepiece_model");
  for (const auto& c : golden["cases"]) {
    const auto text = c["text"].get<std::string>();
    const auto& ref = c["sentencepiece"];
    EXPECT_EQ(tok->encode(text), ref["ids"].get<Ids>()) << "text: " << text;
    EXPECT_EQ(tok->decode(ref["ids"].get<Ids>()), ref["decoded"].get<std::string>()) << "text: " << text;
  }
}

}  // namespace
