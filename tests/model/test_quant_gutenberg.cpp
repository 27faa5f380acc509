// The quantized gutenberg-llama-6M (hidden 256, MLP 704): MX-aware GPTQ against RTN on the real
// layers under MXFP4, valid MX codes, and W4A4 perplexity against FP. Prints the figures quoted in
// docs/quantization.md.
#include <gtest/gtest.h>

#include <ATen/ATen.h>

#include <cmath>
#include <cstdio>
#include <fstream>
#include <map>
#include <memory>
#include <sstream>
#include <utility>

#include "latmix/calib_data.h"
#include "latmix/eval.h"
#include "latmix/model.h"
#include "latmix/model_files.h"
#include "latmix/quant.h"
#include "test_paths.h"

namespace {

using latmix::CapturePoint;
using latmix::Model;

struct Setup {
  Model model;
  std::unique_ptr<latmix::Tokenizer> tokenizer;
  latmix::CalibrationSet calib;
};

const Setup& setup() {
  static const Setup s = [] {
    const std::string dir = latmix::test::source_path("resources/models/gutenberg-llama-6M");
    Model model = latmix::load_model(dir);
    auto tok = latmix::load_model_tokenizer(dir, "", static_cast<int32_t>(model.config().vocab_size));
    latmix::CalibrationOptions co;
    co.samples = 32;
    co.seqlen = 128;
    latmix::CalibrationSet calib = latmix::load_calibration_text(
        latmix::test::source_path("resources/calibration/pride_and_prejudice_ch1-6.txt"), *tok, co);
    return Setup{std::move(model), std::move(tok), std::move(calib)};
  }();
  return s;
}

const latmix::QuantizedModel& quantized(const char* spec) {
  static std::map<std::string, latmix::QuantizedModel> cache;
  auto it = cache.find(spec);
  if (it == cache.end()) {
    it = cache.emplace(spec, latmix::quantize_model(setup().model, latmix::parse_quant_spec(spec), &setup().calib))
             .first;
    std::printf("%s\n", it->second.report.describe().c_str());
  }
  return it->second;
}

// X^T X (fp64) of the FP model's activations at every linear input of every layer over the
// calibration set, gathered in one pass: ||X dW^T||^2 = tr(dW X^T X dW^T).
class GramHook : public latmix::CaptureHook {
 public:
  bool wants(CapturePoint point, int64_t) const override {
    return point == CapturePoint::AttnIn || point == CapturePoint::OIn || point == CapturePoint::MlpIn ||
           point == CapturePoint::DownIn;
  }
  at::Tensor on_capture(CapturePoint point, int64_t layer, const at::Tensor& x) override {
    const at::Tensor rows = x.reshape({-1, x.size(-1)}).to(at::kDouble);
    at::Tensor& g = grams[{point, layer}];
    g = g.defined() ? g + rows.t().matmul(rows) : rows.t().matmul(rows);
    return {};
  }
  std::map<std::pair<CapturePoint, int64_t>, at::Tensor> grams;
};

const GramHook& grams() {
  static const std::shared_ptr<GramHook> hook = [] {
    auto h = std::make_shared<GramHook>();
    Model probe = setup().model;
    probe.add_hook(h);
    for (int64_t first = 0; first < setup().calib.size(); first += 8)
      probe.hidden_states(setup().calib.batch(first, 8));
    return h;
  }();
  return *hook;
}

// ||X W^T - X Q^T|| / ||X W^T|| from the Gram matrix of X.
double output_error(const at::Tensor& W, const at::Tensor& Q, const at::Tensor& gram) {
  const at::Tensor w = W.to(at::kDouble), dw = w - Q.to(at::kDouble);
  return std::sqrt((dw.matmul(gram) * dw).sum().item<double>() / (w.matmul(gram) * w).sum().item<double>());
}

std::vector<int32_t> text_ids(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  std::stringstream ss;
  ss << in.rdbuf();
  return setup().tokenizer->encode(ss.str());
}

TEST(QuantGutenberg, GptqBeatsRtnOnEveryLayerUnderMxfp4) {
  const auto& rtn = quantized("w=mxfp4,a=none,weights=rtn");
  const auto& gptq = quantized("w=mxfp4,a=none,weights=gptq");
  const auto& act_order = quantized("w=mxfp4,a=none,weights=gptq,act_order=on");
  const auto& static_scales = quantized("w=mxfp4,a=none,weights=gptq,gptq_scales=static");
  struct Ref {
    const char* name;
    at::Tensor latmix::LayerWeights::*member;
    CapturePoint point;
  };
  const Ref refs[] = {{"q", &latmix::LayerWeights::q, CapturePoint::AttnIn},
                      {"k", &latmix::LayerWeights::k, CapturePoint::AttnIn},
                      {"v", &latmix::LayerWeights::v, CapturePoint::AttnIn},
                      {"o", &latmix::LayerWeights::o, CapturePoint::OIn},
                      {"gate", &latmix::LayerWeights::gate, CapturePoint::MlpIn},
                      {"up", &latmix::LayerWeights::up, CapturePoint::MlpIn},
                      {"down", &latmix::LayerWeights::down, CapturePoint::DownIn}};
  std::printf("relative output error ||X W^T - X Q^T|| / ||X W^T|| on the FP model's calibration inputs\n");
  std::printf("layer  linear   RTN      GPTQ     act_order  static scales\n");
  double sum_rtn = 0, sum_gptq = 0, sum_ao = 0, sum_static = 0;
  for (int64_t l = 0; l < setup().model.config().num_layers; ++l) {
    for (const Ref& r : refs) {
      const at::Tensor& X = grams().grams.at({r.point, l});
      const auto idx = static_cast<size_t>(l);
      const at::Tensor W = setup().model.weights().layers[idx].*r.member;
      const double e_rtn = output_error(W, rtn.model.weights().layers[idx].*r.member, X);
      const double e_gptq = output_error(W, gptq.model.weights().layers[idx].*r.member, X);
      const double e_ao = output_error(W, act_order.model.weights().layers[idx].*r.member, X);
      const double e_static = output_error(W, static_scales.model.weights().layers[idx].*r.member, X);
      std::printf("%5lld  %-6s  %.4f   %.4f   %.4f     %.4f\n", static_cast<long long>(l), r.name, e_rtn, e_gptq, e_ao,
                  e_static);
      sum_ao += e_ao;
      sum_static += e_static;
      EXPECT_LT(e_gptq, e_rtn) << "layer " << l << " " << r.name;
      sum_rtn += e_rtn;
      sum_gptq += e_gptq;
    }
  }
  std::printf("mean   all     %.4f   %.4f   %.4f     %.4f\n", sum_rtn / 42, sum_gptq / 42, sum_ao / 42,
              sum_static / 42);
  EXPECT_LT(sum_gptq, 0.8 * sum_rtn);
  // The perplexity of the two GPTQ variants quantized here (AnyFormatCombination's settings; computed
  // here, where they are quantized already: each test is its own process).
  latmix::PerplexityOptions o;
  o.seqlen = 256;
  o.max_windows = 4;
  const auto text = text_ids(latmix::test::source_path("resources/calibration/pride_and_prejudice_ch1-6.txt"));
  const double fp = latmix::evaluate_perplexity(setup().model, text, o).perplexity;
  for (const char* spec : {"w=mxfp4,a=none,weights=gptq,act_order=on", "w=mxfp4,a=none,weights=gptq,gptq_scales=static"}) {
    const double ppl = latmix::evaluate_perplexity(quantized(spec).model, text, o).perplexity;
    std::printf("  %-44s ppl %.2f (calibration sample, seqlen 256, 4 windows)\n", spec, ppl);
    EXPECT_TRUE(std::isfinite(ppl)) << spec;
    EXPECT_GT(ppl, 0.95 * fp) << spec;
  }
}

TEST(QuantGutenberg, GptqWeightsAreValidMxCodes) {
  const auto& gptq = quantized("w=mxfp4,a=none,weights=gptq");
  const latmix::MxFormat f = latmix::MxFormat::parse("mxfp4");
  for (const auto& lw : gptq.model.weights().layers) {
    for (const at::Tensor& w : {lw.q, lw.k, lw.v, lw.o, lw.gate, lw.up, lw.down}) {
      const at::Tensor back = latmix::mx_decode(latmix::mx_encode(w, f), w.scalar_type());
      EXPECT_TRUE(at::equal(back, w));
    }
  }
  for (const auto& r : gptq.report.linears) EXPECT_EQ(r.reprojected, 0) << r.layer << " " << r.name;
}

TEST(QuantGutenberg, W4A4PerplexityIsFiniteAndAboveFp) {
  LATMIX_REQUIRE_DATA("corpus/gutenberg/pg11_alice_in_wonderland.txt");
  latmix::PerplexityOptions o;
  o.seqlen = 256;
  o.max_windows = 4;
  const auto calib_text = text_ids(latmix::test::source_path("resources/calibration/pride_and_prejudice_ch1-6.txt"));
  const auto held_out = text_ids(latmix::test::data_path("corpus/gutenberg/pg11_alice_in_wonderland.txt"));
  const char* specs[] = {"w=mxfp4,a=mxfp4,weights=rtn", "w=mxfp4,a=mxfp4,weights=gptq", "w=mxfp4,a=none,weights=rtn",
                         "w=mxfp4,a=none,weights=gptq"};
  std::map<std::string, double> calib_ppl;
  for (const auto* text : {&calib_text, &held_out}) {
    const char* name = text == &calib_text ? "calibration sample (pride_and_prejudice_ch1-6)" : "held out (pg11 alice)";
    const auto fp = latmix::evaluate_perplexity(setup().model, *text, o);
    std::printf("%s\n  FP                              %s\n", name, fp.describe().c_str());
    for (const char* spec : specs) {
      const auto q = latmix::evaluate_perplexity(quantized(spec).model, *text, o);
      std::printf("  %-31s %s\n", spec, q.describe().c_str());
      EXPECT_TRUE(std::isfinite(q.perplexity)) << spec;
      EXPECT_GT(q.perplexity, fp.perplexity) << spec;
      if (text == &calib_text) calib_ppl[spec] = q.perplexity;
    }
  }
  // GPTQ recovers part of what RTN loses (on the text it was calibrated on).
  EXPECT_LT(calib_ppl[specs[1]], calib_ppl[specs[0]]);
  EXPECT_LT(calib_ppl[specs[3]], calib_ppl[specs[2]]);
}

}  // namespace

namespace {

TEST(QuantGutenberg, AnyFormatCombination) {
  latmix::PerplexityOptions o;
  o.seqlen = 256;
  o.max_windows = 4;
  const auto text = text_ids(latmix::test::source_path("resources/calibration/pride_and_prejudice_ch1-6.txt"));
  const double fp = latmix::evaluate_perplexity(setup().model, text, o).perplexity;
  std::printf("calibration sample, seqlen 256, 4 windows, no BOS: FP ppl %.2f\n", fp);
  for (const char* spec :
       {"w=mxfp8,a=mxfp8", "mxint8", "w=mxfp6_e2m3,a=mxfp6_e2m3", "w=mxfp4,a=mxfp6_e2m3", "mxint4",
        "w=mxfp4,a=mxfp4,scale=even", "w=mxfp4,a=mxfp4,weights=gptq,act_order=on", "w=mxint4,a=mxint8,weights=gptq"}) {
    // (w=mxfp4,a=none with GPTQ's act_order=on and static scales: GptqBeatsRtnOnEveryLayerUnderMxfp4.)
    const double ppl = latmix::evaluate_perplexity(quantized(spec).model, text, o).perplexity;
    std::printf("  %-44s ppl %.2f\n", spec, ppl);
    EXPECT_TRUE(std::isfinite(ppl)) << spec;
    EXPECT_GT(ppl, 0.95 * fp) << spec;
  }
}

}  // namespace
