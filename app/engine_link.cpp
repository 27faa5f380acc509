#include "engine_link.h"

#include <QDateTime>
#include <QDir>
#include <QPointer>
#include <QSettings>
#include <QStringList>
#include <QUrl>

#include <torch/version.h>

#include <chrono>
#include <cstdlib>
#include <utility>

#include "engine_host.h"
#include "latmix/error.h"
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

void StreamLossGate::setOnLost(std::function<void(const std::string&)> on_lost) {
  std::lock_guard<std::mutex> lock(mutex_);
  on_lost_ = std::move(on_lost);
}

bool StreamLossGate::wait(const std::string& message, const JobControl& job) {
  std::unique_lock<std::mutex> lock(mutex_);
  if (!on_lost_) return false;
  waiting_ = true;
  decision_ = Decision::None;
  on_lost_(message);
  while (decision_ == Decision::None && !job.cancel.cancelled()) wake_.wait_for(lock, std::chrono::milliseconds(100));
  waiting_ = false;
  return decision_ == Decision::Retry && !job.cancel.cancelled();
}

bool StreamLossGate::waiting() const {
  std::lock_guard<std::mutex> lock(mutex_);
  return waiting_;
}

void StreamLossGate::retry() {
  std::lock_guard<std::mutex> lock(mutex_);
  if (waiting_) decision_ = Decision::Retry;
  wake_.notify_all();
}

void StreamLossGate::giveUp() {
  std::lock_guard<std::mutex> lock(mutex_);
  if (waiting_) decision_ = Decision::GiveUp;
  wake_.notify_all();
}

namespace {

// The events of a remote job as the EngineHost job reports them.
void report_event(const serve::JobEvent& e, const JobControl& job, const EngineRunHooks& hooks) {
  if (e.type == "progress") {
    job.report(e.data.at("stage").get<std::string>(), e.data.at("done").get<int64_t>(),
               e.data.at("total").get<int64_t>());
  } else if (e.type == "step" && hooks.on_step) {
    hooks.on_step(e.data);
  } else if (e.type == "note" && hooks.on_note) {
    hooks.on_note(e.data.value("text", std::string()));
  } else if (e.type == "snapshot" && hooks.on_snapshot) {
    hooks.on_snapshot(e.data);
  } else if (e.type == "state" && e.data.value("state", "") == "queued" && e.data.value("position", 0) > 1) {
    // The engine runs one job at a time: say where this one waits.
    job.report("queued on the engine, position " + std::to_string(e.data.value("position", 0)), 0, 0);
  }
}

}  // namespace

// RemoteEngine::run() step by step, so that a lost stream can be followed again from its last event.
nlohmann::json run_on_engine(const serve::RemoteEngine& engine, const std::string& task, const nlohmann::json& request,
                             const JobControl& job, const EngineRunHooks& hooks) {
  const std::string id = engine.submit(task, request).at("id").get<std::string>();
  return follow_on_engine(engine, task, id, job, hooks);
}

nlohmann::json follow_on_engine(const serve::RemoteEngine& engine, const std::string& task, const std::string& id,
                                const JobControl& job, const EngineRunHooks& hooks) {
  if (hooks.on_submitted) hooks.on_submitted(id);
  int64_t last = 0;
  std::string end_state;
  auto follow = [&](const CancelToken& cancel) {
    engine.follow(
        id, last,
        [&](const serve::JobEvent& e) {
          last = e.seq;
          if (e.type == "end") end_state = e.data.value("state", "");
          report_event(e, job, hooks);
          return true;
        },
        cancel);
  };
  for (;;) {
    try {
      if (end_state.empty()) follow(job.cancel);
      if (end_state.empty() && job.cancel.cancelled()) {
        try {
          engine.cancel(id);
        } catch (const serve::RemoteError& e) {
          if (e.status() == 0) throw;  // else it ended meanwhile: its end comes next
        }
        follow(CancelToken());
        if (end_state == "cancelled") throw Cancelled();
      }
      return engine.result(id);
    } catch (const serve::RemoteError& e) {
      if (e.status() != 0 || !hooks.gate) throw;  // an answer of the engine, not a lost connection
      const std::string message = "Lost the connection to the engine at " + engine.url() + " while following its " +
                                  task + " job " + id + ":\n" + e.what();
      job.report("connection to the engine lost: Retry in the banner", 0, 0);
      if (hooks.gate->wait(message, job)) continue;  // Retry: the same job, from the last event seen
      if (job.cancel.cancelled()) {
        try {
          engine.cancel(id);
        } catch (const std::exception&) {  // unreachable still: the job runs on there
        }
        throw Cancelled();
      }
      throw Error(message + "\nGiven up here; the job may still run there: `latmix --engine " + engine.url() +
                  " jobs attach " + id + "` follows it.");
    }
  }
}

EngineLink::EngineLink(EngineHost* host, QObject* parent) : QObject(parent), host_(host) {
  QPointer<EngineLink> self(this);
  gate_->setOnLost([self](const std::string& message) {  // engine thread, under the gate's lock
    EngineHost::post(self, [self, text = QString::fromStdString(message)] { Q_EMIT self->streamLost(text); });
  });
  connect(host_, &EngineHost::jobFailed, this, [this](quint64 id, const QString&, const QString& message) {
    if (id == 0 || id != pending_) return;
    pending_ = 0;
    Q_EMIT connectFailed(pending_url_, message);
  });
}

EngineLink::~EngineLink() {
  gate_->setOnLost({});
  gate_->giveUp();
}

void EngineLink::retryLostStream() {
  gate_->retry();
}

void EngineLink::giveUpLostStream() {
  gate_->giveUp();
}

quint64 EngineLink::connectTo(const QString& url, const std::string& token) {
  pending_url_ = url;
  QPointer<EngineLink> self(this);
  const serve::Reconnect reconnect = reconnect_;
  return pending_ = host_->submit("connect-engine", [self, url, token, reconnect](const JobControl&) {
    auto engine = std::make_shared<const serve::RemoteEngine>(url.toStdString(), token, reconnect);
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
  gate_->giveUp();  // a job waiting for this engine gives up
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

std::string EngineLink::engineTexts(const std::string& list) const {
  QStringList out;
  for (const QString& item : QString::fromStdString(list).split(',')) {
    const bool task = item.startsWith("text:");
    const std::string text = engineText((task ? item.mid(5) : item).toStdString());
    out << (task ? "text:" : "") + QString::fromStdString(text);
  }
  return out.join(',').toStdString();
}

QString EngineLink::badgeText() const {
  if (remote_) return remote_badge_text(QString::fromStdString(remote_->url()), facts_);
  return local_badge_text(StudioSettings::load().device);
}

}  // namespace latmix::studio
