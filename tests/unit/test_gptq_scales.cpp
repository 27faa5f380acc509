// mx_block_scales (the E8M0 block scales GPTQ takes, computed with ATen operations on the
// tensor's own device) against the codec's scales, mx_encode on the CPU, bit for bit: every MX
// format and scale rule, block sizes with tails, random values over the whole fp32 range, and the
// edge cases of the rules (zero blocks, subnormal and near-FLT_MAX maxima, exact powers of two,
// the thresholds of ceil/rceil/even, NaN and Inf). On a CUDA device too when there is one.
#include <gtest/gtest.h>

#include <ATen/ATen.h>

#include <cmath>
#include <limits>
#include <string>
#include <vector>

#include "latmix/error.h"
#include "latmix/mx.h"
#include "latmix/quant_gptq.h"

namespace {

using latmix::MxFormat;
using latmix::ScaleRule;

const std::vector<std::string> kMxFormats = {"mxfp4",      "mxfp6_e3m2", "mxfp6_e2m3", "mxfp8_e4m3",
                                             "mxfp8_e5m2", "mxint8",     "mxint4"};
constexpr ScaleRule kRules[] = {ScaleRule::Floor, ScaleRule::Ceil, ScaleRule::RCeil, ScaleRule::Even};

// What GPTQ used before the scales moved to the device: the codec's scale codes (CPU), as 2^(c -
// 127) through exp2, NaN for 0xFF. The test also checks that exp2 is exact here.
at::Tensor codec_scales(const at::Tensor& x, const MxFormat& f) {
  const at::Tensor codes = latmix::mx_encode(x.detach().to(at::kCPU, at::kFloat), f, -1, false).scales.to(at::kFloat);
  const at::Tensor scales = at::exp2(codes - 127.0f);
  std::vector<float> table(256, 0.0f);
  for (int c = 0; c < 255; ++c) table[static_cast<size_t>(c)] = std::ldexp(1.0f, c - 127);
  const at::Tensor exact = at::tensor(table).index_select(0, codes.to(at::kLong).flatten()).view(codes.sizes());
  EXPECT_TRUE(at::equal(at::where(codes == 255.0f, at::zeros_like(scales), scales), exact));
  return at::where(codes == 255.0f, at::full_like(scales, std::nanf("")), scales);
}

bool same_bits(const at::Tensor& a, const at::Tensor& b) {
  return a.sizes() == b.sizes() &&
         at::equal(a.to(at::kCPU).contiguous().view(at::kInt), b.to(at::kCPU).contiguous().view(at::kInt));
}

std::vector<at::Device> devices() {
  std::vector<at::Device> out = {at::kCPU};
  if (at::hasCUDA()) out.emplace_back(at::kCUDA);
  return out;
}

// Every format and rule, on `x` on every device.
void expect_codec_scales(const at::Tensor& x, int64_t block, const std::string& what) {
  for (const auto& name : kMxFormats) {
    for (ScaleRule rule : kRules) {
      MxFormat f = MxFormat::parse(name);
      f.scale = rule;
      f.block = block;
      const at::Tensor expected = codec_scales(x, f);
      for (const at::Device& d : devices()) {
        const at::Tensor got = latmix::mx_block_scales(x.to(d), f);
        EXPECT_EQ(got.device().type(), d.type());
        EXPECT_TRUE(same_bits(got, expected)) << what << " " << f.describe() << " on " << d.str();
      }
    }
  }
}

// Random values: normal samples times 2^k per block, k over the whole fp32 range (subnormal and
// near-FLT_MAX maxima included), a few outliers.
at::Tensor wide_random(int64_t rows, int64_t n, uint64_t seed) {
  at::manual_seed(seed);
  at::Tensor e = at::randint(-150, 120, {rows, n / 4 + 1}).repeat_interleave(4, 1).slice(1, 0, n);
  at::Tensor x = at::randn({rows, n}) * at::exp2(e.to(at::kFloat));
  return at::where(at::rand({rows, n}) < 0.01, x * 60, x);
}

// Block maxima at the rules' edges: exact powers of two, just below and above them, the Even
// thresholds 1 - 2^-(mbits + 2) of every format, multiples of the element maxima (RCeil), in
// blocks whose other values are smaller; plus -0.0 and subnormals.
at::Tensor rule_edges(int64_t block) {
  std::vector<float> maxima;
  for (int k : {-149, -140, -127, -126, -125, -1, 0, 1, 5, 60, 126, 127}) {
    const float p = std::ldexp(1.0f, k);
    maxima.insert(maxima.end(), {p, std::nextafter(p, 0.0f), std::nextafter(p, INFINITY)});
    for (int m : {1, 2, 3, 5, 6}) maxima.push_back(p * (1.0f - std::ldexp(1.0f, -(m + 2))));
    for (float emax_value : {6.0f, 28.0f, 7.5f, 448.0f, 57344.0f, 1.984375f, 1.75f}) {
      const float v = std::ldexp(emax_value, k - 8);
      maxima.insert(maxima.end(), {v, std::nextafter(v, 0.0f), std::nextafter(v, INFINITY)});
    }
  }
  maxima.insert(maxima.end(), {std::numeric_limits<float>::max(), std::numeric_limits<float>::denorm_min(), 0.0f});
  const auto rows = static_cast<int64_t>(maxima.size());
  at::manual_seed(21);
  at::Tensor x = (at::rand({rows, block}) - 0.5) * at::tensor(maxima).unsqueeze(1);
  x.select(1, block / 2).copy_(at::tensor(maxima) * ((at::rand({rows}) < 0.5).to(at::kFloat) * 2 - 1));
  x[rows - 1].fill_(-0.0f);
  return x;
}

TEST(MxBlockScales, RandomTensorsMatchTheCodec) {
  for (int64_t block : {32, 16, 7, 1}) {
    for (int64_t n : {int64_t{1}, block, 3 * block + 5, int64_t{130}}) {
      expect_codec_scales(wide_random(24, n, static_cast<uint64_t>(block * 1000 + n)), block,
                          "random block " + std::to_string(block) + " n " + std::to_string(n));
    }
  }
}

TEST(MxBlockScales, RuleEdgesMatchTheCodec) {
  for (int64_t block : {32, 5}) expect_codec_scales(rule_edges(block), block, "edges");
}

TEST(MxBlockScales, NanInfAndZeroBlocksMatchTheCodec) {
  at::Tensor x = wide_random(8, 70, 31);
  x[0][3] = std::nanf("");
  x[1][40] = INFINITY;
  x[2][69] = -INFINITY;
  x[3][0] = -std::nanf("");
  x[4].zero_();
  x[5].slice(0, 32, 64).fill_(-0.0f);
  expect_codec_scales(x, 32, "specials");
  const at::Tensor s = latmix::mx_block_scales(x, MxFormat::parse("mxfp4"));
  EXPECT_TRUE(std::isnan(s[0][0].item<float>()));
  EXPECT_FALSE(std::isnan(s[0][1].item<float>()));
  EXPECT_TRUE(std::isnan(s[2][2].item<float>()));
  EXPECT_EQ(s[4][1].item<float>(), std::ldexp(1.0f, -127));
}

TEST(MxBlockScales, DtypesAndShapes) {
  const at::Tensor x = wide_random(6, 45, 41).clamp(-1e30, 1e30);
  const MxFormat f = MxFormat::parse("mxfp4");
  for (at::ScalarType st : {at::kBFloat16, at::kHalf, at::kDouble}) {
    const at::Tensor xs = x.to(st);
    EXPECT_TRUE(same_bits(latmix::mx_block_scales(xs, f), codec_scales(xs, f))) << c10::toString(st);
  }
  const at::Tensor x3 = x.view({2, 3, 45});
  const at::Tensor s3 = latmix::mx_block_scales(x3, f);
  ASSERT_EQ(s3.sizes(), (std::vector<int64_t>{2, 3, 2}));
  EXPECT_TRUE(same_bits(s3.view({6, 2}), codec_scales(x, f)));
  EXPECT_TRUE(same_bits(latmix::mx_block_scales(x[0], f), codec_scales(x[0], f)));
  EXPECT_EQ(latmix::mx_block_scales(at::zeros({4, 0}), f).sizes(), (std::vector<int64_t>{4, 0}));
  EXPECT_THROW(latmix::mx_block_scales(at::ones({}), f), latmix::Error);
  EXPECT_THROW(latmix::mx_block_scales(at::ones({2, 4}, at::kInt), f), latmix::Error);
}

}  // namespace
