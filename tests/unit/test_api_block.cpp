// The explain-a-block task (latmix/api/block.h): the request's and the result's JSON round trips
// (+inf written as "inf") and the strict readers' errors; run_explain_block() on the bundled model
// equals the pieces computed directly (capture_activation + inspect_mx_block), clamps a token or
// block past the end and says so, applies a transform, and names the option of a bad value.
#include <gtest/gtest.h>

#include <nlohmann/json.hpp>

#include <cmath>
#include <functional>
#include <limits>
#include <string>
#include <vector>

#include "latmix/api/block.h"
#include "latmix/calib_data.h"
#include "latmix/error.h"
#include "latmix/files.h"
#include "latmix/model.h"
#include "latmix/model_files.h"
#include "api_test_support.h"
#include "test_paths.h"

namespace {

using latmix::api::BlockExplanation;
using latmix::api::ExplainBlockRequest;
using json = nlohmann::json;

const std::string& kModel = latmix::test::kBundledModel;
const std::string& kSample = latmix::test::kBundledSample;
using latmix::test::expect_usage_error;

ExplainBlockRequest every_field() {
  ExplainBlockRequest r;
  r.model = "/models/m";
  r.tokenizer = "/models/tok.json";
  r.device = "cuda:1";
  r.dtype = "bf16";
  r.point = "mlp_in";
  r.layer = 3;
  r.token = 17;
  r.block = 5;
  r.format = "nvfp4";
  r.transform = "/plans/p";
  r.sample = "/sample.txt";
  r.sample_tokens = 64;
  r.text = "/text.txt";
  r.sequence = 2;
  r.samples = 4;
  r.seqlen = 64;
  r.sampling = "random";
  r.seed = 7;
  r.bos = true;
  r.ids = {1, 2, 3};
  return r;
}

TEST(ApiExplainBlockRequest, EveryFieldSurvivesTheJsonRoundTrip) {
  const json j = latmix::api::to_json(every_field());
  const ExplainBlockRequest back = latmix::api::explain_block_request_from_json(json::parse(j.dump()));
  EXPECT_EQ(latmix::api::to_json(back), j);
  EXPECT_EQ(back.point, "mlp_in");
  EXPECT_EQ(back.seed, 7u);
  EXPECT_TRUE(back.bos);
  EXPECT_EQ(back.ids, (std::vector<int64_t>{1, 2, 3}));
  EXPECT_EQ(j.size(), 20u);  // a new field must be added to the table
  const ExplainBlockRequest p = latmix::api::explain_block_request_from_json({{"layer", 2}});
  EXPECT_EQ(p.layer, 2);
  EXPECT_EQ(p.format, "mxfp4");
  EXPECT_EQ(p.transform, "none");
}

TEST(ApiExplainBlockRequest, TheReaderIsStrict) {
  auto read = [](const json& j) { return [j] { latmix::api::explain_block_request_from_json(j); }; };
  expect_usage_error(read({{"channel", 3}}), "explain-block request: unknown key 'channel'");
  expect_usage_error(read({{"layer", "1"}}), "explain-block request: key 'layer': expected an integer");
  expect_usage_error(read({{"bos", 1}}), "key 'bos': expected true or false");
  expect_usage_error(read({{"seed", -1}}), "key 'seed': expected an integer of 0 or more");
  expect_usage_error(read({{"format", nullptr}}), "key 'format'");
  expect_usage_error(read(json::array()), "expected an object");
}

// run_explain_block() on the bundled model.
class ApiExplainBlock : public ::testing::Test {
 protected:
  // The bundled model, opened once per process (api_test_support.h).
  static void SetUpTestSuite() {
    model_ = &latmix::test::bundled_model();
    tokenizer_ = &latmix::test::bundled_tokenizer();
  }
  static ExplainBlockRequest request() {
    ExplainBlockRequest r;
    r.model = latmix::test::source_path(kModel);
    r.sample = latmix::test::source_path(kSample);
    r.point = "mlp_in";
    r.layer = 1;
    r.token = 5;
    r.block = 3;
    return r;
  }
  static const latmix::Model* model_;
  static const latmix::Tokenizer* tokenizer_;
};
const latmix::Model* ApiExplainBlock::model_ = nullptr;
const latmix::Tokenizer* ApiExplainBlock::tokenizer_ = nullptr;

void expect_same_view(const latmix::MxBlockView& a, const latmix::MxBlockView& b) {
  EXPECT_EQ(a.format, b.format);
  EXPECT_EQ(a.values, b.values);
  EXPECT_EQ(a.quantized, b.quantized);
  EXPECT_EQ(a.codes, b.codes);
  EXPECT_EQ(a.scale_code, b.scale_code);
  EXPECT_EQ(a.scale, b.scale);
  EXPECT_EQ(a.scale_rule, b.scale_rule);
  EXPECT_EQ(a.grid, b.grid);
  EXPECT_EQ(a.clipped, b.clipped);
  EXPECT_EQ(a.mse, b.mse);
  EXPECT_EQ(a.sqnr_db, b.sqnr_db);
}

TEST_F(ApiExplainBlock, EqualsThePiecesComputedDirectly) {
  const BlockExplanation e = latmix::api::run_explain_block(request(), *model_, *tokenizer_);
  // The sample's opening, as the studio always took it: BOS + the first 8000 characters, 128 tokens.
  const std::string text = latmix::read_text_file(latmix::test::source_path(kSample));
  std::vector<int32_t> ids32 = tokenizer_->encode_with_bos(text.substr(0, 8000));
  ids32.resize(128);
  const std::vector<int64_t> ids(ids32.begin(), ids32.end());
  const at::Tensor act =
      latmix::capture_activation(*model_, at::tensor(ids, at::kLong), latmix::CapturePoint::MlpIn, 1);
  const at::Tensor block = act[5].narrow(0, 3 * 32, 32).contiguous();
  expect_same_view(e.before, latmix::inspect_mx_block(block, latmix::MxFormat::parse("mxfp4")));
  EXPECT_EQ(e.point, "mlp_in");
  EXPECT_EQ(e.layer, 1);
  EXPECT_EQ(e.token, 5);
  EXPECT_EQ(e.tokens, 128);
  EXPECT_EQ(e.token_id, ids32[5]);
  EXPECT_EQ(e.token_text, tokenizer_->decode({ids32[5]}));
  EXPECT_EQ(e.block, 3);
  EXPECT_EQ(e.blocks, act.size(1) / 32);
  EXPECT_EQ(e.first_channel, 96);
  EXPECT_EQ(e.last_channel, 127);
  EXPECT_FALSE(e.token_clamped || e.block_clamped);
  EXPECT_EQ(e.ids, ids);
  // The ids of a result run again give the same block without reading the text.
  ExplainBlockRequest again = request();
  again.sample = "/nonexistent.txt";
  again.ids = e.ids;
  expect_same_view(latmix::api::run_explain_block(again, *model_, *tokenizer_).before, e.before);
  again.ids = {0, 99999};
  expect_usage_error([&] { latmix::api::run_explain_block(again, *model_, *tokenizer_); },
                     "ids: token id 99999 outside the vocabulary");
  EXPECT_FALSE(e.after.has_value());
  ASSERT_EQ(e.comparison.size(), 8u);  // seven MX formats and nvfp4 as 2 x 16
  EXPECT_EQ(e.comparison[0].format, "mxfp4");
  EXPECT_EQ(e.comparison[0].sqnr_db, e.before.sqnr_db);
  EXPECT_EQ(e.comparison[0].scale, latmix::api::scale_label(e.before));
  EXPECT_EQ(e.comparison.back().format, "nvfp4 (2 x 16)");
  const latmix::MxErrorStats nv = latmix::mx_error_stats(block, latmix::MxFormat::parse("nvfp4"), 0);
  EXPECT_EQ(e.comparison.back().sqnr_db, nv.sqnr_db);
}

TEST_F(ApiExplainBlock, TheResultSurvivesTheJsonRoundTrip) {
  ExplainBlockRequest r = request();
  r.transform = "hadamard";
  BlockExplanation e = latmix::api::run_explain_block(r, *model_, *tokenizer_);
  ASSERT_TRUE(e.after.has_value());
  EXPECT_EQ(e.comparison_after.size(), 8u);
  e.comparison[1].sqnr_db = std::numeric_limits<double>::infinity();  // an exact block
  const json j = latmix::api::to_json(e);
  EXPECT_EQ(j["comparison"][1]["sqnr_db"], "inf");
  const BlockExplanation back = latmix::api::block_explanation_from_json(json::parse(j.dump()));
  EXPECT_EQ(latmix::api::to_json(back), j);
  EXPECT_TRUE(std::isinf(back.comparison[1].sqnr_db));
  expect_same_view(back.before, e.before);
  expect_same_view(*back.after, *e.after);
  e.after.reset();
  EXPECT_TRUE(latmix::api::to_json(e)["after"].is_null());
  json bad = j;
  bad["before"]["codes"] = "1,2";
  expect_usage_error([&] { latmix::api::block_explanation_from_json(bad); },
                     "block explanation: key 'before': key 'codes': expected an array of integers");
  expect_usage_error([&] { latmix::api::block_explanation_from_json({{"where", ""}}); },
                     "block explanation: unknown key 'where'");
}

TEST_F(ApiExplainBlock, ATokenOrBlockPastTheEndIsClampedAndSaidSo) {
  ExplainBlockRequest r = request();
  r.token = 500;
  r.block = 99;
  r.format = "nvfp4";  // blocks of 16
  const BlockExplanation e = latmix::api::run_explain_block(r, *model_, *tokenizer_);
  EXPECT_TRUE(e.token_clamped);
  EXPECT_EQ(e.token, e.tokens - 1);
  EXPECT_TRUE(e.block_clamped);
  EXPECT_EQ(e.blocks, model_->config().hidden_size / 16);
  EXPECT_EQ(e.block, e.blocks - 1);
  EXPECT_EQ(e.last_channel, model_->config().hidden_size - 1);
  EXPECT_EQ(e.before.values.size(), 16u);
}

TEST_F(ApiExplainBlock, ACalibrationSequenceOfATextIsItsTokens) {
  ExplainBlockRequest r = request();
  r.text = latmix::test::source_path(kSample);
  r.samples = 4;
  r.seqlen = 64;
  r.sequence = 2;
  r.token = 10;
  const BlockExplanation e = latmix::api::run_explain_block(r, *model_, *tokenizer_);
  latmix::CalibrationOptions o;
  o.samples = 4;
  o.seqlen = 64;
  const latmix::CalibrationSet set = latmix::load_calibration_text(r.text, *tokenizer_, o);
  EXPECT_EQ(e.tokens, 64);
  EXPECT_EQ(e.token_id, set.sequences[2][10]);
  EXPECT_EQ(e.text, r.text);
  EXPECT_EQ(e.sequence, 2);
  r.sequence = 4;
  expect_usage_error([&] { latmix::api::run_explain_block(r, *model_, *tokenizer_); }, "--sequence: expected 0 to 3");
}

TEST_F(ApiExplainBlock, BadValuesNameTheirOption) {
  auto run = [](ExplainBlockRequest r) { return [r] { latmix::api::run_explain_block(r, *model_, *tokenizer_); }; };
  ExplainBlockRequest r = request();
  r.point = "mlp_out";
  expect_usage_error(run(r), "--point: unknown capture point 'mlp_out'");
  r = request();
  r.layer = 99;
  expect_usage_error(run(r), "--layer: expected 0 to");
  r = request();
  r.format = "fp4";
  expect_usage_error(run(r), "--format: expected one of mxfp4");
  r = request();
  r.transform = "spin";
  expect_usage_error(run(r), "--transform: 'spin' is neither a built-in transform");
  r = request();
  r.token = -1;
  expect_usage_error(run(r), "--token: expected 0 or more");
  r = request();
  r.sample.clear();
  expect_usage_error(run(r), "give --text FILE");
  r = request();
  r.point = "lm_head_in";
  r.layer = 99;  // ignored: the final norm's output
  EXPECT_EQ(latmix::api::run_explain_block(r, *model_, *tokenizer_).layer, model_->config().num_layers);
}

}  // namespace
