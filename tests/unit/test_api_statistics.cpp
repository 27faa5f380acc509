// The statistics task (latmix/api/statistics.h): the request's JSON round trip and the strict
// reader's errors; the checks before any work; run_statistics() against the collector it drives
// (collect_activation_stats with the same transform and windows), its per-layer progress, the name
// of a learned plan, and the files it writes.
#include <gtest/gtest.h>

#include <nlohmann/json.hpp>

#include <filesystem>
#include <functional>
#include <string>
#include <vector>

#include "latmix/api/statistics.h"
#include "latmix/calib_transforms.h"
#include "latmix/error.h"
#include "latmix/files.h"
#include "latmix/model.h"
#include "latmix/model_files.h"
#include "latmix/learn.h"
#include "latmix/quant.h"
#include "latmix/transform_fold.h"
#include "api_test_support.h"
#include "test_paths.h"

namespace {

using latmix::api::StatisticsRequest;
using json = nlohmann::json;
namespace fs = std::filesystem;

const std::string& kModel = latmix::test::kBundledModel;
const std::string& kSample = latmix::test::kBundledSample;
using latmix::test::expect_usage_error;

TEST(ApiStatisticsRequest, EveryFieldSurvivesTheJsonRoundTrip) {
  StatisticsRequest r;
  r.model = "/m";
  r.tokenizer = "/t.json";
  r.device = "cuda";
  r.dtype = "bf16";
  r.weights = "memory";
  r.data = "/text.txt";
  r.samples = 3;
  r.seqlen = 33;
  r.sampling = "random";
  r.seed = 9;
  r.bos = true;
  r.format = "mxint8";
  r.block = 16;
  r.scale = "rceil";
  r.round = "away";
  r.transforms = "/plans/p";
  r.point = "mlp_in,down_in";
  r.layers = {0, 2};
  r.top = 3;
  r.batch = 2;
  r.out = "/s.json";
  r.safetensors = "/s.safetensors";
  r.transform_name = "latmix, step 4";
  const json j = latmix::api::to_json(r);
  const StatisticsRequest back = latmix::api::statistics_request_from_json(json::parse(j.dump()));
  EXPECT_EQ(latmix::api::to_json(back), j);
  EXPECT_EQ(back.layers, r.layers);
  EXPECT_EQ(back.scale, "rceil");
  EXPECT_EQ(j.size(), 24u);  // a new field must be added to the table
  const json d = latmix::api::to_json(StatisticsRequest{});
  EXPECT_TRUE(d["block"].is_null() && d["scale"].is_null() && d["round"].is_null());
  auto read = [](const json& in) { return [in] { latmix::api::statistics_request_from_json(in); }; };
  expect_usage_error(read({{"points", "residual"}}), "statistics request: unknown key 'points'");
  expect_usage_error(read({{"layers", "1,2"}}), "key 'layers': expected an array of integers");
  expect_usage_error(read({{"layers", {1, "2"}}}), "key 'layers': expected an integer");
  expect_usage_error(read({{"seed", -1}}), "key 'seed': expected an integer of 0 or more");
  expect_usage_error(read({{"bos", "yes"}}), "key 'bos': expected true or false");
}

TEST(ApiStatisticsRequest, OptionsAreCheckedBeforeAnyWork) {
  StatisticsRequest plain;
  plain.format = "nvfp4";
  plain.point = "residual,,mlp_in";
  const latmix::StatsOptions o = latmix::api::check_statistics_request(plain);
  EXPECT_EQ(o.points.size(), 2u);
  EXPECT_EQ(o.format.block, 16);
  EXPECT_EQ(o.transform_name, "none");
  auto with = [](std::function<void(StatisticsRequest&)> change) {
    return [change] {
      StatisticsRequest changed;
      change(changed);
      latmix::api::check_statistics_request(changed);
    };
  };
  expect_usage_error(with([](StatisticsRequest& r) { r.transform = "spin"; }), "unknown transform 'spin'");
  expect_usage_error(with([](StatisticsRequest& r) {
                       r.transform = "hadamard";
                       r.transforms = "/p";
                     }),
                     "--transform and --transforms exclude each other");
  expect_usage_error(with([](StatisticsRequest& r) { r.point = ","; }), "--point");
  expect_usage_error(with([](StatisticsRequest& r) { r.point = "residual,mlp_out"; }), "mlp_out");
  expect_usage_error(with([](StatisticsRequest& r) { r.format = "mxfp5"; }), "mxfp5");
  expect_usage_error(with([](StatisticsRequest& r) { r.scale = "up"; }), "up");
  expect_usage_error(with([](StatisticsRequest& r) { r.sampling = "odd"; }), "odd");
  expect_usage_error(with([](StatisticsRequest& r) { r.samples = 0; }), "--samples");
  expect_usage_error(with([](StatisticsRequest& r) { r.batch = 0; }), "--batch");
  expect_usage_error(with([](StatisticsRequest& r) { r.top = 0; }), "--top");
  StatisticsRequest learned;
  learned.transforms = "/plans/p";
  EXPECT_EQ(latmix::api::check_statistics_request(learned).transform_name, "learned (/plans/p)");
  learned.transform_name = "latmix, step 4";
  EXPECT_EQ(latmix::api::check_statistics_request(learned).transform_name, "latmix, step 4");
}

class ApiRunStatistics : public ::testing::Test {
 protected:
  // The bundled model, opened once per process (api_test_support.h).
  static void SetUpTestSuite() {
    model_ = &latmix::test::bundled_model();
    tokenizer_ = &latmix::test::bundled_tokenizer();
  }
  static StatisticsRequest request() {
    StatisticsRequest r;
    r.model = latmix::test::source_path(kModel);
    r.data = latmix::test::source_path(kSample);
    r.samples = 3;
    r.seqlen = 48;
    r.batch = 2;
    r.point = "residual,mlp_in";
    return r;
  }
  static const latmix::Model* model_;
  static const latmix::Tokenizer* tokenizer_;
};
const latmix::Model* ApiRunStatistics::model_ = nullptr;
const latmix::Tokenizer* ApiRunStatistics::tokenizer_ = nullptr;

TEST_F(ApiRunStatistics, IsTheCollectorOfItsRequestWithProgressPerLayer) {
  StatisticsRequest r = request();
  r.transform = "hadamard";
  r.seed = 5;
  const std::string dir = latmix::test::temp_dir("api-statistics");
  r.out = dir + "/s.json";
  r.safetensors = dir + "/s.safetensors";
  std::vector<std::pair<std::string, int64_t>> reports;
  latmix::JobControl job;
  job.progress = [&reports](std::string_view stage, int64_t done, int64_t) { reports.emplace_back(stage, done); };
  const latmix::api::StatisticsResult res = latmix::api::run_statistics(r, *model_, *tokenizer_, job);

  const latmix::StatsOptions o = latmix::api::check_statistics_request(r);
  const latmix::CalibrationOptions data_options = latmix::api::statistics_data_options(r, *model_, *tokenizer_);
  const latmix::CalibrationSet data = latmix::load_calibration_text(r.data, *tokenizer_, data_options);
  latmix::Model probe = *model_;  // the collector hooks into a model of its own
  const latmix::ActivationStats want = latmix::collect_activation_stats(
      probe, data, o, latmix::make_builtin_activation_transform("hadamard", *model_, o.format, 5));
  EXPECT_EQ(latmix::stats_to_json(res.stats), latmix::stats_to_json(want));
  EXPECT_EQ(res.stats.transform, "hadamard");
  EXPECT_EQ(res.data, data.describe());
  // --json: the statistics' keys (what --out writes), then the run's.
  json expected = json::parse(latmix::stats_to_json(want));
  expected["request"] = latmix::api::to_json(r);
  expected["data"] = data.describe();
  expected["seconds"] = res.seconds;
  // ... and the text of every outlier token, each id decoded alone by the request's tokenizer.
  json texts = json::object();
  for (const auto& layer : want.layers) {
    for (const auto& channel : layer.original.outliers) {
      for (const auto& t : channel.tokens) texts[std::to_string(t.token_id)] = tokenizer_->decode({t.token_id});
    }
    ASSERT_TRUE(layer.transformed.has_value());
    for (const auto& channel : layer.transformed->outliers) {
      for (const auto& t : channel.tokens) texts[std::to_string(t.token_id)] = tokenizer_->decode({t.token_id});
    }
  }
  EXPECT_GT(texts.size(), 4u);
  expected["token_texts"] = texts;
  EXPECT_EQ(latmix::api::to_json(res), expected);
  EXPECT_EQ(latmix::api::statistics_result_from_json(latmix::api::to_json(res)).token_texts, res.token_texts);
  // A reader refuses what is not an id with its text.
  json bad = latmix::api::to_json(res);
  bad["token_texts"] = {{"twelve", "x"}};
  EXPECT_NE(latmix::test::message_of([&] { latmix::api::statistics_result_from_json(bad); })
                .find("key 'token_texts': 'twelve' is not a token id with its text"),
            std::string::npos);
  // 6 layers x 2 passes (3 sequences in batches of 2), then done; the caller's model keeps no hook.
  ASSERT_EQ(reports.size(), 13u);
  EXPECT_EQ(reports.front().first, "stats");
  EXPECT_EQ(reports.back().second, 12);
  EXPECT_EQ(json::parse(latmix::read_text_file(r.out)), json::parse(latmix::stats_to_json(res.stats)));
  EXPECT_TRUE(fs::is_regular_file(r.safetensors));
}

TEST_F(ApiRunStatistics, ALearnedPlanIsNamedAndCancelStopsAtALayer) {
  // A plan saved as learning and the studio save it: QuaRot's fixed transforms.
  const latmix::MethodResult plan = latmix::obtain_plan(
      *model_, nullptr, latmix::method_defaults("quarot", latmix::parse_quant_spec("mxfp4"), model_->device()));
  const std::string prefix = latmix::test::temp_dir("api-statistics-plan") + "/quarot";
  latmix::save_transforms(prefix, plan.plan);
  StatisticsRequest r = request();
  r.transforms = prefix;
  const latmix::api::StatisticsResult named = latmix::api::run_statistics(r, *model_, *tokenizer_);
  EXPECT_EQ(named.stats.transform, "learned (" + prefix + ")");
  r.transform_name = "quarot, step 0";
  latmix::JobControl job;
  int64_t seen = 0;
  latmix::CancelToken cancel;
  job.cancel = cancel;
  job.progress = [&](std::string_view, int64_t done, int64_t) {
    seen = done;
    if (done == 3) cancel.cancel();
  };
  EXPECT_THROW(latmix::api::run_statistics(r, *model_, *tokenizer_, job), latmix::Cancelled);
  EXPECT_EQ(seen, 3);
}

}  // namespace
