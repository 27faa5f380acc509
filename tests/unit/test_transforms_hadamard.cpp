// Hadamard matrices and transforms: orthogonality of every constructed order, the fast
// Walsh-Hadamard transform against the dense matrix, random signs, block Hadamard, errors.
#include <gtest/gtest.h>

#include <ATen/ATen.h>

#include <cmath>

#include "latmix/error.h"
#include "latmix/transforms.h"
#include "../../engine/transforms/hadamard_detail.h"

namespace {

using latmix::BlockHadamardTransform;
using latmix::HadamardTransform;

double max_abs(const at::Tensor& t) {
  return t.abs().max().item<double>();
}

void expect_hadamard(int64_t n) {
  SCOPED_TRACE("order " + std::to_string(n));
  at::Tensor h = latmix::hadamard_matrix(n).to(at::kDouble);
  ASSERT_EQ(h.sizes(), (std::vector<int64_t>{n, n}));
  EXPECT_TRUE(h.abs().eq(1).all().item<bool>());
  at::Tensor gram = at::matmul(h, h.t());
  EXPECT_EQ(max_abs(gram - static_cast<double>(n) * at::eye(n, at::kDouble)), 0.0);
}

TEST(Hadamard, EveryQuaRotOrderThatWeConstructIsHadamard) {
  // QuaRot's orders except 156 and 172, plus Paley I over GF(27) (28) and GF(343) (344),
  // Paley II over GF(25) (52), and the gutenberg / Llama MLP widths.
  for (int64_t n : {1, 2, 4, 8, 64, 12, 20, 28, 36, 40, 44, 52, 60, 108, 140, 312, 344, 704, 1408, 96}) {
    expect_hadamard(n);
  }
}

TEST(Hadamard, AllSupportedWidthsUpTo400AreHadamard) {
  const auto bases = latmix::supported_hadamard_widths(400);
  EXPECT_GE(bases.size(), 70u);
  for (int64_t m : bases) expect_hadamard(m);
}

TEST(Hadamard, OrderDecomposition) {
  auto o = latmix::hadamard_order(14336);  // Llama-3 8B MLP width
  EXPECT_EQ(o.power_of_two, 512);
  EXPECT_EQ(o.base, 28);
  EXPECT_EQ(o.construction, "paley1(27)");
  o = latmix::hadamard_order(704);
  EXPECT_EQ(o.power_of_two, 16);
  EXPECT_EQ(o.base, 44);
  EXPECT_EQ(latmix::hadamard_order(4096).base, 1);
  EXPECT_EQ(latmix::hadamard_order(11008).base, 344);  // 172 * 64: through 344 = 343 + 1
  EXPECT_EQ(latmix::hadamard_order(36).construction, "paley2(17)");
  EXPECT_EQ(latmix::hadamard_order(52).construction, "paley2(25)");
}

TEST(Hadamard, UnsupportedWidthsFailClearly) {
  for (int64_t n : {3, 6, 10, 50, 156, 172}) {
    try {
      latmix::hadamard_order(n);
      ADD_FAILURE() << n << " should not be supported";
    } catch (const latmix::Error& e) {
      const std::string msg = e.what();
      EXPECT_NE(msg.find("width " + std::to_string(n)), std::string::npos) << msg;
      EXPECT_NE(msg.find("12, 20, 24, 28, 36, 40, 44, 48, 52, 56, 60"), std::string::npos) << msg;
    }
  }
  EXPECT_THROW(HadamardTransform(50, 1), latmix::Error);
}

TEST(Hadamard, FastWalshHadamardEqualsDenseMatrix) {
  for (int64_t n : {1, 2, 16, 256}) {
    at::Tensor x = at::randn({3, 5, n}, at::kDouble);
    at::Tensor dense = at::matmul(x, latmix::hadamard_matrix(n).to(at::kDouble));
    EXPECT_LT(max_abs(latmix::fast_walsh_hadamard(x) - dense), 1e-10) << n;
  }
  EXPECT_THROW(latmix::fast_walsh_hadamard(at::zeros({4, 12})), latmix::Error);
}

// The in-place host loop (CPU float and double without autograd) gives the bits of the ATen
// stages, on a contiguous input and on a transposed view (as HadamardTransform::apply_h passes it),
// rows with large and tiny values mixed so that the roundings matter; and a differentiable input
// still gets its gradient (the ATen stages).
TEST(Hadamard, FastWalshHadamardHostLoopIsBitForBitTheAtenStages) {
  for (const auto dtype : {at::kFloat, at::kDouble}) {
    for (int64_t n : {1, 2, 32, 256}) {
      const at::Tensor x = (at::randn({7, n}, dtype) * at::exp2(at::randint(-20, 20, {7, n}, dtype)));
      const at::Tensor views[] = {x, x.t().contiguous().t(), x.view({7, 1, n})};
      for (const at::Tensor& v : views) {
        const at::Tensor host = latmix::hadamard_detail::butterflies_host(v);
        const at::Tensor aten = latmix::hadamard_detail::butterflies_aten(v);
        ASSERT_EQ(host.sizes(), aten.sizes());
        EXPECT_TRUE(at::equal(host, aten)) << n << " " << dtype;
        EXPECT_TRUE(at::equal(latmix::fast_walsh_hadamard(v), aten)) << n << " " << dtype;
      }
    }
  }
  const at::Tensor w = at::randn({3, 16}).requires_grad_();
  latmix::fast_walsh_hadamard(w).sum().backward();
  ASSERT_TRUE(w.grad().defined());
  // d/dx sum(x H) = row sums of H: 16 in the first column, 0 elsewhere.
  EXPECT_TRUE(at::allclose(w.grad().select(1, 0), at::full({3}, 16.0f)));
  EXPECT_TRUE(at::allclose(w.grad().slice(1, 1), at::zeros({3, 15})));
}

TEST(HadamardTransform, MatchesScaledHadamardWithSignsAndIsOrthogonal) {
  for (int64_t d : {64, 96, 704}) {
    SCOPED_TRACE(d);
    HadamardTransform t(d, 7);
    at::Tensor a = t.matrix().to(at::kDouble);
    at::Tensor expected = latmix::hadamard_matrix(d).to(at::kDouble) * t.signs().to(at::kDouble).unsqueeze(0) /
                          std::sqrt(static_cast<double>(d));
    EXPECT_LT(max_abs(a - expected), 1e-6);
    EXPECT_LT(max_abs(at::matmul(a, a.t()) - at::eye(d, at::kDouble)), 1e-5);
    at::Tensor x = at::randn({2, 3, d});
    EXPECT_LT(max_abs(t.forward(x) - at::matmul(x, a.t().to(at::kFloat))), 1e-4);
    EXPECT_LT(max_abs(t.inverse(t.forward(x)) - x), 1e-5);
    at::Tensor w = at::randn({5, d});
    EXPECT_LT(max_abs(t.fold_into_reader(w) - at::matmul(w, t.inverse_matrix())), 1e-4);
  }
}

TEST(HadamardTransform, SignsAreRandomAndSeeded) {
  HadamardTransform a(256, 1), b(256, 1), c(256, 2), plain(256, 0, false);
  EXPECT_TRUE(a.signs().equal(b.signs()));
  EXPECT_FALSE(a.signs().equal(c.signs()));
  const double positives = a.signs().gt(0).sum().item<double>();
  EXPECT_GT(positives, 90);
  EXPECT_LT(positives, 166);
  EXPECT_TRUE(plain.signs().eq(1).all().item<bool>());
  EXPECT_TRUE(a.is_orthogonal());
  EXPECT_EQ(a.log_abs_det().item<double>(), 0.0);
}

TEST(HadamardTransform, DoubleInputsComputeInDouble) {
  HadamardTransform t(44 * 4, 3);
  at::Tensor x = at::randn({4, 176}, at::kDouble);
  at::Tensor y = t.forward(x);
  EXPECT_EQ(y.scalar_type(), at::kDouble);
  EXPECT_LT(max_abs(t.inverse(y) - x), 1e-6);
}

TEST(HadamardTransform, BlockHadamardIsBlockDiagonalAndOrthogonal) {
  BlockHadamardTransform t(96, 32, 5);
  at::Tensor a = t.matrix();
  EXPECT_LT(max_abs(at::matmul(a, a.t()) - at::eye(96)), 1e-5);
  at::Tensor mask = at::kron(at::eye(3), at::ones({32, 32}));
  EXPECT_EQ(max_abs(a * (1 - mask)), 0.0);
  // Each block is a normalized Hadamard with that block's signs.
  at::Tensor h32 = latmix::hadamard_matrix(32) / std::sqrt(32.0);
  at::Tensor block1 = a.narrow(0, 32, 32).narrow(1, 32, 32);
  EXPECT_LT(max_abs(block1 - h32 * t.signs().narrow(0, 32, 32).unsqueeze(0)), 1e-6);
  at::Tensor x = at::randn({7, 96});
  EXPECT_LT(max_abs(t.inverse(t.forward(x)) - x), 1e-5);
  EXPECT_THROW(BlockHadamardTransform(100, 32, 1), latmix::Error);
  EXPECT_THROW(BlockHadamardTransform(96, 96, 1).forward(at::zeros({2, 95})), latmix::Error);
  EXPECT_THROW(BlockHadamardTransform(72, 18, 1), latmix::Error);  // no Hadamard matrix of order 18
}

}  // namespace
