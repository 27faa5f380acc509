// The server's job queue (latmix/serve/jobs.h): one worker thread, a log of events per job.
#include "latmix/serve/jobs.h"

#include <algorithm>
#include <cstdio>
#include <random>

#include "latmix/error.h"

namespace latmix::serve {

namespace {

double now_seconds() {
  return std::chrono::duration<double>(std::chrono::system_clock::now().time_since_epoch()).count();
}

std::string random_id() {
  static std::mutex mutex;
  static std::mt19937_64 rng{(static_cast<uint64_t>(std::random_device{}()) << 32) ^ std::random_device{}()};
  std::lock_guard<std::mutex> lock(mutex);
  char buf[17];
  std::snprintf(buf, sizeof buf, "%016llx", static_cast<unsigned long long>(rng()));
  return buf;
}

// Progress events: the first of a stage, the last (done == total), and otherwise at most one per
// 25 ms per job, 40 a second (a layer-by-layer bar may report thousands of times).
constexpr auto kProgressInterval = std::chrono::milliseconds(25);

}  // namespace

const char* to_string(JobState state) {
  switch (state) {
    case JobState::Queued: return "queued";
    case JobState::Running: return "running";
    case JobState::Paused: return "paused";
    case JobState::Done: return "done";
    case JobState::Failed: return "failed";
    case JobState::Cancelled: return "cancelled";
  }
  return "?";
}

bool finished(JobState state) {
  return state == JobState::Done || state == JobState::Failed || state == JobState::Cancelled;
}

nlohmann::json to_json(const JobEvent& event) {
  return {{"seq", event.seq}, {"type", event.type}, {"data", event.data}};
}

nlohmann::json to_json(const JobInfo& info) {
  return {{"id", info.id},         {"task", info.task},       {"state", to_string(info.state)},
          {"position", info.position}, {"progress", info.progress}, {"error", info.error},
          {"error_kind", info.error_kind}, {"events", info.events},     {"created", info.created},
          {"started", info.started},   {"ended", info.ended},       {"request", info.request}};
}

struct JobQueue::Job {
  std::string id;
  std::string task;
  nlohmann::json request;
  JobState state = JobState::Queued;
  nlohmann::json progress;
  std::string error, error_kind;
  std::vector<JobEvent> log;
  std::optional<nlohmann::json> result;
  double created = 0, started = 0, ended = 0;
  CancelToken cancel;
  PauseToken pause;
  std::string progress_stage;
  std::chrono::steady_clock::time_point progress_logged{};
  StepEndWork step_end;
  int64_t snapshots_asked = 0;
  std::map<int64_t, std::string> snapshots_pending;  // number -> tag
  std::map<int64_t, nlohmann::json> snapshots;       // the last kSnapshotsKept results
};

JobQueue::JobQueue(TaskRunner runner, std::vector<std::string> pausable, size_t keep_finished,
                   SnapshotRunner snapshots)
    : runner_(std::move(runner)),
      snapshots_(std::move(snapshots)),
      pausable_(std::move(pausable)),
      keep_finished_(keep_finished) {
  worker_ = std::thread([this] { work(); });
}

JobQueue::~JobQueue() {
  {
    std::lock_guard<std::mutex> lock(mutex_);
    stopping_ = true;
    for (auto& job : jobs_) {
      job->cancel.cancel();
      job->pause.resume();
      job->step_end.wake();
    }
  }
  wake_.notify_all();
  changed_.notify_all();
  if (worker_.joinable()) worker_.join();
}

void JobQueue::log(Job& job, std::string type, nlohmann::json data) {
  JobEvent e;
  e.seq = static_cast<int64_t>(job.log.size()) + 1;
  e.type = std::move(type);
  e.data = std::move(data);
  job.log.push_back(std::move(e));
  changed_.notify_all();
}

void JobQueue::log_positions() {
  int64_t position = 1;
  for (auto& job : queue_) {
    log(*job, "state", {{"state", to_string(job->state)}, {"position", position}});
    ++position;
  }
}

JobInfo JobQueue::info_of(const Job& job) const {
  JobInfo info;
  info.id = job.id;
  info.task = job.task;
  info.state = job.state;
  if (job.state == JobState::Queued) {
    const auto it = std::find_if(queue_.begin(), queue_.end(), [&](const auto& j) { return j.get() == &job; });
    if (it != queue_.end()) info.position = static_cast<int64_t>(it - queue_.begin()) + 1;
  }
  info.progress = job.progress;
  info.error = job.error;
  info.error_kind = job.error_kind;
  info.events = static_cast<int64_t>(job.log.size());
  info.created = job.created;
  info.started = job.started;
  info.ended = job.ended;
  info.request = job.request;
  return info;
}

std::string JobQueue::submit(const std::string& task, nlohmann::json request) {
  auto job = std::make_shared<Job>();
  job->task = task;
  job->request = std::move(request);
  job->created = now_seconds();
  {
    std::lock_guard<std::mutex> lock(mutex_);
    do {
      job->id = random_id();
    } while (std::any_of(jobs_.begin(), jobs_.end(), [&](const auto& j) { return j->id == job->id; }));
    jobs_.push_back(job);
    queue_.push_back(job);
    log(*job, "state", {{"state", "queued"}, {"position", static_cast<int64_t>(queue_.size())}});
    trim();
  }
  wake_.notify_all();
  return job->id;
}

void JobQueue::trim() {
  size_t finished_jobs = 0;
  for (const auto& j : jobs_) finished_jobs += finished(j->state) ? 1 : 0;
  for (auto it = jobs_.begin(); it != jobs_.end() && finished_jobs > keep_finished_;) {
    if (finished((*it)->state)) {
      it = jobs_.erase(it);
      --finished_jobs;
    } else {
      ++it;
    }
  }
}

std::vector<JobInfo> JobQueue::list() const {
  std::lock_guard<std::mutex> lock(mutex_);
  std::vector<JobInfo> out;
  for (const auto& j : jobs_) out.push_back(info_of(*j));
  return out;
}

std::optional<JobInfo> JobQueue::info(const std::string& id) const {
  std::lock_guard<std::mutex> lock(mutex_);
  for (const auto& j : jobs_) {
    if (j->id == id) return info_of(*j);
  }
  return std::nullopt;
}

std::optional<std::vector<JobEvent>> JobQueue::events(const std::string& id, int64_t after,
                                                      std::chrono::milliseconds wait, bool* is_finished) const {
  std::unique_lock<std::mutex> lock(mutex_);
  std::shared_ptr<Job> job;
  for (const auto& j : jobs_) {
    if (j->id == id) job = j;
  }
  if (!job) return std::nullopt;
  after = std::max<int64_t>(0, after);
  changed_.wait_for(lock, wait, [&] {
    return stopping_ || static_cast<int64_t>(job->log.size()) > after || finished(job->state);
  });
  std::vector<JobEvent> out;
  for (size_t i = static_cast<size_t>(std::min<int64_t>(after, static_cast<int64_t>(job->log.size())));
       i < job->log.size(); ++i) {
    out.push_back(job->log[i]);
  }
  if (is_finished) *is_finished = finished(job->state);
  return out;
}

bool JobQueue::pause(const std::string& id) {
  std::lock_guard<std::mutex> lock(mutex_);
  for (auto& j : jobs_) {
    if (j->id != id) continue;
    if (j->state != JobState::Running ||
        std::find(pausable_.begin(), pausable_.end(), j->task) == pausable_.end()) {
      return j->state == JobState::Paused;
    }
    j->pause.pause();
    j->state = JobState::Paused;
    log(*j, "state", {{"state", "paused"}, {"position", 0}});
    return true;
  }
  return false;
}

bool JobQueue::resume(const std::string& id) {
  std::lock_guard<std::mutex> lock(mutex_);
  for (auto& j : jobs_) {
    if (j->id != id) continue;
    if (j->state != JobState::Paused) return j->state == JobState::Running;
    j->pause.resume();
    j->step_end.wake();
    j->state = JobState::Running;
    log(*j, "state", {{"state", "running"}, {"position", 0}});
    return true;
  }
  return false;
}

bool JobQueue::cancel(const std::string& id) {
  std::lock_guard<std::mutex> lock(mutex_);
  for (auto& j : jobs_) {
    if (j->id != id) continue;
    if (finished(j->state)) return false;
    j->cancel.cancel();
    j->pause.resume();
    j->step_end.wake();
    if (j->state == JobState::Queued) {
      queue_.erase(std::remove(queue_.begin(), queue_.end(), j), queue_.end());
      j->state = JobState::Cancelled;
      j->ended = now_seconds();
      log(*j, "end", {{"state", "cancelled"}, {"error", ""}, {"error_kind", ""}});
      log_positions();
      trim();
    }
    return true;
  }
  return false;
}

std::optional<int64_t> JobQueue::snapshot(const std::string& id, nlohmann::json statistics, std::string tag) {
  std::lock_guard<std::mutex> lock(mutex_);
  for (auto& j : jobs_) {
    if (j->id != id) continue;
    if (!snapshots_ || j->task != "learn" || (j->state != JobState::Running && j->state != JobState::Paused)) {
      return std::nullopt;
    }
    const int64_t number = ++j->snapshots_asked;
    j->snapshots_pending[number] = tag;
    std::weak_ptr<Job> weak = j;
    j->step_end.push([this, weak, number, tag, learn = j->request, statistics = std::move(statistics)](
                         const TransformPlan& plan, int64_t step, const JobControl& control) {
      nlohmann::json result;
      std::string error;
      try {
        result = snapshots_(learn, statistics, plan, step, control);
      } catch (const Cancelled&) {
        throw;  // the job ends; its end logs this snapshot as not taken
      } catch (const std::exception& e) {
        error = e.what();
      }
      auto job = weak.lock();
      if (!job) return;
      std::lock_guard<std::mutex> logged(mutex_);
      job->snapshots_pending.erase(number);
      nlohmann::json data = {{"snapshot", number}, {"tag", tag}, {"step", step}};
      if (error.empty()) {
        job->snapshots[number] = std::move(result);
        while (job->snapshots.size() > kSnapshotsKept) job->snapshots.erase(job->snapshots.begin());
      } else {
        data["error"] = error;
      }
      log(*job, "snapshot", std::move(data));
    });
    return number;
  }
  return std::nullopt;
}

std::optional<nlohmann::json> JobQueue::snapshot_result(const std::string& id, int64_t number) const {
  std::lock_guard<std::mutex> lock(mutex_);
  for (const auto& j : jobs_) {
    if (j->id != id) continue;
    const auto it = j->snapshots.find(number);
    if (it != j->snapshots.end()) return it->second;
  }
  return std::nullopt;
}

std::optional<nlohmann::json> JobQueue::result(const std::string& id) const {
  std::lock_guard<std::mutex> lock(mutex_);
  for (const auto& j : jobs_) {
    if (j->id == id && j->state == JobState::Done) return j->result;
  }
  return std::nullopt;
}

bool JobQueue::remove(const std::string& id) {
  std::lock_guard<std::mutex> lock(mutex_);
  for (auto it = jobs_.begin(); it != jobs_.end(); ++it) {
    if ((*it)->id != id) continue;
    if (!finished((*it)->state)) return false;
    jobs_.erase(it);
    return true;
  }
  return false;
}

size_t JobQueue::active() const {
  std::lock_guard<std::mutex> lock(mutex_);
  size_t n = 0;
  for (const auto& j : jobs_) n += finished(j->state) ? 0 : 1;
  return n;
}

void JobQueue::work() {
  for (;;) {
    std::shared_ptr<Job> job;
    {
      std::unique_lock<std::mutex> lock(mutex_);
      wake_.wait(lock, [&] { return stopping_ || !queue_.empty(); });
      if (stopping_) return;
      job = queue_.front();
      queue_.pop_front();
      job->state = JobState::Running;
      job->started = now_seconds();
      log(*job, "state", {{"state", "running"}, {"position", 0}});
      log_positions();
    }
    run(job);
  }
}

void JobQueue::run(const std::shared_ptr<Job>& job) {
  TaskEvents events;
  events.job.cancel = job->cancel;
  events.pause = job->pause;
  events.job.progress = [this, job](std::string_view stage, int64_t done, int64_t total) {
    std::lock_guard<std::mutex> lock(mutex_);
    job->progress = {{"stage", std::string(stage)}, {"done", done}, {"total", total}};
    const auto now = std::chrono::steady_clock::now();
    const bool new_stage = job->progress_stage != stage;
    if (new_stage || (total > 0 && done >= total) || now - job->progress_logged >= kProgressInterval) {
      job->progress_stage = std::string(stage);
      job->progress_logged = now;
      log(*job, "progress", job->progress);
    }
  };
  events.on_note = [this, job](const std::string& text) {
    std::lock_guard<std::mutex> lock(mutex_);
    log(*job, "note", {{"text", text}});
  };
  events.on_step = [this, job](const nlohmann::json& step) {
    std::lock_guard<std::mutex> lock(mutex_);
    log(*job, "step", step);
  };
  events.step_end = job->step_end;
  JobState state = JobState::Done;
  std::string error, kind;
  nlohmann::json result;
  try {
    result = runner_(job->task, job->request, events);
  } catch (const Cancelled&) {
    state = JobState::Cancelled;
  } catch (const UsageError& e) {
    state = JobState::Failed;
    error = e.what();
    kind = "usage";
  } catch (const std::exception& e) {
    state = JobState::Failed;
    error = e.what();
    kind = "error";
  } catch (...) {
    state = JobState::Failed;
    error = "unknown failure";
    kind = "error";
  }
  job->step_end.drop();
  std::lock_guard<std::mutex> lock(mutex_);
  for (const auto& [number, tag] : job->snapshots_pending) {
    log(*job, "snapshot", {{"snapshot", number}, {"tag", tag}, {"step", job->step_end.step()},
                           {"error", std::string("the job ended (") + to_string(state) +
                                         ") before its next step: no snapshot"}});
  }
  job->snapshots_pending.clear();
  job->state = state;
  job->ended = now_seconds();
  job->error = error;
  job->error_kind = kind;
  if (state == JobState::Done) job->result = std::move(result);
  job->request = nullptr;
  log(*job, "end", {{"state", to_string(state)}, {"error", error}, {"error_kind", kind}});
  trim();
}

}  // namespace latmix::serve
