// The use-case results read back from their JSON (issue 19: a `latmix --engine` client prints a
// result it gets from the server): each task run for real on the bundled model with small settings,
// then to_json(from_json(to_json(r))) == to_json(r), and the command's text of the result read back
// is the text of the result itself (cli/result_text.h).
#include <gtest/gtest.h>

#include <nlohmann/json.hpp>

#include <string>

#include "api_test_support.h"
#include "latmix/api/analyze.h"
#include "latmix/api/block.h"
#include "latmix/api/evaluate.h"
#include "latmix/api/export.h"
#include "latmix/api/learn.h"
#include "latmix/api/model.h"
#include "latmix/api/statistics.h"
#include "result_text.h"
#include "test_paths.h"

namespace {

using json = nlohmann::json;
using latmix::test::bundled_model;
using latmix::test::bundled_tokenizer;
using latmix::test::kBundledModel;
using latmix::test::kBundledSample;
using latmix::test::source_path;
using latmix::test::temp_dir;

// The JSON compared as text: a figure that is not finite (NaN != NaN) compares as its text too, and
// the wire (CBOR, or JSON text) is what the client reads.
std::string text_of(const json& j) { return j.dump(1); }

// JSON text and back, as a client of `latmix serve` gets it.
json over_the_wire(const json& j) { return json::parse(j.dump()); }

TEST(ResultRoundTrip, DescribeWithOverview) {
  latmix::api::ModelDescription d = latmix::api::describe_model({source_path(kBundledModel), ""});
  d.overview = latmix::api::weight_overview(bundled_model());
  const json j = latmix::api::to_json(d);
  const latmix::api::ModelDescription back = latmix::api::model_description_from_json(over_the_wire(j));
  EXPECT_EQ(text_of(latmix::api::to_json(back)), text_of(j));
  const std::string text = latmix::cli::format_info_text(d);
  EXPECT_NE(text.find("weight outliers: max|W| / RMS(W) of each linear"), std::string::npos) << text;
  EXPECT_EQ(latmix::cli::format_info_text(back), text);
}

TEST(ResultRoundTrip, Statistics) {
  latmix::api::StatisticsRequest r;
  r.model = source_path(kBundledModel);
  r.data = source_path(kBundledSample);
  r.samples = 2;
  r.seqlen = 32;
  r.batch = 2;
  r.layers = {0, 1};
  r.point = "residual,down_in";
  r.transform = "hadamard";
  r.out = temp_dir("result-stats") + "/stats.json";
  const latmix::api::StatisticsResult result = latmix::api::run_statistics(r, bundled_model(), bundled_tokenizer());
  const json j = latmix::api::to_json(result);
  const latmix::api::StatisticsResult back = latmix::api::statistics_result_from_json(over_the_wire(j));
  EXPECT_EQ(text_of(latmix::api::to_json(back)), text_of(j));
  EXPECT_EQ(back.request.out, r.out);
  const std::string text = latmix::cli::format_stats_text(result);
  EXPECT_NE(text.find("; wrote " + r.out), std::string::npos) << text;
  EXPECT_NE(text.find("down_in: "), std::string::npos) << text;
  EXPECT_EQ(latmix::cli::format_stats_text(back), text);
}

TEST(ResultRoundTrip, ExplainBlock) {
  latmix::api::ExplainBlockRequest r;
  r.model = source_path(kBundledModel);
  r.sample = source_path(kBundledSample);
  r.sample_tokens = 24;
  r.layer = 1;
  r.token = 500;  // past the end: clamped, and the note says so
  r.block = 2;
  r.transform = "hadamard";
  const latmix::api::BlockExplanation e = latmix::api::run_explain_block(r, bundled_model(), bundled_tokenizer());
  ASSERT_TRUE(e.token_clamped);
  const json j = latmix::api::to_json(e);
  const latmix::api::BlockExplanation back = latmix::api::block_explanation_from_json(over_the_wire(j));
  EXPECT_EQ(text_of(latmix::api::to_json(back)), text_of(j));
  const std::string text = latmix::cli::format_block_text(e);
  EXPECT_NE(text.find("after hadamard: "), std::string::npos) << text;
  EXPECT_EQ(latmix::cli::format_block_text(back), text);
  const std::string notes = latmix::cli::format_block_notes(e, r);
  EXPECT_NE(notes.find("note: --token 500 is past the end of the 24 tokens: token 23 is shown"), std::string::npos)
      << notes;
  EXPECT_EQ(latmix::cli::format_block_notes(back, r), notes);
}

TEST(ResultRoundTrip, Analyze) {
  latmix::api::AnalyzeRequest r;
  r.model = source_path(kBundledModel);
  r.data = source_path(kBundledSample);
  r.samples = 4;
  r.seqlen = 8;
  r.layer = 1;
  r.point = "residual";
  r.blocks = "8,32";
  r.steps = 2;
  r.batch = 2;
  r.out = temp_dir("result-analyze");
  const latmix::api::AnalyzeResult result = latmix::api::run_analyze(r, bundled_model(), bundled_tokenizer());
  ASSERT_FALSE(result.files.empty());
  const json j = latmix::api::to_json(result);
  const latmix::api::AnalyzeResult back = latmix::api::analyze_result_from_json(over_the_wire(j));
  EXPECT_EQ(text_of(latmix::api::to_json(back)), text_of(j));
  ASSERT_EQ(back.analysis.layers.size(), 1u);
  EXPECT_EQ(back.analysis.layers[0].curves.size(), result.analysis.layers[0].curves.size());
  const std::string text = latmix::cli::format_analyze_text(result);
  EXPECT_NE(text.find("learned_affine"), std::string::npos) << text;
  EXPECT_NE(text.find("; wrote " + r.out + " ("), std::string::npos) << text;
  EXPECT_EQ(latmix::cli::format_analyze_text(back), text);
}

TEST(ResultRoundTrip, EvaluateWithSpec) {
  latmix::api::EvaluateRequest r;
  r.model = source_path(kBundledModel);
  r.tasks = "text:" + source_path(kBundledSample);
  r.limit = 2;
  r.seqlen = 64;
  r.quant = {"w=mxfp4,a=mxfp4"};
  const latmix::api::EvaluateResult result = latmix::api::run_evaluate(r, bundled_model(), bundled_tokenizer());
  const json j = latmix::api::to_json(result);
  const latmix::api::EvaluateResult back = latmix::api::evaluate_result_from_json(over_the_wire(j));
  EXPECT_EQ(text_of(latmix::api::to_json(back)), text_of(j));
  const std::string text = latmix::cli::format_eval_text(result);
  EXPECT_NE(text.find("recovery"), std::string::npos) << text;
  EXPECT_EQ(latmix::cli::format_eval_text(back), text);
}

TEST(ResultRoundTrip, LearnLearnedWithValidationAndOut) {
  latmix::api::LearnRequest r;
  r.model = source_path(kBundledModel);
  r.method = "latmix";
  r.calib = source_path(kBundledSample);
  r.samples = 8;  // one held out for validation
  r.seqlen = 16;
  r.batch = 2;
  r.steps = 3;
  r.out = temp_dir("result-learn") + "/plan";
  const latmix::api::LearnResult result = latmix::api::run_learn(r, bundled_model(), bundled_tokenizer());
  ASSERT_EQ(result.run.curve.size(), 3u);
  ASSERT_GT(result.run.validation_samples, 0);
  ASSERT_FALSE(result.run.conditions.empty());
  const json j = latmix::api::to_json(result);
  const latmix::api::LearnResult back = latmix::api::learn_result_from_json(over_the_wire(j));
  EXPECT_EQ(text_of(latmix::api::to_json(back)), text_of(j));
  EXPECT_TRUE(back.run.plan.empty());  // the plan's tensors do not travel
  const std::string text = latmix::cli::format_learn_text(result);
  EXPECT_NE(text.find("written    " + r.out + ".safetensors, " + r.out + ".json"), std::string::npos) << text;
  EXPECT_NE(text.find("validation ("), std::string::npos) << text;
  EXPECT_EQ(latmix::cli::format_learn_text(back), text);
}

TEST(ResultRoundTrip, LearnFixedPreset) {
  latmix::api::LearnRequest r;
  r.model = source_path(kBundledModel);
  r.method = "quarot";
  r.calib = source_path(kBundledSample);  // its GPTQ weights read calibration text
  r.samples = 2;
  r.seqlen = 16;
  const latmix::api::LearnResult result = latmix::api::run_learn(r, bundled_model(), bundled_tokenizer());
  const json j = latmix::api::to_json(result);
  const latmix::api::LearnResult back = latmix::api::learn_result_from_json(over_the_wire(j));
  EXPECT_EQ(text_of(latmix::api::to_json(back)), text_of(j));
  const std::string text = latmix::cli::format_learn_text(result);
  EXPECT_NE(text.find("transforms fixed ("), std::string::npos) << text;
  EXPECT_EQ(latmix::cli::format_learn_text(back), text);
}

TEST(ResultRoundTrip, Compare) {
  latmix::api::CompareRequest r;
  r.methods = "rtn,latmix";
  r.tasks = "text:" + source_path(kBundledSample);
  r.limit = 2;
  r.eval_seqlen = 64;
  r.out = temp_dir("result-compare");
  r.learning.model = source_path(kBundledModel);
  r.learning.calib = source_path(kBundledSample);
  r.learning.samples = 8;
  r.learning.seqlen = 16;
  r.learning.batch = 2;
  r.learning.steps = 2;
  const latmix::api::CompareResult result = latmix::api::run_compare(r, bundled_model(), bundled_tokenizer());
  ASSERT_EQ(result.comparison.rows.size(), 2u);
  const json j = latmix::api::to_json(result);
  const latmix::api::CompareResult back = latmix::api::compare_result_from_json(over_the_wire(j));
  EXPECT_EQ(text_of(latmix::api::to_json(back)), text_of(j));
  const std::string text = latmix::cli::format_compare_text(result);
  EXPECT_NE(text.find("written:\n  " + r.out), std::string::npos) << text;
  EXPECT_EQ(latmix::cli::format_compare_text(back), text);
}

TEST(ResultRoundTrip, ExportAndVerify) {
  latmix::api::ExportRequest r;
  r.model = source_path(kBundledModel);
  r.method = "rtn";
  r.quant = "w=mxfp4,a=mxfp4";
  r.as = "compressed-tensors";
  r.out = temp_dir("result-export") + "/ct";
  r.verify_data = source_path(kBundledSample);
  r.verify_seqlen = 64;
  r.verify_windows = 2;
  const latmix::api::ExportResult result = latmix::api::run_export(r, bundled_model(), bundled_tokenizer());
  ASSERT_FALSE(result.written.files.empty());
  const json j = latmix::api::to_json(result);
  const latmix::api::ExportResult back = latmix::api::export_result_from_json(over_the_wire(j));
  EXPECT_EQ(text_of(latmix::api::to_json(back)), text_of(j));
  const std::string text = latmix::cli::format_export_text(result);
  EXPECT_NE(text.find("quantization "), std::string::npos) << text;
  EXPECT_EQ(latmix::cli::format_export_text(back), text);

  latmix::api::VerifyRequest v;
  v.path = r.out;
  v.no_ppl = true;
  const latmix::api::VerifyResult verified = latmix::api::run_verify(v);
  const json vj = latmix::api::to_json(verified);
  const latmix::api::VerifyResult vback = latmix::api::verify_result_from_json(over_the_wire(vj));
  EXPECT_EQ(text_of(latmix::api::to_json(vback)), text_of(vj));
  const std::string vtext = latmix::cli::format_verify_text(verified);
  EXPECT_NE(vtext.find(r.out + ": " + latmix::api::verdict(verified) + "\n"), std::string::npos) << vtext;
  EXPECT_EQ(latmix::cli::format_verify_text(vback), vtext);
  EXPECT_EQ(latmix::cli::format_verify_notes(vback), "note: no perplexity check (--no-ppl)\n");
}

}  // namespace
