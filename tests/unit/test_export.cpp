// Export on a tiny random Llama written to a temp folder: effective weights behind online affine
// transforms (checked against the engine's own fold + hook, an independent path), packed codes
// decoded here from the format description, manifests and their tamper detection, the target
// and space checks, cancel, and fingerprints.
#include <c10/core/GradMode.h>
#include <gtest/gtest.h>
#include <unistd.h>

#include <ATen/ATen.h>

#include <filesystem>
#include <fstream>
#include <functional>
#include <nlohmann/json.hpp>

#include "latmix/error.h"
#include "latmix/export.h"
#include "latmix/files.h"
#include "latmix/tensor_io.h"
#include "test_paths.h"

namespace fs = std::filesystem;
using nlohmann::json;

namespace {

// A Llama with hidden 64, MLP 128, 4 heads of 16 (2 kv heads), 2 layers, vocab 96, untied, bf16.
std::string write_tiny_model(const std::string& dir, uint64_t seed = 7) {
  fs::create_directories(dir);
  const json config = {{"architectures", {"LlamaForCausalLM"}},
                       {"model_type", "llama"},
                       {"hidden_size", 64},
                       {"intermediate_size", 128},
                       {"num_hidden_layers", 2},
                       {"num_attention_heads", 4},
                       {"num_key_value_heads", 2},
                       {"head_dim", 16},
                       {"max_position_embeddings", 128},
                       {"rms_norm_eps", 1e-5},
                       {"rope_theta", 10000.0},
                       {"hidden_act", "silu"},
                       {"vocab_size", 96},
                       {"tie_word_embeddings", false},
                       {"torch_dtype", "bfloat16"},
                       {"bos_token_id", 0},
                       {"eos_token_id", 1}};
  latmix::write_file_atomic(dir + "/config.json", config.dump(2));
  at::manual_seed(static_cast<int64_t>(seed));
  std::vector<std::pair<std::string, at::Tensor>> t;
  auto w = [&](const std::string& name, std::vector<int64_t> shape, double scale) {
    t.emplace_back(name, (at::randn(shape) * scale).to(at::kBFloat16));
  };
  w("model.embed_tokens.weight", {96, 64}, 1.0);
  for (int l = 0; l < 2; ++l) {
    const std::string p = "model.layers." + std::to_string(l) + ".";
    t.emplace_back(p + "input_layernorm.weight", (1 + 0.1 * at::randn({64})).to(at::kBFloat16));
    w(p + "self_attn.q_proj.weight", {64, 64}, 0.12);
    w(p + "self_attn.k_proj.weight", {32, 64}, 0.12);
    w(p + "self_attn.v_proj.weight", {32, 64}, 0.12);
    w(p + "self_attn.o_proj.weight", {64, 64}, 0.12);
    t.emplace_back(p + "post_attention_layernorm.weight", (1 + 0.1 * at::randn({64})).to(at::kBFloat16));
    w(p + "mlp.gate_proj.weight", {128, 64}, 0.12);
    w(p + "mlp.up_proj.weight", {128, 64}, 0.12);
    w(p + "mlp.down_proj.weight", {64, 128}, 0.09);
  }
  t.emplace_back("model.norm.weight", (1 + 0.1 * at::randn({64})).to(at::kBFloat16));
  w("lm_head.weight", {96, 64}, 0.12);
  latmix::write_safetensors(dir + "/model.safetensors", t, {{"format", "pt"}});
  return dir;
}

std::shared_ptr<latmix::AffineTransform> affine_with_bias(int64_t d, uint64_t seed) {
  auto t = std::make_shared<latmix::AffineTransform>(d, latmix::AffineTransform::Param::QR,
                                                     latmix::OrthogonalTransform::random(d, seed)->q());
  c10::NoGradGuard no_grad;
  at::manual_seed(static_cast<int64_t>(seed));
  for (const at::Tensor& p : t->parameters()) {
    at::Tensor m = p;
    m.add_(at::randn_like(p) * 0.05);
  }
  return t;
}

std::vector<int32_t> some_ids(int64_t n) {
  at::manual_seed(3);
  const at::Tensor r = at::randint(2, 96, {n}, at::kInt);
  return std::vector<int32_t>(r.data_ptr<int32_t>(), r.data_ptr<int32_t>() + n);
}

// The reference: the engine's fold (online hooks) and quantizer, without activation quantization.
latmix::Model in_memory_weight_quantized(const latmix::Model& fp, const latmix::TransformPlan& plan,
                                         const latmix::QuantSpec& spec) {
  latmix::Model work = fp;
  latmix::FoldOptions fo;
  fo.missing_bias = latmix::MissingBias::Create;
  latmix::fold_transforms(work, plan, fo);
  latmix::QuantizedModel q = latmix::quantize_model(work, spec);
  if (q.activation_hook) q.model.remove_hook(q.activation_hook);
  return q.model;
}

bool dir_has_temp(const std::string& dir) {
  for (const auto& e : fs::directory_iterator(dir)) {
    if (e.path().filename().string().find("latmix-tmp") != std::string::npos) return true;
  }
  return false;
}

at::Tensor plan_signs(const latmix::TransformPlan& plan, size_t layer) {
  return dynamic_cast<const latmix::BlockHadamardTransform&>(*plan.down_online[layer]).signs().to(at::kFloat);
}

using latmix::test::message_of;

}  // namespace

TEST(Export, FoldedBf16OnlineAffineTransformsGiveTheInMemoryModel) {
  const std::string root = latmix::test::temp_dir("export-online");
  const std::string src = write_tiny_model(root + "/src");
  const latmix::Model fp = latmix::load_model(src);
  latmix::TransformPlan plan;
  plan.residual = std::make_shared<latmix::HadamardTransform>(64, 1);
  for (int l = 0; l < 2; ++l) {
    plan.value.push_back(std::make_shared<latmix::HadamardTransform>(16, 10 + l));
    plan.down_online.push_back(affine_with_bias(128, 20 + l));  // LATMiX-style: affine with bias v
    plan.mlp_online.push_back(std::make_shared<latmix::BlockHadamardTransform>(64, 32, 30 + l));
  }
  const latmix::QuantSpec spec = latmix::parse_quant_spec("w=mxfp4,a=mxfp4");
  latmix::ExportOptions o;
  o.out = root + "/out";
  o.verify_ids = some_ids(200);
  o.verify_text = "random ids";
  o.verify_ppl.seqlen = 50;
  const latmix::ExportResult r = latmix::export_model(fp, src, plan, spec, nullptr, o);
  EXPECT_TRUE(r.verification.ok()) << r.verification.describe();
  // The down biases a v needs: the config declares mlp_bias, and gate/up get zero biases.
  const json cfg = json::parse(latmix::read_text_file(o.out + "/config.json"));
  EXPECT_TRUE(cfg["mlp_bias"].get<bool>());
  EXPECT_EQ(cfg["torch_dtype"], "bfloat16");
  EXPECT_FALSE(cfg.contains("quantization_config"));

  // Independent check: the folder's logits against the engine's folded model with its hooks.
  const latmix::Model ref = in_memory_weight_quantized(fp, plan, spec);
  const latmix::Model back = latmix::load_model(o.out);
  at::manual_seed(5);
  const at::Tensor ids = at::randint(0, 96, {2, 24}, at::kLong);
  const at::Tensor a = ref.forward(ids), b = back.forward(ids);
  const double err = (a - b).abs().max().item<double>(), range = a.abs().max().item<double>();
  std::printf(
      "tiny Llama, residual Hadamard + value Hadamard + online affine down + block-Hadamard mlp_online: "
      "max |dlogit| exported vs in-memory = %.3g (range %.3g)\n",
      err, range);
  EXPECT_LT(err, 0.02 * range);  // bf16 storage of the effective weights
  // Without the online transforms the exported down_proj would be the transformed-basis weight:
  // the effective weight differs from it by far more than bf16 rounding.
  const at::Tensor down_eff =
      latmix::TensorStore::open(o.out).get("model.layers.0.mlp.down_proj.weight").to(at::kFloat);
  const at::Tensor down_q = ref.weights().layers[0].down.to(at::kFloat);
  EXPECT_GT((down_eff - down_q).abs().max().item<double>(), 0.01);
}

TEST(Export, CompressedTensorsPackedCodesDecodeBitForBit) {
  const std::string root = latmix::test::temp_dir("export-ct");
  const std::string src = write_tiny_model(root + "/src");
  const latmix::Model fp = latmix::load_model(src);
  latmix::TransformPlan plan;
  for (int l = 0; l < 2; ++l)
    plan.down_online.push_back(std::make_shared<latmix::BlockHadamardTransform>(128, 32, 40 + l));
  const latmix::QuantSpec spec = latmix::parse_quant_spec("w=mxfp4,a=none,layers=1");
  latmix::ExportOptions o;
  o.kind = latmix::ExportKind::CompressedTensors;
  o.out = root + "/ct";
  const latmix::ExportResult r = latmix::export_model(fp, src, plan, spec, nullptr, o);
  EXPECT_TRUE(r.verification.ok()) << r.verification.describe();

  // Decode here, from the format description: two E2M1 codes per byte (low nibble first),
  // sign bit 3, magnitudes 0 .5 1 1.5 2 3 4 6, times 2^(scale - 127) per 32 columns.
  const float e2m1[8] = {0, 0.5f, 1, 1.5f, 2, 3, 4, 6};
  const latmix::Model ref = in_memory_weight_quantized(fp, plan, spec);
  const latmix::TensorStore store = latmix::TensorStore::open(o.out);
  const at::Tensor packed = store.get("model.layers.1.mlp.down_proj.weight_packed").contiguous();
  const at::Tensor scale = store.get("model.layers.1.mlp.down_proj.weight_scale").contiguous();
  ASSERT_EQ(packed.sizes(), (std::vector<int64_t>{64, 64}));
  ASSERT_EQ(scale.sizes(), (std::vector<int64_t>{64, 4}));
  at::Tensor decoded = at::empty({64, 128});
  const uint8_t* p = packed.data_ptr<uint8_t>();
  const uint8_t* s = scale.data_ptr<uint8_t>();
  for (int64_t i = 0; i < 64; ++i) {
    for (int64_t j = 0; j < 128; ++j) {
      const uint8_t byte = p[i * 64 + j / 2];
      const uint8_t code = j % 2 == 0 ? byte & 15 : byte >> 4;
      const float mag = e2m1[code & 7] * std::ldexp(1.0f, s[i * 4 + j / 32] - 127);
      decoded[i][j] = (code & 8) ? -mag : mag;
    }
  }
  EXPECT_TRUE(at::equal(decoded, ref.weights().layers[1].down.to(at::kFloat)));
  // Layer 0 is not quantized (layers=1): plain bf16 weights, listed in ignore.
  EXPECT_TRUE(store.contains("model.layers.0.mlp.down_proj.weight"));
  EXPECT_FALSE(store.contains("model.layers.0.mlp.down_proj.weight_packed"));
  // The online transform: A = B D (random signs D, then 32-blocks of one Hadamard B). D is folded
  // into up_proj's rows, so the stored W = sqrt(32) B_block^T (float32, head_dim 32), applied per
  // block as x W / sqrt(32), gives B; with the flipped up rows, B D x = A x.
  const at::Tensor stored = store.get("model.layers.1.mlp.down_proj.down_online_input.weight");
  ASSERT_EQ(stored.scalar_type(), at::kFloat);
  ASSERT_EQ(stored.sizes(), (std::vector<int64_t>{32, 32}));
  const auto* bh = dynamic_cast<const latmix::BlockHadamardTransform*>(plan.down_online[1].get());
  const at::Tensor signs = bh->signs().to(at::kFloat);
  const at::Tensor a_t = plan.down_online[1]->matrix().t();
  const at::Tensor b_t = at::kron(at::eye(4), stored / std::sqrt(32.0));
  EXPECT_LT((b_t - signs.unsqueeze(1) * a_t).abs().max().item<double>(), 1e-6);
  const at::Tensor up0 = store.get("model.layers.0.mlp.up_proj.weight").to(at::kFloat);
  EXPECT_TRUE(at::equal(
      up0,
      (ref.weights().layers[0].up.to(at::kFloat) * plan_signs(plan, 0).unsqueeze(1)).to(at::kBFloat16).to(at::kFloat)));
  const json q = json::parse(latmix::read_text_file(o.out + "/config.json"))["quantization_config"];
  EXPECT_EQ(q["format"], "mxfp4-pack-quantized");
  EXPECT_EQ(q["quant_method"], "compressed-tensors");
  EXPECT_TRUE(q["config_groups"]["group_0"]["input_activations"].is_null());
  EXPECT_EQ(q["config_groups"]["group_0"]["weights"]["group_size"], 32);
  EXPECT_EQ(q["ignore"].size(), 8u);  // lm_head + layer 0's seven linears
  const json& tc = q["transform_config"]["config_groups"]["down_online"];
  EXPECT_EQ(q["transform_config"]["config_groups"].size(), 1u);  // both layers' blocks are the same
  EXPECT_EQ(tc["apply"][0]["location"], "input");
  EXPECT_EQ(tc["apply"][0]["targets"].size(), 2u);
  EXPECT_EQ(tc["head_dim"], 32);
  const latmix::ExportVerification v = latmix::verify_export(o.out);
  EXPECT_TRUE(v.ok()) << v.describe();
}

TEST(Export, CompressedTensorsRefusesWhatItCannotHold) {
  const std::string root = latmix::test::temp_dir("export-ct-refuse");
  const std::string src = write_tiny_model(root + "/src");
  const latmix::Model fp = latmix::load_model(src);
  latmix::ExportOptions o;
  o.kind = latmix::ExportKind::CompressedTensors;
  o.out = root + "/ct";
  const std::string fmt =
      message_of([&] { latmix::export_model(fp, src, {}, latmix::parse_quant_spec("w=mxfp6,a=none"), nullptr, o); });
  EXPECT_NE(fmt.find("mxfp4-pack-quantized format holds MXFP4 weights"), std::string::npos) << fmt;
  latmix::TransformPlan plan;
  for (int l = 0; l < 2; ++l) plan.down_online.push_back(affine_with_bias(128, 50 + l));
  const std::string bias =
      message_of([&] { latmix::export_model(fp, src, plan, latmix::parse_quant_spec("w=mxfp4"), nullptr, o); });
  EXPECT_NE(bias.find("has a bias v, which transform_config cannot declare"), std::string::npos) << bias;
  EXPECT_FALSE(fs::exists(o.out));
  EXPECT_FALSE(dir_has_temp(root));
}

TEST(Export, CompressedTensorsOneGroupPerDistinctMatrixCheckedAsRuntimesReadThem) {
  const std::string root = latmix::test::temp_dir("export-ct-groups");
  const std::string src = write_tiny_model(root + "/src");
  const latmix::Model fp = latmix::load_model(src);
  latmix::TransformPlan plan;  // a different dense rotation per layer: one group each
  for (int l = 0; l < 2; ++l) plan.down_online.push_back(latmix::OrthogonalTransform::random(128, 60 + l));
  latmix::ExportOptions o;
  o.kind = latmix::ExportKind::CompressedTensors;
  o.out = root + "/ct";
  o.verify_ids = some_ids(200);  // the perplexity check reads every group back (quarot's per-layer signs)
  o.verify_ppl.seqlen = 50;
  const latmix::ExportResult r =
      latmix::export_model(fp, src, plan, latmix::parse_quant_spec("w=mxfp4,a=mxfp4"), nullptr, o);
  ASSERT_TRUE(r.verification.ok()) << r.verification.describe();
  ASSERT_TRUE(r.verification.figures.contains("perplexity")) << r.verification.describe();
  const std::string cfg_path = o.out + "/config.json";
  json cfg = json::parse(latmix::read_text_file(cfg_path));
  json& groups = cfg["quantization_config"]["transform_config"]["config_groups"];
  ASSERT_EQ(groups.size(), 2u);
  EXPECT_EQ(groups["down_online_1"]["apply"][0]["targets"], json({"model.layers.1.mlp.down_proj"}));
  EXPECT_TRUE(groups["down_online_1"]["head_dim"].is_null());
  const latmix::TensorStore store = latmix::TensorStore::open(o.out);
  const at::Tensor w1 = store.get("model.layers.1.mlp.down_proj.down_online_1_input.weight");
  EXPECT_EQ(w1.scalar_type(), at::kFloat);
  EXPECT_LT((w1.to(at::kDouble) / std::sqrt(128.0) - plan.down_online[1]->matrix().t().to(at::kDouble))
                .abs()
                .max()
                .item<double>(),
            1e-6);
  // What a runtime sees in the README and the output: which runtime applies which part.
  const std::string readme = latmix::read_text_file(o.out + "/README.md");
  EXPECT_NE(readme.find("**not the online transforms**"), std::string::npos);
  EXPECT_NE(readme.find("**Activations are not quantized**"), std::string::npos);
  bool noted = false;
  for (const auto& n : r.notes)
    noted = noted || n.find("transformers applies the weights but NOT the transforms") != std::string::npos;
  EXPECT_TRUE(noted);
  // One group holding both layers (the fault of issue 18: compressed-tensors would apply layer 0's
  // matrix everywhere) fails latmix verify.
  groups["down_online_0"]["apply"][0]["targets"].push_back("model.layers.1.mlp.down_proj");
  groups.erase("down_online_1");
  latmix::write_file_atomic(cfg_path, cfg.dump(2));
  const latmix::ExportVerification v = latmix::verify_export(o.out);
  bool caught = false;
  for (const auto& c : v.checks) caught = caught || (c.what == "transform groups" && !c.ok);
  EXPECT_TRUE(caught) << v.describe();
}

TEST(Export, CompressedTensorsFoldsBlockHadamardSignsIntoTheNormGain) {
  const std::string root = latmix::test::temp_dir("export-ct-norm-signs");
  const std::string src = write_tiny_model(root + "/src");
  const latmix::Model fp = latmix::load_model(src);
  latmix::TransformPlan plan;  // random-sign block Hadamards before gate/up, different per layer
  for (int l = 0; l < 2; ++l)
    plan.mlp_online.push_back(std::make_shared<latmix::BlockHadamardTransform>(64, 32, 90 + l));
  latmix::ExportOptions o;
  o.kind = latmix::ExportKind::CompressedTensors;
  o.out = root + "/ct";
  const latmix::QuantSpec spec = latmix::parse_quant_spec("w=mxfp4,a=none");
  const latmix::ExportResult r = latmix::export_model(fp, src, plan, spec, nullptr, o);
  ASSERT_TRUE(r.verification.ok()) << r.verification.describe();
  const json q = json::parse(latmix::read_text_file(o.out + "/config.json"))["quantization_config"];
  const json& groups = q["transform_config"]["config_groups"];
  ASSERT_EQ(groups.size(), 1u);  // one canonical 32-block for both layers' four linears
  EXPECT_EQ(groups["mlp_online"]["head_dim"], 32);
  EXPECT_EQ(groups["mlp_online"]["apply"][0]["targets"].size(), 4u);
  // The signs went into post_attention_layernorm's gain: with it, B (D g) * n = A (g * n).
  const latmix::TensorStore store = latmix::TensorStore::open(o.out);
  for (size_t l = 0; l < 2; ++l) {
    const at::Tensor signs =
        dynamic_cast<const latmix::BlockHadamardTransform&>(*plan.mlp_online[l]).signs().to(at::kFloat);
    const std::string p = "model.layers." + std::to_string(l) + ".";
    const at::Tensor gain = store.get(p + "post_attention_layernorm.weight").to(at::kFloat);
    const at::Tensor want = (fp.weights().layers[l].mlp_norm.to(at::kFloat) * signs).to(at::kBFloat16).to(at::kFloat);
    EXPECT_TRUE(at::equal(gain, want)) << l;
    const at::Tensor w = store.get(p + "mlp.up_proj.mlp_online_input.weight").to(at::kDouble);
    const at::Tensor b_t = at::kron(at::eye(2, at::kDouble), w / std::sqrt(32.0));
    EXPECT_LT((b_t - signs.to(at::kDouble).unsqueeze(1) * plan.mlp_online[l]->matrix().t().to(at::kDouble))
                  .abs()
                  .max()
                  .item<double>(),
              1e-6);
  }
}

TEST(Export, CompressedTensorsRefusesABiasOnATransformedLinear) {
  const std::string root = latmix::test::temp_dir("export-ct-bias");
  const std::string src = write_tiny_model(root + "/src");
  {  // the same Llama with attention biases (attention_bias: q, k, v and o)
    json cfg = json::parse(latmix::read_text_file(src + "/config.json"));
    cfg["attention_bias"] = true;
    latmix::write_file_atomic(src + "/config.json", cfg.dump(2));
    const latmix::TensorStore store = latmix::TensorStore::open(src);
    std::vector<std::pair<std::string, at::Tensor>> t;
    for (const auto& name : store.names()) t.emplace_back(name, store.get(name).clone());
    for (int l = 0; l < 2; ++l) {
      const std::string p = "model.layers." + std::to_string(l) + ".self_attn.";
      for (const auto& [proj, rows] : {std::pair<const char*, int64_t>{"q", 64}, {"k", 32}, {"v", 32}, {"o", 64}})
        t.emplace_back(p + proj + "_proj.bias", (at::randn({rows}) * 0.1).to(at::kBFloat16));
    }
    latmix::write_safetensors(src + "/model.safetensors", t, {{"format", "pt"}});
  }
  const latmix::Model fp = latmix::load_model(src);
  latmix::TransformPlan plan;
  for (int l = 0; l < 2; ++l) plan.attn_online.push_back(latmix::OrthogonalTransform::random(64, 80 + l));
  latmix::ExportOptions o;
  o.kind = latmix::ExportKind::CompressedTensors;
  o.out = root + "/ct";
  const std::string m =
      message_of([&] { latmix::export_model(fp, src, plan, latmix::parse_quant_spec("w=mxfp4"), nullptr, o); });
  EXPECT_NE(m.find("has an online transform in front of it and a bias"), std::string::npos) << m;
  EXPECT_FALSE(fs::exists(o.out));
  EXPECT_FALSE(dir_has_temp(root));
}

TEST(Export, ManifestCatchesTamperedMissingAndExtraFiles) {
  const std::string root = latmix::test::temp_dir("export-tamper");
  const std::string src = write_tiny_model(root + "/src");
  const latmix::Model fp = latmix::load_model(src);
  latmix::ExportOptions o;
  o.out = root + "/f";
  latmix::export_model(fp, src, {}, latmix::parse_quant_spec("w=mxfp4"), nullptr, o);
  ASSERT_TRUE(latmix::verify_export(o.out).ok());
  const json manifest = json::parse(latmix::read_text_file(o.out + "/manifest.json"));
  EXPECT_EQ(manifest["kind"], "folded-bf16");
  EXPECT_EQ(manifest["source"]["files_sha256"].size(), 2u);  // config.json, model.safetensors
  {
    std::fstream f(o.out + "/model.safetensors", std::ios::in | std::ios::out | std::ios::binary);
    f.seekp(-5, std::ios::end);
    f.put('\x55');
  }
  latmix::ExportVerification v = latmix::verify_export(o.out);
  EXPECT_FALSE(v.ok());
  EXPECT_NE(v.describe().find("FAIL  file model.safetensors: SHA-256"), std::string::npos) << v.describe();
  std::ofstream(o.out + "/extra.txt") << "x";
  fs::remove(o.out + "/README.md");
  v = latmix::verify_export(o.out);
  EXPECT_NE(v.describe().find("FAIL  file README.md: missing"), std::string::npos) << v.describe();
  EXPECT_NE(v.describe().find("FAIL  file extra.txt: not listed in manifest.json"), std::string::npos);
  EXPECT_THROW(latmix::verify_export(src), latmix::Error);  // no manifest: not an export
}

TEST(Export, TargetChecksSpaceAndCancelLeaveNothing) {
  const std::string root = latmix::test::temp_dir("export-target");
  const std::string src = write_tiny_model(root + "/src");
  const latmix::Model fp = latmix::load_model(src);
  const latmix::QuantSpec spec = latmix::parse_quant_spec("w=mxfp4");
  auto run = [&](const std::string& out, bool overwrite, double space = 1.0, const latmix::JobControl& job = {}) {
    latmix::ExportOptions o;
    o.out = out;
    o.overwrite = overwrite;
    o.space_factor = space;
    return message_of([&] { latmix::export_model(fp, src, {}, spec, nullptr, o, job); });
  };
  EXPECT_NE(run(src, true).find("it would overwrite the source model"), std::string::npos);
  EXPECT_NE(run(root, true).find("it would overwrite the source model"), std::string::npos);  // holds the source
  std::ofstream(root + "/file") << "x";
  EXPECT_NE(run(root + "/file/out", false).find("parent folder does not exist or is not a folder"), std::string::npos);
  EXPECT_NE(run("/proc/latmix-export-test", false).find("cannot create the export's temp folder"), std::string::npos);
  fs::create_directories(root + "/other");
  std::ofstream(root + "/other/keep.txt") << "x";
  EXPECT_NE(run(root + "/other", false).find("already exists"), std::string::npos);
  EXPECT_NE(run(root + "/other", true).find("refusing to replace it"), std::string::npos);
  EXPECT_TRUE(fs::exists(root + "/other/keep.txt"));
  const std::string space = run(root + "/big", false, 1e12);
  EXPECT_NE(space.find("not enough free space for the export (expected about"), std::string::npos) << space;
  // Cancel once the first bytes are written.
  latmix::JobControl job;
  job.progress = [&job](std::string_view stage, int64_t done, int64_t) {
    if (stage == "write" && done > 0) job.cancel.cancel();
  };
  EXPECT_EQ(run(root + "/cancelled", false, 1.0, job), "cancelled");
  EXPECT_FALSE(fs::exists(root + "/big"));
  EXPECT_FALSE(fs::exists(root + "/cancelled"));
  EXPECT_FALSE(dir_has_temp(root));
  // An earlier export is replaced with overwrite, and only then.
  EXPECT_EQ(run(root + "/again", false), "");
  EXPECT_NE(run(root + "/again", false).find("already exists"), std::string::npos);
  EXPECT_EQ(run(root + "/again", true), "");
  EXPECT_TRUE(latmix::verify_export(root + "/again").ok());
  EXPECT_FALSE(dir_has_temp(root));
}

// Issue 20, High 1: a folder that appears at --out while the export runs is never replaced
// without overwrite, and only when it is an earlier export with it; two exports to one new path:
// the second is refused, not silently swapped in.
TEST(Export, TargetThatAppearsDuringTheExportIsNeverReplaced) {
  const std::string root = latmix::test::temp_dir("export-race");
  const std::string src = write_tiny_model(root + "/src");
  const latmix::Model fp = latmix::load_model(src);
  const latmix::QuantSpec spec = latmix::parse_quant_spec("w=mxfp4");
  auto run_with = [&](const std::string& out, bool overwrite, const std::function<void()>& during) {
    latmix::ExportOptions o;
    o.out = out;
    o.overwrite = overwrite;
    bool done = false;
    latmix::JobControl job;
    job.progress = [&](std::string_view stage, int64_t, int64_t) {
      if (stage == "write" && !done) {
        done = true;
        during();
      }
    };
    return message_of([&] { latmix::export_model(fp, src, {}, spec, nullptr, o, job); });
  };
  const std::string out = root + "/out";
  auto user_folder = [&] {
    fs::create_directories(out);
    std::ofstream(out + "/notes.txt") << "mine";
  };
  EXPECT_NE(run_with(out, false, user_folder).find("appeared while the export ran"), std::string::npos);
  EXPECT_TRUE(fs::exists(out + "/notes.txt"));
  EXPECT_NE(run_with(out + "2", true, [&] {
              fs::create_directories(out + "2");
              std::ofstream(out + "2/notes.txt") << "mine";
            }).find("refusing to replace it"),
            std::string::npos);
  EXPECT_TRUE(fs::exists(out + "2/notes.txt"));
  EXPECT_FALSE(dir_has_temp(root));
  // A second export to the same new path finishing first: the later one is refused.
  const std::string both = root + "/both";
  EXPECT_NE(run_with(both, false, [&] { EXPECT_EQ(run_with(both, false, [] {}), ""); })
                .find("appeared while the export ran"),
            std::string::npos);
  EXPECT_TRUE(latmix::verify_export(both).ok());
  // With overwrite, an earlier export that appears is swapped out atomically and removed.
  EXPECT_EQ(run_with(both, true, [&] {}), "");
  EXPECT_TRUE(latmix::verify_export(both).ok());
  EXPECT_FALSE(dir_has_temp(root));
}

// Issue 20, item 4: temp folders of runs killed outright are removed by the next export to the
// same target; a running export's folder (a live pid) and names we did not make are not.
TEST(Export, StaleTempFoldersOfDeadRunsAreRemoved) {
  const std::string root = latmix::test::temp_dir("export-stale");
  const std::string src = write_tiny_model(root + "/src");
  const latmix::Model fp = latmix::load_model(src);
  const std::string dead = root + "/.out.latmix-tmp-4194305-abcdef";  // above the kernel's pid_max
  const std::string live = root + "/.out.latmix-tmp-" + std::to_string(::getpid()) + "-ghijkl";
  const std::string other = root + "/.out.latmix-tmp-notapid";
  for (const auto& d : {dead, live, other}) {
    fs::create_directories(d);
    std::ofstream(d + "/model.safetensors") << "partial";
  }
  latmix::ExportOptions o;
  o.out = root + "/out";
  latmix::export_model(fp, src, {}, latmix::parse_quant_spec("w=mxfp4"), nullptr, o);
  EXPECT_FALSE(fs::exists(dead));
  EXPECT_TRUE(fs::exists(live));
  EXPECT_TRUE(fs::exists(other));
  EXPECT_TRUE(latmix::verify_export(root + "/out").ok());
}

TEST(Export, FingerprintsTieTransformsToTheirModel) {
  const std::string root = latmix::test::temp_dir("export-fingerprint");
  const std::string a = write_tiny_model(root + "/a", 7);
  const std::string b = write_tiny_model(root + "/b", 8);
  const latmix::Model fp = latmix::load_model(a);
  latmix::TransformPlan plan;
  plan.residual = std::make_shared<latmix::HadamardTransform>(64, 3);
  latmix::ExportOptions o;
  o.kind = latmix::ExportKind::Transforms;
  o.out = root + "/t";
  o.method = "quarot";
  const latmix::ExportResult r = latmix::export_model(fp, a, plan, latmix::parse_quant_spec("w=mxfp4"), nullptr, o);
  EXPECT_TRUE(r.verification.ok()) << r.verification.describe();
  const std::string prefix = o.out + "/transforms";
  const latmix::CheckedTransforms t = latmix::load_transforms_checked(prefix, a);
  EXPECT_TRUE(t.notes.empty());
  ASSERT_TRUE(t.plan.residual);
  EXPECT_TRUE(at::equal(t.plan.residual->matrix(), plan.residual->matrix()));
  EXPECT_EQ(t.metadata["settings"]["method"], "quarot");
  // Another model of the same shapes has the same safetensors header; its config tells it apart.
  json cfg_b = json::parse(latmix::read_text_file(b + "/config.json"));
  cfg_b["rope_theta"] = 500000.0;
  latmix::write_file_atomic(b + "/config.json", cfg_b.dump(2));
  std::string e = message_of([&] { latmix::load_transforms_checked(prefix, b); });
  EXPECT_NE(e.find("these transforms were learned for another model"), std::string::npos) << e;
  EXPECT_NE(e.find("config.json: contents differ"), std::string::npos) << e;
  // The model changes on disk after learning: a shard rewritten with other metadata.
  latmix::write_safetensors(
      a + "/model.safetensors",
      std::vector<std::pair<std::string, at::Tensor>>{{"model.embed_tokens.weight", at::zeros({2})}},
      {{"format", "pt"}});
  e = message_of([&] { latmix::load_transforms_checked(prefix, a); });
  EXPECT_NE(e.find("changed on disk since these transforms were learned"), std::string::npos) << e;
  EXPECT_NE(e.find("model.safetensors:"), std::string::npos) << e;
  // Files without a fingerprint load with a note.
  latmix::save_transforms(root + "/plain", plan);
  const latmix::CheckedTransforms plain = latmix::load_transforms_checked(root + "/plain", b);
  ASSERT_EQ(plain.notes.size(), 1u);
  EXPECT_NE(plain.notes[0].find("carries no model fingerprint"), std::string::npos);
}
