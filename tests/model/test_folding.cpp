// Folding transforms into gutenberg-llama-6M (hidden 256, MLP 704 = 16 x 44, head_dim 64,
// GQA 4/2, tied embeddings): QuaRot-style Hadamards and LATMiX affine maps.
#include <c10/core/GradMode.h>
#include <gtest/gtest.h>

#include <ATen/ATen.h>

#include <algorithm>
#include <cstdio>

#include "latmix/model.h"
#include "latmix/transform_fold.h"
#include "test_paths.h"

namespace {

using latmix::AffineTransform;
using latmix::Model;
using latmix::TransformPlan;

double max_abs(const at::Tensor& t) {
  return t.abs().max().item<double>();
}

Model load() {
  return latmix::load_model(latmix::test::source_path("resources/models/gutenberg-llama-6M"));
}

at::Tensor ids() {
  at::manual_seed(1);
  return at::randint(0, 8192, {2, 64}, at::kLong);
}

std::shared_ptr<AffineTransform> perturbed(int64_t d, AffineTransform::Param param, uint64_t seed, double scale) {
  auto t = std::make_shared<AffineTransform>(d, param, latmix::OrthogonalTransform::random(d, seed)->q());
  c10::NoGradGuard no_grad;
  at::manual_seed(seed);
  for (const at::Tensor& p : t->parameters()) {
    at::Tensor m = p;
    m.add_(at::randn_like(p) * scale);
  }
  return t;
}

TEST(FoldGutenberg, QuaRotHadamardsKeepLogits) {
  Model model = load();
  const auto& c = model.config();
  at::Tensor before = model.forward(ids());
  TransformPlan plan;
  plan.residual = std::make_shared<latmix::HadamardTransform>(c.hidden_size, 1);
  for (int64_t l = 0; l < c.num_layers; ++l) {
    plan.value.push_back(std::make_shared<latmix::HadamardTransform>(c.head_dim, 100 + l));
    plan.down_online.push_back(std::make_shared<latmix::HadamardTransform>(c.intermediate_size, 200 + l));
  }
  auto result = latmix::fold_transforms(model, plan);
  const double err = max_abs(model.forward(ids()) - before);
  std::printf(
      "gutenberg-llama-6M, Hadamard residual(256) + value(64) + online down(704 = 16x44): "
      "max |dlogit| = %.3g (logit range %.3g)\n",
      err, max_abs(before));
  EXPECT_LE(err, 1e-4);
  EXPECT_TRUE(result.untied_lm_head == !model.weights().lm_head.is_same(model.weights().embed));
  latmix::unfold_transforms(model, result);
  EXPECT_TRUE(model.weights().embed.equal(result.original.embed));
  EXPECT_TRUE(model.weights().layers[3].down.equal(result.original.layers[3].down));
  EXPECT_EQ(max_abs(model.forward(ids()) - before), 0.0);
}

TEST(FoldGutenberg, LearnedRotationsAndAffineValuesKeepLogits) {
  Model model = load();
  const auto& c = model.config();
  at::Tensor before = model.forward(ids());
  TransformPlan plan;
  auto rot =
      std::make_shared<latmix::RotationTransform>(c.hidden_size, latmix::OrthogonalTransform::random(256, 5)->q());
  {
    c10::NoGradGuard no_grad;
    at::Tensor g = rot->generator();
    g.add_(at::randn_like(g) * 0.05);
  }
  plan.residual = rot;
  for (int64_t l = 0; l < c.num_layers; ++l) {
    plan.value.push_back(
        perturbed(c.head_dim, l % 2 ? AffineTransform::Param::QR : AffineTransform::Param::LU, 7 + l, 0.02));
    plan.down_online.push_back(std::make_shared<latmix::BlockHadamardTransform>(c.intermediate_size, 32, 9 + l));
  }
  double worst_cond = 0;
  for (const auto& t : plan.value) worst_cond = std::max(worst_cond, t->report().condition_number);
  latmix::FoldOptions options;
  options.missing_bias = latmix::MissingBias::Create;
  auto result = latmix::fold_transforms(model, plan, options);
  const double err = max_abs(model.forward(ids()) - before);
  std::printf(
      "gutenberg-llama-6M, learned rotation residual + affine values (v != 0, biases created: %zu) + "
      "block Hadamard down: max |dlogit| = %.3g (worst value cond %.3g)\n",
      result.created_biases.size(), err, worst_cond);
  EXPECT_LE(err, 1e-4);
  EXPECT_EQ(result.created_biases.size(), static_cast<size_t>(2 * c.num_layers));
}

TEST(FoldGutenberg, AffineResidualDeviationIsMeasured) {
  Model model = load();
  at::Tensor before = model.forward(ids());
  for (double scale : {0.01, 0.05}) {
    TransformPlan plan;
    plan.residual = perturbed(model.config().hidden_size, AffineTransform::Param::LU, 3, scale);
    const auto report = plan.residual->report();
    auto result = latmix::fold_transforms(model, plan);
    const double err = max_abs(model.forward(ids()) - before);
    std::printf(
        "gutenberg-llama-6M, affine LU residual (perturbation %.2f: cond %.3g, log|det| %.3g, |v| %.3g): "
        "max |dlogit| = %.3g (not invariant: RMSNorm)\n",
        scale, report.condition_number, report.log_abs_det, report.bias_norm, err);
    EXPECT_GT(err, 1e-4);
    latmix::unfold_transforms(model, result);
  }
}

}  // namespace
