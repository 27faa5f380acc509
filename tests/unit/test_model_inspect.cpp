// inspect_model(): a model described from its headers, without loading weights (issue 15): the
// same config as load_model(), the stored bytes and dtypes, and the loader's refusals.
#include <gtest/gtest.h>

#include <ATen/ATen.h>

#include <cstdint>
#include <filesystem>
#include <fstream>
#include <vector>

#include "latmix/error.h"
#include "latmix/files.h"
#include "latmix/llama2c.h"
#include "latmix/model.h"
#include "latmix/model_inspect.h"
#include "test_paths.h"

namespace fs = std::filesystem;

namespace {

std::string message_of(const std::string& path) {
  try {
    latmix::inspect_model(path);
  } catch (const latmix::Error& e) {
    return e.what();
  }
  return "";
}

TEST(ModelInspect, HeadersGiveTheLoadersConfigAndSizes) {
  const std::string dir = latmix::test::fixtures_path("models/tiny-llama3");
  const latmix::ModelHeaders h = latmix::inspect_model(dir);
  const latmix::Model m = latmix::load_model(dir);
  EXPECT_EQ(h.config.hidden_size, m.config().hidden_size);
  EXPECT_EQ(h.config.num_layers, m.config().num_layers);
  EXPECT_EQ(h.config.vocab_size, m.config().vocab_size);
  EXPECT_EQ(h.config.parameter_count(), m.config().parameter_count());
  int64_t tensors = 0;
  for (const auto& [dtype, count] : h.dtypes) tensors += count;
  const int64_t per_layer = 9 + (m.config().qk_norm ? 2 : 0);
  EXPECT_EQ(tensors, 2 + per_layer * m.config().num_layers + (m.config().tie_word_embeddings ? 0 : 1));
  // Every element of every tensor counted once, in its stored width.
  uint64_t elements = 0;
  const auto& w = m.weights();
  for (const at::Tensor* t : {&w.embed, &w.final_norm}) elements += static_cast<uint64_t>(t->numel());
  if (!m.config().tie_word_embeddings) elements += static_cast<uint64_t>(w.lm_head.numel());
  for (const auto& l : w.layers) {
    for (const at::Tensor* t : {&l.attn_norm, &l.q, &l.k, &l.v, &l.o, &l.mlp_norm, &l.gate, &l.up, &l.down, &l.q_norm,
                                &l.k_norm}) {
      if (t->defined()) elements += static_cast<uint64_t>(t->numel());
    }
  }
  const uint64_t width = h.dtypes.count("F32") ? 4 : 2;
  EXPECT_EQ(h.weight_bytes, elements * width);
}

TEST(ModelInspect, RefusesWhatTheLoaderRefuses) {
  const std::string root = latmix::test::temp_dir("inspect");
  const std::string dir = root + "/m";
  fs::copy(latmix::test::fixtures_path("models/tiny-llama3"), dir, fs::copy_options::recursive);
  // A config whose intermediate size disagrees with the tensors: the loader's shape error.
  std::string config = latmix::read_text_file(dir + "/config.json");
  const auto at = config.find("\"intermediate_size\"");
  ASSERT_NE(at, std::string::npos);
  const auto colon = config.find(':', at), end = config.find_first_of(",}", colon);
  config.replace(colon + 1, end - colon - 1, " 80");
  std::ofstream(dir + "/config.json", std::ios::trunc) << config;
  const std::string m = message_of(dir);
  EXPECT_NE(m.find("has the wrong shape"), std::string::npos) << m;
  EXPECT_NE(message_of(root + "/missing").find("no such file or folder"), std::string::npos);
  EXPECT_NE(message_of(dir + "/model.safetensors").find("a single weights file is not a model"), std::string::npos);
}

TEST(ModelInspect, Llama2cHeaderAndSize) {
  const std::string path = latmix::test::temp_dir("inspect-l2c") + "/m.bin";
  const int32_t f[7] = {16, 32, 2, 2, 2, -40, 8};  // negative vocab: an unshared classifier
  const latmix::Llama2cHeader expected{16, 32, 2, 2, 2, 40, 8, false};
  {
    std::ofstream out(path, std::ios::binary);
    out.write(reinterpret_cast<const char*>(f), sizeof f);
    const std::vector<char> zeros(expected.expected_file_size() - 28, 0);
    out.write(zeros.data(), static_cast<std::streamsize>(zeros.size()));
  }
  const latmix::ModelHeaders h = latmix::inspect_model(path);
  EXPECT_EQ(h.config.vocab_size, 40);
  EXPECT_FALSE(h.config.tie_word_embeddings);
  EXPECT_EQ(h.weight_bytes, 4 * expected.parameter_count());
  EXPECT_EQ(h.dtypes.at("F32"), 9 * 2 + 3);
  fs::resize_file(path, expected.expected_file_size() - 4);
  EXPECT_NE(message_of(path).find("size does not match its header"), std::string::npos);
}

}  // namespace
