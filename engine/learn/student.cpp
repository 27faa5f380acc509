// The student of end-to-end learning: dense transforms, leaf plans, the folded quantized student
// and the unchunked losses (student.h).
#include "learn/student.h"

#include <c10/core/GradMode.h>

#include <optional>

#include "latmix/quant.h"
#include "latmix/transform_fold.h"
#include "learn/learn_internal.h"

namespace latmix::learn_detail {

namespace {

TransformPtr densify(const TransformPtr& t) {
  if (!trainable(t)) return t;
  return std::make_shared<DenseTransform>(t->matrix(), t->inverse_matrix(), t->bias());
}

template <typename F>
TransformPlan map_plan(const TransformPlan& plan, F&& f) {
  TransformPlan out;
  out.residual = f(plan.residual);
  auto list = [&](const std::vector<TransformPtr>& in) {
    std::vector<TransformPtr> o;
    o.reserve(in.size());
    for (const auto& t : in) o.push_back(f(t));
    return o;
  };
  out.value = list(plan.value);
  out.down_online = list(plan.down_online);
  out.attn_online = list(plan.attn_online);
  out.mlp_online = list(plan.mlp_online);
  return out;
}

}  // namespace

at::Tensor DenseTransform::apply_linear(const at::Tensor& x) const {
  return at::matmul(x.to(dtype_), a_.t().to(dtype_)).to(x.scalar_type());
}
at::Tensor DenseTransform::apply_inverse_linear(const at::Tensor& y) const {
  return at::matmul(y.to(dtype_), a_inv_.t().to(dtype_)).to(y.scalar_type());
}
at::Tensor DenseTransform::apply_inverse_right(const at::Tensor& w) const {
  return at::matmul(w.to(dtype_), a_inv_.to(dtype_)).to(w.scalar_type());
}

bool trainable(const TransformPtr& t) {
  if (!t) return false;
  for (const auto& p : t->parameters()) {
    if (p.requires_grad()) return true;
  }
  return false;
}

TransformPlan densify(const TransformPlan& plan) {
  return map_plan(plan, [](const TransformPtr& t) { return densify(t); });
}

LeafPlan::LeafPlan(const TransformPlan& plan, at::ScalarType matmul_dtype) : dtype_(matmul_dtype) {
  dense_ = map_plan(plan, [this](const TransformPtr& t) { return leaf(t); });
}

TransformPtr LeafPlan::leaf(const TransformPtr& t) {
  if (!trainable(t)) return t;
  auto make = [this](const at::Tensor& graph) {
    if (!graph.defined() || !graph.requires_grad()) return graph;
    at::Tensor l = graph.detach().requires_grad_(true);
    pairs_.emplace_back(graph, l);
    return l;
  };
  return std::make_shared<DenseTransform>(make(t->matrix()), make(t->inverse_matrix()), make(t->bias()), dtype_);
}

void LeafPlan::finish() {
  // sum_i <graph_i, dL/dleaf_i> has the gradient dL/dparams by the chain rule.
  at::Tensor total;
  for (const auto& [graph, leaf] : pairs_) {
    if (!leaf.grad().defined()) continue;
    at::Tensor term = (graph * leaf.grad()).sum();
    total = total.defined() ? total + term : term;
  }
  if (total.defined()) total.backward();
  pairs_.clear();
}

LayerWeights fold_layer(const Model& fp, const TransformPlan& plan, int64_t l) {
  const auto li = static_cast<size_t>(l);
  auto one = [li](const std::vector<TransformPtr>& list) {
    return list.empty() ? std::vector<TransformPtr>{} : std::vector<TransformPtr>{list[li]};
  };
  ModelConfig c = fp.config();
  c.num_layers = 1;
  ModelWeights w;
  w.embed = fp.weights().embed;
  w.lm_head = w.embed;
  w.final_norm = at::ones({c.hidden_size}, fp.weights().final_norm.options());  // no lm_head fusing here
  w.layers = {fp.weights().layers[li]};
  TransformPlan p;
  p.residual = plan.residual;
  p.value = one(plan.value);
  p.down_online = one(plan.down_online);
  p.attn_online = one(plan.attn_online);
  p.mlp_online = one(plan.mlp_online);
  FoldOptions options;
  options.missing_bias = MissingBias::Drop;
  options.residual_skips_embedding_and_head = true;
  return folded_weights(Model(c, std::move(w)), p, options).layers[0];
}

Model layer_model(const Model& fp, int64_t l, LayerWeights weights) {
  ModelWeights w;
  w.embed = fp.weights().embed;
  w.final_norm = fp.weights().final_norm;
  w.lm_head = fp.weights().lm_head;
  w.layers.resize(fp.weights().layers.size());
  w.layers[static_cast<size_t>(l)] = std::move(weights);
  Model m(fp.config(), std::move(w));
  for (const auto& hook : fp.hooks()) m.add_hook(hook);
  return m;
}

std::shared_ptr<DenseTransform> as_dense(const TransformPtr& t) {
  if (auto d = std::dynamic_pointer_cast<DenseTransform>(t)) return d;
  return std::make_shared<DenseTransform>(t->matrix(), t->inverse_matrix(), t->bias());
}

namespace {
using LinearSlot = at::Tensor LayerWeights::*;
constexpr LinearSlot kLinearSlots[] = {&LayerWeights::q,    &LayerWeights::k,  &LayerWeights::v,   &LayerWeights::o,
                                       &LayerWeights::gate, &LayerWeights::up, &LayerWeights::down};
}  // namespace

void fake_quantize_layer(LayerWeights& lw, const QuantSpec& spec, int64_t l, int64_t layers,
                         const WeightResiduals* residuals) {
  if (!spec.weights || !spec.covers_layer(l, layers)) return;
  const auto li = static_cast<size_t>(l);
  const LayerWeights* d = residuals != nullptr && li < residuals->layers.size() ? &residuals->layers[li] : nullptr;
  for (const LinearSlot slot : kLinearSlots) {
    at::Tensor& t = lw.*slot;
    if (d != nullptr && (d->*slot).defined()) {
      // In float32 (a bf16 fold would round W + d off GPTQ's grid point); the quantized values
      // are exact in the model's dtype again.
      t = fake_quantize(t.to(at::kFloat) + d->*slot, *spec.weights, -1).to(t.scalar_type());
    } else {
      t = fake_quantize(t, *spec.weights, -1);
    }
  }
}

WeightResiduals gptq_residuals(const Model& fp, const TransformPlan& plan, const QuantSpec& spec,
                               const CalibrationSet& calib, at::ScalarType matmul_dtype, const JobControl& job,
                               QuantizedModel* deployed, dist::Group* group) {
  c10::NoGradGuard no_grad;
  // A copy: folding moves the plan to the model's device and gives its transforms new tensors.
  QuantizedModel q = apply_plan(fp, clone_plan(plan), spec, &calib, job, group);
  const LeafPlan dense(plan, matmul_dtype);  // no grad: the same DenseTransforms a step folds with
  const int64_t layers = fp.config().num_layers;
  WeightResiduals out;
  out.layers.resize(static_cast<size_t>(layers));
  for (int64_t l = 0; l < layers; ++l) {
    if (!spec.weights || !spec.covers_layer(l, layers)) continue;
    const LayerWeights student = fold_layer(fp, dense.dense(), l);
    const LayerWeights& gptq = q.model.weights().layers[static_cast<size_t>(l)];
    LayerWeights& d = out.layers[static_cast<size_t>(l)];
    for (const LinearSlot slot : kLinearSlots) {
      d.*slot = (gptq.*slot).to(at::kFloat) - (student.*slot).to(at::kFloat);
    }
  }
  if (deployed != nullptr) *deployed = std::move(q);
  return out;
}

void add_student_hooks(Model& student, const Model& fp, const TransformPlan& dense, const QuantSpec& spec,
                       const std::shared_ptr<DenseTransform>& embed_head) {
  const int64_t layers = fp.config().num_layers;
  for (const auto& hook : fp.hooks()) student.add_hook(hook);
  if (auto online = OnlineTransformHook::for_plan(dense)) student.add_hook(online);
  if (spec.activations) {
    const int64_t last = spec.last_layer < 0 ? layers - 1 : spec.last_layer;
    student.add_hook(std::make_shared<ActivationQuantHook>(*spec.activations, spec.first_layer, last,
                                                           spec.lm_head.has_value(), layers));
  }
  if (embed_head) student.add_hook(std::make_shared<EmbedHeadHook>(embed_head, layers));
}

GptqLoop::GptqLoop(const Model& fp, const CalibrationSet* calib, const LearnSettings& s, const JobControl& job,
                   dist::Group* group)
    : fp_(fp), calib_(calib), s_(s), job_(job), group_(group) {
  enabled_ = s.gptq_refresh > 0 && s.quant.weights && s.quant.method == WeightMethod::Gptq &&
             s.mode == LearnMode::EndToEnd && calib != nullptr;
}

void GptqLoop::before(int64_t updates, const TransformPlan& plan, bool now,
                      const std::function<void(const Model&)>& deployed) {
  if (!enabled_ || (updates == at_ && !deployed)) return;
  if (!deployed && !now && at_ >= 0 && updates % s_.gptq_refresh != 0) return;
  const at::ScalarType dtype = fp_.dtype() == at::kBFloat16 ? at::kBFloat16 : at::kFloat;  // as a step's LeafPlan
  std::optional<QuantizedModel> q;
  if (deployed) q.emplace(QuantizedModel{fp_, nullptr, {}});
  residuals_ = gptq_residuals(fp_, plan, s_.quant, *calib_, dtype, job_, q ? &*q : nullptr, group_);
  at_ = updates;
  ++refreshes_;
  if (deployed) deployed(q->model);
}

Model build_student(const Model& fp, TransformPlan dense, const QuantSpec& spec, int64_t only_layer,
                    const WeightResiduals* residuals) {
  FoldOptions options;
  options.missing_bias = MissingBias::Drop;
  // With lm_head kept in high precision, the model's function is the same whether T goes into
  // the embedding and lm_head or runs at their input/output; the latter is far cheaper.
  std::shared_ptr<DenseTransform> embed_head;
  if (dense.residual && !spec.lm_head) {
    embed_head = as_dense(dense.residual);
    dense.residual = embed_head;
    options.residual_skips_embedding_and_head = true;
  }
  ModelWeights w = folded_weights(fp, dense, options);
  const int64_t layers = fp.config().num_layers;
  for (int64_t l = 0; l < layers; ++l) {
    if (only_layer < 0 || l == only_layer) {
      fake_quantize_layer(w.layers[static_cast<size_t>(l)], spec, l, layers, residuals);
    }
  }
  if (spec.lm_head && only_layer < 0) w.lm_head = fake_quantize(w.lm_head, *spec.lm_head, -1);
  Model student(fp.config(), std::move(w));
  add_student_hooks(student, fp, dense, spec, embed_head);
  return student;
}

}  // namespace latmix::learn_detail
