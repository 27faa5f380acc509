#pragma once
// The studio's main window: model panel, central views, log, error banner, job progress + cancel.

#include <QMainWindow>

#include <functional>
#include <memory>

namespace latmix::widgets {
class ImGuiHost;
class HeatmapView;
}  // namespace latmix::widgets

class QLabel;
class QPlainTextEdit;
class QProgressBar;
class QPushButton;
class QTreeWidget;
class QMenu;
class QTabWidget;

namespace latmix::studio {

class EngineHost;
class ModelSession;
class MicroscopePanel;
class ExplorerPanel;
class ComparePanel;
class LearnPanel;
class LatencyProbe;
class ExportPanel;
class Tour;
struct ModelSummary;
struct LearnOutcome;

class MainWindow : public QMainWindow {
  Q_OBJECT

 public:
  MainWindow(EngineHost* host, ModelSession* session, QWidget* parent = nullptr);
  ~MainWindow() override;

  /// Opens a model (folder or .bin): progress in the status bar, result in the model panel.
  void openModel(const QString& path);
  /// Writes a PNG of the whole window; returns false if it could not be written.
  bool saveScreenshot(const QString& path);
  /// The error banner's text ("" when hidden).
  QString bannerText() const;
  /// Saves one screenshot per screen (tab) into `dir` once each has its data; calls `done(ok)`.
  void saveScreenshots(const QString& dir, std::function<void(bool)> done);
  MicroscopePanel* microscope() const { return microscope_; }
  ExplorerPanel* explorer() const { return explorer_; }
  LearnPanel* learn() const { return learn_; }
  ComparePanel* compare() const { return compare_; }
  ExportPanel* exportPanel() const { return export_; }
  /// The first-run tour (issue #10); hidden unless showing.
  Tour* tour() const { return tour_; }
  /// Shows the tour (Help > Show tour).
  void showTour();
  /// Shows the tour when it has not been seen (finished or skipped) yet; returns whether it did.
  bool startTourIfFirstRun();
  /// GUI event-loop lateness measured while the scenario's learning runs were in progress
  /// (samples 0 before saveScreenshots() got there).
  struct LatencySummary {
    int samples = 0;
    double p50_ms = 0, p99_ms = 0, max_ms = 0;
  };
  LatencySummary learningLatency() const { return learning_latency_; }

 protected:
  void closeEvent(QCloseEvent* e) override;
  void dragEnterEvent(QDragEnterEvent* e) override;
  void dropEvent(QDropEvent* e) override;

 private:
  void buildMenus();
  void buildDocks();
  void connectEngine();
  void showModel(const ModelSummary& summary);
  void showBanner(const QString& message);
  void log(const QString& line);
  void rememberRecent(const QString& path);
  void rebuildRecentMenu();
  void shootLearning(const QString& dir, std::function<void(const QString&)> shoot, std::function<void(bool)> done);
  void shootExport(const QString& dir, std::function<void(const QString&)> shoot, std::function<void(bool)> done);
  void buildTour();

  EngineHost* host_;
  ModelSession* session_;
  QTreeWidget* model_tree_ = nullptr;
  QLabel* model_header_ = nullptr;
  QLabel* banner_ = nullptr;
  QPlainTextEdit* log_ = nullptr;
  QProgressBar* progress_ = nullptr;
  QPushButton* cancel_ = nullptr;
  QMenu* recent_menu_ = nullptr;
  latmix::widgets::ImGuiHost* overview_ = nullptr;
  latmix::widgets::HeatmapView* heatmap_ = nullptr;
  QTabWidget* tabs_ = nullptr;
  MicroscopePanel* microscope_ = nullptr;
  ExplorerPanel* explorer_ = nullptr;
  ComparePanel* compare_ = nullptr;
  LearnPanel* learn_ = nullptr;
  ExportPanel* export_ = nullptr;  // the Export tab (issue #9, item 5); its actions are in File after "Settings"
  Tour* tour_ = nullptr;
  QLabel* export_status_ = nullptr;
  std::shared_ptr<LearnOutcome> scenario_plan_;  // the plan the scenario learned first, for its export
  QLabel* learn_status_ = nullptr;
  LatencyProbe* learn_probe_ = nullptr;
  LatencySummary learning_latency_;
  quint64 current_job_ = 0;
};

/// The folder holding the bundled resources (demo model, calibration sample), or "" if absent.
QString resources_dir();

}  // namespace latmix::studio
