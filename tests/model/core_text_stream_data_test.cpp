// Text files read in pieces (latmix/text_stream.h) give the ids of the whole file with the real
// tokenizers of the shared data: SentencePiece (.model), llama2.c (.bin) and the gutenberg BPE,
// on WikiText-2's test text (blank lines, " @-@ ", headings) with pieces of 4 KiB and 1 MiB.
#include <gtest/gtest.h>

#include "latmix/files.h"
#include "latmix/text_stream.h"
#include "latmix/tokenizer.h"
#include "test_paths.h"

namespace {

void expect_streams_exactly(const latmix::Tokenizer& tok, const std::string& text_path) {
  const std::vector<int32_t> whole = tok.encode(latmix::read_text_file(text_path));
  for (size_t piece : {size_t{4096}, size_t{1} << 20}) {
    latmix::TextTokenStream s(tok, text_path, piece);
    std::vector<int32_t> ids;
    while (s.next(ids)) {
    }
    EXPECT_TRUE(s.streaming()) << tok.kind();
    EXPECT_EQ(ids, whole) << tok.kind() << ", pieces of " << piece << " bytes";
  }
}

}  // namespace

TEST(TextStreamData, WikiText2InPiecesWithEveryTokenizerKind) {
  LATMIX_REQUIRE_DATA("eval/wikitext-2/wiki.test.raw");
  LATMIX_REQUIRE_DATA("models/llama2_tokenizer_32k/tokenizer.model");
  LATMIX_REQUIRE_DATA("models/stories260K/tok512.bin");
  const std::string wiki = latmix::test::data_path("eval/wikitext-2/wiki.test.raw");
  expect_streams_exactly(*latmix::load_tokenizer(latmix::test::data_path("models/llama2_tokenizer_32k/tokenizer.model")),
                         wiki);
  expect_streams_exactly(
      *latmix::load_llama2c_tokenizer(latmix::test::data_path("models/llama2_tokenizer_32k/tokenizer.bin"), 32000), wiki);
  expect_streams_exactly(*latmix::load_llama2c_tokenizer(latmix::test::data_path("models/stories260K/tok512.bin"), 512),
                         wiki);
  expect_streams_exactly(
      *latmix::load_tokenizer(latmix::test::source_path("resources/models/gutenberg-llama-6M/tokenizer.json")), wiki);
}
