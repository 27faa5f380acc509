// Strict parsing: every malformed or unsupported tokenizer file is a latmix::Error that names the
// file and the problem.
#include <gtest/gtest.h>

#include <filesystem>
#include <fstream>

#include <nlohmann/json.hpp>

#include "latmix/error.h"
#include "latmix/tokenizer.h"
#include "test_paths.h"

namespace {

using nlohmann::json;

std::string write_file(const std::string& name, const std::string& content) {
  std::string path = latmix::test::temp_dir("tok-err") + "/" + name;
  std::ofstream(path, std::ios::binary) << content;
  return path;
}

// A valid minimal byte-free BPE: vocab a, b, ab; one merge.
json minimal_tokenizer() {
  return json{
      {"version", "1.0"},
      {"added_tokens", json::array()},
      {"normalizer", nullptr},
      {"pre_tokenizer", nullptr},
      {"post_processor", nullptr},
      {"decoder", nullptr},
      {"model", {{"type", "BPE"}, {"vocab", {{"a", 0}, {"b", 1}, {"ab", 2}}}, {"merges", json::array({"a b"})}}}};
}

// Loads `content` written as tokenizer.json and expects an Error mentioning the file and every
// one of `parts`.
void expect_text_error(const std::string& content, const std::vector<std::string>& parts) {
  const std::string path = write_file("tokenizer.json", content);
  try {
    latmix::load_tokenizer(path);
    ADD_FAILURE() << "no error for " << content.substr(0, 200);
  } catch (const latmix::Error& e) {
    const std::string message = e.what();
    EXPECT_NE(message.find(path), std::string::npos) << message;
    for (const std::string& part : parts) EXPECT_NE(message.find(part), std::string::npos) << message;
  }
}

void expect_load_error(const json& j, const std::vector<std::string>& parts) {
  expect_text_error(j.dump(), parts);
}

TEST(TokenizerErrors, MinimalFileLoads) {
  const auto tok = latmix::load_tokenizer(write_file("tokenizer.json", minimal_tokenizer().dump()));
  EXPECT_EQ(tok->encode("ab"), (std::vector<int32_t>{2}));
  EXPECT_EQ(tok->kind(), "BPE (tokenizer.json)");
  // No decoder: Hugging Face joins the tokens with spaces.
  EXPECT_EQ(tok->decode({2, 0}), "ab a");
}

TEST(TokenizerErrors, BadJson) {
  expect_text_error("{\"model\": {", {"not valid JSON"});
  expect_text_error("[1, 2]", {"not a JSON object"});
}

TEST(TokenizerErrors, MissingModel) {
  json j = minimal_tokenizer();
  j.erase("model");
  expect_load_error(j, {"missing \"model\""});
}

TEST(TokenizerErrors, UnsupportedModelTypes) {
  for (const char* type : {"WordPiece", "Unigram", "WordLevel"}) {
    json j = minimal_tokenizer();
    j["model"]["type"] = type;
    expect_load_error(j, {"unsupported model type", type});
  }
}

TEST(TokenizerErrors, UnknownPipelineComponents) {
  json j = minimal_tokenizer();
  j["pre_tokenizer"] = {{"type", "BertPreTokenizer"}};
  expect_load_error(j, {"unsupported pre_tokenizer type", "BertPreTokenizer"});
  j = minimal_tokenizer();
  j["pre_tokenizer"] = {{"type", "Sequence"}, {"pretokenizers", {{{"type", "Punctuation"}}}}};
  expect_load_error(j, {"unsupported pre_tokenizer type", "Punctuation"});
  j = minimal_tokenizer();
  j["normalizer"] = {{"type", "BertNormalizer"}};
  expect_load_error(j, {"unsupported normalizer type", "BertNormalizer"});
  j = minimal_tokenizer();
  j["decoder"] = {{"type", "WordPiece"}};
  expect_load_error(j, {"unsupported decoder type", "WordPiece"});
  j = minimal_tokenizer();
  j["post_processor"] = {{"type", "Mystery"}};
  expect_load_error(j, {"unsupported post_processor type", "Mystery"});
}

TEST(TokenizerErrors, MalformedComponents) {
  json j = minimal_tokenizer();
  j["pre_tokenizer"] = {{"type", "Split"}, {"pattern", {{"Regex", "(unclosed"}}}, {"behavior", "Isolated"}};
  expect_load_error(j, {"cannot compile regex", "(unclosed"});
  j["pre_tokenizer"] = {{"type", "Split"}, {"pattern", {{"Regex", "a"}}}, {"behavior", "Sideways"}};
  expect_load_error(j, {"unknown behavior", "Sideways"});
  j["pre_tokenizer"] = {{"type", "Split"}, {"pattern", "a"}, {"behavior", "Isolated"}};
  expect_load_error(j, {"malformed \"pattern\""});
  j = minimal_tokenizer();
  j["model"]["vocab"]["a"] = "zero";
  expect_load_error(j, {"model.vocab", "not an integer id"});
  j = minimal_tokenizer();
  j["model"]["continuing_subword_prefix"] = "##";
  expect_load_error(j, {"continuing_subword_prefix", "not supported"});
  j = minimal_tokenizer();
  j["added_tokens"] = json::array({{{"content", "<x>"}}});
  expect_load_error(j, {"malformed added_tokens entry"});
}

TEST(TokenizerErrors, MergesReferringToUnknownTokens) {
  json j = minimal_tokenizer();
  j["model"]["merges"] = json::array({"a b", "a zz"});
  expect_load_error(j, {"model.merges[1]", "not in model.vocab", "\"zz\""});
  j["model"]["merges"] = json::array({"b a"});  // "ba" is not in the vocabulary
  expect_load_error(j, {"model.merges[0]", "\"ba\""});
  j["model"]["merges"] = json::array({"ab"});
  expect_load_error(j, {"model.merges[0]", "two tokens separated by one space"});
  j["model"]["merges"] = json::array({json::array({"a"})});
  expect_load_error(j, {"model.merges[0]", "malformed"});
}

// Issue 20 item 9: one slot is allocated per id up to the largest, so ids are bounded by the number
// of tokens (+ 65536 for reserved gaps) and by int32; before, a 60-byte file with id 1e8 took
// 3.26 GB and ids >= 2^32 were silently truncated.
TEST(TokenizerErrors, TokenIdsBoundedByTheVocabulary) {
  for (const json& id :
       {json(100000000), json(2147483647), json(uint64_t{1} << 32), json(uint64_t{1} << 63), json(-1)}) {
    json j = minimal_tokenizer();
    j["model"]["vocab"]["ab"] = id;
    expect_load_error(j, {"model.vocab[\"ab\"]", "token id"});
  }
  json j = minimal_tokenizer();
  j["model"]["vocab"]["ab"] = 65538;  // 3 tokens + 65536: the largest id accepted
  EXPECT_EQ(latmix::load_tokenizer(write_file("tokenizer.json", j.dump()))->vocab_size(), 65539);
  j["model"]["vocab"]["ab"] = 65539;
  expect_load_error(j, {"far beyond the number of tokens", "below 65539", "found 65539"});
  j = minimal_tokenizer();
  j["added_tokens"] = json::array({{{"id", uint64_t{1} << 32}, {"content", "<x>"}}});
  expect_load_error(j, {"added_tokens[0]", "token id"});
  j["added_tokens"] = json::array({{{"id", 100000000}, {"content", "<x>"}}});
  expect_load_error(j, {"added_tokens[0]", "far beyond the number of tokens"});
}

TEST(TokenizerErrors, UnkTokenMustExist) {
  json j = minimal_tokenizer();
  j["model"]["unk_token"] = "<unk>";
  expect_load_error(j, {"unk_token", "<unk>"});
}

TEST(TokenizerErrors, TokenizerConfigNamingUnknownToken) {
  const std::string dir = latmix::test::temp_dir("tok-cfg");
  std::ofstream(dir + "/tokenizer.json") << minimal_tokenizer().dump();
  std::ofstream(dir + "/tokenizer_config.json") << R"({"bos_token": "<s>"})";
  try {
    latmix::load_tokenizer(dir);
    ADD_FAILURE() << "no error";
  } catch (const latmix::Error& e) {
    EXPECT_NE(std::string(e.what()).find("tokenizer_config.json"), std::string::npos) << e.what();
    EXPECT_NE(std::string(e.what()).find("bos_token"), std::string::npos) << e.what();
  }
}

TEST(TokenizerErrors, ConfigJsonFillsBosAndEos) {
  const std::string dir = latmix::test::temp_dir("tok-cfg");
  std::ofstream(dir + "/tokenizer.json") << minimal_tokenizer().dump();
  std::ofstream(dir + "/config.json") << R"({"bos_token_id": 0, "eos_token_id": [1, 2]})";
  const auto tok = latmix::load_tokenizer(dir);
  EXPECT_EQ(tok->bos_id(), 0);
  EXPECT_EQ(tok->eos_id(), 1);
  EXPECT_FALSE(tok->add_bos_by_default());
}

TEST(TokenizerErrors, FoldersAndPaths) {
  const std::string empty = latmix::test::temp_dir("tok-empty");
  try {
    latmix::load_tokenizer(empty);
    ADD_FAILURE() << "no error";
  } catch (const latmix::Error& e) {
    EXPECT_NE(std::string(e.what()).find(empty), std::string::npos) << e.what();
    EXPECT_NE(std::string(e.what()).find("no tokenizer"), std::string::npos) << e.what();
  }
  EXPECT_THROW(latmix::load_tokenizer(empty + "/missing.json"), latmix::Error);
  EXPECT_THROW(latmix::load_tokenizer(write_file("vocab.txt", "a\nb\n")), latmix::Error);
}

TEST(TokenizerErrors, BadSentencePieceModel) {
  const std::string path = write_file("tokenizer.model", "this is not a protobuf");
  try {
    latmix::load_tokenizer(path);
    ADD_FAILURE() << "no error";
  } catch (const latmix::Error& e) {
    EXPECT_NE(std::string(e.what()).find(path), std::string::npos) << e.what();
  }
}

TEST(TokenizerErrors, BosRequestedWithoutBos) {
  const auto tok = latmix::load_tokenizer(write_file("tokenizer.json", minimal_tokenizer().dump()));
  EXPECT_FALSE(tok->bos_id().has_value());
  EXPECT_EQ(tok->encode_with_bos("a"), (std::vector<int32_t>{0}));
  EXPECT_THROW(tok->encode_with_bos("a", true), latmix::Error);
}

}  // namespace
