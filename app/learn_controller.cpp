#include "learn_controller.h"

#include <QCoreApplication>
#include <QDateTime>
#include <QPointer>
#include <QTemporaryDir>
#include <QThreadPool>
#include <QTimer>

#include <c10/core/GradMode.h>

#include <nlohmann/json.hpp>

#include <chrono>
#include <condition_variable>
#include <deque>
#include <map>
#include <mutex>
#include <optional>

#include "engine_host.h"
#include "latmix/api/evaluate.h"
#include "latmix/error.h"
#include "latmix/export.h"
#include "latmix/learn.h"
#include "latmix/model.h"
#include "latmix/transform_fold.h"
#include "engine_link.h"
#include "latmix/serve/client.h"
#include "main_window.h"
#include "model_session.h"
#include "scratch_dir.h"

namespace latmix::studio {

namespace {

constexpr qint64 kFlushIntervalMs = 33;  // ~30 Hz

LearnStep to_step(const LearnEvent& e) {
  LearnStep s;
  s.step = e.step;
  s.total = e.total;
  s.layer = e.layer;
  s.loss = e.loss;
  for (const auto& [name, value] : e.terms) s.terms.emplace_back(QString::fromStdString(name), value);
  s.lr = e.lr;
  s.grad_norm = e.grad_norm;
  s.seconds = e.seconds;
  s.eta = e.eta;
  s.validation = e.validation;
  return s;
}

// One line per placement: "value: 6 x affine_lu 48 (max condition 1.31)".
QStringList describe_plan(const TransformPlan& plan, std::vector<std::pair<QString, double>>* conditions) {
  c10::NoGradGuard no_grad;
  QStringList lines;
  auto add = [&](const QString& where, const std::vector<TransformPtr>& list) {
    int count = 0;
    double worst = 1;
    QString kind;
    int64_t dim = 0;
    for (const auto& t : list) {
      if (!t) continue;
      ++count;
      kind = QString::fromStdString(t->kind());
      dim = t->dim();
      if (conditions != nullptr) worst = std::max(worst, t->report().condition_number);
    }
    if (count == 0) return;
    QString line = QString("%1: %2 x %3 %4").arg(where).arg(count).arg(kind).arg(dim);
    if (conditions != nullptr) {
      line += QString(" (max condition %1)").arg(worst, 0, 'g', 4);
      conditions->emplace_back(where + " (max over layers)", worst);
    }
    lines << line;
  };
  if (plan.residual) {
    QString line =
        QString("residual: %1 %2").arg(QString::fromStdString(plan.residual->kind())).arg(plan.residual->dim());
    if (conditions != nullptr) {
      const double c = plan.residual->report().condition_number;
      line += QString(" (condition %1)").arg(c, 0, 'g', 4);
      conditions->emplace_back("residual", c);
    }
    lines << line;
  }
  add("value", plan.value);
  add("attn_online", plan.attn_online);
  add("mlp_online", plan.mlp_online);
  add("down_online", plan.down_online);
  return lines;
}

// The widths and layer counts of a loaded plan must fit the open model (else the explorer and
// folding would fail later with a shape error far from the cause).
void check_plan_fits(const TransformPlan& plan, const ModelConfig& c, const std::string& file) {
  auto check = [&](const std::vector<TransformPtr>& list, const char* where, int64_t width) {
    if (list.empty()) return;
    if (static_cast<int64_t>(list.size()) != c.num_layers) {
      fail(file, std::string(where) + " transforms", std::to_string(c.num_layers) + " (one per layer)",
           std::to_string(list.size()));
    }
    for (const auto& t : list) {
      if (t && t->dim() != width)
        fail(file, std::string(where) + " width", std::to_string(width), std::to_string(t->dim()));
    }
  };
  if (plan.residual && plan.residual->dim() != c.hidden_size) {
    fail(file, "residual width", std::to_string(c.hidden_size), std::to_string(plan.residual->dim()));
  }
  check(plan.value, "value", c.head_dim);
  check(plan.attn_online, "attn_online", c.hidden_size);
  check(plan.mlp_online, "mlp_online", c.hidden_size);
  check(plan.down_online, "down_online", c.intermediate_size);
}

}  // namespace

// A run on an engine: the engine and its job's id (set by the engine thread once submitted).
struct EngineRun {
  std::shared_ptr<const serve::RemoteEngine> engine;
  std::mutex mutex;
  std::string id;
  /// Snapshots asked for and not yet answered, by the tag they were asked with.
  std::map<std::string, LearnController::EngineSnapshotDone> snapshots;
  uint64_t asked = 0;
};

// Shared by the controller (GUI thread) and the run's job (engine thread).
struct LearnController::RunState {
  std::mutex mutex;
  std::vector<LearnStep> pending;  // steps not yet flushed to the GUI
  bool flush_posted = false;
  // Run at the end of every step (snapshot_every = 1), where the run also holds while paused.
  StepEndWork step_end;
  PauseToken pause;
  /// A run on an engine (else null), for pause / resume.
  std::shared_ptr<struct EngineRun> engine_run;
};

LearnController::LearnController(EngineHost* host, ModelSession* session, QObject* parent)
    : QObject(parent), host_(host), session_(session), temp_(make_scratch_dir()) {
  qRegisterMetaType<latmix::studio::LearnOutcome>();
  clock_.start();
  connect(host_, &EngineHost::jobCancelled, this, [this](quint64 id, const QString&) {
    if (id != job_) return;
    flush(true);
    ended();
    Q_EMIT cancelled();
  });
  connect(host_, &EngineHost::jobFailed, this, [this](quint64 id, const QString&, const QString& message) {
    if (id == save_job_) Q_EMIT saveFailed(message);
    if (id == load_job_) Q_EMIT failed(message);
    if (id != job_) return;
    flush(true);
    ended();
    Q_EMIT failed(message);
  });
}

LearnController::~LearnController() {
  if (job_ != 0) host_->cancel(job_);
}

quint64 LearnController::start(const LearnRequest& request, int nproc) {
  if (session_->remote()) return startOnEngine(request, nproc);
  auto model = session_->model();
  auto tokenizer = session_->tokenizer();
  if (!model || !tokenizer) return 0;
  return startWork(request, [request, model, tokenizer](const LearnControl& control) {
    api::learn_settings(request, model->device());  // bad settings fail before the model is held
    // Learning holds the model (as `latmix learn` loads it); refused here, before any step, when it cannot fit.
    const std::shared_ptr<Model> held = api::held_model(
        model, "Learning",
        "This needs the model held in memory (the Overview, the explorer and the microscope read it memory-mapped); "
        "a machine with more memory, or the CLI on a GPU server, can run it");
    api::LearnResult r = api::run_learn(request, *held, *tokenizer, control);
    RunResult out;
    out.result = std::move(r.run);
    out.calibration = std::move(r.calibration);
    return out;
  });
}

quint64 LearnController::startWork(const LearnRequest& request, RunWork work) {
  if (running()) return 0;
  // The current plan stays until this run finishes: a cancelled or failed run discards nothing.
  request_ = request;
  curve_.clear();
  state_ = std::make_shared<RunState>();
  auto state = state_;
  const QString name = QString("learned-%1-%2").arg(QString::fromStdString(request.method)).arg(++run_counter_);
  const QString model_path = session_->summary().path;
  const std::string prefix = temp_->isValid() ? temp_->filePath(name).toStdString() : std::string();
  auto temp = temp_;  // keeps the folder while the job runs
  QPointer<LearnController> self(this);
  // Told once per pause, when the run holds (the end of a step: every step before was posted).
  std::function<void(int64_t)> on_hold = [self](int64_t step) {
    EngineHost::post(self, [self, step] {
      self->flush(false);  // the steps before the hold first
      Q_EMIT self->pauseHeld(step);
    });
  };
  job_ = host_->submit("learn", [self, state, temp, prefix, work, model_path, on_hold](const JobControl& job) {
    LearnControl control;
    control.job = job;
    control.pause = state->pause;
    control.on_step = [self, state](const LearnEvent& e) {
      std::lock_guard<std::mutex> lock(state->mutex);
      state->pending.push_back(to_step(e));
      if (state->flush_posted || !self) return;
      state->flush_posted = true;  // one flush in the GUI's queue at a time
      EngineHost::post(self, [self] { self->flush(false); });
    };
    state->step_end.attach(control, state->pause, on_hold);
    RunResult run = work(control);
    job.cancel.check();
    const MethodResult& r = run.result;
    auto plan = std::make_shared<TransformPlan>(r.plan);
    LearnOutcome o;
    o.method = QString::fromStdString(r.method);
    o.quant = QString::fromStdString(to_string(r.settings.quant));
    o.settings_json = QString::fromStdString(r.settings.to_json().dump());
    o.calibration = QString::fromStdString(run.calibration);
    o.learned = find_method(r.method).learned;
    o.steps = static_cast<qint64>(r.curve.size());
    if (!r.curve.empty()) {
      o.first_loss = r.curve.front().loss;
      o.last_loss = r.curve.back().loss;
    }
    o.seconds = r.seconds;
    o.validation_samples = r.validation_samples;
    for (const auto& [step, value] : r.validation_curve) o.validation_curve.emplace_back(step, value);
    o.best_step = r.best_step;
    o.stopped_early = r.stopped_early;
    o.validation_note = QString::fromStdString(r.validation_note);
    o.deployed_start = r.deployed_start;
    o.deployed_result = r.deployed_result;
    for (const auto& [n, v] : r.conditions) o.conditions.emplace_back(QString::fromStdString(n), v);
    o.transforms = describe_plan(*plan, nullptr);
    o.model_path = model_path;
    if (!run.engine_prefix.empty()) {  // learned on the engine: the plan is its file there
      o.plan_prefix = QString::fromStdString(run.engine_prefix);
      o.notes << "learned on the engine: the transforms are " + o.plan_prefix + ".json/.safetensors on the server";
      EngineHost::post(self, [self, o] { self->finish(o, nullptr); });
      return;
    }
    try {  // provenance: which model (by its files' headers) the plan was learned on
      o.model_digest = QString::fromStdString(model_fingerprint(model_path.toStdString()).model_digest);
    } catch (const std::exception& e) {
      o.notes << "no model fingerprint: " + QString::fromUtf8(e.what());
    }
    if (!plan->empty() && !prefix.empty()) {
      // The explorer reads learned plans from disk; the export checks them against the model as
      // `latmix export --transforms` does, so the copy carries the fingerprint, the method and its settings.
      nlohmann::json settings = r.settings.to_json();
      settings["method"] = r.method;
      try {
        save_transforms_for_model(prefix, *plan, model_path.toStdString(), settings);
      } catch (const Error&) {
        save_transforms(prefix, *plan);  // no fingerprint (the model's files unreadable): export notes it
      }
      o.plan_prefix = QString::fromStdString(prefix);
    }
    EngineHost::post(self, [self, o, plan] { self->finish(o, plan); });
  });
  Q_EMIT started(job_, request.steps.value_or(0));  // 0: the method's count, known from the first step
  return job_;
}

quint64 LearnController::startOnEngine(const LearnRequest& request, int nproc) {
  LearnRequest r = request;
  r.model = session_->summary().path.toStdString();
  // The server's paths: this computer's bundled sample is the server's; the transforms go under the
  // engine's first root.
  if (link_ != nullptr) r.calib = link_->engineText(r.calib);
  r.out = engine_learn_prefix(QString::fromStdString(r.method), run_counter_ + 1).toStdString();
  nlohmann::json j = api::to_json(r);
  if (nproc > 1) j["nproc"] = nproc;  // the engine starts the processes on its host
  return followOnEngine(request, r.out,
                        [j](const serve::RemoteEngine& engine, const JobControl& job, const EngineRunHooks& hooks) {
                          return run_on_engine(engine, "learn", j, job, hooks);
                        });
}

quint64 LearnController::attach(const QString& job_id, const LearnRequest& request) {
  if (!session_->remote() || request.out.empty()) return 0;
  const std::string id = job_id.toStdString();
  return followOnEngine(request, request.out, [id](const serve::RemoteEngine& engine, const JobControl& job,
                                                    const EngineRunHooks& hooks) {
    return follow_on_engine(engine, "learn", id, job, hooks);
  });
}

quint64 LearnController::followOnEngine(const LearnRequest& request, const std::string& engine_prefix,
                                        EngineFollow follow) {
  auto engine = session_->remote();
  auto engine_run = std::make_shared<EngineRun>();
  engine_run->engine = engine;
  auto gate = link_ != nullptr ? link_->lossGate() : nullptr;
  const quint64 id = startWork(request, [engine, engine_run, engine_prefix, gate, follow](const LearnControl& control) {
    EngineRunHooks hooks;
    hooks.on_step = [&control](const nlohmann::json& step) { control.on_step(api::learn_event_from_json(step)); };
    hooks.on_submitted = [engine_run](const std::string& job_id) {
      std::lock_guard<std::mutex> lock(engine_run->mutex);
      engine_run->id = job_id;
    };
    hooks.gate = gate;  // a lost stream waits for Retry, which follows on from the last step seen
    hooks.on_snapshot = [engine, engine_run](const nlohmann::json& event) {
      LearnController::EngineSnapshotDone done;
      std::string job_id;
      {
        std::lock_guard<std::mutex> lock(engine_run->mutex);
        const auto it = engine_run->snapshots.find(event.value("tag", std::string()));
        if (it == engine_run->snapshots.end()) return;  // another client's, or an earlier session's
        done = std::move(it->second);
        engine_run->snapshots.erase(it);
        job_id = engine_run->id;
      }
      const qint64 step = event.value("step", int64_t{0});
      if (event.contains("error")) return done(step, nlohmann::json(), event.value("error", std::string("failed")));
      try {
        done(step, engine->snapshot_result(job_id, event.at("snapshot").get<int64_t>()), "");
      } catch (const std::exception& e) {
        done(step, nlohmann::json(), e.what());
      }
    };
    const nlohmann::json result = follow(*engine, control.job, hooks);
    api::LearnResult learned = api::learn_result_from_json(result);
    RunResult out;
    out.result = std::move(learned.run);
    out.calibration = std::move(learned.calibration);
    out.engine_prefix = engine_prefix;
    return out;
  });
  if (id != 0) state_->engine_run = engine_run;
  return id;
}

void LearnController::setEngineLink(EngineLink* link) { link_ = link; }

void LearnController::clearPlan() {
  outcome_ = LearnOutcome();
  plan_.reset();
}

// Pause and resume of a run on an engine: its job's, over the network, off the GUI thread (the
// engine thread is following the run). A job that has already ended answers 409: nothing to do.
void LearnController::remoteControl(bool pause) {
  auto run = state_->engine_run;
  QThreadPool::globalInstance()->start([run, pause] {
    std::string id;
    {
      std::lock_guard<std::mutex> lock(run->mutex);
      id = run->id;
    }
    if (id.empty()) return;
    try {
      if (pause) run->engine->pause(id);
      else run->engine->resume(id);
    } catch (const std::exception&) {  // ended meanwhile, or the connection dropped: the run says so
    }
  });
}

void LearnController::pause() {
  if (!state_ || !running()) return;
  if (state_->engine_run) remoteControl(true);
  state_->pause.pause();
  Q_EMIT pausedChanged(true);
}

void LearnController::resume() {
  if (!state_) return;
  if (state_->engine_run) remoteControl(false);
  state_->pause.resume();
  state_->step_end.wake();
  Q_EMIT pausedChanged(false);
}

bool LearnController::paused() const {
  return state_ && running() && state_->pause.paused();
}

void LearnController::cancel() {
  if (job_ != 0) host_->cancel(job_);
}

bool LearnController::withSnapshot(SnapshotWork work) {
  if (!state_ || !running() || curve_.empty()) return false;
  state_->step_end.push(std::move(work));
  return true;
}

bool LearnController::snapshotOnEngine(const nlohmann::json& statistics, EngineSnapshotDone done) {
  if (!state_ || !running() || curve_.empty() || !state_->engine_run) return false;
  auto run = state_->engine_run;
  std::string tag;
  {
    std::lock_guard<std::mutex> lock(run->mutex);
    if (run->id.empty()) return false;
    // Registered before it is asked: its event may come before the answer to the POST.
    tag = "studio-" + std::to_string(QCoreApplication::applicationPid()) + "-" + std::to_string(++run->asked);
    run->snapshots[tag] = done;
  }
  QThreadPool::globalInstance()->start([run, statistics, tag] {
    std::string id;
    {
      std::lock_guard<std::mutex> lock(run->mutex);
      id = run->id;
    }
    try {
      run->engine->snapshot(id, statistics, tag);
    } catch (const std::exception& e) {
      EngineSnapshotDone failed;
      {
        std::lock_guard<std::mutex> lock(run->mutex);
        const auto it = run->snapshots.find(tag);
        if (it == run->snapshots.end()) return;
        failed = std::move(it->second);
        run->snapshots.erase(it);
      }
      failed(0, nlohmann::json(), e.what());
    }
  });
  return true;
}

void LearnController::flush(bool final) {
  if (!state_) return;
  if (!final) {
    const qint64 wait = kFlushIntervalMs - (clock_.elapsed() - last_flush_ms_);
    if (wait > 0) {  // too soon after the last one: wait out the slot (the buffer keeps filling)
      if (!flush_timer_armed_) {
        flush_timer_armed_ = true;
        QTimer::singleShot(static_cast<int>(wait), this, [this] {
          flush_timer_armed_ = false;
          flush(false);
        });
      }
      return;
    }
  }
  std::vector<LearnStep> batch;
  {
    std::lock_guard<std::mutex> lock(state_->mutex);
    batch.swap(state_->pending);
    state_->flush_posted = false;
  }
  last_flush_ms_ = clock_.elapsed();
  if (batch.empty()) return;
  const int first = static_cast<int>(curve_.size());
  curve_.insert(curve_.end(), std::make_move_iterator(batch.begin()), std::make_move_iterator(batch.end()));
  Q_EMIT stepsArrived(first, static_cast<int>(batch.size()));
}

void LearnController::finish(const LearnOutcome& outcome, std::shared_ptr<TransformPlan> plan) {
  flush(true);
  LearnRun run;
  run.outcome = outcome;
  int number = 0;
  for (const LearnRun& r : runs_) {
    if (r.outcome.model_path == outcome.model_path) number = std::max(number, r.outcome.run);
  }
  run.outcome.run = number + 1;
  run.outcome.finished_at = QDateTime::currentDateTime().toString(Qt::ISODate);
  run.request = request_;
  run.curve = curve_;
  runs_.push_back(run);
  ended();
  if (outcome.model_path != session_->summary().path) {  // another model opened meanwhile: kept in
    Q_EMIT historyChanged();                             // the history of its own model only
    Q_EMIT cancelled();
    return;
  }
  outcome_ = run.outcome;
  plan_ = std::move(plan);
  Q_EMIT historyChanged();
  Q_EMIT finished(outcome_);
}

std::vector<const LearnRun*> LearnController::runs(const QString& model_path) const {
  std::vector<const LearnRun*> out;
  for (const LearnRun& r : runs_) {
    if (r.outcome.model_path == model_path) out.push_back(&r);
  }
  return out;
}

bool LearnController::selectRun(const QString& model_path, int run) {
  for (const LearnRun& r : runs_) {
    if (r.outcome.model_path != model_path || r.outcome.run != run) continue;
    if (r.outcome.plan_prefix != outcome_.plan_prefix) plan_.reset();  // save() reads it from disk
    outcome_ = r.outcome;
    Q_EMIT runSelected(outcome_);
    return true;
  }
  return false;
}

void LearnController::restoreRuns(std::vector<LearnRun> runs) {
  for (LearnRun& r : runs) runs_.push_back(std::move(r));
  Q_EMIT historyChanged();
}

int LearnController::unsavedRuns() const {
  int n = 0;
  for (const LearnRun& r : runs_) {
    if (r.outcome.saved_prefix.isEmpty() && !r.outcome.in_session && !r.outcome.plan_prefix.isEmpty()) ++n;
  }
  return n;
}

void LearnController::markSessionSaved() {
  for (LearnRun& r : runs_) r.outcome.in_session = true;
  if (outcome_.run > 0) outcome_.in_session = true;
  Q_EMIT historyChanged();
}

void LearnController::clearHistory() {
  runs_.clear();
  clearPlan();
  Q_EMIT historyChanged();
}

void LearnController::ended() {
  job_ = 0;
  if (state_) {
    state_->pause.resume();
    state_->step_end.wake();
  }
}

quint64 LearnController::load(const QString& prefix) {
  auto model = session_->model();
  if (!model) return 0;
  const QString model_path = session_->summary().path;
  QPointer<LearnController> self(this);
  return load_job_ = host_->submit("load-transforms", [self, model, prefix, model_path](const JobControl& job) {
    const std::string p = prefix.toStdString();
    // A plan saved for another model (or for this one before it changed on disk) fails here, by name.
    CheckedTransforms checked = load_transforms_checked(p, model_path.toStdString());
    auto plan = std::make_shared<TransformPlan>(std::move(checked.plan));
    check_plan_fits(*plan, model->config(), p + ".json");
    job.cancel.check();
    LearnOutcome o;
    o.loaded = true;
    // What the file says it is: the method and format it was learned with (issue 17, Major 2).
    const nlohmann::json& meta = checked.metadata;
    const nlohmann::json settings =
        meta.is_object() && meta.contains("settings") && meta["settings"].is_object() ? meta["settings"]
                                                                                     : nlohmann::json::object();
    o.method = QString::fromStdString(settings.value("method", std::string()));
    o.quant = QString::fromStdString(settings.value("quant", std::string()));
    if (!settings.empty()) o.settings_json = QString::fromStdString(settings.dump());
    for (const auto& preset : method_presets()) {  // a method this build does not know stays "not learned"
      if (preset.name == o.method.toStdString()) o.learned = preset.learned;
    }
    if (meta.is_object() && meta.contains("model") && meta["model"].is_object()) {
      o.model_digest = QString::fromStdString(meta["model"].value("model_digest", std::string()));
    }
    o.model_path = model_path;
    for (const auto& n : checked.notes) o.notes << QString::fromStdString(n);
    o.transforms = describe_plan(*plan, &o.conditions);
    o.plan_prefix = plan->empty() ? QString() : prefix;
    o.saved_prefix = o.plan_prefix;
    EngineHost::post(self, [self, o, plan] {
      if (self->session_->summary().path != o.model_path) {  // another model opened meanwhile
        Q_EMIT self->failed("another model was opened while " + o.plan_prefix + " was loading");
        return;
      }
      self->outcome_ = o;
      self->plan_ = plan;
      Q_EMIT self->loaded(o);
    });
  });
}

quint64 LearnController::save(const QString& prefix) {
  if (!hasPlan()) return 0;
  auto plan = plan_;
  const LearnOutcome o = outcome_;
  QPointer<LearnController> self(this);
  return save_job_ = host_->submit("save-transforms", [self, plan, prefix, o](const JobControl&) {
    const TransformPlan p = plan ? *plan : load_transforms(o.plan_prefix.toStdString());
    nlohmann::json settings = nlohmann::json::object();
    if (!o.settings_json.isEmpty()) settings = nlohmann::json::parse(o.settings_json.toStdString());
    if (!o.method.isEmpty()) settings["method"] = o.method.toStdString();
    // With the model's fingerprint and the method: a later load knows what the plan is and refuses
    // it for another model (issue 17, Minor).
    save_transforms_for_model(prefix.toStdString(), p, o.model_path.toStdString(), settings);
    EngineHost::post(self, [self, prefix, o] {
      for (LearnRun& r : self->runs_) {
        if (r.outcome.plan_prefix == o.plan_prefix) r.outcome.saved_prefix = prefix;
      }
      if (self->outcome_.plan_prefix == o.plan_prefix) self->outcome_.saved_prefix = prefix;
      Q_EMIT self->historyChanged();
      Q_EMIT self->saved(prefix);
    });
  });
}

}  // namespace latmix::studio
