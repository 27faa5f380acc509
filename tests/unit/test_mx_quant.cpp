// Block quantization: hand-worked blocks for each scale rule and rounding, edge cases,
// properties over random tensors, packing, GGUF blocks, the straight-through gradient.
#include <ATen/CPUGeneratorImpl.h>
#include <gtest/gtest.h>

#include <cmath>
#include <cstring>
#include <limits>
#include <vector>

#include "latmix/error.h"
#include "latmix/mx.h"

namespace {

using latmix::fake_quantize;
using latmix::MxFormat;
using latmix::MxKernel;
using latmix::Rounding;
using latmix::ScaleRule;

MxFormat fmt(const char* name, ScaleRule rule = ScaleRule::Floor, Rounding r = Rounding::NearestEven) {
  MxFormat f = MxFormat::parse(name);
  f.scale = rule;
  f.rounding = r;
  return f;
}

at::Tensor block_of(std::vector<float> head, int64_t n = 32) {
  head.resize(static_cast<size_t>(n), 0.0f);
  return at::tensor(head, at::kFloat).reshape({1, n});
}

std::vector<float> first(const at::Tensor& t, int64_t k) {
  const at::Tensor c = t.reshape({-1}).to(at::kFloat).contiguous();
  return std::vector<float>(c.data_ptr<float>(), c.data_ptr<float>() + k);
}

// Every kernel must give identical bits; returns the CPU loop's result.
at::Tensor fq(const at::Tensor& x, const MxFormat& f, int64_t axis = -1) {
  const at::Tensor a = fake_quantize(x, f, axis, MxKernel::CpuLoop);
  const at::Tensor b = fake_quantize(x, f, axis, MxKernel::Aten);
  EXPECT_TRUE(at::equal(at::isnan(a), at::isnan(b))) << f.describe();
  EXPECT_TRUE(at::equal(at::nan_to_num(a.to(at::kFloat)).view(at::kInt), at::nan_to_num(b.to(at::kFloat)).view(at::kInt)))
      << f.describe();
  return a;
}

at::Tensor random_with_outliers(int64_t rows, int64_t cols, uint64_t seed) {
  auto gen = at::make_generator<at::CPUGeneratorImpl>(seed);
  at::Tensor x = at::randn({rows, cols}, gen, at::TensorOptions().dtype(at::kFloat));
  at::Tensor mask = at::rand({rows, cols}, gen, at::TensorOptions().dtype(at::kFloat)).lt(0.01);
  return at::where(mask, x * 60, x) * 0.37;
}

TEST(MxQuant, Mxfp4HandWorkedBlockUnderFloor) {
  const at::Tensor x = block_of({5.0f, 1.25f, -0.75f, 0.25f, 2.5f, -3.5f});
  EXPECT_EQ(first(fq(x, fmt("mxfp4")), 6), (std::vector<float>{4, 1, -1, 0, 2, -4}));
  EXPECT_EQ(first(fq(x, fmt("mxfp4", ScaleRule::Floor, Rounding::NearestAway)), 6),
            (std::vector<float>{6, 1.5f, -1, 0.5f, 3, -4}));
  const latmix::MxPacked p = latmix::mx_encode(x, fmt("mxfp4"), -1, false);
  EXPECT_EQ(p.scales.item<uint8_t>(), 127);  // 2^0
  EXPECT_EQ(first(p.codes.to(at::kFloat), 6), (std::vector<float>{6, 2, 0xA, 0, 4, 0xE}));
}

TEST(MxQuant, ScaleRulesOnAClippingBlock) {
  const at::Tensor x = block_of({7.9f, 1.0f, -2.2f, 0.3f});
  EXPECT_EQ(first(fq(x, fmt("mxfp4", ScaleRule::Floor)), 4), (std::vector<float>{6, 1, -2, 0.5f}));
  const std::vector<float> scaled_up{8, 1, -2, 0};
  EXPECT_EQ(first(fq(x, fmt("mxfp4", ScaleRule::RCeil)), 4), scaled_up);
  EXPECT_EQ(first(fq(x, fmt("mxfp4", ScaleRule::Ceil)), 4), scaled_up);
  EXPECT_EQ(first(fq(x, fmt("mxfp4", ScaleRule::Even)), 4), scaled_up);  // 7.9 rounds to 8 first
  // 6.5 does not carry when rounded to one mantissa bit: EVEN keeps FLOOR's scale and clips.
  const at::Tensor y = block_of({6.5f, 1.5f});
  EXPECT_EQ(first(fq(y, fmt("mxfp4", ScaleRule::Even)), 2), (std::vector<float>{6, 1.5f}));
  EXPECT_EQ(first(fq(y, fmt("mxfp4", ScaleRule::RCeil)), 2), (std::vector<float>{6, 2}));
  // A power-of-two maximum: CEIL == FLOOR.
  const at::Tensor z = block_of({4.0f, 1.5f});
  EXPECT_EQ(first(fq(z, fmt("mxfp4", ScaleRule::Ceil)), 2), (std::vector<float>{4, 1.5f}));
  EXPECT_EQ(latmix::mx_encode(z, fmt("mxfp4", ScaleRule::RCeil)).scales.item<uint8_t>(), 127);
}

TEST(MxQuant, SaturationZeroBlocksNanAndTail) {
  EXPECT_EQ(first(fq(block_of({500.0f, -460.0f}), fmt("mxfp8_e4m3")), 2), (std::vector<float>{448, -448}));
  // 40 values, block 32: a full block of zeros and a tail of 8 with its own scale.
  std::vector<float> v(40, 0.0f);
  v[33] = 0.3f;
  v[35] = -0.1f;
  const at::Tensor x = at::tensor(v, at::kFloat);
  const latmix::MxPacked p = latmix::mx_encode(x, fmt("mxfp8_e4m3"), -1, false);
  ASSERT_EQ(p.scales.numel(), 2);
  EXPECT_EQ(p.scales[0].item<uint8_t>(), 0);                   // all-zero block: 2^-127
  EXPECT_EQ(p.scales[1].item<uint8_t>(), 127 - 2 - 8);         // floor(log2 0.3) - emax
  const at::Tensor q = fq(x, fmt("mxfp8_e4m3"));
  EXPECT_EQ(q.sizes(), x.sizes());
  EXPECT_NEAR(q[33].item<float>(), 0.3, 0.3 / 16);
  // NaN or Inf poisons its block only, with the NaN scale.
  v[3] = std::numeric_limits<float>::quiet_NaN();
  v[34] = std::numeric_limits<float>::infinity();
  const at::Tensor bad = at::tensor(v, at::kFloat).reshape({1, 40});
  const at::Tensor qb = fq(bad, fmt("mxfp4"));
  EXPECT_TRUE(at::isnan(qb).all().item<bool>());
  EXPECT_EQ(latmix::mx_encode(bad.narrow(1, 0, 32), fmt("mxfp4")).scales.item<uint8_t>(), 0xFF);
  const at::Tensor half = at::tensor(std::vector<float>(v.begin(), v.begin() + 36), at::kFloat).reshape({1, 36});
  const at::Tensor qh = fq(half.clone().index_put_({0, 3}, 1.0f), fmt("mxfp4", ScaleRule::Floor), -1);
  EXPECT_FALSE(at::isnan(qh.narrow(1, 0, 32)).any().item<bool>());
  EXPECT_TRUE(at::isnan(qh.narrow(1, 32, 4)).all().item<bool>());
}

TEST(MxQuant, SubnormalInputsUseTheSmallestScale) {
  const float tiny = std::ldexp(1.0f, -140);
  const at::Tensor x = block_of({tiny, -tiny / 2});
  EXPECT_EQ(latmix::mx_encode(x, fmt("mxfp8_e5m2")).scales.item<uint8_t>(), 0);  // clamped to 2^-127
  EXPECT_EQ(first(fq(x, fmt("mxfp8_e5m2")), 2), (std::vector<float>{tiny, -tiny / 2}));
  EXPECT_EQ(first(fq(x, fmt("mxfp8_e4m3")), 2)[0], 0.0f);  // 2^-13 is below E4M3's 2^-9 / 2
}

TEST(MxQuant, Nvfp4UsesAnE4m3ScalePer16) {
  const at::Tensor x = block_of({6.0f, 3.0f, -1.5f, 0.7f}, 16);
  const latmix::MxPacked p = latmix::mx_encode(x, MxFormat::parse("nvfp4"), -1, false);
  EXPECT_EQ(p.scales.item<uint8_t>(), latmix::element_encode(latmix::ElementFormat::E4M3, 1.0));
  EXPECT_EQ(first(fq(x, MxFormat::parse("nvfp4")), 4), (std::vector<float>{6, 3, -1.5f, 0.5f}));
  MxFormat ts = MxFormat::parse("nvfp4");
  ts.tensor_scale = true;
  const at::Tensor y = random_with_outliers(8, 64, 3);
  EXPECT_TRUE(at::equal(latmix::mx_decode(latmix::mx_encode(y, ts)), fq(y, ts)));
  EXPECT_LT((fq(y, ts) - y).norm().item<float>(), 0.2f * y.norm().item<float>());
}

TEST(MxQuant, ErrorIsWithinHalfAStepWhereNotClipped) {
  const at::Tensor x = random_with_outliers(24, 96, 7);
  for (const auto& name : latmix::mx_format_names()) {
    if (name == "nvfp4") continue;
    for (ScaleRule rule : {ScaleRule::Floor, ScaleRule::Ceil, ScaleRule::RCeil, ScaleRule::Even}) {
      const MxFormat f = fmt(name.c_str(), rule);
      const latmix::ElementInfo& el = f.info();
      const at::Tensor q = fq(x, f);
      const latmix::MxPacked p = latmix::mx_encode(x, f, -1, false);
      const auto xa = x.accessor<float, 2>();
      const auto qa = q.accessor<float, 2>();
      const auto sa = p.scales.accessor<uint8_t, 2>();
      int64_t checked = 0;
      for (int64_t r = 0; r < x.size(0); ++r) {
        for (int64_t c = 0; c < x.size(1); ++c) {
          const double X = latmix::e8m0_decode(sa[r][c / 32]);
          const double v = std::fabs(xa[r][c]) / X;
          if (v > el.max) continue;  // clipped
          int e = 0;
          std::frexp(v, &e);
          const int binade = el.is_int ? 0 : std::max(e - 1, 1 - el.bias);
          const double step = el.is_int ? std::ldexp(1.0, -el.mbits) : std::ldexp(1.0, binade - el.mbits);
          EXPECT_LE(std::fabs(static_cast<double>(xa[r][c]) - qa[r][c]), 0.5 * step * X)
              << f.describe() << " at " << r << "," << c;
          ++checked;
        }
      }
      EXPECT_GT(checked, x.numel() / 2) << f.describe();
      if (rule == ScaleRule::RCeil) {
        EXPECT_EQ(checked, x.numel()) << "RCEIL never clips";
      }
    }
  }
}

TEST(MxQuant, IdempotentAndPackedRoundTripIsExact) {
  const at::Tensor x = random_with_outliers(6, 77, 11);  // odd length: a tail and an odd nibble count
  for (const auto& name : latmix::mx_format_names()) {
    for (Rounding r : {Rounding::NearestEven, Rounding::NearestAway}) {
      const MxFormat f = fmt(name.c_str(), ScaleRule::Floor, r);
      const at::Tensor q = fq(x, f);
      if (name != "nvfp4") {
        EXPECT_TRUE(at::equal(fq(q, f), q)) << f.describe();
      }
      for (bool pack : {true, false}) {
        for (int64_t axis : {int64_t{-1}, int64_t{0}}) {
          const latmix::MxPacked p = latmix::mx_encode(x, f, axis, pack);
          EXPECT_EQ(p.nibbles, pack && f.is_4bit());
          EXPECT_TRUE(at::equal(latmix::mx_decode(p), fq(x, f, axis))) << f.describe() << " axis " << axis;
        }
      }
    }
  }
}

TEST(MxQuant, AxisAndDtypes) {
  const at::Tensor x = random_with_outliers(64, 40, 5);
  const MxFormat f = fmt("mxfp6_e2m3");
  EXPECT_TRUE(at::equal(fq(x, f, 0), fq(x.t().contiguous(), f, -1).t()));
  const at::Tensor xb = x.to(at::kBFloat16);
  const at::Tensor qb = fq(xb, f);
  EXPECT_EQ(qb.scalar_type(), at::kBFloat16);
  EXPECT_TRUE(at::equal(qb, fq(xb.to(at::kFloat), f).to(at::kBFloat16)));
  EXPECT_TRUE(at::equal(fq(x.to(at::kHalf), f), fq(x.to(at::kHalf).to(at::kFloat), f).to(at::kHalf)));
  EXPECT_EQ(fq(x.to(at::kDouble), f).scalar_type(), at::kDouble);
  EXPECT_THROW(fake_quantize(at::ones({4, 4}, at::kInt), f), latmix::Error);
  EXPECT_THROW(fake_quantize(x, f, 2), latmix::UsageError);
}

TEST(MxQuant, NibbleAndGgufLayouts) {
  const at::Tensor codes = at::tensor(std::vector<uint8_t>{1, 2, 3}, at::kByte);
  const at::Tensor packed = latmix::pack_nibbles(codes);
  EXPECT_EQ(first(packed.to(at::kFloat), 2), (std::vector<float>{0x21, 0x03}));
  EXPECT_TRUE(at::equal(latmix::unpack_nibbles(packed, 3), codes));

  std::vector<float> v(64);
  for (int i = 0; i < 64; ++i) v[i] = static_cast<float>((i % 8) * 0.5) * ((i / 8) % 2 ? -1.0f : 1.0f);
  const at::Tensor x = at::tensor(v, at::kFloat).reshape({2, 32});
  const at::Tensor blocks = latmix::gguf_mxfp4_encode(x);
  ASSERT_EQ(blocks.sizes(), (std::vector<int64_t>{2, 17}));
  const latmix::MxPacked p = latmix::mx_encode(x, MxFormat{}, -1, false);
  for (int j = 0; j < 16; ++j) {
    const int byte = blocks[0][1 + j].item<uint8_t>();
    EXPECT_EQ(byte & 15, p.codes[0][j].item<uint8_t>());
    EXPECT_EQ(byte >> 4, p.codes[0][j + 16].item<uint8_t>());
  }
  EXPECT_EQ(blocks[1][0].item<uint8_t>(), p.scales[1][0].item<uint8_t>());
  EXPECT_TRUE(at::equal(latmix::gguf_mxfp4_decode(blocks, {2, 32}), fq(x, MxFormat{})));
  EXPECT_THROW(latmix::gguf_mxfp4_encode(at::ones({2, 30})), latmix::Error);
  EXPECT_THROW(latmix::gguf_mxfp4_encode(x, MxFormat::parse("mxfp8_e4m3")), latmix::UsageError);
}

TEST(MxQuant, StraightThroughGradient) {
  const at::Tensor inp = random_with_outliers(8, 64, 13);
  at::Tensor A = at::eye(64, at::kFloat).set_requires_grad(true);  // an upstream "transform"
  const at::Tensor x = at::matmul(inp, A);
  const MxFormat f = fmt("mxfp4");
  const at::Tensor y = fake_quantize(x, f);
  ASSERT_TRUE(y.requires_grad());
  EXPECT_TRUE(at::equal(y.detach(), fq(x.detach(), f)));  // forward value is exactly quantized
  const at::Tensor w = at::arange(64, at::kFloat).reshape({1, 64}).expand({8, 64});
  (y * w).sum().backward();
  ASSERT_TRUE(A.grad().defined());
  EXPECT_TRUE(at::allclose(A.grad(), at::matmul(inp.t(), w)));

  at::Tensor leaf = x.detach().clone().set_requires_grad(true);
  fake_quantize(leaf, f, 0, MxKernel::Aten).sum().backward();
  EXPECT_TRUE(at::equal(leaf.grad(), at::ones_like(leaf)));
}

TEST(MxQuant, ErrorStats) {
  const at::Tensor x = random_with_outliers(16, 128, 17);
  const auto s4 = latmix::mx_error_stats(x, fmt("mxfp4"));
  const auto s8 = latmix::mx_error_stats(x, fmt("mxfp8_e4m3"));
  EXPECT_EQ(s4.numel, x.numel());
  EXPECT_EQ(s4.blocks, 16 * 4);
  EXPECT_GT(s8.sqnr_db, s4.sqnr_db + 10);
  EXPECT_GT(s4.clip_rate, 0.0);
  EXPECT_EQ(latmix::mx_error_stats(x, fmt("mxfp4", ScaleRule::RCeil)).clipped, 0);
  const double mse = (fq(x, fmt("mxfp4")) - x).square().mean().item<double>();
  EXPECT_NEAR(s4.mse, mse, mse * 1e-5);
}

TEST(MxQuant, CudaMatchesCpuBitForBit) {
  if (!at::hasCUDA()) GTEST_SKIP() << "no CUDA device";
  const at::Tensor x = random_with_outliers(256, 1000, 19);
  for (const auto& name : latmix::mx_format_names()) {
    for (ScaleRule rule : {ScaleRule::Floor, ScaleRule::Ceil, ScaleRule::RCeil, ScaleRule::Even}) {
      for (Rounding r : {Rounding::NearestEven, Rounding::NearestAway}) {
        MxFormat f = fmt(name.c_str(), rule, r);
        f.tensor_scale = name == "nvfp4" && rule == ScaleRule::Ceil;
        for (at::ScalarType dt : {at::kFloat, at::kBFloat16}) {
          const at::Tensor cpu = fake_quantize(x.to(dt), f, -1, MxKernel::CpuLoop);
          const at::Tensor gpu = fake_quantize(x.to(dt).to(at::kCUDA), f).to(at::kCPU);
          EXPECT_TRUE(at::equal(cpu, gpu)) << f.describe();
        }
      }
    }
  }
}

}  // namespace

// A row's quantization is its own: fake_quantize of a [4, 64, 288] batch, row by row, equals that of
// each half and of each row alone, bit for bit, in every MX format (NVFP4 without its tensor scale,
// which is the whole tensor's by definition). Data-parallel learning splits batches this way.
TEST(MxQuant, ARowsQuantizationDoesNotDependOnItsBatch) {
  at::manual_seed(7);
  const at::Tensor x = at::randn({4, 64, 288}) * at::linspace(0.01, 30, 288);
  for (const auto& name : latmix::mx_format_names()) {
    const MxFormat f = MxFormat::parse(name);
    if (f.tensor_scale) continue;
    const at::Tensor whole = fake_quantize(x, f);
    for (const int64_t part : {2, 1}) {
      for (int64_t r = 0; r < 4; r += part) {
        const at::Tensor piece = fake_quantize(x.narrow(0, r, part).contiguous(), f);
        EXPECT_TRUE(at::equal(piece, whole.narrow(0, r, part)))
            << name << ": rows " << r << ".." << r + part - 1 << " quantized alone differ in "
            << (piece != whole.narrow(0, r, part)).sum().item<int64_t>() << " values";
      }
    }
  }
}
