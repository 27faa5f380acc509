// TensorStore on the real gutenberg checkpoints (written by transformers): names, shapes, dtypes,
// and values checked against an independent read (std::ifstream + nlohmann::json, not our parser).
#include <gtest/gtest.h>

#include <cstring>
#include <filesystem>
#include <fstream>

#include <nlohmann/json.hpp>

#include "latmix/tensor_io.h"
#include "test_paths.h"

namespace latmix {
namespace {

// The raw bytes of one tensor, found without the engine's parser.
std::string independent_bytes(const std::string& file, const std::string& name) {
  std::ifstream in(file, std::ios::binary);
  uint8_t len_bytes[8];
  in.read(reinterpret_cast<char*>(len_bytes), 8);
  uint64_t n = 0;
  for (int i = 7; i >= 0; --i) n = (n << 8) | len_bytes[i];
  std::string header(n, '\0');
  in.read(header.data(), static_cast<std::streamsize>(n));
  const auto json = nlohmann::json::parse(header);
  const auto offsets = json.at(name).at("data_offsets");
  const auto begin = offsets[0].get<uint64_t>();
  const auto end = offsets[1].get<uint64_t>();
  std::string bytes(end - begin, '\0');
  in.seekg(static_cast<std::streamoff>(8 + n + begin));
  in.read(bytes.data(), static_cast<std::streamsize>(bytes.size()));
  EXPECT_TRUE(in.good()) << file;
  return bytes;
}

// bf16 bytes -> floats by hand (the upper half of an IEEE single).
std::vector<float> bf16_to_float(const std::string& bytes) {
  std::vector<float> out(bytes.size() / 2);
  for (size_t i = 0; i < out.size(); ++i) {
    const uint32_t bits = (static_cast<uint32_t>(static_cast<uint8_t>(bytes[2 * i + 1])) << 24) |
                          (static_cast<uint32_t>(static_cast<uint8_t>(bytes[2 * i])) << 16);
    std::memcpy(&out[i], &bits, 4);
  }
  return out;
}

void expect_same_as_independent_read(const TensorStore& store, const std::string& name) {
  const at::Tensor t = store.get(name);
  const std::string file = store.file_of(name).path();
  const std::string bytes = independent_bytes(file, name);
  ASSERT_EQ(static_cast<size_t>(t.numel() * t.element_size()), bytes.size());
  EXPECT_EQ(std::memcmp(t.contiguous().data_ptr(), bytes.data(), bytes.size()), 0) << name;
  const auto expected = bf16_to_float(bytes);
  const at::Tensor as_float = t.to(at::kFloat).contiguous();
  EXPECT_EQ(std::memcmp(as_float.data_ptr<float>(), expected.data(), expected.size() * 4), 0) << name;
  EXPECT_GT(as_float.abs().sum().item<float>(), 0.0f) << name;  // real weights, not zeros
}

void expect_llama_layout(const TensorStore& store, int64_t hidden, int64_t intermediate, int64_t kv) {
  const auto names = store.names();
  EXPECT_EQ(names.size(), 56u);  // embed + norm + 6 layers x 9 (tied lm_head)
  for (const auto& name : names) EXPECT_EQ(store.info(name).dtype, DType::BF16) << name;
  EXPECT_EQ(store.info("model.embed_tokens.weight").shape, (std::vector<int64_t>{8192, hidden}));
  EXPECT_EQ(store.info("model.norm.weight").shape, (std::vector<int64_t>{hidden}));
  EXPECT_EQ(store.info("model.layers.5.mlp.down_proj.weight").shape, (std::vector<int64_t>{hidden, intermediate}));
  EXPECT_EQ(store.info("model.layers.3.self_attn.k_proj.weight").shape, (std::vector<int64_t>{kv, hidden}));
  EXPECT_FALSE(store.contains("lm_head.weight"));
  const at::Tensor q = store.get("model.layers.0.self_attn.q_proj.weight");
  EXPECT_EQ(q.scalar_type(), at::kBFloat16);
  EXPECT_EQ(q.sizes(), (std::vector<int64_t>{hidden, hidden}));
  EXPECT_EQ(store.metadata().at("format"), "pt");
}

TEST(TensorIoModels, Gutenberg22MSharded) {
  LATMIX_REQUIRE_DATA("models/gutenberg-llama-22M");
  const std::string dir = test::data_path("models/gutenberg-llama-22M");
  const TensorStore store = TensorStore::open(dir);
  EXPECT_EQ(store.files().size(), 3u);
  EXPECT_EQ(store.total_bytes(), 43791360u);  // the index's metadata.total_size
  expect_llama_layout(store, 512, 1408, 256);
  EXPECT_EQ(store.file_of("model.embed_tokens.weight").path(), dir + "/model-00001-of-00003.safetensors");
  expect_same_as_independent_read(store, "model.layers.0.self_attn.q_proj.weight");
  expect_same_as_independent_read(store, "model.layers.4.mlp.up_proj.weight");
  expect_same_as_independent_read(store, "model.norm.weight");
}

TEST(TensorIoModels, Gutenberg6MSingleFile) {
  const std::string dir = test::source_path("resources/models/gutenberg-llama-6M");
  const TensorStore store = TensorStore::open(dir);
  EXPECT_EQ(store.files(), std::vector<std::string>{dir + "/model.safetensors"});
  expect_llama_layout(store, 256, 704, 128);
  expect_same_as_independent_read(store, "model.embed_tokens.weight");
  expect_same_as_independent_read(store, "model.layers.2.self_attn.o_proj.weight");
}

TEST(TensorIoModels, GoldenLogitsAreF32) {
  LATMIX_REQUIRE_DATA("models/gutenberg-llama-6M/golden_logits.safetensors");
  const auto file = SafetensorsFile::open(test::data_path("models/gutenberg-llama-6M/golden_logits.safetensors"));
  const at::Tensor logits = file->tensor("logits_0");
  EXPECT_EQ(logits.scalar_type(), at::kFloat);
  EXPECT_EQ(logits.sizes(), (std::vector<int64_t>{13, 8192}));
  EXPECT_TRUE(at::isfinite(logits).all().item<bool>());
}

TEST(TensorIoModels, ReshardedCopyIsIdentical) {
  LATMIX_REQUIRE_DATA("models/gutenberg-llama-22M");
  const TensorStore store = TensorStore::open(test::data_path("models/gutenberg-llama-22M"));
  std::vector<TensorSource> sources;
  for (const auto& name : store.names()) {
    const TensorInfo& info = store.info(name);
    sources.push_back({name, info.dtype, info.shape, [&store, name] { return store.get(name); }});
  }
  const std::string out = test::temp_dir("tio-reshard") + "/copy";
  int64_t reports = 0;
  JobControl job;
  job.progress = [&](std::string_view, int64_t, int64_t) { ++reports; };
  write_safetensors_sharded(out, sources, 10u << 20, store.metadata(), job);
  EXPECT_EQ(reports, 57);  // the start + one per tensor
  const TensorStore copy = TensorStore::open(out);
  EXPECT_GE(copy.files().size(), 4u);  // 43.8 MB in shards of at most 10 MiB
  EXPECT_EQ(copy.total_bytes(), store.total_bytes());
  EXPECT_EQ(copy.names(), store.names());
  for (const auto& name : store.names()) EXPECT_TRUE(at::equal(copy.get(name), store.get(name))) << name;
}

}  // namespace
}  // namespace latmix
