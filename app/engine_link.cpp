#include "engine_link.h"

#include <QDateTime>
#include <QDir>
#include <QPointer>
#include <QSettings>
#include <QStringList>
#include <QUrl>

#include <torch/version.h>

#include <cstdlib>
#include <utility>

#include "engine_host.h"
#include "latmix/serve/client.h"
#include "latmix/serve/server.h"
#include "main_window.h"
#include "settings_dialog.h"

namespace latmix::studio {

EngineAddress EngineAddress::load() {
  QSettings s;
  EngineAddress a;
  a.url = s.value("engine/url", "http://127.0.0.1:8187").toString();
  a.token = s.value("engine/token").toString();
  a.token_file = s.value("engine/token_file").toString();
  return a;
}

void EngineAddress::save() const {
  QSettings s;
  s.setValue("engine/url", url);
  s.setValue("engine/token", token);
  s.setValue("engine/token_file", token_file);
}

std::string EngineAddress::resolveToken() const {
  if (!token.trimmed().isEmpty()) return token.trimmed().toStdString();
  const QString file = token_file.trimmed().isEmpty() ? default_token_file() : token_file.trimmed();
  return serve::read_token_file(file.toStdString());
}

QString default_token_file() {
  const QString config = qEnvironmentVariable("XDG_CONFIG_HOME");
  return (config.isEmpty() ? QDir::homePath() + "/.config" : config) + "/latmix/engine.token";
}

QString local_badge_text(const QString& device) {
  return QString("Engine: this computer (%1, LibTorch %2)").arg(device, TORCH_VERSION);
}

QString remote_badge_text(const QString& url, const nlohmann::json& facts) {
  const QUrl u = QUrl::fromUserInput(url);
  const QString where = u.host().isEmpty() ? url : QString("%1:%2").arg(u.host()).arg(u.port(8187));
  return QString("Engine: %1 — %2, LibTorch %3")
      .arg(where, QString::fromStdString(facts.value("device", std::string("?"))),
           QString::fromStdString(facts.value("libtorch", std::string("?"))));
}

QString engine_learn_prefix(const QString& method, int run) {
  return QString("latmix-studio-learned-%1-%2-%3")
      .arg(method).arg(run).arg(QDateTime::currentDateTime().toString("yyyyMMdd-HHmmss"));
}

nlohmann::json run_on_engine(const serve::RemoteEngine& engine, const std::string& task,
                             const nlohmann::json& request, const JobControl& job,
                             const std::function<void(const nlohmann::json&)>& on_step,
                             const std::function<void(const std::string&)>& on_submitted) {
  serve::RemoteCallbacks callbacks;
  callbacks.cancel = job.cancel;
  callbacks.on_submitted = on_submitted;
  callbacks.on_event = [&](const serve::JobEvent& e) {
    if (e.type == "progress") {
      job.report(e.data.at("stage").get<std::string>(), e.data.at("done").get<int64_t>(),
                 e.data.at("total").get<int64_t>());
    } else if (e.type == "step" && on_step) {
      on_step(e.data);
    } else if (e.type == "state" && e.data.value("state", "") == "queued" && e.data.value("position", 0) > 1) {
      // The engine runs one job at a time: say where this one waits.
      job.report("queued on the engine, position " + std::to_string(e.data.value("position", 0)), 0, 0);
    }
  };
  return engine.run(task, request, callbacks);
}

EngineLink::EngineLink(EngineHost* host, QObject* parent) : QObject(parent), host_(host) {
  connect(host_, &EngineHost::jobFailed, this, [this](quint64 id, const QString&, const QString& message) {
    if (id == 0 || id != pending_) return;
    pending_ = 0;
    Q_EMIT connectFailed(pending_url_, message);
  });
}

EngineLink::~EngineLink() = default;

quint64 EngineLink::connectTo(const QString& url, const std::string& token) {
  pending_url_ = url;
  QPointer<EngineLink> self(this);
  return pending_ = host_->submit("connect-engine", [self, url, token](const JobControl&) {
    auto engine = std::make_shared<const serve::RemoteEngine>(url.toStdString(), token);
    nlohmann::json facts = engine->engine();
    EngineHost::post(self, [self, engine, facts, url] {
      if (self->pending_url_ != url) return;  // a newer connect superseded this one
      self->pending_ = 0;
      self->remote_ = engine;
      self->facts_ = facts;
      Q_EMIT self->connected(self->badgeText());
    });
  });
}

void EngineLink::disconnectEngine() {
  pending_ = 0;
  pending_url_.clear();
  if (!remote_) return;
  remote_.reset();
  facts_ = nlohmann::json();
  Q_EMIT disconnected();
}

QStringList EngineLink::roots() const {
  QStringList out;
  if (facts_.contains("roots") && facts_["roots"].is_array()) {
    for (const auto& r : facts_["roots"]) out << QString::fromStdString(r.get<std::string>());
  }
  return out;
}

std::string EngineLink::engineText(const std::string& local) const {
  if (QString::fromStdString(local) != bundled_sample()) return local;
  return facts_.value("bundled_sample", std::string());
}

QString EngineLink::badgeText() const {
  if (remote_) return remote_badge_text(QString::fromStdString(remote_->url()), facts_);
  return local_badge_text(StudioSettings::load().device);
}

}  // namespace latmix::studio
