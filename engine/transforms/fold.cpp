// Folding a TransformPlan into a decoder's weights (placements: transform_fold.h).
#include <c10/core/GradMode.h>
#include <ATen/ATen.h>

#include "latmix/error.h"
#include "latmix/transform_fold.h"

namespace latmix {

namespace {

std::string layer_name(size_t l, const std::string& what) {
  return "layers." + std::to_string(l) + "." + what;
}

void check_width(const TransformPtr& t, int64_t want, const std::string& where) {
  if (t && t->dim() != want) {
    fail("transform plan", where + " (" + t->kind() + ")", "width " + std::to_string(want), std::to_string(t->dim()));
  }
}

void check_plan(const ModelConfig& c, const TransformPlan& plan) {
  check_width(plan.residual, c.hidden_size, "residual transform");
  const size_t layers = static_cast<size_t>(c.num_layers);
  auto check_list = [&](const std::vector<TransformPtr>& list, int64_t want, const std::string& what) {
    if (!list.empty() && list.size() != layers) {
      fail("transform plan", what + " transforms", std::to_string(layers) + " (one per layer) or none",
           std::to_string(list.size()));
    }
    for (size_t l = 0; l < list.size(); ++l) check_width(list[l], want, layer_name(l, what + " transform"));
  };
  check_list(plan.value, c.head_dim, "value");
  check_list(plan.down_online, c.intermediate_size, "down_online");
  check_list(plan.attn_online, c.hidden_size, "attn_online");
  check_list(plan.mlp_online, c.hidden_size, "mlp_online");
}

// Whether a transform's bias takes part in folding: a non-zero one, or a trainable one (it starts
// at zero, and leaving it out would cut it from the gradient).
bool has_nonzero(const at::Tensor& v) {
  if (!v.defined()) return false;
  if (v.requires_grad() && at::GradMode::is_enabled()) return true;
  return v.ne(0).any().item<bool>();
}

/// W [out, in] with each input column scaled by its norm gain.
at::Tensor scale_columns(const at::Tensor& w, const at::Tensor& gain) {
  return (w.to(at::kDouble) * gain.to(at::kDouble).unsqueeze(0)).to(w.scalar_type());
}

class Folder {
 public:
  Folder(const Model& model, const FoldOptions& options, FoldResult& result)
      : c_(model.config()), options_(options), result_(result), w_(model.weights()) {}

  ModelWeights& weights() { return w_; }

  void fold_value(size_t l, const Transform& t);
  void fold_down(size_t l, const Transform& t);
  /// An online transform before q/k/v (attn) or gate/up (mlp).
  void fold_input_online(size_t l, const Transform& t, bool attn);
  void fuse_norms();
  void fold_residual(const Transform& t);

 private:
  at::Tensor make_bias(size_t l, const std::string& name, int64_t size, const std::string& flag);

  const ModelConfig& c_;
  const FoldOptions& options_;
  FoldResult& result_;
  ModelWeights w_;  // a copy of the tensor handles; replaced tensor by tensor
};

at::Tensor Folder::make_bias(size_t l, const std::string& name, int64_t size, const std::string& flag) {
  const std::string full = layer_name(l, name);
  result_.created_biases.push_back(full);
  result_.notes.push_back("created " + full + ": the exported architecture needs " + flag);
  return at::zeros({size}, w_.embed.options());
}

void Folder::fold_value(size_t l, const Transform& t) {
  LayerWeights& lw = w_.layers[l];
  const int64_t d = c_.head_dim, kvh = c_.num_kv_heads, h = c_.num_heads;
  std::vector<at::Tensor> rows, biases;
  for (int64_t g = 0; g < kvh; ++g) {
    rows.push_back(t.fold_into_writer(lw.v.narrow(0, g * d, d)));
    if (lw.v_bias.defined()) biases.push_back(t.fold_into_writer(lw.v_bias.narrow(0, g * d, d)));
  }
  at::Tensor v_weight = at::cat(rows, 0);
  at::Tensor v_bias = lw.v_bias.defined() ? at::cat(biases, 0) : at::Tensor();
  at::Tensor o_weight = t.fold_into_reader(lw.o.view({lw.o.size(0), h, d})).reshape(lw.o.sizes());
  at::Tensor o_bias = lw.o_bias;
  at::Tensor v = t.bias();
  if (has_nonzero(v)) {
    if (!v_bias.defined() || !o_bias.defined()) {
      if (options_.missing_bias == MissingBias::Drop) {
        result_.dropped_biases.push_back(layer_name(l, "value.v"));
        result_.notes.push_back("dropped the value transform's bias of layer " + std::to_string(l) +
                                " (no v_proj/o_proj bias; the folded model is still exact)");
        v = at::Tensor();
      } else if (options_.missing_bias == MissingBias::Fail) {
        fail("fold", layer_name(l, "value transform bias"),
             "v_proj and o_proj biases (attention_bias), v = 0, or MissingBias::Create / Drop",
             std::string(v_bias.defined() ? "" : "no v_proj bias ") + (o_bias.defined() ? "" : "no o_proj bias"));
      }
    }
  }
  if (has_nonzero(v)) {
    if (!v_bias.defined()) v_bias = make_bias(l, "v_bias", kvh * d, "attention_bias");
    if (!o_bias.defined()) o_bias = make_bias(l, "o_bias", o_weight.size(0), "attention_bias (o_proj bias)");
    at::Tensor vf = v.to(at::kDouble).to(v_bias.device());
    v_bias = (v_bias.to(at::kDouble) + vf.repeat({kvh})).to(v_bias.scalar_type());
    o_bias = (o_bias.to(at::kDouble) - at::matmul(o_weight.to(at::kDouble), vf.repeat({h}))).to(o_bias.scalar_type());
  }
  lw.v = v_weight;
  lw.v_bias = v_bias;
  lw.o = o_weight;
  lw.o_bias = o_bias;
}

void Folder::fold_down(size_t l, const Transform& t) {
  LayerWeights& lw = w_.layers[l];
  at::Tensor down = t.fold_into_reader(lw.down);
  at::Tensor bias = lw.down_bias;
  const at::Tensor v = t.bias();
  if (has_nonzero(v)) {
    if (!bias.defined()) {
      if (options_.missing_bias != MissingBias::Create) {
        fail("fold", layer_name(l, "down_online transform bias"),
             "a down_proj bias (mlp_bias), v = 0, or MissingBias::Create", "no down_proj bias");
      }
      bias = make_bias(l, "down_bias", down.size(0), "mlp_bias");
    }
    at::Tensor vf = v.to(at::kDouble).to(bias.device());
    bias = (bias.to(at::kDouble) - at::matmul(down.to(at::kDouble), vf)).to(bias.scalar_type());
  }
  lw.down = down;
  lw.down_bias = bias;
}

void Folder::fold_input_online(size_t l, const Transform& t, bool attn) {
  LayerWeights& lw = w_.layers[l];
  const at::Tensor v = t.bias();
  const bool with_v = has_nonzero(v);
  auto fold_one = [&](at::Tensor& weight, at::Tensor& bias, const std::string& name) {
    at::Tensor folded = t.fold_into_reader(weight);
    if (with_v) {
      if (!bias.defined()) {
        if (options_.missing_bias != MissingBias::Create) {
          fail("fold", layer_name(l, std::string(attn ? "attn" : "mlp") + "_online transform bias"),
               std::string("a ") + name + " bias (" + (attn ? "attention_bias" : "mlp_bias") +
                   "), v = 0, or MissingBias::Create",
               "no " + name + " bias");
        }
        bias = make_bias(l, name + "_bias", folded.size(0), attn ? "attention_bias" : "mlp_bias");
      }
      at::Tensor vf = v.to(at::kDouble).to(bias.device());
      bias = (bias.to(at::kDouble) - at::matmul(folded.to(at::kDouble), vf)).to(bias.scalar_type());
    }
    weight = folded;
  };
  if (attn) {
    fold_one(lw.q, lw.q_bias, "q");
    fold_one(lw.k, lw.k_bias, "k");
    fold_one(lw.v, lw.v_bias, "v");
  } else {
    fold_one(lw.gate, lw.gate_bias, "gate");
    fold_one(lw.up, lw.up_bias, "up");
  }
}

void Folder::fuse_norms() {
  for (LayerWeights& lw : w_.layers) {
    lw.q = scale_columns(lw.q, lw.attn_norm);
    lw.k = scale_columns(lw.k, lw.attn_norm);
    lw.v = scale_columns(lw.v, lw.attn_norm);
    lw.gate = scale_columns(lw.gate, lw.mlp_norm);
    lw.up = scale_columns(lw.up, lw.mlp_norm);
    lw.attn_norm = at::ones_like(lw.attn_norm);
    lw.mlp_norm = at::ones_like(lw.mlp_norm);
  }
  if (!w_.final_norm.eq(1).all().item<bool>()) {
    if (w_.lm_head.is_same(w_.embed)) {
      result_.untied_lm_head = true;
      result_.notes.push_back("untied lm_head from the embedding (the final norm gain was fused into it)");
    }
    w_.lm_head = scale_columns(w_.lm_head, w_.final_norm);
  }
  w_.final_norm = at::ones_like(w_.final_norm);
  result_.norms_fused = true;
}

void Folder::fold_residual(const Transform& t) {
  const bool tied = w_.lm_head.is_same(w_.embed);
  for (LayerWeights& lw : w_.layers) {
    for (at::Tensor* reader : {&lw.q, &lw.k, &lw.v, &lw.gate, &lw.up}) *reader = t.fold_into_reader(*reader);
    for (at::Tensor* writer : {&lw.o, &lw.o_bias, &lw.down, &lw.down_bias}) {
      if (writer->defined()) *writer = t.fold_into_writer(*writer);
    }
  }
  if (options_.residual_skips_embedding_and_head) return;
  w_.embed = t.forward(w_.embed);
  // A tied head stays tied only when E A^-1 = E A^T + v, i.e. T is orthogonal without bias.
  if (tied && t.is_orthogonal()) {
    w_.lm_head = w_.embed;
    return;
  }
  if (tied) {
    result_.untied_lm_head = true;
    result_.notes.push_back("untied lm_head from the embedding (the residual transform is not orthogonal)");
  }
  w_.lm_head = t.fold_into_reader(w_.lm_head);
}

}  // namespace

OnlineTransformHook::OnlineTransformHook(CapturePoint point, std::vector<TransformPtr> transforms) {
  add(point, std::move(transforms));
}

void OnlineTransformHook::add(CapturePoint point, std::vector<TransformPtr> transforms) {
  slots_.emplace_back(point, std::move(transforms));
}

std::shared_ptr<OnlineTransformHook> OnlineTransformHook::for_plan(const TransformPlan& plan) {
  std::shared_ptr<OnlineTransformHook> hook;
  auto any = [](const std::vector<TransformPtr>& list) {
    for (const auto& t : list) {
      if (t) return true;
    }
    return false;
  };
  const std::pair<CapturePoint, const std::vector<TransformPtr>*> slots[] = {
      {CapturePoint::AttnIn, &plan.attn_online},
      {CapturePoint::MlpIn, &plan.mlp_online},
      {CapturePoint::DownIn, &plan.down_online}};
  for (const auto& [point, list] : slots) {
    if (!any(*list)) continue;
    if (!hook) {
      hook = std::make_shared<OnlineTransformHook>(point, *list);
    } else {
      hook->add(point, *list);
    }
  }
  return hook;
}

const TransformPtr* OnlineTransformHook::find(CapturePoint point, int64_t layer) const {
  if (layer < 0) return nullptr;
  for (const auto& [p, list] : slots_) {
    if (p == point && static_cast<size_t>(layer) < list.size() && list[static_cast<size_t>(layer)]) {
      return &list[static_cast<size_t>(layer)];
    }
  }
  return nullptr;
}

bool OnlineTransformHook::wants(CapturePoint point, int64_t layer) const {
  return find(point, layer) != nullptr;
}

at::Tensor OnlineTransformHook::on_capture(CapturePoint point, int64_t layer, const at::Tensor& x) {
  return (*find(point, layer))->forward(x);
}

bool TransformPlan::empty() const {
  return all().empty();
}

std::vector<TransformPtr> TransformPlan::all() const {
  std::vector<TransformPtr> out;
  if (residual) out.push_back(residual);
  for (const auto* list : {&value, &down_online, &attn_online, &mlp_online}) {
    for (const auto& t : *list) {
      if (t) out.push_back(t);
    }
  }
  return out;
}

std::vector<at::Tensor> TransformPlan::parameters() const {
  std::vector<at::Tensor> out;
  for (const auto& t : all()) {
    for (const auto& p : t->parameters()) out.push_back(p);
  }
  return out;
}

void TransformPlan::to(at::Device device) const {
  for (const auto& t : all()) t->to(device);
}

ModelWeights folded_weights(const Model& model, const TransformPlan& plan, const FoldOptions& options,
                            FoldResult* info) {
  check_plan(model.config(), plan);
  FoldResult local;
  FoldResult& result = info != nullptr ? *info : local;
  Folder folder(model, options, result);
  for (size_t l = 0; l < plan.value.size(); ++l) {
    if (plan.value[l]) folder.fold_value(l, *plan.value[l]);
  }
  for (size_t l = 0; l < plan.down_online.size(); ++l) {
    if (plan.down_online[l]) folder.fold_down(l, *plan.down_online[l]);
  }
  if (plan.residual) {
    folder.fuse_norms();
    folder.fold_residual(*plan.residual);
  }
  // After the residual transform: these act on the normalized input in its basis.
  for (size_t l = 0; l < plan.attn_online.size(); ++l) {
    if (plan.attn_online[l]) folder.fold_input_online(l, *plan.attn_online[l], true);
  }
  for (size_t l = 0; l < plan.mlp_online.size(); ++l) {
    if (plan.mlp_online[l]) folder.fold_input_online(l, *plan.mlp_online[l], false);
  }
  return folder.weights();
}

FoldResult fold_transforms(Model& model, const TransformPlan& plan, const FoldOptions& options) {
  check_plan(model.config(), plan);
  c10::NoGradGuard no_grad;
  plan.to(model.device());
  FoldResult result;
  result.original = model.weights();
  ModelWeights folded = folded_weights(model, plan, options, &result);
  model.weights() = std::move(folded);
  result.online_hook = OnlineTransformHook::for_plan(plan);
  if (result.online_hook) model.add_hook(result.online_hook);
  return result;
}

void unfold_transforms(Model& model, const FoldResult& result) {
  model.weights() = result.original;
  if (result.online_hook) model.remove_hook(result.online_hook);
}

}  // namespace latmix
