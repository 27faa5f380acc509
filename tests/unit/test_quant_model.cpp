// quantize_model() on the tiny random Llama 3 fixture: which weights change and how, which
// capture points the activation hook quantizes, composition with an online transform, GPTQ
// layer by layer, errors, progress and cancel.
#include <gtest/gtest.h>

#include <ATen/ATen.h>

#include <map>
#include <set>
#include <utility>
#include <vector>

#include "latmix/calib_data.h"
#include "latmix/error.h"
#include "latmix/model.h"
#include "latmix/quant.h"
#include "latmix/transform_fold.h"
#include "latmix/transforms.h"
#include "test_paths.h"

namespace {

using latmix::CapturePoint;
using latmix::Model;
using latmix::parse_quant_spec;

const Model& tiny() {
  static const Model m = latmix::load_model(latmix::test::fixtures_path("models/tiny-llama3"));
  return m;
}

at::Tensor ids() {
  at::manual_seed(2);
  return at::randint(0, 320, {2, 24}, at::kLong);
}

latmix::CalibrationSet random_calibration(int64_t samples, int64_t seqlen) {
  std::vector<int32_t> tokens;
  at::manual_seed(4);
  const at::Tensor t = at::randint(0, 320, {samples * seqlen}, at::kInt);
  tokens.assign(t.data_ptr<int32_t>(), t.data_ptr<int32_t>() + t.numel());
  latmix::CalibrationOptions o;
  o.samples = samples;
  o.seqlen = seqlen;
  return latmix::sample_calibration(tokens, o);
}

// Records, per (point, layer), whether the activation it sees is already MX-quantized.
class QuantizedProbe : public latmix::CaptureHook {
 public:
  explicit QuantizedProbe(latmix::MxFormat f) : format_(f) {}
  bool wants(CapturePoint, int64_t) const override { return true; }
  at::Tensor on_capture(CapturePoint point, int64_t layer, const at::Tensor& x) override {
    seen[{point, layer}] = at::equal(latmix::fake_quantize(x, format_, -1), x);
    return {};
  }
  std::map<std::pair<CapturePoint, int64_t>, bool> seen;

 private:
  latmix::MxFormat format_;
};

std::set<std::pair<CapturePoint, int64_t>> quantized_points(const latmix::QuantizedModel& q) {
  Model probe_model = q.model;
  auto probe = std::make_shared<QuantizedProbe>(q.activation_hook ? q.activation_hook->format()
                                                                  : latmix::MxFormat::parse("mxfp4"));
  probe_model.add_hook(probe);
  probe_model.forward(ids());
  std::set<std::pair<CapturePoint, int64_t>> out;
  for (const auto& [key, quantized] : probe->seen) {
    if (quantized) out.insert(key);
  }
  return out;
}

TEST(QuantModel, RtnWeightsAreFakeQuantizedAndTheFpModelIsIntact) {
  const Model& fp = tiny();
  const at::Tensor q0 = fp.weights().layers[0].q.clone();
  const auto spec = parse_quant_spec("w=mxfp4,a=none");
  const latmix::QuantizedModel q = latmix::quantize_model(fp, spec);
  EXPECT_FALSE(q.activation_hook);
  EXPECT_TRUE(fp.weights().layers[0].q.equal(q0));
  for (size_t l = 0; l < 2; ++l) {
    const auto& a = fp.weights().layers[l];
    const auto& b = q.model.weights().layers[l];
    for (auto m :
         {&latmix::LayerWeights::q, &latmix::LayerWeights::k, &latmix::LayerWeights::v, &latmix::LayerWeights::o,
          &latmix::LayerWeights::gate, &latmix::LayerWeights::up, &latmix::LayerWeights::down}) {
      EXPECT_TRUE((b.*m).equal(latmix::fake_quantize(a.*m, *spec.weights, -1)));
      EXPECT_FALSE((b.*m).equal(a.*m));
    }
    EXPECT_TRUE(b.attn_norm.is_same(a.attn_norm));
    EXPECT_TRUE(b.mlp_norm.is_same(a.mlp_norm));
  }
  EXPECT_TRUE(q.model.weights().embed.is_same(fp.weights().embed));
  EXPECT_TRUE(q.model.weights().lm_head.is_same(fp.weights().lm_head));
  EXPECT_EQ(q.report.linears.size(), 14u);
  for (const auto& r : q.report.linears) {
    EXPECT_GT(r.weight_sqnr_db, 10.0) << r.name;
    EXPECT_LT(r.weight_sqnr_db, 30.0) << r.name;
    EXPECT_TRUE(std::isnan(r.relative_output_error));
  }
  EXPECT_EQ(q.report.spec, "w=mxfp4,a=none,block=32,scale=floor,round=even,weights=rtn");
  EXPECT_NE(q.report.describe().find("mean weight SQNR"), std::string::npos);
}

TEST(QuantModel, ActivationHookQuantizesExactlyTheLinearInputs) {
  const latmix::QuantizedModel q = latmix::quantize_model(tiny(), parse_quant_spec("w=none,a=mxfp4"));
  ASSERT_TRUE(q.activation_hook);
  EXPECT_TRUE(q.model.weights().layers[1].down.is_same(tiny().weights().layers[1].down));
  std::set<std::pair<CapturePoint, int64_t>> expected;
  for (int64_t l = 0; l < 2; ++l) {
    for (auto p : {CapturePoint::AttnIn, CapturePoint::OIn, CapturePoint::MlpIn, CapturePoint::DownIn}) {
      expected.insert({p, l});
      EXPECT_TRUE(q.activation_hook->wants(p, l));
    }
    for (auto p : {CapturePoint::Residual, CapturePoint::ResidualMid}) EXPECT_FALSE(q.activation_hook->wants(p, l));
  }
  EXPECT_FALSE(q.activation_hook->wants(CapturePoint::FinalNormOut, 2));
  EXPECT_EQ(quantized_points(q), expected);
  // The FP model has no hook and gives other logits.
  EXPECT_FALSE(tiny().forward(ids()).equal(q.model.forward(ids())));
}

TEST(QuantModel, LayerRangeAndLmHead) {
  const latmix::QuantizedModel q = latmix::quantize_model(tiny(), parse_quant_spec("mxint8,layers=1,lm_head=mxfp4"));
  const auto& fp = tiny().weights();
  EXPECT_TRUE(q.model.weights().layers[0].q.is_same(fp.layers[0].q));
  EXPECT_TRUE(
      q.model.weights().layers[1].q.equal(latmix::fake_quantize(fp.layers[1].q, latmix::MxFormat::parse("mxint8"))));
  EXPECT_TRUE(q.model.weights().lm_head.equal(latmix::fake_quantize(fp.lm_head, latmix::MxFormat::parse("mxfp4"))));
  EXPECT_TRUE(q.model.weights().embed.is_same(fp.embed));
  EXPECT_EQ(q.report.linears.size(), 8u);
  EXPECT_EQ(q.report.linears.back().name, "lm_head");
  std::set<std::pair<CapturePoint, int64_t>> expected = {{CapturePoint::AttnIn, 1},
                                                         {CapturePoint::OIn, 1},
                                                         {CapturePoint::MlpIn, 1},
                                                         {CapturePoint::DownIn, 1},
                                                         {CapturePoint::FinalNormOut, 2}};
  EXPECT_EQ(quantized_points(q), expected);
}

TEST(QuantModel, QuantizesAfterAnOnlineTransform) {
  Model model = tiny();
  latmix::TransformPlan plan;
  for (int64_t l = 0; l < 2; ++l) plan.down_online.push_back(std::make_shared<latmix::HadamardTransform>(96, l));
  latmix::fold_transforms(model, plan);
  const latmix::QuantizedModel q = latmix::quantize_model(model, parse_quant_spec("w=none,a=mxfp4"));
  const auto points = quantized_points(q);
  EXPECT_TRUE(points.count({CapturePoint::DownIn, 0}) == 1 && points.count({CapturePoint::DownIn, 1}) == 1);
  // Without quantization, the rotated down input is not on the MX grid.
  Model plain = model;
  auto probe = std::make_shared<QuantizedProbe>(latmix::MxFormat::parse("mxfp4"));
  plain.add_hook(probe);
  plain.forward(ids());
  EXPECT_FALSE((probe->seen[{CapturePoint::DownIn, 0}]));
}

TEST(QuantModel, GptqLayerByLayer) {
  const latmix::CalibrationSet calib = random_calibration(6, 16);
  std::vector<int64_t> progress;
  latmix::JobControl job;
  job.progress = [&](std::string_view stage, int64_t done, int64_t total) {
    EXPECT_EQ(stage, "quantize");
    EXPECT_EQ(total, 14);
    progress.push_back(done);
  };
  const auto spec = parse_quant_spec("w=mxfp4,a=mxfp4,weights=gptq");
  const latmix::QuantizedModel q = latmix::quantize_model(tiny(), spec, &calib, job);
  EXPECT_EQ(progress.size(), 14u);
  EXPECT_EQ(q.report.calibration_sequences, 6);
  ASSERT_EQ(q.report.linears.size(), 14u);
  for (const auto& r : q.report.linears) {
    EXPECT_GT(r.relative_output_error, 0.0) << r.name;
    EXPECT_LT(r.relative_output_error, 0.2) << r.name;
  }
  const at::Tensor w = q.model.weights().layers[1].gate;
  EXPECT_TRUE(latmix::mx_decode(latmix::mx_encode(w, *spec.weights), at::kFloat).equal(w));
  EXPECT_FALSE(w.equal(latmix::fake_quantize(tiny().weights().layers[1].gate, *spec.weights)));
  const at::Tensor logits = q.model.forward(ids());
  EXPECT_TRUE(at::isfinite(logits).all().item<bool>());
}

TEST(QuantModel, GptqLmHeadAndPartialRange) {
  const latmix::CalibrationSet calib = random_calibration(4, 16);
  const latmix::QuantizedModel q =
      latmix::quantize_model(tiny(), parse_quant_spec("w=mxfp4,a=none,weights=gptq,layers=1,lm_head=mxfp4"), &calib);
  EXPECT_TRUE(q.model.weights().layers[0].down.is_same(tiny().weights().layers[0].down));
  ASSERT_EQ(q.report.linears.size(), 8u);
  const at::Tensor head = q.model.weights().lm_head;
  EXPECT_TRUE(latmix::mx_decode(latmix::mx_encode(head, latmix::MxFormat::parse("mxfp4")), at::kFloat).equal(head));
}

TEST(QuantModel, ErrorsAndCancel) {
  EXPECT_THROW(latmix::quantize_model(tiny(), parse_quant_spec("mxfp4,weights=gptq")), latmix::UsageError);
  EXPECT_THROW(latmix::quantize_model(tiny(), parse_quant_spec("mxfp4,layers=2")), latmix::UsageError);
  EXPECT_THROW(latmix::quantize_model(tiny(), parse_quant_spec("mxfp4,layers=1-4")), latmix::UsageError);
  const latmix::CalibrationSet calib = random_calibration(2, 16);
  EXPECT_THROW(latmix::quantize_model(tiny(), parse_quant_spec("w=nvfp4,weights=gptq"), &calib), latmix::UsageError);
  latmix::JobControl job;
  job.cancel.cancel();
  EXPECT_THROW(latmix::quantize_model(tiny(), parse_quant_spec("mxfp4"), nullptr, job), latmix::Cancelled);
  EXPECT_THROW(latmix::quantize_model(tiny(), parse_quant_spec("mxfp4,weights=gptq"), &calib, job), latmix::Cancelled);
  // w=none with gptq needs no calibration data.
  EXPECT_NO_THROW(latmix::quantize_model(tiny(), parse_quant_spec("w=none,a=mxfp4,weights=gptq")));
}

}  // namespace
