#pragma once
// The Export screen (issue #9, item 5): one click writes the open model with the plan learned or
// loaded in the Learn tab (none: rtn, no transforms) as compressed-tensors MXFP4 in a verified
// .zip bundle (latmix export --as compressed-tensors --zip); Options shows every choice of
// `latmix export`. The panel fills an api::ExportRequest from its widgets (each carries its
// option's name) and runs api::run_export() on the EngineHost (latmix/api/export.h: the plan, a
// missing one learned, calibration, staging, export, bundle, verification, cleanup), with progress
// in bytes and an ETA; Cancel leaves nothing behind, and the summary says so after looking.
// "Verify bundle..." runs api::run_verify() on an existing folder or .zip (latmix verify).
// For a model open on an engine (export_remote.cpp) the export and the verification run there
// (tasks "export", "verify"): the folder and the bundle are the server's paths, and "Download
// bundle..." copies the .zip just written there to a file here.

#include <QElapsedTimer>
#include <QString>
#include <QStringList>
#include <QWidget>

#include <optional>

#include "latmix/api/export.h"
#include "learn_controller.h"
#include "learn_request.h"

class QAction;
class QCheckBox;
class QComboBox;
class QGroupBox;
class QLabel;
class QLineEdit;
class QProgressBar;
class QPushButton;
class QSpinBox;

namespace latmix::studio {

class EngineHost;
class ModelSession;
class StudioContext;

/// What an export or a verification found, for the summary.
struct ExportOutcome {
  enum class Status { Written, Failed, Cancelled, Verified };
  Status status = Status::Failed;
  QString path;          ///< the export (folder or .zip) or the verified path
  QString kind;          ///< the export kind
  bool zipped = false;
  qint64 bytes = 0;      ///< size of the exported files (before zipping)
  qint64 zip_bytes = 0;  ///< size of the .zip
  int files = 0;
  double seconds = 0;
  QString quantization;       ///< QuantReport::describe()
  QString verification;       ///< ExportVerification::describe()
  bool verified = false;      ///< every check passed
  QString verdict;            ///< Verified: api::verdict() ("VERIFICATION FAILED", "NOT VERIFIED (...)")
  QStringList notes;
  QString message;            ///< the error (Failed)
  QStringList leftovers;      ///< after a cancel or failure: what the export left in the target's folder (none!)
  bool target_untouched = true;  ///< after a cancel or failure: the target is as it was
  bool on_engine = false;        ///< written (or verified) on the engine's server: `path` is the server's
};

class ExportPanel : public QWidget {
  Q_OBJECT

 public:
  /// Follows the current plan of the context's learn controller, and takes the default format
  /// from the Learn tab's request (StudioContext::learnRequest()).
  explicit ExportPanel(StudioContext* context, QWidget* parent = nullptr);
  ~ExportPanel() override;

  /// The request the controls describe, with the current plan and a free output name.
  api::ExportRequest request() const;
  /// The same export from the command line (api::export_command_line(), shell-quoted).
  static QString cliCommand(const api::ExportRequest& r);
  /// Starts an export with the controls (the one-click Export); returns the job id (0: no model or busy).
  quint64 startExport();
  /// Starts an export of `r`; returns the job id (0: no model, or one runs).
  quint64 startExport(const api::ExportRequest& r);
  /// Verifies an export folder or .zip bundle (tag "verify-export"); returns the job id.
  quint64 verify(const QString& path);
  void cancel();
  bool running() const { return job_ != 0; }
  /// The .zip bundle of the last export, written on the engine by this window, can be downloaded.
  bool canDownload() const;
  /// Downloads that bundle into `local` (tag "download": progress in bytes, Cancel; the file appears
  /// whole or not at all); downloaded() or downloadFailed() follows. Returns the job id (0: nothing to download).
  quint64 downloadBundle(const QString& local);

  /// Uses this learned / loaded plan for the next exports (normally tracked from the Learn tab).
  void setPlan(const LearnOutcome& plan);
  void clearPlan();
  /// The folder the output goes into, and the export options shown in the Options area.
  void setOutputFolder(const QString& dir);
  void setKind(const QString& kind);
  void setZip(bool zip);
  /// The quantization spec; "" follows the plan's format (the Learn tab's without a plan).
  void setQuant(const QString& spec);
  /// Call when the open model changes (a plan of another model does not fit).
  void modelChanged();
  const ExportOutcome& lastOutcome() const { return last_; }
  /// The panel's summary (rich text): what the last export or verification did, or why it failed.
  QString summaryText() const;
  QAction* exportAction() const { return export_action_; }
  QAction* verifyAction() const { return verify_action_; }

 Q_SIGNALS:
  /// One line for the status bar while an export runs: stage, bytes, ETA ("" when idle).
  void statusText(const QString& text);
  void exported(const latmix::studio::ExportOutcome& outcome);
  void exportFailed(const latmix::studio::ExportOutcome& outcome);
  void exportCancelled(const latmix::studio::ExportOutcome& outcome);
  void verified(const latmix::studio::ExportOutcome& outcome);
  void downloaded(const QString& local);
  void downloadFailed(const QString& message);

 private:
  void buildUi();
  void updatePlanText();
  void updateButtons();
  void updateCli();
  void onProgress(quint64 id, const QString& stage, qint64 done, qint64 total);
  void showOutcome(const ExportOutcome& o);
  void chooseFolder();
  void verifyDialog();
  QString outputName(const api::ExportRequest& r) const;
  void restoreSettings();
  void storeSettings() const;
  // export_remote.cpp: the same on the engine the model is open on.
  quint64 startExportOnEngine(api::ExportRequest r);
  quint64 verifyOnEngine(const QString& path);
  void chooseEngineFolder();
  void downloadDialog();
  void downloadEnded(const QString& local, const QString& message);

  StudioContext* context_;
  EngineHost* host_;
  ModelSession* session_;
  std::optional<LearnOutcome> plan_;
  quint64 job_ = 0;
  quint64 verify_job_ = 0;
  quint64 download_job_ = 0;
  QString other_folder_;           // the folder of the other side (this computer / the engine's server)
  bool folder_is_engine_ = false;  // folder_ shows a folder of the engine's server
  QString engine_bundle_;          // the .zip this window last exported on the engine (the server's path)
  ExportOutcome last_;
  QString written_html_;  // the summary of the last export written
  QElapsedTimer stage_clock_;
  QString stage_;
  qint64 stage_first_done_ = 0;

  QLabel* plan_text_ = nullptr;
  QLineEdit* folder_ = nullptr;
  QLabel* target_ = nullptr;
  QPushButton* export_ = nullptr;
  QPushButton* options_button_ = nullptr;
  QPushButton* verify_ = nullptr;
  QPushButton* cancel_ = nullptr;
  QPushButton* download_ = nullptr;
  QGroupBox* options_ = nullptr;
  QComboBox* kind_ = nullptr;
  QCheckBox* zip_ = nullptr;
  QComboBox* quant_ = nullptr;
  QLineEdit* method_ = nullptr;
  QLineEdit* name_ = nullptr;
  QCheckBox* overwrite_ = nullptr;
  QCheckBox* verify_check_ = nullptr;
  QLineEdit* verify_text_ = nullptr;
  QSpinBox* verify_seqlen_ = nullptr;
  QSpinBox* verify_windows_ = nullptr;
  QSpinBox* shard_ = nullptr;
  QLineEdit* calib_ = nullptr;
  QSpinBox* calib_samples_ = nullptr;
  QSpinBox* calib_seqlen_ = nullptr;
  QLineEdit* cli_ = nullptr;
  QProgressBar* progress_ = nullptr;
  QLabel* progress_text_ = nullptr;
  QLabel* summary_ = nullptr;
  QAction* export_action_ = nullptr;
  QAction* verify_action_ = nullptr;
};

/// The outcome of an export written (status Written, sizes, quantization, verification, notes).
void fill_written(ExportOutcome& o, const api::ExportResult& result);
/// A note the export gave as it went (a line the CLI prints on stderr), without its "note: ".
void add_note(ExportOutcome& o, const std::string& line);
/// The outcome of a verification (status Verified): what `verify` returns (in-process or on an
/// engine), or, when it throws, its message as the failed verification's verdict (as `latmix
/// verify` reports it). latmix::Cancelled passes through.
void fill_verified(ExportOutcome& o, const std::function<api::VerifyResult()>& verify);

/// "1.5 GB", "17.3 MB", "512 B".
QString format_bytes(qint64 bytes);

}  // namespace latmix::studio

Q_DECLARE_METATYPE(latmix::studio::ExportOutcome)
