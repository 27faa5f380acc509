#pragma once
// The Learn screen: a method preset and its settings (the options of `latmix learn`), Start /
// Pause / Resume / Cancel, the loss curves as they come (total, KL / CE / MSE, regularizer; log
// scale), and afterwards a summary with Save transforms, Show in explorer and Load transforms.
// During a run the Activation Explorer's heatmap can be refreshed with the transforms as they are.
// The panel reaches the explorer and Export only through the StudioContext: it publishes its form
// (StudioContext::setLearnRequest()), drives the context's learn controller, and hands plans and
// statistics to the explorer (StudioContext::addPlan(), requestCalibration(), showStatistics()).

#include <QWidget>

#include <memory>

#include "learn_controller.h"

class QAction;
class QCheckBox;
class QComboBox;
class QLabel;
class QLineEdit;
class QPushButton;
class QSpinBox;
class QTemporaryDir;

namespace latmix::widgets {
class LossChart;
}

namespace latmix::studio {

class EngineHost;
class ModelSession;
class StudioContext;
class LearnKnobs;

class LearnPanel : public QWidget {
  Q_OBJECT

 public:
  explicit LearnPanel(StudioContext* context, QWidget* parent = nullptr);
  ~LearnPanel() override;

  /// The request the controls describe (GUI thread; no engine call): the open model, the device of
  /// File > Settings, and every knob. A field left empty, "method default", or at the default the
  /// form shows (steps, batch, learning rate, samples, seq. length) stays unset, as an option left
  /// out of `latmix learn` does.
  LearnRequest request() const;
  /// Sets the controls from a request (scripted runs, restored settings).
  void setRequest(const LearnRequest& request);
  /// Starts learning with the current controls; returns the job id (0: no model, or already running).
  quint64 start();
  /// Refreshes the explorer's heatmap with the current transforms (a snapshot during a run, with the
  /// explorer's settings: StudioContext::statisticsRequest(); the result afterwards). False when
  /// there is nothing to show yet.
  bool refreshHeatmap();
  /// The equivalent `latmix learn` command line.
  QString cliCommand() const;
  /// The processes a run learns in: the form's "engine processes" on an engine, else 1.
  int processes() const;

  /// The context's learn controller (StudioContext::learnController()).
  LearnController* controller() const { return controller_; }
  latmix::widgets::LossChart* chart() const { return chart_; }
  void setLogScale(bool on);
  QAction* startAction() const { return start_action_; }
  QAction* pauseAction() const { return pause_action_; }
  QAction* cancelAction() const { return cancel_action_; }
  /// Call when the open model changes: the chart, the live line and the result are reset, and the
  /// run list shows the new model's runs (a plan of another model does not fit it).
  void modelChanged();
  /// The run list's entries for the open model, newest last (tests).
  QStringList runLabels() const;
  /// Makes run `run` of the open model the current plan and shows its curve; false if unknown.
  bool selectRun(int run);
  /// The result box's text and the line under the chart (tests).
  QString summaryText() const;
  QString liveText() const;

 Q_SIGNALS:
  /// One line for the status bar while learning: step, loss, ETA ("" when idle).
  void statusText(const QString& text);
  /// The user asked to see the learned plan in the explorer (the explorer is calibrating with it).
  void showExplorer();
  /// The explorer got statistics with a snapshot of the transforms being learned.
  void heatmapRefreshed(qint64 step);

 private:
  // The settings form (learn_settings_form.cpp).
  void buildSettings(QWidget* box);
  QWidget* buildResults();
  void methodChanged();
  /// The selected method's defaults for the format and the device of File > Settings.
  LearnSettings formDefaults() const;
  /// The device of File > Settings (where the model is loaded).
  static at::Device formDevice();
  void updateButtons();
  bool refreshHeatmapOnEngine();
  void updateCli();
  void onSteps(int first, int count);
  void onFinished(const LearnOutcome& outcome);
  void onLoaded(const LearnOutcome& outcome);
  void showSummary(const LearnOutcome& outcome);
  void showInExplorer();
  void saveTransforms();
  void loadTransforms();
  void restoreSettings();
  void storeSettings() const;
  void refreshRuns();
  /// Draws a run's curves; with an outcome that has a validation curve, its validation points
  /// (the start's included) and its best step, else the validation values the steps carry.
  void showCurve(const std::vector<LearnStep>& curve, qint64 total, const LearnOutcome* outcome = nullptr);
  void overlayRuns();

  StudioContext* context_;
  EngineHost* host_;
  ModelSession* session_;
  LearnController* controller_;  // the context's
  std::shared_ptr<QTemporaryDir> snapshots_;
  QComboBox* method_ = nullptr;
  QLabel* method_summary_ = nullptr;
  QComboBox* quant_ = nullptr;
  QSpinBox* steps_ = nullptr;
  QSpinBox* batch_ = nullptr;
  QLineEdit* lr_ = nullptr;
  QComboBox* calib_ = nullptr;
  QSpinBox* samples_ = nullptr;
  QSpinBox* seqlen_ = nullptr;
  QSpinBox* seed_ = nullptr;
  QLabel* device_ = nullptr;
  QSpinBox* nproc_ = nullptr;    // on an engine: processes that learn together on its host
  QComboBox* split_ = nullptr;   // how they share layer-wise learning
  LearnKnobs* knobs_ = nullptr;  // the advanced options (learn_knobs.h)
  QLineEdit* cli_ = nullptr;
  QPushButton* start_ = nullptr;
  QPushButton* pause_ = nullptr;
  QPushButton* cancel_ = nullptr;
  QAction* start_action_ = nullptr;
  QAction* pause_action_ = nullptr;
  QAction* cancel_action_ = nullptr;
  QCheckBox* log_scale_ = nullptr;
  QComboBox* runs_ = nullptr;     // this model's finished runs
  QCheckBox* overlay_ = nullptr;  // draw every run's total loss on the chart
  latmix::widgets::LossChart* chart_ = nullptr;
  QLabel* live_ = nullptr;
  QPushButton* refresh_ = nullptr;
  QString refresh_tip_;
  QLabel* summary_ = nullptr;
  QPushButton* save_ = nullptr;
  QPushButton* show_ = nullptr;
  QPushButton* load_ = nullptr;
  QList<QWidget*> learn_knobs_;  // disabled for the fixed presets
};

/// "1 h 02 min", "3 min 05 s", "12.3 s".
QString format_seconds(double seconds);
/// The layer boundaries of a layer-wise run's curve, for LossChart::setMarkers: "layer L" half a step
/// before each layer's first step, in step order. A layer-split run (--split layers) reports its
/// processes' layers side by side, so a change of layer from one step to the next is not a boundary.
std::vector<std::pair<double, QString>> layer_markers(const std::vector<LearnStep>& curve);

/// What happened to the loss, honestly: "the loss fell from A to B (-x %)" or "rose"; for a
/// layer-wise run (steps carry a layer) per layer, since consecutive layers' losses differ in
/// scale: "the loss fell in 5 of 6 layers (layer 0: A -> B, ...)". "" without steps.
QString loss_change_text(const std::vector<LearnStep>& curve);

}  // namespace latmix::studio
