// Weight quantizers on synthetic layers: the element grid against the codec, RTN, Hessians, and
// MX-aware GPTQ (lower output error than RTN, valid MX codes, act-order, errors, cancel).
#include <gtest/gtest.h>

#include <ATen/ATen.h>

#include <string>
#include <vector>

#include "latmix/error.h"
#include "latmix/mx.h"
#include "latmix/quant_gptq.h"

namespace {

using latmix::MxFormat;

const std::vector<std::string> kMxFormats = {"mxfp4",      "mxfp6_e3m2", "mxfp6_e2m3", "mxfp8_e4m3",
                                             "mxfp8_e5m2", "mxint8",     "mxint4"};

bool bitwise_equal(const at::Tensor& a, const at::Tensor& b) {
  return a.sizes() == b.sizes() && at::equal(a.contiguous().view(at::kInt), b.contiguous().view(at::kInt));
}

// Inputs with correlated features (as real activations have), so that GPTQ has work to do.
at::Tensor correlated_inputs(int64_t n, int64_t features, uint64_t seed) {
  at::manual_seed(seed);
  const at::Tensor mix = at::randn({features, features}) / 8 + at::eye(features);
  const at::Tensor scale = at::exp(at::randn({features}));  // channels of very different energy
  return at::randn({n, features}).matmul(mix) * scale;
}

double output_error(const at::Tensor& W, const at::Tensor& Q, const at::Tensor& X) {
  return (X.matmul((W - Q).t())).norm().item<double>() / X.matmul(W.t()).norm().item<double>();
}

at::Tensor hessian_of(const at::Tensor& X) {
  latmix::HessianAccumulator acc(X.size(1));
  acc.add(X);
  return acc.hessian();
}

// mx_decode(mx_encode(q)) == q: every value is an element of the grid times its block scale.
void expect_valid_mx(const at::Tensor& q, const MxFormat& f) {
  const at::Tensor back = latmix::mx_decode(latmix::mx_encode(q, f, -1), at::kFloat);
  EXPECT_TRUE(bitwise_equal(back, q.to(at::kFloat))) << f.describe();
}

TEST(QuantGrid, RoundingWithCodecScalesIsFakeQuantize) {
  at::manual_seed(3);
  // wide dynamic range, exact ties on every grid, zeros, and whole zero blocks
  at::Tensor x = at::randn({64, 96}) * at::exp2(at::randint(-20, 20, {64, 1}).to(at::kFloat));
  x.slice(0, 0, 8).copy_(at::randint(-64, 64, {8, 96}).to(at::kFloat) / 16);
  x.slice(0, 8, 9).zero_();
  x.select(0, 9).slice(0, 0, 32).zero_();
  for (const auto& name : kMxFormats) {
    for (auto rule :
         {latmix::ScaleRule::Floor, latmix::ScaleRule::Ceil, latmix::ScaleRule::RCeil, latmix::ScaleRule::Even}) {
      for (auto rounding : {latmix::Rounding::NearestEven, latmix::Rounding::NearestAway}) {
        MxFormat f = MxFormat::parse(name);
        f.scale = rule;
        f.rounding = rounding;
        const at::Tensor scales = latmix::mx_block_scales(x, f);  // [64, 3]
        const at::Tensor per_value = scales.repeat_interleave(f.block, 1);
        const at::Tensor q = latmix::round_to_mx_grid(x, per_value, f);
        EXPECT_TRUE(bitwise_equal(q, latmix::fake_quantize(x, f, -1))) << f.describe();
      }
    }
  }
}

TEST(QuantGrid, BlockScalesArePowersOfTwoOfTheCodec) {
  const at::Tensor x = at::tensor({1.0f, -3.0f, 0.25f, 5.0f, 0.0f, 0.0f, 0.0f, 0.0f}).view({2, 4});
  MxFormat f = MxFormat::parse("mxfp4");
  f.block = 4;
  const at::Tensor s = latmix::mx_block_scales(x, f);
  ASSERT_EQ(s.sizes(), (std::vector<int64_t>{2, 1}));
  EXPECT_EQ(s[0][0].item<float>(), 1.0f);  // floor(log2 5) - 2 = 0
  EXPECT_EQ(s[1][0].item<float>(), std::ldexp(1.0f, -127));
  EXPECT_THROW(latmix::mx_block_scales(x, MxFormat::parse("nvfp4")), latmix::UsageError);
}

TEST(QuantRtn, IsFakeQuantizeOfTheWeight) {
  at::manual_seed(5);
  const at::Tensor w = at::randn({48, 80});
  for (const auto& name : kMxFormats) {
    const MxFormat f = MxFormat::parse(name);
    EXPECT_TRUE(bitwise_equal(latmix::rtn_quantize_weight(w, f), latmix::fake_quantize(w, f, -1))) << name;
  }
}

TEST(QuantHessian, RunningMeanIsTwoOverNXtX) {
  const at::Tensor X = correlated_inputs(70, 24, 1);
  latmix::HessianAccumulator acc(24);
  acc.add(X.slice(0, 0, 30).view({3, 10, 24}));
  acc.add(X.slice(0, 30, 70));
  EXPECT_EQ(acc.samples(), 70);
  const at::Tensor expected = X.t().matmul(X) * (2.0 / 70);
  EXPECT_TRUE(at::allclose(acc.hessian(), expected, 1e-4, 1e-4));
  EXPECT_THROW(acc.add(at::zeros({2, 23})), latmix::Error);
}

TEST(QuantGptq, LowerOutputErrorThanRtnAndValidCodes) {
  const at::Tensor X = correlated_inputs(512, 128, 7);
  at::manual_seed(8);
  const at::Tensor W = at::randn({64, 128}) * 0.05;
  const at::Tensor H = hessian_of(X);
  for (const auto& name : {"mxfp4", "mxint4", "mxfp6_e2m3", "mxfp8_e4m3"}) {
    const MxFormat f = MxFormat::parse(name);
    const double rtn = output_error(W, latmix::rtn_quantize_weight(W, f), X);
    for (int variant = 0; variant < 4; ++variant) {
      const bool act_order = (variant & 1) != 0;
      latmix::GptqOptions o;
      o.act_order = act_order;
      o.static_scales = (variant & 2) != 0;
      o.block_columns = 48;  // not a multiple of the MX block: groups straddle lazy batches
      const latmix::GptqResult g = latmix::gptq_quantize_weight(W, H, f, o);
      const double gptq = output_error(W, g.weight, X);
      EXPECT_LT(gptq, 0.9 * rtn) << name << " variant " << variant;
      EXPECT_NEAR(g.relative_output_error, gptq * gptq, 0.02 * gptq * gptq + 1e-9) << name;
      EXPECT_EQ(g.reprojected, 0) << name;
      expect_valid_mx(g.weight, f);
    }
  }
}

TEST(QuantGptq, WithoutCorrelationItIsRtn) {
  at::manual_seed(9);
  const at::Tensor W = at::randn({32, 96});
  const at::Tensor H = at::eye(96) * 3.0;
  for (const auto& name : kMxFormats) {
    const MxFormat f = MxFormat::parse(name);
    EXPECT_TRUE(bitwise_equal(latmix::gptq_quantize_weight(W, H, f).weight, latmix::rtn_quantize_weight(W, f))) << name;
  }
}

TEST(QuantGptq, OtherScaleRulesStayValidAndBf16Works) {
  const at::Tensor X = correlated_inputs(256, 64, 11);
  at::manual_seed(12);
  const at::Tensor W = at::randn({16, 64}).to(at::kBFloat16);
  for (auto rule : {latmix::ScaleRule::Ceil, latmix::ScaleRule::RCeil, latmix::ScaleRule::Even}) {
    MxFormat f = MxFormat::parse("mxfp4");
    f.scale = rule;
    const latmix::GptqResult g = latmix::gptq_quantize_weight(W, hessian_of(X), f);
    EXPECT_EQ(g.weight.scalar_type(), at::kBFloat16);
    expect_valid_mx(g.weight.to(at::kFloat), f);
  }
}

TEST(QuantGptq, DeadColumnsBecomeZero) {
  at::Tensor X = correlated_inputs(256, 64, 13);
  X.select(1, 5).zero_();
  at::manual_seed(14);
  const at::Tensor W = at::randn({8, 64});
  const latmix::GptqResult g = latmix::gptq_quantize_weight(W, hessian_of(X), MxFormat::parse("mxfp4"));
  EXPECT_EQ(g.dead_columns, 1);
  EXPECT_EQ(g.weight.select(1, 5).abs().max().item<float>(), 0.0f);
}

TEST(QuantGptq, ErrorsAndCancel) {
  const at::Tensor W = at::randn({8, 64});
  const at::Tensor H = at::eye(64);
  EXPECT_THROW(latmix::gptq_quantize_weight(W, H, MxFormat::parse("nvfp4")), latmix::UsageError);
  EXPECT_THROW(latmix::gptq_quantize_weight(W, at::eye(32), MxFormat::parse("mxfp4")), latmix::Error);
  latmix::GptqOptions bad;
  bad.block_columns = 0;
  EXPECT_THROW(latmix::gptq_quantize_weight(W, H, MxFormat::parse("mxfp4"), bad), latmix::UsageError);
  at::Tensor nan_w = W.clone();
  nan_w[0][0] = std::nanf("");
  EXPECT_THROW(latmix::gptq_quantize_weight(nan_w, H, MxFormat::parse("mxfp4")), latmix::Error);
  latmix::JobControl job;
  job.cancel.cancel();
  EXPECT_THROW(latmix::gptq_quantize_weight(W, H, MxFormat::parse("mxfp4"), {}, job), latmix::Cancelled);
}

}  // namespace
