// SentencePiece-style BPE in tokenizer.json (Llama 2 / Mistral exports), on hand-made fixtures.
// Both fixtures share one vocabulary:
//   0 <unk>, 1 <s>, 2 </s>, 3..258 <0x00>..<0xFF>, 259 ▁, 260 h, 261 e, 262 l, 263 o, 264 w,
//   265 r, 266 d, then the results of the merges, in rank order:
//   0 "▁ h" 267   1 "l l" 268   2 "▁h e" 269   3 "ll o" 270   4 "▁he llo" 271 (▁hello)
//   5 "▁ w" 272   6 "o r" 273   7 "▁w or" 274  8 "l d" 275    9 "▁wor ld" 276 (▁world)
// sentencepiece_style_bpe: the "legacy" export: normalizer Prepend("▁") + Replace(" ", "▁"), no
//   pre-tokenizer, byte_fallback, decoder Replace + ByteFallback + Fuse + Strip(" ", 1, 0), and a
//   tokenizer_config.json (add_bos_token, bos "<s>" as an object, eos "</s>").
// metaspace_bpe: no normalizer, Metaspace(prepend_scheme "first", split true), decoder
//   ByteFallback + Metaspace, no post_processor, no tokenizer_config.json.
// Every expectation is derived by hand from those rules.
#include <gtest/gtest.h>

#include "latmix/error.h"
#include "latmix/tokenizer.h"
#include "test_paths.h"

namespace {

using Ids = std::vector<int32_t>;

constexpr int32_t kByte0 = 3;  // <0x00>
constexpr int32_t kSpace = 259, kH = 260, kE = 261, kW = 264;
constexpr int32_t kLlo = 270, kHello = 271, kOr = 273, kLd = 275, kWorld = 276;

std::unique_ptr<latmix::Tokenizer> load_fixture(const std::string& name) {
  return latmix::load_tokenizer(latmix::test::fixtures_path("tokenizer/" + name));
}

TEST(SentencePieceStyleBpe, LoadsFromFolderWithConfig) {
  const auto tok = load_fixture("sentencepiece_style_bpe");
  EXPECT_EQ(tok->kind(), "SentencePiece-style BPE (tokenizer.json)");
  EXPECT_EQ(tok->vocab_size(), 277);
  EXPECT_EQ(tok->bos_id(), 1);
  EXPECT_EQ(tok->eos_id(), 2);
  EXPECT_TRUE(tok->add_bos_by_default());
}

TEST(SentencePieceStyleBpe, NormalizerAddsTheDummyPrefixAndMetaspaces) {
  const auto tok = load_fixture("sentencepiece_style_bpe");
  // "▁hello▁world" is one word (no pre-tokenizer); merges build ▁hello and ▁world.
  EXPECT_EQ(tok->encode("hello world"), (Ids{kHello, kWorld}));
  EXPECT_EQ(tok->encode(" "), (Ids{kSpace, kSpace}));
  EXPECT_EQ(tok->encode(""), Ids{});
  EXPECT_EQ(tok->encode_with_bos("hello"), (Ids{1, kHello}));
}

TEST(SentencePieceStyleBpe, ByteFallbackForCharactersOutsideTheVocabulary) {
  const auto tok = load_fixture("sentencepiece_style_bpe");
  // "\t" and "!" are not pieces: their bytes are; "world" without ▁ stops at w + or + ld.
  EXPECT_EQ(tok->encode("hello\tworld!"), (Ids{kHello, kByte0 + '\t', kW, kOr, kLd, kByte0 + '!'}));
  // U+00E9 = C3 A9.
  EXPECT_EQ(tok->encode("\xC3\xA9"), (Ids{kSpace, kByte0 + 0xC3, kByte0 + 0xA9}));
}

TEST(SentencePieceStyleBpe, SpecialTokensInTextAndLegacyPrefixAfterThem) {
  const auto tok = load_fixture("sentencepiece_style_bpe");
  // The normalizer runs on each piece between added tokens, so "hello" after <s> also gets "▁"
  // (transformers' legacy Llama behaviour).
  EXPECT_EQ(tok->encode("<s>hello</s>"), (Ids{1, kHello, 2}));
}

TEST(SentencePieceStyleBpe, DecoderChain) {
  const auto tok = load_fixture("sentencepiece_style_bpe");
  EXPECT_EQ(tok->decode({kHello, kWorld}), "hello world");  // Strip drops the leading space
  EXPECT_EQ(tok->decode({kHello, kByte0 + '\t', kW, kOr, kLd, kByte0 + '!'}), "hello\tworld!");
  EXPECT_EQ(tok->decode({kSpace, kByte0 + 0xC3, kByte0 + 0xA9}), "\xC3\xA9");
  // Strip acts on the fused text, which starts with "<s>" here: the space stays.
  EXPECT_EQ(tok->decode({1, kHello}), "<s> hello");
  EXPECT_EQ(tok->token_text(kHello), "\xE2\x96\x81hello");
}

TEST(SentencePieceStyleBpe, RoundTrips) {
  const auto tok = load_fixture("sentencepiece_style_bpe");
  for (const std::string text : {"hello world", "world hello  hello", "\xE6\x97\xA5\xE6\x9C\xAC \xF0\x9F\x98\x80",
                                 "tab\there\nnewline", "1234567"}) {
    EXPECT_EQ(tok->decode(tok->encode(text)), text) << text;
  }
}

TEST(MetaspaceBpe, PrependOnlyAtTheStartAndSplitBeforeEachMetaspace) {
  const auto tok = load_fixture("metaspace_bpe");
  EXPECT_EQ(tok->kind(), "SentencePiece-style BPE (tokenizer.json)");
  EXPECT_FALSE(tok->add_bos_by_default());  // no post_processor, no tokenizer_config.json
  EXPECT_EQ(tok->encode("hello world"), (Ids{kHello, kWorld}));
  // Split MergedWithNext: "▁hello", "▁", "▁world".
  EXPECT_EQ(tok->encode("hello  world"), (Ids{kHello, kSpace, kWorld}));
  // prepend_scheme "first": the text after <s> does not start the input, so no "▁".
  EXPECT_EQ(tok->encode("<s>hello world"), (Ids{1, kH, kE, kLlo, kWorld}));
}

TEST(MetaspaceBpe, DecoderDropsMetaspacesOfTheFirstTokenOnly) {
  const auto tok = load_fixture("metaspace_bpe");
  EXPECT_EQ(tok->decode({kHello, kSpace, kWorld}), "hello  world");
  EXPECT_EQ(tok->decode({1, kH, kE, kLlo, kWorld}), "<s>hello world");
  EXPECT_EQ(tok->decode({kWorld, kHello}), "world hello");
}

}  // namespace
