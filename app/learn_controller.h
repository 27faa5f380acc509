#pragma once
// LearnController: one learning run at a time on the EngineHost (obtain_plan with a LearnControl),
// and loading / saving transforms. Steps come back to the GUI thread as LearnStep values in
// batches, at most ~30 per second however fast the learner is: the engine thread appends to a
// buffer and posts one flush, and only when none is pending; the flush waits out the rest of its
// 33 ms slot before it takes the buffer. Nothing here touches a tensor on the GUI thread: the
// learned plan is only held and handed back to engine jobs.

#include <QElapsedTimer>
#include <QObject>
#include <QString>
#include <QStringList>

#include <functional>
#include <limits>
#include <memory>
#include <optional>
#include <utility>
#include <vector>

#include "engine_link.h"
#include "learn_request.h"

class QTemporaryDir;

namespace latmix {
struct TransformPlan;
struct JobControl;
}  // namespace latmix

namespace latmix::studio {

class EngineHost;
class EngineLink;
class ModelSession;

/// One learning step (LearnEvent as Qt values).
struct LearnStep {
  qint64 step = 0, total = 0, layer = -1;
  double loss = 0;
  std::vector<std::pair<QString, double>> terms;  ///< "kl", "ce", "mse", "reg"
  double lr = 0, grad_norm = 0, seconds = 0, eta = 0;
  std::optional<double> validation;  ///< the held-out loss measured after this step, when it was
};

/// What a finished run (or a loaded transforms file) produced, for the summary.
struct LearnOutcome {
  QString method;
  QString quant;          ///< the spec of the run (canonical)
  QString settings_json;  ///< LearnSettings::to_json()
  QString calibration;    ///< CalibrationSet::describe() ("" without)
  bool learned = false;   ///< a learned preset (it has a curve)
  bool loaded = false;    ///< read by Load transforms, not learned here
  qint64 steps = 0;
  double first_loss = 0, last_loss = 0, seconds = 0;
  std::vector<std::pair<QString, double>> conditions;  ///< condition numbers of the learned transforms
  QStringList transforms;  ///< one line per placement: "residual: affine_lu 288 (condition 1.8)"
  QString plan_prefix;     ///< the plan on disk (a private copy, or the loaded file); "" when the plan is empty
  // Provenance (issue 17, Majors 2 and 3): what the plan is, whatever the Learn tab shows now.
  QString model_path;    ///< the model it was learned on (loaded: checked against)
  QString model_digest;  ///< model_fingerprint().model_digest of that model ("" when unknown)
  QString saved_prefix;  ///< where Save transforms wrote it ("" = not saved; loaded files count as saved)
  bool in_session = false;  ///< written with File > Save session (or read from one)
  QStringList notes;     ///< e.g. "carries no model fingerprint", settings that differ
  int run = 0;           ///< its number in the model's run history (0: not a run of this session)
  QString finished_at;   ///< ISO 8601, local time
  // Validation (MethodResult's fields; docs/methods.md, "Never worse than the start").
  qint64 validation_samples = 0;  ///< held-out sequences (0: no validation)
  /// (step, held-out loss); step 0 (or a resumed run's first step) is the initialization.
  std::vector<std::pair<qint64, double>> validation_curve;
  qint64 best_step = -1;          ///< the step whose plan is the result (-1: no validation)
  bool stopped_early = false;
  QString validation_note;        ///< best step, early stop, "learning added nothing", deployed check
  /// The deployed check's held-out loss (plan folded, GPTQ weights) of the start and of the
  /// result; NaN when not measured.
  double deployed_start = std::numeric_limits<double>::quiet_NaN();
  double deployed_result = std::numeric_limits<double>::quiet_NaN();
  /// Whether the loss fell (the last step's loss below the first's).
  bool lossFell() const { return last_loss < first_loss; }
};

/// One finished run of the history: its outcome (with provenance) and its loss curve.
struct LearnRun {
  LearnOutcome outcome;
  LearnRequest request;
  std::vector<LearnStep> curve;
};

class LearnController : public QObject {
  Q_OBJECT

 public:
  /// What a caller runs on the learning thread with the latest snapshot of the plan.
  using SnapshotWork =
      std::function<void(const latmix::TransformPlan& plan, qint64 step, const latmix::JobControl& job)>;

  LearnController(EngineHost* host, ModelSession* session, QObject* parent = nullptr);
  ~LearnController() override;

  /// Starts a run (tag "learn"): calibration text, then obtain_plan(); returns its job id, or 0
  /// without a model or while one runs. For a model open on an engine, the task "learn" runs
  /// there (its "step" events feed the curve; pause / resume / cancel are the remote job's; the
  /// transforms are written on the server under engine_learn_prefix()).
  /// `nproc`: on an engine, the processes that learn together on its host (the job's "nproc", as
  /// `latmix --engine URL learn --nproc N`); ignored in this process.
  quint64 start(const LearnRequest& request, int nproc = 1);

  /// What a run computes on the engine thread with the controller's LearnControl (its on_step,
  /// pause token and snapshots feed this controller); `calibration` describes the data it used.
  struct RunResult {
    latmix::MethodResult result;
    std::string calibration;
    /// Learned on an engine: the transforms file's prefix there (the plan's tensors stay there;
    /// the outcome names this prefix, on the server).
    std::string engine_prefix;
  };
  using RunWork = std::function<RunResult(const latmix::LearnControl& control)>;
  /// start() with another computation in place of obtain_plan (the same events, pause, cancel and
  /// outcome; e.g. a scripted learner in tests). `request` is kept as request().
  quint64 startWork(const LearnRequest& request, RunWork work);
  /// Follows a learn job already on the connected engine, submitted by anyone (the CLI, another
  /// studio, this one before a restart): the curve from its first step, then live; pause, resume and
  /// cancel act on that job, and its transforms (request.out, on the server) become the plan when it
  /// ends. `request` is the job's (GET /v1/jobs); its model must be the one open on the engine
  /// (MainWindow checks). Returns the job id, or 0 without a model on an engine or while a run runs.
  quint64 attach(const QString& job_id, const LearnRequest& request);
  /// Where a run on an engine maps this computer's bundled sample to the server's (StudioContext sets it).
  void setEngineLink(EngineLink* link);
  void pause();
  void resume();
  void cancel();
  bool running() const { return job_ != 0; }
  bool paused() const;
  quint64 jobId() const { return job_; }

  /// Runs `work` on the learning thread with the current transforms: after the step in progress,
  /// or at once while paused (the run waits meanwhile). False when no step has completed yet.
  bool withSnapshot(SnapshotWork work);
  /// What snapshotOnEngine() hands back, on a thread of its own: the step the snapshot was taken
  /// after and the statistics result's JSON, or an error message ("" on success).
  using EngineSnapshotDone =
      std::function<void(qint64 step, const nlohmann::json& result, const std::string& error)>;
  /// withSnapshot() for a run on an engine: asks its job for the statistics of `statistics` (a
  /// statistics request; the job's model and transforms are used) at its next step end (at once
  /// while paused); `done` gets the result. False when no run on an engine has completed a step.
  bool snapshotOnEngine(const nlohmann::json& statistics, EngineSnapshotDone done);
  /// Reads PREFIX.json + PREFIX.safetensors (engine thread), checks the model fingerprint they
  /// carry (a plan of another model fails) and their widths against the open model; on success
  /// the plan becomes the current one (loaded()) with the method and format it records.
  /// Returns the job id.
  quint64 load(const QString& prefix);
  /// Writes the current plan to PREFIX.json + PREFIX.safetensors with the model's fingerprint and
  /// the run's settings (method, format) as its metadata (saved()). Returns the job id.
  quint64 save(const QString& prefix);

  const std::vector<LearnStep>& curve() const { return curve_; }
  /// The current plan's outcome: the last run that finished, a loaded file, or a run picked
  /// from the history. A run that is cancelled or fails leaves it as it was.
  const LearnOutcome& outcome() const { return outcome_; }
  bool hasPlan() const { return !outcome_.plan_prefix.isEmpty(); }
  /// Forgets the current plan (e.g. when another model is opened: it would not fit). The run
  /// history keeps it.
  void clearPlan();

  // -- run history (issue 17, Major 3): every finished run, per model, with its curve.
  /// The runs learned on `model_path`, oldest first.
  std::vector<const LearnRun*> runs(const QString& model_path) const;
  const std::vector<LearnRun>& allRuns() const { return runs_; }
  /// Makes a run of the history (by model and number) the current plan; false if there is none.
  bool selectRun(const QString& model_path, int run);
  /// Adds runs read from a session (their plans on disk at plan_prefix); numbers are kept.
  void restoreRuns(std::vector<LearnRun> runs);
  /// Runs whose plan was never saved, by Save transforms or in a session (lost at quit).
  int unsavedRuns() const;
  /// Every run is in the session just written.
  void markSessionSaved();
  /// Forgets every run (a session is opened in its place).
  void clearHistory();
  const LearnRequest& request() const { return request_; }

 Q_SIGNALS:
  void started(quint64 id, qint64 total_steps);
  /// New steps were appended to curve(): indices [first, first + count), in step order.
  void stepsArrived(int first, int count);
  void pausedChanged(bool paused);
  /// After pause(): the run holds at the end of `step` (every step up to it is in curve(), none
  /// comes until resume()); once per pause. Work queued with withSnapshot() runs there.
  void pauseHeld(qint64 step);
  void finished(const latmix::studio::LearnOutcome& outcome);
  void cancelled();
  void failed(const QString& message);
  void loaded(const latmix::studio::LearnOutcome& outcome);
  void saved(const QString& prefix);
  void saveFailed(const QString& message);
  /// The history changed (a run finished, was saved, or runs were restored).
  void historyChanged();
  /// Another run of the history became the current plan.
  void runSelected(const latmix::studio::LearnOutcome& outcome);

 private:
  struct RunState;
  quint64 startOnEngine(const LearnRequest& request, int nproc);
  /// What a run on an engine does on the engine thread: submit and follow, or follow only.
  using EngineFollow = std::function<nlohmann::json(const latmix::serve::RemoteEngine& engine,
                                                    const latmix::JobControl& job, const EngineRunHooks& hooks)>;
  quint64 followOnEngine(const LearnRequest& request, const std::string& engine_prefix, EngineFollow follow);
  void remoteControl(bool pause);
  void flush(bool final);
  void finish(const LearnOutcome& outcome, std::shared_ptr<latmix::TransformPlan> plan);
  void ended();

  EngineHost* host_;
  ModelSession* session_;
  EngineLink* link_ = nullptr;
  std::shared_ptr<QTemporaryDir> temp_;  // private copies of learned plans (shared with jobs)
  std::shared_ptr<RunState> state_;
  quint64 job_ = 0;
  quint64 load_job_ = 0, save_job_ = 0;
  int run_counter_ = 0;  // names the private copies
  LearnRequest request_;
  std::vector<LearnStep> curve_;
  LearnOutcome outcome_;
  std::shared_ptr<latmix::TransformPlan> plan_;  // in memory for the last finished run only
  std::vector<LearnRun> runs_;
  QElapsedTimer clock_;
  qint64 last_flush_ms_ = -1000;
  bool flush_timer_armed_ = false;
};

}  // namespace latmix::studio

Q_DECLARE_METATYPE(latmix::studio::LearnOutcome)
