// Byte-level BPE from tokenizer.json on a hand-made fixture (tests/fixtures/tokenizer/
// byte_level_bpe): 256 byte characters (id = byte value) plus five merges
//   0 "Ġ t" -> Ġt (256)   1 "h e" -> he (257)   2 "Ġt he" -> Ġthe (258)
//   3 "i n" -> in (259)   4 "in g" -> ing (260)
// and "Ġzebra" (261), which no merge produces; added tokens <|endoftext|> (262, special,
// not normalized) and <tag> (263, normalized, lstrip). Llama-3 split regex, NFC normalizer,
// ignore_merges = true. Expected ids below are derived by hand from those rules.
#include <gtest/gtest.h>

#include <fstream>
#include <functional>
#include <thread>

#include <nlohmann/json.hpp>

#include "latmix/error.h"
#include "latmix/tokenizer.h"
#include "test_paths.h"

namespace {

using Ids = std::vector<int32_t>;

std::string fixture() {
  return latmix::test::fixtures_path("tokenizer/byte_level_bpe/tokenizer.json");
}

// A copy of the fixture with `edit` applied, in a temporary folder.
std::string edited_fixture(const std::function<void(nlohmann::json&)>& edit) {
  std::ifstream in(fixture());
  nlohmann::json j = nlohmann::json::parse(in);
  edit(j);
  std::string path = latmix::test::temp_dir("tok-bpe") + "/tokenizer.json";
  std::ofstream(path) << j.dump();
  return path;
}

class ByteLevelBpe : public ::testing::Test {
 protected:
  void SetUp() override { tok = latmix::load_tokenizer(fixture()); }
  std::unique_ptr<latmix::Tokenizer> tok;
};

TEST_F(ByteLevelBpe, Metadata) {
  EXPECT_EQ(tok->kind(), "byte-level BPE (tokenizer.json)");
  EXPECT_EQ(tok->vocab_size(), 264);
  // The post_processor template puts <|endoftext|> before $A: that is the BOS.
  EXPECT_EQ(tok->bos_id(), 262);
  EXPECT_TRUE(tok->add_bos_by_default());
  EXPECT_FALSE(tok->eos_id().has_value());
  EXPECT_EQ(tok->token_text(258), "\xC4\xA0the");  // "Ġthe"
  EXPECT_EQ(tok->token_id("\xC4\xA0the"), 258);
  EXPECT_EQ(tok->token_id("<tag>"), 263);
  EXPECT_FALSE(tok->token_id("nope").has_value());
}

TEST_F(ByteLevelBpe, MergesByRank) {
  EXPECT_EQ(tok->encode("the"), (Ids{'t', 257}));          // h+e, then no "t he" merge
  EXPECT_EQ(tok->encode(" thing"), (Ids{256, 'h', 260}));  // Ġ+t, i+n, in+g
  EXPECT_EQ(tok->encode("the thing"), (Ids{'t', 257, 256, 'h', 260}));
}

TEST_F(ByteLevelBpe, IgnoreMergesTakesWholeWordsFromTheVocabulary) {
  EXPECT_EQ(tok->encode(" zebra"), (Ids{261}));
  EXPECT_EQ(tok->encode(" the"), (Ids{258}));
  const auto plain =
      latmix::load_tokenizer(edited_fixture([](nlohmann::json& j) { j["model"]["ignore_merges"] = false; }));
  EXPECT_EQ(plain->encode(" zebra"), (Ids{' ', 'z', 'e', 'b', 'r', 'a'}));
  EXPECT_EQ(plain->encode(" the"), (Ids{258}));
}

TEST_F(ByteLevelBpe, SplitRegexIsolatesDigitsContractionsAndWhitespace) {
  EXPECT_EQ(tok->encode("1234567"), (Ids{'1', '2', '3', '4', '5', '6', '7'}));
  EXPECT_EQ(tok->encode("I'll"), (Ids{'I', '\'', 'l', 'l'}));
  // Whitespace bytes map to Ġ / Ċ / ĉ characters whose ids are the byte values here.
  EXPECT_EQ(tok->encode("a \t\n b"), (Ids{'a', ' ', '\t', '\n', ' ', 'b'}));
  EXPECT_EQ(tok->encode(""), Ids{});
}

TEST_F(ByteLevelBpe, NfcNormalizerComposes) {
  // "e" + COMBINING ACUTE becomes U+00E9, bytes C3 A9.
  EXPECT_EQ(tok->encode("e\xCC\x81"), (Ids{0xC3, 0xA9}));
  const auto raw = latmix::load_tokenizer(edited_fixture([](nlohmann::json& j) { j["normalizer"] = nullptr; }));
  EXPECT_EQ(raw->encode("e\xCC\x81"), (Ids{'e', 0xCC, 0x81}));
}

TEST_F(ByteLevelBpe, AddedTokensAreSplitOutOfTheText) {
  EXPECT_EQ(tok->encode("x<|endoftext|>y"), (Ids{'x', 262, 'y'}));
  EXPECT_EQ(tok->encode("<|endoftext|>"), (Ids{262}));
  // <tag> has lstrip: it swallows the space before it.
  EXPECT_EQ(tok->encode("a <tag>b"), (Ids{'a', 263, 'b'}));
  EXPECT_EQ(tok->encode("<|endoftext|><|endoftext|>"), (Ids{262, 262}));
  // An incomplete added token is ordinary text.
  EXPECT_EQ(tok->encode("<|endoftext|"), (Ids{'<', '|', 'e', 'n', 'd', 'o', 'f', 't', 'e', 'x', 't', '|'}));
}

TEST_F(ByteLevelBpe, EncodeWithBos) {
  EXPECT_EQ(tok->encode_with_bos("the"), (Ids{262, 't', 257}));
  EXPECT_EQ(tok->encode_with_bos("the", false), (Ids{'t', 257}));
}

TEST_F(ByteLevelBpe, DecodeJoinsBytes) {
  EXPECT_EQ(tok->decode({'t', 257, 256, 'h', 260}), "the thing");
  EXPECT_EQ(tok->decode({262, 258}), "<|endoftext|> the");
  EXPECT_EQ(tok->decode({0xC3, 0xA9}), "\xC3\xA9");
  EXPECT_EQ(tok->decode({}), "");
  EXPECT_THROW(tok->decode({264}), latmix::Error);
  EXPECT_THROW(tok->decode({-1}), latmix::Error);
  EXPECT_THROW(tok->token_text(999), latmix::Error);
}

TEST_F(ByteLevelBpe, RoundTrips) {
  const std::vector<std::string> texts = {
      "Hello, world!",
      "  leading and trailing spaces  ",
      "tabs\tand\nnewlines\r\n\n\n",
      "digits 1234567890 and 3.14159",
      "Unicode: na\xC3\xAFve caf\xC3\xA9 \xE2\x80\x94 \xE6\x97\xA5\xE6\x9C\xAC\xE8\xAA\x9E",
      "emoji \xF0\x9F\x98\x80\xF0\x9F\x91\x8D\xF0\x9F\x8F\xBD and ZWJ \xF0\x9F\x91\xA9\xE2\x80\x8D\xF0\x9F\x92\xBB",
      "contractions: I'll, you've, he's, THEY'RE",
      "<|endoftext|> inside text <|endoftext|>",
      "invalid UTF-8: \xFF\xFE\xC3 end",
      std::string(1000, 'a') + std::string(300, ' ') + "z",
  };
  for (const std::string& text : texts) {
    EXPECT_EQ(tok->decode(tok->encode(text)), text) << text;
  }
}

// encode() is const and shares a word cache: several threads at once must agree with one.
TEST_F(ByteLevelBpe, ConcurrentEncodesAgree) {
  std::vector<std::string> texts;
  for (int i = 0; i < 200; ++i) texts.push_back("the thing " + std::to_string(i * 7919) + " zebra ing in");
  std::vector<Ids> expected;
  for (const auto& t : texts) expected.push_back(tok->encode(t));
  std::vector<int> mismatches(4, 0);
  std::vector<std::thread> threads;
  for (int w = 0; w < 4; ++w) {
    threads.emplace_back([&, w] {
      for (int round = 0; round < 20; ++round) {
        for (size_t i = 0; i < texts.size(); ++i) mismatches[w] += tok->encode(texts[i]) != expected[i];
      }
    });
  }
  for (auto& t : threads) t.join();
  EXPECT_EQ(mismatches, std::vector<int>(4, 0));
}

TEST(ByteLevelBpeGpt2Style, PlainByteLevelWithRegex) {
  const auto tok = latmix::load_tokenizer(edited_fixture([](nlohmann::json& j) {
    j["pre_tokenizer"] = {{"type", "ByteLevel"}, {"add_prefix_space", false}, {"use_regex", true}};
    j["model"]["ignore_merges"] = false;
  }));
  // GPT-2 regex: " ?\p{N}+" keeps the whole number in one piece, "\s+(?!\S)" leaves the last
  // space of a run to the next word.
  EXPECT_EQ(tok->encode("the  thing"), (Ids{'t', 257, ' ', 256, 'h', 260}));
  EXPECT_EQ(tok->encode("I'll 42"), (Ids{'I', '\'', 'l', 'l', ' ', '4', '2'}));
  EXPECT_EQ(tok->decode(tok->encode("the  thing 42!\n")), "the  thing 42!\n");
}

TEST(ByteLevelBpeGpt2Style, AddPrefixSpace) {
  const auto tok = latmix::load_tokenizer(edited_fixture([](nlohmann::json& j) {
    j["pre_tokenizer"] = {{"type", "ByteLevel"}, {"add_prefix_space", true}, {"use_regex", true}};
  }));
  EXPECT_EQ(tok->encode("the"), (Ids{258}));
}

TEST(ByteLevelBpeMerges, StringAndPairFormsAgree) {
  const auto pairs = latmix::load_tokenizer(fixture());
  const auto strings = latmix::load_tokenizer(edited_fixture([](nlohmann::json& j) {
    for (auto& m : j["model"]["merges"]) m = m[0].get<std::string>() + " " + m[1].get<std::string>();
  }));
  for (const char* text : {"the thing", " thing", "ing in the"}) {
    EXPECT_EQ(strings->encode(text), pairs->encode(text)) << text;
  }
}

}  // namespace
