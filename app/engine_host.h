#pragma once
// EngineHost: the one thread that runs engine work for the studio. The GUI queues jobs; progress,
// completion, failure and cancellation come back as queued signals. No LibTorch call and no
// blocking wait happen on the GUI thread.

#include <QObject>
#include <QString>

#include <condition_variable>
#include <deque>
#include <functional>
#include <mutex>
#include <thread>

#include "latmix/progress.h"

namespace latmix::studio {

class EngineHost : public QObject {
  Q_OBJECT

 public:
  /// The work of a job. Runs on the engine thread; may throw (latmix::Error, c10::Error, ...):
  /// the message becomes jobFailed. Call `post` to hand a result to the GUI thread.
  using Work = std::function<void(const JobControl& job)>;

  explicit EngineHost(QObject* parent = nullptr);
  ~EngineHost() override;

  /// Queues a job and returns its id. A queued (not yet started) job with the same non-empty
  /// tag is dropped first: a newer request supersedes a stale one.
  quint64 submit(const QString& tag, Work work);
  /// Cancels a queued or running job (running jobs stop at their next cancel check).
  void cancel(quint64 id);
  /// Cancels every job.
  void cancelAll();
  bool busy() const;

  /// Runs `fn` on the GUI thread (queued) if `context` still exists then.
  static void post(QObject* context, std::function<void()> fn);

 Q_SIGNALS:
  void jobStarted(quint64 id, const QString& tag);
  /// Throttled to at most ~30 updates per second per job (the first update of each stage and the
  /// last update are always sent).
  void jobProgress(quint64 id, const QString& stage, qint64 done, qint64 total);
  void jobFinished(quint64 id, const QString& tag, double seconds);
  void jobFailed(quint64 id, const QString& tag, const QString& message);
  void jobCancelled(quint64 id, const QString& tag);

 private:
  struct Job {
    quint64 id = 0;
    QString tag;
    Work work;
    CancelToken cancel;
  };
  void run();
  void execute(Job& job);

  mutable std::mutex mutex_;
  std::condition_variable wake_;
  std::deque<Job> queue_;
  Job* running_ = nullptr;
  quint64 next_id_ = 1;
  bool stopping_ = false;
  std::thread thread_;
};

}  // namespace latmix::studio
