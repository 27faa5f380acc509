#pragma once
// The Compare tab's "quantization specs" page (compare_panel.h): the open model in full precision
// and under several quantization specs, one column per spec with recovery %, through
// api::run_evaluate (`latmix eval --quant SPEC` for each spec); saved as Markdown.

#include <QString>
#include <QWidget>

#include <vector>

#include "compare_common.h"
#include "latmix/api/evaluate.h"
#include "latmix/tasks.h"

class QLabel;
class QLineEdit;
class QPlainTextEdit;
class QSpinBox;
class QPushButton;
class QTableWidget;

namespace latmix::studio {

class EngineHost;
class EngineLink;
class ModelSession;

/// The results of one configuration (FP or a quantization spec).
struct CompareColumn {
  QString spec;  ///< "FP" or a QuantSpec string
  std::vector<latmix::TaskResult> results;
};

class CompareSpecsPage : public QWidget {
  Q_OBJECT

 public:
  /// For a model open on an engine (session->remote()), run() runs the task "evaluate" there (`link`
  /// names the server's texts).
  CompareSpecsPage(EngineHost* host, ModelSession* session, EngineLink* link, CompareEvaluation eval,
                   QWidget* parent = nullptr);

  /// The page as the engine's request: what run() runs.
  api::EvaluateRequest specsRequest() const;
  /// Starts the comparison; returns the job id (0 without a model).
  quint64 run();
  void setSpecs(const QString& specs);
  const std::vector<CompareColumn>& columns() const { return columns_; }
  QString markdown() const;
  QString tableText() const;
  QString specsNote() const;
  /// Another model is open: the table is cleared and a run for the old one cancelled.
  void modelChanged();

 Q_SIGNALS:
  void finished();
  void failed(const QString& message);

 private:
  void showColumns(const std::vector<CompareColumn>& columns);
  void showFailure(const QString& message);
  void save();
  quint64 runOnEngine(latmix::api::EvaluateRequest request);

  EngineHost* host_;
  ModelSession* session_;
  EngineLink* link_;
  CompareEvaluation eval_;
  QPlainTextEdit* specs_ = nullptr;
  // GPTQ's calibration: latmix eval --calib, --calib-samples, --calib-seqlen (0: the default).
  QLineEdit* calib_ = nullptr;
  QSpinBox* calib_samples_ = nullptr;
  QSpinBox* calib_seqlen_ = nullptr;
  QPushButton* run_ = nullptr;
  QPushButton* save_ = nullptr;
  QTableWidget* table_ = nullptr;
  QLabel* specs_note_ = nullptr;  // the metric, and a small-sample warning
  std::vector<CompareColumn> columns_;
  QString settings_text_;
  quint64 specs_job_ = 0;
};

}  // namespace latmix::studio
