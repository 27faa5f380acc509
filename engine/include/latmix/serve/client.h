#pragma once
/// \file serve/client.h
/// Room: engine/serve/ (latmix_serve). A client of `latmix serve` (serve/server.h): what
/// `latmix --engine URL COMMAND` and the studio's remote backend use. Errors come back as the
/// engine's own kinds: a bad request or a refused path as latmix::UsageError with the server's
/// message, a failed task as latmix::Error, a cancelled job as latmix::Cancelled.

#include <nlohmann/json.hpp>

#include <cstdint>
#include <functional>
#include <memory>
#include <string>

#include "latmix/progress.h"
#include "latmix/serve/jobs.h"

namespace latmix::serve {

/// An answer of the server that is no success, or no answer at all. `status` 0: the server could
/// not be reached (its message says why: connection refused, timed out, ...).
class RemoteError : public Error {
 public:
  RemoteError(int status, std::string kind, const std::string& message)
      : Error(message), status_(status), kind_(std::move(kind)) {}
  int status() const { return status_; }
  const std::string& kind() const { return kind_; }

 private:
  int status_;
  std::string kind_;
};

/// What RemoteEngine::run() reports while the job runs.
struct RemoteCallbacks {
  std::function<void(const std::string& job_id)> on_submitted;
  /// Every event of the job's log in order (state, progress, note, step, end).
  std::function<void(const JobEvent& event)> on_event;
  /// Cancelling it cancels the job on the server (checked at least once a second).
  CancelToken cancel;
};

/// How follow() re-opens a dropped event stream: up to `attempts` times in a row, waiting
/// first_wait_ms, then twice that, ... (200 ms x 1..5: a stream is given up about 3 s after the
/// engine stops answering).
struct Reconnect {
  int attempts = 5;
  int first_wait_ms = 200;
};

class RemoteEngine {
 public:
  /// `url`: http://HOST:PORT (or HOST:PORT). \throws latmix::UsageError for a URL that is none.
  RemoteEngine(const std::string& url, const std::string& token, Reconnect reconnect = {});
  ~RemoteEngine();
  const std::string& url() const { return url_; }

  /// GET /v1/engine: version, LibTorch, device, roots, tasks, active jobs.
  nlohmann::json engine() const;
  /// Queues a job: its info ({id, state, position, ...}). \throws latmix::UsageError for a bad
  /// request or a path outside the server's roots (the server's message).
  nlohmann::json submit(const std::string& task, const nlohmann::json& request) const;
  nlohmann::json jobs() const;
  nlohmann::json job(const std::string& id) const;
  /// Reads the job's events after `after` until it has ended (or `on_event` returns false, or
  /// `cancel` is cancelled); a dropped connection is re-opened at the last event seen, as the
  /// Reconnect given to the constructor says. Returns the last event's seq.
  int64_t follow(const std::string& id, int64_t after, const std::function<bool(const JobEvent&)>& on_event,
                 const CancelToken& cancel = {}) const;
  /// The result of a finished job (CBOR on the wire). \throws latmix::UsageError (a bad request),
  /// latmix::Error (the task failed), latmix::Cancelled, RemoteError (not finished, unknown job).
  nlohmann::json result(const std::string& id) const;
  nlohmann::json pause(const std::string& id) const;
  nlohmann::json resume(const std::string& id) const;
  nlohmann::json cancel(const std::string& id) const;
  void remove(const std::string& id) const;
  /// Asks a running or paused learn job for a snapshot (POST /v1/jobs/ID/snapshot): the statistics
  /// of `statistics` (a statistics request; its model, tokenizer and transforms are the job's) with
  /// the transforms as they are at the job's next step end. Returns {"snapshot": N}; the job's
  /// "snapshot" event with that number (and `tag`) says when snapshot_result() has it.
  nlohmann::json snapshot(const std::string& id, const nlohmann::json& statistics, const std::string& tag = "") const;
  /// A snapshot's statistics result (CBOR on the wire). \throws RemoteError (404: unknown or no longer kept).
  nlohmann::json snapshot_result(const std::string& id, int64_t number) const;
  /// GET /v1/files: a folder of the server's roots ("": the roots themselves).
  nlohmann::json files(const std::string& path) const;
  /// GET /v1/file: writes the server's file `path` into `local` atomically.
  void download(const std::string& path, const std::string& local, const JobControl& job = {}) const;

  /// Submits, follows and returns the result: the whole remote run of one task. On cancel, the job
  /// is cancelled on the server, its end awaited, and latmix::Cancelled thrown.
  nlohmann::json run(const std::string& task, const nlohmann::json& request, const RemoteCallbacks& callbacks) const;

 private:
  struct Impl;
  std::string url_;
  Reconnect reconnect_;
  std::unique_ptr<Impl> impl_;
};

}  // namespace latmix::serve
