#include "model_session.h"

#include <c10/core/InferenceMode.h>

#include <QPointer>

#include <utility>

#include "latmix/memory.h"
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

}  // namespace

WeightOverview weight_overview(const Model& model, const JobControl& job) {
  c10::InferenceMode guard;
  WeightOverview o;
  o.columns = {"q", "k", "v", "o", "gate", "up", "down"};
  o.rows = static_cast<int>(model.config().num_layers);
  const int64_t total = o.rows * static_cast<int64_t>(o.columns.size());
  int64_t done = 0;
  job.report("overview", 0, total);
  // The stored weights (const): a mapped model's matrices are read from the mapping, one at a time.
  for (const auto& w : model.weights().layers) {
    for (const at::Tensor* t : {&w.q, &w.k, &w.v, &w.o, &w.gate, &w.up, &w.down}) {
      job.cancel.check();
      at::Tensor f = t->to(at::kFloat);
      const float rms = f.pow(2).mean().sqrt().item<float>();
      o.rms.push_back(rms);
      o.max_over_rms.push_back(rms > 0 ? f.abs().max().item<float>() / rms : 0.f);
      job.report("overview", ++done, total);
    }
  }
  return o;
}

std::shared_ptr<Model> held_model(const std::shared_ptr<Model>& model, const std::string& job) {
  if (!model->mapped()) return model;
  check_memory_fits(job, model_weight_bytes(model->config(), model->dtype()), model->device(),
                    "This needs the model held in memory (the Overview, the explorer and the microscope read it "
                    "memory-mapped); a machine with more memory, or the CLI on a GPU server, can run it");
  return std::make_shared<Model>(model->to(model->device(), model->dtype()));
}

ModelSummary summarize_model(const QString& path, const Model& model, const Tokenizer& tokenizer) {
  const ModelConfig& c = model.config();
  ModelSummary s;
  s.path = path;
  s.mapped = model.mapped();
  s.weights = model.mapped() ? "memory-mapped (matrices as stored, converted at use)"
                             : QString("in memory (%1)").arg(QString::fromStdString(std::string(c10::toString(model.dtype()))));
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
  return s;
}

ModelSession::ModelSession(EngineHost* host, QObject* parent) : QObject(parent), host_(host) {
  qRegisterMetaType<latmix::studio::ModelSummary>();
  connect(host_, &EngineHost::jobFailed, this, [this](quint64 id, const QString&, const QString& message) {
    if (id == pending_) Q_EMIT openFailed(pending_path_, message);
    if (id != 0 && id == overview_job_) {
      overview_job_ = 0;
      Q_EMIT overviewStopped(message);
    }
  });
  connect(host_, &EngineHost::jobCancelled, this, [this](quint64 id, const QString&) {
    if (id == 0 || id != overview_job_) return;
    overview_job_ = 0;
    Q_EMIT overviewStopped(QString());
  });
  connect(host_, &EngineHost::jobFinished, this, [this](quint64 id, const QString&, double) {
    if (id != 0 && id == overview_job_) overview_job_ = 0;
  });
}

quint64 ModelSession::open(const QString& path) {
  pending_path_ = path;
  if (overview_job_ != 0) host_->cancel(std::exchange(overview_job_, 0));  // of the model being replaced
  const std::string device = StudioSettings::load().device.toStdString();
  return pending_ = host_->submit("open-model", [this, path, device](const JobControl& job) {
    LoadOptions opts;
    opts.job = job;
    opts.device = parse_device(device);
    opts.mapped = opts.device.is_cpu();  // as `latmix --weights auto`: the GPU holds its model
    auto model = std::make_shared<Model>(load_model(path.toStdString(), opts));
    std::shared_ptr<Tokenizer> tok =
        load_model_tokenizer(path.toStdString(), "", static_cast<int32_t>(model->config().vocab_size));
    job.cancel.check();
    ModelSummary summary = summarize_model(path, *model, *tok);
    EngineHost::post(this, [this, model, tok, summary] {
      model_ = model;
      tokenizer_ = tok;
      summary_ = summary;
      computeOverview();  // queued before the jobs the views start on opened(): the Overview is shown first
      Q_EMIT opened(summary_);
    });
  });
}

quint64 ModelSession::computeOverview() {
  auto model = model_;
  if (!model) return 0;
  if (overview_job_ != 0) host_->cancel(overview_job_);
  QPointer<ModelSession> self(this);
  return overview_job_ = host_->submit("weight-overview", [self, model](const JobControl& job) {
    WeightOverview o = weight_overview(*model, job);
    EngineHost::post(self, [self, model, o] {
      if (model != self->model_) return;  // of the model open before
      self->summary_.overview = o;
      Q_EMIT self->overviewReady();
    });
  });
}

}  // namespace latmix::studio
