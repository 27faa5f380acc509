#pragma once
// The studio's main window: model panel, central views, log, error banner, job progress + cancel.
// It makes the StudioContext (studio_context.h) and constructs every panel with it; the panels
// share what they share through the context, never through each other.

#include <QElapsedTimer>
#include <QMainWindow>
#include <QString>

#include <functional>
#include <memory>
#include <optional>

#include "engine_link.h"

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
class StudioContext;
class MicroscopePanel;
class ExplorerPanel;
class ComparePanel;
class LearnPanel;
class LatencyProbe;
class ExportPanel;
class AnalyzePanel;
class Tour;
struct ModelSummary;
struct LearnOutcome;

/// " — ETA 1 min 05 s" from `seconds` spent on `done` of `total` units ("" until there is a pace to go by).
QString eta_text(double seconds, qint64 done, qint64 total);

class MainWindow : public QMainWindow {
  Q_OBJECT

 public:
  MainWindow(EngineHost* host, ModelSession* session, QWidget* parent = nullptr);
  ~MainWindow() override;

  /// Opens a model (folder or .bin): progress in the status bar, result in the model panel.
  void openModel(const QString& path);
  /// Connects to a `latmix serve` engine (File > Connect to engine...): remembers the address,
  /// reads the token, and asks the engine for its facts on the engine thread; the badge changes
  /// when it answers, the banner says why when it does not.
  void connectToEngine(const EngineAddress& address);
  /// Opens a model on the connected engine (`path`: the server's path), as File > Open model on engine... does.
  void openRemoteModel(const QString& path);
  /// Follows the engine's learn job `id` (its request as GET /v1/jobs gives it) in the Learn tab, as
  /// File > Engine jobs... > Follow in Learn tab does; false, and the banner says why, when the job's
  /// model is not the one open on the engine or a learning run is in progress here.
  bool followEngineJob(const QString& id, const nlohmann::json& request);
  /// The status bar's engine badge: where the engine runs.
  QString engineBadge() const;
  /// Writes a PNG of the whole window; returns false if it could not be written.
  bool saveScreenshot(const QString& path);
  /// The error banner's text ("" when hidden).
  QString bannerText() const;
  /// What the panels share (the model, the explorer's settings, the plans, the Learn tab's request and controller).
  StudioContext* context() const { return context_; }
  MicroscopePanel* microscope() const { return microscope_; }
  ExplorerPanel* explorer() const { return explorer_; }
  LearnPanel* learn() const { return learn_; }
  ComparePanel* compare() const { return compare_; }
  ExportPanel* exportPanel() const { return export_; }
  /// The Analyze tab (issue #21): the MX error against the block size, per transform.
  AnalyzePanel* analyze() const { return analyze_; }
  /// The first-run tour (issue #10); hidden unless showing.
  Tour* tour() const { return tour_; }
  /// Brings the tab of a panel (explorer(), learn(), ...) to the front.
  void showTab(QWidget* panel);
  /// The tab index of a panel (its tab holds it in a scroll area); -1 if none.
  int tabIndexOf(QWidget* panel) const;
  /// Shows the tour (Help > Show tour).
  void showTour();
  /// Shows the tour when it has not been seen (finished or skipped) yet; returns whether it did.
  bool startTourIfFirstRun();

  /// Asks a yes/no question before work would be lost; true: go ahead. A message box by default;
  /// tests and the scripted scenario answer it themselves.
  using Confirm = std::function<bool(const QString& title, const QString& question)>;
  void setConfirm(Confirm confirm) { confirm_ = std::move(confirm); }
  /// Writes the session (the model, the Learn tab's settings, every run with its plan and curve)
  /// to `path` on the engine thread; sessionSaved() says how it went. Returns the job id.
  quint64 saveSession(const QString& path);
  /// Opens a session file: its runs, its Learn settings, then its model (the current run is
  /// picked once the model is open). False, with the reason in the banner, when it cannot be read.
  bool openSession(const QString& path);
  /// When the last start did not end with a clean quit and a recovery copy exists: asks, and
  /// restores it. Returns whether it did.
  bool offerRecovery();
  /// Saves the recovery copy now (after each run and each model opened; engine thread).
  void autosave();

 Q_SIGNALS:
  /// A session was written ("" error) or not (the error names the file).
  void sessionSaved(const QString& path, const QString& error);
  /// A session's model is open and its runs are restored.
  void sessionOpened(const QString& path);
  /// The Overview shows the open model's weight statistics (after their job finished).
  void overviewShown();

 protected:
  void closeEvent(QCloseEvent* e) override;
  void dragEnterEvent(QDragEnterEvent* e) override;
  void dropEvent(QDropEvent* e) override;

 private:
  void buildMenus();
  void buildDocks();
  void connectEngine();
  void showModel(const ModelSummary& summary);
  /// No model open (ModelSession::closed()): the model panel, the Overview and every tab empty.
  void showNoModel();
  /// Every per-model view starts empty: a model opened, or none open.
  void resetPanelsForModel();
  void chooseEngine();
  void chooseRemoteModel();
  void chooseEngineJob();
  void showOverview();
  void showBanner(const QString& message);
  /// Hides the banner; a remote job waiting after its stream was lost gives up (its job fails).
  void dismissBanner();
  /// Re-attaches the remote job waiting after its stream was lost (the banner's Retry).
  void retryLostStream();
  void log(const QString& line);
  void rememberRecent(const QString& path);
  void rebuildRecentMenu();
  void buildTour();
  /// Whether work that would be lost by `action` ("quit", "open another model") may go: asks
  /// when learning runs or learned runs were never saved.
  bool confirmDiscard(const QString& action, bool unsaved_runs_too);
  void chooseSession(bool save);
  void showAbout();
  void showShortcuts();

  EngineHost* host_;
  ModelSession* session_;
  StudioContext* context_;  // a child made before the panels; they are deleted before it (~MainWindow)
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
  AnalyzePanel* analyze_ = nullptr;  // the Analyze tab (issue #21)
  ExportPanel* export_ = nullptr;  // the Export tab (issue #9, item 5); its actions are in File after "Settings"
  Tour* tour_ = nullptr;
  QLabel* export_status_ = nullptr;
  QLabel* learn_status_ = nullptr;
  QLabel* engine_badge_ = nullptr;
  quint64 current_job_ = 0;
  QString progress_stage_;      // the stage the ETA is estimated for
  qint64 progress_done_ = 0;
  QElapsedTimer progress_clock_;  // since that stage started
  QString overview_note_;       // shown instead of the weight heatmap while it is computed (or stopped)
  QWidget* banner_box_ = nullptr;
  QPushButton* retry_banner_ = nullptr;
  Confirm confirm_;
  bool unclean_start_ = false;      // the previous start did not quit cleanly
  int pending_run_ = -1;            // the run to pick once a session's model is open
  QString pending_session_;         // that session's path (sessionOpened)
  quint64 autosave_job_ = 0;
};

/// The folder holding the bundled resources (demo model, calibration sample), or "" if absent.
QString resources_dir();
/// The bundled demo model (resources_dir()/models/gutenberg-llama-6M): opened on a first start, by
/// File > Open the demo model, and by --screenshot without --model.
QString demo_model();
/// The bundled calibration sample (resources_dir()/calibration/pride_and_prejudice_ch1-6.txt): the
/// default text of the explorer, analyze, learn, compare, microscope and export.
QString bundled_sample();

/// The folder a file dialog of kind `key` ("model", "transforms", "text", "session") was last
/// pointed at (the home folder at first), and remembering it from a chosen file or folder.
QString last_folder(const QString& key);
void remember_folder(const QString& key, const QString& chosen);

}  // namespace latmix::studio
