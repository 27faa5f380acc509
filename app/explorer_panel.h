#pragma once
// The Activation Explorer: calibrate on a text, then a heatmap of layers x MX blocks for a
// capture point and metric, before or after a transform (or their difference), the top outlier
// channels with the tokens that cause them, and a click through to the Block Microscope.

#include <QWidget>

#include <map>
#include <memory>
#include <string>

#include "latmix/api/statistics.h"

class QComboBox;
class QLabel;
class QLineEdit;
class QPushButton;
class QSpinBox;
class QTableWidget;

namespace latmix {
struct ActivationStats;
struct JobControl;
class Model;
class Tokenizer;
}  // namespace latmix

namespace latmix::serve {
class RemoteEngine;
}  // namespace latmix::serve

namespace latmix::widgets {
class ImGuiHost;
class HeatmapView;
struct HeatmapData;
}  // namespace latmix::widgets

namespace latmix::studio {

class EngineHost;
class ModelSession;
class StudioContext;

class ExplorerPanel : public QWidget {
  Q_OBJECT

 public:
  /// Publishes its statistics settings to `context` as they change; shows the context's plans as
  /// transform choices, calibrates when asked, shows statistics computed elsewhere, and opens blocks
  /// in the microscope through it.
  explicit ExplorerPanel(StudioContext* context, QWidget* parent = nullptr);
  ~ExplorerPanel() override;

  /// Runs the calibration with the current settings (engine thread); returns the job id.
  quint64 calibrate();
  bool hasStats() const { return stats_ != nullptr; }
  const latmix::ActivationStats* stats() const { return stats_.get(); }
  /// Selects what the heatmap shows ("energy_share", "sqnr_db", ...; view "before"/"after"/"difference").
  void setView(const QString& point, const QString& metric, const QString& view);

  /// The engine's statistics request the current controls describe (GUI thread): the text,
  /// sequences, format, the five capture points the heatmap offers, and the transform (a built-in
  /// name, or a plan's prefix named by its label). What `latmix stats` runs with the same options.
  latmix::api::StatisticsRequest statsRequest() const;
  /// Adds (or updates) a learned or loaded plan as a transform choice and selects it (through the
  /// context: StudioContext::addPlan()).
  void addPlanChoice(const QString& label, const QString& prefix);
  /// Shows statistics computed elsewhere (e.g. with a snapshot of a plan that is still learning).
  /// Statistics of a model that is no longer the session's (a switch while they were computed)
  /// are dropped: their token ids and layers belong to the other model.
  /// `request` is what computed them (its text and options name the sequences an outlier's
  /// tokens come from).
  void showStats(std::shared_ptr<latmix::ActivationStats> stats, const std::shared_ptr<latmix::Model>& source,
                 const latmix::api::StatisticsRequest& request);
  /// Fills the outlier table with one layer's channels and the tokens behind them (what hovering a
  /// heatmap row does). Nothing without statistics.
  void updateOutliers(int layer);
  /// The outlier table's rows, as shown (tests).
  int outlierRows() const;
  /// The line above the outlier table: which layer and capture point its rows are (tests).
  QString outlierCaption() const;
  /// The heatmap's data as drawn (tests).
  const latmix::widgets::HeatmapData& heatmapData() const;
  /// Another model is open: clears the statistics, heatmap, outlier table and summary, and the
  /// plan choices (they would not fit it; the context forgets them when the model opens).
  void modelChanged();

  /// Selects a transform choice by its label ("none", "hadamard", a plan's label).
  void setTransform(const QString& name);
  /// Sets how many sequences of how many tokens the next calibration reads.
  void setSequences(int samples, int seqlen);
  /// The line above the heatmap (what was calibrated, or why it failed).
  QString summaryText() const;
  /// What a click on a heatmap cell does (tests: a click without a display): opens the block in the
  /// microscope (StudioContext::openBlock()) with the format and transform of the statistics shown
  /// (a plan's prefix included).
  void clickCell(int layer, int block);
  /// Writes the heatmap shown as a PNG (HeatmapView::image(); "Save image..."); false without a
  /// map or when the file cannot be written.
  bool saveHeatmapImage(const QString& path) const;
  /// What activating (double-click, Enter) a row of the outlier table does: opens the microscope
  /// (StudioContext::openBlock()) at the row's largest token (its calibration sequence and
  /// position), in the channel's block; on an engine, the window is chosen there from the same
  /// statistics request. False when there is no such row.
  bool openOutlier(int row);

 Q_SIGNALS:
  void calibrated();
  /// A calibration failed (the message is also shown above the heatmap).
  void calibrationFailed(const QString& message);

 private:
  void buildControls();
  /// calibrate() for a model open on the engine: the task "statistics" there.
  quint64 calibrateOnEngine(const std::shared_ptr<const latmix::serve::RemoteEngine>& engine);
  void updateHeatmap();
  /// The context's plan as a transform choice, selected (planAdded()).
  void showPlanChoice(const QString& label, const QString& prefix);
  /// Removes the plan choices (plansCleared(), or another model).
  void removePlanChoices();
  /// The prefix of the plan the statistics shown were computed with ("" for a built-in transform).
  QString shownPlanPrefix() const;

  StudioContext* context_;
  EngineHost* host_;
  ModelSession* session_;
  QLineEdit* data_ = nullptr;
  QSpinBox* samples_ = nullptr;
  QSpinBox* seqlen_ = nullptr;
  QComboBox* format_ = nullptr;
  QComboBox* transform_ = nullptr;
  QPushButton* run_ = nullptr;
  QPushButton* save_image_ = nullptr;
  QComboBox* point_ = nullptr;
  QComboBox* metric_ = nullptr;
  QComboBox* view_ = nullptr;
  QLabel* summary_ = nullptr;
  QTableWidget* outliers_ = nullptr;
  QLabel* outlier_caption_ = nullptr;
  QString outlier_point_;  // the capture point the table's rows are of
  latmix::widgets::ImGuiHost* canvas_ = nullptr;
  std::unique_ptr<latmix::widgets::HeatmapView> heatmap_;
  std::shared_ptr<latmix::ActivationStats> stats_;
  latmix::api::StatisticsRequest stats_request_;  // what computed stats_
  std::map<int32_t, std::string> token_texts_;     // on an engine: its tokenizer's text of the outlier tokens
  // showStats(), with the outlier tokens' text from an engine (api::StatisticsResult::token_texts).
  void present(std::shared_ptr<latmix::ActivationStats> stats, const std::shared_ptr<latmix::Model>& source,
               const latmix::api::StatisticsRequest& request, std::map<int32_t, std::string> token_texts);
  int outlier_layer_ = -1;
};

}  // namespace latmix::studio
