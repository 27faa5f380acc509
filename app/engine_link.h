#pragma once
// EngineLink: where the studio's engine work runs — this computer (the EngineHost's thread, as
// always) or a `latmix serve` engine reached over HTTP (serve::RemoteEngine, docs/remote.md).
// File > Connect to engine... asks it to connect: GET /v1/engine runs as a job on the EngineHost, so
// the GUI thread never waits on the network. A job that runs a task on the engine calls
// run_on_engine() on the engine thread: the remote job's progress drives the job's progress, the
// job's cancel cancels the remote job, and the result comes back as the task's result JSON, which the
// api's *_from_json reads into the same value the in-process call returns.

#include <QObject>
#include <QString>

#include <nlohmann/json.hpp>

#include <functional>
#include <memory>
#include <string>

#include "latmix/progress.h"

namespace latmix::serve {
class RemoteEngine;
struct JobEvent;
}  // namespace latmix::serve

namespace latmix::studio {

class EngineHost;

/// The address and token of the last engine connected to (QSettings "engine/..."): the token
/// itself, or the file it is read from (the CLI's default, ~/.config/latmix/engine.token, when both
/// are empty).
struct EngineAddress {
  QString url;        ///< "http://127.0.0.1:8187" or "host:port"
  QString token;      ///< "" : read from token_file
  QString token_file;  ///< "" : the default file
  static EngineAddress load();
  void save() const;
  /// The token to send. \throws latmix::Error naming the file when it cannot be read.
  std::string resolveToken() const;
};

/// The token file `latmix --engine` reads by default ($XDG_CONFIG_HOME or ~/.config, /latmix/engine.token).
QString default_token_file();

/// What the status badge says: "this computer (cpu, LibTorch 2.1.0)" for in-process, "HOST:PORT — cuda,
/// LibTorch 2.11.0" from a server's GET /v1/engine facts.
QString local_badge_text(const QString& device);
QString remote_badge_text(const QString& url, const nlohmann::json& facts);

/// Where a plan learned on an engine is written there: "latmix-studio-learned-METHOD-N-YYYYMMDD-HHMMSS",
/// relative, so under the server's first root.
QString engine_learn_prefix(const QString& method, int run);

/// Runs `task` on `engine` with `request` (its to_json()) for a job of the EngineHost: progress events
/// go to `job.progress`, `job.cancel` cancels the remote job (latmix::Cancelled is thrown once it has
/// ended), `on_step` gets each "step" event's data (a LearnEvent's JSON), `on_submitted` the remote
/// job's id. Returns the result JSON. \throws what RemoteEngine::run() throws.
nlohmann::json run_on_engine(const serve::RemoteEngine& engine, const std::string& task,
                             const nlohmann::json& request, const JobControl& job,
                             const std::function<void(const nlohmann::json&)>& on_step = {},
                             const std::function<void(const std::string&)>& on_submitted = {});

class EngineLink : public QObject {
  Q_OBJECT

 public:
  explicit EngineLink(EngineHost* host, QObject* parent = nullptr);
  ~EngineLink() override;

  /// Connects to `url` with `token` (an EngineHost job "connect-engine": GET /v1/engine). connected()
  /// or connectFailed() tells how it went; the link keeps its previous state until then. Returns the job id.
  quint64 connectTo(const QString& url, const std::string& token);
  /// Back to this computer (disconnected()).
  void disconnectEngine();

  /// The connected engine (nullptr: this computer). Shared, so a job that runs keeps it alive.
  std::shared_ptr<const serve::RemoteEngine> remote() const { return remote_; }
  bool isRemote() const { return remote_ != nullptr; }
  /// GET /v1/engine's answer when connected (version, libtorch, device, roots, tasks, jobs).
  const nlohmann::json& facts() const { return facts_; }
  /// The server's roots (from facts()).
  QStringList roots() const;
  /// A text path of a request as the server reads it: this computer's bundled calibration sample
  /// becomes the server's (facts()'s "bundled_sample"); any other path is the server's already.
  std::string engineText(const std::string& local) const;
  /// What the status badge shows (local_badge_text / remote_badge_text).
  QString badgeText() const;

 Q_SIGNALS:
  void connected(const QString& badge);
  void connectFailed(const QString& url, const QString& message);
  void disconnected();

 private:
  EngineHost* host_;
  std::shared_ptr<const serve::RemoteEngine> remote_;
  nlohmann::json facts_;
  quint64 pending_ = 0;
  QString pending_url_;
};

}  // namespace latmix::studio
