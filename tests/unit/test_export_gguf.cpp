// The GGUF export (issue 18) on the bundled gutenberg-llama-6M: the container read back, the
// MXFP4 blocks against our own MX codes byte for byte (scale byte = our E8M0 code, byte 1 + j =
// code j | code j+16 << 4), q/k rows in llama.cpp's rotary order, the vocabulary, and what is
// refused. llama.cpp itself runs the file in tests/llamacpp.
#include <gtest/gtest.h>

#include <filesystem>

#include "latmix/error.h"
#include "latmix/export.h"
#include "latmix/gguf.h"
#include "latmix/model.h"
#include "latmix/mx.h"
#include "latmix/transforms.h"
#include "test_paths.h"

namespace fs = std::filesystem;

namespace {

const std::string kModel = "resources/models/gutenberg-llama-6M";

using latmix::test::message_of;

// llama.cpp's rotary row order, written out index by index: within each head, HF row r (pairs
// (i, i + d/2)) goes to 2i (first half) or 2i + 1 (second half).
at::Tensor interleave_heads(const at::Tensor& w, int64_t heads) {
  const int64_t d = w.size(0) / heads, half = d / 2;
  at::Tensor out = at::empty_like(w);
  for (int64_t h = 0; h < heads; ++h) {
    for (int64_t i = 0; i < half; ++i) {
      out[h * d + 2 * i].copy_(w[h * d + i]);
      out[h * d + 2 * i + 1].copy_(w[h * d + half + i]);
    }
  }
  return out;
}

const latmix::GgufKeyValue& key(const latmix::GgufFile& f, const std::string& k) {
  const latmix::GgufKeyValue* kv = f.find(k);
  if (kv == nullptr) throw std::runtime_error("missing key " + k);
  return *kv;
}

}  // namespace

TEST(ExportGguf, Mxfp4BlocksAreOurCodesAndDecodeToTheFakeQuantizedWeights) {
  const std::string src = latmix::test::source_path(kModel);
  const std::string root = latmix::test::temp_dir("export-gguf");
  const latmix::Model fp = latmix::load_model(src);
  const latmix::QuantSpec spec = latmix::parse_quant_spec("w=mxfp4,a=none");
  latmix::ExportOptions o;
  o.kind = latmix::ExportKind::Gguf;
  o.out = root + "/g";
  const latmix::ExportResult r = latmix::export_model(fp, src, {}, spec, nullptr, o);
  ASSERT_TRUE(r.verification.ok()) << r.verification.describe();
  const latmix::GgufFile f = latmix::read_gguf(o.out + "/model.gguf");
  EXPECT_EQ(f.version, 3u);
  EXPECT_EQ(f.tensors.size(), 1u + 6 * 9 + 1);  // embedding, 6 x (2 norms + 7 linears), final norm; tied head
  const latmix::ModelConfig& c = fp.config();
  const latmix::MxFormat format = *spec.weights;
  int64_t checked = 0;
  for (int64_t l = 0; l < c.num_layers; ++l) {
    const latmix::LayerWeights& lw = fp.weights().layers[static_cast<size_t>(l)];
    const std::pair<const char*, std::pair<at::Tensor, int64_t>> linears[] = {
        {"attn_q", {lw.q, c.num_heads}}, {"attn_k", {lw.k, c.num_kv_heads}}, {"attn_v", {lw.v, 0}},
        {"attn_output", {lw.o, 0}},      {"ffn_gate", {lw.gate, 0}},         {"ffn_up", {lw.up, 0}},
        {"ffn_down", {lw.down, 0}}};
    for (const auto& [name, wh] : linears) {
      const std::string tensor = "blk." + std::to_string(l) + "." + name + ".weight";
      const latmix::GgufTensorInfo* info = f.tensor(tensor);
      ASSERT_NE(info, nullptr) << tensor;
      ASSERT_EQ(info->type, latmix::GgmlType::MXFP4) << tensor;
      at::Tensor w = wh.first.to(at::kFloat);
      if (wh.second) w = interleave_heads(w, wh.second);
      ASSERT_EQ(info->ne, (std::vector<int64_t>{w.size(1), w.size(0)})) << tensor;
      // Our codes of the source weight (FLOOR is idempotent: the quantized weight encodes the same).
      const latmix::MxPacked p = latmix::mx_encode(w, format, -1, false);
      const at::Tensor codes = p.codes.reshape({-1, 32}), scales = p.scales.reshape({-1});
      const at::Tensor blocks = latmix::read_gguf_bytes(f, *info).reshape({-1, 17});
      ASSERT_EQ(blocks.size(0), codes.size(0));
      EXPECT_TRUE(at::equal(blocks.select(1, 0), scales)) << tensor << ": E8M0 bytes";
      const at::Tensor qs = blocks.narrow(1, 1, 16);
      EXPECT_TRUE(at::equal(qs.bitwise_and(15), codes.narrow(1, 0, 16))) << tensor << ": low nibbles = elements 0..15";
      EXPECT_TRUE(at::equal(at::bitwise_right_shift(qs, 4), codes.narrow(1, 16, 16)))
          << tensor << ": high nibbles = elements 16..31";
      EXPECT_TRUE(at::equal(latmix::read_gguf_tensor(f, *info), latmix::fake_quantize(w, format))) << tensor;
      ++checked;
    }
  }
  EXPECT_EQ(checked, 42);
  // Float tensors: F32 as stored; norms F32.
  EXPECT_TRUE(
      at::equal(latmix::read_gguf_tensor(f, *f.tensor("token_embd.weight")), fp.weights().embed.to(at::kFloat)));
  EXPECT_EQ(f.tensor("blk.0.attn_norm.weight")->type, latmix::GgmlType::F32);
  // Metadata and the vocabulary.
  EXPECT_EQ(key(f, "general.architecture").value, "llama");
  EXPECT_EQ(key(f, "general.file_type").value, 38);
  EXPECT_EQ(key(f, "llama.block_count").value, 6);
  EXPECT_EQ(key(f, "llama.attention.head_count_kv").value, 2);
  EXPECT_EQ(key(f, "llama.rope.dimension_count").value, 64);
  EXPECT_EQ(key(f, "tokenizer.ggml.model").value, "gpt2");
  EXPECT_EQ(key(f, "tokenizer.ggml.pre").value, "llama-bpe");
  EXPECT_EQ(key(f, "tokenizer.ggml.tokens").value.size(), 8192u);
  EXPECT_EQ(key(f, "tokenizer.ggml.tokens").value[0], "<|begin_of_text|>");
  EXPECT_EQ(key(f, "tokenizer.ggml.token_type").value[0], 3);  // control
  EXPECT_EQ(key(f, "tokenizer.ggml.merges").value.size(), 7934u);
  EXPECT_EQ(key(f, "tokenizer.ggml.merges").value[0], "\u0120 t");
  EXPECT_EQ(key(f, "tokenizer.ggml.add_bos_token").value, false);  // our convention: no BOS
  EXPECT_EQ(key(f, "tokenizer.ggml.eos_token_id").value, 1);
  // latmix verify reads it back.
  const latmix::ExportVerification v = latmix::verify_export(o.out);
  EXPECT_TRUE(v.ok()) << v.describe();
}

TEST(ExportGguf, FloatTypesAndFoldedPlans) {
  const std::string src = latmix::test::source_path(kModel);
  const std::string root = latmix::test::temp_dir("export-gguf-f16");
  const latmix::Model fp = latmix::load_model(src);
  latmix::TransformPlan plan;  // folds: residual and value rotations
  plan.residual = std::make_shared<latmix::HadamardTransform>(256, 1);
  for (int l = 0; l < 6; ++l) plan.value.push_back(std::make_shared<latmix::HadamardTransform>(64, 10 + l));
  latmix::ExportOptions o;
  o.kind = latmix::ExportKind::Gguf;
  o.gguf_float = latmix::GgmlType::F16;
  o.out = root + "/g";
  const latmix::ExportResult r =
      latmix::export_model(fp, src, plan, latmix::parse_quant_spec("w=mxfp4,a=none"), nullptr, o);
  ASSERT_TRUE(r.verification.ok()) << r.verification.describe();
  const latmix::GgufFile f = latmix::read_gguf(o.out + "/model.gguf");
  EXPECT_EQ(f.tensor("token_embd.weight")->type, latmix::GgmlType::F16);
  EXPECT_EQ(f.tensor("output_norm.weight")->type, latmix::GgmlType::F32);
  ASSERT_NE(f.tensor("output.weight"), nullptr);  // the residual transform unties the head
  EXPECT_EQ(f.tensor("output.weight")->type, latmix::GgmlType::F16);
}

TEST(ExportGguf, RefusesWhatGgufCannotHold) {
  const std::string src = latmix::test::source_path(kModel);
  const std::string root = latmix::test::temp_dir("export-gguf-refuse");
  const latmix::Model fp = latmix::load_model(src);
  latmix::ExportOptions o;
  o.kind = latmix::ExportKind::Gguf;
  o.out = root + "/g";
  latmix::TransformPlan online;
  for (int l = 0; l < 6; ++l)
    online.down_online.push_back(std::make_shared<latmix::BlockHadamardTransform>(704, 32, l));
  const std::string a = message_of(
      [&] { latmix::export_model(fp, src, online, latmix::parse_quant_spec("w=mxfp4,a=none"), nullptr, o); });
  EXPECT_NE(a.find("GGUF has no online transforms"), std::string::npos) << a;
  const std::string b =
      message_of([&] { latmix::export_model(fp, src, {}, latmix::parse_quant_spec("w=mxfp6,a=none"), nullptr, o); });
  EXPECT_NE(b.find("no block type for mxfp6"), std::string::npos) << b;
  EXPECT_FALSE(fs::exists(o.out));
}

TEST(Gguf, ContainerRoundTripAndTruncation) {
  const std::string root = latmix::test::temp_dir("gguf-container");
  const std::string path = root + "/t.gguf";
  std::vector<latmix::GgufKeyValue> kv = {{"a.string", latmix::GgufType::STRING, "x y"},
                                          {"a.u32", latmix::GgufType::U32, 7},
                                          {"a.f32", latmix::GgufType::F32, 0.5},
                                          {"a.bool", latmix::GgufType::BOOL, true},
                                          {"a.strings", latmix::GgufType::ARRAY, {"p", "q"}, latmix::GgufType::STRING},
                                          {"a.ints", latmix::GgufType::ARRAY, {-1, 2}, latmix::GgufType::I32}};
  at::manual_seed(1);
  const at::Tensor x = at::randn({3, 64});
  const std::vector<latmix::GgufTensorSource> tensors = {
      {"f32", latmix::GgmlType::F32, {64, 3}, [x] { return x; }},
      {"bf16", latmix::GgmlType::BF16, {64, 3}, [x] { return x.to(at::kBFloat16); }},
      {"mx", latmix::GgmlType::MXFP4, {64, 3}, [x] { return latmix::gguf_mxfp4_encode(x); }}};
  latmix::write_gguf(path, kv, tensors);
  const latmix::GgufFile f = latmix::read_gguf(path);
  ASSERT_EQ(f.metadata.size(), kv.size() + 1);  // + general.alignment
  EXPECT_EQ(f.find("a.string")->value, "x y");
  EXPECT_EQ(f.find("a.ints")->value, nlohmann::json({-1, 2}));
  EXPECT_EQ(f.find("a.bool")->value, true);
  for (const auto& t : f.tensors) EXPECT_EQ(t.offset % 32, 0u) << t.name;
  EXPECT_TRUE(at::equal(latmix::read_gguf_tensor(f, *f.tensor("f32")), x));
  EXPECT_TRUE(at::equal(latmix::read_gguf_tensor(f, *f.tensor("bf16")), x.to(at::kBFloat16).to(at::kFloat)));
  EXPECT_TRUE(at::equal(latmix::read_gguf_tensor(f, *f.tensor("mx")), latmix::fake_quantize(x, latmix::MxFormat{})));
  // A produced tensor of the wrong size, and a truncated file, are errors naming the file.
  const std::vector<latmix::GgufTensorSource> wrong = {
      {"w", latmix::GgmlType::F32, {64, 3}, [] { return at::zeros({10}); }}};
  EXPECT_THROW(latmix::write_gguf(root + "/w.gguf", kv, wrong), latmix::Error);
  fs::resize_file(path, fs::file_size(path) - 100);
  const std::string m = message_of([&] { latmix::read_gguf(path); });
  EXPECT_NE(m.find(path), std::string::npos) << m;
  EXPECT_NE(m.find("tensor mx"), std::string::npos) << m;
}
