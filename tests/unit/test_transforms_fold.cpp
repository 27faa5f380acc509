// Folding transforms into the tiny random-init fixtures (Llama 3, Mistral, Qwen2 with q/k/v
// biases and tied embeddings, Qwen3 with q/k norms): invariance, bias homes, unfold.
#include <c10/core/GradMode.h>
#include <gtest/gtest.h>

#include <ATen/ATen.h>

#include <cstdio>

#include "latmix/error.h"
#include "latmix/model.h"
#include "latmix/transform_fold.h"
#include "test_paths.h"

namespace {

using latmix::AffineTransform;
using latmix::FoldOptions;
using latmix::MissingBias;
using latmix::Model;
using latmix::TransformPlan;
using latmix::TransformPtr;

const char* kFixtures[] = {"tiny-llama3", "tiny-mistral", "tiny-qwen2", "tiny-qwen3"};

double max_abs(const at::Tensor& t) {
  return t.abs().max().item<double>();
}

Model load(const std::string& name) {
  return latmix::load_model(latmix::test::fixtures_path("models/" + name));
}

at::Tensor ids() {
  at::manual_seed(0);
  return at::randint(0, 320, {2, 12}, at::kLong);
}

TransformPtr perturbed_affine(int64_t d, AffineTransform::Param param, uint64_t seed, double scale = 0.1) {
  auto t = std::make_shared<AffineTransform>(d, param, latmix::OrthogonalTransform::random(d, seed)->q());
  c10::NoGradGuard no_grad;
  at::manual_seed(seed);
  for (const at::Tensor& p : t->parameters()) {
    at::Tensor m = p;
    m.add_(at::randn_like(p) * scale);
  }
  return t;
}

TransformPlan orthogonal_plan(const latmix::ModelConfig& c) {
  TransformPlan plan;
  plan.residual = std::make_shared<latmix::HadamardTransform>(c.hidden_size, 1);
  for (int64_t l = 0; l < c.num_layers; ++l) {
    plan.value.push_back(latmix::OrthogonalTransform::random(c.head_dim, 10 + static_cast<uint64_t>(l)));
    plan.down_online.push_back(std::make_shared<latmix::HadamardTransform>(c.intermediate_size, 20 + l));
  }
  plan.value[0] = std::make_shared<latmix::RotationTransform>(c.head_dim);  // a learned rotation too
  return plan;
}

bool same_weights(const latmix::ModelWeights& a, const latmix::ModelWeights& b) {
  auto eq = [](const at::Tensor& x, const at::Tensor& y) {
    return x.defined() == y.defined() && (!x.defined() || x.equal(y));
  };
  bool ok = eq(a.embed, b.embed) && eq(a.final_norm, b.final_norm) && eq(a.lm_head, b.lm_head);
  for (size_t l = 0; l < a.layers.size(); ++l) {
    const auto &x = a.layers[l], &y = b.layers[l];
    for (auto [p, q] : {std::pair{&x.q, &y.q},
                        {&x.k, &y.k},
                        {&x.v, &y.v},
                        {&x.o, &y.o},
                        {&x.gate, &y.gate},
                        {&x.up, &y.up},
                        {&x.down, &y.down},
                        {&x.attn_norm, &y.attn_norm},
                        {&x.mlp_norm, &y.mlp_norm},
                        {&x.q_bias, &y.q_bias},
                        {&x.v_bias, &y.v_bias},
                        {&x.o_bias, &y.o_bias}}) {
      ok = ok && eq(*p, *q);
    }
  }
  return ok;
}

TEST(TransformFoldTiny, OrthogonalTransformsEverywhereKeepLogits) {
  for (const char* name : kFixtures) {
    SCOPED_TRACE(name);
    Model model = load(name);
    at::Tensor before = model.forward(ids());
    const bool tied = model.weights().lm_head.is_same(model.weights().embed);
    auto result = latmix::fold_transforms(model, orthogonal_plan(model.config()));
    const double err = max_abs(model.forward(ids()) - before);
    std::printf("[%s] orthogonal residual+value+down: max |dlogit| = %.3g\n", name, err);
    EXPECT_LE(err, 1e-4);
    EXPECT_TRUE(result.norms_fused);
    EXPECT_TRUE(result.online_hook != nullptr);
    EXPECT_TRUE(model.weights().final_norm.eq(1).all().item<bool>());
    if (tied) {
      EXPECT_TRUE(result.untied_lm_head);  // random-init norms are not ones
    }
    latmix::unfold_transforms(model, result);
    EXPECT_TRUE(same_weights(model.weights(), result.original));
    EXPECT_EQ(max_abs(model.forward(ids()) - before), 0.0);
  }
}

TEST(TransformFoldTiny, AffineValueAndDownTransformsAreExact) {
  for (const char* name : kFixtures) {
    SCOPED_TRACE(name);
    Model model = load(name);
    const auto& c = model.config();
    at::Tensor before = model.forward(ids());
    TransformPlan plan;
    for (int64_t l = 0; l < c.num_layers; ++l) {
      plan.value.push_back(
          perturbed_affine(c.head_dim, l ? AffineTransform::Param::QR : AffineTransform::Param::LU, 30 + l));
      plan.down_online.push_back(perturbed_affine(c.intermediate_size, AffineTransform::Param::LU, 40 + l, 0.02));
    }
    FoldOptions options;
    options.missing_bias = MissingBias::Create;
    auto result = latmix::fold_transforms(model, plan, options);
    const double err = max_abs(model.forward(ids()) - before);
    std::printf("[%s] affine value (v != 0) + affine down_online: max |dlogit| = %.3g, created %zu biases\n", name, err,
                result.created_biases.size());
    EXPECT_LE(err, 1e-4);
    EXPECT_FALSE(result.created_biases.empty());  // no fixture has both v/o and down biases
    latmix::unfold_transforms(model, result);
    EXPECT_TRUE(same_weights(model.weights(), result.original));
  }
}

TEST(TransformFoldTiny, DroppedValueBiasIsStillExact) {
  Model model = load("tiny-qwen2");  // v_proj has a bias, o_proj has none
  const auto& c = model.config();
  at::Tensor before = model.forward(ids());
  TransformPlan plan;
  plan.value = {perturbed_affine(c.head_dim, AffineTransform::Param::QR, 1), nullptr};
  FoldOptions options;
  options.missing_bias = MissingBias::Drop;
  auto result = latmix::fold_transforms(model, plan, options);
  EXPECT_EQ(result.dropped_biases, std::vector<std::string>{"layers.0.value.v"});
  EXPECT_LE(max_abs(model.forward(ids()) - before), 1e-4);
}

TEST(TransformFoldTiny, MissingBiasFailsAndLeavesTheModelUnchanged) {
  Model model = load("tiny-llama3");
  const auto& c = model.config();
  const latmix::ModelWeights original = model.weights();
  TransformPlan plan;
  plan.residual = std::make_shared<latmix::HadamardTransform>(c.hidden_size, 1);
  plan.value = {nullptr, perturbed_affine(c.head_dim, AffineTransform::Param::QR, 1)};
  try {
    latmix::fold_transforms(model, plan);
    ADD_FAILURE() << "expected a missing-bias error";
  } catch (const latmix::Error& e) {
    EXPECT_NE(std::string(e.what()).find("layers.1.value transform bias"), std::string::npos) << e.what();
  }
  EXPECT_TRUE(same_weights(model.weights(), original));
  plan.value.clear();
  plan.down_online = {perturbed_affine(c.intermediate_size, AffineTransform::Param::QR, 2), nullptr};
  FoldOptions drop;
  drop.missing_bias = MissingBias::Drop;
  EXPECT_THROW(latmix::fold_transforms(model, plan, drop), latmix::Error);
  plan.down_online = {nullptr};
  EXPECT_THROW(latmix::fold_transforms(model, plan), latmix::Error);  // wrong list length
  plan.down_online.clear();
  plan.residual = std::make_shared<latmix::HadamardTransform>(c.hidden_size * 2, 1);
  EXPECT_THROW(latmix::fold_transforms(model, plan), latmix::Error);  // wrong width
  EXPECT_TRUE(same_weights(model.weights(), original));
}

TEST(TransformFoldTiny, AffineResidualIsNotInvariantAndTheDeviationIsReported) {
  for (const char* name : kFixtures) {
    Model model = load(name);
    at::Tensor before = model.forward(ids());
    TransformPlan plan;
    plan.residual = perturbed_affine(model.config().hidden_size, AffineTransform::Param::QR, 7, 0.05);
    auto result = latmix::fold_transforms(model, plan);
    const double err = max_abs(model.forward(ids()) - before);
    std::printf("[%s] affine residual (QR, perturbation 0.05, v != 0): max |dlogit| = %.3g (not invariant)\n", name,
                err);
    EXPECT_GT(err, 1e-4);
    latmix::unfold_transforms(model, result);
    EXPECT_EQ(max_abs(model.forward(ids()) - before), 0.0);
  }
}

TEST(TransformFoldTiny, BlockHadamardAndKroneckerOnline) {
  Model model = load("tiny-mistral");
  const auto& c = model.config();
  at::Tensor before = model.forward(ids());
  TransformPlan plan;
  plan.residual = std::make_shared<latmix::BlockHadamardTransform>(c.hidden_size, 32, 3);
  auto kron = latmix::KroneckerTransform::balanced(c.intermediate_size);
  {
    c10::NoGradGuard no_grad;
    for (const at::Tensor& p : kron->parameters()) {
      at::Tensor m = p;
      m.add_(at::randn_like(p) * 0.1);
    }
  }
  plan.down_online = {kron, std::make_shared<latmix::BlockHadamardTransform>(c.intermediate_size, 32, 4)};
  auto result = latmix::fold_transforms(model, plan);
  EXPECT_LE(max_abs(model.forward(ids()) - before), 1e-4);
}

}  // namespace
