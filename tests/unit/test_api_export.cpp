// The export and verify tasks' requests (latmix/api/export.h): their JSON round trips and the strict
// readers' errors; the one GPTQ calibration default; the command line that repeats a request; the
// option checks before any work; and run_export() / run_verify() on the bundled model: a method
// without a plan learned or refused, the method-mismatch note, nothing left behind on failure.
#include <gtest/gtest.h>

#include <nlohmann/json.hpp>

#include <algorithm>
#include <filesystem>
#include <functional>
#include <string>
#include <vector>

#include "latmix/api/export.h"
#include "latmix/error.h"
#include "latmix/export.h"
#include "latmix/model.h"
#include "latmix/model_files.h"
#include "latmix/transforms.h"
#include "api_test_support.h"
#include "test_paths.h"

namespace {

using latmix::api::ExportRequest;
using latmix::api::VerifyRequest;
using json = nlohmann::json;
namespace fs = std::filesystem;

const std::string& kModel = latmix::test::kBundledModel;
const std::string& kSample = latmix::test::kBundledSample;
using latmix::test::expect_usage_error;

// Every field away from its default.
ExportRequest every_field() {
  ExportRequest r;
  r.model = "/models/m";
  r.tokenizer = "/models/tok.json";
  r.device = "cuda:1";
  r.dtype = "bf16";
  r.weights = "memory";
  r.method = "latmix";
  r.transforms = "/plans/p";
  r.quant = "w=mxfp4,a=mxfp4,weights=gptq";
  r.as = "gguf";
  r.gguf_float = "bf16";
  r.out = "/exports/x.zip";
  r.zip = true;
  r.overwrite = true;
  r.shard_size = 512;
  r.verify_data = "/text.txt";
  r.verify_seqlen = 64;
  r.verify_windows = 0;
  r.no_verify = true;
  r.calib = "/calib.txt";
  r.calib_samples = 4;
  r.calib_seqlen = 32;
  r.transforms_source = "learned in LATMiX Studio";
  return r;
}

TEST(ApiExportRequest, EveryFieldSurvivesTheJsonRoundTrip) {
  const ExportRequest r = every_field();
  const json j = latmix::api::to_json(r);
  const ExportRequest back = latmix::api::export_request_from_json(json::parse(j.dump()));
  EXPECT_EQ(latmix::api::to_json(back), j);
  EXPECT_EQ(back.as, "gguf");
  EXPECT_EQ(back.calib_samples, 4);
  EXPECT_TRUE(back.zip);
  EXPECT_EQ(j.size(), 22u);  // a new field must be added to the table
}

TEST(ApiExportRequest, UnsetOptionalsAreNullAndComeBackUnset) {
  const json j = latmix::api::to_json(ExportRequest{});
  EXPECT_TRUE(j["calib_samples"].is_null());
  EXPECT_TRUE(j["calib_seqlen"].is_null());
  EXPECT_EQ(j["as"], "compressed-tensors");
  const ExportRequest back = latmix::api::export_request_from_json(j);
  EXPECT_EQ(latmix::api::to_json(back), j);
  const ExportRequest p = latmix::api::export_request_from_json({{"method", "gptq"}, {"calib_samples", nullptr}});
  EXPECT_EQ(p.method, "gptq");
  EXPECT_EQ(p.verify_seqlen, 256);
  EXPECT_FALSE(p.calib_samples.has_value());
}

TEST(ApiExportRequest, TheReaderIsStrict) {
  auto read = [](const json& j) { return [j] { latmix::api::export_request_from_json(j); }; };
  expect_usage_error(read({{"kind", "gguf"}}), "export request: unknown key 'kind'");
  expect_usage_error(read({{"zip", "yes"}}), "export request: key 'zip': expected true or false");
  expect_usage_error(read({{"shard_size", 1.5}}), "key 'shard_size': expected an integer");
  expect_usage_error(read({{"out", 3}}), "key 'out': expected a string");
  expect_usage_error(read({{"method", nullptr}}), "key 'method'");
  expect_usage_error(read({{"calib_samples", "4"}}), "key 'calib_samples': expected an integer");
  expect_usage_error(read(json::array()), "expected an object");
}

TEST(ApiVerifyRequest, RoundTripAndStrictness) {
  VerifyRequest r;
  r.path = "/exports/x.zip";
  r.data = "/text.txt";
  r.no_ppl = true;
  const json j = latmix::api::to_json(r);
  EXPECT_EQ(latmix::api::to_json(latmix::api::verify_request_from_json(j)), j);
  EXPECT_EQ(j.size(), 3u);
  expect_usage_error([] { latmix::api::verify_request_from_json({{"nopl", true}}); },
                     "verify request: unknown key 'nopl'");
  expect_usage_error([] { latmix::api::verify_request_from_json({{"no_ppl", 1}}); },
                     "verify request: key 'no_ppl': expected true or false");
  EXPECT_EQ(latmix::api::verify_command_line(r),
            (std::vector<std::string>{"latmix", "verify", "/exports/x.zip", "--data", "/text.txt", "--no-ppl"}));
}

TEST(ApiExport, GptqCalibrationDefaultsAreOneFunction) {
  const auto cpu = latmix::api::gptq_calibration_defaults(false, 4096);
  EXPECT_EQ(cpu.samples, 16);
  EXPECT_EQ(cpu.seqlen, 256);
  EXPECT_EQ(latmix::api::gptq_calibration_defaults(false, 128).seqlen, 128);  // at most the context
  const auto gpu = latmix::api::gptq_calibration_defaults(true, 0);
  EXPECT_EQ(gpu.samples, 128);
  EXPECT_EQ(gpu.seqlen, 2048);
}

TEST(ApiExportRequest, TheCommandLineNamesWhatIsSet) {
  ExportRequest r;
  r.model = "/m";
  r.out = "/o";
  EXPECT_EQ(latmix::api::export_command_line(r),
            (std::vector<std::string>{"latmix", "export", "--model", "/m", "--method", "rtn", "--quant", "mxfp4", "--as",
                                      "compressed-tensors", "--out", "/o", "--device", "cpu"}));
  r.zip = true;
  r.out = "/o.zip";
  r.transforms = "/p";
  r.verify_windows = 2;
  r.calib_samples = 4;
  const std::vector<std::string> a = latmix::api::export_command_line(r);
  const std::string line = [&] {
    std::string s;
    for (const auto& w : a) s += w + " ";
    return s;
  }();
  EXPECT_NE(line.find("--transforms /p --quant"), std::string::npos) << line;
  EXPECT_NE(line.find("--zip --out /o.zip"), std::string::npos) << line;
  EXPECT_NE(line.find("--verify-windows 2"), std::string::npos) << line;
  EXPECT_NE(line.find("--calib-samples 4"), std::string::npos) << line;
  r.no_verify = true;
  const auto b = latmix::api::export_command_line(r);
  EXPECT_NE(std::find(b.begin(), b.end(), "--no-verify"), b.end());
  EXPECT_EQ(std::find(b.begin(), b.end(), "--verify-windows"), b.end());  // the check is skipped
}

TEST(ApiExport, OptionsAreCheckedBeforeAnyWork) {
  ExportRequest r;
  r.model = latmix::test::source_path(kModel);
  r.out = latmix::test::temp_dir("api-export-check") + "/x";
  auto check = [](ExportRequest q) { return [q] { latmix::api::check_export_request(q); }; };
  ExportRequest q = r;
  q.shard_size = 0;
  expect_usage_error(check(q), "--shard-size: expected 1 (MB) or more");
  q = r;
  q.verify_seqlen = 1;
  expect_usage_error(check(q), "--verify-seqlen: expected 2 or more");
  q = r;
  q.gguf_float = "f16";
  expect_usage_error(check(q), "--gguf-float is for --as gguf");
  q = r;
  q.verify_data = latmix::test::source_path(kSample);
  q.no_verify = true;
  expect_usage_error(check(q), "which --no-verify skips");
  q = r;
  q.calib = latmix::test::source_path(kSample);
  expect_usage_error(check(q), "--calib is for weights=gptq");
  if (latmix::api::export_has_bundle()) {
    q = r;
    q.zip = true;
    expect_usage_error(check(q), "--zip: --out must name a .zip file");
  }
  q = r;
  q.as = "onnx";
  EXPECT_THROW(latmix::api::check_export_request(q), latmix::UsageError);
}

// run_export() on the bundled model.
class ApiRunExport : public ::testing::Test {
 protected:
  // The bundled model, opened once per process (api_test_support.h).
  static void SetUpTestSuite() {
    model_ = &latmix::test::bundled_model();
    tokenizer_ = &latmix::test::bundled_tokenizer();
  }
  ExportRequest request(const std::string& tag) const {
    ExportRequest r;
    r.model = latmix::test::source_path(kModel);
    r.quant = "w=mxfp4,a=mxfp4";
    r.as = "folded-bf16";
    r.verify_windows = 1;
    r.verify_seqlen = 64;
    r.out = latmix::test::temp_dir(tag) + "/sub/out";  // the missing parent is made
    return r;
  }
  latmix::api::ExportControl control() const {
    latmix::api::ExportControl c;
    c.bundled_sample = latmix::test::source_path(kSample);
    c.learn.on_note = [this](const std::string& line) { notes_.push_back(line); };
    return c;
  }
  static const latmix::Model* model_;
  static const latmix::Tokenizer* tokenizer_;
  mutable std::vector<std::string> notes_;
};
const latmix::Model* ApiRunExport::model_ = nullptr;
const latmix::Tokenizer* ApiRunExport::tokenizer_ = nullptr;

TEST_F(ApiRunExport, WritesAVerifiedFolderWhoseJsonIsTheClisOutput) {
  const ExportRequest r = request("api-export-rtn");
  const latmix::api::ExportResult res = latmix::api::run_export(r, *model_, *tokenizer_, control());
  EXPECT_TRUE(res.written.verification.ok()) << res.written.verification.describe();
  EXPECT_TRUE(fs::is_regular_file(r.out + "/manifest.json"));
  const json j = latmix::api::to_json(res);
  for (const char* key : {"path", "kind", "zip", "bytes", "seconds", "verification", "notes", "manifest"}) {
    EXPECT_TRUE(j.contains(key)) << key;
  }
  EXPECT_EQ(j["kind"], "folded-bf16");
  EXPECT_NE(latmix::api::describe(res).find("folded-bf16 export written to " + r.out), std::string::npos);
  // And run_verify() checks it again from disk.
  VerifyRequest v;
  v.path = r.out;
  const latmix::api::VerifyResult checked = latmix::api::run_verify(v);
  EXPECT_EQ(latmix::api::verdict(checked), "verified") << checked.verification.describe();
  EXPECT_EQ(checked.kind, "folded-bf16");
}

TEST_F(ApiRunExport, ALearnedMethodWithoutPlanOrTextIsRefusedAndNothingIsLeft) {
  ExportRequest r = request("api-export-learn");
  r.method = "latmix";
  expect_usage_error([&] { latmix::api::run_export(r, *model_, *tokenizer_, control()); }, "learns its transforms");
  EXPECT_FALSE(fs::exists(r.out));
}

TEST_F(ApiRunExport, TransformsOfAnotherMethodAreNotedAndRecordedAsTheRequests) {
  ExportRequest t = request("api-export-plan");
  t.method = "quarot";
  t.as = "transforms";
  latmix::api::run_export(t, *model_, *tokenizer_, control());
  ExportRequest r = request("api-export-mismatch");
  r.method = "mr-gptq";
  r.transforms = t.out + "/transforms";
  const latmix::api::ExportResult res = latmix::api::run_export(r, *model_, *tokenizer_, control());
  bool noted = false;
  for (const auto& n : res.written.notes) noted = noted || n.find("saved with --method quarot; recorded as mr-gptq") != std::string::npos;
  EXPECT_TRUE(noted) << latmix::api::describe(res);
  EXPECT_EQ(res.written.manifest["method"]["name"], "mr-gptq");
}

}  // namespace
