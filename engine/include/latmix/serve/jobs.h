#pragma once
/// \file serve/jobs.h
/// Room: engine/serve/ (latmix_serve: `latmix serve` and its clients, issue 19). The server's jobs:
/// each long task is a job with an id, a log of events (progress, notes, learning steps, state
/// changes) numbered from 1, pause / resume / cancel, and a result kept until the job is removed.
/// One job runs at a time (one engine, one device); the others wait in order and know their place.
/// Jobs live as long as the server, not as long as a connection: a client that comes back lists
/// the jobs and reads a job's events from any number on (the loss curve so far, then live).

#include <nlohmann/json.hpp>

#include <chrono>
#include <condition_variable>
#include <cstdint>
#include <deque>
#include <functional>
#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <thread>
#include <vector>

#include "latmix/learn.h"
#include "latmix/progress.h"

namespace latmix::serve {

enum class JobState { Queued, Running, Paused, Done, Failed, Cancelled };
/// "queued", "running", "paused", "done", "failed", "cancelled".
const char* to_string(JobState state);
/// Done, Failed or Cancelled: no more events will come.
bool finished(JobState state);

/// One event of a job's log. `type`: "state" ({state, position}), "progress" ({stage, done, total}),
/// "note" ({text}), "step" (a LearnEvent's to_json()), "snapshot" ({snapshot, tag, step}, plus
/// "error" when it failed: JobQueue::snapshot()), "end" ({state, error}: the last event).
struct JobEvent {
  int64_t seq = 0;  ///< 1, 2, ... in the order they happened
  std::string type;
  nlohmann::json data;
};
nlohmann::json to_json(const JobEvent& event);

/// What a task reports while it runs; handed to the task by the queue.
struct TaskEvents {
  JobControl job;  ///< progress (throttled into "progress" events) and cancel
  PauseToken pause;
  std::function<void(const std::string& text)> on_note;
  std::function<void(const nlohmann::json& step)> on_step;
  /// Where a learn task takes the snapshots asked for (JobQueue::snapshot()) at its step ends, and
  /// holds while paused (LearnControl::on_snapshot calls its serve(); on_step its set_step()).
  StepEndWork step_end;
};

/// A job as `GET /v1/jobs` lists it.
struct JobInfo {
  std::string id;
  std::string task;
  JobState state = JobState::Queued;
  int64_t position = 0;  ///< 1 = next to run, 2 = after it, ...; 0 when not waiting
  nlohmann::json progress;  ///< the last progress {stage, done, total} (null before any)
  std::string error;        ///< why it failed ("" unless failed); "usage: ..." for a bad request
  std::string error_kind;   ///< "usage" (a bad request), "error" (the work failed), "" otherwise
  int64_t events = 0;       ///< events logged so far (the last one's seq)
  double created = 0, started = 0, ended = 0;  ///< seconds since the epoch (0: not yet)
  /// The task's request as the server runs it (paths resolved under its roots) while the job is
  /// queued or runs, so that a client that did not submit it can follow it (the studio's Engine
  /// jobs window); null once it has ended.
  nlohmann::json request;
};
nlohmann::json to_json(const JobInfo& info);

/// Runs one task: the request (already checked against the server's roots) in, the result out.
/// Throws latmix::UsageError for a bad request, latmix::Cancelled when cancelled, anything else
/// for a failure (its what() becomes the job's error).
using TaskRunner = std::function<nlohmann::json(const std::string& task, const nlohmann::json& request,
                                                const TaskEvents& events)>;
/// Takes a snapshot of a learn job, on its thread between two steps: the statistics of `statistics`
/// (a statistics request, checked and confined) with `plan`, the transforms as they are after
/// `step`, applied to the model the job holds. `learn`: the job's request. Returns the statistics
/// result's JSON. \throws as TaskRunner.
using SnapshotRunner =
    std::function<nlohmann::json(const nlohmann::json& learn, const nlohmann::json& statistics,
                                 const TransformPlan& plan, int64_t step, const JobControl& job)>;

class JobQueue {
 public:
  /// `pausable`: the tasks whose runs pause (their loops hold between steps: learn, compare,
  /// export); `keep_finished`: finished jobs kept (oldest removed first beyond it); `snapshots`:
  /// takes the snapshots of learn jobs (none: snapshot() refuses). Starts the worker.
  JobQueue(TaskRunner runner, std::vector<std::string> pausable, size_t keep_finished = 64,
           SnapshotRunner snapshots = {});
  /// Cancels every job and waits for the running one to stop.
  ~JobQueue();
  JobQueue(const JobQueue&) = delete;
  JobQueue& operator=(const JobQueue&) = delete;

  /// Queues a job; returns its id (16 hex digits, random).
  std::string submit(const std::string& task, nlohmann::json request);
  /// Every job, oldest first.
  std::vector<JobInfo> list() const;
  std::optional<JobInfo> info(const std::string& id) const;
  /// The events with seq > `after`; when there are none yet and the job is not finished, waits up
  /// to `wait` for some. `finished` (optional) says whether the job has ended and every event of it
  /// is in the log. std::nullopt for an unknown job.
  std::optional<std::vector<JobEvent>> events(const std::string& id, int64_t after, std::chrono::milliseconds wait,
                                              bool* finished = nullptr) const;
  /// Pause holds a running job of a pausable task between steps, resume lets it go on: false for
  /// any other job. Cancel stops a running job at its next check and drops a queued one: false for
  /// an unknown or finished job.
  bool pause(const std::string& id);
  bool resume(const std::string& id);
  bool cancel(const std::string& id);
  /// Asks a running or paused learn job for a snapshot: the statistics of `statistics` with its
  /// transforms as they are at its next step end (at once when paused). Returns the snapshot's
  /// number (1, 2, ... per job); its "snapshot" event ({snapshot, tag, step}, or with "error")
  /// says when snapshot_result() has it. std::nullopt for any other job (or no SnapshotRunner).
  /// A job that ends before its next step end logs each snapshot still asked for with an error.
  std::optional<int64_t> snapshot(const std::string& id, nlohmann::json statistics, std::string tag);
  /// A snapshot's statistics result: the job's last kSnapshotsKept are kept (std::nullopt otherwise).
  std::optional<nlohmann::json> snapshot_result(const std::string& id, int64_t number) const;
  static constexpr size_t kSnapshotsKept = 4;
  /// The result of a job that is done (std::nullopt otherwise).
  std::optional<nlohmann::json> result(const std::string& id) const;
  /// Forgets a finished job (false when unknown or not finished: cancel it first).
  bool remove(const std::string& id);
  /// Jobs queued or running.
  size_t active() const;

 private:
  struct Job;
  void work();
  void run(const std::shared_ptr<Job>& job);
  void log(Job& job, std::string type, nlohmann::json data);  // mutex_ held
  void log_positions();                                       // mutex_ held
  JobInfo info_of(const Job& job) const;                      // mutex_ held
  void trim();                                                // mutex_ held

  TaskRunner runner_;
  SnapshotRunner snapshots_;
  std::vector<std::string> pausable_;
  size_t keep_finished_;
  mutable std::mutex mutex_;
  mutable std::condition_variable changed_;  // any job's log grew or the queue changed
  std::condition_variable wake_;             // the worker: a job was queued, or stop
  std::vector<std::shared_ptr<Job>> jobs_;   // every job, oldest first
  std::deque<std::shared_ptr<Job>> queue_;
  bool stopping_ = false;
  std::thread worker_;
};

}  // namespace latmix::serve
