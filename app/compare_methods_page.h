#pragma once
// The Compare tab's "methods" page (compare_panel.h): several method presets on the same
// calibration sequences and format through api::run_compare (`latmix compare`): perplexity,
// zero-shot accuracy with recovery % of FP, the share of the FP-to-RTN perplexity gap each method
// closes, per-layer activation SQNR and wall times; "Save report..." writes report.md,
// report.json and PNG plots into a folder.

#include <QStringList>
#include <QWidget>

#include <memory>
#include <vector>

#include "compare_common.h"
#include "latmix/api/evaluate.h"
#include "learn_request.h"

class QCheckBox;
class QComboBox;
class QLabel;
class QLineEdit;
class QProgressBar;
class QPushButton;
class QSpinBox;
class QTableWidget;

namespace latmix {
struct Comparison;
}

namespace latmix::studio {

class EngineHost;
class EngineLink;
class ModelSession;
class LearnKnobs;

class CompareMethodsPage : public QWidget {
  Q_OBJECT

 public:
  /// For a model open on an engine (session->remote()), runMethods() runs the task "compare" there
  /// (`link` names the server's texts); its report is written on the server.
  CompareMethodsPage(EngineHost* host, ModelSession* session, EngineLink* link, CompareEvaluation eval,
                     QWidget* parent = nullptr);

  /// Checks `methods` and sets the learning options shared by every method (its method field is ignored).
  void configure(const QStringList& methods, const LearnRequest& learning);
  /// The page as the engine's request: what runMethods() runs.
  api::CompareRequest methodsRequest() const;
  quint64 runMethods();
  void cancelMethods();
  const latmix::Comparison* comparison() const { return comparison_.get(); }
  quint64 saveReport(const QString& dir);
  QString methodsCliCommand() const;
  QStringList checkedMethods() const;
  QString methodsTableText() const;
  /// Another model is open: the tables are cleared and a run for the old one cancelled.
  void modelChanged();

 Q_SIGNALS:
  void methodsFinished();
  void methodsCancelled();
  void reportSaved(const QStringList& files);

 private:
  void showComparison(std::shared_ptr<const latmix::Comparison> comparison);
  void methodsEnded(const QString& message);
  quint64 runOnEngine(latmix::api::CompareRequest request);

  EngineHost* host_;
  ModelSession* session_;
  EngineLink* link_;
  CompareEvaluation eval_;
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
  quint64 report_job_ = 0;
  std::shared_ptr<const latmix::Comparison> comparison_;
  QStringList server_report_;  // the report's files on the engine's server, for the comparison shown next
};

}  // namespace latmix::studio
