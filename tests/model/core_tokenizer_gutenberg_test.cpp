// The gutenberg models' tokenizer.json (Llama-3 shape byte-level BPE, 8192 ids) against the ids
// transformers produced for golden_logits.json, plus round trips and encode speed on real text.
#include <gtest/gtest.h>

#include <chrono>
#include <fstream>
#include <sstream>

#include <nlohmann/json.hpp>

#include "latmix/tokenizer.h"
#include "test_paths.h"

namespace {

using latmix::test::data_path;

std::string slurp(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  std::ostringstream buffer;
  buffer << in.rdbuf();
  return buffer.str();
}

class GutenbergTokenizer : public ::testing::TestWithParam<std::string> {};

TEST_P(GutenbergTokenizer, MatchesTransformersGoldenIds) {
  LATMIX_REQUIRE_DATA("models/" + GetParam());
  const std::string folder = data_path("models/" + GetParam());
  const auto tok = latmix::load_tokenizer(folder);
  EXPECT_EQ(tok->kind(), "byte-level BPE (tokenizer.json)");
  EXPECT_EQ(tok->vocab_size(), 8192);
  EXPECT_EQ(tok->bos_id(), 0);  // tokenizer_config.json: <|begin_of_text|>
  EXPECT_EQ(tok->eos_id(), 1);  // <|end_of_text|>
  // The file's post_processor template has no special token and tokenizer_config.json has no
  // add_bos_token, so Hugging Face adds no BOS by default; the goldens put BOS in explicitly.
  EXPECT_FALSE(tok->add_bos_by_default());

  const auto golden = nlohmann::json::parse(slurp(folder + "/golden_logits.json"));
  ASSERT_EQ(golden["prompts"].size(), 3u);
  for (const auto& prompt : golden["prompts"]) {
    const auto text = prompt["prompt"].get<std::string>();
    const auto expected = prompt["ids"].get<std::vector<int32_t>>();
    EXPECT_EQ(tok->encode_with_bos(text, true), expected) << text;
    EXPECT_EQ(tok->decode(expected), "<|begin_of_text|>" + text);
  }
}

INSTANTIATE_TEST_SUITE_P(Models, GutenbergTokenizer, ::testing::Values("gutenberg-llama-6M", "gutenberg-llama-22M"));

TEST(GutenbergTokenizerText, SpecialTokensAndRoundTrips) {
  LATMIX_REQUIRE_DATA("models/gutenberg-llama-6M");
  LATMIX_REQUIRE_DATA("corpus/gutenberg/pg84_frankenstein.txt");
  const auto tok = latmix::load_tokenizer(data_path("models/gutenberg-llama-6M/tokenizer.json"));
  EXPECT_EQ(tok->encode("a<|end_of_text|>b<|begin_of_text|>").size(), 4u);
  EXPECT_EQ(tok->encode("<|end_of_text|>"), (std::vector<int32_t>{1}));
  const std::string book = slurp(data_path("corpus/gutenberg/pg84_frankenstein.txt"));
  ASSERT_GT(book.size(), 400000u);
  const auto ids = tok->encode(book);
  EXPECT_EQ(tok->decode(ids), book);
  // English prose: a few bytes per token.
  const double bytes_per_token = static_cast<double>(book.size()) / static_cast<double>(ids.size());
  EXPECT_GT(bytes_per_token, 3.0);
  EXPECT_LT(bytes_per_token, 6.0);
}

// Encode speed on WikiText-2's test split (1.29 MB). Measured on the development machine
// (2 cores, Release): about 0.1 s. The bound is loose so that sanitizer / debug builds pass too.
TEST(GutenbergTokenizerText, EncodesWikiTextQuickly) {
  LATMIX_REQUIRE_DATA("models/gutenberg-llama-6M");
  LATMIX_REQUIRE_DATA("eval/wikitext-2/wiki.test.raw");
  const auto tok = latmix::load_tokenizer(data_path("models/gutenberg-llama-6M"));
  const std::string text = slurp(data_path("eval/wikitext-2/wiki.test.raw"));
  ASSERT_GT(text.size(), 1000000u);
  const auto start = std::chrono::steady_clock::now();
  const auto ids = tok->encode(text);
  const double seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
  std::printf("wiki.test.raw: %zu bytes -> %zu ids in %.3f s (%.1f MB/s)\n", text.size(), ids.size(), seconds,
              static_cast<double>(text.size()) / seconds / 1e6);
  EXPECT_LT(seconds, 30.0);
  EXPECT_EQ(tok->decode(ids), text);
  // A second pass hits the word cache everywhere and gives the same ids.
  EXPECT_EQ(tok->encode(text), ids);
}

}  // namespace
