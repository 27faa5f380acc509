#include "main_window.h"

#include <QSaveFile>
#include <QAction>
#include <QApplication>
#include <QCloseEvent>
#include <QCoreApplication>
#include <QDateTime>
#include <QDir>
#include <QDockWidget>
#include <QDragEnterEvent>
#include <QFileDialog>
#include <QFileInfo>
#include <QHeaderView>
#include <QLabel>
#include <QDesktopServices>
#include <QMenuBar>
#include <QMessageBox>
#include <QMimeData>
#include <QPlainTextEdit>
#include <QPointer>
#include <QProgressBar>
#include <QPushButton>
#include <QScreen>
#include <QScrollArea>
#include <QSettings>
#include <QStatusBar>
#include <QTabBar>
#include <QTabWidget>
#include <QTimer>
#include <QTreeWidget>
#include <QUrl>
#include <QVBoxLayout>

#include <utility>

#include "engine_host.h"
#include "heatmap_view.h"
#include "imgui_host.h"
#include "analyze_panel.h"
#include "compare_panel.h"
#include "explorer_panel.h"
#include "export_panel.h"
#include "latency_probe.h"
#include "learn_panel.h"
#include "settings_dialog.h"
#include "microscope_panel.h"
#include "model_session.h"
#include "session_file.h"
#include "studio_context.h"
#include "tour.h"
#include "latmix/version.h"

#include <imgui.h>

namespace latmix::studio {

QString resources_dir() {
  const QStringList candidates = {qEnvironmentVariable("LATMIX_RESOURCES"),
                                  QCoreApplication::applicationDirPath() + "/../share/latmix/resources",
                                  QStringLiteral(LATMIX_RESOURCES_DIR)};
  for (const QString& c : candidates) {
    if (!c.isEmpty() && QFileInfo::exists(c + "/models")) return QDir(c).absolutePath();
  }
  return {};
}

QString demo_model() { return resources_dir() + "/models/gutenberg-llama-6M"; }

QString bundled_sample() { return resources_dir() + "/calibration/pride_and_prejudice_ch1-6.txt"; }

QString last_folder(const QString& key) {
  const QString dir = QSettings().value("folders/" + key).toString();
  return !dir.isEmpty() && QFileInfo(dir).isDir() ? dir : QDir::homePath();
}

void remember_folder(const QString& key, const QString& chosen) {
  if (chosen.isEmpty()) return;
  const QFileInfo info(chosen);
  QSettings().setValue("folders/" + key, info.isDir() ? info.absoluteFilePath() : info.absolutePath());
}

namespace {

// A tab's panel in a scroll area: the window's minimum size no longer grows with its content, and
// a pane larger than the window scrolls (issue 17, Major 7).
QScrollArea* scrolled(QWidget* panel, QWidget* parent) {
  auto* area = new QScrollArea(parent);
  area->setWidgetResizable(true);
  area->setFrameShape(QFrame::NoFrame);
  area->setWidget(panel);
  return area;
}

}  // namespace

QString eta_text(double seconds, qint64 done, qint64 total) {
  if (done <= 0 || total <= done || seconds < 1.0) return {};
  const auto left = static_cast<qint64>(seconds * static_cast<double>(total - done) / static_cast<double>(done) + 0.5);
  if (left < 60) return QString(" — ETA %1 s").arg(left);
  if (left < 3600) return QString(" — ETA %1 min %2 s").arg(left / 60).arg(left % 60, 2, 10, QChar('0'));
  return QString(" — ETA %1 h %2 min").arg(left / 3600).arg(left % 3600 / 60, 2, 10, QChar('0'));
}

MainWindow::MainWindow(EngineHost* host, ModelSession* session, QWidget* parent)
    : QMainWindow(parent), host_(host), session_(session), context_(new StudioContext(host, session, this)) {
  setWindowTitle("LATMiX Studio");
  setAcceptDrops(true);
  confirm_ = [this](const QString& title, const QString& question) {
    return QMessageBox::question(this, title, question, QMessageBox::Yes | QMessageBox::No, QMessageBox::No) ==
           QMessageBox::Yes;
  };
  auto* central = new QWidget(this);
  auto* layout = new QVBoxLayout(central);
  layout->setContentsMargins(0, 0, 0, 0);
  // The error banner, with a button that dismisses it (issue 17, Minor).
  banner_box_ = new QWidget(central);
  banner_box_->setObjectName("banner");
  banner_box_->setStyleSheet("#banner { background: #8a1c1c; } QLabel { color: white; }");
  banner_box_->setAttribute(Qt::WA_StyledBackground);
  auto* banner_row = new QHBoxLayout(banner_box_);
  banner_row->setContentsMargins(8, 6, 8, 6);
  banner_ = new QLabel(banner_box_);
  banner_->setWordWrap(true);
  banner_->setTextInteractionFlags(Qt::TextSelectableByMouse);
  auto* dismiss = new QPushButton("Dismiss", banner_box_);
  dismiss->setObjectName("dismiss-banner");
  dismiss->setToolTip("Hide this message (it stays in the Log)");
  connect(dismiss, &QPushButton::clicked, this, &MainWindow::dismissBanner);
  // Shown while a remote job waits after its event stream was lost (main_window_engine.cpp).
  retry_banner_ = new QPushButton("Retry", banner_box_);
  retry_banner_->setObjectName("retry-banner");
  retry_banner_->setToolTip("Re-attach to the job on the engine, from the last event this window saw");
  retry_banner_->hide();
  connect(retry_banner_, &QPushButton::clicked, this, &MainWindow::retryLostStream);
  banner_row->addWidget(banner_, 1);
  banner_row->addWidget(retry_banner_, 0, Qt::AlignTop);
  banner_row->addWidget(dismiss, 0, Qt::AlignTop);
  banner_box_->hide();
  layout->addWidget(banner_box_);
  tabs_ = new QTabWidget(central);
  layout->addWidget(tabs_, 1);
  heatmap_ = new latmix::widgets::HeatmapView();
  if (latmix::widgets::ImGuiHost::openGLAvailable()) {
    overview_ = new latmix::widgets::ImGuiHost(tabs_);
    overview_->setDrawFunction([this] {
      if (!session_->hasModel()) {
        ImGui::TextUnformatted("Open a model (File > Open) or drop a folder / .bin here.");
        return;
      }
      if (!overview_note_.isEmpty()) {
        ImGui::TextUnformatted(overview_note_.toUtf8().constData());
        return;
      }
      heatmap_->draw();
    });
    tabs_->addTab(overview_, "Overview");
  } else {
    auto* msg = new QLabel("OpenGL 3 is not available here: the live views are disabled.", tabs_);
    msg->setAlignment(Qt::AlignCenter);
    tabs_->addTab(msg, "Overview");
  }
  // A block opened through the context (a heatmap cell, an outlier's token) brings the microscope
  // to the front; connected before the microscope is made, so the tab shows before it reads the block.
  connect(context_, &StudioContext::blockOpened, this, [this] { showTab(microscope_); });
  explorer_ = new ExplorerPanel(context_, tabs_);
  tabs_->addTab(scrolled(explorer_, tabs_), "Activation Explorer");
  microscope_ = new MicroscopePanel(context_, tabs_);
  tabs_->addTab(scrolled(microscope_, tabs_), "Block Microscope");
  learn_ = new LearnPanel(context_, tabs_);
  tabs_->addTab(scrolled(learn_, tabs_), "Learn");
  compare_ = new ComparePanel(context_, tabs_);
  tabs_->addTab(scrolled(compare_, tabs_), "Compare");
  export_ = new ExportPanel(context_, tabs_);  // issue #9, item 5
  tabs_->addTab(scrolled(export_, tabs_), "Export");
  // Last, so that the tab indices sessions and settings saved before it came keep their meaning.
  analyze_ = new AnalyzePanel(context_, tabs_);  // issue #21: the paper's Figure 2 on this model
  tabs_->addTab(scrolled(analyze_, tabs_), "Analyze");
  connect(learn_, &LearnPanel::showExplorer, this, [this] { showTab(explorer_); });
  // The recovery copy follows the history (issue 17, Major 9).
  connect(context_->learnController(), &LearnController::historyChanged, this, &MainWindow::autosave);
  setCentralWidget(central);
  buildMenus();
  buildDocks();
  connectEngine();
  buildTour();
  QSettings settings;
  restoreGeometry(settings.value("window/geometry").toByteArray());
  restoreState(settings.value("window/state").toByteArray());
  tabs_->setCurrentIndex(settings.value("window/tab", 0).toInt());
  if (!settings.contains("window/geometry")) resize(1280, 720);
  if (!settings.contains("window/state")) {  // a short log: the panes get the height of a 720-px screen
    // once the window is laid out (before that the dock area has no height to share)
    QTimer::singleShot(0, this, [this] {
      if (auto* log_dock = findChild<QDockWidget*>("log-dock")) resizeDocks({log_dock}, {110}, Qt::Vertical);
    });
  }
  // Never larger than the screen it is on (a geometry saved on a larger display included).
  if (QScreen* screen = this->screen()) {
    const QSize avail = screen->availableGeometry().size();
    if (width() > avail.width() || height() > avail.height())
      resize(std::min(width(), avail.width()), std::min(height(), avail.height()));
  }
  // A start that is still marked running at the next start ended in a crash (or a kill).
  unclean_start_ = settings.value("session/running", false).toBool();
  settings.setValue("session/running", true);
}

void MainWindow::showTab(QWidget* panel) {
  const int i = tabIndexOf(panel);
  if (i >= 0) tabs_->setCurrentIndex(i);
}

int MainWindow::tabIndexOf(QWidget* panel) const {
  for (int i = 0; i < tabs_->count(); ++i) {
    auto* area = qobject_cast<QScrollArea*>(tabs_->widget(i));
    if (tabs_->widget(i) == panel || (area != nullptr && area->widget() == panel)) return i;
  }
  return -1;
}

MainWindow::~MainWindow() {
  // The panels hold the context (a child of this window, deleted after this body): they go first.
  delete tabs_;
  delete heatmap_;
}

void MainWindow::buildMenus() {
  QMenu* file = menuBar()->addMenu("&File");
  QAction* open_dir = file->addAction("&Open model folder...", this, [this] {
    const QString dir = QFileDialog::getExistingDirectory(this, "Open a Hugging Face model folder", last_folder("model"));
    if (dir.isEmpty()) return;
    remember_folder("model", QFileInfo(dir).absolutePath());  // the folder that holds the models
    openModel(dir);
  });
  open_dir->setShortcut(QKeySequence::Open);
  file->addAction("Open llama2.c &checkpoint...", this, [this] {
    const QString f =
        QFileDialog::getOpenFileName(this, "Open a llama2.c checkpoint", last_folder("model"), "llama2.c (*.bin)");
    if (f.isEmpty()) return;
    remember_folder("model", f);
    openModel(f);
  });
  recent_menu_ = file->addMenu("Open &recent");
  rebuildRecentMenu();
  file->addAction("Open the &demo model", this, [this] {
    openModel(demo_model());
  });
  file->addSeparator();
  file->addAction("Connect to &engine...", this, [this] { chooseEngine(); });
  // Offered while an engine is connected.
  const auto while_connected = [this](QAction* action) {
    action->setEnabled(false);
    connect(context_->engineLink(), &EngineLink::connected, action, [action] { action->setEnabled(true); });
    connect(context_->engineLink(), &EngineLink::disconnected, action, [action] { action->setEnabled(false); });
  };
  while_connected(file->addAction("Open model on e&ngine...", this, [this] { chooseRemoteModel(); }));
  while_connected(file->addAction("Engine &jobs...", this, [this] { chooseEngineJob(); }));
  file->addSeparator();
  file->addAction("Compute the weight &overview", this, [this] { session_->computeOverview(); });
  QAction* open_session = file->addAction("Open s&ession...", this, [this] { chooseSession(false); });
  open_session->setShortcut(QKeySequence("Ctrl+Shift+O"));
  QAction* save_session = file->addAction("Sa&ve session...", this, [this] { chooseSession(true); });
  save_session->setShortcut(QKeySequence("Ctrl+S"));
  save_session->setToolTip("The model, the Learn settings and every learned run with its plan and curve");
  file->addSeparator();
  QAction* prefs = file->addAction("&Settings...", this, [this] {
    SettingsDialog dialog(this);
    if (dialog.exec() != QDialog::Accepted) return;
    const StudioSettings s = dialog.settings();
    s.save();
    apply_settings(s, host_);
    engine_badge_->setText(context_->engineLink()->badgeText());
    log("settings: device " + s.device + ", threads " + QString::number(s.threads) + ", palette " + s.palette);
  });
  prefs->setShortcut(QKeySequence::Preferences);
  file->addSeparator();
  file->addAction(export_->exportAction());
  file->addAction(export_->verifyAction());
  connect(export_->exportAction(), &QAction::triggered, this, [this] { showTab(export_); });
  connect(export_->verifyAction(), &QAction::triggered, this, [this] { showTab(export_); });
  file->addSeparator();
  QAction* quit = file->addAction("&Quit", this, &QWidget::close);
  quit->setShortcut(QKeySequence("Ctrl+Q"));  // explicit: some platform themes bind no Quit key

  QMenu* learn = menuBar()->addMenu("&Learn");
  for (QAction* a : {learn_->startAction(), learn_->pauseAction(), learn_->cancelAction()}) learn->addAction(a);
  connect(learn_->startAction(), &QAction::triggered, this, [this] { showTab(learn_); });

  QMenu* help = menuBar()->addMenu("&Help");
  help->addAction("Show &tour", this, [this] { showTour(); });
  help->addAction("&User guide", this, [this] {
    const QStringList candidates = {QCoreApplication::applicationDirPath() + "/../share/doc/latmix/user-guide.md",
                                    QStringLiteral(LATMIX_RESOURCES_DIR) + "/../docs/user-guide.md"};
    for (const QString& c : candidates) {
      if (QFileInfo::exists(c)) {
        QDesktopServices::openUrl(QUrl::fromLocalFile(QFileInfo(c).absoluteFilePath()));
        return;
      }
    }
    QMessageBox::information(this, "User guide",
                             "The user guide is docs/user-guide.md in the LATMiX Studio sources; it was not found "
                             "beside this installation.");
  });
  QAction* keys = help->addAction("&Keyboard shortcuts", this, [this] { showShortcuts(); });
  keys->setShortcut(QKeySequence("F1"));
  help->addSeparator();
  help->addAction("&About LATMiX Studio", this, [this] { showAbout(); });
}

void MainWindow::showAbout() {
  QMessageBox::about(this, "About LATMiX Studio",
                     QString("<b>LATMiX Studio</b> %1 (commit %2)<br>Inspect and quantize language models to the "
                             "OCP microscaling (MX) formats, with learnable affine transforms (LATMiX, "
                             "arXiv 2602.17681) and the methods it is measured against.<br><br>Qt %3, LibTorch "
                             "engine. MIT licence.")
                         .arg(QString::fromLatin1(latmix::version()), QString::fromLatin1(latmix::git_commit()),
                              QString::fromLatin1(qVersion())));
}

void MainWindow::showShortcuts() {
  QStringList rows;
  for (QAction* a : findChildren<QAction*>()) {
    if (a->shortcut().isEmpty() || a->text().isEmpty()) continue;
    rows << QString("<tr><td><b>%1</b></td><td>%2</td></tr>")
                .arg(a->shortcut().toString(QKeySequence::NativeText).toHtmlEscaped(),
                     a->text().remove('&').remove("...").toHtmlEscaped());
  }
  rows << "<tr><td><b>Ctrl+R</b></td><td>Calibrate (Activation Explorer)</td></tr>";
  rows.sort();
  QMessageBox::information(this, "Keyboard shortcuts", "<table cellspacing=6>" + rows.join("") + "</table>");
}

void MainWindow::buildDocks() {
  auto* dock = new QDockWidget("Model", this);
  dock->setObjectName("model-dock");
  auto* panel = new QWidget(dock);
  auto* layout = new QVBoxLayout(panel);
  model_header_ = new QLabel("No model open.", panel);
  model_header_->setWordWrap(true);
  model_header_->setTextInteractionFlags(Qt::TextSelectableByMouse);
  model_tree_ = new QTreeWidget(panel);
  model_tree_->setHeaderLabels({"module", "shape", "dtype", "parameters"});
  model_tree_->header()->setSectionResizeMode(QHeaderView::ResizeToContents);
  layout->addWidget(model_header_);
  layout->addWidget(model_tree_, 1);
  dock->setWidget(panel);
  addDockWidget(Qt::LeftDockWidgetArea, dock);

  auto* log_dock = new QDockWidget("Log", this);
  log_dock->setObjectName("log-dock");
  log_ = new QPlainTextEdit(log_dock);
  log_->setReadOnly(true);
  log_->setMaximumBlockCount(5000);
  log_dock->setWidget(log_);
  addDockWidget(Qt::BottomDockWidgetArea, log_dock);

  progress_ = new QProgressBar(this);
  progress_->setMaximumWidth(320);
  progress_->hide();
  cancel_ = new QPushButton("Cancel", this);
  cancel_->hide();
  connect(cancel_, &QPushButton::clicked, this, [this] { host_->cancel(current_job_); });
  learn_status_ = new QLabel(this);
  connect(learn_, &LearnPanel::statusText, learn_status_, &QLabel::setText);
  statusBar()->addPermanentWidget(learn_status_);
  export_status_ = new QLabel(this);
  connect(export_, &ExportPanel::statusText, export_status_, &QLabel::setText);
  statusBar()->addPermanentWidget(export_status_);
  statusBar()->addPermanentWidget(progress_);
  statusBar()->addPermanentWidget(cancel_);
  engine_badge_ = new QLabel(context_->engineLink()->badgeText(), this);
  engine_badge_->setObjectName("engine-badge");
  engine_badge_->setToolTip("Where the engine runs (File > Connect to engine... changes it)");
  statusBar()->addPermanentWidget(engine_badge_);
}

void MainWindow::connectEngine() {
  connect(host_, &EngineHost::jobStarted, this, [this](quint64 id, const QString& tag) {
    current_job_ = id;
    progress_stage_.clear();
    // The Overview is not animated while jobs run: it repaints when its data changes (showModel,
    // showOverview) and on input. A 30 Hz repaint cost the GUI thread most of its time under
    // software GL (Xvfb: event-loop lateness p50 12 ms, p99 138 ms while the 1B overview ran).
    progress_->setRange(0, 0);
    progress_->show();
    cancel_->show();
    log("started: " + tag);
  });
  connect(host_, &EngineHost::jobProgress, this, [this](quint64, const QString& stage, qint64 done, qint64 total) {
    // Byte counts pass 2^31 on large models: the bar counts in units that fit an int.
    const qint64 unit = std::max<qint64>(1, total / (qint64(1) << 30));
    progress_->setRange(0, total > 0 ? static_cast<int>(total / unit) : 0);
    progress_->setValue(static_cast<int>(done / unit));
    // ETA from this stage's pace so far (a stage that restarts its count starts a new estimate).
    if (stage != progress_stage_ || done < progress_done_) {
      progress_stage_ = stage;
      progress_clock_.start();
    }
    progress_done_ = done;
    progress_->setFormat(stage + (unit > 1 ? " %p%" : " %v/%m") +
                         eta_text(static_cast<double>(progress_clock_.elapsed()) / 1000.0, done, total));
  });
  auto job_ended = [this] {
    progress_->hide();
    cancel_->hide();
  };
  connect(host_, &EngineHost::jobFinished, this, [this, job_ended](quint64, const QString& tag, double s) {
    job_ended();
    log(QString("finished: %1 (%2 s)").arg(tag).arg(s, 0, 'f', 2));
  });
  connect(host_, &EngineHost::jobCancelled, this, [this, job_ended](quint64, const QString& tag) {
    job_ended();
    log("cancelled: " + tag);
  });
  connect(host_, &EngineHost::jobFailed, this, [this, job_ended](quint64, const QString& tag, const QString& msg) {
    job_ended();
    log("failed: " + tag + ": " + msg);
  });
  connect(session_, &ModelSession::opened, this, [this](const ModelSummary& s) { showModel(s); });
  connect(session_, &ModelSession::overviewReady, this, [this] { showOverview(); });
  connect(session_, &ModelSession::overviewStopped, this, [this](const QString& message) {
    overview_note_ = (message.isEmpty() ? QString("The weight overview was cancelled.")
                                        : "The weight overview failed: " + message) +
                     "\nFile > Compute the weight overview starts it again.";
    if (overview_ != nullptr) overview_->update();
  });
  connect(session_, &ModelSession::closed, this, &MainWindow::showNoModel);
  EngineLink* link = context_->engineLink();
  connect(link, &EngineLink::connected, this, [this](const QString& badge) {
    engine_badge_->setText(badge);
    banner_box_->hide();
    if (session_->remote()) session_->close();  // a model of the engine connected before
    log("connected: " + badge);
  });
  connect(link, &EngineLink::connectFailed, this, [this](const QString& url, const QString& message) {
    showBanner("Could not connect to the engine at " + url + ":\n" + message);
  });
  connect(link, &EngineLink::disconnected, this, [this, link] {
    engine_badge_->setText(link->badgeText());
    if (session_->remote()) session_->close();  // its engine is no longer connected
    log("disconnected: " + link->badgeText());
  });
  connect(link, &EngineLink::streamLost, this, &MainWindow::showBanner);
  connect(session_, &ModelSession::openFailed, this, [this](const QString& path, const QString& msg) {
    showBanner("Could not open " + path + ":\n" + msg);
  });
}

void MainWindow::openModel(const QString& path) {
  if (!confirmDiscard("open another model", false)) return;
  context_->learnController()->cancel();  // its plan would belong to the model closed meanwhile
  banner_box_->hide();
  log("opening " + path);
  session_->open(path);
}

bool MainWindow::confirmDiscard(const QString& action, bool unsaved_runs_too) {
  QStringList lost;
  LearnController* ctl = context_->learnController();
  if (ctl->running()) lost << "the learning run in progress (it is cancelled)";
  const int unsaved = ctl->unsavedRuns();
  if (unsaved_runs_too && unsaved > 0)
    lost << QString("%1 learned run%2 never saved (Save transforms, or File > Save session)")
                .arg(unsaved)
                .arg(unsaved == 1 ? "" : "s");
  if (lost.isEmpty()) return true;
  const QString question = QString("To %1, this is lost:\n - %2\n\n%3 anyway?")
                               .arg(action, lost.join("\n - "), action.left(1).toUpper() + action.mid(1));
  const bool go = confirm_(QString("LATMiX Studio: %1?").arg(action), question);
  log(QString("asked before %1 (%2): %3").arg(action, lost.join("; "), QString(go ? "yes" : "no")));
  return go;
}

void MainWindow::chooseSession(bool save) {
  if (save) {
    const QString path = QFileDialog::getSaveFileName(this, "Save the session", last_folder("session") + "/studio.latmix-session",
                                                      "LATMiX Studio sessions (*.latmix-session)");
    if (path.isEmpty()) return;
    remember_folder("session", path);
    saveSession(path.endsWith(".latmix-session") ? path : path + ".latmix-session");
    return;
  }
  const QString path = QFileDialog::getOpenFileName(this, "Open a session", last_folder("session"),
                                                    "LATMiX Studio sessions (*.latmix-session);;All files (*)");
  if (path.isEmpty()) return;
  remember_folder("session", path);
  openSession(path);
}

namespace {

// `learn`: the Learn tab's request as its form reads now (File > Settings' device and data folder included).
StudioSession session_of(const StudioContext& context, const LearnRequest& learn, int tab) {
  StudioSession s;
  s.model_path = context.session()->summary().path;
  s.learn = learn;
  s.tab = tab;
  s.runs = context.learnController()->allRuns();
  const LearnOutcome& current = context.learnController()->outcome();
  if (!current.loaded && current.run > 0) {
    s.current_model = current.model_path;
    s.current_run = current.run;
  }
  return s;
}

}  // namespace

quint64 MainWindow::saveSession(const QString& path) {
  StudioSession s = session_of(*context_, learn_->request(), tabs_->currentIndex());
  for (LearnRun& r : s.runs) r.outcome.in_session = true;  // kept by this file from now on
  QPointer<MainWindow> self(this);
  log("saving the session to " + path);
  return host_->submit("save-session", [self, s, path](const JobControl&) {
    const QString error = save_session(s, path);  // copies plan files: not on the GUI thread
    EngineHost::post(self, [self, path, error] {
      if (error.isEmpty()) {
        self->log("session saved: " + path);
        self->context_->learnController()->markSessionSaved();
      } else {
        self->showBanner("Could not save the session:\n" + error);
      }
      Q_EMIT self->sessionSaved(path, error);
    });
  });
}

void MainWindow::autosave() {
  if (!session_->hasModel()) return;  // e.g. a session whose model is still opening: its copy comes once it is
  const StudioSession s = session_of(*context_, learn_->request(), tabs_->currentIndex());
  const QString path = recovery_session_path();
  QDir().mkpath(QFileInfo(path).absolutePath());
  // The tag supersedes a copy still queued: only the newest state is written.
  autosave_job_ = host_->submit("autosave-session", [s, path](const JobControl&) { save_session(s, path); });
}

bool MainWindow::openSession(const QString& path) {
  QString error;
  QStringList notes;
  StudioSession s = load_session(path, &error, &notes);
  if (!error.isEmpty()) {
    showBanner("Could not open the session:\n" + error);
    return false;
  }
  if (!confirmDiscard("open a session", true)) return false;
  LearnController* ctl = context_->learnController();
  ctl->cancel();
  for (const QString& n : notes) log("session: " + n);
  ctl->clearHistory();
  ctl->restoreRuns(std::move(s.runs));
  learn_->setRequest(s.learn);
  tabs_->setCurrentIndex(s.tab);
  pending_run_ = s.current_model == s.model_path ? s.current_run : 0;
  pending_session_ = path;
  banner_box_->hide();
  log("opening the session " + path);
  session_->open(s.model_path);
  return true;
}

bool MainWindow::offerRecovery() {
  const QString path = recovery_session_path();
  if (!unclean_start_ || !QFileInfo::exists(path)) return false;
  QString error;
  QStringList notes;
  const StudioSession s = load_session(path, &error, &notes);
  if (!error.isEmpty() || s.model_path.isEmpty()) {
    log("recovery copy not usable: " + (error.isEmpty() ? path + ": no model" : error));
    return false;
  }
  const QString question =
      QString("LATMiX Studio did not quit normally last time. Restore that session: %1 with %2 learned run%3?")
          .arg(QFileInfo(s.model_path).fileName())
          .arg(s.runs.size())
          .arg(s.runs.size() == 1 ? "" : "s");
  if (!confirm_("Restore the last session?", question)) return false;
  return openSession(path);
}

void MainWindow::showOverview() {
  const WeightOverview& o = session_->summary().overview;
  latmix::widgets::HeatmapData data;
  data.title = "Weight outliers: max|W| / RMS(W) per linear layer (hover for values)";
  data.value_label = "max|W| / RMS";
  for (int r = 0; r < o.rows; ++r) data.row_labels << QString("layer %1").arg(r);
  data.col_labels = o.columns;
  data.values = o.max_over_rms;
  heatmap_->setData(std::move(data));
  overview_note_.clear();
  if (overview_ != nullptr) overview_->update();
  Q_EMIT overviewShown();
}

void MainWindow::showModel(const ModelSummary& s) {
  banner_box_->hide();
  if (!session_->remote()) rememberRecent(s.path);  // Open recent opens here; a server's path is not

  setWindowTitle("LATMiX Studio — " + QFileInfo(s.path).fileName());
  model_header_->setText(QString("<b>%1</b> (%2, %3)<br>%4 layers, hidden %5, intermediate %6<br>"
                                 "heads %7 / kv %8, head_dim %9, vocab %10<br>%11 parameters (%12 M)<br>%13<br>weights %14")
                             .arg(QFileInfo(s.path).fileName(), s.architecture, s.source_format)
                             .arg(s.layers).arg(s.hidden).arg(s.intermediate).arg(s.heads).arg(s.kv_heads)
                             .arg(s.head_dim).arg(s.vocab).arg(s.parameters)
                             .arg(static_cast<double>(s.parameters) / 1e6, 0, 'f', 2)
                             .arg(s.tokenizer.toHtmlEscaped(), s.weights.toHtmlEscaped()));
  model_tree_->clear();
  QMap<QString, QTreeWidgetItem*> groups;
  for (const auto& row : s.modules) {
    const QStringList parts = row.name.split('.');
    QTreeWidgetItem* parent = nullptr;
    if (parts.size() > 2 && parts[0] == "layers") {
      const QString key = parts[0] + "." + parts[1];
      if (!groups.contains(key)) groups[key] = new QTreeWidgetItem(model_tree_, {"layer " + parts[1]});
      parent = groups[key];
    }
    const QString leaf = parent != nullptr ? QStringList(parts.mid(2)).join('.') : row.name;
    auto* item = parent != nullptr ? new QTreeWidgetItem(parent) : new QTreeWidgetItem(model_tree_);
    item->setText(0, leaf);
    item->setText(1, row.shape);
    item->setText(2, row.dtype);
    item->setText(3, QString::number(row.parameters));
  }
  heatmap_->setData({});
  overview_note_ = "Computing the weight overview: every linear layer's max|W| / RMS(W), one matrix at a time\n"
                   "(progress and Cancel in the status bar).";
  if (overview_ != nullptr) overview_->update();
  // Every per-model view starts empty for the new model (issue 17, Major 1).
  resetPanelsForModel();
  log(QString("opened %1: %2 parameters").arg(s.path).arg(s.parameters));
  if (!pending_session_.isEmpty()) {  // a session's model: pick its current run
    if (pending_run_ > 0) learn_->selectRun(pending_run_);
    pending_run_ = -1;
    const QString path = std::exchange(pending_session_, QString());
    log("session opened: " + path);
    Q_EMIT sessionOpened(path);
  }
  autosave();
}

void MainWindow::showBanner(const QString& message) {
  banner_->setText(message);
  retry_banner_->setVisible(context_->engineLink()->streamIsLost());
  banner_box_->show();
  log("error: " + message);
}

QString MainWindow::bannerText() const { return banner_box_->isHidden() ? QString() : banner_->text(); }

void MainWindow::log(const QString& line) {
  log_->appendPlainText(QDateTime::currentDateTime().toString("HH:mm:ss  ") + line);
}

void MainWindow::rememberRecent(const QString& path) {
  QSettings settings;
  QStringList recent = settings.value("recent").toStringList();
  recent.removeAll(path);
  recent.prepend(path);
  while (recent.size() > 10) recent.removeLast();
  settings.setValue("recent", recent);
  rebuildRecentMenu();
}

void MainWindow::rebuildRecentMenu() {
  recent_menu_->clear();
  const QStringList recent = QSettings().value("recent").toStringList();
  for (const QString& path : recent) {
    recent_menu_->addAction(path, this, [this, path] { openModel(path); });
  }
  recent_menu_->setEnabled(!recent.isEmpty());
}

bool MainWindow::saveScreenshot(const QString& path) {
  QSaveFile file(path);  // a temp file renamed over PATH: never half a PNG
  return file.open(QIODevice::WriteOnly) && grab().save(&file, "PNG") && file.commit();
}

void MainWindow::buildTour() {
  // Each step points at a tab (or the Learn tab's Start button) in window coordinates, computed when
  // shown so that it follows resizes and moved docks.
  auto tab_rect = [this](QWidget* page) {
    QTabBar* bar = tabs_->tabBar();
    const QRect r = bar->tabRect(tabIndexOf(page));
    return QRect(bar->mapTo(this, r.topLeft()), r.size());
  };
  auto widget_rect = [this](QWidget* w) {
    return w != nullptr && w->isVisible() ? QRect(w->mapTo(this, QPoint(0, 0)), w->size()) : QRect();
  };
  QPushButton* start = nullptr;
  for (QPushButton* b : learn_->findChildren<QPushButton*>()) {
    if (b->text() == "Start") start = b;
  }
  std::vector<TourStep> steps;
  steps.push_back({"Welcome: look inside the MX formats",
                   "The demo model (a 6M-parameter Llama trained on Gutenberg books) is open; its layers are in "
                   "the Model panel.<br><br>Start with the <b>Activation Explorer</b>: <i>Calibrate</i> runs a text "
                   "through the model and maps, per layer and per block of 32 values, where the energy and the "
                   "outliers are &mdash; before and after a transform.",
                   [this, tab_rect] { return tab_rect(explorer_); },
                   [this] { showTab(explorer_); }});
  steps.push_back({"The Block Microscope",
                   "Click a heatmap cell (or open this tab) to see one block: its 32 values, the shared power-of-two "
                   "scale, the format's grid, and the error of every value, before and after the transform. "
                   "Compare MXFP4, MXFP6, MXFP8, MXINT8 and NVFP4 on the same block.",
                   [this, tab_rect] { return tab_rect(microscope_); },
                   [this] { showTab(microscope_); }});
  steps.push_back({"Learn transforms",
                   "Pick a method (LATMiX learns an affine transform that makes the blocks easier to quantize) "
                   "and press <b>Start</b>: the loss curves come live; Pause, Resume and Cancel any time "
                   "(Ctrl+L starts).",
                   [widget_rect, start] { return widget_rect(start); },
                   [this] { showTab(learn_); }});
  steps.push_back({"Compare and export",
                   "<b>Compare</b> evaluates methods side by side (perplexity, tasks, SQNR). <b>Export</b> writes "
                   "the quantized model with its transforms as a verified compressed-tensors bundle in one click."
                   "<br><br>This tour is in Help &gt; Show tour.",
                   [this, tab_rect] { return tab_rect(export_); },
                   [this] { showTab(export_); }});
  tour_ = new Tour(this, std::move(steps));
}

void MainWindow::showTour() {
  const int tab = tabs_->currentIndex();
  auto conn = std::make_shared<QMetaObject::Connection>();
  *conn = connect(tour_, &Tour::ended, this, [this, tab, conn] {  // back where the person was
    QObject::disconnect(*conn);
    tabs_->setCurrentIndex(tab);
  });
  tour_->start();
}

bool MainWindow::startTourIfFirstRun() {
  if (Tour::seen()) return false;
  showTour();
  return true;
}


void MainWindow::closeEvent(QCloseEvent* e) {
  // Ctrl+Q during learning, or with runs never saved, asks first (issue 17, Major 9).
  if (!confirmDiscard("quit", true)) {
    e->ignore();
    return;
  }
  QSettings settings;
  settings.setValue("session/running", false);  // a clean quit: no recovery offered next time
  settings.setValue("window/geometry", saveGeometry());
  settings.setValue("window/state", saveState());
  settings.setValue("window/tab", tabs_->currentIndex());
  host_->cancelAll();
  e->accept();
}

void MainWindow::dragEnterEvent(QDragEnterEvent* e) {
  if (e->mimeData()->hasUrls()) e->acceptProposedAction();
}

void MainWindow::dropEvent(QDropEvent* e) {
  const auto urls = e->mimeData()->urls();
  if (!urls.isEmpty() && urls.first().isLocalFile()) openModel(urls.first().toLocalFile());
}

}  // namespace latmix::studio
