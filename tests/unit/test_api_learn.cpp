// The learn task's request (latmix/api/learn.h): its JSON round trip, field by field and with unset
// optionals; the strict reader's errors; the one place where defaults and the request meet
// (learn_settings, learn_calibration_defaults); the command line that repeats a request.
#include <gtest/gtest.h>

#include <nlohmann/json.hpp>

#include <functional>
#include <string>
#include <vector>

#include "latmix/api/learn.h"
#include "latmix/error.h"

namespace {

using latmix::api::LearnRequest;
using json = nlohmann::json;

// Every field away from its default.
LearnRequest every_field() {
  LearnRequest r;
  r.model = "/models/m";
  r.tokenizer = "/models/tok.json";
  r.device = "cuda:1";
  r.dtype = "bf16";
  r.method = "spinquant";
  r.quant = "w=mxfp4,a=mxfp8,weights=rtn";
  r.calib = "a.txt,b.txt";
  r.data_dir = "/data";
  r.samples = 64;
  r.seqlen = 256;
  r.seed = 18446744073709551615ull;
  r.steps = 9;
  r.batch = 3;
  r.lr = 0.0015;
  r.optimizer = "sgd";
  r.momentum = 0.9;
  r.weight_decay = 0.01;
  r.warmup = 0.25;
  r.schedule = "constant";
  r.grad_clip = 0.5;
  r.lambda = 0.3;
  r.param = "qr";
  r.init = "block_hadamard";
  r.affine_bias = false;
  r.rotation_map = "exp";
  r.mode = "layerwise";
  r.loss = "mse";
  r.micro_batch = 2;
  r.loss_chunk = 128;
  r.recompute = false;
  r.kept_layers = 1;
  r.teacher_cache = true;
  r.validation = 4;
  r.eval_every = 3;
  r.patience = 0;
  r.deployed_check = "every";
  r.gptq_refresh = 4;
  r.out = "/tmp/plan";
  r.events = "/tmp/events.jsonl";
  r.checkpoint = "/tmp/ck";
  r.checkpoint_every = 5;
  r.resume = true;
  r.split = "layers";
  return r;
}

TEST(ApiLearnRequest, EveryFieldSurvivesTheJsonRoundTrip) {
  const LearnRequest r = every_field();
  const json j = latmix::api::to_json(r);
  const LearnRequest back = latmix::api::learn_request_from_json(json::parse(j.dump()));
  EXPECT_EQ(latmix::api::to_json(back), j);
  // Spot checks that the values, not only the JSON, came back.
  EXPECT_EQ(back.seed, 18446744073709551615ull);
  EXPECT_EQ(back.lr, 0.0015);
  EXPECT_EQ(back.affine_bias, false);
  EXPECT_EQ(back.init, "block_hadamard");
  EXPECT_TRUE(back.resume);
  // No field of the table is left out of the JSON (a new field must be added there).
  EXPECT_EQ(j.size(), 43u);
}

TEST(ApiLearnRequest, UnsetOptionalsAreNullAndComeBackUnset) {
  const LearnRequest r;
  const json j = latmix::api::to_json(r);
  for (const char* key :
       {"samples",      "seqlen",        "steps",      "batch",      "lr",          "optimizer",     "momentum",
        "weight_decay", "warmup",        "schedule",   "grad_clip",  "lambda",      "param",         "init",
        "affine_bias",  "rotation_map",  "mode",       "loss",       "micro_batch", "loss_chunk",    "recompute",
        "kept_layers",  "teacher_cache", "validation", "eval_every", "patience",    "deployed_check",
        "gptq_refresh"}) {
    ASSERT_TRUE(j.contains(key)) << key;
    EXPECT_TRUE(j[key].is_null()) << key;
  }
  const LearnRequest back = latmix::api::learn_request_from_json(j);
  EXPECT_EQ(latmix::api::to_json(back), j);
  EXPECT_FALSE(back.steps.has_value());
  EXPECT_FALSE(back.affine_bias.has_value());
  EXPECT_EQ(back.method, "latmix");
  EXPECT_EQ(back.quant, "mxfp4");
  // A key left out keeps the default; null on an optional that was set unsets it.
  json partial = {{"method", "rtn"}, {"steps", nullptr}};
  const LearnRequest p = latmix::api::learn_request_from_json(partial);
  EXPECT_EQ(p.method, "rtn");
  EXPECT_EQ(p.calib, "gutenberg");
  EXPECT_FALSE(p.steps.has_value());
}

// The reader's error names the key (and, for a type, what it expected).
void expect_usage_error(const json& j, const std::string& needle) {
  try {
    latmix::api::learn_request_from_json(j);
    ADD_FAILURE() << "no error for " << j.dump();
  } catch (const latmix::UsageError& e) {
    EXPECT_NE(std::string(e.what()).find(needle), std::string::npos) << e.what();
  }
}

TEST(ApiLearnRequest, TheReaderIsStrict) {
  expect_usage_error({{"stpes", 3}}, "unknown key 'stpes'");
  expect_usage_error({{"steps", "3"}}, "key 'steps': expected an integer");
  expect_usage_error({{"steps", 2.5}}, "key 'steps': expected an integer");
  expect_usage_error({{"lr", "fast"}}, "key 'lr': expected a number");
  expect_usage_error({{"affine_bias", "yes"}}, "key 'affine_bias': expected true or false");
  expect_usage_error({{"optimizer", 1}}, "key 'optimizer': expected a string");
  expect_usage_error({{"seed", -1}}, "key 'seed': expected an integer of 0 or more");
  expect_usage_error({{"method", nullptr}}, "key 'method'");
  expect_usage_error({{"resume", 1}}, "key 'resume': expected true or false");
  expect_usage_error({{"samples", 18446744073709551615ull}}, "key 'samples'");
  expect_usage_error(json::array(), "expected an object");
  // Integers are numbers: lr = 1 is accepted.
  EXPECT_EQ(latmix::api::learn_request_from_json({{"lr", 1}}).lr, 1.0);
}

TEST(ApiLearnRequest, CalibrationDefaultsAreOneFunction) {
  const auto cpu = latmix::api::learn_calibration_defaults(false, 4096);
  EXPECT_EQ(cpu.samples, 32);
  EXPECT_EQ(cpu.seqlen, 128);
  const auto gpu = latmix::api::learn_calibration_defaults(true, 4096);
  EXPECT_EQ(gpu.samples, 256);
  EXPECT_EQ(gpu.seqlen, 2048);
  EXPECT_EQ(latmix::api::learn_calibration_defaults(true, 512).seqlen, 512);  // at most the context
  EXPECT_EQ(latmix::api::learn_calibration_defaults(true, 0).seqlen, 2048);   // unknown context
}

TEST(ApiLearnSettings, TheRequestAppliesOverTheMethodsDefaults) {
  LearnRequest r;
  r.method = "latmix";
  const latmix::LearnSettings d = latmix::api::learn_settings(r, at::kCPU);
  const latmix::LearnSettings m = latmix::method_defaults("latmix", latmix::parse_quant_spec("mxfp4"), at::kCPU);
  EXPECT_EQ(d.to_json(), m.to_json());  // nothing set: the method's defaults
  r.quant = "mxint4,weights=rtn";
  r.steps = 7;
  r.lr = 0.01;
  r.schedule = "constant";
  r.momentum = 0.8;
  r.weight_decay = 0.02;
  r.param = "qr";
  r.affine_bias = false;
  r.rotation_map = "exp";
  r.init = "block_hadamard";
  r.mode = "layerwise";  // without a loss: the mode's (layer-wise MSE)
  const latmix::LearnSettings s = latmix::api::learn_settings(r, at::kCPU);
  EXPECT_EQ(s.steps, 7);
  EXPECT_EQ(s.lr, 0.01);
  EXPECT_FALSE(s.cosine);
  EXPECT_EQ(s.momentum, 0.8);
  EXPECT_EQ(s.weight_decay, 0.02);
  EXPECT_EQ(s.param, latmix::AffineTransform::Param::QR);
  EXPECT_FALSE(s.affine_bias);
  EXPECT_EQ(s.rotation_map, latmix::RotationTransform::Map::Exp);
  EXPECT_EQ(s.init, latmix::TransformInit::BlockHadamard);
  EXPECT_EQ(s.mode, latmix::LearnMode::LayerWise);
  EXPECT_EQ(s.loss, latmix::LearnLoss::LayerMse);
  EXPECT_EQ(s.quant.method, latmix::WeightMethod::Rtn);  // weights= given explicitly wins
  r.quant = "mxint4";
  EXPECT_EQ(latmix::api::learn_settings(r, at::kCPU).quant.method, latmix::WeightMethod::Gptq);  // the method's
  r.method = "quarot";  // a fixed preset ignores the learning knobs
  EXPECT_EQ(latmix::api::learn_settings(r, at::kCPU).steps, 0);
}

TEST(ApiLearnSettings, TheDefaultBatchFitsTheCalibrationAndAGivenOneIsKept) {
  LearnRequest r;
  r.method = "latmix";  // CPU default batch 2
  latmix::CalibrationSet one;
  one.sequences = {{1, 2, 3}};
  EXPECT_EQ(latmix::api::learn_settings(r, at::kCPU, &one).batch, 1);
  r.batch = 2;
  EXPECT_EQ(latmix::api::learn_settings(r, at::kCPU, &one).batch, 2);  // refused later by the learner
}

void expect_settings_error(const LearnRequest& r, const std::string& message) {
  try {
    latmix::api::learn_settings(r, at::kCPU);
    ADD_FAILURE() << "no error, expected " << message;
  } catch (const latmix::UsageError& e) {
    EXPECT_EQ(std::string(e.what()), message);
  }
}

TEST(ApiLearnSettings, BadValuesGiveTheClisMessages) {
  // One fresh request per case (reassigning one with `r = {}` trips GCC 12's -Wmaybe-uninitialized
  // on the optional strings).
  const auto with = [](const std::function<void(LearnRequest&)>& set) {
    LearnRequest r;
    set(r);
    return r;
  };
  expect_settings_error(with([](LearnRequest& r) { r.schedule = "wavy"; }),
                        "--schedule: expected cosine or constant, found 'wavy'");
  expect_settings_error(with([](LearnRequest& r) { r.param = "svd"; }), "--param: expected qr or lu, found 'svd'");
  expect_settings_error(with([](LearnRequest& r) { r.rotation_map = "givens"; }),
                        "--rotation-map: expected cayley or exp, found 'givens'");
  expect_settings_error(with([](LearnRequest& r) { r.micro_batch = 0; }), "--micro-batch: expected 1 or more");
  expect_settings_error(with([](LearnRequest& r) { r.patience = -1; }), "--patience: expected 0 or more");
  expect_settings_error(with([](LearnRequest& r) { r.gptq_refresh = -1; }), "--gptq-refresh: expected 0 or more");
  EXPECT_THROW(latmix::api::learn_settings(with([](LearnRequest& r) { r.quant = "mxfp9"; }), at::kCPU),
               latmix::UsageError);
}

TEST(ApiLearnRequest, TheCommandLineNamesWhatIsSet) {
  LearnRequest r;
  r.model = "/m";
  EXPECT_EQ(latmix::api::learn_command_line(r),
            (std::vector<std::string>{"latmix", "learn", "--model", "/m", "--method", "latmix", "--quant", "mxfp4",
                                      "--calib", "gutenberg", "--device", "cpu"}));
  r.lr = 0.1;
  r.affine_bias = false;
  r.data_dir = "/d";
  r.out = "P";
  const std::vector<std::string> a = latmix::api::learn_command_line(r);
  auto after = [&a](const std::string& option) {
    for (size_t i = 0; i + 1 < a.size(); ++i) {
      if (a[i] == option) return a[i + 1];
    }
    return std::string("(absent)");
  };
  EXPECT_EQ(after("--lr"), "0.1");  // the shortest text that reads back exactly
  EXPECT_EQ(after("--affine-bias"), "no");
  EXPECT_EQ(after("--data-dir"), "/d");  // with gutenberg only
  EXPECT_EQ(after("--out"), "P");
  r.calib = "a.txt";
  EXPECT_EQ(latmix::api::learn_option_arguments(r).size(), 8u);  // --quant, --calib, --lr, --affine-bias
}

TEST(ApiLearnRequest, EveryOptionHasItsHelpText) {
  EXPECT_EQ(latmix::api::learn_option_help().size(), 32u);
  EXPECT_NE(latmix::api::learn_option_help("weight-decay").find("AdamW"), std::string::npos);
  EXPECT_THROW(latmix::api::learn_option_help("nope"), std::logic_error);
}

}  // namespace
