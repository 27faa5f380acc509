// The GPTQ sweep's implementations bit for bit against a straightforward reference: the sweep as
// it was written before it moved off the host (per-group index lists built on the host, scales
// from the CPU codec), on random layers of odd sizes, act-order on and off, dynamic and static
// scales, lazy batches that do and do not hold whole MX blocks, dead columns. The ATen loop (the
// CPU default) and the fused kernel's loop run on the host must match it exactly; on a CUDA device
// the fused kernel must match the ATen loop there exactly.
#include <gtest/gtest.h>

#include <ATen/ATen.h>

#include <cmath>
#include <string>
#include <vector>

#include "../../engine/quant/cuda/gptq_cuda.h"
#include "../../engine/quant/gptq_sweep.h"
#include "latmix/error.h"
#include "latmix/mx.h"
#include "latmix/quant_gptq.h"

namespace {

using latmix::GptqOptions;
using latmix::MxFormat;
using latmix::gptq_detail::SweepKernel;

bool same_bits(const at::Tensor& a, const at::Tensor& b) {
  return a.sizes() == b.sizes() && a.scalar_type() == b.scalar_type() &&
         at::equal(a.to(at::kCPU, at::kFloat).contiguous().view(at::kInt),
                   b.to(at::kCPU, at::kFloat).contiguous().view(at::kInt));
}

// ---- The reference: the sweep before it moved off the host ----------------------------------

at::Tensor codec_scales(const at::Tensor& x, const MxFormat& f) {
  const at::Tensor codes = latmix::mx_encode(x.detach().to(at::kCPU, at::kFloat), f, -1, false).scales.to(at::kFloat);
  const at::Tensor scales = at::exp2(codes - 127.0f);
  return at::where(codes == 255.0f, at::full_like(scales, std::nanf("")), scales);
}

struct RefSweep {
  at::Tensor W, Hinv, scales;
  std::vector<int64_t> perm, invperm;
  std::vector<bool> scaled;
  MxFormat f;
};

at::Tensor ref_index(const std::vector<int64_t>& v) {
  return at::tensor(v, at::kLong);
}

at::Tensor ref_block(const RefSweep& s, int64_t g, int64_t i1, int64_t i2, int64_t i, const at::Tensor& W1,
                     const at::Tensor& Err1) {
  const int64_t n = s.W.size(1), c0 = g * s.f.block, c1 = std::min(n, c0 + s.f.block);
  std::vector<int64_t> slot_in, pos_in, slot_out, pos_out;
  for (int64_t c = c0; c < c1; ++c) {
    const int64_t p = s.invperm[static_cast<size_t>(c)];
    (p < i2 ? slot_in : slot_out).push_back(c - c0);
    (p < i2 ? pos_in : pos_out).push_back(p < i2 ? p - i1 : p);
  }
  at::Tensor G = at::empty({s.W.size(0), c1 - c0}, s.W.options());
  if (!slot_in.empty()) G.index_copy_(1, ref_index(slot_in), W1.index_select(1, ref_index(pos_in)));
  if (!slot_out.empty()) {
    at::Tensor upd = s.W.index_select(1, ref_index(pos_out));
    if (i > 0) upd = upd - Err1.slice(1, 0, i).matmul(s.Hinv.slice(0, i1, i1 + i).index_select(1, ref_index(pos_out)));
    G.index_copy_(1, ref_index(slot_out), upd);
  }
  return G;
}

void ref_batch(RefSweep& s, int64_t i1, int64_t i2, at::Tensor& Q) {
  at::Tensor W1 = s.W.slice(1, i1, i2).clone();
  at::Tensor Err1 = at::zeros_like(W1);
  const at::Tensor Hinv1 = s.Hinv.slice(0, i1, i2).slice(1, i1, i2);
  for (int64_t i = 0; i < i2 - i1; ++i) {
    const int64_t g = s.perm[static_cast<size_t>(i1 + i)] / s.f.block;
    if (!s.scaled[static_cast<size_t>(g)]) {
      s.scales.select(1, g).copy_(codec_scales(ref_block(s, g, i1, i2, i, W1, Err1), s.f).select(1, 0));
      s.scaled[static_cast<size_t>(g)] = true;
    }
    const at::Tensor w = W1.select(1, i);
    const at::Tensor q = latmix::round_to_mx_grid(w, s.scales.select(1, g), s.f);
    Q.select(1, i1 + i).copy_(q);
    const at::Tensor err = (w - q) / Hinv1[i][i];
    W1.slice(1, i).sub_(err.unsqueeze(1) * Hinv1[i].slice(0, i).unsqueeze(0));
    Err1.select(1, i).copy_(err);
  }
  if (i2 < s.W.size(1)) s.W.slice(1, i2).sub_(Err1.matmul(s.Hinv.slice(0, i1, i2).slice(1, i2)));
}

at::Tensor reference_gptq(const at::Tensor& weight, const at::Tensor& hessian, const MxFormat& f,
                          const GptqOptions& o) {
  const at::Tensor W0 = weight.to(at::kFloat);
  at::Tensor H = hessian.to(at::kFloat).clone();
  const at::Tensor dead = H.diagonal() == 0;
  H.diagonal().masked_fill_(dead, 1.0);
  const at::Tensor W = W0.masked_fill(dead.unsqueeze(0), 0.0);
  const int64_t n = W.size(1), groups = (n + f.block - 1) / f.block;
  RefSweep s;
  s.f = f;
  const at::Tensor perm = o.act_order ? at::argsort(H.diagonal(), 0, true) : at::arange(n, at::kLong);
  s.perm.assign(perm.data_ptr<int64_t>(), perm.data_ptr<int64_t>() + n);
  s.invperm.assign(static_cast<size_t>(n), 0);
  for (int64_t p = 0; p < n; ++p) s.invperm[static_cast<size_t>(s.perm[static_cast<size_t>(p)])] = p;
  s.scales = o.static_scales ? codec_scales(W, f) : at::zeros({W.size(0), groups});
  s.scaled.assign(static_cast<size_t>(groups), o.static_scales);
  s.W = W.index_select(1, perm);
  at::Tensor Hp = H.index_select(0, perm).index_select(1, perm);
  Hp.diagonal().add_(o.percdamp * Hp.diagonal().mean().item<double>());
  s.Hinv = at::linalg_cholesky(at::cholesky_inverse(at::linalg_cholesky(Hp)), /*upper=*/true);
  at::Tensor Q = at::zeros_like(s.W);
  for (int64_t i1 = 0; i1 < n; i1 += o.block_columns) ref_batch(s, i1, std::min(n, i1 + o.block_columns), Q);
  Q = Q.index_select(1, ref_index(s.invperm));
  return latmix::fake_quantize(Q, f, -1).to(weight.scalar_type());
}

// ---- Cases -----------------------------------------------------------------------------------

struct Case {
  int64_t rows, n;
  const char* format;
  int64_t block;  // 0: the format's
  latmix::ScaleRule rule;
  int64_t block_columns;
};

const Case kCases[] = {
    {16, 96, "mxfp4", 0, latmix::ScaleRule::Floor, 128},    {7, 37, "mxfp4", 0, latmix::ScaleRule::Floor, 128},
    {33, 130, "mxfp4", 0, latmix::ScaleRule::Ceil, 48},     {5, 67, "mxint4", 8, latmix::ScaleRule::RCeil, 16},
    {9, 50, "mxfp8_e4m3", 0, latmix::ScaleRule::Even, 7},   {4, 41, "mxint8", 5, latmix::ScaleRule::Floor, 1},
    {1, 1, "mxfp6_e2m3", 0, latmix::ScaleRule::Floor, 128}, {3, 29, "mxfp8_e5m2", 4, latmix::ScaleRule::RCeil, 12},
};

// A layer with correlated inputs of very different energy and one dead input (when n > 3).
void make_layer(const Case& c, uint64_t seed, at::Tensor& W, at::Tensor& H) {
  at::manual_seed(seed);
  const at::Tensor mix = at::randn({c.n, c.n}) / 4 + at::eye(c.n);
  at::Tensor X = at::randn({4 * c.n + 8, c.n}).matmul(mix) * at::exp(at::randn({c.n}));
  if (c.n > 3) X.select(1, 2).zero_();
  H = X.t().matmul(X) * (2.0 / static_cast<double>(X.size(0)));
  W = at::randn({c.rows, c.n}) * 0.1;
}

std::string describe(const Case& c, const GptqOptions& o) {
  return std::to_string(c.rows) + "x" + std::to_string(c.n) + " " + c.format + " block " + std::to_string(c.block) +
         " gptq_block " + std::to_string(c.block_columns) + (o.act_order ? " act_order" : "") +
         (o.static_scales ? " static" : "");
}

// Runs `check` for every case and every act_order / static_scales combination.
template <typename Check>
void for_every_case(Check check) {
  uint64_t seed = 100;
  for (const Case& c : kCases) {
    MxFormat f = MxFormat::parse(c.format);
    if (c.block > 0) f.block = c.block;
    f.scale = c.rule;
    at::Tensor W, H;
    make_layer(c, ++seed, W, H);
    for (int variant = 0; variant < 4; ++variant) {
      GptqOptions o;
      o.act_order = (variant & 1) != 0;
      o.static_scales = (variant & 2) != 0;
      o.block_columns = c.block_columns;
      check(W, H, f, o, describe(c, o));
    }
  }
}

latmix::GptqResult run(const at::Tensor& W, const at::Tensor& H, const MxFormat& f, const GptqOptions& o,
                       SweepKernel kernel) {
  return latmix::gptq_detail::quantize_weight(W, H, f, o, {}, kernel);
}

TEST(GptqSweep, AtenLoopIsTheReference) {
  for_every_case(
      [](const at::Tensor& W, const at::Tensor& H, const MxFormat& f, const GptqOptions& o, const std::string& what) {
        const at::Tensor expected = reference_gptq(W, H, f, o);
        EXPECT_TRUE(same_bits(latmix::gptq_quantize_weight(W, H, f, o).weight, expected)) << what;
        EXPECT_TRUE(same_bits(run(W, H, f, o, SweepKernel::Aten).weight, expected)) << what;
      });
}

TEST(GptqSweep, FusedLoopOnTheHostIsTheReference) {
  for_every_case(
      [](const at::Tensor& W, const at::Tensor& H, const MxFormat& f, const GptqOptions& o, const std::string& what) {
        const latmix::GptqResult host = run(W, H, f, o, SweepKernel::Host);
        EXPECT_TRUE(same_bits(host.weight, reference_gptq(W, H, f, o))) << what;
        const latmix::GptqResult aten = run(W, H, f, o, SweepKernel::Aten);
        EXPECT_EQ(host.dead_columns, aten.dead_columns) << what;
        EXPECT_EQ(host.reprojected, aten.reprojected) << what;
        EXPECT_EQ(host.relative_output_error, aten.relative_output_error) << what;
      });
}

TEST(GptqSweep, SortedDiagonalWithActOrderAndBf16) {
  // act_order with an already sorted diagonal: the fused loop takes whole blocks inside a batch
  // itself, as without act_order; bf16 weights come back as bf16.
  at::manual_seed(7);
  const int64_t n = 100;
  const at::Tensor X = at::randn({300, n});
  const at::Tensor H = X.t().matmul(X) / 150 + at::diag(at::linspace(4000.0, 1000.0, n));
  const at::Tensor W = (at::randn({12, n}) * 0.2).to(at::kBFloat16);
  GptqOptions o;
  o.act_order = true;
  o.block_columns = 64;
  const MxFormat f = MxFormat::parse("mxfp4");
  const at::Tensor expected = reference_gptq(W, H, f, o);
  EXPECT_EQ(expected.scalar_type(), at::kBFloat16);
  EXPECT_TRUE(same_bits(run(W, H, f, o, SweepKernel::Host).weight, expected));
  EXPECT_TRUE(same_bits(run(W, H, f, o, SweepKernel::Aten).weight, expected));
}

// The fused loop's rounding of one value (gptq_cuda::grid_round, a branch-free search) against
// round_on_grid (at::bucketize) on the values where a search goes wrong: every midpoint exactly
// (ties), its neighbouring floats, every grid value, the range's ends and beyond, signed zeros,
// infinities and NaN, in every element format, with a scale of 1 and of 2^-3.
TEST(GptqSweep, FusedRoundingIsBucketizeOnEdgeValues) {
  for (const char* name : {"mxfp4", "mxfp6_e2m3", "mxfp6_e3m2", "mxfp8_e4m3", "mxfp8_e5m2", "mxint8"}) {
    SCOPED_TRACE(name);
    const MxFormat f = MxFormat::parse(name);
    const latmix::gptq_detail::GridTables t = latmix::gptq_detail::make_grid(f, at::kCPU);
    const at::Tensor values = t.values.contiguous(), mids = t.midpoints.contiguous(), upper = t.pick_upper.contiguous();
    std::vector<float> probe = {0.0f, -0.0f, std::nanf(""), INFINITY, -INFINITY, 1e30f, -1e30f, 1e-30f, -1e-30f};
    for (const at::Tensor& table : {values, mids}) {
      for (int64_t i = 0; i < table.numel(); ++i) {
        const float v = table.data_ptr<float>()[i];
        probe.insert(probe.end(), {v, std::nextafter(v, INFINITY), std::nextafter(v, -INFINITY), -v});
      }
    }
    const latmix::gptq_cuda::GridView g{values.data_ptr<float>(), mids.data_ptr<float>(), upper.data_ptr<int64_t>(),
                                        values.numel(), t.signed_zero ? 1 : 0};
    for (const float scale : {1.0f, 0.125f}) {
      std::vector<float> x;
      for (const float v : probe) x.push_back(v * scale);
      const at::Tensor in = at::tensor(x);
      const at::Tensor expected = latmix::gptq_detail::round_on_grid(in, at::full({in.size(0)}, scale), t);
      std::vector<float> got;
      for (const float v : x) got.push_back(latmix::gptq_cuda::grid_round(v, scale, g));
      EXPECT_TRUE(same_bits(at::tensor(got), expected.contiguous())) << "scale " << scale;
    }
  }
}

TEST(GptqSweep, KernelChoiceErrors) {
  const at::Tensor W = at::randn({4, 32});
  const at::Tensor H = at::eye(32);
  const MxFormat f = MxFormat::parse("mxfp4");
  EXPECT_THROW(run(W, H, f, {}, SweepKernel::Cuda), latmix::Error);
  if (at::hasCUDA()) {
    EXPECT_THROW(run(W.cuda(), H.cuda(), f, {}, SweepKernel::Host), latmix::Error);
  }
}

bool cuda_ready() {
  return latmix::gptq_detail::gptq_cuda_kernel_built() && at::hasCUDA();
}

TEST(GptqCuda, FusedKernelIsTheAtenLoopOnTheDevice) {
  if (!cuda_ready()) GTEST_SKIP() << "no CUDA device or a build without the CUDA kernel";
  for_every_case(
      [](const at::Tensor& W, const at::Tensor& H, const MxFormat& f, const GptqOptions& o, const std::string& what) {
        const at::Tensor Wc = W.cuda(), Hc = H.cuda();
        const latmix::GptqResult fused = run(Wc, Hc, f, o, SweepKernel::Cuda);
        const latmix::GptqResult aten = run(Wc, Hc, f, o, SweepKernel::Aten);
        EXPECT_TRUE(fused.weight.is_cuda()) << what;
        EXPECT_TRUE(same_bits(fused.weight, aten.weight)) << what;
        EXPECT_TRUE(same_bits(latmix::gptq_quantize_weight(Wc, Hc, f, o).weight, fused.weight)) << what;
        // Against the CPU only loosely: the matrix products round differently on the device.
        const latmix::GptqResult cpu = run(W, H, f, o, SweepKernel::Aten);
        EXPECT_NEAR(fused.relative_output_error, cpu.relative_output_error, 0.05 * cpu.relative_output_error + 1e-6)
            << what;
      });
}

TEST(GptqCuda, LargeLayerMatchesTheAtenLoop) {
  if (!cuda_ready()) GTEST_SKIP() << "no CUDA device or a build without the CUDA kernel";
  at::manual_seed(11);
  const int64_t n = 1024;
  const at::Tensor X =
      at::randn({4096, n}, at::kCUDA).matmul(at::randn({n, n}, at::kCUDA) / 32 + at::eye(n, at::kCUDA));
  const at::Tensor H = X.t().matmul(X) / 2048;
  const at::Tensor W = at::randn({768, n}, at::kCUDA) * 0.05;
  for (const char* name : {"mxfp4", "mxint8"}) {
    const MxFormat f = MxFormat::parse(name);
    EXPECT_TRUE(same_bits(run(W, H, f, {}, SweepKernel::Cuda).weight, run(W, H, f, {}, SweepKernel::Aten).weight))
        << name;
  }
}

}  // namespace
