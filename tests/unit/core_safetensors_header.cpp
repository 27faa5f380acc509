// The torch-free safetensors header parser: valid files, and every malformed case with the
// words its message must contain.
#include <gtest/gtest.h>

#include <filesystem>
#include <fstream>
#include <initializer_list>
#include <iterator>
#include <string>
#include <vector>

#include "latmix/error.h"
#include "latmix/safetensors.h"
#include "test_paths.h"

namespace latmix {
namespace {

// u64 little-endian length + header + `data_bytes` zero bytes.
std::string make_file(const std::string& header, size_t data_bytes = 0) {
  std::string out;
  const uint64_t n = header.size();
  for (int i = 0; i < 8; ++i) out.push_back(static_cast<char>((n >> (8 * i)) & 0xff));
  return out + header + std::string(data_bytes, '\0');
}

SafetensorsHeader parse(const std::string& file) {
  return parse_safetensors_header(reinterpret_cast<const uint8_t*>(file.data()), file.size(), file.size(),
                                  "dir/x.safetensors");
}

// Parses and expects a latmix::Error whose message holds every fragment (and the file name).
void expect_error(const std::string& file, std::initializer_list<std::string> fragments) {
  try {
    parse(file);
    ADD_FAILURE() << "no error; expected one mentioning " << *fragments.begin();
  } catch (const Error& e) {
    const std::string msg = e.what();
    EXPECT_NE(msg.find("dir/x.safetensors"), std::string::npos) << msg;
    for (const auto& f : fragments) EXPECT_NE(msg.find(f), std::string::npos) << "'" << f << "' not in: " << msg;
  }
}

std::string entry(const std::string& name, const std::string& dtype, const std::string& shape, uint64_t begin,
                  uint64_t end) {
  return "\"" + name + "\":{\"dtype\":\"" + dtype + "\",\"shape\":" + shape + ",\"data_offsets\":[" +
         std::to_string(begin) + "," + std::to_string(end) + "]}";
}

TEST(SafetensorsDType, NamesAndBitsRoundTrip) {
  EXPECT_EQ(all_dtypes().size(), static_cast<size_t>(kDTypeCount));
  EXPECT_EQ(kDTypeCount, 22);
  for (DType d : all_dtypes()) {
    const auto back = parse_dtype(dtype_name(d));
    ASSERT_TRUE(back.has_value()) << dtype_name(d);
    EXPECT_EQ(*back, d);
  }
  EXPECT_EQ(dtype_bits(DType::BF16), 16);
  EXPECT_EQ(dtype_bits(DType::C64), 64);
  EXPECT_EQ(dtype_bits(DType::F8_E8M0), 8);
  EXPECT_EQ(dtype_bits(DType::F6_E3M2), 6);
  EXPECT_EQ(dtype_bits(DType::F4), 4);
  EXPECT_FALSE(parse_dtype("f32").has_value());
  EXPECT_FALSE(parse_dtype("FP32").has_value());
  EXPECT_FALSE(parse_dtype("").has_value());
}

TEST(SafetensorsDType, TensorByteSize) {
  EXPECT_EQ(tensor_byte_size(DType::F32, {2, 3}), 24u);
  EXPECT_EQ(tensor_byte_size(DType::F64, {}), 8u);
  EXPECT_EQ(tensor_byte_size(DType::BF16, {0, 5}), 0u);
  EXPECT_EQ(tensor_byte_size(DType::F4, {3, 4}), 6u);
  EXPECT_EQ(tensor_byte_size(DType::F6_E2M3, {4}), 3u);
  EXPECT_FALSE(tensor_byte_size(DType::F4, {3}).has_value());
  EXPECT_FALSE(tensor_byte_size(DType::F6_E3M2, {2}).has_value());
  EXPECT_FALSE(tensor_byte_size(DType::U8, {-1}).has_value());
  EXPECT_FALSE(tensor_byte_size(DType::U8, {int64_t{1} << 62, 4}).has_value());
  EXPECT_FALSE(tensor_byte_size(DType::F64, {int64_t{1} << 62}).has_value());
}

TEST(SafetensorsHeader, ParsesValidFile) {
  const std::string header = "{\"__metadata__\":{\"format\":\"pt\"}," + entry("b", "F32", "[2]", 8, 16) + "," +
                             entry("a", "I64", "[1]", 0, 8) + "}";
  const auto h = parse(make_file(header, 16));
  EXPECT_EQ(h.header_len, header.size());
  EXPECT_EQ(h.data_start, 8 + header.size());
  EXPECT_EQ(h.data_size, 16u);
  ASSERT_EQ(h.tensors.size(), 2u);
  EXPECT_EQ(h.tensors[0].name, "a");  // sorted by offset, not by header order
  EXPECT_EQ(h.tensors[1].name, "b");
  EXPECT_EQ(h.tensors[1].dtype, DType::F32);
  EXPECT_EQ(h.tensors[1].shape, (std::vector<int64_t>{2}));
  EXPECT_EQ(h.tensors[1].begin, 8u);
  EXPECT_EQ(h.tensors[1].end, 16u);
  EXPECT_EQ(h.tensors[1].numel(), 2);
  EXPECT_EQ(h.metadata.at("format"), "pt");
  ASSERT_NE(h.find("b"), nullptr);
  EXPECT_EQ(h.find("b")->name, "b");
  EXPECT_EQ(h.find("c"), nullptr);
}

TEST(SafetensorsHeader, EmptyHeaderScalarsZeroSizeAndPadding) {
  EXPECT_TRUE(parse(make_file("{}")).tensors.empty());
  EXPECT_TRUE(parse(make_file("{}      ")).tensors.empty());  // space padding
  const std::string header = "{" + entry("s", "F64", "[]", 0, 8) + "," + entry("z", "BF16", "[0, 3]", 8, 8) + "," +
                             entry("z2", "U8", "[0]", 0, 0) + "," + entry("p", "F4", "[2, 3]", 8, 11) + "}";
  const auto h = parse(make_file(header, 11));
  ASSERT_EQ(h.tensors.size(), 4u);
  EXPECT_EQ(h.tensors[0].name, "z2");
  EXPECT_EQ(h.find("s")->numel(), 1);
  EXPECT_TRUE(h.find("s")->shape.empty());
  EXPECT_EQ(h.find("z")->numel(), 0);
  EXPECT_EQ(h.find("p")->dtype, DType::F4);
}

TEST(SafetensorsHeader, LengthErrors) {
  expect_error("", {"file too small", "at least 8 bytes", "found 0 bytes"});
  expect_error(std::string("\x02\x00\x00", 3), {"file too small"});
  expect_error(make_file("{"), {"header length", "at least 2", "found 1"});
  expect_error(make_file(""), {"header length", "found 0"});
  std::string huge = make_file("{}");
  huge[3] = 0x10;  // 256 MiB + 2
  expect_error(huge, {"header length", "at most 104857600 bytes"});
  std::string beyond = make_file("{}");
  beyond[0] = 40;
  expect_error(beyond, {"header length runs past the end of the file", "found 40 bytes"});
  std::string all_ff(16, '\xff');
  expect_error(all_ff, {"header length", "at most"});
  const std::string file = make_file("{}   ");
  EXPECT_THROW(parse_safetensors_header(reinterpret_cast<const uint8_t*>(file.data()), 9, file.size(), "f"), Error);
  try {
    parse_safetensors_header(reinterpret_cast<const uint8_t*>(file.data()), 9, file.size(), "f");
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("header truncated"), std::string::npos) << e.what();
  }
}

TEST(SafetensorsHeader, JsonErrors) {
  expect_error(make_file("{\"a\":"), {"not valid JSON"});
  expect_error(make_file("{}x"), {"not valid JSON"});
  expect_error(make_file(std::string("{}\0\0", 4)), {"not valid JSON"});
  expect_error(make_file("{\"\xff\xfe\":{}}"), {"not valid JSON"});
  expect_error(make_file("{\"\xc3\":{}}"), {"not valid JSON"});
  expect_error(make_file("{\"a\":{\"dtype\":\"F32\"\x01}}"), {"not valid JSON"});
  expect_error(make_file("[]"), {"header", "expected a JSON object", "found an array"});
  expect_error(make_file("\"str\""), {"expected a JSON object", "found string"});
  expect_error(make_file("12"), {"expected a JSON object", "found number 12"});
  expect_error(make_file(std::string(5000, '[')), {"expected a JSON object", "found an array"});
  expect_error(make_file("{\"a\":{\"dtype\":\"U8\",\"shape\":" + std::string(5000, '[')),
               {"tensor 'a': shape dimension", "found an array"});
  expect_error(make_file(std::string("{}\0\0", 4)), {"NUL byte at file byte 10"});
  expect_error(make_file(std::string("{}  \0garbage", 12)), {"NUL byte"});
}

TEST(SafetensorsHeader, DuplicateKeys) {
  expect_error(make_file("{" + entry("a", "U8", "[1]", 0, 1) + "," + entry("a", "U8", "[1]", 1, 2) + "}", 2),
               {"duplicate key 'a'"});
  expect_error(make_file("{\"a\":{\"dtype\":\"U8\",\"dtype\":\"U8\",\"shape\":[1],\"data_offsets\":[0,1]}}", 1),
               {"tensor 'a'", "duplicate field 'dtype'"});
  expect_error(make_file("{\"__metadata__\":{\"k\":\"1\",\"k\":\"2\"}}"), {"__metadata__", "duplicate key 'k'"});
  expect_error(make_file("{\"__metadata__\":{},\"__metadata__\":{}}"), {"duplicate key '__metadata__'"});
}

TEST(SafetensorsHeader, MetadataErrors) {
  expect_error(make_file("{\"__metadata__\":{\"k\":1}}"), {"__metadata__ key 'k'", "a string value", "number 1"});
  expect_error(make_file("{\"__metadata__\":{\"k\":null}}"), {"__metadata__ key 'k'", "found null"});
  expect_error(make_file("{\"__metadata__\":{\"k\":{\"x\":\"y\"}}}"), {"__metadata__ key 'k'", "an object"});
  expect_error(make_file("{\"__metadata__\":{\"k\":[\"a\"]}}"), {"__metadata__ key 'k'", "an array"});
  expect_error(make_file("{\"__metadata__\":[]}"), {"__metadata__", "an object of strings", "found an array"});
  expect_error(make_file("{\"__metadata__\":\"pt\"}"), {"__metadata__", "found string 'pt'"});
}

TEST(SafetensorsHeader, EntryStructureErrors) {
  expect_error(make_file("{\"a\":\"x\"}"), {"tensor 'a'", "an object with dtype, shape and data_offsets"});
  expect_error(make_file("{\"a\":[1]}"), {"tensor 'a'", "found an array"});
  expect_error(make_file("{" + entry("a", "F33", "[1]", 0, 4) + "}", 4), {"tensor 'a'", "unknown dtype", "'F33'"});
  expect_error(make_file("{" + entry("a", "f32", "[1]", 0, 4) + "}", 4), {"unknown dtype", "'f32'"});
  expect_error(make_file("{\"a\":{\"dtype\":1,\"shape\":[1],\"data_offsets\":[0,4]}}", 4),
               {"tensor 'a': dtype", "a string", "number 1"});
  expect_error(make_file("{\"a\":{\"dtype\":\"U8\",\"shape\":[1],\"data_offsets\":[0,1],\"extra\":1}}", 1),
               {"tensor 'a'", "unknown field 'extra'"});
  expect_error(make_file("{\"a\":{\"dtype\":\"U8\",\"data_offsets\":[0,1]}}", 1),
               {"tensor 'a'", "missing field 'shape'"});
  expect_error(make_file("{\"a\":{\"shape\":[1],\"data_offsets\":[0,1]}}", 1), {"missing field 'dtype'"});
  expect_error(make_file("{\"a\":{\"dtype\":\"U8\",\"shape\":[1]}}", 1), {"missing field 'data_offsets'"});
  expect_error(make_file("{\"a\":{}}"), {"tensor 'a'", "missing field"});
}

TEST(SafetensorsHeader, ShapeAndOffsetTypeErrors) {
  expect_error(make_file("{" + entry("a", "U8", "[-1]", 0, 0) + "}"),
               {"tensor 'a': shape dimension", "negative number -1"});
  expect_error(make_file("{" + entry("a", "U8", "[2.0]", 0, 2) + "}", 2),
               {"shape dimension", "non-integer number 2.0"});
  expect_error(make_file("{" + entry("a", "U8", "[1e1]", 0, 10) + "}", 10), {"non-integer number 1e1"});
  expect_error(make_file("{" + entry("a", "U8", "[[2]]", 0, 2) + "}", 2), {"shape dimension", "found an array"});
  expect_error(make_file("{" + entry("a", "U8", "[\"2\"]", 0, 2) + "}", 2), {"shape dimension", "string '2'"});
  expect_error(make_file("{" + entry("a", "U8", "2", 0, 2) + "}", 2), {"tensor 'a': shape", "an array", "number 2"});
  expect_error(make_file("{" + entry("a", "U8", "[true]", 0, 2) + "}", 2), {"shape dimension", "found true"});
  expect_error(make_file("{" + entry("a", "U8", "[9223372036854775808]", 0, 2) + "}", 2), {"at most 2^63-1"});
  expect_error(make_file("{" + entry("a", "U8", "[99999999999999999999]", 0, 2) + "}", 2), {"non-integer number"});
  expect_error(make_file("{\"a\":{\"dtype\":\"U8\",\"shape\":[1],\"data_offsets\":[0,1,2]}}", 1),
               {"data_offsets", "exactly 2 numbers", "a third number 2"});
  expect_error(make_file("{\"a\":{\"dtype\":\"U8\",\"shape\":[1],\"data_offsets\":[1]}}", 1),
               {"data_offsets", "exactly 2 numbers", "found 1 numbers"});
  expect_error(make_file("{\"a\":{\"dtype\":\"U8\",\"shape\":[1],\"data_offsets\":[-1,0]}}", 1),
               {"tensor 'a': data_offsets", "negative number -1"});
  expect_error(make_file("{\"a\":{\"dtype\":\"U8\",\"shape\":[1],\"data_offsets\":{\"b\":0}}}", 1),
               {"tensor 'a': data_offsets", "found an object"});
}

TEST(SafetensorsHeader, SizeErrors) {
  expect_error(make_file("{" + entry("a", "F32", "[2]", 0, 4) + "}", 4),
               {"tensor 'a' (F32 [2])", "data_offsets [0, 4] span", "expected 8 bytes", "found 4 bytes"});
  expect_error(make_file("{" + entry("a", "U8", "[1]", 4, 3) + "}", 4), {"tensor 'a'", "end before begin"});
  expect_error(make_file("{" + entry("a", "U8", "[4611686018427387904, 4]", 0, 0) + "}"),
               {"tensor 'a'", "fits in int64", "an overflow"});
  // A zero dimension does not excuse an overflowing product (LibTorch computes it too).
  expect_error(make_file("{" + entry("a", "U8", "[4294967296, 4294967296, 0]", 0, 0) + "}"), {"fits in int64"});
  expect_error(make_file("{" + entry("a", "F64", "[4611686018427387904]", 0, 0) + "}"), {"fits in 64 bits"});
  expect_error(make_file("{" + entry("a", "F4", "[3]", 0, 2) + "}", 2),
               {"tensor 'a'", "F4 [3]", "whole number of bytes", "12 bits"});
  expect_error(make_file("{" + entry("a", "F6_E2M3", "[3]", 0, 2) + "}", 2), {"whole number of bytes", "18 bits"});
  expect_error(make_file("{" + entry("a", "U8", "[8]", 0, 8) + "}", 4),
               {"tensor 'a'", "run past the end of the file", "end <= 4", "found 8"});
  expect_error(make_file("{" + entry("a", "U8", "[1]", 18446744073709551614ull, 18446744073709551615ull) + "}", 1),
               {"run past the end of the file"});
}

TEST(SafetensorsHeader, LayoutErrors) {
  expect_error(make_file("{" + entry("a", "U8", "[8]", 0, 8) + "," + entry("b", "U8", "[4]", 4, 8) + "}", 8),
               {"tensor 'b'", "overlap tensor 'a' [0, 8]"});
  expect_error(make_file("{" + entry("a", "U8", "[4]", 0, 4) + "," + entry("b", "U8", "[4]", 0, 4) + "}", 4),
               {"overlap tensor 'a'"});
  expect_error(make_file("{" + entry("a", "U8", "[4]", 0, 4) + "," + entry("b", "U8", "[4]", 8, 12) + "}", 12),
               {"hole in the data area", "bytes [4, 8)", "between tensor 'a' and tensor 'b'", "a gap of 4 bytes"});
  expect_error(make_file("{" + entry("a", "U8", "[4]", 2, 6) + "}", 6),
               {"hole", "before the first tensor 'a'", "gap of 2 bytes"});
  expect_error(make_file("{" + entry("a", "U8", "[4]", 0, 4) + "}", 7),
               {"3 trailing bytes", "after the last tensor 'a'"});
  expect_error(make_file("{}", 5), {"5 trailing bytes", "with no tensor in the header"});
  expect_error(make_file("{" + entry("z", "U8", "[0]", 2, 2) + "," + entry("a", "U8", "[4]", 0, 4) + "}", 4),
               {"tensor 'z'", "overlap tensor 'a'"});
}

TEST(SafetensorsHeader, MessagesQuoteNamesSafely) {
  const std::string long_name(500, 'n');
  try {
    parse(make_file("{\"" + long_name + "\":1}"));
    FAIL();
  } catch (const Error& e) {
    EXPECT_LT(std::string(e.what()).size(), 400u);
    EXPECT_NE(std::string(e.what()).find("(500 bytes)"), std::string::npos);
  }
  expect_error(make_file("{\"a\\u001bb\":1}"), {"tensor 'a\\x1bb'"});
}

TEST(SafetensorsHeader, BuildThenParseRoundTrip) {
  std::vector<TensorInfo> infos = {{"w", DType::BF16, {3, 5}, 0, 30},
                                   {"scalar", DType::F32, {}, 30, 34},
                                   {"empty", DType::F8_E8M0, {0}, 34, 34},
                                   {"p\xc3\xa9", DType::F4, {2, 2}, 34, 36}};
  const std::string block = build_safetensors_header(infos, {{"format", "pt"}}, "out");
  EXPECT_EQ(block.size() % 8, 0u);
  const std::string file = block + std::string(36, '\x01');
  const auto h = parse_safetensors_header(reinterpret_cast<const uint8_t*>(file.data()), file.size(), file.size(), "f");
  EXPECT_EQ(h.data_start % 8, 0u);
  ASSERT_EQ(h.tensors.size(), 4u);
  for (const auto& in : infos) {
    const TensorInfo* t = h.find(in.name);
    ASSERT_NE(t, nullptr) << in.name;
    EXPECT_EQ(t->dtype, in.dtype);
    EXPECT_EQ(t->shape, in.shape);
    EXPECT_EQ(t->begin, in.begin);
    EXPECT_EQ(t->end, in.end);
  }
  EXPECT_EQ(h.metadata.at("format"), "pt");
  // The JSON keeps the given order and starts with the metadata.
  EXPECT_EQ(block.substr(8, 17), "{\"__metadata__\":{");
  EXPECT_LT(block.find("\"w\""), block.find("\"scalar\""));
}

TEST(SafetensorsHeader, BuildRejectsBadNames) {
  EXPECT_THROW(build_safetensors_header({{"a", DType::U8, {1}, 0, 1}, {"a", DType::U8, {1}, 1, 2}}, {}, "o"), Error);
  EXPECT_THROW(build_safetensors_header({{"__metadata__", DType::U8, {1}, 0, 1}}, {}, "o"), Error);
  EXPECT_THROW(build_safetensors_header({{"bad\xff", DType::U8, {1}, 0, 1}}, {}, "o"), Error);
  EXPECT_THROW(build_safetensors_header({}, {{"k", "\xc3"}}, "o"), Error);
}

TEST(SafetensorsHeader, ReadsHeaderFromDisk) {
  const std::string dir = test::temp_dir("st-header");
  const std::string path = dir + "/t.safetensors";
  {
    std::ofstream out(path, std::ios::binary);
    out << make_file("{" + entry("a", "I32", "[2]", 0, 8) + "}   ", 8);
  }
  const auto h = read_safetensors_header(path);
  ASSERT_EQ(h.tensors.size(), 1u);
  EXPECT_EQ(h.tensors[0].dtype, DType::I32);
  {
    std::ofstream out(path, std::ios::binary | std::ios::trunc);
    out << make_file("{" + entry("a", "I32", "[2]", 0, 8) + "}", 4);
  }
  EXPECT_THROW(read_safetensors_header(path), Error);
  EXPECT_THROW(read_safetensors_header(dir + "/missing.safetensors"), Error);
  EXPECT_THROW(read_safetensors_header(dir), Error);
}

// The fuzz seed corpus doubles as a table of cases: files named valid_* parse, all others
// (except inputs kept from fuzzing, crash_*) are rejected with a latmix::Error.
TEST(SafetensorsHeader, SeedCorpusVerdicts) {
  const std::string dir = test::source_path("tests/fuzz/corpus/safetensors_header");
  int checked = 0;
  for (const auto& e : std::filesystem::directory_iterator(dir)) {
    const std::string name = e.path().filename().string();
    std::ifstream in(e.path(), std::ios::binary);
    const std::string bytes{std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>()};
    if (name.rfind("valid_", 0) == 0) {
      EXPECT_NO_THROW(parse(bytes)) << name;
    } else if (name.rfind("crash_", 0) != 0) {
      EXPECT_THROW(parse(bytes), Error) << name;
    }
    ++checked;
  }
  EXPECT_GE(checked, 40);
}

// ---- shard index ----

void expect_index_error(const std::string& text, std::initializer_list<std::string> fragments) {
  try {
    parse_safetensors_index(text, "m/model.safetensors.index.json");
    ADD_FAILURE() << "no error for " << text;
  } catch (const Error& e) {
    const std::string msg = e.what();
    EXPECT_NE(msg.find("m/model.safetensors.index.json"), std::string::npos) << msg;
    for (const auto& f : fragments) EXPECT_NE(msg.find(f), std::string::npos) << "'" << f << "' not in: " << msg;
  }
}

TEST(SafetensorsIndex, ParsesAndRoundTrips) {
  const auto idx = parse_safetensors_index(
      R"({"metadata":{"total_size":12,"total_parameters":6},"weight_map":{"b":"s2.safetensors","a":"s1.safetensors","c":"s1.safetensors"}})",
      "i");
  EXPECT_EQ(idx.total_size, 12u);
  EXPECT_EQ(idx.weight_map.size(), 3u);
  EXPECT_EQ(idx.shards(), (std::vector<std::string>{"s1.safetensors", "s2.safetensors"}));
  const auto again = parse_safetensors_index(build_safetensors_index(idx), "i");
  EXPECT_EQ(again.weight_map, idx.weight_map);
  EXPECT_EQ(again.total_size, idx.total_size);
  EXPECT_FALSE(parse_safetensors_index(R"({"weight_map":{}})", "i").total_size.has_value());
}

TEST(SafetensorsIndex, Errors) {
  expect_index_error("{", {"not valid JSON"});
  expect_index_error("[]", {"a JSON object", "array"});
  expect_index_error("{}", {"weight_map", "no such key"});
  expect_index_error(R"({"weight_map":[]})", {"weight_map", "array"});
  expect_index_error(R"({"weight_map":{"a":1}})", {"tensor 'a'", "a shard file name"});
  expect_index_error(R"({"weight_map":{"a":"x","a":"y"}})", {"duplicate key 'a'"});
  expect_index_error(R"({"weight_map":{"a":"../x.safetensors"}})", {"tensor 'a'", "plain file name"});
  expect_index_error(R"({"weight_map":{"a":"/etc/x"}})", {"plain file name"});
  expect_index_error(R"({"weight_map":{"a":""}})", {"plain file name"});
  expect_index_error(R"({"weight_map":{},"metadata":{"total_size":-1}})", {"total_size", "non-negative integer"});
  expect_index_error(R"({"weight_map":{},"metadata":[]})", {"metadata", "an object"});
  expect_index_error(std::string(100, '['), {"nesting"});
  expect_index_error(std::string("{\"weight_map\":{}}\0x", 19), {"NUL byte"});
}

}  // namespace
}  // namespace latmix
