// llama.cpp's tokenizer test vectors (models/llamacpp_vocab: 46 texts per vocabulary, expected
// ids made by llama.cpp's convert script with the Hugging Face tokenizer, add_special_tokens =
// False).
//
// gpt-2: the GGUF holds GPT-2's vocabulary and merges; we write them as a GPT-2-style
//   tokenizer.json (plain ByteLevel pre-tokenizer with the GPT-2 regex, ByteLevel decoder) and
//   load that through the public API.
// llama-spm: the GGUF holds Llama 2's 32000 pieces. We check that they are the pieces of
//   models/llama2_tokenizer_32k/tokenizer.model and encode with that model (libsentencepiece).
//   Convention: llama.cpp puts a space in front of the text and escapes spaces as "▁" before its
//   own SPM merge loop; sentencepiece's add_dummy_prefix does the same ("▁" in front, spaces as
//   "▁", nothing added to empty text), so plain encode() must give .out exactly, including the
//   leading 29871 ("▁") for texts that start with a space, tab or newline.
#include <gtest/gtest.h>

#include <fstream>

#include <nlohmann/json.hpp>

#include "core_tokenizer_gguf.h"
#include "latmix/tokenizer.h"
#include "test_paths.h"

namespace {

using latmix::test::data_path;

const std::string kVocabDir = "models/llamacpp_vocab/";

// GPT-2's tokenizer.json, rebuilt from the GGUF vocabulary.
std::string gpt2_tokenizer_json(const std::map<std::string, latmix::test::GgufValue>& kv) {
  const auto& tokens = kv.at("tokenizer.ggml.tokens").texts;
  const auto& types = kv.at("tokenizer.ggml.token_type").numbers;
  nlohmann::json vocab = nlohmann::json::object();
  nlohmann::json added = nlohmann::json::array();
  for (size_t id = 0; id < tokens.size(); ++id) {
    vocab[tokens[id]] = id;
    const int type = static_cast<int>(types.at(id));
    if (type == latmix::test::kGgufControl || type == latmix::test::kGgufUserDefined) {
      added.push_back({{"id", id},
                       {"content", tokens[id]},
                       {"special", type == latmix::test::kGgufControl},
                       {"normalized", false},
                       {"lstrip", false},
                       {"rstrip", false},
                       {"single_word", false}});
    }
  }
  const nlohmann::json byte_level = {
      {"type", "ByteLevel"}, {"add_prefix_space", false}, {"trim_offsets", true}, {"use_regex", true}};
  const nlohmann::json j = {
      {"version", "1.0"},
      {"added_tokens", added},
      {"normalizer", nullptr},
      {"pre_tokenizer", byte_level},
      {"post_processor", byte_level},
      {"decoder", byte_level},
      {"model", {{"type", "BPE"}, {"vocab", vocab}, {"merges", kv.at("tokenizer.ggml.merges").texts}}}};
  std::string path = latmix::test::temp_dir("tok-gguf") + "/tokenizer.json";
  std::ofstream(path) << j.dump();
  return path;
}

std::string ids_text(const std::vector<int32_t>& ids) {
  std::string s;
  for (const int32_t id : ids) s += " " + std::to_string(id);
  return s;
}

TEST(LlamaCppVocab, Gpt2ByteLevelBpe) {
  LATMIX_REQUIRE_DATA(kVocabDir + "ggml-vocab-gpt-2.gguf");
  const std::string gguf = data_path(kVocabDir + "ggml-vocab-gpt-2.gguf");
  const auto kv = latmix::test::read_gguf_metadata(gguf);
  ASSERT_EQ(kv.at("tokenizer.ggml.model").text, "gpt2");
  ASSERT_EQ(kv.at("tokenizer.ggml.pre").text, "gpt-2");  // the GPT-2 split regex
  const auto tok = latmix::load_tokenizer(gpt2_tokenizer_json(kv));
  EXPECT_EQ(tok->vocab_size(), 50257);
  EXPECT_EQ(tok->token_id("<|endoftext|>"), 50256);

  const auto cases = latmix::test::read_vocab_test_cases(gguf);
  ASSERT_EQ(cases.texts.size(), 46u);
  ASSERT_EQ(cases.ids.size(), 46u);
  for (size_t i = 0; i < cases.texts.size(); ++i) {
    const auto ids = tok->encode(cases.texts[i]);
    EXPECT_EQ(ids, cases.ids[i]) << "case " << i << ": \"" << cases.texts[i] << "\"\n got" << ids_text(ids);
    EXPECT_EQ(tok->decode(ids), cases.texts[i]) << "case " << i;
  }
}

TEST(LlamaCppVocab, LlamaSpmMatchesLlama2TokenizerModel) {
  LATMIX_REQUIRE_DATA(kVocabDir + "ggml-vocab-llama-spm.gguf");
  LATMIX_REQUIRE_DATA("models/llama2_tokenizer_32k/tokenizer.model");
  const std::string gguf = data_path(kVocabDir + "ggml-vocab-llama-spm.gguf");
  const auto kv = latmix::test::read_gguf_metadata(gguf);
  ASSERT_EQ(kv.at("tokenizer.ggml.model").text, "llama");
  const auto& pieces = kv.at("tokenizer.ggml.tokens").texts;
  const auto tok = latmix::load_tokenizer(data_path("models/llama2_tokenizer_32k/tokenizer.model"));
  ASSERT_EQ(tok->kind(), "SentencePiece (tokenizer.model)");

  // Same vocabulary, piece by piece, and the same special ids.
  ASSERT_EQ(static_cast<size_t>(tok->vocab_size()), pieces.size());
  size_t differing = 0;
  for (size_t id = 0; id < pieces.size(); ++id) {
    if (tok->token_text(static_cast<int32_t>(id)) != pieces[id]) ++differing;
  }
  ASSERT_EQ(differing, 0u);
  EXPECT_EQ(tok->bos_id(), static_cast<int32_t>(kv.at("tokenizer.ggml.bos_token_id").number));
  EXPECT_EQ(tok->eos_id(), static_cast<int32_t>(kv.at("tokenizer.ggml.eos_token_id").number));
  EXPECT_EQ(tok->add_bos_by_default(), kv.at("tokenizer.ggml.add_bos_token").number != 0);

  const auto cases = latmix::test::read_vocab_test_cases(gguf);
  ASSERT_EQ(cases.texts.size(), 46u);
  ASSERT_EQ(cases.ids.size(), 46u);
  for (size_t i = 0; i < cases.texts.size(); ++i) {
    const auto ids = tok->encode(cases.texts[i]);
    EXPECT_EQ(ids, cases.ids[i]) << "case " << i << ": \"" << cases.texts[i] << "\"\n got" << ids_text(ids);
    // decode drops the dummy-prefix space, so it gives the text back.
    EXPECT_EQ(tok->decode(ids), cases.texts[i]) << "case " << i;
  }
}

}  // namespace
