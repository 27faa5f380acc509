#include "model_session.h"

#include <c10/core/InferenceMode.h>

#include "latmix/model.h"
#include "latmix/model_files.h"
#include "latmix/tokenizer.h"
#include "settings_dialog.h"

namespace latmix::studio {

namespace {

QString shape_text(const at::Tensor& t) {
  QStringList dims;
  for (auto d : t.sizes()) dims << QString::number(d);
  return "[" + dims.join(", ") + "]";
}

void add_row(ModelSummary& s, const QString& name, const at::Tensor& t) {
  if (!t.defined()) return;
  s.modules.push_back({name, shape_text(t), QString::fromStdString(std::string(c10::toString(t.scalar_type()))),
                       static_cast<qint64>(t.numel())});
}

void add_layer_rows(ModelSummary& s, int64_t l, const LayerWeights& w) {
  const QString p = QString("layers.%1.").arg(l);
  const std::pair<const char*, const at::Tensor*> rows[] = {
      {"input_layernorm", &w.attn_norm}, {"self_attn.q_proj", &w.q},     {"self_attn.q_proj.bias", &w.q_bias},
      {"self_attn.k_proj", &w.k},        {"self_attn.k_proj.bias", &w.k_bias},
      {"self_attn.v_proj", &w.v},        {"self_attn.v_proj.bias", &w.v_bias},
      {"self_attn.o_proj", &w.o},        {"self_attn.q_norm", &w.q_norm}, {"self_attn.k_norm", &w.k_norm},
      {"post_attention_layernorm", &w.mlp_norm}, {"mlp.gate_proj", &w.gate}, {"mlp.up_proj", &w.up},
      {"mlp.down_proj", &w.down}};
  for (const auto& [name, t] : rows) add_row(s, p + name, *t);
}

WeightOverview weight_overview(const Model& model) {
  WeightOverview o;
  o.columns = {"q", "k", "v", "o", "gate", "up", "down"};
  o.rows = static_cast<int>(model.config().num_layers);
  for (const auto& w : model.weights().layers) {
    for (const at::Tensor* t : {&w.q, &w.k, &w.v, &w.o, &w.gate, &w.up, &w.down}) {
      at::Tensor f = t->to(at::kFloat);
      const float rms = f.pow(2).mean().sqrt().item<float>();
      o.rms.push_back(rms);
      o.max_over_rms.push_back(rms > 0 ? f.abs().max().item<float>() / rms : 0.f);
    }
  }
  return o;
}

}  // namespace

ModelSummary summarize_model(const QString& path, const Model& model, const Tokenizer& tokenizer) {
  const ModelConfig& c = model.config();
  ModelSummary s;
  s.path = path;
  s.architecture = QString::fromStdString(c.architecture_name);
  s.family = QString::fromStdString(to_string(c.arch));
  s.source_format = QString::fromStdString(c.source_format);
  s.layers = c.num_layers;
  s.hidden = c.hidden_size;
  s.intermediate = c.intermediate_size;
  s.heads = c.num_heads;
  s.kv_heads = c.num_kv_heads;
  s.head_dim = c.head_dim;
  s.vocab = c.vocab_size;
  s.parameters = c.parameter_count();
  s.tokenizer = QString::fromStdString(tokenizer.kind());
  add_row(s, "embed_tokens", model.weights().embed);
  for (int64_t l = 0; l < c.num_layers; ++l) add_layer_rows(s, l, model.weights().layers[static_cast<size_t>(l)]);
  add_row(s, "norm", model.weights().final_norm);
  if (!c.tie_word_embeddings) add_row(s, "lm_head", model.weights().lm_head);
  c10::InferenceMode guard;
  s.overview = weight_overview(model);
  return s;
}

ModelSession::ModelSession(EngineHost* host, QObject* parent) : QObject(parent), host_(host) {
  qRegisterMetaType<latmix::studio::ModelSummary>();
  connect(host_, &EngineHost::jobFailed, this, [this](quint64 id, const QString&, const QString& message) {
    if (id == pending_) Q_EMIT openFailed(pending_path_, message);
  });
}

quint64 ModelSession::open(const QString& path) {
  pending_path_ = path;
  const std::string device = StudioSettings::load().device.toStdString();
  return pending_ = host_->submit("open-model", [this, path, device](const JobControl& job) {
    LoadOptions opts;
    opts.job = job;
    opts.device = parse_device(device);
    auto model = std::make_shared<Model>(load_model(path.toStdString(), opts));
    std::shared_ptr<Tokenizer> tok =
        load_model_tokenizer(path.toStdString(), "", static_cast<int32_t>(model->config().vocab_size));
    job.cancel.check();
    ModelSummary summary = summarize_model(path, *model, *tok);
    EngineHost::post(this, [this, model, tok, summary] {
      model_ = model;
      tokenizer_ = tok;
      summary_ = summary;
      Q_EMIT opened(summary_);
    });
  });
}

}  // namespace latmix::studio
