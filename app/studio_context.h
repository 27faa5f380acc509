#pragma once
// StudioContext: what the studio's panels share, so that no panel holds a pointer to another. It
// holds the engine thread, where the engine runs (EngineLink: this computer or a `latmix serve`
// engine) and the open model, the Activation Explorer's statistics settings, the
// plans learned or loaded (the explorer's transform choices), the Learn tab's request and the learn
// controller (runs and the current plan, which Export follows), and the way to the Block
// Microscope. A panel publishes what it owns here and listens to the signals for what others own;
// MainWindow makes one and constructs every panel with it.
//
// Engine jobs post their results to the panel that started them (EngineHost::post with the panel,
// or with an object the context owns): a panel destroyed while its job runs gets nothing, and
// nothing reaches the other panels through it.

#include <QObject>
#include <QString>

#include <memory>
#include <vector>

#include "latmix/api/statistics.h"
#include "latmix/calib_data.h"
#include "learn_request.h"

namespace latmix {
struct ActivationStats;
class Model;
}  // namespace latmix

namespace latmix::studio {

class EngineHost;
class EngineLink;
class ModelSession;
class LearnController;

/// A learned or loaded plan offered as a transform: its label ("run 2 (latmix)") and the prefix of
/// its files (PREFIX.json + PREFIX.safetensors).
struct StudioPlan {
  QString label;
  QString prefix;
};

/// A block to show in the Block Microscope: a heatmap cell, or an outlier's token.
struct BlockTarget {
  QString point;  ///< the capture point ("residual", "mlp_in", ...)
  int layer = 0;
  int block = 0;
  QString format;       ///< the MX format of the statistics it came from
  QString transform;    ///< a built-in transform name, or a plan's label
  QString plan_prefix;  ///< set for a learned or loaded plan
  /// For an outlier's token (`sequence` >= 0): token `position` of calibration sequence `sequence`
  /// of `text`, the sequences `options` choose (as the statistics did). Else the bundled sample.
  QString text;
  latmix::CalibrationOptions options;
  int sequence = -1;
  int position = -1;
};

class StudioContext : public QObject {
  Q_OBJECT

 public:
  /// `host` and `session` outlive the context. Owns the learn controller.
  StudioContext(EngineHost* host, ModelSession* session, QObject* parent = nullptr);
  ~StudioContext() override;

  EngineHost* host() const { return host_; }
  ModelSession* session() const { return session_; }
  /// Where engine work runs: this computer, or the `latmix serve` engine connected to (File >
  /// Connect to engine...). A task runs where the open model is: on session()->remote() when the
  /// model was opened on the engine, else in-process.
  EngineLink* engineLink() const { return link_; }

  /// The Activation Explorer's statistics request (text, sequences, format, capture points,
  /// transform) as last published, with the open model and the device of File > Settings as they
  /// are now: what a heatmap refresh during learning computes with.
  latmix::api::StatisticsRequest statisticsRequest() const;
  /// The explorer publishes its controls (on every change).
  void setStatisticsRequest(const latmix::api::StatisticsRequest& request);
  /// Asks the explorer to calibrate with its current settings (calibrationRequested()).
  void requestCalibration();
  /// Statistics computed by another panel's job (a snapshot of a plan being learned), for the
  /// explorer to show (statisticsComputed()); `source` is the model they were computed on,
  /// `request` what computed them.
  void showStatistics(std::shared_ptr<latmix::ActivationStats> stats, std::shared_ptr<latmix::Model> source,
                      const latmix::api::StatisticsRequest& request);

  /// The plans offered as transforms for the open model, in the order they were added.
  const std::vector<StudioPlan>& plans() const { return plans_; }
  /// Adds a plan (or, for a label already there, updates its prefix); planAdded() either way.
  void addPlan(const QString& label, const QString& prefix);
  /// Forgets the plans (another model is open: they would not fit it); plansCleared().
  void clearPlans();

  /// The Learn tab's request as published at its form's last change, with the open model and the
  /// device of File > Settings as they are now (Export takes its default format from it; the
  /// defaults a form leaves unset were judged for the device of that moment).
  LearnRequest learnRequest() const;
  /// The Learn tab publishes its form (on every change).
  void setLearnRequest(const LearnRequest& request);
  /// The learning runs, the current plan and the job that learns: the Learn tab drives it, Export
  /// follows its current plan, MainWindow saves its runs in sessions.
  LearnController* learnController() const { return learn_; }

  /// Asks for a block to be shown in the Block Microscope (blockOpened()).
  void openBlock(const BlockTarget& target);

 Q_SIGNALS:
  void statisticsRequestChanged();
  void calibrationRequested();
  void statisticsComputed(const std::shared_ptr<latmix::ActivationStats>& stats,
                          const std::shared_ptr<latmix::Model>& source, const latmix::api::StatisticsRequest& request);
  void planAdded(const QString& label, const QString& prefix);
  void plansCleared();
  void learnRequestChanged();
  void blockOpened(const latmix::studio::BlockTarget& target);

 private:
  EngineHost* host_;
  ModelSession* session_;
  EngineLink* link_;
  LearnController* learn_;
  latmix::api::StatisticsRequest statistics_;
  LearnRequest learn_request_;
  std::vector<StudioPlan> plans_;
};

}  // namespace latmix::studio
