#pragma once
// A studio session on disk (File > Save session / Open session, and the crash-recovery copy):
// NAME.latmix-session (JSON: the model, the Learn tab's request, the open tab, every run of the
// history with its outcome, provenance and loss curve) beside NAME.plans/ (one PREFIX.json +
// PREFIX.safetensors per run, copied from the session's private folder). Plain values and Qt
// files only: no engine call, so that it can run on any thread.

#include <QJsonObject>
#include <QString>

#include <vector>

#include "learn_controller.h"
#include "learn_request.h"

namespace latmix::studio {

struct StudioSession {
  QString model_path;
  LearnRequest learn;         ///< the Learn tab's controls
  int tab = 0;                ///< the tab that was open
  std::vector<LearnRun> runs; ///< plan_prefix: where each run's plan is (absolute)
  QString current_model;      ///< the current plan: run `current_run` of `current_model` (0: none)
  int current_run = 0;
};

/// A learn request in a session: the engine's JSON (api::to_json). Reading also takes the Learn
/// tab's fields of sessions written before it; a malformed request is a latmix::UsageError.
QJsonObject session_json(const LearnRequest& r);
LearnRequest learn_request_from_session_json(const QJsonObject& o);
QJsonObject to_json(const LearnRun& run, const QString& plan_file);
LearnRun learn_run_from_json(const QJsonObject& o);

/// Writes `session` to `path` (atomically: a temp file, then a rename), copying every run's plan
/// files into PATH's stem + ".plans/" (files already there with the same size are kept). The
/// runs in the file point at those copies. Returns "" or the error, naming the file.
QString save_session(const StudioSession& session, const QString& path);

/// Reads a session written by save_session(); `error` says why it failed (naming the file and
/// what was expected), and then the result is empty. Runs whose plan files are gone are dropped
/// with a line in `error`'s notes (`notes`).
StudioSession load_session(const QString& path, QString* error, QStringList* notes);

/// Where the crash-recovery copy of the last session lives (AppDataLocation/recovery/).
QString recovery_session_path();

}  // namespace latmix::studio
