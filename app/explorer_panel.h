#pragma once
// The Activation Explorer: calibrate on a text, then a heatmap of layers x MX blocks for a
// capture point and metric, before or after a transform (or their difference), the top outlier
// channels with the tokens that cause them, and a click through to the Block Microscope.

#include <QWidget>

#include <memory>

class QComboBox;
class QLabel;
class QLineEdit;
class QPushButton;
class QSpinBox;
class QTableWidget;

namespace latmix {
struct ActivationStats;
}

namespace latmix::widgets {
class ImGuiHost;
class HeatmapView;
}  // namespace latmix::widgets

namespace latmix::studio {

class EngineHost;
class ModelSession;

class ExplorerPanel : public QWidget {
  Q_OBJECT

 public:
  ExplorerPanel(EngineHost* host, ModelSession* session, QWidget* parent = nullptr);
  ~ExplorerPanel() override;

  /// Runs the calibration with the current settings (engine thread); returns the job id.
  quint64 calibrate();
  bool hasStats() const { return stats_ != nullptr; }
  const latmix::ActivationStats* stats() const { return stats_.get(); }
  /// Selects what the heatmap shows ("energy_share", "sqnr_db", ...; view "before"/"after"/"difference").
  void setView(const QString& point, const QString& metric, const QString& view);

 Q_SIGNALS:
  void calibrated();
  /// A heatmap cell was clicked: open that block in the microscope.
  void blockClicked(const QString& point, int layer, int block);

 private:
  void buildControls();
  void showStats(std::shared_ptr<latmix::ActivationStats> stats);
  void updateHeatmap();
  void updateOutliers(int layer);

  EngineHost* host_;
  ModelSession* session_;
  QLineEdit* data_ = nullptr;
  QSpinBox* samples_ = nullptr;
  QSpinBox* seqlen_ = nullptr;
  QComboBox* format_ = nullptr;
  QComboBox* transform_ = nullptr;
  QPushButton* run_ = nullptr;
  QComboBox* point_ = nullptr;
  QComboBox* metric_ = nullptr;
  QComboBox* view_ = nullptr;
  QLabel* summary_ = nullptr;
  QTableWidget* outliers_ = nullptr;
  latmix::widgets::ImGuiHost* canvas_ = nullptr;
  std::unique_ptr<latmix::widgets::HeatmapView> heatmap_;
  std::shared_ptr<latmix::ActivationStats> stats_;
  int outlier_layer_ = -1;
};

}  // namespace latmix::studio
