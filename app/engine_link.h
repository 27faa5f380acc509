#pragma once
// EngineLink: where the studio's engine work runs — this computer (the EngineHost's thread, as
// always) or a `latmix serve` engine reached over HTTP (serve::RemoteEngine, docs/remote.md).
// File > Connect to engine... asks it to connect: GET /v1/engine runs as a job on the EngineHost, so
// the GUI thread never waits on the network. A job that runs a task on the engine calls
// run_on_engine() on the engine thread: the remote job's progress drives the job's progress, the
// job's cancel cancels the remote job, and the result comes back as the task's result JSON, which the
// api's *_from_json reads into the same value the in-process call returns. When the job's event stream
// is lost for good (RemoteEngine::follow gave up after its reconnects), the job waits on the engine
// thread at a StreamLossGate: the window's banner says so with Retry, which re-attaches to the same
// remote job from the last event seen (a learning curve goes on where it was).

#include <QObject>
#include <QString>

#include <nlohmann/json.hpp>

#include <condition_variable>
#include <functional>
#include <memory>
#include <mutex>
#include <string>

#include "latmix/progress.h"
#include "latmix/serve/client.h"

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

/// Where a remote job whose event stream was lost waits for the person's decision (one job at a time:
/// the EngineHost runs one). The engine thread calls wait(); the GUI thread retry() or giveUp().
class StreamLossGate {
 public:
  /// Told on the engine thread when a job starts waiting (EngineLink posts it to the GUI).
  void setOnLost(std::function<void(const std::string& message)> on_lost);
  /// Engine thread: says `message` through the on_lost function, then waits until retry() (true),
  /// giveUp() or the job's cancel (false). Without an on_lost function nobody can answer: false at once.
  bool wait(const std::string& message, const JobControl& job);
  /// A job waits now.
  bool waiting() const;
  void retry();
  void giveUp();

 private:
  enum class Decision { None, Retry, GiveUp };
  mutable std::mutex mutex_;
  std::condition_variable wake_;
  bool waiting_ = false;
  Decision decision_ = Decision::None;
  std::function<void(const std::string&)> on_lost_;
};

/// What run_on_engine() reports and where it waits.
struct EngineRunHooks {
  /// Each "step" event's data (a LearnEvent's JSON).
  std::function<void(const nlohmann::json&)> on_step;
  /// The remote job's id, once queued.
  std::function<void(const std::string&)> on_submitted;
  /// Each "note" event's line (what the CLI prints on stderr).
  std::function<void(const std::string&)> on_note;
  /// Each "snapshot" event's data ({snapshot, tag, step}, or with "error"): a learn job's answer to
  /// RemoteEngine::snapshot().
  std::function<void(const nlohmann::json&)> on_snapshot;
  /// Where a lost event stream waits for Retry (EngineLink::lossGate()); null: the job fails at once.
  std::shared_ptr<StreamLossGate> gate;
};

/// Runs `task` on `engine` with `request` (its to_json()) for a job of the EngineHost: progress events
/// go to `job.progress`, `job.cancel` cancels the remote job (latmix::Cancelled is thrown once it has
/// ended). Returns the result JSON. When the connection is lost after the job was queued (follow gave
/// up, or the result could not be read), the job waits at hooks.gate: Retry follows the same remote
/// job from the last event seen, giving up fails with a message that names the engine, the job and
/// how to re-attach from the shell. \throws what RemoteEngine::run() throws.
nlohmann::json run_on_engine(const serve::RemoteEngine& engine, const std::string& task, const nlohmann::json& request,
                             const JobControl& job, const EngineRunHooks& hooks = {});
/// run_on_engine() for a job already on the engine (queued or running, submitted by anyone): follows
/// `id` from its first event (a learning curve from its first step), then reads its result.
nlohmann::json follow_on_engine(const serve::RemoteEngine& engine, const std::string& task, const std::string& id,
                                const JobControl& job, const EngineRunHooks& hooks = {});

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
  /// How a remote job re-opens a dropped event stream before streamLost() (serve::Reconnect: five
  /// tries over about 3 s). For the engines connectTo() connects to from now on.
  void setReconnect(serve::Reconnect reconnect) { reconnect_ = reconnect; }

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
  /// engineText() of each item of a comma-separated list: texts (`--calib a.txt,b.txt`) or tasks,
  /// whose `text:PATH` items name a text ("text:" + this computer's bundled sample: the server's).
  std::string engineTexts(const std::string& list) const;
  /// What the status badge shows (local_badge_text / remote_badge_text).
  QString badgeText() const;
  /// Where the studio's remote jobs wait when their event stream is lost (streamLost()).
  std::shared_ptr<StreamLossGate> lossGate() const { return gate_; }
  /// A remote job waits for retryLostStream() or giveUpLostStream().
  bool streamIsLost() const { return gate_->waiting(); }
  /// Re-attaches the waiting job to its remote job (from the last event it saw).
  void retryLostStream();
  /// The waiting job fails with the message streamLost() gave.
  void giveUpLostStream();

 Q_SIGNALS:
  void connected(const QString& badge);
  void connectFailed(const QString& url, const QString& message);
  void disconnected();
  /// A remote job's event stream was lost; the job waits (retryLostStream(), giveUpLostStream()).
  void streamLost(const QString& message);

 private:
  EngineHost* host_;
  std::shared_ptr<const serve::RemoteEngine> remote_;
  nlohmann::json facts_;
  quint64 pending_ = 0;
  QString pending_url_;
  serve::Reconnect reconnect_;
  std::shared_ptr<StreamLossGate> gate_ = std::make_shared<StreamLossGate>();
};

}  // namespace latmix::studio
