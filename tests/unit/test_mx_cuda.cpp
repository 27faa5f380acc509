// The fused CUDA kernels (engine/mx/cuda): their scalar code checked on the host against the CPU
// loop, encoder and decoder in every build, and on a CUDA device (skipped without one) fake
// quantization, encoding (codes one per byte or packed two per byte), and decoding bit for bit
// against the CPU over every format, scale rule, rounding and dtype, on tensors with outliers,
// tails, odd rows, zero blocks, subnormals, ties, values near FLT_MAX, NaN and Inf, and on random
// codes and scales; plus the straight-through gradient on CUDA.
#include <ATen/CPUGeneratorImpl.h>
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <cstring>
#include <limits>
#include <string>
#include <vector>

#include "../../engine/mx/cuda/mx_cuda.h"
#include "../../engine/mx/mx_internal.h"
#include "latmix/error.h"
#include "latmix/mx.h"

namespace {

using latmix::fake_quantize;
using latmix::MxFormat;
using latmix::MxKernel;
using latmix::Rounding;
using latmix::ScaleRule;

// Every format configuration: 7 MX formats x 4 scale rules x 2 roundings, NVFP4 x 2 roundings x
// tensor scale off/on (60).
std::vector<MxFormat> all_formats(int64_t block = 0) {
  std::vector<MxFormat> out;
  for (const auto& name : latmix::mx_format_names()) {
    for (Rounding r : {Rounding::NearestEven, Rounding::NearestAway}) {
      if (name == "nvfp4") {
        for (bool ts : {false, true}) {
          MxFormat f = MxFormat::parse(name);
          f.rounding = r;
          f.tensor_scale = ts;
          if (block > 0) f.block = block;
          out.push_back(f);
        }
        continue;
      }
      for (ScaleRule rule : {ScaleRule::Floor, ScaleRule::Ceil, ScaleRule::RCeil, ScaleRule::Even}) {
        MxFormat f = MxFormat::parse(name);
        f.scale = rule;
        f.rounding = r;
        if (block > 0) f.block = block;
        out.push_back(f);
      }
    }
  }
  return out;
}

// fp32 [rows, cols] with a bit of everything: normal values with 1% outliers at 60x, each row
// scaled by its own power of two from 2^-140 (subnormal results) to 2^120 (near FLT_MAX), rows of
// exact ties (multiples of 1/8 and 1/4), zero blocks and a negative-zero row, isolated NaN, +Inf
// and -Inf, and +-FLT_MAX.
at::Tensor nasty(int64_t rows, int64_t cols, uint64_t seed) {
  auto gen = at::make_generator<at::CPUGeneratorImpl>(seed);
  const auto opt = at::TensorOptions().dtype(at::kFloat);
  at::Tensor x = at::randn({rows, cols}, gen, opt);
  const at::Tensor mask = at::rand({rows, cols}, gen, opt).lt(0.01);
  x = at::where(mask, x * 60, x) * 0.37;
  const at::Tensor ties = at::randint(-64, 65, {rows, cols}, gen, opt) * 0.125;
  float* p = x.data_ptr<float>();
  const float* t = ties.data_ptr<float>();
  const float inf = std::numeric_limits<float>::infinity();
  for (int64_t r = 0; r < rows; ++r) {
    float* row = p + r * cols;
    const int kind = static_cast<int>(r % 8);
    const int exponent = static_cast<int>((r * 37) % 261) - 140;
    for (int64_t c = 0; c < cols; ++c) {
      if (kind == 1 || kind == 5) row[c] = t[r * cols + c];
      if (kind != 3) row[c] = std::ldexp(row[c], kind == 0 ? 0 : exponent);
      if (kind == 3) row[c] = c < cols / 2 ? 0.0f : -0.0f;  // zero blocks, negative zeros
    }
    if (kind == 2 && cols > 5) row[5] = std::numeric_limits<float>::quiet_NaN();
    if (kind == 4 && cols > 40) row[40] = inf;
    if (kind == 6 && cols > 3) row[cols - 3] = -inf;
    if (kind == 7 && cols > 70) {
      row[1] = std::numeric_limits<float>::max();
      row[66] = -std::numeric_limits<float>::max() * 0.99f;
      row[70] = std::numeric_limits<float>::max() * 0.999f;
    }
  }
  return x;
}

// Mismatches between two results of the same shape: NaN must meet NaN, everything else must have
// the same bits (compared as fp32, which represents bf16, fp16 and the fp64 results exactly).
int64_t mismatches(const at::Tensor& want, const at::Tensor& got) {
  if (want.sizes() != got.sizes() || want.scalar_type() != got.scalar_type()) return want.numel() + 1;
  const at::Tensor a = want.to(at::kCPU).to(at::kFloat).contiguous().reshape({-1});
  const at::Tensor b = got.to(at::kCPU).to(at::kFloat).contiguous().reshape({-1});
  const auto* pa = static_cast<const uint32_t*>(a.data_ptr());
  const auto* pb = static_cast<const uint32_t*>(b.data_ptr());
  int64_t bad = 0;
  for (int64_t i = 0; i < a.numel(); ++i) {
    const bool na = (pa[i] & 0x7FFFFFFFu) > 0x7F800000u;
    const bool nb = (pb[i] & 0x7FFFFFFFu) > 0x7F800000u;
    bad += (na || nb) ? (na != nb) : (pa[i] != pb[i]);
  }
  return bad;
}

int64_t byte_mismatches(const at::Tensor& want, const at::Tensor& got) {
  if (want.sizes() != got.sizes()) return want.numel() + 1;
  return want.to(at::kCPU).ne(got.to(at::kCPU)).sum().item<int64_t>();
}

bool cuda_ready() { return latmix::mx_cuda_kernel_built() && at::hasCUDA(); }

// The kernels' scalar code (mx_cuda_math.h) run on the host, block by block as the kernels do.
// `fast` holds the values of the kernels' vector path (the kFinite variants).
struct HostResult {
  at::Tensor values, fast, codes, scales;
};

HostResult host_emulation(const at::Tensor& x2d, const MxFormat& f, float s2) {
  namespace k = latmix::mx_cuda;
  const int64_t rows = x2d.size(0), n = x2d.size(1), B = f.block, nb = (n + B - 1) / B;
  const k::QuantParams p = k::make_quant_params(f, rows, n, s2);
  HostResult r{at::empty({rows, n}, at::kFloat), at::empty({rows, n}, at::kFloat), at::empty({rows, n}, at::kByte),
               at::empty({rows, nb}, at::kByte)};
  const float* in = x2d.data_ptr<float>();
  float* out = r.values.data_ptr<float>();
  float* fast = r.fast.data_ptr<float>();
  uint8_t* codes = r.codes.data_ptr<uint8_t>();
  uint8_t* scales = r.scales.data_ptr<uint8_t>();
  for (int64_t i = 0; i < rows * nb; ++i) {
    const int64_t start = (i / nb) * n + (i % nb) * B;
    const int64_t len = std::min(B, n - (i % nb) * B);
    uint32_t m = 0;
    for (int64_t j = 0; j < len; ++j) m = std::max(m, k::amax_bits(in[start + j]));
    const k::BlockScale s = k::block_scale(m, p);
    for (int64_t j = 0; j < len; ++j) {
      const float nan = std::numeric_limits<float>::quiet_NaN();
      out[start + j] = s.bad ? nan : k::fake_quant_value(in[start + j], s, p);
      fast[start + j] = s.bad ? nan : k::fake_quant_value<true>(in[start + j], s, p);
      if (!s.bad && k::bf16_exact(s, p)) {  // the vector kernel's bf16 truncation must be exact
        EXPECT_EQ(k::f2u(fast[start + j]) & 0xFFFFu, 0u) << f.describe();
      }
      // The encoder's code (FpEncoder for the FP formats) against the code of the element value.
      const uint32_t code = s.bad ? 0u : k::encode_element(in[start + j], s, p);
      if (!s.bad) {
        EXPECT_EQ(code, k::element_code(k::element_value(in[start + j], s, p), p.el)) << f.describe();
        EXPECT_EQ(code, k::encode_element<true>(in[start + j], s, p)) << f.describe();
      }
      codes[start + j] = static_cast<uint8_t>(code);
    }
    scales[i] = static_cast<uint8_t>(s.code);
  }
  return r;
}

TEST(MxCuda, KernelScalarCodeMatchesTheCpuLoopOnTheHost) {
  int64_t cases = 0, values = 0;
  for (int64_t block : {int64_t{0}, int64_t{8}, int64_t{7}}) {
    const at::Tensor x = nasty(24, 200, 23 + static_cast<uint64_t>(block));
    for (const MxFormat& f : all_formats(block)) {
      SCOPED_TRACE(f.describe());
      const latmix::MxPacked packed = latmix::mx_encode(x, f, -1, false);
      const HostResult h = host_emulation(x, f, packed.tensor_scale);
      const at::Tensor want = fake_quantize(x, f, -1, MxKernel::CpuLoop);
      EXPECT_EQ(mismatches(want, h.values), 0);
      EXPECT_EQ(mismatches(want, h.fast), 0);
      EXPECT_EQ(byte_mismatches(packed.codes, h.codes), 0);
      EXPECT_EQ(byte_mismatches(packed.scales, h.scales), 0);
      ++cases;
      values += x.numel();
    }
  }
  std::printf("[ host emulation ] %lld format cases, %lld values, compared with the CPU loop and encoder\n",
              static_cast<long long>(cases), static_cast<long long>(values));
}

// The decode kernels' scalar code on the host, element by element: fp32 products, and the bf16
// rounding the vector kernel does (a truncation where decode_bf16_exact says the product is exact).
at::Tensor host_decode(const latmix::MxPacked& m, bool bf16) {
  namespace k = latmix::mx_cuda;
  const int64_t n = m.shape.back();
  const at::Tensor codes = m.codes.reshape({-1, m.codes.size(-1)}).contiguous();
  const at::Tensor scales = m.scales.reshape({-1, m.scales.size(-1)}).contiguous();
  const int64_t rows = codes.size(0);
  const k::DecodeParams p = k::make_decode_params(m.format, m.tensor_scale, rows, n, m.nibbles);
  at::Tensor out = at::empty({rows, n}, bf16 ? at::kBFloat16 : at::kFloat);
  const uint8_t* c = codes.data_ptr<uint8_t>();
  const uint8_t* sc = scales.data_ptr<uint8_t>();
  const int64_t cw = codes.size(1), nb = scales.size(1);
  for (int64_t r = 0; r < rows; ++r) {
    for (int64_t j = 0; j < n; ++j) {
      const uint32_t byte = c[r * cw + (m.nibbles ? j / 2 : j)];
      const uint32_t code = m.nibbles ? (j % 2 ? byte >> 4 : byte & 0xFu) : byte;
      const uint32_t scode = sc[r * nb + j / p.block];
      const float v = k::decode_value(code, scode, p);
      if (!bf16) {
        out.data_ptr<float>()[r * n + j] = v;
        continue;
      }
      const uint32_t u = k::f2u(v);
      uint16_t h;
      if (v != v) {
        h = 0x7FC0;
      } else if (k::decode_bf16_exact(scode, p)) {
        EXPECT_EQ(u & 0xFFFFu, 0u) << m.format.describe() << " code " << code << " scale " << scode;
        h = static_cast<uint16_t>(u >> 16);
      } else {
        h = static_cast<uint16_t>((u + 0x7FFFu + ((u >> 16) & 1u)) >> 16);
      }
      std::memcpy(static_cast<uint16_t*>(out.data_ptr()) + r * n + j, &h, 2);
    }
  }
  return out;
}

// Every code with every scale code: random bytes for both, on [rows, n] (packed when 4-bit).
latmix::MxPacked random_packed(const MxFormat& f, int64_t rows, int64_t n, uint64_t seed) {
  auto gen = at::make_generator<at::CPUGeneratorImpl>(seed);
  latmix::MxPacked m;
  m.format = f;
  m.shape = {rows, n};
  m.axis = 1;
  m.nibbles = f.is_4bit();
  const int64_t top = m.nibbles ? 256 : (int64_t{1} << f.info().bits);
  m.codes = at::randint(0, top, {rows, m.nibbles ? (n + 1) / 2 : n}, gen, at::TensorOptions().dtype(at::kByte));
  if (m.nibbles && n % 2) m.codes.select(1, n / 2).bitwise_and_(15);  // pack_nibbles' zero high nibble
  m.scales = at::randint(0, 256, {rows, (n + f.block - 1) / f.block}, gen, at::TensorOptions().dtype(at::kByte));
  m.tensor_scale = f.tensor_scale ? 0.0371f : 1.0f;
  return m;
}

TEST(MxCuda, DecodeScalarCodeMatchesTheCpuOnTheHost) {
  int64_t cases = 0;
  for (int64_t block : {int64_t{0}, int64_t{8}, int64_t{7}}) {
    const at::Tensor x = nasty(24, 200, 31 + static_cast<uint64_t>(block));
    for (const MxFormat& f : all_formats(block)) {
      SCOPED_TRACE(f.describe());
      for (const latmix::MxPacked& m : {latmix::mx_encode(x, f, -1, true), latmix::mx_encode(x, f, -1, false),
                                        random_packed(f, 16, 199, 7 + static_cast<uint64_t>(cases))}) {
        EXPECT_EQ(mismatches(latmix::mx_decode(m, at::kFloat), host_decode(m, false)), 0);
        EXPECT_EQ(mismatches(latmix::mx_decode(m, at::kBFloat16), host_decode(m, true)), 0);
        ++cases;
      }
    }
  }
  std::printf("[ host emulation ] decoding: %lld cases (encoded and random codes/scales), fp32 and bf16\n",
              static_cast<long long>(cases));
}

TEST(MxCuda, Mxfp4EncoderConstantsMatchTheFormat) {
  // The encoder's MXFP4 vector kernel (kFp4 in mx_kernels.cu) hard-codes these.
  const latmix::mx_cuda::QuantParams q = latmix::mx_cuda::make_quant_params(MxFormat::parse("mxfp4"), 1, 32, 1.0f);
  EXPECT_EQ(q.el.is_int, 0);
  EXPECT_EQ(q.el.ebits, 2);
  EXPECT_EQ(q.el.mbits, 1);
  EXPECT_EQ(q.el.bias, 1);
  EXPECT_EQ(q.el.emax, 2);
  EXPECT_EQ(q.el.max, 6.0f);
  EXPECT_EQ(q.el.min_normal_bits, 0x3F800000u);
  EXPECT_EQ(q.el.min_exp, -1);
  EXPECT_EQ(q.el.max_code, 7u);
  EXPECT_EQ(q.el.sub_magic, 4194304.0f);
  EXPECT_EQ(q.el.sub_inv_step, 2.0f);
}

TEST(MxCuda, KernelChoiceErrorsWithoutACudaTensor) {
  const at::Tensor x = nasty(4, 64, 1);
  EXPECT_THROW(fake_quantize(x, MxFormat::parse("mxfp4"), -1, MxKernel::Cuda), latmix::Error);
  at::Tensor codes, scales;
  EXPECT_THROW(latmix::mx_detail::encode_rows_cuda(x, MxFormat{}, 1.0f, codes, scales), latmix::Error);
  EXPECT_THROW(latmix::mx_detail::encode_rows_cuda(x, MxFormat{}, 1.0f, codes, scales, true), latmix::Error);
  const latmix::MxPacked m = latmix::mx_encode(x, MxFormat{});
  EXPECT_THROW(latmix::mx_detail::decode_rows_cuda(m.codes, m.scales, m.format, 1.0f, 64, true, at::kFloat),
               latmix::Error);
  if (!latmix::mx_cuda_kernel_built()) {
    try {
      fake_quantize(x, MxFormat{}, -1, MxKernel::Cuda);
    } catch (const latmix::Error& e) {
      EXPECT_NE(std::string(e.what()).find("build with CUDA"), std::string::npos) << e.what();
    }
  }
}

// One input as the CUDA tests use it: the tensor (CPU), the axis, a label.
struct Input {
  at::Tensor x;
  int64_t axis;
  std::string label;
};

TEST(MxCuda, FakeQuantizationMatchesTheCpuLoopBitForBit) {
  if (!cuda_ready()) GTEST_SKIP() << "no CUDA device or a build without the CUDA kernel";
  std::vector<Input> inputs;
  inputs.push_back({nasty(64, 512, 1), -1, "64x512 (vector kernel)"});
  inputs.push_back({nasty(48, 1000, 2), -1, "48x1000 (tails)"});
  inputs.push_back({nasty(96, 40, 3).reshape({4, 24, 40}), 1, "4x24x40 axis 1"});
  inputs.push_back({nasty(16, 33, 4), -1, "16x33 (short rows)"});
  int64_t cases = 0, values = 0, bad_total = 0;
  for (const Input& in : inputs) {
    for (at::ScalarType dt : {at::kFloat, at::kBFloat16, at::kHalf, at::kDouble}) {
      const at::Tensor x = in.x.to(dt);
      const at::Tensor xg = x.to(at::kCUDA);
      // The same values behind a pointer that is not 16-byte aligned (the per-block kernel).
      const at::Tensor flat = at::empty({xg.numel() + 1}, xg.options());
      const at::Tensor xm = flat.narrow(0, 1, xg.numel()).view(xg.sizes()).copy_(xg);
      for (const MxFormat& f : all_formats()) {
        SCOPED_TRACE(f.describe() + " on " + in.label + " " + std::string(c10::toString(dt)));
        const at::Tensor cpu = fake_quantize(x, f, in.axis, MxKernel::CpuLoop);
        const int64_t bad = mismatches(cpu, fake_quantize(xg, f, in.axis)) +
                            mismatches(cpu, fake_quantize(xg, f, in.axis, MxKernel::Cuda)) +
                            mismatches(cpu, fake_quantize(xm, f, in.axis, MxKernel::Cuda));
        EXPECT_EQ(bad, 0);
        bad_total += bad;
        cases += 3;
        values += 3 * x.numel();
      }
    }
  }
  std::printf("[ cuda parity ] fake quantization: %lld cases, %lld values, %lld mismatches\n",
              static_cast<long long>(cases), static_cast<long long>(values), static_cast<long long>(bad_total));
}

TEST(MxCuda, EveryBlockSizeMatchesTheCpuLoop) {
  if (!cuda_ready()) GTEST_SKIP() << "no CUDA device or a build without the CUDA kernel";
  const at::Tensor base = nasty(24, 768, 5);
  int64_t cases = 0, values = 0, bad_total = 0;
  for (int64_t block : {1, 2, 3, 4, 8, 16, 24, 64, 128, 256, 512, 100, 1000}) {
    for (at::ScalarType dt : {at::kFloat, at::kBFloat16}) {
      const at::Tensor x = base.to(dt);
      const at::Tensor xg = x.to(at::kCUDA);
      for (const MxFormat& f : all_formats(block)) {
        SCOPED_TRACE(f.describe() + " " + std::string(c10::toString(dt)));
        const int64_t bad = mismatches(fake_quantize(x, f, -1, MxKernel::CpuLoop), fake_quantize(xg, f, -1));
        EXPECT_EQ(bad, 0);
        bad_total += bad;
        ++cases;
        values += x.numel();
      }
    }
  }
  std::printf("[ cuda parity ] block sizes 1..1000: %lld cases, %lld values, %lld mismatches\n",
              static_cast<long long>(cases), static_cast<long long>(values), static_cast<long long>(bad_total));
}

TEST(MxCuda, EncodingMatchesTheCpuEncoderBitForBit) {
  if (!cuda_ready()) GTEST_SKIP() << "no CUDA device or a build without the CUDA kernel";
  int64_t cases = 0, bad_total = 0;
  for (const at::Tensor& x : {nasty(64, 512, 6), nasty(48, 1000, 7)}) {
    for (at::ScalarType dt : {at::kFloat, at::kBFloat16}) {
      const at::Tensor xd = x.to(dt);
      const at::Tensor x32 = xd.to(at::kFloat).contiguous();
      for (const MxFormat& f : all_formats()) {
        SCOPED_TRACE(f.describe() + " " + std::string(c10::toString(dt)));
        const float s2 = f.scale_type == latmix::ScaleType::E4M3 && f.tensor_scale
                             ? latmix::mx_detail::nvfp4_tensor_scale(x32)
                             : 1.0f;
        at::Tensor cc, cs, gc, gs;
        latmix::mx_detail::encode_rows_cpu(x32, f, s2, cc, cs);
        latmix::mx_detail::encode_rows_cuda(xd.to(at::kCUDA), f, s2, gc, gs);
        const int64_t bad = byte_mismatches(cc, gc) + byte_mismatches(cs, gs);
        EXPECT_EQ(bad, 0);
        bad_total += bad;
        ++cases;
      }
    }
  }
  std::printf("[ cuda parity ] encoding: %lld cases, %lld mismatching codes/scales\n", static_cast<long long>(cases),
              static_cast<long long>(bad_total));
}

// mx_encode on CUDA tensors (the fused encoder, packing 4-bit codes in the same kernel) against
// the CPU encoder and pack_nibbles, from aligned and misaligned pointers (vector and per-block
// kernels), and the device round trip against the CPU loop's fake quantization.
TEST(MxCuda, PackedEncodingMatchesTheCpuBitForBit) {
  if (!cuda_ready()) GTEST_SKIP() << "no CUDA device or a build without the CUDA kernel";
  std::vector<Input> inputs;
  inputs.push_back({nasty(64, 512, 11), -1, "64x512 (vector kernel)"});
  inputs.push_back({nasty(48, 1000, 12), -1, "48x1000 (tails)"});
  inputs.push_back({nasty(16, 33, 13), -1, "16x33 (odd rows)"});
  inputs.push_back({nasty(96, 40, 14).reshape({4, 24, 40}), 1, "4x24x40 axis 1"});
  int64_t cases = 0, values = 0, bad_total = 0;
  for (const Input& in : inputs) {
    for (at::ScalarType dt : {at::kFloat, at::kBFloat16, at::kHalf, at::kDouble}) {
      const at::Tensor x = in.x.to(dt);
      const at::Tensor xg = x.to(at::kCUDA);
      const at::Tensor flat = at::empty({xg.numel() + 1}, xg.options());
      const at::Tensor xm = flat.narrow(0, 1, xg.numel()).view(xg.sizes()).copy_(xg);
      const at::Tensor x32 = x.to(at::kFloat);
      for (const MxFormat& f : all_formats()) {
        SCOPED_TRACE(f.describe() + " on " + in.label + " " + std::string(c10::toString(dt)));
        for (bool pack : {true, false}) {
          const latmix::MxPacked cpu = latmix::mx_encode(x, f, in.axis, pack);
          for (const at::Tensor& xin : {xg, xm}) {
            const latmix::MxPacked gpu = latmix::mx_encode(xin, f, in.axis, pack);
            ASSERT_TRUE(gpu.codes.is_cuda());
            EXPECT_EQ(gpu.nibbles, cpu.nibbles);
            EXPECT_EQ(gpu.tensor_scale, cpu.tensor_scale);
            const int64_t bad = byte_mismatches(cpu.codes, gpu.codes) + byte_mismatches(cpu.scales, gpu.scales);
            EXPECT_EQ(bad, 0);
            bad_total += bad;
            ++cases;
            values += x.numel();
          }
        }
      }
      // The round trip on the device against the CPU loop's fake quantization (in fp32).
      for (const MxFormat& f : all_formats()) {
        SCOPED_TRACE(f.describe() + " round trip on " + in.label + " " + std::string(c10::toString(dt)));
        const int64_t bad = mismatches(fake_quantize(x32, f, in.axis, MxKernel::CpuLoop),
                                       latmix::mx_decode(latmix::mx_encode(xg, f, in.axis, true), at::kFloat));
        EXPECT_EQ(bad, 0);
        bad_total += bad;
      }
    }
  }
#if defined(LATMIX_WITH_CUDA)  // the kernel choice is defined with the kernels
  // The vector kernel is the one the aligned 64x512 input takes.
  namespace k = latmix::mx_cuda;
  const at::Tensor xv = nasty(64, 512, 11).to(at::kBFloat16).to(at::kCUDA);
  const at::Tensor packed = at::empty({64, 256}, xv.options().dtype(at::kByte));
  const k::QuantParams qp = k::make_quant_params(MxFormat::parse("mxfp4"), 64, 512, 1.0f);
  EXPECT_STREQ(k::encode_kernel_choice(xv.data_ptr(), packed.data_ptr<uint8_t>(), k::DType::BFloat16, qp, true),
               "vector");
#endif
  std::printf("[ cuda parity ] packed encoding: %lld cases, %lld values, %lld mismatches (codes, scales, round trip)\n",
              static_cast<long long>(cases), static_cast<long long>(values), static_cast<long long>(bad_total));
}

TEST(MxCuda, PackedEncodingEveryBlockSizeMatchesTheCpu) {
  if (!cuda_ready()) GTEST_SKIP() << "no CUDA device or a build without the CUDA kernel";
  const at::Tensor base = nasty(24, 771, 15);
  int64_t cases = 0, bad_total = 0;
  for (int64_t block : {1, 2, 3, 7, 8, 16, 24, 64, 100, 256}) {
    for (at::ScalarType dt : {at::kFloat, at::kBFloat16}) {
      const at::Tensor x = base.to(dt);
      const at::Tensor xg = x.to(at::kCUDA);
      for (const at::Tensor& xin : {x, x.narrow(1, 0, 768).contiguous()}) {
        const at::Tensor xing = xin.to(at::kCUDA);
        for (const MxFormat& f : all_formats(block)) {
          SCOPED_TRACE(f.describe() + " " + std::string(c10::toString(dt)) + " n " + std::to_string(xin.size(1)));
          const latmix::MxPacked cpu = latmix::mx_encode(xin, f, -1, true);
          const latmix::MxPacked gpu = latmix::mx_encode(xing, f, -1, true);
          int64_t bad = byte_mismatches(cpu.codes, gpu.codes) + byte_mismatches(cpu.scales, gpu.scales);
          for (at::ScalarType out : {at::kFloat, at::kBFloat16}) {
            bad += mismatches(latmix::mx_decode(cpu, out), latmix::mx_decode(gpu, out));
          }
          EXPECT_EQ(bad, 0);
          bad_total += bad;
          ++cases;
        }
      }
    }
  }
  std::printf("[ cuda parity ] packed encode + decode, blocks 1..256, n 771 and 768: %lld cases, %lld mismatches\n",
              static_cast<long long>(cases), static_cast<long long>(bad_total));
}

// Codes and scales on the device, the same bytes on the CPU: decoded values bit for bit.
int64_t decode_mismatches(const latmix::MxPacked& cpu, at::ScalarType dt, bool misaligned) {
  latmix::MxPacked gpu = cpu;
  gpu.codes = cpu.codes.to(at::kCUDA);
  gpu.scales = cpu.scales.to(at::kCUDA);
  if (misaligned) {  // the same bytes one past a 16-byte boundary
    const at::Tensor flat = at::empty({gpu.codes.numel() + 1}, gpu.codes.options());
    gpu.codes = flat.narrow(0, 1, gpu.codes.numel()).view(gpu.codes.sizes()).copy_(gpu.codes);
  }
  const at::Tensor out = latmix::mx_decode(gpu, dt);
  EXPECT_TRUE(out.is_cuda());
  return mismatches(latmix::mx_decode(cpu, dt), out);
}

TEST(MxCuda, PackedDecodingMatchesTheCpuBitForBit) {
  if (!cuda_ready()) GTEST_SKIP() << "no CUDA device or a build without the CUDA kernel";
  std::vector<Input> inputs;
  inputs.push_back({nasty(64, 512, 21), -1, "64x512 (vector kernel)"});
  inputs.push_back({nasty(48, 1000, 22), -1, "48x1000 (tails)"});
  inputs.push_back({nasty(16, 33, 23), -1, "16x33 (odd rows)"});
  inputs.push_back({nasty(96, 40, 24).reshape({4, 24, 40}), 1, "4x24x40 axis 1"});
  int64_t cases = 0, values = 0, bad_total = 0;
  for (const MxFormat& f : all_formats()) {
    std::vector<std::pair<std::string, latmix::MxPacked>> packed;
    for (const Input& in : inputs) {
      packed.emplace_back(in.label, latmix::mx_encode(in.x, f, in.axis, true));
      packed.emplace_back(in.label + " unpacked", latmix::mx_encode(in.x, f, in.axis, false));
    }
    // Random codes and scale codes: every code with every scale, NaN scales, products that
    // underflow to fp32 subnormals or overflow to Inf.
    packed.emplace_back("random 64x512", random_packed(f, 64, 512, 100 + static_cast<uint64_t>(cases)));
    packed.emplace_back("random 16x33", random_packed(f, 16, 33, 200 + static_cast<uint64_t>(cases)));
    for (const auto& [label, m] : packed) {
      for (at::ScalarType dt : {at::kFloat, at::kBFloat16, at::kHalf, at::kDouble}) {
        for (bool misaligned : {false, true}) {
          SCOPED_TRACE(f.describe() + " on " + label + " " + std::string(c10::toString(dt)) +
                       (misaligned ? " misaligned" : ""));
          const int64_t bad = decode_mismatches(m, dt, misaligned);
          EXPECT_EQ(bad, 0);
          bad_total += bad;
          ++cases;
          int64_t numel = 1;
          for (int64_t d : m.shape) numel *= d;
          values += numel;
        }
      }
    }
  }
#if defined(LATMIX_WITH_CUDA)
  namespace k = latmix::mx_cuda;
  const at::Tensor codes = at::zeros({64, 256}, at::TensorOptions().dtype(at::kByte).device(at::kCUDA));
  const at::Tensor out = at::empty({64, 512}, at::TensorOptions().dtype(at::kBFloat16).device(at::kCUDA));
  const k::DecodeParams dp = k::make_decode_params(MxFormat::parse("mxfp4"), 1.0f, 64, 512, true);
  EXPECT_STREQ(k::decode_kernel_choice(codes.data_ptr<uint8_t>(), out.data_ptr(), k::DType::BFloat16, dp), "vector");
#endif
  std::printf("[ cuda parity ] decoding: %lld cases, %lld values, %lld mismatches\n", static_cast<long long>(cases),
              static_cast<long long>(values), static_cast<long long>(bad_total));
}

TEST(MxCuda, DecodingRejectsCodesWithoutAValue) {
  if (!cuda_ready()) GTEST_SKIP() << "no CUDA device or a build without the CUDA kernel";
  latmix::MxPacked m = latmix::mx_encode(nasty(4, 64, 25).to(at::kCUDA), MxFormat::parse("mxfp6_e2m3"));
  m.codes[1][3] = 200;  // 6-bit codes stop at 63
  EXPECT_THROW(latmix::mx_decode(m), latmix::Error);
  m.scales = m.scales.cpu();
  EXPECT_THROW(latmix::mx_decode(m), latmix::Error);
}

TEST(MxCuda, AtenPathOnCudaMatchesTheCpuLoop) {
  if (!at::hasCUDA()) GTEST_SKIP() << "no CUDA device";
  const at::Tensor x = nasty(32, 200, 8);
  int64_t bad_total = 0;
  for (at::ScalarType dt : {at::kFloat, at::kBFloat16}) {
    for (const MxFormat& f : all_formats()) {
      SCOPED_TRACE(f.describe());
      const int64_t bad = mismatches(fake_quantize(x.to(dt), f, -1, MxKernel::CpuLoop),
                                     fake_quantize(x.to(dt).to(at::kCUDA), f, -1, MxKernel::Aten));
      EXPECT_EQ(bad, 0);
      bad_total += bad;
    }
  }
  std::printf("[ cuda parity ] ATen path on CUDA: %lld mismatches\n", static_cast<long long>(bad_total));
}

TEST(MxCuda, StraightThroughGradientOnCuda) {
  if (!cuda_ready()) GTEST_SKIP() << "no CUDA device or a build without the CUDA kernel";
  const at::Tensor inp = nasty(8, 64, 9).narrow(0, 0, 1).expand({8, 64}).contiguous().to(at::kCUDA);
  at::Tensor A = at::eye(64, at::TensorOptions().dtype(at::kFloat).device(at::kCUDA)).set_requires_grad(true);
  const at::Tensor x = at::matmul(inp, A);
  const MxFormat f = MxFormat::parse("mxfp4");
  const at::Tensor y = fake_quantize(x, f);
  ASSERT_TRUE(y.requires_grad());
  EXPECT_TRUE(y.is_cuda());
  EXPECT_EQ(mismatches(fake_quantize(x.detach().cpu(), f, -1, MxKernel::CpuLoop), y.detach()), 0);
  const at::Tensor w = at::arange(64, at::TensorOptions().dtype(at::kFloat).device(at::kCUDA)).reshape({1, 64}).expand({8, 64});
  (y * w).sum().backward();
  ASSERT_TRUE(A.grad().defined());
  EXPECT_TRUE(at::allclose(A.grad(), at::matmul(inp.t(), w)));

  at::Tensor leaf = nasty(8, 64, 10).to(at::kCUDA).set_requires_grad(true);
  fake_quantize(leaf, f, 0, MxKernel::Cuda).sum().backward();
  EXPECT_TRUE(at::equal(leaf.grad(), at::ones_like(leaf)));
}

}  // namespace

TEST(MxCuda, PublicEncodeOnCudaMatchesCpuAndPacks) {
  if (!cuda_ready()) GTEST_SKIP() << "no CUDA device or a build without the CUDA kernel";
  const at::Tensor x = nasty(32, 1000, 8).to(at::kBFloat16);
  for (const MxFormat& f : all_formats()) {
    SCOPED_TRACE(f.describe());
    const latmix::MxPacked cpu = latmix::mx_encode(x, f, -1, true);
    const latmix::MxPacked gpu = latmix::mx_encode(x.to(at::kCUDA), f, -1, true);
    EXPECT_TRUE(gpu.codes.is_cuda());
    EXPECT_EQ(byte_mismatches(cpu.codes, gpu.codes.cpu()), 0);
    EXPECT_EQ(byte_mismatches(cpu.scales, gpu.scales.cpu()), 0);
    EXPECT_EQ(cpu.tensor_scale, gpu.tensor_scale);
  }
}
