#pragma once
// The Compare panel: evaluate the open model in full precision and under several quantization
// specs (the `latmix eval --quant` engine calls), side by side: one row per task metric, one column
// per spec, with the recovery (% of the FP figure) of each. Saves the table as Markdown or JSON.

#include <QWidget>

#include <vector>

#include "latmix/tasks.h"

class QLineEdit;
class QPlainTextEdit;
class QPushButton;
class QSpinBox;
class QTableWidget;

namespace latmix::studio {

class EngineHost;
class ModelSession;

/// The results of one configuration (FP or a quantization spec).
struct CompareColumn {
  QString spec;  ///< "FP" or a QuantSpec string
  std::vector<latmix::TaskResult> results;
};

class ComparePanel : public QWidget {
  Q_OBJECT

 public:
  ComparePanel(EngineHost* host, ModelSession* session, QWidget* parent = nullptr);
  /// Starts the comparison with the current settings; returns the job id (0 without a model).
  quint64 run();
  const std::vector<CompareColumn>& columns() const { return columns_; }
  /// Sets the inputs (tasks, one spec per line, limit); used by scripted runs and screenshots.
  void configure(const QString& tasks, const QString& specs, int limit);
  /// The table as Markdown (with the settings), for the report file.
  QString markdown() const;

 Q_SIGNALS:
  void finished();

 private:
  void showColumns(const std::vector<CompareColumn>& columns);
  void save();

  EngineHost* host_;
  ModelSession* session_;
  QLineEdit* tasks_ = nullptr;
  QPlainTextEdit* specs_ = nullptr;
  QSpinBox* limit_ = nullptr;
  QSpinBox* seqlen_ = nullptr;
  QPushButton* run_ = nullptr;
  QPushButton* save_ = nullptr;
  QTableWidget* table_ = nullptr;
  std::vector<CompareColumn> columns_;
  QString settings_text_;
};

}  // namespace latmix::studio
