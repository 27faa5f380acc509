// The one JSON reader (json.h) and the regular-file guard (files.h), issue 20 items 3, 14 and 21:
// hostile JSON (deep nesting, 1e400, wrong types, huge values) and FIFOs or devices where a file
// is expected all end in a latmix::Error naming the file and the key, never a crash or a hang.
#include <gtest/gtest.h>
#include <sys/stat.h>

#include <fstream>
#include <string>

#include "latmix/config.h"
#include "latmix/error.h"
#include "latmix/files.h"
#include "latmix/json.h"
#include "latmix/tokenizer.h"
#include "test_paths.h"

namespace {

using nlohmann::json;

// The message of the latmix::Error fn throws ("" when it throws none).
template <typename Fn>
std::string error_of(Fn fn) {
  try {
    fn();
  } catch (const latmix::Error& e) {
    return e.what();
  }
  return "";
}

#define EXPECT_CONTAINS(text, part) EXPECT_NE(std::string(text).find(part), std::string::npos) << (text)

std::string nested(size_t levels, const std::string& open = "[", const std::string& close = "]") {
  std::string s;
  s.reserve(levels * (open.size() + close.size()));
  for (size_t i = 0; i < levels; ++i) s += open;
  s += "0";
  for (size_t i = 0; i < levels; ++i) s += close;
  return s;
}

std::string write_file(const std::string& dir, const std::string& name, const std::string& content) {
  const std::string path = dir + "/" + name;
  std::ofstream(path, std::ios::binary) << content;
  return path;
}

TEST(JsonFile, HundredThousandNestedLevelsAreRefusedNamingTheFile) {
  for (const auto& [open, close] : {std::pair<std::string, std::string>{"[", "]"}, {"{\"a\":", "}"}}) {
    const std::string text = nested(100000, open, close);
    const std::string message = error_of([&] { latmix::parse_json_file("/x/deep.json", text); });
    EXPECT_CONTAINS(message, "/x/deep.json");
    EXPECT_CONTAINS(message, "nesting too deep");
    EXPECT_CONTAINS(message, "at most 256 levels");
  }
}

TEST(JsonFile, DepthLimitIsExact) {
  EXPECT_NO_THROW(latmix::parse_json_file("f.json", nested(latmix::kMaxJsonDepth)));
  EXPECT_THROW(latmix::parse_json_file("f.json", nested(latmix::kMaxJsonDepth + 1)), latmix::Error);
  EXPECT_NO_THROW(latmix::parse_ordered_json_file("f.json", nested(latmix::kMaxJsonDepth)));
  EXPECT_THROW(latmix::parse_ordered_json_file("f.json", nested(latmix::kMaxJsonDepth + 1)), latmix::Error);
}

TEST(JsonFile, NumberOverflowNamesFileAndKey) {
  const std::string message =
      error_of([] { latmix::parse_json_file("/m/config.json", R"({"a": {"b": [1, 1e400]}})"); });
  EXPECT_CONTAINS(message, "/m/config.json: key 'a.b[1]'");
  EXPECT_CONTAINS(message, "number overflow parsing '1e400'");
  EXPECT_EQ(message.find("json.exception"), std::string::npos) << message;
  EXPECT_CONTAINS(error_of([] { latmix::parse_json_file("c.json", R"({"rope_theta": -1e999})"); }), "key 'rope_theta'");
}

TEST(JsonFile, SyntaxErrorsAndNulBytes) {
  EXPECT_CONTAINS(error_of([] { latmix::parse_json_file("s.json", "{\"a\": "); }), "s.json: not valid JSON");
  EXPECT_CONTAINS(error_of([] { latmix::parse_json_file("s.json", std::string("{}\0x", 4)); }), "a NUL byte");
}

TEST(JsonObject, TypeErrorsNameFileKeyExpectedAndFound) {
  const json j = json::parse(R"({"n": "seven", "list": [{"bytes": "x"}], "big": 18446744073709551615, "f": 1.5})");
  const latmix::JsonObject o(j, "/e/manifest.json");
  const std::string message = error_of([&] { o.integer("n"); });
  EXPECT_CONTAINS(message, "/e/manifest.json: key 'n' (expected an integer, found \"seven\")");
  EXPECT_EQ(message.find("type must be"), std::string::npos);
  EXPECT_CONTAINS(error_of([&] { o.element("list", 0).integer("bytes"); }), "key 'list[0].bytes'");
  EXPECT_CONTAINS(error_of([&] { o.integer("big"); }), "expected an integer");  // beyond int64
  EXPECT_CONTAINS(error_of([&] { o.integer("f"); }), "found 1.5");
  EXPECT_CONTAINS(error_of([&] { o.integer_in("f", 0, 1); }), "key 'f'");
  EXPECT_CONTAINS(error_of([&] { o.string("missing"); }), "missing key 'missing'");
  EXPECT_CONTAINS(error_of([&] { o.object("n"); }), "key 'n' (expected a JSON object");
  EXPECT_EQ(o.integer_or("absent", 7), 7);
  EXPECT_CONTAINS(error_of([] { latmix::JsonObject(json::array(), "t.json"); }), "t.json: top level");
}

TEST(JsonObject, HugeValuesAreShortenedInMessages) {
  const json j = {{"vocab_size", std::string(1 << 20, 'x')}, {"list", json::array()}};
  const std::string message = error_of([&] { latmix::JsonObject(j, "c.json").integer("vocab_size"); });
  EXPECT_LT(message.size(), 200u) << message.substr(0, 200);
  json many = json::array();
  for (int i = 0; i < 10000; ++i) many.push_back(i);
  EXPECT_EQ(latmix::json_excerpt(many), "array of 10000 items");
}

TEST(JsonFile, DeepConfigAndTokenizerFilesAreRefusedNotCrashed) {
  const std::string dir = latmix::test::temp_dir("json-deep");
  const std::string deep = nested(100000);
  const std::string config = R"({"architectures": ["LlamaForCausalLM"], "vocab_size": )" + deep + "}";
  EXPECT_CONTAINS(error_of([&] { latmix::parse_model_config(config, dir + "/config.json"); }), "nesting too deep");
  // tokenizer.json: a normalizer Sequence nested 100,000 times.
  std::string normalizer;
  for (int i = 0; i < 100000; ++i) normalizer += R"({"type": "Sequence", "normalizers": [)";
  normalizer += R"({"type": "NFC"})";
  for (int i = 0; i < 100000; ++i) normalizer += "]}";
  const std::string tok =
      write_file(dir, "tokenizer.json",
                 R"({"model": {"type": "BPE", "vocab": {"a": 0}, "merges": []}, "normalizer": )" + normalizer + "}");
  EXPECT_CONTAINS(error_of([&] { latmix::load_tokenizer(tok); }), tok + ": key 'normalizer");
  // tokenizer_config.json beside a valid tokenizer.json: bos_token nested 100,000 times.
  write_file(dir, "tokenizer.json", R"({"model": {"type": "BPE", "vocab": {"a": 0}, "merges": []}})");
  const std::string cfg =
      write_file(dir, "tokenizer_config.json", "{\"bos_token\": " + nested(100000, "{\"content\":", "}") + "}");
  EXPECT_CONTAINS(error_of([&] { latmix::load_tokenizer(dir); }), cfg + ": key 'bos_token");
}

TEST(RegularFile, FifoDeviceAndFolderAreRefusedWithoutBlocking) {
  const std::string dir = latmix::test::temp_dir("fifo");
  const std::string fifo = dir + "/config.json";
  ASSERT_EQ(::mkfifo(fifo.c_str(), 0600), 0);
  // No writer ever opens the FIFO: a blocking open() would hang this test until ctest's timeout.
  EXPECT_CONTAINS(error_of([&] { latmix::read_text_file(fifo); }),
                  fifo + ": cannot read this file (expected a regular file, found a FIFO");
  EXPECT_CONTAINS(error_of([&] { latmix::load_model_config(dir); }), "found a FIFO");
  EXPECT_CONTAINS(error_of([] { latmix::read_text_file("/dev/zero"); }), "found a character device");
  EXPECT_CONTAINS(error_of([&] { latmix::read_json_file(dir); }), "found a folder");
  EXPECT_CONTAINS(error_of([&] { latmix::read_text_file(dir + "/none.txt"); }), "cannot open file");
  EXPECT_EQ(latmix::read_text_file(write_file(dir, "ok.txt", "hello")), "hello");
}

}  // namespace
