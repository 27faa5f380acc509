// The Export tab for a model open on an engine (export_panel.h): the tasks "export" and "verify" run
// there, their paths are the server's, and "Download bundle..." copies the .zip just written there to
// this computer (RemoteEngine::download: an atomic file, progress in bytes, Cancel).
#include <QFileDialog>
#include <QFileInfo>
#include <QLabel>
#include <QPointer>
#include <QPushButton>

#include "engine_dialogs.h"
#include "engine_host.h"
#include "engine_link.h"
#include "export_panel.h"
#include "latmix/api/export.h"
#include "latmix/error.h"
#include "latmix/serve/client.h"
#include "main_window.h"
#include "model_session.h"
#include "settings_dialog.h"
#include "studio_context.h"

namespace latmix::studio {

quint64 ExportPanel::startExportOnEngine(api::ExportRequest r) {
  auto engine = session_->remote();
  EngineLink* link = context_->engineLink();
  // This computer's bundled sample is named as the server's own; other texts are the server's paths.
  r.verify_data = link->engineText(r.verify_data);
  r.calib = link->engineText(r.calib);
  summary_->setText("Exporting on the engine at " + QString::fromStdString(engine->url()).toHtmlEscaped() + " to " +
                    QString::fromStdString(r.out).toHtmlEscaped() + " (a path of the server) ...<br><code>" +
                    cliCommand(r).toHtmlEscaped() + "</code>");
  stage_.clear();
  EngineRunHooks hooks;
  hooks.gate = link->lossGate();
  QPointer<ExportPanel> self(this);
  job_ = host_->submit("export", [self, r, engine, hooks](const JobControl& job) mutable {
    ExportOutcome o;
    o.path = QString::fromStdString(r.out);
    o.kind = QString::fromStdString(r.as);
    o.zipped = r.zip;
    o.on_engine = true;
    hooks.on_note = [&o](const std::string& line) { add_note(o, line); };
    auto failed = [&](ExportOutcome::Status status, const QString& message) {
      o.status = status;
      o.message = message;
      EngineHost::post(self, [self, o] { self->showOutcome(o); });
    };
    try {
      const api::ExportResult res =
          api::export_result_from_json(run_on_engine(*engine, "export", api::to_json(r), job, hooks));
      fill_written(o, res);
      o.path = QString::fromStdString(res.path);  // the server's own (absolute) path
    } catch (const Cancelled&) {
      failed(ExportOutcome::Status::Cancelled, "cancelled");
      throw;
    } catch (const std::exception& e) {
      failed(ExportOutcome::Status::Failed, QString::fromUtf8(e.what()));
      throw;
    }
    EngineHost::post(self, [self, o] {
      self->engine_bundle_ = o.zipped ? o.path : QString();  // what Download bundle... fetches
      self->showOutcome(o);
    });
  });
  updateButtons();
  Q_EMIT statusText("export: starting on the engine");
  return job_;
}

quint64 ExportPanel::verifyOnEngine(const QString& path) {
  auto engine = session_->remote();
  api::VerifyRequest request;
  request.path = path.toStdString();
  summary_->setText("Verifying " + path.toHtmlEscaped() + " on the engine at " +
                    QString::fromStdString(engine->url()).toHtmlEscaped() + " ...");
  stage_.clear();
  EngineRunHooks hooks;
  hooks.gate = context_->engineLink()->lossGate();
  QPointer<ExportPanel> self(this);
  verify_job_ = host_->submit("verify-export", [self, path, request, engine, hooks](const JobControl& job) {
    ExportOutcome o;
    o.path = path;
    o.on_engine = true;
    fill_verified(o, [&] {  // as in-process: a failure is the verification's verdict
      const api::VerifyResult v =
          api::verify_result_from_json(run_on_engine(*engine, "verify", api::to_json(request), job, hooks));
      o.path = QString::fromStdString(v.path);
      return v;
    });
    EngineHost::post(self, [self, o] { self->showOutcome(o); });
  });
  updateButtons();
  return verify_job_;
}

void ExportPanel::chooseEngineFolder() {
  RemoteFileDialog dialog(host_, session_->remote(), this);
  dialog.setWindowTitle("Export into a folder of the engine's server");
  if (dialog.exec() != QDialog::Accepted || dialog.chosen().isEmpty()) return;
  folder_->setText(dialog.chosen());
}

bool ExportPanel::canDownload() const {
  return !engine_bundle_.isEmpty() && session_->remote();
}

void ExportPanel::downloadDialog() {
  const QString local = QFileDialog::getSaveFileName(this, "Download the bundle to",
                                                     last_folder("export") + "/" + QFileInfo(engine_bundle_).fileName(),
                                                     "Bundles (*.zip);;All files (*)");
  if (local.isEmpty()) return;
  remember_folder("export", local);
  downloadBundle(local);
}

quint64 ExportPanel::downloadBundle(const QString& local) {
  if (!canDownload() || running() || verify_job_ != 0 || download_job_ != 0) return 0;
  auto engine = session_->remote();
  const std::string path = engine_bundle_.toStdString();
  const std::string file = local.toStdString();
  stage_.clear();
  progress_text_->setText("download: starting");
  QPointer<ExportPanel> self(this);
  download_job_ = host_->submit("download", [self, engine, path, file, local](const JobControl& job) {
    engine->download(path, file, job);  // written whole, or not at all (AtomicFile)
    EngineHost::post(self, [self, local] { self->downloadEnded(local, {}); });
  });
  updateButtons();
  return download_job_;
}

void ExportPanel::downloadEnded(const QString& local, const QString& message) {
  if (download_job_ == 0) return;
  download_job_ = 0;
  updateButtons();
  const QString server = QString::fromStdString(session_->remote() ? session_->remote()->url() : std::string());
  if (message.isEmpty()) {
    summary_->setText(summary_->text() +
                      QString("<hr><b style='color:#1e8449'>Downloaded</b> %1 from %2 to <b>%3</b> (%4).")
                          .arg(engine_bundle_.toHtmlEscaped(), server.toHtmlEscaped(), local.toHtmlEscaped(),
                               format_bytes(QFileInfo(local).size())));
    Q_EMIT downloaded(local);
  } else {
    summary_->setText(summary_->text() + "<hr><b style='color:#c0392b'>Download failed:</b> " +
                      message.toHtmlEscaped());
    Q_EMIT downloadFailed(message);
  }
  Q_EMIT statusText("");
}

}  // namespace latmix::studio
