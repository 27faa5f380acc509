// Activation transforms for statistics views: built-in (Hadamard, block Hadamard, random
// orthogonal) and learned plans, applied where the quantizer would see them.
#include <map>

#include "latmix/calib_transforms.h"
#include "latmix/error.h"
#include "latmix/transform_fold.h"
#include "latmix/transforms.h"

namespace latmix {

std::vector<std::string> builtin_transform_names() { return {"none", "hadamard", "block-hadamard", "random-orthogonal"}; }

std::string builtin_transform_list() {
  std::string s;
  for (const auto& n : builtin_transform_names()) s += (s.empty() ? "" : ", ") + n;
  return s;
}

namespace {

// One transform per width, built on first use (a built-in choice of --transform).
TransformPtr make_builtin(const std::string& name, int64_t width, const MxFormat& f, uint64_t seed, at::Device device) {
  TransformPtr t;
  if (name == "hadamard")
    t = std::make_shared<HadamardTransform>(width, seed);
  else if (name == "block-hadamard")
    t = std::make_shared<BlockHadamardTransform>(width, f.block, seed);
  else if (name == "random-orthogonal")
    t = OrthogonalTransform::random(width, seed);
  else
    throw UsageError("unknown transform '" + name + "' (expected one of " + builtin_transform_list() + ")");
  t->to(device);
  return t;
}

// The RMSNorm gain in front of a normalized capture point (undefined elsewhere). A residual
// transform is folded after the gains are fused into the next weights, so the quantizer then
// sees T(x / gain) at these points.
at::Tensor norm_gain(const Model& model, CapturePoint point, int64_t layer) {
  const ModelWeights& w = model.weights();
  at::Tensor g;
  if (point == CapturePoint::AttnIn) g = w.layers[static_cast<size_t>(layer)].attn_norm;
  if (point == CapturePoint::MlpIn) g = w.layers[static_cast<size_t>(layer)].mlp_norm;
  if (point == CapturePoint::FinalNormOut) g = w.final_norm;
  if (g.defined() && g.eq(0).any().item<bool>()) return {};  // cannot unfuse a zero gain
  return g;
}

at::Tensor apply_with_gain(const Transform& t, const at::Tensor& x, const at::Tensor& gain) {
  return gain.defined() ? t.forward(x / gain.to(x.scalar_type())) : t.forward(x);
}

}  // namespace

ActivationTransform make_builtin_activation_transform(const std::string& name, const Model& model, const MxFormat& f, uint64_t seed) {
  auto cache = std::make_shared<std::map<int64_t, TransformPtr>>();
  make_builtin(name, model.config().hidden_size, f, seed, at::kCPU);  // fail early on a bad name or width
  const Model* m = &model;
  return [=](CapturePoint point, int64_t layer, const at::Tensor& x) {
    const int64_t width = x.size(-1);
    auto it = cache->find(width);
    if (it == cache->end()) it = cache->emplace(width, make_builtin(name, width, f, seed, x.device())).first;
    return apply_with_gain(*it->second, x, norm_gain(*m, point, layer));
  };
}

// Learned transforms (load_transforms): residual on the hidden-width points, value per head on
// o_proj's input, down_online on down_proj's input; identity where the plan has none.
ActivationTransform make_plan_activation_transform(const std::string& prefix, const Model& model) {
  return make_plan_activation_transform(std::make_shared<const TransformPlan>(load_transforms(prefix)), model);
}

ActivationTransform make_plan_activation_transform(std::shared_ptr<const TransformPlan> plan, const Model& model) {
  const Model* m = &model;
  const int64_t head_dim = model.config().head_dim;
  auto at_layer = [](const std::vector<TransformPtr>& v, int64_t layer) {
    return layer < static_cast<int64_t>(v.size()) ? v[static_cast<size_t>(layer)] : TransformPtr{};
  };
  return [=](CapturePoint point, int64_t layer, const at::Tensor& x) -> at::Tensor {
    if (point == CapturePoint::OIn) {
      const TransformPtr t = at_layer(plan->value, layer);
      if (!t) return x;
      t->to(x.device());
      auto heads = x.sizes().vec();
      heads.back() = x.size(-1) / head_dim;
      heads.push_back(head_dim);
      return t->forward(x.reshape(heads)).reshape(x.sizes());
    }
    if (point == CapturePoint::DownIn) {
      const TransformPtr t = at_layer(plan->down_online, layer);
      if (!t) return x;
      t->to(x.device());
      return t->forward(x);
    }
    if (!plan->residual) return x;
    plan->residual->to(x.device());
    return apply_with_gain(*plan->residual, x, norm_gain(*m, point, layer));
  };
}


}  // namespace latmix
