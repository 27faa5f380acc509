// SentencePiece tokenizer.model inside a LibTorch process (issue: `latmix export --tokenizer
// tok512.model` stopped with protobuf's "This program requires version ... compiled against
// 3.14.0"). The core tests of the tokenizer run without LibTorch and never saw the clash; these
// load the model and the tokenizer together, as the CLI does.
#include <gtest/gtest.h>

#include <fstream>
#include <sstream>

#include <nlohmann/json.hpp>

#include "latmix/eval.h"
#include "latmix/model.h"
#include "latmix/model_files.h"
#include "latmix/tokenizer.h"
#include "test_paths.h"

namespace {

std::string slurp(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  std::ostringstream buffer;
  buffer << in.rdbuf();
  return buffer.str();
}

}  // namespace

TEST(SentencePieceInEngine, Tok512ModelEqualsTok512BinAndTheReference) {
  LATMIX_REQUIRE_DATA("models/stories260K/tok512.model");
  const std::string dir = latmix::test::data_path("models/stories260K/");
  const latmix::Model model = latmix::load_model(dir + "stories260K.bin");
  const auto spm = latmix::load_model_tokenizer(dir + "stories260K.bin", dir + "tok512.model", 512);
  const auto bin = latmix::load_model_tokenizer(dir + "stories260K.bin", dir + "tok512.bin", 512);
  EXPECT_EQ(spm->kind(), "SentencePiece (tokenizer.model)");
  EXPECT_EQ(spm->vocab_size(), 512);
  // The reference: run.c's greedy generation (reference_greedy.json) and its text, whose canonical
  // tokenization it is.
  const nlohmann::json ref = nlohmann::json::parse(slurp(dir + "reference_greedy.json"));
  const auto generated = ref["generated_token_ids"].get<std::vector<int32_t>>();
  const auto text = ref["generated_text"].get<std::string>();
  EXPECT_EQ(spm->encode(text), generated);
  EXPECT_EQ(spm->decode(generated), text);
  EXPECT_EQ(spm->encode(text), bin->encode(text));
  for (const std::string& s : {std::string("Once upon a time, there was a little girl named Lily."),
                               std::string("The sun was shining.\nTom and Sue went to the park to play."),
                               std::string("caf\xc3\xa9 \xe2\x80\x93 3 digits 123")}) {
    EXPECT_EQ(spm->encode(s), bin->encode(s)) << s;
  }
  // Both tokenizers give the model the same ids, hence the same perplexity.
  latmix::PerplexityOptions po;
  po.seqlen = 64;
  const std::vector<int32_t> ids = spm->encode(text + " " + text + " " + text);
  ASSERT_GE(ids.size(), 128u);
  EXPECT_EQ(latmix::evaluate_perplexity(model, ids, po).perplexity,
            latmix::evaluate_perplexity(model, bin->encode(text + " " + text + " " + text), po).perplexity);
}
