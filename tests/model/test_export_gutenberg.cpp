// Export on real checkpoints: gutenberg-llama-6M (HF folder, bf16) with a QuaRot/MR-GPTQ-style
// plan and GPTQ weights, and the llama2.c stories260K (fp32 .bin): the verification figures and
// round trips through every format. (A full disk is tested in tests/cli/cli_export.sh with ulimit -f:
// a fork of this multi-threaded LibTorch process could hang in OpenMP.)
#include <gtest/gtest.h>

#include <ATen/ATen.h>

#include <cstdio>
#include <filesystem>
#include <nlohmann/json.hpp>

#include "latmix/calib_data.h"
#include "latmix/error.h"
#include "latmix/export.h"
#include "latmix/files.h"
#include "latmix/model_files.h"
#include "latmix/sha256.h"
#include "latmix/tensor_io.h"
#include "test_paths.h"

namespace fs = std::filesystem;
using nlohmann::json;

namespace {

std::string model6m() {
  return latmix::test::source_path("resources/models/gutenberg-llama-6M");
}
std::string stories() {
  return latmix::test::data_path("models/stories260K/stories260K.bin");
}
std::string pride() {
  return latmix::test::source_path("resources/calibration/pride_and_prejudice_ch1-6.txt");
}

// QuaRot-like residual and values, MR-GPTQ's block Hadamard of 32 online before down_proj.
latmix::TransformPlan hadamard_plan(const latmix::ModelConfig& c) {
  latmix::TransformPlan plan;
  plan.residual = std::make_shared<latmix::HadamardTransform>(c.hidden_size, 1);
  for (int64_t l = 0; l < c.num_layers; ++l) {
    plan.value.push_back(std::make_shared<latmix::HadamardTransform>(c.head_dim, 100 + static_cast<uint64_t>(l)));
    plan.down_online.push_back(
        std::make_shared<latmix::BlockHadamardTransform>(c.intermediate_size, 32, 200 + static_cast<uint64_t>(l)));
  }
  return plan;
}

latmix::ExportOptions options(const std::string& out, const std::vector<int32_t>& ids, latmix::ExportKind kind) {
  latmix::ExportOptions o;
  o.kind = kind;
  o.out = out;
  o.verify_ids = ids;
  o.verify_text = "pride_and_prejudice_ch1-6.txt";
  o.verify_ppl.seqlen = 256;
  o.verify_ppl.max_windows = 4;
  return o;
}

std::string sha_of(const std::string& path) {
  return latmix::sha256_file(path);
}

bool has_temp(const std::string& dir) {
  for (const auto& e : fs::directory_iterator(dir)) {
    if (e.path().filename().string().find("latmix-tmp") != std::string::npos) return true;
  }
  return false;
}

}  // namespace

TEST(ExportGutenberg, HadamardPlanFoldedAndPackedVerify) {
  const latmix::Model fp = latmix::load_model(model6m());
  auto tok = latmix::load_model_tokenizer(model6m(), "", 8192);
  const std::vector<int32_t> ids = tok->encode(latmix::read_text_file(pride()));
  const std::string root = latmix::test::temp_dir("export-6m");
  const latmix::TransformPlan plan = hadamard_plan(fp.config());
  const latmix::QuantSpec spec = latmix::parse_quant_spec("w=mxfp4,a=mxfp4");
  const auto f = latmix::export_model(fp, model6m(), plan, spec, nullptr,
                                      options(root + "/f", ids, latmix::ExportKind::FoldedBf16));
  ASSERT_TRUE(f.verification.ok()) << f.verification.describe();
  const json& p = f.verification.figures["perplexity"];
  std::printf(
      "gutenberg-llama-6M, Hadamard residual/value + block-Hadamard(32) down_online, %s RTN: ppl in memory %.4f, "
      "folded-bf16 export %.4f (relative %.2g)\n",
      latmix::to_string(spec).c_str(), p["in_memory"].get<double>(), p["exported"].get<double>(),
      p["relative_difference"].get<double>());
  // The folder is a plain model: no quantization_config, tied head untied by the residual fold.
  const json cfg = json::parse(latmix::read_text_file(root + "/f/config.json"));
  EXPECT_FALSE(cfg["tie_word_embeddings"].get<bool>());
  EXPECT_EQ(cfg["dtype"], "bfloat16");
  EXPECT_TRUE(fs::exists(root + "/f/tokenizer.json") && fs::exists(root + "/f/generation_config.json"));

  const auto ct = latmix::export_model(fp, model6m(), plan, spec, nullptr,
                                       options(root + "/ct", {}, latmix::ExportKind::CompressedTensors));
  ASSERT_TRUE(ct.verification.ok()) << ct.verification.describe();
  EXPECT_EQ(ct.verification.figures["weights_checked"]["tensors"], 42);
  const json q = json::parse(latmix::read_text_file(root + "/ct/config.json"))["quantization_config"];
  EXPECT_FALSE(q["config_groups"]["group_0"]["input_activations"].is_null());  // a=mxfp4: MXFP4 scheme
  EXPECT_EQ(q["transform_config"]["config_groups"]["down_online"]["apply"][0]["targets"].size(), 6u);
  EXPECT_TRUE(latmix::verify_export(root + "/f", ids).ok());
  EXPECT_TRUE(latmix::verify_export(root + "/ct").ok());
  // Mapped, the packed linears (with their transform_config input transforms) are decoded at use:
  // the logits are the in-memory load's, bit for bit.
  latmix::LoadOptions lo;
  lo.mapped = true;
  const latmix::Model map = latmix::load_model(root + "/ct", lo), mem = latmix::load_model(root + "/ct");
  EXPECT_EQ(map.deferred_count(), 42u);
  const at::Tensor window = at::tensor(std::vector<int64_t>(ids.begin(), ids.begin() + 64), at::kLong);
  EXPECT_TRUE(at::equal(map.forward(window), mem.forward(window)));
}

// Issue 20, item 11: a compressed-tensors export records the perplexity of its decoded weights and
// carries the text it was measured on; verify recomputes it, so zeroing the packed codes (or the
// scales) and recomputing every hash in the manifest is caught.
TEST(ExportGutenberg, CompressedTensorsPerplexityCatchesZeroedCodesBehindARecomputedManifest) {
  const latmix::Model fp = latmix::load_model(model6m());
  auto tok = latmix::load_model_tokenizer(model6m(), "", 8192);
  const std::string text = latmix::read_text_file(pride());
  const std::string root = latmix::test::temp_dir("export-ct-ppl");
  latmix::ExportOptions o = options(root + "/ct", tok->encode(text), latmix::ExportKind::CompressedTensors);
  o.verify_text_bytes = text;
  const auto ct = latmix::export_model(fp, model6m(), hadamard_plan(fp.config()), latmix::parse_quant_spec("w=mxfp4"),
                                       nullptr, o);
  ASSERT_TRUE(ct.verification.ok()) << ct.verification.describe();
  const json& p = ct.verification.figures["perplexity"];
  EXPECT_EQ(p["file"], latmix::kPerplexityTextFile);
  EXPECT_LT(p["relative_difference"].get<double>(), 1.0 / 256);
  EXPECT_EQ(latmix::read_text_file(root + "/ct/" + latmix::kPerplexityTextFile), text);
  const latmix::ExportVerification good = latmix::verify_export_with_text(root + "/ct");
  EXPECT_TRUE(good.ok()) << good.describe();
  EXPECT_NE(good.describe().find("ok    perplexity as recorded"), std::string::npos) << good.describe();
  EXPECT_EQ(p["device"], "cpu");
  EXPECT_EQ(p["dtype"], "Float");

  // Recorded on another device: the same sums in another order, so a tolerance (fp32: 1e-4
  // relative) instead of the same digits; beyond it, a failure that says both devices.
  const auto recorded_elsewhere = [&](const std::string& name, const json& device, double factor) {
    const std::string dir = root + "/" + name;
    fs::copy(root + "/ct", dir);
    json manifest = json::parse(latmix::read_text_file(dir + "/manifest.json"));
    json& figure = manifest["verification"]["figures"]["perplexity"];
    if (device.is_null()) figure.erase("device"); else figure["device"] = device;
    figure["exported"] = figure["exported"].get<double>() * factor;
    latmix::write_file_atomic(dir + "/manifest.json", manifest.dump(2));
    return latmix::verify_export_with_text(dir).describe();
  };
  const std::string near = recorded_elsewhere("cuda-near", "cuda", 1 + 5e-5);
  EXPECT_NE(near.find("ok    perplexity as recorded"), std::string::npos) << near;
  EXPECT_NE(near.find("recorded on cuda, measured on cpu: relative difference 5e-05, within 0.0001 (fp32)"),
            std::string::npos) << near;
  const std::string far = recorded_elsewhere("cuda-far", "cuda", 1 + 5e-4);
  EXPECT_NE(far.find("FAIL  perplexity as recorded"), std::string::npos) << far;
  const std::string unnamed = recorded_elsewhere("unnamed", nullptr, 1 + 5e-5);
  EXPECT_NE(unnamed.find("ok    perplexity as recorded"), std::string::npos) << unnamed;
  EXPECT_NE(unnamed.find("recorded on a device the manifest does not name"), std::string::npos) << unnamed;

  for (const char* part : {"weight_packed", "weight_scale"}) {
    const std::string bad = root + "/zeroed-" + part;
    fs::copy(root + "/ct", bad);
    {
      const latmix::TensorStore store = latmix::TensorStore::open(bad);
      std::vector<std::pair<std::string, at::Tensor>> tensors;
      for (const std::string& name : store.names()) {
        at::Tensor t = store.get(name).clone();
        if (name.find(part) != std::string::npos) t.zero_();
        tensors.emplace_back(name, t);
      }
      latmix::write_safetensors(bad + "/model.safetensors.new", tensors, {{"format", "pt"}});
    }
    fs::rename(bad + "/model.safetensors.new", bad + "/model.safetensors");
    json manifest = json::parse(latmix::read_text_file(bad + "/manifest.json"));
    for (auto& f : manifest["files"]) {
      const std::string path = bad + "/" + f["name"].get<std::string>();
      f["bytes"] = fs::file_size(path);
      f["sha256"] = latmix::sha256_file(path);
    }
    latmix::write_file_atomic(bad + "/manifest.json", manifest.dump(2));
    const latmix::ExportVerification v = latmix::verify_export_with_text(bad);
    EXPECT_FALSE(v.ok()) << part;
    EXPECT_NE(v.describe().find("ok    file model.safetensors"), std::string::npos) << v.describe();
    EXPECT_NE(v.describe().find("FAIL  perplexity as recorded"), std::string::npos) << part << "\n" << v.describe();
  }
  // Without the text inside the export, the check is reported as not run, not as a pass.
  fs::remove(root + "/ct/" + std::string(latmix::kPerplexityTextFile));
  const latmix::ExportVerification none = latmix::verify_export_with_text(root + "/ct");
  EXPECT_FALSE(none.ok());
  EXPECT_NE(none.describe().find("SKIP  perplexity as recorded"), std::string::npos) << none.describe();
}

TEST(ExportGutenberg, GptqWeightsAndTransformsRoundTrip) {
  LATMIX_REQUIRE_DATA("models/gutenberg-llama-22M");
  const latmix::Model fp = latmix::load_model(model6m());
  auto tok = latmix::load_model_tokenizer(model6m(), "", 8192);
  latmix::CalibrationOptions co;
  co.samples = 8;
  co.seqlen = 128;
  const latmix::CalibrationSet calib = latmix::load_calibration_text(pride(), *tok, co);
  const std::vector<int32_t> ids = tok->encode(latmix::read_text_file(pride()));
  const std::string root = latmix::test::temp_dir("export-6m-gptq");
  const latmix::TransformPlan plan = hadamard_plan(fp.config());
  const latmix::QuantSpec spec = latmix::parse_quant_spec("w=mxfp4,a=none,weights=gptq");
  const auto direct = latmix::export_model(fp, model6m(), plan, spec, &calib,
                                           options(root + "/direct", ids, latmix::ExportKind::FoldedBf16));
  ASSERT_TRUE(direct.verification.ok()) << direct.verification.describe();
  const json& p = direct.verification.figures["perplexity"];
  std::printf("gutenberg-llama-6M, same plan, %s: ppl in memory %.4f, folded-bf16 export %.4f\n",
              latmix::to_string(spec).c_str(), p["in_memory"].get<double>(), p["exported"].get<double>());
  // Transforms only, then the folded export again from the files: the same bytes.
  auto t = latmix::export_model(fp, model6m(), plan, spec, nullptr,
                                options(root + "/t", {}, latmix::ExportKind::Transforms));
  ASSERT_TRUE(t.verification.ok()) << t.verification.describe();
  const latmix::CheckedTransforms back = latmix::load_transforms_checked(root + "/t/transforms", model6m());
  EXPECT_TRUE(back.notes.empty());
  const auto again = latmix::export_model(fp, model6m(), back.plan, spec, &calib,
                                          options(root + "/again", ids, latmix::ExportKind::FoldedBf16));
  ASSERT_TRUE(again.verification.ok());
  EXPECT_EQ(sha_of(root + "/direct/model.safetensors"), sha_of(root + "/again/model.safetensors"));
  // A transforms file for another model.
  const std::string other = latmix::test::data_path("models/gutenberg-llama-22M");
  try {
    latmix::load_transforms_checked(root + "/t/transforms", other);
    FAIL() << "no error";
  } catch (const latmix::Error& e) {
    EXPECT_NE(std::string(e.what()).find("learned for another model"), std::string::npos) << e.what();
  }
}

TEST(ExportGutenberg, Llama2cCheckpointExportsAsHuggingFaceFolder) {
  LATMIX_REQUIRE_DATA("models/stories260K");
  const latmix::Model fp = latmix::load_model(stories());
  auto tok = latmix::load_model_tokenizer(stories(), "", 512);
  const std::vector<int32_t> ids = tok->encode(latmix::read_text_file(pride()));
  const std::string root = latmix::test::temp_dir("export-stories");
  const latmix::QuantSpec spec = latmix::parse_quant_spec("w=mxfp4,a=none");
  latmix::ExportOptions o = options(root + "/f", ids, latmix::ExportKind::FoldedBf16);
  o.verify_ppl.seqlen = 128;
  const auto r = latmix::export_model(fp, stories(), {}, spec, nullptr, o);
  ASSERT_TRUE(r.verification.ok()) << r.verification.describe();
  const json& p = r.verification.figures["perplexity"];
  std::printf("stories260K (fp32 llama2.c), %s: ppl in memory %.4f, folded-bf16 export %.4f\n",
              latmix::to_string(spec).c_str(), p["in_memory"].get<double>(), p["exported"].get<double>());
  const json cfg = json::parse(latmix::read_text_file(root + "/f/config.json"));
  EXPECT_EQ(cfg["architectures"][0], "LlamaForCausalLM");
  EXPECT_EQ(cfg["intermediate_size"], 172);
  // The SentencePiece model beside the .bin becomes the folder's tokenizer.model. (Not loaded here:
  // in a LibTorch-linked process Debian's sentencepiece fails its protobuf version check.)
  EXPECT_EQ(sha_of(root + "/f/tokenizer.model"), sha_of(latmix::test::data_path("models/stories260K/tok512.model")));
  // compressed-tensors needs input widths that are multiples of 32: 172 is not.
  latmix::ExportOptions c = options(root + "/ct", {}, latmix::ExportKind::CompressedTensors);
  EXPECT_THROW(latmix::export_model(fp, stories(), {}, spec, nullptr, c), latmix::UsageError);
  auto t =
      latmix::export_model(fp, stories(), {}, spec, nullptr, options(root + "/t", {}, latmix::ExportKind::Transforms));
  EXPECT_TRUE(t.verification.ok());
  EXPECT_TRUE(latmix::load_transforms_checked(root + "/t/transforms", stories()).notes.empty());
  EXPECT_FALSE(has_temp(root));
}
