// llama2.c tokenizer.bin on a tiny vocabulary written by the test, with expectations worked out
// by hand from run.c's algorithm: dummy-prefix " " for non-empty text, one token per UTF-8
// sequence (else its bytes + 3), then merging the best-scoring adjacent pair, leftmost on ties.
#include <gtest/gtest.h>

#include <cstdio>
#include <cstring>
#include <fstream>

#include "latmix/error.h"
#include "latmix/tokenizer.h"
#include "test_paths.h"

namespace {

using Ids = std::vector<int32_t>;

struct Entry {
  std::string piece;
  float score;
};

// 0 <unk>, 1 BOS, 2 EOS, 3..258 <0xNN>, then:
constexpr int32_t kSpace = 259, kA = 260, kB = 261, kC = 262, kSpaceA = 263, kAb = 264, kSpaceAb = 265, kSpaceC = 266,
                  kCc = 267;

std::vector<Entry> tiny_vocab() {
  std::vector<Entry> v = {{"<unk>", 0}, {"\n<s>\n", 0}, {"\n</s>\n", 0}};
  for (int b = 0; b < 256; ++b) {
    char buf[8];
    std::snprintf(buf, sizeof buf, "<0x%02X>", b);
    v.push_back({buf, 0});
  }
  for (const Entry& e : std::vector<Entry>{{" ", -1e9f},
                                           {"a", -10},
                                           {"b", -11},
                                           {"c", -12},
                                           {" a", -1},
                                           {"ab", -2},
                                           {" ab", -0.5f},
                                           {" c", -3},
                                           {"cc", -3}}) {
    v.push_back(e);
  }
  return v;
}

std::string serialize(const std::vector<Entry>& vocab) {
  std::string out(4, '\0');
  const uint32_t max_len = 8;
  std::memcpy(out.data(), &max_len, 4);
  for (const Entry& e : vocab) {
    char header[8];
    const auto len = static_cast<int32_t>(e.piece.size());
    std::memcpy(header, &e.score, 4);
    std::memcpy(header + 4, &len, 4);
    out.append(header, 8);
    out += e.piece;
  }
  return out;
}

std::string write_bin(const std::string& bytes) {
  std::string path = latmix::test::temp_dir("tok-l2c") + "/tokenizer.bin";
  std::ofstream(path, std::ios::binary) << bytes;
  return path;
}

class Llama2cTiny : public ::testing::Test {
 protected:
  void SetUp() override {
    path = write_bin(serialize(tiny_vocab()));
    tok = latmix::load_tokenizer(path);
  }
  std::string path;
  std::unique_ptr<latmix::Tokenizer> tok;
};

TEST_F(Llama2cTiny, Metadata) {
  EXPECT_EQ(tok->kind(), "llama2.c tokenizer.bin");
  EXPECT_EQ(tok->vocab_size(), 268);  // counted up to the end of the file
  EXPECT_EQ(tok->bos_id(), 1);
  EXPECT_EQ(tok->eos_id(), 2);
  EXPECT_TRUE(tok->add_bos_by_default());
  EXPECT_EQ(tok->token_text(kSpaceAb), " ab");
  EXPECT_EQ(tok->token_id(" ab"), kSpaceAb);
}

TEST_F(Llama2cTiny, BestScoreFirst) {
  // " "+a (-1) beats a+b (-2); then " a"+b gives " ab" (-0.5).
  EXPECT_EQ(tok->encode("ab"), (Ids{kSpaceAb}));
  // No dummy prefix for empty text.
  EXPECT_EQ(tok->encode(""), Ids{});
  EXPECT_EQ(tok->encode("b"), (Ids{kSpace, kB}));
}

TEST_F(Llama2cTiny, LeftmostPairOnTies) {
  // " c" and "cc" both score -3: the leftmost pair (" ", c) merges first.
  EXPECT_EQ(tok->encode("cc"), (Ids{kSpaceC, kC}));
}

TEST_F(Llama2cTiny, ByteFallbackPlusThree) {
  // U+00E9 is not a piece: its bytes C3 A9 become ids 0xC3 + 3 and 0xA9 + 3.
  EXPECT_EQ(tok->encode("\xC3\xA9"), (Ids{kSpace, 0xC3 + 3, 0xA9 + 3}));
  EXPECT_EQ(tok->encode("a\n"), (Ids{kSpaceA, '\n' + 3}));
}

TEST_F(Llama2cTiny, DecodeLikeRunC) {
  // The leading space goes at the start and after BOS, and stays elsewhere.
  EXPECT_EQ(tok->decode({kSpaceAb, kSpaceA}), "ab a");
  EXPECT_EQ(tok->decode({1, kSpaceAb}), "\n<s>\nab");
  EXPECT_EQ(tok->decode({kSpace, 0xC3 + 3, 0xA9 + 3}), "\xC3\xA9");
  EXPECT_EQ(tok->decode(tok->encode("ab cc a")), "ab cc a");
  EXPECT_THROW(tok->decode({268}), latmix::Error);
}

TEST_F(Llama2cTiny, ExplicitVocabSize) {
  const auto first = latmix::load_llama2c_tokenizer(path, 262);
  EXPECT_EQ(first->vocab_size(), 262);
  // Without the " a" / " ab" pieces nothing merges.
  EXPECT_EQ(first->encode("ab"), (Ids{kSpace, kA, kB}));
}

TEST_F(Llama2cTiny, TruncatedFileNamesFileAndOffset) {
  const std::string bytes = serialize(tiny_vocab());
  const std::string cut = write_bin(bytes.substr(0, bytes.size() - 2));  // inside the last piece
  try {
    latmix::load_tokenizer(cut);
    ADD_FAILURE() << "no error";
  } catch (const latmix::Error& e) {
    const std::string message = e.what();
    EXPECT_NE(message.find(cut), std::string::npos) << message;
    EXPECT_NE(message.find("truncated at offset " + std::to_string(bytes.size() - 2)), std::string::npos) << message;
    EXPECT_NE(message.find("token 267"), std::string::npos) << message;
  }
  // A vocab size beyond the entries the file holds.
  try {
    latmix::load_llama2c_tokenizer(path, 300);
    ADD_FAILURE() << "no error";
  } catch (const latmix::Error& e) {
    const std::string message = e.what();
    EXPECT_NE(message.find("truncated at offset " + std::to_string(bytes.size())), std::string::npos) << message;
    EXPECT_NE(message.find("token 268"), std::string::npos) << message;
  }
  EXPECT_THROW(latmix::load_tokenizer(write_bin("\x01\x02")), latmix::Error);
  EXPECT_THROW(latmix::load_llama2c_tokenizer(path, 0), latmix::Error);
}

}  // namespace
