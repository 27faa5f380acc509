#pragma once
// The Analyze tab (issue #21): the LATMiX paper's Figure 2 on the open model, as `latmix analyze`
// computes it (latmix/mx_analysis.h). Choose the layer (one or all), capture points, MX format,
// calibration text and sequences and the learned transforms' fit; Run captures the activations and
// measures the relative MX error against the block size for no transform, the full and block
// Hadamards, a learned rotation and a learned affine map, on the engine thread with progress, ETA
// and Cancel. The result shows, per (capture point, layer), the error-vs-block-size plot, the
// per-block error across the layer's blocks, and a table of the transforms' condition numbers and
// block magnitudes beside the error; switching what is shown never reruns anything. "Save
// report..." writes the report `latmix analyze --out` writes (report.md, report.json, PNG plots) on
// this computer. For a model open on an engine, Run runs the task "analyze" there (the text is the
// server's path) and the result is drawn the same way.

#include <QElapsedTimer>
#include <QString>
#include <QStringList>
#include <QWidget>

#include <memory>
#include <vector>

#include "latmix/api/analyze.h"
#include "latmix/calib_data.h"
#include "latmix/mx_analysis.h"

class QCheckBox;
class QComboBox;
class QDoubleSpinBox;
class QLabel;
class QLineEdit;
class QProgressBar;
class QPushButton;
class QSpinBox;
class QTableWidget;

namespace latmix::studio {

class EngineHost;
class ModelSession;
class StudioContext;
class MxErrorPlot;
class BlockErrorPlot;

class AnalyzePanel : public QWidget {
  Q_OBJECT

 public:
  explicit AnalyzePanel(StudioContext* context, QWidget* parent = nullptr);
  ~AnalyzePanel() override;

  /// The settings the controls show, and setting them (tests, scripted runs).
  latmix::api::AnalyzeRequest request() const;
  void setRequest(const latmix::api::AnalyzeRequest& request);
  /// Starts the analysis with the current settings on the engine thread; returns the job id, or 0
  /// when it cannot start (no model, bad settings, one already running: the reason is shown in
  /// the panel and failed() says it).
  quint64 run();
  /// Cancels the analysis in progress (it stops at its next step; cancelled() follows).
  void cancel();
  bool running() const { return job_ != 0; }
  /// Writes the report of the result shown into `dir` (engine thread): write_mx_analysis_report.
  /// Returns the job id (0: no result). reportSaved() or reportFailed() follows.
  quint64 saveReport(const QString& dir);

  /// The last result (null before one finished, and after another model was opened).
  const latmix::MxAnalysis* analysis() const { return analysis_.get(); }
  /// Which (capture point, layer) of the result is shown: its index in analysis()->layers.
  int shownResult() const;
  void showResult(int index);
  /// The block size the table is shown for.
  int tableBlock() const;
  void setTableBlock(int block);
  const MxErrorPlot* errorPlot() const { return error_plot_; }
  const BlockErrorPlot* blockPlot() const { return block_plot_; }
  MxErrorPlot* errorPlot() { return error_plot_; }
  /// The table's cells, row by row (tab-separated, one row a line; the header first).
  QString tableText() const;
  /// The line under the table: why an affine map can beat a rotation, with this result's numbers.
  QString explanationText() const;
  QString statusText() const;
  /// The progress line ("fit 3/16 — ETA 12 s"); "" when nothing runs.
  QString progressText() const;
  /// The equivalent `latmix analyze` command.
  QString cliCommand() const;
  /// Another model is open: a running analysis is cancelled, the result cleared (it was the old
  /// model's) and the layer list follows the new model.
  void modelChanged();

 Q_SIGNALS:
  void finished();
  void failed(const QString& message);
  void cancelled();
  void reportSaved(const QStringList& files);
  void reportFailed(const QString& message);

 private:
  void buildControls();
  QWidget* buildResults();
  void showAnalysis(std::shared_ptr<const latmix::MxAnalysis> analysis);
  void ended(const QString& status);
  void showStatus(const QString& text, bool error);
  void updateResult();
  void updateTable();
  void onProgress(quint64 id, const QString& stage, qint64 done, qint64 total);

  quint64 runOnEngine(latmix::api::AnalyzeRequest request);

  StudioContext* context_;
  EngineHost* host_;
  ModelSession* session_;
  QLineEdit* data_ = nullptr;
  QSpinBox* samples_ = nullptr;
  QSpinBox* seqlen_ = nullptr;
  QComboBox* sampling_ = nullptr;
  QSpinBox* seed_ = nullptr;
  QComboBox* layer_ = nullptr;
  std::vector<QCheckBox*> points_;
  QComboBox* format_ = nullptr;
  QComboBox* scale_ = nullptr;
  QComboBox* round_ = nullptr;
  QLineEdit* blocks_ = nullptr;
  QSpinBox* detail_ = nullptr;
  QSpinBox* steps_ = nullptr;
  QDoubleSpinBox* lr_ = nullptr;
  QDoubleSpinBox* holdout_ = nullptr;
  QComboBox* affine_ = nullptr;
  QSpinBox* batch_ = nullptr;
  QPushButton* run_ = nullptr;
  QPushButton* cancel_ = nullptr;
  QPushButton* save_ = nullptr;
  QProgressBar* progress_ = nullptr;
  QLabel* status_ = nullptr;
  QLineEdit* cli_ = nullptr;
  QComboBox* result_ = nullptr;
  QComboBox* table_block_ = nullptr;
  MxErrorPlot* error_plot_ = nullptr;
  BlockErrorPlot* block_plot_ = nullptr;
  QTableWidget* table_ = nullptr;
  QLabel* explanation_ = nullptr;
  quint64 job_ = 0;
  quint64 report_job_ = 0;
  QString stage_;  // the stage the ETA is estimated for
  qint64 stage_done_ = 0;
  QElapsedTimer stage_clock_;
  std::shared_ptr<const latmix::MxAnalysis> analysis_;
};

}  // namespace latmix::studio
