// Affine (QR / LU), Kronecker, learned rotation, random orthogonal and diagonal transforms:
// inverses, determinants, gradients, reports and serialization.
#include <c10/core/GradMode.h>
#include <gtest/gtest.h>

#include <ATen/ATen.h>

#include <cmath>
#include <nlohmann/json.hpp>

#include "latmix/error.h"
#include "latmix/transform_fold.h"
#include "latmix/transforms.h"
#include "test_paths.h"

namespace {

using latmix::AffineTransform;
using latmix::KroneckerTransform;
using latmix::TransformPtr;

double max_abs(const at::Tensor& t) {
  return t.abs().max().item<double>();
}

/// Moves every trainable parameter away from its initial value (s stays near 1).
void perturb(const latmix::Transform& t, double scale, uint64_t seed) {
  c10::NoGradGuard no_grad;
  at::manual_seed(seed);
  for (const at::Tensor& p : t.parameters()) {
    at::Tensor p_mut = p;
    p_mut.add_(at::randn_like(p) * scale);
  }
}

std::shared_ptr<AffineTransform> affine(int64_t d, AffineTransform::Param param, uint64_t seed,
                                        const at::Tensor& rotation = {}) {
  auto t = std::make_shared<AffineTransform>(d, param, rotation);
  perturb(*t, 0.1, seed);
  return t;
}

void expect_consistent(const latmix::Transform& t, double tol) {
  const int64_t d = t.dim();
  at::Tensor x = at::randn({3, 4, d});
  at::Tensor a = t.matrix();
  at::Tensor v = t.bias().defined() ? t.bias().detach() : at::zeros({d});
  EXPECT_LT(max_abs(t.forward(x) - (at::matmul(x, a.t()) + v)), tol);
  EXPECT_LT(max_abs(t.inverse(t.forward(x)) - x), tol);
  EXPECT_LT(max_abs(at::matmul(t.inverse_matrix(), a) - at::eye(d)), tol);
  at::Tensor w = at::randn({5, d});
  EXPECT_LT(max_abs(t.fold_into_reader(w) - at::matmul(w, at::linalg_inv(a.to(at::kDouble)).to(at::kFloat))), tol);
  at::Tensor wo = at::randn({d, 6});
  EXPECT_LT(max_abs(t.fold_into_writer(wo) - at::matmul(a, wo)), tol);
  const double dense_logdet = std::get<1>(at::linalg_slogdet(a.to(at::kDouble))).item<double>();
  EXPECT_NEAR(t.log_abs_det().item<double>(), dense_logdet, 1e-3);
}

TEST(AffineTransform, QrAndLuInvertAndFoldConsistently) {
  for (auto param : {AffineTransform::Param::QR, AffineTransform::Param::LU}) {
    SCOPED_TRACE(param == AffineTransform::Param::QR ? "QR" : "LU");
    auto t = affine(48, param, 3);
    expect_consistent(*t, 1e-4);
    EXPECT_GT(t->bias().abs().max().item<double>(), 0.0);
    EXPECT_FALSE(t->is_orthogonal());
  }
}

TEST(AffineTransform, StartsAtTheGivenRotation) {
  auto rot = latmix::OrthogonalTransform::random(32, 11);
  for (auto param : {AffineTransform::Param::QR, AffineTransform::Param::LU}) {
    AffineTransform t(32, param, rot->q());
    EXPECT_LT(max_abs(t.matrix() - rot->q()), 1e-5);
    EXPECT_EQ(max_abs(t.bias()), 0.0);
    EXPECT_NEAR(t.log_abs_det().item<double>(), 0.0, 1e-5);
  }
  AffineTransform identity(8, AffineTransform::Param::LU);
  EXPECT_LT(max_abs(identity.matrix() - at::eye(8)), 1e-7);
}

TEST(AffineTransform, LogDetIsTheVolumeTerm) {
  auto t = affine(16, AffineTransform::Param::QR, 5);
  {
    c10::NoGradGuard no_grad;
    at::Tensor s = t->diag();
    s.copy_(at::linspace(0.5, 2.0, 16));
  }
  const double expected = at::log(at::linspace(0.5, 2.0, 16, at::kDouble)).sum().item<double>();
  EXPECT_NEAR(t->log_abs_det().item<double>(), expected, 1e-5);
  const auto report = t->report();
  EXPECT_NEAR(report.log_abs_det, expected, 1e-5);
  EXPECT_GT(report.condition_number, 1.5);
  EXPECT_GT(report.orthogonality_error, 0.1);
}

TEST(AffineTransform, GradientsReachEveryParameter) {
  for (auto param : {AffineTransform::Param::QR, AffineTransform::Param::LU}) {
    auto t = affine(24, param, 9);
    at::Tensor x = at::randn({10, 24});
    at::Tensor loss = t->forward(x).pow(2).mean() + t->inverse(x).pow(2).mean() + t->log_abs_det().pow(2);
    loss.backward();
    for (const at::Tensor& p : t->parameters()) {
      ASSERT_TRUE(p.grad().defined());
      EXPECT_GT(p.grad().abs().sum().item<double>(), 0.0);
    }
  }
}

TEST(TransformKronecker, EqualsTheDenseKroneckerProduct) {
  KroneckerTransform t(4, 6, true);
  perturb(t, 0.2, 4);
  at::Tensor a1 = t.state()[0].second, a2 = t.state()[1].second, c = t.state()[2].second;
  at::Tensor dense = at::matmul(at::kron(a1, a2), at::diag(c)).detach();
  EXPECT_LT(max_abs(t.matrix() - dense), 1e-5);
  expect_consistent(t, 1e-4);
  t.forward(at::randn({3, 24})).sum().backward();
  for (const at::Tensor& p : t.parameters()) EXPECT_TRUE(p.grad().defined());
  auto b = KroneckerTransform::balanced(704);
  EXPECT_EQ(b->d1() * b->d2(), 704);
  EXPECT_EQ(b->d1(), 22);
}

TEST(TransformRotation, StaysOrthogonalAndLearns) {
  auto base = latmix::OrthogonalTransform::random(16, 1);
  latmix::RotationTransform t(16, base->q());
  EXPECT_LT(max_abs(t.matrix() - base->q()), 1e-6);
  perturb(t, 0.3, 2);
  at::Tensor a = t.matrix();
  EXPECT_LT(max_abs(at::matmul(a, a.t()) - at::eye(16)), 1e-5);
  t.forward(at::randn({4, 16})).pow(3).sum().backward();
  EXPECT_TRUE(t.generator().grad().defined());
  expect_consistent(t, 1e-4);
}

TEST(TransformOrthogonal, RandomIsSeededAndOrthogonal) {
  auto a = latmix::OrthogonalTransform::random(40, 123), b = latmix::OrthogonalTransform::random(40, 123);
  auto c = latmix::OrthogonalTransform::random(40, 124);
  EXPECT_TRUE(a->q().equal(b->q()));
  EXPECT_FALSE(a->q().equal(c->q()));
  EXPECT_LT(max_abs(at::matmul(a->q(), a->q().t()) - at::eye(40)), 1e-5);
  EXPECT_EQ(a->report().condition_number, 1.0);
  EXPECT_THROW(latmix::OrthogonalTransform(at::ones({3, 3})), latmix::Error);
}

TEST(TransformDiagonal, SmoothQuantScales) {
  at::Tensor act = at::tensor({4.f, 1.f, 100.f}), wmax = at::tensor({1.f, 4.f, 1.f});
  auto t = latmix::DiagonalTransform::smoothquant(act, wmax, 0.5);
  at::Tensor s = at::sqrt(act) / at::sqrt(wmax);  // the activation is divided by s
  EXPECT_LT(max_abs(t->scale() - 1 / s), 1e-6);
  expect_consistent(*t, 1e-4);
  EXPECT_THROW(latmix::DiagonalTransform(at::tensor({1.f, 0.f})), latmix::Error);
}

TEST(TransformErrors, WidthMismatchNamesTheTransform) {
  latmix::HadamardTransform t(64, 1);
  try {
    t.forward(at::zeros({2, 63}));
    ADD_FAILURE();
  } catch (const latmix::Error& e) {
    EXPECT_NE(std::string(e.what()).find("last dimension 64"), std::string::npos) << e.what();
  }
}

TEST(TransformSerialization, PlanRoundTrip) {
  latmix::TransformPlan plan;
  plan.residual = affine(32, AffineTransform::Param::LU, 1, latmix::OrthogonalTransform::random(32, 2)->q());
  auto rot = std::make_shared<latmix::RotationTransform>(8);
  perturb(*rot, 0.2, 3);
  plan.value = {rot, nullptr, std::make_shared<latmix::IdentityTransform>(8)};
  auto kron = std::make_shared<KroneckerTransform>(4, 12, true);
  perturb(*kron, 0.1, 4);
  plan.down_online = {std::make_shared<latmix::HadamardTransform>(48, 5), kron,
                      std::make_shared<latmix::BlockHadamardTransform>(48, 16, 6)};
  const std::string prefix = latmix::test::temp_dir("transforms") + "/plan";
  latmix::save_transforms(prefix, plan);
  latmix::TransformPlan back = latmix::load_transforms(prefix);
  ASSERT_TRUE(back.residual);
  EXPECT_EQ(back.residual->kind(), "affine_lu");
  EXPECT_LT(max_abs(back.residual->matrix() - plan.residual->matrix()), 1e-6);
  EXPECT_LT(max_abs(back.residual->bias() - plan.residual->bias()), 1e-7);
  ASSERT_EQ(back.value.size(), 3u);
  EXPECT_EQ(back.value[1], nullptr);
  EXPECT_EQ(back.value[2]->kind(), "identity");
  EXPECT_LT(max_abs(back.value[0]->matrix() - rot->matrix()), 1e-6);
  ASSERT_EQ(back.down_online.size(), 3u);
  for (size_t i = 0; i < 3; ++i) {
    EXPECT_EQ(back.down_online[i]->kind(), plan.down_online[i]->kind());
    EXPECT_LT(max_abs(back.down_online[i]->matrix() - plan.down_online[i]->matrix()), 1e-6);
  }
  EXPECT_FALSE(back.residual->parameters().empty());
  EXPECT_TRUE(back.residual->parameters()[0].requires_grad());
}

TEST(TransformSerialization, RejectsUnknownKinds) {
  nlohmann::json j = {{"kind", "spiral"}, {"dim", 4}};
  EXPECT_THROW(latmix::transform_from_state(j, {}, "test"), latmix::Error);
  nlohmann::json h = {{"kind", "hadamard"}, {"dim", 4}};
  EXPECT_THROW(latmix::transform_from_state(h, {}, "test"), latmix::Error);  // signs missing
}

}  // namespace
