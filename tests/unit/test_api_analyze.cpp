// The analyze task (latmix/api/analyze.h): the request's JSON round trip and the strict reader's
// errors; the checks before any work; the command line; run_analyze() against analyze_mx_error() on
// the same windows, its per-layer capture progress and its report.
#include <gtest/gtest.h>

#include <nlohmann/json.hpp>

#include <algorithm>
#include <filesystem>
#include <functional>
#include <string>
#include <vector>

#include "latmix/api/analyze.h"
#include "latmix/error.h"
#include "latmix/model.h"
#include "latmix/model_files.h"
#include "api_test_support.h"
#include "test_paths.h"

namespace {

using latmix::api::AnalyzeRequest;
using json = nlohmann::json;
namespace fs = std::filesystem;

const std::string& kModel = latmix::test::kBundledModel;
const std::string& kSample = latmix::test::kBundledSample;
using latmix::test::expect_usage_error;

AnalyzeRequest every_field() {
  AnalyzeRequest r;
  r.model = "/m";
  r.tokenizer = "/t.json";
  r.device = "cuda";
  r.dtype = "bf16";
  r.weights = "memory";
  r.data = "/text.txt";
  r.samples = 3;
  r.seqlen = 40;
  r.sampling = "random";
  r.seed = 4;
  r.layer = 2;
  r.point = "mlp_in,down_in";
  r.format = "mxint4";
  r.scale = "ceil";
  r.round = "away";
  r.blocks = "16,32";
  r.detail_block = 16;
  r.steps = 7;
  r.lr = 0.005;
  r.holdout = 0.5;
  r.affine = "qr";
  r.batch = 2;
  r.out = "/report";
  return r;
}

TEST(ApiAnalyzeRequest, EveryFieldSurvivesTheJsonRoundTrip) {
  const AnalyzeRequest r = every_field();
  const json j = latmix::api::to_json(r);
  const AnalyzeRequest back = latmix::api::analyze_request_from_json(json::parse(j.dump()));
  EXPECT_EQ(latmix::api::to_json(back), j);
  EXPECT_EQ(back.layer, 2);
  EXPECT_EQ(back.lr, 0.005);
  EXPECT_EQ(j.size(), 23u);  // a new field must be added to the table
  EXPECT_TRUE(latmix::api::to_json(AnalyzeRequest{})["layer"].is_null());
  auto read = [](const json& in) { return [in] { latmix::api::analyze_request_from_json(in); }; };
  expect_usage_error(read({{"layers", 1}}), "analyze request: unknown key 'layers'");
  expect_usage_error(read({{"layer", "1"}}), "key 'layer': expected an integer");
  expect_usage_error(read({{"lr", "0.1"}}), "key 'lr': expected a number");
  expect_usage_error(read({{"blocks", {16, 32}}}), "key 'blocks': expected a string");
}

TEST(ApiAnalyzeRequest, OptionsAreCheckedBeforeAnyWork) {
  const latmix::MxAnalysisOptions o = latmix::api::check_analyze_request(every_field());
  EXPECT_EQ(o.block_sizes, (std::vector<int64_t>{16, 32}));
  EXPECT_EQ(o.layers, (std::vector<int64_t>{2}));
  EXPECT_EQ(o.points.size(), 2u);
  EXPECT_EQ(o.affine, latmix::AffineTransform::Param::QR);
  auto with = [](std::function<void(AnalyzeRequest&)> change) {
    return [change] {
      AnalyzeRequest changed;
      change(changed);
      latmix::api::check_analyze_request(changed);
    };
  };
  expect_usage_error(with([](AnalyzeRequest& r) { r.blocks = "16,x"; }), "--blocks: 'x' is not a whole number");
  expect_usage_error(with([](AnalyzeRequest& r) { r.blocks = "16,2x"; }), "--blocks: '2x' is not a whole number");
  expect_usage_error(with([](AnalyzeRequest& r) { r.blocks = "0"; }), "--blocks: block sizes must be >= 1");
  expect_usage_error(with([](AnalyzeRequest& r) { r.point = ""; }), "--point");
  expect_usage_error(with([](AnalyzeRequest& r) { r.point = "residual,mlp"; }), "--point: ");
  expect_usage_error(with([](AnalyzeRequest& r) { r.format = "mxfp5"; }), "--format: ");
  expect_usage_error(with([](AnalyzeRequest& r) { r.scale = "up"; }), "--scale: ");
  expect_usage_error(with([](AnalyzeRequest& r) { r.holdout = 1; }), "--holdout: must be in [0, 1)");
  expect_usage_error(with([](AnalyzeRequest& r) { r.lr = 0; }), "--lr: must be > 0");
  expect_usage_error(with([](AnalyzeRequest& r) { r.affine = "svd"; }), "--affine: expected lu or qr");
  expect_usage_error(with([](AnalyzeRequest& r) { r.steps = -1; }), "--steps");
  expect_usage_error(with([](AnalyzeRequest& r) { r.layer = -1; }), "--layer");
  expect_usage_error(with([](AnalyzeRequest& r) { r.sampling = "odd"; }), "--sampling: ");
}

TEST(ApiAnalyzeRequest, TheCommandLineNamesWhatIsSet) {
  AnalyzeRequest r;
  r.model = "/m";
  r.data = "/text.txt";
  EXPECT_EQ(latmix::api::analyze_command_line(r),
            (std::vector<std::string>{"latmix", "analyze", "--model", "/m", "--data", "/text.txt", "--device", "cpu",
                                      "--out", "DIR"}));
  const std::vector<std::string> all = latmix::api::analyze_command_line(every_field());
  for (const char* o : {"--samples", "--seqlen", "--sampling", "--seed", "--layer", "--point", "--format", "--scale",
                        "--round", "--blocks", "--detail-block", "--steps", "--lr", "--holdout", "--affine", "--batch",
                        "--dtype", "--weights", "--tokenizer"}) {
    EXPECT_NE(std::find(all.begin(), all.end(), o), all.end()) << o;
  }
  EXPECT_EQ(all.back(), "/report");
}

TEST(ApiRunAnalyze, IsTheAnalysisOfItsRequestWithProgressPerLayer) {
  const latmix::Model& model = latmix::test::bundled_model();
  const latmix::Tokenizer* tokenizer = &latmix::test::bundled_tokenizer();
  AnalyzeRequest r;
  r.model = latmix::test::source_path(kModel);
  r.data = latmix::test::source_path(kSample);
  r.samples = 3;
  r.seqlen = 32;
  r.batch = 2;
  r.layer = 1;
  r.steps = 2;
  r.blocks = "16,32";
  r.out = latmix::test::temp_dir("api-analyze") + "/report";
  std::vector<std::pair<std::string, int64_t>> captures;
  latmix::JobControl job;
  job.progress = [&captures](std::string_view stage, int64_t done, int64_t) {
    if (stage == "capture") captures.emplace_back(stage, done);
  };
  const latmix::api::AnalyzeResult res = latmix::api::run_analyze(r, model, *tokenizer, job);
  latmix::Model probe = model;
  const latmix::CalibrationSet data =
      latmix::load_calibration_text(r.data, *tokenizer, latmix::api::analyze_data_options(r));
  const latmix::MxAnalysis want = latmix::analyze_mx_error(probe, data, latmix::api::check_analyze_request(r));
  EXPECT_EQ(latmix::mx_analysis_to_json(res.analysis), latmix::mx_analysis_to_json(want));
  // --json: the analysis's keys (report.json), then the run's.
  json expected = json::parse(latmix::mx_analysis_to_json(want));
  expected["request"] = latmix::api::to_json(r);
  expected["data"] = data.describe();
  expected["seconds"] = res.seconds;
  expected["files"] = res.files;
  EXPECT_EQ(latmix::api::to_json(res), expected);
  EXPECT_EQ(res.data, data.describe());
  // 6 layers x 2 passes, then done.
  ASSERT_EQ(captures.size(), 13u);
  EXPECT_EQ(captures.back().second, 12);
  EXPECT_TRUE(fs::is_regular_file(r.out + "/report.md"));
  EXPECT_FALSE(res.files.empty());
  r.layer = 6;
  expect_usage_error([&] { latmix::api::run_analyze(r, model, *tokenizer); }, "--layer 6 is out of range");
}

}  // namespace
