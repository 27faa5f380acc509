#pragma once
// The Compare panel, two ways (the same tasks, limit and window for both):
//  - Methods (`latmix compare`): several method presets on the same calibration sequences and
//    format through run_comparison(): perplexity, zero-shot accuracy with recovery % of FP, the
//    share of the FP-to-RTN perplexity gap each method closes, per-layer activation SQNR and
//    wall times; "Save report..." writes report.md / report.json / PNG plots into a folder.
//  - Quantization specs (`latmix eval --quant`): the open model in full precision and under
//    several quantization specs, one column per spec with recovery %; saved as Markdown.

#include <QWidget>

#include <memory>
#include <vector>

#include "latmix/api/evaluate.h"
#include "latmix/tasks.h"
#include "learn_request.h"

class QCheckBox;
class QComboBox;
class QLabel;
class QLineEdit;
class QPlainTextEdit;
class QProgressBar;
class QPushButton;
class QSpinBox;
class QStackedWidget;
class QTableWidget;

namespace latmix {
struct Comparison;
}

namespace latmix::studio {

class EngineHost;
class ModelSession;
class LearnKnobs;

/// The results of one configuration (FP or a quantization spec).
struct CompareColumn {
  QString spec;  ///< "FP" or a QuantSpec string
  std::vector<latmix::TaskResult> results;
};

class ComparePanel : public QWidget {
  Q_OBJECT

 public:
  ComparePanel(EngineHost* host, ModelSession* session, QWidget* parent = nullptr);
  ~ComparePanel() override;

  // -- quantization specs (latmix eval --quant)
  /// Starts the spec comparison with the current settings; returns the job id (0 without a model).
  quint64 run();
  const std::vector<CompareColumn>& columns() const { return columns_; }
  /// Sets the inputs (tasks, one spec per line, limit) and shows the spec page.
  void configure(const QString& tasks, const QString& specs, int limit);
  /// The spec table as Markdown (with the settings), for the report file.
  QString markdown() const;
  /// Every cell of the spec table, one per line (tests).
  QString tableText() const;
  /// The line under the spec table: the metric, and a warning for small samples (tests).
  QString specsNote() const;

  // -- methods (latmix compare)
  /// Sets the methods comparison's inputs and shows its page. `learning` supplies the format,
  /// calibration and learning options shared by every method (its method field is ignored).
  void configureMethods(const QStringList& methods, const QString& tasks, int limit, int eval_seqlen,
                        const LearnRequest& learning);
  /// Starts the methods comparison on the engine thread; returns the job id (0: no model / methods).
  quint64 runMethods();
  void cancelMethods();
  /// The last methods comparison (null before one finished).
  const latmix::Comparison* comparison() const { return comparison_.get(); }
  /// Writes report.md, report.json and the plots of the last comparison into `dir` (engine thread).
  quint64 saveReport(const QString& dir);
  /// The methods page as the engine's request (latmix/api/evaluate.h): what runMethods() runs.
  api::CompareRequest methodsRequest() const;
  /// The spec page as the engine's request (`latmix eval --quant` for each spec): what run() runs.
  api::EvaluateRequest specsRequest() const;
  /// The equivalent `latmix compare` command line.
  QString methodsCliCommand() const;
  QStringList checkedMethods() const;
  /// Another model is open: both tables are cleared (their figures were the old model's) and a
  /// comparison still running for it is cancelled; its result, if it comes anyway, is dropped.
  void modelChanged();
  /// The methods table's cells, one per line (tests).
  QString methodsTableText() const;

 Q_SIGNALS:
  void finished();
  /// The spec comparison failed (the message is shown in its table).
  void failed(const QString& message);
  void methodsFinished();
  void methodsCancelled();
  void reportSaved(const QStringList& files);

 private:
  QWidget* buildMethodsPage();
  QWidget* buildSpecsPage();
  void showColumns(const std::vector<CompareColumn>& columns);
  void showFailure(const QString& message);
  void showComparison(std::shared_ptr<const latmix::Comparison> comparison);
  void save();
  void methodsEnded(const QString& message);

  EngineHost* host_;
  ModelSession* session_;
  QComboBox* mode_ = nullptr;
  QStackedWidget* pages_ = nullptr;
  QLineEdit* tasks_ = nullptr;
  QSpinBox* limit_ = nullptr;
  QSpinBox* seqlen_ = nullptr;
  // methods
  std::vector<QCheckBox*> method_boxes_;
  QComboBox* m_quant_ = nullptr;
  QComboBox* m_calib_ = nullptr;
  QSpinBox* m_samples_ = nullptr;
  QSpinBox* m_seqlen_ = nullptr;
  QSpinBox* m_steps_ = nullptr;
  QSpinBox* m_seed_ = nullptr;
  QLineEdit* m_batch_ = nullptr;  // empty: each method's default
  QLineEdit* m_lr_ = nullptr;
  LearnKnobs* m_knobs_ = nullptr;  // every other learning option (learn_knobs.h)
  QPushButton* m_run_ = nullptr;
  QPushButton* m_cancel_ = nullptr;
  QPushButton* m_save_ = nullptr;
  QProgressBar* m_progress_ = nullptr;
  QLabel* m_status_ = nullptr;
  QLineEdit* m_cli_ = nullptr;
  QTableWidget* m_table_ = nullptr;
  QTableWidget* m_sqnr_ = nullptr;
  quint64 methods_job_ = 0;
  quint64 specs_job_ = 0;
  quint64 report_job_ = 0;
  std::shared_ptr<const latmix::Comparison> comparison_;
  // specs
  QPlainTextEdit* specs_ = nullptr;
  QPushButton* run_ = nullptr;
  QPushButton* save_ = nullptr;
  QTableWidget* table_ = nullptr;
  QLabel* specs_note_ = nullptr;  // the metric, and a small-sample warning
  std::vector<CompareColumn> columns_;
  QString settings_text_;
};

}  // namespace latmix::studio
