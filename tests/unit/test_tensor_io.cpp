// safetensors reading (mmap), the folder store and the streaming atomic writer.
#include <gtest/gtest.h>

#include <filesystem>
#include <fstream>
#include <stdexcept>

#include "latmix/error.h"
#include "latmix/tensor_io.h"
#include "test_paths.h"

namespace latmix {
namespace {

namespace fs = std::filesystem;

std::vector<std::string> list_dir(const std::string& dir) {
  std::vector<std::string> out;
  for (const auto& e : fs::directory_iterator(dir)) out.push_back(e.path().filename().string());
  std::sort(out.begin(), out.end());
  return out;
}

std::string slurp(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  return {std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>()};
}

void spit(const std::string& path, const std::string& text) {
  std::ofstream out(path, std::ios::binary | std::ios::trunc);
  out << text;
}

template <typename Fn>
std::string error_of(Fn&& fn) {
  try {
    fn();
  } catch (const Error& e) {
    return e.what();
  }
  return "(no error)";
}

#define EXPECT_CONTAINS(text, fragment) \
  EXPECT_NE(std::string(text).find(fragment), std::string::npos) << "'" << (fragment) << "' not in: " << (text)

// One tensor of every dtype LibTorch 1.13 can hold, with non-trivial values.
std::vector<std::pair<std::string, at::Tensor>> every_supported_dtype() {
  at::manual_seed(7);
  const auto f = at::randn({3, 5}, at::kFloat) * 100;
  return {
      {"bool", at::rand({4, 3}) > 0.5},
      {"u8", at::randint(0, 256, {7}, at::kByte)},
      {"i8", at::randint(-128, 128, {2, 3}, at::kChar)},
      {"i16", at::randint(-30000, 30000, {5}, at::kShort)},
      {"i32", at::randint(-100000, 100000, {2, 2}, at::kInt)},
      {"i64", at::randint(-(int64_t{1} << 40), int64_t{1} << 40, {3}, at::kLong)},
      {"f16", f.to(at::kHalf)},
      {"bf16", f.to(at::kBFloat16)},
      {"f32", f},
      {"f64", f.to(at::kDouble) / 3},
      {"c64", at::complex(f, -f)},
      {"scalar", at::scalar_tensor(3.25, at::kFloat)},
      {"empty", at::empty({0, 4}, at::kBFloat16)},
  };
}

TEST(TensorIo, DtypeMapping) {
  for (DType d : all_dtypes()) {
    const auto t = to_torch_dtype(d);
    if (t) {
      EXPECT_EQ(from_torch_dtype(*t), d) << dtype_name(d);
    }
  }
  EXPECT_EQ(to_torch_dtype(DType::BF16), at::kBFloat16);
  EXPECT_EQ(to_torch_dtype(DType::U8), at::kByte);
  EXPECT_EQ(to_torch_dtype(DType::I8), at::kChar);
  EXPECT_FALSE(to_torch_dtype(DType::U16));
  EXPECT_FALSE(to_torch_dtype(DType::U64));
  EXPECT_FALSE(to_torch_dtype(DType::F8_E4M3));
  EXPECT_FALSE(to_torch_dtype(DType::F4));
  EXPECT_FALSE(from_torch_dtype(at::kQInt8));
  EXPECT_FALSE(from_torch_dtype(at::kComplexDouble));
}

TEST(TensorIo, RoundTripEverySupportedDtype) {
  const std::string path = test::temp_dir("tio-rt") + "/all.safetensors";
  const auto tensors = every_supported_dtype();
  write_safetensors(path, tensors, {{"format", "pt"}, {"note", "é"}});

  const auto file = SafetensorsFile::open(path);
  EXPECT_EQ(file->header().metadata.at("format"), "pt");
  EXPECT_EQ(file->header().metadata.at("note"), "é");
  EXPECT_EQ(file->header().data_start % 8, 0u);
  EXPECT_EQ(file->header().tensors.size(), tensors.size());
  uint64_t offset = 0;
  for (const auto& [name, expected] : tensors) {
    const TensorInfo* info = file->header().find(name);
    ASSERT_NE(info, nullptr) << name;
    EXPECT_EQ(info->begin, offset) << name;  // the given order is kept
    offset = info->end;
    const at::Tensor got = file->tensor(name);
    EXPECT_EQ(got.scalar_type(), expected.scalar_type()) << name;
    EXPECT_EQ(got.sizes(), expected.sizes()) << name;
    EXPECT_TRUE(at::equal(got, expected)) << name;
  }
  EXPECT_EQ(file->header().find("scalar")->shape.size(), 0u);
  EXPECT_EQ(file->tensor("scalar").dim(), 0);
  EXPECT_EQ(file->tensor("empty").numel(), 0);
  EXPECT_EQ(file->raw_bytes("f32").numel(), 60);
  EXPECT_CONTAINS(error_of([&] { file->tensor("nope"); }), path + ": tensor 'nope' missing");
}

TEST(TensorIo, ZeroCopyUnlessMisaligned) {
  const std::string path = test::temp_dir("tio-align") + "/a.safetensors";
  const auto f = at::arange(6, at::kFloat);
  write_safetensors(path, {{"aligned", f}, {"odd", at::arange(3, at::kByte)}, {"shifted", f}});
  const auto file = SafetensorsFile::open(path);
  const at::Tensor aligned = file->tensor("aligned");
  EXPECT_EQ(aligned.data_ptr(), file->raw_bytes("aligned").data_ptr());  // a view of the mapping
  const at::Tensor shifted = file->tensor("shifted");                    // starts 3 bytes after an 8-byte boundary
  EXPECT_NE(shifted.data_ptr(), file->raw_bytes("shifted").data_ptr());
  EXPECT_EQ(reinterpret_cast<uintptr_t>(shifted.data_ptr()) % 4, 0u);
  EXPECT_TRUE(at::equal(shifted, f));
  EXPECT_TRUE(at::equal(aligned, f));
}

TEST(TensorIo, TensorOutlivesFile) {
  const std::string path = test::temp_dir("tio-life") + "/l.safetensors";
  const auto w = at::randn({16, 16});
  write_safetensors(path, {{"w", w}});
  at::Tensor t;
  {
    auto file = SafetensorsFile::open(path);
    t = file->tensor("w");
  }
  EXPECT_TRUE(at::equal(t, w));
  EXPECT_TRUE(at::equal(t.clone().mul_(2), w * 2));  // clone() before writing
}

TEST(TensorIo, WritesNonContiguousAndRawDtypes) {
  const std::string path = test::temp_dir("tio-raw") + "/r.safetensors";
  const auto base = at::arange(12, at::kFloat).reshape({3, 4});
  const auto codes = at::tensor(std::vector<uint8_t>{0x21, 0x43, 0x65, 0x87}, at::kByte);
  std::vector<TensorSource> sources = {
      tensor_source("t", base.t()),
      {"fp8", DType::F8_E4M3, {2, 2}, [&] { return codes; }},
      {"fp4",
       DType::F4,
       {2, 4},
       [&] {
         return codes.reshape({2, 2});
       }},
      {"u16", DType::U16, {2}, [&] { return codes; }},
  };
  write_safetensors(path, sources);
  const auto file = SafetensorsFile::open(path);
  EXPECT_TRUE(at::equal(file->tensor("t"), base.t()));
  EXPECT_EQ(file->header().find("fp4")->dtype, DType::F4);
  EXPECT_EQ(file->header().find("fp4")->shape, (std::vector<int64_t>{2, 4}));
  EXPECT_TRUE(at::equal(file->raw_bytes("fp4"), codes));
  EXPECT_TRUE(at::equal(file->raw_bytes("fp8"), codes));
  const std::string msg = error_of([&] { file->tensor("fp8"); });
  EXPECT_CONTAINS(msg, path);
  EXPECT_CONTAINS(msg, "tensor 'fp8'");
  EXPECT_CONTAINS(msg, "dtype F8_E4M3 not supported by this LibTorch");
  EXPECT_CONTAINS(error_of([&] { file->tensor("u16"); }), "dtype U16 not supported");
}

TEST(TensorIo, WriterChecksProducedTensors) {
  const std::string dir = test::temp_dir("tio-check");
  const std::string path = dir + "/c.safetensors";
  auto write_one = [&](TensorSource s) { return error_of([&] { write_safetensors(path, {s}); }); };
  EXPECT_CONTAINS(write_one({"w", DType::BF16, {2}, [] { return at::zeros({2}); }}),
                  "tensor 'w': produce() returned the wrong dtype");
  EXPECT_CONTAINS(write_one({"w", DType::F32, {2}, [] { return at::zeros({3}); }}), "expected [2], found [3]");
  EXPECT_CONTAINS(write_one({"w", DType::F32, {2}, [] { return at::Tensor(); }}), "undefined tensor");
  EXPECT_CONTAINS(write_one({"w", DType::F8_E5M2, {4}, [] { return at::zeros({3}, at::kByte); }}),
                  "a uint8 tensor of 4 elements");
  EXPECT_CONTAINS(write_one({"w", DType::F4, {3}, [] { return at::zeros({2}, at::kByte); }}), "whole number of bytes");
  EXPECT_CONTAINS(write_one({"w", DType::F32, {-1}, [] { return at::zeros({2}); }}), "non-negative");
  EXPECT_CONTAINS(write_one({"__metadata__", DType::F32, {1}, [] { return at::zeros({1}); }}), "reserved");
  EXPECT_CONTAINS(error_of([&] {
                    write_safetensors(path, {{"a", at::zeros({1})}, {"a", at::zeros({1})}});
                  }),
                  "tensor 'a'");
  EXPECT_CONTAINS(error_of([&] {
                    write_safetensors(path, {{"q", at::zeros({1}, at::kComplexDouble)}});
                  }),
                  "has no safetensors dtype");
  EXPECT_TRUE(list_dir(dir).empty());
}

TEST(TensorIo, FailedWriteLeavesNothingAndKeepsTarget) {
  const std::string dir = test::temp_dir("tio-atomic");
  const std::string path = dir + "/m.safetensors";
  int produced = 0;
  std::vector<TensorSource> sources;
  for (int i = 0; i < 4; ++i) {
    sources.push_back({"t" + std::to_string(i), DType::F32, {64}, [&produced, i] {
                         ++produced;
                         if (i == 2) throw std::runtime_error("disk full (simulated)");
                         return at::full({64}, static_cast<float>(i));
                       }});
  }
  EXPECT_THROW(write_safetensors(path, sources), std::runtime_error);
  EXPECT_EQ(produced, 3);
  EXPECT_TRUE(list_dir(dir).empty());

  spit(path, "previous contents");
  EXPECT_THROW(write_safetensors(path, sources), std::runtime_error);
  EXPECT_EQ(slurp(path), "previous contents");
  EXPECT_EQ(list_dir(dir), std::vector<std::string>{"m.safetensors"});

  // Cancelled after the first tensor: Cancelled propagates, nothing changes.
  JobControl job;
  int64_t last_done = -1;
  job.progress = [&](std::string_view stage, int64_t done, int64_t total) {
    EXPECT_EQ(stage, "write");
    EXPECT_EQ(total, 4 * 64 * 4);
    last_done = done;
    if (done > 0) job.cancel.cancel();
  };
  sources[2].produce = [] { return at::zeros({64}); };
  EXPECT_THROW(write_safetensors(path, sources, {}, job), Cancelled);
  EXPECT_EQ(last_done, 256);
  EXPECT_EQ(slurp(path), "previous contents");
  EXPECT_EQ(list_dir(dir), std::vector<std::string>{"m.safetensors"});

  // And a complete write replaces it, reporting every byte.
  JobControl ok;
  ok.progress = [&](std::string_view, int64_t done, int64_t) { last_done = done; };
  write_safetensors(path, sources, {}, ok);
  EXPECT_EQ(last_done, 4 * 64 * 4);
  EXPECT_EQ(list_dir(dir), std::vector<std::string>{"m.safetensors"});
  EXPECT_TRUE(at::equal(SafetensorsFile::open(path)->tensor("t3"), at::full({64}, 3.0f)));
  EXPECT_EQ(fs::status(path).permissions() & fs::perms::others_read, fs::perms::others_read);
}

TEST(TensorIo, OverwritingAMappedFileIsSafe) {
  const std::string path = test::temp_dir("tio-overwrite") + "/m.safetensors";
  write_safetensors(path, {{"w", at::ones({8})}});
  const auto old_file = SafetensorsFile::open(path);
  const at::Tensor old_w = old_file->tensor("w");
  write_safetensors(path, {{"w", at::zeros({8})}});
  EXPECT_TRUE(at::equal(old_w, at::ones({8})));  // the old inode stays mapped
  EXPECT_TRUE(at::equal(SafetensorsFile::open(path)->tensor("w"), at::zeros({8})));
}

std::vector<TensorSource> five_tensors(int fail_at = -1) {
  std::vector<TensorSource> out;
  for (int i = 0; i < 5; ++i) {
    out.push_back({"layer." + std::to_string(i), DType::F32, {25}, [i, fail_at] {
                     if (i == fail_at) throw Error("producer failed");
                     return at::arange(25, at::kFloat) + 100 * i;
                   }});
  }
  return out;
}

TEST(TensorStore, ShardedRoundTrip) {
  const std::string dir = test::temp_dir("tio-shards") + "/out";
  write_safetensors_sharded(dir, five_tensors(), 250, {{"format", "pt"}});
  EXPECT_EQ(list_dir(dir),
            (std::vector<std::string>{"model-00001-of-00003.safetensors", "model-00002-of-00003.safetensors",
                                      "model-00003-of-00003.safetensors", "model.safetensors.index.json"}));
  const auto idx = parse_safetensors_index(slurp(dir + "/model.safetensors.index.json"), "idx");
  EXPECT_EQ(idx.total_size, 500u);
  EXPECT_EQ(idx.weight_map.at("layer.4"), "model-00003-of-00003.safetensors");

  const TensorStore store = TensorStore::open(dir);
  EXPECT_EQ(store.files().size(), 3u);
  EXPECT_EQ(store.total_bytes(), 500u);
  EXPECT_EQ(store.names(), (std::vector<std::string>{"layer.0", "layer.1", "layer.2", "layer.3", "layer.4"}));
  EXPECT_EQ(store.metadata().at("format"), "pt");
  for (int i = 0; i < 5; ++i) {
    const std::string name = "layer." + std::to_string(i);
    EXPECT_TRUE(store.contains(name));
    EXPECT_EQ(store.info(name).dtype, DType::F32);
    EXPECT_TRUE(at::equal(store.get(name), at::arange(25, at::kFloat) + 100 * i));
  }
  EXPECT_EQ(store.file_of("layer.2").path(), dir + "/model-00002-of-00003.safetensors");
  EXPECT_FALSE(store.contains("layer.5"));
  EXPECT_EQ(error_of([&] { store.get("layer.5"); }), dir + ": tensor 'layer.5' missing");
  EXPECT_CONTAINS(error_of([&] { store.info("x"); }), "tensor 'x' missing");
  // The index file itself opens the same store.
  EXPECT_EQ(TensorStore::open(dir + "/model.safetensors.index.json").names().size(), 5u);
}

TEST(TensorStore, OneShardIsAPlainFileAndBigTensorsGetTheirOwn) {
  const std::string root = test::temp_dir("tio-oneshard");
  write_safetensors_sharded(root + "/a", five_tensors(), 1 << 20);
  EXPECT_EQ(list_dir(root + "/a"), std::vector<std::string>{"model.safetensors"});
  EXPECT_EQ(TensorStore::open(root + "/a").names().size(), 5u);
  EXPECT_EQ(TensorStore::open(root + "/a/model.safetensors").total_bytes(), 500u);

  write_safetensors_sharded(root + "/b", five_tensors(), 10);  // every tensor exceeds the limit
  EXPECT_EQ(list_dir(root + "/b").size(), 6u);
  EXPECT_EQ(TensorStore::open(root + "/b").files().size(), 5u);
}

TEST(TensorStore, FailedShardedWriteLeavesNothing) {
  const std::string dir = test::temp_dir("tio-shardfail");
  EXPECT_THROW(write_safetensors_sharded(dir, five_tensors(4), 250), Error);
  EXPECT_TRUE(list_dir(dir).empty());
  JobControl job;
  job.cancel.cancel();
  EXPECT_THROW(write_safetensors_sharded(dir, five_tensors(), 250, {}, job), Cancelled);
  EXPECT_TRUE(list_dir(dir).empty());
  EXPECT_THROW(write_safetensors_sharded(dir, five_tensors(), 0), Error);
}

TEST(TensorStore, ValidatesTheIndex) {
  const std::string dir = test::temp_dir("tio-badindex");
  write_safetensors(dir + "/s1.safetensors", {{"a", at::zeros({2})}, {"b", at::zeros({2})}});
  write_safetensors(dir + "/s2.safetensors", {{"c", at::zeros({2})}, {"b", at::zeros({2})}});
  const std::string index = dir + "/model.safetensors.index.json";
  auto open_with = [&](const std::string& weight_map) {
    spit(index, "{\"metadata\":{},\"weight_map\":{" + weight_map + "}}");
    return error_of([&] { TensorStore::open(dir); });
  };
  EXPECT_CONTAINS(open_with(R"("a":"s1.safetensors","b":"s1.safetensors","c":"s2.safetensors")"),
                  "tensor 'b' is listed in shard 's1.safetensors' (expected only in 's1.safetensors', found also in "
                  "'s2.safetensors')");
  write_safetensors(dir + "/s2.safetensors", {{"c", at::zeros({2})}});
  EXPECT_EQ(open_with(R"("a":"s1.safetensors","b":"s1.safetensors","c":"s2.safetensors")"), "(no error)");
  EXPECT_CONTAINS(open_with(R"("a":"s1.safetensors","b":"s1.safetensors","c":"s3.safetensors")"),
                  "shard 's3.safetensors' listed in weight_map");
  EXPECT_CONTAINS(open_with(R"("a":"s1.safetensors","b":"s1.safetensors","c":"s2.safetensors","d":"s2.safetensors")"),
                  "tensor 'd' listed in weight_map (expected in shard 's2.safetensors', found not in that shard)");
  EXPECT_CONTAINS(open_with(R"("a":"s1.safetensors","c":"s2.safetensors")"),
                  "tensor 'b' of shard 's1.safetensors' is not in weight_map");
  EXPECT_CONTAINS(open_with(R"("a":"s1.safetensors","a":"s1.safetensors")"), "duplicate key 'a'");
  EXPECT_CONTAINS(open_with(""), "weight_map");
  spit(index, "{\"weight_map\":");
  EXPECT_CONTAINS(error_of([&] { TensorStore::open(dir); }), index + ": not valid JSON");
  spit(dir + "/s2.safetensors", "garbage!");
  EXPECT_CONTAINS(open_with(R"("a":"s1.safetensors","b":"s1.safetensors","c":"s2.safetensors")"),
                  dir + "/s2.safetensors: header length");

  EXPECT_CONTAINS(error_of([&] { TensorStore::open(test::temp_dir("tio-empty")); }),
                  "no safetensors weights in the folder");
  EXPECT_CONTAINS(error_of([&] { TensorStore::open(dir + "/nothing-here"); }), "no such file");
}

}  // namespace
}  // namespace latmix
