// The results' readers are strict as the requests' are: an unknown key (at the top or nested) or a
// value of the wrong type is a latmix::UsageError naming the result and the key's path, and derived
// keys that disagree with what they derive from are refused. No task runs here.
#include <gtest/gtest.h>

#include <nlohmann/json.hpp>

#include <functional>
#include <string>

#include "api_test_support.h"
#include "latmix/api/analyze.h"
#include "latmix/api/evaluate.h"
#include "latmix/api/export.h"
#include "latmix/api/learn.h"
#include "latmix/api/statistics.h"

namespace {

using json = nlohmann::json;
using latmix::test::expect_usage_error;

TEST(ResultStrict, Analyze) {
  expect_usage_error([] { latmix::api::analyze_result_from_json({{"bogus", 1}}); },
                     "analyze result: unknown key 'bogus'");
  expect_usage_error([] { latmix::api::analyze_result_from_json({{"seconds", "1"}}); },
                     "analyze result: key 'seconds': expected a number, found string");
  expect_usage_error([] { latmix::api::analyze_result_from_json(json::array()); }, "expected an object");
  const json layer = {{"point", "residual"}, {"tokens", 3.5}};
  expect_usage_error([&] { latmix::api::analyze_result_from_json({{"layers", {layer}}}); },
                     "analyze result: key 'layers[0].tokens': expected an integer");
  const json curve = {{"point", "residual"}, {"transforms", {{"none", {{"sizes", {{{"block", 8}, {"x", 1}}}}}}}}};
  expect_usage_error([&] { latmix::api::analyze_result_from_json({{"layers", {curve}}}); },
                     "unknown key 'layers[0].transforms.none.sizes[0].x'");
  expect_usage_error([] { latmix::api::analyze_result_from_json({{"request", {{"lr", "x"}}}}); },
                     "analyze request: key 'lr'");
  // What is read comes back.
  const latmix::api::AnalyzeResult r = latmix::api::analyze_result_from_json({{"data", "d"}, {"seconds", 2.5}});
  EXPECT_EQ(r.data, "d");
  EXPECT_EQ(r.seconds, 2.5);
}

TEST(ResultStrict, Statistics) {
  expect_usage_error([] { latmix::api::statistics_result_from_json({{"bogus", 1}}); },
                     "statistics result: unknown key 'bogus'");
  expect_usage_error([] { latmix::api::statistics_result_from_json({{"data", 3}}); },
                     "statistics result: key 'data': expected a string");
  // The statistics themselves are stats_from_json()'s: a malformed one is a latmix::Error.
  EXPECT_THROW(latmix::api::statistics_result_from_json({{"kind", "latmix.activation_stats"}, {"block", "x"}}),
               latmix::Error);
}

TEST(ResultStrict, Evaluate) {
  expect_usage_error([] { latmix::api::evaluate_result_from_json({{"bogus", 1}}); },
                     "evaluate result: unknown key 'bogus'");
  expect_usage_error([] { latmix::api::evaluate_result_from_json({{"settings", {{"limits", 1}}}}); },
                     "evaluate result: unknown key 'settings.limits'");
  expect_usage_error([] { latmix::api::evaluate_result_from_json({{"settings", {{"bos", "maybe"}}}}); },
                     "evaluate result: key 'settings.bos': --bos: expected auto, yes or no");
  const json task = {{"task", "t"}, {"items", "3"}};
  expect_usage_error([&] { latmix::api::evaluate_result_from_json({{"results", {task}}}); },
                     "evaluate result: key 'results[0].items': expected an integer");
  expect_usage_error([] { latmix::api::evaluate_result_from_json({{"quantized", {{{"spec", 1}}}}}); },
                     "evaluate result: key 'quantized[0].spec': expected a string");
}

TEST(ResultStrict, Compare) {
  expect_usage_error([] { latmix::api::compare_result_from_json({{"bogus", 1}}); },
                     "compare result: unknown key 'bogus'");
  expect_usage_error([] { latmix::api::compare_result_from_json({{"files", "a"}}); },
                     "compare result: key 'files': expected an array of strings");
  const json row = {{"method", "latmix"}, {"settings", {{"optimizer", "adam"}}}};
  expect_usage_error([&] { latmix::api::compare_result_from_json({{"methods", {row}}}); },
                     "compare result: key 'methods[0].settings.optimizer'");
  const json curve = {{"method", "latmix"}, {"curve", {{{"step", 1}, {"loss", "high"}}}}};
  expect_usage_error([&] { latmix::api::compare_result_from_json({{"methods", {curve}}}); },
                     "compare result: key 'methods[0].curve[0].loss': expected a number");
  const json cond = {{"method", "latmix"}, {"condition_numbers", 3}};
  expect_usage_error([&] { latmix::api::compare_result_from_json({{"methods", {cond}}}); },
                     "compare result: key 'methods[0].condition_numbers': expected an object");
}

TEST(ResultStrict, Learn) {
  expect_usage_error([] { latmix::api::learn_result_from_json({{"bogus", 1}}); }, "learn result: unknown key 'bogus'");
  expect_usage_error([] { latmix::api::learn_result_from_json({{"resumed", 1}}); },
                     "learn result: key 'resumed': expected true or false");
  expect_usage_error([] { latmix::api::learn_result_from_json({{"validation", {{"sample", 1}}}}); },
                     "learn result: unknown key 'validation.sample'");
  expect_usage_error([] { latmix::api::learn_result_from_json({{"settings", {{"schedule", "linear"}}}}); },
                     "learn result: key 'settings.schedule': expected cosine or constant, found 'linear'");
  // steps / first_loss / final_loss repeat the curve.
  const json step = {{"step", 1}, {"total", 1}, {"loss", 2.0}};
  expect_usage_error([&] { latmix::api::learn_result_from_json({{"curve", {step}}, {"steps", 2}}); },
                     "do not match the 'curve'");
  expect_usage_error([&] { latmix::api::learn_result_from_json({{"curve", {step}}, {"final_loss", 1.0}}); },
                     "do not match the 'curve'");
  const latmix::api::LearnResult ok =
      latmix::api::learn_result_from_json({{"curve", {step}}, {"steps", 1}, {"first_loss", 2.0}, {"final_loss", 2.0}});
  ASSERT_EQ(ok.run.curve.size(), 1u);
  EXPECT_EQ(ok.run.curve[0].loss, 2.0);
}

TEST(ResultStrict, ExportAndVerify) {
  expect_usage_error([] { latmix::api::export_result_from_json({{"bogus", 1}}); },
                     "export result: unknown key 'bogus'");
  expect_usage_error([] { latmix::api::export_result_from_json({{"kind", "onnx"}}); }, "export result: key 'kind'");
  expect_usage_error([] { latmix::api::export_result_from_json({{"zip_bytes", -1}}); },
                     "export result: key 'zip_bytes': expected an integer of 0 or more");
  expect_usage_error([] { latmix::api::export_result_from_json({{"files", 2}}); },
                     "export result: key 'files': 2 files, but the manifest lists 0");
  expect_usage_error([] { latmix::api::export_result_from_json({{"quantization", "quantization mxfp4"}}); },
                     "export result: key 'quantization' does not match 'quantization_report'");
  const json linear = {{"name", "q"}, {"weight_sqnr_db", "loud"}};
  expect_usage_error(
      [&] { latmix::api::export_result_from_json({{"quantization_report", {{"spec", "s"}, {"linears", {linear}}}}}); },
      "export result: key 'quantization_report.linears[0].weight_sqnr_db': expected a number (or \"inf\"");
  expect_usage_error([] { latmix::api::verify_result_from_json({{"bogus", 1}}); },
                     "verify result: unknown key 'bogus'");
  expect_usage_error([] { latmix::api::verify_result_from_json({{"checks", {{{"what", "x"}, {"ran", "yes"}}}}}); },
                     "verify result: key 'checks[0].ran': expected true or false");
  // "ok" is what the checks say: one that passed makes it true, and a false "ok" is refused.
  const json passed = {{"what", "x"}, {"ok", true}, {"ran", true}, {"detail", ""}};
  expect_usage_error([&] { latmix::api::verify_result_from_json({{"checks", {passed}}, {"ok", false}}); },
                     "verify result: key 'ok': false, but the checks say true");
  EXPECT_TRUE(latmix::api::verify_result_from_json({{"checks", {passed}}, {"ok", true}}).verification.ok());
}

}  // namespace
