// The describe-a-model task (latmix/api/model.h): the request's and the description's JSON round
// trips and strict readers; describe_model() on the bundled model (the keys `latmix info --json` has
// always printed), its module rows, and weight_overview()'s figures against the matrices read
// directly, mapped or held alike.
#include <gtest/gtest.h>

#include <nlohmann/json.hpp>

#include <functional>
#include <string>

#include "latmix/api/model.h"
#include "latmix/error.h"
#include "latmix/model.h"
#include "latmix/model_files.h"
#include "api_test_support.h"
#include "test_paths.h"

namespace {

using latmix::api::DescribeRequest;
using latmix::api::ModelDescription;
using json = nlohmann::json;

const std::string& kModel = latmix::test::kBundledModel;
using latmix::test::expect_usage_error;

TEST(ApiDescribeRequest, RoundTripAndStrictness) {
  const DescribeRequest r{"/models/m", "/models/tok.json"};
  const json j = latmix::api::to_json(r);
  EXPECT_EQ(latmix::api::to_json(latmix::api::describe_request_from_json(j)), j);
  EXPECT_EQ(j.size(), 2u);
  expect_usage_error([] { latmix::api::describe_request_from_json({{"path", "/m"}}); },
                     "describe request: unknown key 'path'");
  expect_usage_error([] { latmix::api::describe_request_from_json({{"model", 3}}); },
                     "describe request: key 'model': expected a string");
}

TEST(ApiDescribeModel, TheBundledModelFromItsHeaders) {
  const ModelDescription d = latmix::api::describe_model({latmix::test::source_path(kModel), ""});
  EXPECT_EQ(d.architecture, "LlamaForCausalLM");
  EXPECT_EQ(d.layers, 6);
  EXPECT_EQ(d.hidden_size, 256);
  EXPECT_EQ(d.intermediate_size, 704);
  EXPECT_EQ(d.parameters, 6524160);
  EXPECT_TRUE(d.modules.empty());  // no weight read
  EXPECT_FALSE(d.overview.has_value());
  const json j = latmix::api::to_json(d);
  // The keys `latmix info --json` printed before the description moved into the engine.
  for (const char* key : {"path", "architecture", "family", "source_format", "layers", "hidden_size",
                          "intermediate_size", "attention_heads", "kv_heads", "head_dim", "vocab_size", "max_position",
                          "rope", "rms_norm_eps", "tied_embeddings", "attention_bias", "qk_norm", "checkpoint_dtype",
                          "parameters", "weight_bytes", "stored_dtypes", "tokenizer"}) {
    EXPECT_TRUE(j.contains(key)) << key;
  }
  EXPECT_EQ(j.size(), 22u);
  EXPECT_TRUE(j["rope"].contains("theta"));
  EXPECT_FALSE(j["rope"].contains("factor"));  // llama3 rope only
  EXPECT_EQ(j["tokenizer"]["vocab_size"], 8192);
  EXPECT_EQ(latmix::api::to_json(latmix::api::model_description_from_json(json::parse(j.dump()))), j);
}

class ApiLoadedModel : public ::testing::Test {
 protected:
  static void SetUpTestSuite() { model_ = &latmix::test::bundled_model(); }  // api_test_support.h
  static const latmix::Model* model_;
};
const latmix::Model* ApiLoadedModel::model_ = nullptr;

TEST_F(ApiLoadedModel, ModulesAndOverviewSurviveTheJsonRoundTrip) {
  ModelDescription d = latmix::api::describe_model({latmix::test::source_path(kModel), ""});
  d.modules = latmix::api::model_modules(*model_);
  d.overview = latmix::api::weight_overview(*model_);
  ASSERT_FALSE(d.modules.empty());
  EXPECT_EQ(d.modules.front().name, "embed_tokens");
  EXPECT_EQ(d.modules.front().shape_text(), "[8192, 256]");
  EXPECT_EQ(d.modules.front().parameters, 8192 * 256);
  EXPECT_EQ(d.modules[2].name, "layers.0.self_attn.q_proj");
  int64_t parameters = 0;
  for (const auto& m : d.modules) parameters += m.parameters;
  EXPECT_EQ(parameters, d.parameters);
  const json j = latmix::api::to_json(d);
  EXPECT_EQ(j["modules"].size(), d.modules.size());
  EXPECT_EQ(j["overview"]["rows"], 6);
  const ModelDescription back = latmix::api::model_description_from_json(json::parse(j.dump()));
  EXPECT_EQ(latmix::api::to_json(back), j);
  EXPECT_TRUE(back.overview->max_over_rms == d.overview->max_over_rms);
  json bad = j;
  bad["modules"][0]["shape"] = "[1]";
  expect_usage_error([&] { latmix::api::model_description_from_json(bad); },
                     "model description: key 'modules': key 'shape': expected an array of integers");
  bad = j;
  bad["rope"]["kind"] = "default";
  expect_usage_error([&] { latmix::api::model_description_from_json(bad); }, "key 'rope': unknown key 'kind'");
}

TEST_F(ApiLoadedModel, OverviewIsMaxOverRmsOfEachLinear) {
  const latmix::api::WeightOverview o = latmix::api::weight_overview(*model_);
  EXPECT_EQ(o.columns, (std::vector<std::string>{"q", "k", "v", "o", "gate", "up", "down"}));
  ASSERT_EQ(o.rows, 6);
  ASSERT_EQ(o.max_over_rms.size(), 6u * 7u);
  const at::Tensor w = model_->weights().layers[2].down.to(at::kFloat);
  const float rms = w.pow(2).mean().sqrt().item<float>();
  EXPECT_EQ(o.rms[2 * 7 + 6], rms);
  EXPECT_EQ(o.max_over_rms[2 * 7 + 6], w.abs().max().item<float>() / rms);
  for (float v : o.max_over_rms) EXPECT_GT(v, 1.0f);  // the maximum is above the RMS
  // The same figures from the memory-mapped model, read one matrix at a time.
  latmix::LoadOptions opts;
  opts.mapped = true;
  const latmix::Model mapped = latmix::load_model(latmix::test::source_path(kModel), opts);
  EXPECT_EQ(latmix::api::weights_held(*model_), "in memory (Float)");
  EXPECT_EQ(latmix::api::weights_held(mapped), "memory-mapped (matrices as stored, converted at use)");
  const latmix::api::WeightOverview m = latmix::api::weight_overview(mapped);
  EXPECT_TRUE(m.max_over_rms == o.max_over_rms);
  EXPECT_TRUE(m.rms == o.rms);
}

TEST_F(ApiLoadedModel, OverviewCancelsBetweenMatrices) {
  latmix::JobControl job;
  int64_t reported = 0;
  job.progress = [&job, &reported](std::string_view stage, int64_t done, int64_t total) {
    EXPECT_EQ(stage, "overview");
    EXPECT_EQ(total, 42);
    reported = done;
    if (done == 3) job.cancel.cancel();
  };
  EXPECT_THROW(latmix::api::weight_overview(*model_, job), latmix::Cancelled);
  EXPECT_EQ(reported, 3);
}

}  // namespace
