#pragma once
// The Compare panel, two pages over the same tasks, limit and window (the top row):
//  - Methods (`latmix compare`, compare_methods_page.h): several method presets on the same
//    calibration sequences and format, with the report.
//  - Quantization specs (`latmix eval --quant`, compare_specs_page.h): the open model in full
//    precision and under several quantization specs.
// The panel holds the shared row and the page switch; what each page does is its own.

#include <QWidget>

#include <vector>

#include "compare_methods_page.h"
#include "compare_specs_page.h"
#include "latmix/api/evaluate.h"
#include "learn_request.h"

class QComboBox;
class QLineEdit;
class QSpinBox;
class QStackedWidget;

namespace latmix::studio {

class StudioContext;

class ComparePanel : public QWidget {
  Q_OBJECT

 public:
  explicit ComparePanel(StudioContext* context, QWidget* parent = nullptr);
  ~ComparePanel() override;

  CompareMethodsPage* methodsPage() const { return methods_; }
  CompareSpecsPage* specsPage() const { return specs_; }

  // -- quantization specs (latmix eval --quant)
  /// Starts the spec comparison with the current settings; returns the job id (0 without a model).
  quint64 run() { return specs_->run(); }
  const std::vector<CompareColumn>& columns() const { return specs_->columns(); }
  /// Sets the inputs (tasks, one spec per line, limit) and shows the spec page.
  void configure(const QString& tasks, const QString& specs, int limit);
  /// The spec table as Markdown (with the settings), for the report file.
  QString markdown() const { return specs_->markdown(); }
  /// Every cell of the spec table, one per line (tests).
  QString tableText() const { return specs_->tableText(); }
  /// The line under the spec table: the metric, and a warning for small samples (tests).
  QString specsNote() const { return specs_->specsNote(); }
  /// The spec page as the engine's request (`latmix eval --quant` for each spec): what run() runs.
  api::EvaluateRequest specsRequest() const { return specs_->specsRequest(); }

  // -- methods (latmix compare)
  /// Sets the methods comparison's inputs and shows its page. `learning` supplies the format,
  /// calibration and learning options shared by every method (its method field is ignored).
  void configureMethods(const QStringList& methods, const QString& tasks, int limit, int eval_seqlen,
                        const LearnRequest& learning);
  /// Starts the methods comparison on the engine thread; returns the job id (0: no model / methods).
  quint64 runMethods() { return methods_->runMethods(); }
  void cancelMethods() { methods_->cancelMethods(); }
  /// The last methods comparison (null before one finished).
  const latmix::Comparison* comparison() const { return methods_->comparison(); }
  /// Writes report.md, report.json and the plots of the last comparison into `dir` (engine thread).
  quint64 saveReport(const QString& dir) { return methods_->saveReport(dir); }
  /// The methods page as the engine's request (latmix/api/evaluate.h): what runMethods() runs.
  api::CompareRequest methodsRequest() const { return methods_->methodsRequest(); }
  /// The equivalent `latmix compare` command line.
  QString methodsCliCommand() const { return methods_->methodsCliCommand(); }
  QStringList checkedMethods() const { return methods_->checkedMethods(); }
  /// The methods table's cells, one per line (tests).
  QString methodsTableText() const { return methods_->methodsTableText(); }
  /// Another model is open: both tables are cleared (their figures were the old model's) and a
  /// comparison still running for it is cancelled; its result, if it comes anyway, is dropped.
  void modelChanged();

 Q_SIGNALS:
  void finished();
  /// The spec comparison failed (the message is shown in its table).
  void failed(const QString& message);
  void methodsFinished();
  void methodsCancelled();
  void reportSaved(const QStringList& files);

 private:
  QComboBox* mode_ = nullptr;
  QStackedWidget* pages_ = nullptr;
  QLineEdit* tasks_ = nullptr;
  QSpinBox* limit_ = nullptr;
  QSpinBox* seqlen_ = nullptr;
  CompareMethodsPage* methods_ = nullptr;
  CompareSpecsPage* specs_ = nullptr;
};

}  // namespace latmix::studio
