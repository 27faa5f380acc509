#include "model_session.h"

#include <QPointer>

#include <utility>

#include "latmix/memory.h"
#include "latmix/model.h"
#include "latmix/model_files.h"
#include "latmix/tokenizer.h"
#include "engine_link.h"
#include "latmix/serve/client.h"
#include "settings_dialog.h"

namespace latmix::studio {

WeightOverview overview_for_view(const api::WeightOverview& o) {
  WeightOverview out;
  for (const auto& c : o.columns) out.columns << QString::fromStdString(c);
  out.rows = static_cast<int>(o.rows);
  out.max_over_rms = o.max_over_rms;
  out.rms = o.rms;
  return out;
}

namespace {

ModelSummary summary_of(const QString& path, api::ModelDescription d) {
  ModelSummary s;
  s.path = path;
  s.architecture = QString::fromStdString(d.architecture);
  s.family = QString::fromStdString(d.family);
  s.source_format = QString::fromStdString(d.source_format);
  s.layers = d.layers;
  s.hidden = d.hidden_size;
  s.intermediate = d.intermediate_size;
  s.heads = d.attention_heads;
  s.kv_heads = d.kv_heads;
  s.head_dim = d.head_dim;
  s.vocab = d.vocab_size;
  s.parameters = d.parameters;
  s.tokenizer = QString::fromStdString(d.tokenizer_kind);
  for (const auto& m : d.modules) {
    s.modules.push_back({QString::fromStdString(m.name), QString::fromStdString(m.shape_text()),
                         QString::fromStdString(m.dtype), static_cast<qint64>(m.parameters)});
  }
  s.description = std::move(d);
  return s;
}

}  // namespace

ModelSummary summarize_model(const QString& path, const Model& model, const Tokenizer& tokenizer) {
  api::ModelDescription d = api::describe_model({path.toStdString(), ""}, tokenizer);
  d.modules = api::model_modules(model);
  ModelSummary s = summary_of(path, std::move(d));
  s.mapped = model.mapped();
  s.weights = QString::fromStdString(api::weights_held(model));
  return s;
}

ModelSummary summarize_remote_model(const QString& path, const QString& url, api::ModelDescription d) {
  ModelSummary s = summary_of(path, std::move(d));
  s.weights = "on the engine at " + url;
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
      remote_.reset();
      summary_ = summary;
      computeOverview();  // queued before the jobs the views start on opened(): the Overview is shown first
      Q_EMIT opened(summary_);
    });
  });
}

quint64 ModelSession::openRemote(std::shared_ptr<const serve::RemoteEngine> engine, const QString& path) {
  pending_path_ = path;
  if (overview_job_ != 0) host_->cancel(std::exchange(overview_job_, 0));
  return pending_ = host_->submit("open-model", [this, engine, path](const JobControl& job) {
    const nlohmann::json described = run_on_engine(*engine, "describe", {{"model", path.toStdString()}}, job);
    ModelSummary summary = summarize_remote_model(path, QString::fromStdString(engine->url()),
                                                  api::model_description_from_json(described));
    EngineHost::post(this, [this, engine, summary] {
      model_.reset();
      tokenizer_.reset();
      remote_ = engine;
      summary_ = summary;
      computeOverview();
      Q_EMIT opened(summary_);
    });
  });
}

void ModelSession::close() {
  if (overview_job_ != 0) host_->cancel(std::exchange(overview_job_, 0));
  pending_ = 0;
  model_.reset();
  tokenizer_.reset();
  remote_.reset();
  summary_ = ModelSummary();
  Q_EMIT closed();
}

quint64 ModelSession::computeOverview() {
  if (remote_) return computeRemoteOverview();
  auto model = model_;
  if (!model) return 0;
  if (overview_job_ != 0) host_->cancel(overview_job_);
  QPointer<ModelSession> self(this);
  return overview_job_ = host_->submit("weight-overview", [self, model](const JobControl& job) {
    WeightOverview o = overview_for_view(api::weight_overview(*model, job));
    EngineHost::post(self, [self, model, o] {
      if (model != self->model_) return;  // of the model open before
      self->summary_.overview = o;
      Q_EMIT self->overviewReady();
    });
  });
}

quint64 ModelSession::computeRemoteOverview() {
  auto engine = remote_;
  const QString path = summary_.path;
  if (overview_job_ != 0) host_->cancel(overview_job_);
  QPointer<ModelSession> self(this);
  return overview_job_ = host_->submit("weight-overview", [self, engine, path](const JobControl& job) {
    const nlohmann::json described =
        run_on_engine(*engine, "describe", {{"model", path.toStdString()}, {"overview", true}}, job);
    const api::ModelDescription d = api::model_description_from_json(described);
    if (!d.overview) throw Error("the engine described " + path.toStdString() + " without its weight overview");
    WeightOverview o = overview_for_view(*d.overview);
    EngineHost::post(self, [self, engine, path, o] {
      if (engine != self->remote_ || path != self->summary_.path) return;  // of the model open before
      self->summary_.overview = o;
      Q_EMIT self->overviewReady();
    });
  });
}

}  // namespace latmix::studio
