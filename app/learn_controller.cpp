#include "learn_controller.h"

#include <QPointer>
#include <QTemporaryDir>
#include <QTimer>

#include <c10/core/GradMode.h>

#include <nlohmann/json.hpp>

#include <chrono>
#include <condition_variable>
#include <deque>
#include <mutex>
#include <optional>

#include "engine_host.h"
#include "latmix/error.h"
#include "latmix/learn.h"
#include "latmix/model.h"
#include "latmix/transform_fold.h"
#include "model_session.h"

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
  return s;
}

// One line per placement: "value: 6 x affine_qr 48 (max condition 1.31)".
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

// Shared by the controller (GUI thread) and the run's job (engine thread).
struct LearnController::RunState {
  std::mutex mutex;
  std::condition_variable wake;
  std::vector<LearnStep> pending;  // steps not yet flushed to the GUI
  bool flush_posted = false;
  std::deque<SnapshotWork> work;  // run at the next snapshot
  qint64 last_step = 0;
  PauseToken pause;

  // End of every step (snapshot_every = 1): run the requested work, and hold here while paused
  // so that work requested during the pause runs at once.
  void at_snapshot(const TransformPlan& plan, const JobControl& job) {
    std::unique_lock<std::mutex> lock(mutex);
    for (;;) {
      while (!work.empty()) {
        SnapshotWork w = std::move(work.front());
        work.pop_front();
        const qint64 step = last_step;
        lock.unlock();
        w(plan, step, job);  // reports its own errors; Cancelled ends the run
        lock.lock();
      }
      if (!pause.paused() || job.cancel.cancelled()) return;
      wake.wait_for(lock, std::chrono::milliseconds(50));
    }
  }
};

LearnController::LearnController(EngineHost* host, ModelSession* session, QObject* parent)
    : QObject(parent), host_(host), session_(session), temp_(std::make_shared<QTemporaryDir>()) {
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

quint64 LearnController::start(const LearnRequest& request) {
  auto model = session_->model();
  auto tokenizer = session_->tokenizer();
  if (!model || !tokenizer) return 0;
  return startWork(request, [request, model, tokenizer](const LearnControl& control) {
    const LearnSettings s = request.settings(model->device());
    RunResult out;
    std::optional<CalibrationSet> calib;
    if (find_method(s.method).learned) {
      calib = load_learning_calibration(request, *tokenizer);
      out.calibration = calib->describe();
    }
    out.result = obtain_plan(*model, calib ? &*calib : nullptr, s, control);
    return out;
  });
}

quint64 LearnController::startWork(const LearnRequest& request, RunWork work) {
  if (running()) return 0;
  request_ = request;
  curve_.clear();
  clearPlan();
  state_ = std::make_shared<RunState>();
  auto state = state_;
  const QString name = QString("learned-%1-%2").arg(request.method).arg(++runs_);
  const std::string prefix = temp_->isValid() ? temp_->filePath(name).toStdString() : std::string();
  auto temp = temp_;  // keeps the folder while the job runs
  QPointer<LearnController> self(this);
  job_ = host_->submit("learn", [self, state, temp, prefix, work](const JobControl& job) {
    LearnControl control;
    control.job = job;
    control.pause = state->pause;
    control.on_step = [self, state](const LearnEvent& e) {
      std::lock_guard<std::mutex> lock(state->mutex);
      state->pending.push_back(to_step(e));
      state->last_step = e.step;
      if (state->flush_posted || !self) return;
      state->flush_posted = true;  // one flush in the GUI's queue at a time
      EngineHost::post(self, [self] { self->flush(false); });
    };
    control.snapshot_every = 1;
    control.on_snapshot = [state, job](const TransformPlan& plan) { state->at_snapshot(plan, job); };
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
    for (const auto& [n, v] : r.conditions) o.conditions.emplace_back(QString::fromStdString(n), v);
    o.transforms = describe_plan(*plan, nullptr);
    if (!plan->empty() && !prefix.empty()) {
      save_transforms(prefix, *plan);  // the explorer reads learned plans from disk
      o.plan_prefix = QString::fromStdString(prefix);
    }
    EngineHost::post(self, [self, o, plan] { self->finish(o, plan); });
  });
  Q_EMIT started(job_, request.steps.value_or(0));
  return job_;
}

void LearnController::clearPlan() {
  outcome_ = LearnOutcome();
  plan_.reset();
}

void LearnController::pause() {
  if (!state_ || !running()) return;
  state_->pause.pause();
  Q_EMIT pausedChanged(true);
}

void LearnController::resume() {
  if (!state_) return;
  state_->pause.resume();
  state_->wake.notify_all();
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
  {
    std::lock_guard<std::mutex> lock(state_->mutex);
    state_->work.push_back(std::move(work));
  }
  state_->wake.notify_all();
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
  outcome_ = outcome;
  plan_ = std::move(plan);
  ended();
  Q_EMIT finished(outcome_);
}

void LearnController::ended() {
  job_ = 0;
  if (state_) {
    state_->pause.resume();
    state_->wake.notify_all();
  }
}

quint64 LearnController::load(const QString& prefix) {
  auto model = session_->model();
  if (!model) return 0;
  QPointer<LearnController> self(this);
  return load_job_ = host_->submit("load-transforms", [self, model, prefix](const JobControl& job) {
    const std::string p = prefix.toStdString();
    auto plan = std::make_shared<TransformPlan>(load_transforms(p));
    check_plan_fits(*plan, model->config(), p + ".json");
    job.cancel.check();
    LearnOutcome o;
    o.method = "loaded";
    o.loaded = true;
    o.transforms = describe_plan(*plan, &o.conditions);
    o.plan_prefix = plan->empty() ? QString() : prefix;
    EngineHost::post(self, [self, o, plan] {
      self->outcome_ = o;
      self->plan_ = plan;
      Q_EMIT self->loaded(o);
    });
  });
}

quint64 LearnController::save(const QString& prefix) {
  if (!plan_) return 0;
  auto plan = plan_;
  QPointer<LearnController> self(this);
  return save_job_ = host_->submit("save-transforms", [self, plan, prefix](const JobControl&) {
    save_transforms(prefix.toStdString(), *plan);
    EngineHost::post(self, [self, prefix] { Q_EMIT self->saved(prefix); });
  });
}

}  // namespace latmix::studio
