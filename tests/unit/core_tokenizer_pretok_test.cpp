// Split pre-tokenizer behaviours. The vocabulary {a, -, a-, -a, --} with merges "a -", "- a",
// "- -" makes the piece boundaries visible in the ids: a merge happens only inside one piece.
// On "a--a", Hugging Face's behaviours give the pieces (as in its docs' "The-final--countdown";
// all expectations here were checked against tokenizers 0.23.2):
//   Isolated  a | - | - | a        Removed  a | a          Contiguous  a | -- | a
//   MergedWithPrevious  a- | - | a                       MergedWithNext  a | - | -a
#include <gtest/gtest.h>

#include <fstream>

#include <nlohmann/json.hpp>

#include "latmix/tokenizer.h"
#include "test_paths.h"

namespace {

using Ids = std::vector<int32_t>;
using nlohmann::json;

constexpr int32_t kA = 0, kDash = 1, kADash = 2, kDashA = 3, kDashDash = 4;

std::unique_ptr<latmix::Tokenizer> with_pre_tokenizer(const json& pre_tokenizer) {
  const json j = {{"pre_tokenizer", pre_tokenizer},
                  {"model",
                   {{"type", "BPE"},
                    {"vocab", {{"a", kA}, {"-", kDash}, {"a-", kADash}, {"-a", kDashA}, {"--", kDashDash}}},
                    {"merges", json::array({"a -", "- a", "- -"})}}}};
  const std::string path = latmix::test::temp_dir("tok-pre") + "/tokenizer.json";
  std::ofstream(path) << j.dump();
  return latmix::load_tokenizer(path);
}

Ids split_dash(const char* behavior, bool invert = false) {
  return with_pre_tokenizer(
             {{"type", "Split"}, {"pattern", {{"String", "-"}}}, {"behavior", behavior}, {"invert", invert}})
      ->encode("a--a");
}

TEST(SplitPreTokenizer, Behaviours) {
  EXPECT_EQ(with_pre_tokenizer(nullptr)->encode("a--a"), (Ids{kADash, kDashA}));  // one piece
  EXPECT_EQ(split_dash("Isolated"), (Ids{kA, kDash, kDash, kA}));
  EXPECT_EQ(split_dash("Removed"), (Ids{kA, kA}));
  EXPECT_EQ(split_dash("Contiguous"), (Ids{kA, kDashDash, kA}));
  EXPECT_EQ(split_dash("MergedWithPrevious"), (Ids{kADash, kDash, kA}));
  EXPECT_EQ(split_dash("MergedWithNext"), (Ids{kA, kDash, kDashA}));
}

TEST(SplitPreTokenizer, InvertMakesTheGapsTheDelimiters) {
  // Delimiters are now "a", "a": the last one merges into the "-" before it.
  EXPECT_EQ(split_dash("MergedWithPrevious", true), (Ids{kA, kDash, kDashA}));
  EXPECT_EQ(split_dash("Removed", true), (Ids{kDash, kDash}));
  EXPECT_EQ(split_dash("MergedWithNext", true), (Ids{kADash, kDash, kA}));
  EXPECT_EQ(split_dash("Isolated", true), (Ids{kA, kDash, kDash, kA}));
  // Contiguous joins adjacent spans of one kind: the two "-" matches, now gaps, become one.
  EXPECT_EQ(split_dash("Contiguous", true), (Ids{kA, kDashDash, kA}));
}

TEST(SplitPreTokenizer, RegexPatternAndSequence) {
  const auto tok = with_pre_tokenizer(
      {{"type", "Sequence"},
       {"pretokenizers",
        {{{"type", "Split"}, {"pattern", {{"Regex", "-+"}}}, {"behavior", "Isolated"}, {"invert", false}},
         {{"type", "WhitespaceSplit"}}}}});
  EXPECT_EQ(tok->encode("a--a a-a"), (Ids{kA, kDashDash, kA, kA, kDash, kA}));
}

}  // namespace
