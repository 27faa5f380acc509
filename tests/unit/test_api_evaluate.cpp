// The evaluate and compare tasks (latmix/api/evaluate.h): their requests' JSON round trips and the
// strict readers' errors; the checks before any work; the command line that repeats a comparison;
// run_evaluate() against the pieces it assembles (run_tasks, quantize_model, the one GPTQ
// calibration, recovery.h) and run_compare() against run_comparison(), on the bundled model.
#include <gtest/gtest.h>

#include <nlohmann/json.hpp>

#include <cstdlib>
#include <algorithm>
#include <filesystem>
#include <functional>
#include <string>
#include <vector>

#include "latmix/api/calibration.h"
#include "latmix/api/evaluate.h"
#include "latmix/error.h"
#include "latmix/files.h"
#include "latmix/model.h"
#include "latmix/model_files.h"
#include "latmix/quant.h"
#include "latmix/recovery.h"
#include "api_test_support.h"
#include "test_paths.h"

namespace {

using latmix::api::CompareRequest;
using latmix::api::EvaluateRequest;
using json = nlohmann::json;
namespace fs = std::filesystem;

const std::string& kModel = latmix::test::kBundledModel;
const std::string& kSample = latmix::test::kBundledSample;
using latmix::test::expect_usage_error;

EvaluateRequest every_evaluate_field() {
  EvaluateRequest r;
  r.model = "/models/m";
  r.tokenizer = "/models/tok.json";
  r.device = "cuda:1";
  r.dtype = "bf16";
  r.weights = "memory";
  r.tasks = "wikitext2,piqa";
  r.data_dir = "/data";
  r.limit = 7;
  r.seqlen = 128;
  r.ppl_bos = true;
  r.bos = "no";
  r.batch = 3;
  r.prefix_cache = true;
  r.quant = {"w=mxfp4,a=mxfp4", "w=mxint4,a=none,weights=gptq"};
  r.calib = "/calib.txt";
  r.calib_samples = 4;
  r.calib_seqlen = 32;
  r.out = "/results.json";
  return r;
}

TEST(ApiEvaluateRequest, EveryFieldSurvivesTheJsonRoundTrip) {
  const EvaluateRequest r = every_evaluate_field();
  const json j = latmix::api::to_json(r);
  const EvaluateRequest back = latmix::api::evaluate_request_from_json(json::parse(j.dump()));
  EXPECT_EQ(latmix::api::to_json(back), j);
  EXPECT_EQ(back.quant, r.quant);
  EXPECT_EQ(back.calib_seqlen, 32);
  EXPECT_TRUE(back.prefix_cache);
  EXPECT_EQ(j.size(), 18u);  // a new field must be added to the table
  const json d = latmix::api::to_json(EvaluateRequest{});
  EXPECT_TRUE(d["calib_samples"].is_null());
  EXPECT_EQ(d["quant"], json::array());
  EXPECT_EQ(d["seqlen"], 512);
}

TEST(ApiEvaluateRequest, TheReaderIsStrict) {
  auto read = [](const json& j) { return [j] { latmix::api::evaluate_request_from_json(j); }; };
  expect_usage_error(read({{"spec", "mxfp4"}}), "evaluate request: unknown key 'spec'");
  expect_usage_error(read({{"quant", "mxfp4"}}), "key 'quant': expected an array of strings");
  expect_usage_error(read({{"quant", {"mxfp4", 4}}}), "key 'quant': expected an array of strings");
  expect_usage_error(read({{"limit", "8"}}), "key 'limit': expected an integer");
  expect_usage_error(read({{"ppl_bos", 1}}), "key 'ppl_bos': expected true or false");
  expect_usage_error(read({{"tasks", nullptr}}), "key 'tasks'");
  expect_usage_error(read(json::array()), "expected an object");
}

TEST(ApiEvaluateRequest, OptionsAreCheckedBeforeAnyWork) {
  EvaluateRequest plain;
  plain.tasks = "wikitext2";
  const latmix::EvalOptions o = latmix::api::check_evaluate_request(plain);
  EXPECT_EQ(o.data_dir, latmix::default_eval_data_dir());
  EXPECT_FALSE(o.bos.has_value());
  auto with = [](std::function<void(EvaluateRequest&)> change) {
    return [change] {
      EvaluateRequest changed;
      changed.tasks = "wikitext2";
      change(changed);
      latmix::api::check_evaluate_request(changed);
    };
  };
  expect_usage_error(with([](EvaluateRequest& r) { r.tasks = "wikitext3"; }), "wikitext3");
  expect_usage_error(with([](EvaluateRequest& r) { r.limit = -1; }), "--limit");
  expect_usage_error(with([](EvaluateRequest& r) { r.seqlen = 1; }), "--seqlen");
  expect_usage_error(with([](EvaluateRequest& r) { r.batch = 0; }), "--batch");
  expect_usage_error(with([](EvaluateRequest& r) { r.bos = "maybe"; }), "--bos: expected auto, yes or no");
  expect_usage_error(with([](EvaluateRequest& r) { r.quant = {"w=mxfp4", "w=mxfp5"}; }), "mxfp5");
  expect_usage_error(with([](EvaluateRequest& r) { r.calib = "/c.txt"; }), "--calib needs --quant");
  expect_usage_error(with([](EvaluateRequest& r) {
                       r.quant = {"w=mxfp4"};
                       r.calib_samples = 0;
                     }),
                     "--calib-samples");
}

CompareRequest every_compare_field() {
  CompareRequest r;
  r.methods = "rtn,latmix";
  r.tasks = "frankenstein";
  r.limit = 4;
  r.eval_seqlen = 128;
  r.out = "/reports/r";
  r.learning.model = "/models/m";
  r.learning.quant = "w=mxfp4,a=mxfp4";
  r.learning.steps = 12;
  r.learning.loss = "mse";
  r.learning.seed = 3;
  return r;
}

TEST(ApiCompareRequest, RoundTripAndStrictness) {
  const CompareRequest r = every_compare_field();
  const json j = latmix::api::to_json(r);
  const CompareRequest back = latmix::api::compare_request_from_json(json::parse(j.dump()));
  EXPECT_EQ(latmix::api::to_json(back), j);
  EXPECT_EQ(back.learning.steps, 12);
  EXPECT_EQ(j.size(), 6u);
  EXPECT_EQ(j["learning"], latmix::api::to_json(r.learning));
  auto read = [](const json& in) { return [in] { latmix::api::compare_request_from_json(in); }; };
  expect_usage_error(read({{"method", "rtn"}}), "compare request: unknown key 'method'");
  expect_usage_error(read({{"limit", true}}), "compare request: key 'limit': expected an integer");
  expect_usage_error(read({{"learning", "x"}}), "compare request: key 'learning': expected an object");
  expect_usage_error(read({{"learning", {{"stepz", 3}}}}), "learn request: unknown key 'stepz'");
}

TEST(ApiCompareRequest, MethodsAndSettingsAreCheckedBeforeAnyWork) {
  CompareRequest r = every_compare_field();
  r.methods = "rtn,,latmix,rtn";
  EXPECT_EQ(latmix::api::check_compare_request(r), (std::vector<std::string>{"rtn", "latmix"}));
  r.methods = "rtn,quaroot";
  expect_usage_error([&r] { latmix::api::check_compare_request(r); }, "quaroot");
  r.methods = ",";
  expect_usage_error([&r] { latmix::api::check_compare_request(r); }, "--methods");
  r = every_compare_field();
  r.learning.optimizer = "adam";
  expect_usage_error([&r] { latmix::api::check_compare_request(r); }, "unknown optimizer 'adam'");
  r = every_compare_field();
  r.tasks = "frankenstien";
  expect_usage_error([&r] { latmix::api::check_compare_request(r); }, "frankenstien");
}

TEST(ApiCompareRequest, TheCommandLineNamesTheRequest) {
  CompareRequest r = every_compare_field();
  r.out.clear();
  const std::vector<std::string> a = latmix::api::compare_command_line(r);
  const std::vector<std::string> head = {"latmix", "compare", "--model", "/models/m", "--methods", "rtn,latmix",
                                         "--tasks", "frankenstein", "--limit", "4", "--eval-seqlen", "128"};
  ASSERT_GT(a.size(), head.size());
  EXPECT_EQ(std::vector<std::string>(a.begin(), a.begin() + static_cast<long>(head.size())), head);
  EXPECT_EQ(a.back(), "DIR");  // no report folder yet: the placeholder
  EXPECT_NE(std::find(a.begin(), a.end(), "--steps"), a.end());
  EXPECT_NE(std::find(a.begin(), a.end(), "--loss"), a.end());
}

// The tasks on the bundled model.
class ApiRunEvaluate : public ::testing::Test {
 protected:
  // The bundled model, opened once per process (api_test_support.h).
  static void SetUpTestSuite() {
    model_ = &latmix::test::bundled_model();
    tokenizer_ = &latmix::test::bundled_tokenizer();
  }
  static EvaluateRequest request() {
    EvaluateRequest r;
    r.model = latmix::test::source_path(kModel);
    r.tasks = "text:" + latmix::test::source_path(kSample);
    r.limit = 3;
    r.seqlen = 64;
    return r;
  }
  static const latmix::Model* model_;
  static const latmix::Tokenizer* tokenizer_;
};
const latmix::Model* ApiRunEvaluate::model_ = nullptr;
const latmix::Tokenizer* ApiRunEvaluate::tokenizer_ = nullptr;

TEST_F(ApiRunEvaluate, EachSpecIsItsColumnAsTheEnginePiecesGiveIt) {
  EvaluateRequest r = request();
  r.quant = {"w=mxfp4,a=mxfp4", "w=mxint4,a=none,weights=gptq"};
  r.calib_samples = 4;
  r.calib_seqlen = 64;
  r.out = latmix::test::temp_dir("api-evaluate") + "/results.json";
  std::vector<std::string> notes;
  latmix::api::EvaluateControl control;
  control.bundled_sample = latmix::test::source_path(kSample);
  control.on_note = [&notes](const std::string& n) { notes.push_back(n); };
  const latmix::api::EvaluateResult res = latmix::api::run_evaluate(r, *model_, *tokenizer_, control);

  const latmix::EvalOptions o = latmix::api::check_evaluate_request(r);
  const std::vector<std::string> tasks = latmix::parse_task_list(r.tasks);
  const std::vector<latmix::TaskResult> fp = latmix::run_tasks(*model_, *tokenizer_, tasks, o);
  ASSERT_EQ(res.fp.size(), 1u);
  EXPECT_EQ(res.fp[0].metrics, fp[0].metrics);
  EXPECT_EQ(res.fp[0].items, 3);
  // The GPTQ text: the bundled sample at the sizes given, read once for both specs.
  const latmix::api::GptqCalibration calib =
      latmix::api::gptq_calibration("", 4, 64, *model_, *tokenizer_, control.bundled_sample);
  ASSERT_EQ(notes.size(), 1u);
  EXPECT_EQ(notes[0], calib.note);
  EXPECT_EQ(res.calibration, calib.note);
  ASSERT_EQ(res.quantized.size(), 2u);
  for (size_t i = 0; i < r.quant.size(); ++i) {
    latmix::QuantizedModel q = latmix::quantize_model(*model_, latmix::parse_quant_spec(r.quant[i]), &calib.set);
    const auto want = latmix::run_tasks(q.model, *tokenizer_, tasks, o);
    EXPECT_EQ(res.quantized[i].spec, r.quant[i]);
    EXPECT_EQ(res.quantized[i].describe, q.report.spec);
    EXPECT_EQ(res.quantized[i].results[0].metrics, want[0].metrics) << r.quant[i];
  }
  EXPECT_NE(res.quantized[0].results[0].metrics.at("ppl"), fp[0].metrics.at("ppl"));

  // The JSON: settings, FP, and per spec its results and the recovery recovery.h gives.
  const json j = latmix::api::to_json(res);
  EXPECT_EQ(j["settings"]["quant"], json(r.quant));
  EXPECT_EQ(j["results"][0]["metrics"]["ppl"], fp[0].metrics.at("ppl"));
  ASSERT_EQ(j["quantized"].size(), 2u);
  const latmix::Estimate rec = latmix::recovery("ppl", res.fp[0], res.quantized[1].results[0]);
  EXPECT_DOUBLE_EQ(j["quantized"][1]["recovery"]["tasks"][0]["metrics"]["ppl"]["percent"].get<double>(), rec.value);
  EXPECT_DOUBLE_EQ(j["quantized"][1]["recovery"]["headline"]["percent"].get<double>(), rec.value);
  // --out: the same JSON, written.
  EXPECT_EQ(json::parse(latmix::read_text_file(r.out)), j);
}

TEST_F(ApiRunEvaluate, WithoutGptqNoTextIsReadAndBadOptionsFailFirst) {
  EvaluateRequest r = request();
  r.quant = {"w=mxfp8_e4m3,a=none"};
  std::vector<std::string> notes;
  latmix::api::EvaluateControl control;  // no bundled sample: none needed
  control.on_note = [&notes](const std::string& n) { notes.push_back(n); };
  const latmix::api::EvaluateResult res = latmix::api::run_evaluate(r, *model_, *tokenizer_, control);
  EXPECT_TRUE(notes.empty());
  EXPECT_TRUE(res.calibration.empty());
  ASSERT_EQ(res.quantized.size(), 1u);
  r.quant = {"w=mxint4,a=none,weights=gptq"};
  expect_usage_error([&] { latmix::api::run_evaluate(r, *model_, *tokenizer_, control); }, "give --calib FILE");
  r.limit = -2;
  expect_usage_error([&] { latmix::api::run_evaluate(r, *model_, *tokenizer_, control); }, "--limit");
}

TEST_F(ApiRunEvaluate, CompareIsTheComparisonOfItsRequestWithItsReport) {
  CompareRequest r;
  r.methods = "rtn,quarot";
  r.tasks = "text:" + latmix::test::source_path(kSample);
  r.limit = 2;
  r.eval_seqlen = 64;
  r.out = latmix::test::temp_dir("api-compare") + "/report";
  r.learning.model = latmix::test::source_path(kModel);
  r.learning.calib = latmix::test::source_path(kSample);
  r.learning.samples = 4;
  r.learning.seqlen = 32;
  std::vector<std::string> notes;
  latmix::LearnControl control;
  control.on_note = [&notes](const std::string& n) { notes.push_back(n); };
  const latmix::api::CompareResult res = latmix::api::run_compare(r, *model_, *tokenizer_, control);
  const latmix::Comparison& c = res.comparison;
  EXPECT_EQ(c.model, r.learning.model);
  ASSERT_EQ(c.rows.size(), 2u);
  EXPECT_EQ(c.rows[0].method, "rtn");
  EXPECT_EQ(c.rows[1].method, "quarot");
  ASSERT_FALSE(notes.empty());
  EXPECT_EQ(notes[0], "calibration: " + c.calibration);
  // The methods' settings are learn_settings() of the request for each.
  for (const auto& row : c.rows) {
    latmix::api::LearnRequest one = r.learning;
    one.method = row.method;
    const latmix::CalibrationSet calib = latmix::api::learn_calibration(r.learning, *model_, *tokenizer_);
    EXPECT_EQ(row.settings.to_json(), latmix::api::learn_settings(one, model_->device(), &calib).to_json());
  }
  // FP and RTN as run_tasks and quantize_model give them.
  latmix::EvalOptions o;
  o.data_dir = latmix::default_eval_data_dir();
  o.limit = 2;
  o.seqlen = 64;
  const auto tasks = latmix::parse_task_list(r.tasks);
  EXPECT_EQ(c.fp[0].metrics, latmix::run_tasks(*model_, *tokenizer_, tasks, o)[0].metrics);
  json expected = c.to_json();  // report.json's keys, then the files written
  expected["files"] = res.files;
  EXPECT_EQ(latmix::api::to_json(res), expected);
  for (const char* f : {"report.md", "report.json"}) EXPECT_TRUE(fs::is_regular_file(r.out + "/" + f)) << f;
  EXPECT_EQ(res.files.size(), static_cast<size_t>(std::distance(fs::directory_iterator(r.out), {})));
}

TEST_F(ApiRunEvaluate, AMappedModelTooBigToHoldIsRefusedBeforeAnyWork) {
  latmix::LoadOptions opts;
  opts.mapped = true;
  const latmix::Model mapped = latmix::load_model(latmix::test::source_path(kModel), opts);
  ASSERT_TRUE(mapped.mapped());
  ::setenv("LATMIX_MEMORY_AVAILABLE", "4M", 1);  // 6.5 M parameters: about 24.9 MiB in fp32
  CompareRequest c;
  c.methods = "rtn";
  c.tasks = "text:" + latmix::test::source_path(kSample);
  c.learning.model = latmix::test::source_path(kModel);
  c.learning.calib = latmix::test::source_path(kSample);
  EvaluateRequest e = request();
  e.quant = {"w=mxfp4,a=none"};
  std::string compare_error, evaluate_error;
  try {
    latmix::api::run_compare(c, mapped, *tokenizer_);
  } catch (const latmix::Error& err) {
    compare_error = err.what();
  }
  try {
    latmix::api::run_evaluate(e, mapped, *tokenizer_);
  } catch (const latmix::Error& err) {
    evaluate_error = err.what();
  }
  ::unsetenv("LATMIX_MEMORY_AVAILABLE");
  EXPECT_NE(compare_error.find("Comparing methods: needs about 24.9 MiB"), std::string::npos) << compare_error;
  EXPECT_NE(evaluate_error.find("Quantized evaluation: needs about 24.9 MiB"), std::string::npos) << evaluate_error;
}

}  // namespace
