#include "main_window.h"

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
#include <QMenuBar>
#include <QMimeData>
#include <QPlainTextEdit>
#include <QProgressBar>
#include <QPushButton>
#include <QScreen>
#include <QSettings>
#include <QStatusBar>
#include <QTabBar>
#include <QTabWidget>
#include <QTimer>
#include <QTreeWidget>
#include <QVBoxLayout>

#include "engine_host.h"
#include "heatmap_view.h"
#include "imgui_host.h"
#include "compare_panel.h"
#include "explorer_panel.h"
#include "export_panel.h"
#include "latency_probe.h"
#include "learn_panel.h"
#include "settings_dialog.h"
#include "microscope_panel.h"
#include "model_session.h"
#include "tour.h"

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

MainWindow::MainWindow(EngineHost* host, ModelSession* session, QWidget* parent)
    : QMainWindow(parent), host_(host), session_(session) {
  setWindowTitle("LATMiX Studio");
  setAcceptDrops(true);
  auto* central = new QWidget(this);
  auto* layout = new QVBoxLayout(central);
  layout->setContentsMargins(0, 0, 0, 0);
  banner_ = new QLabel(central);
  banner_->setWordWrap(true);
  banner_->setStyleSheet("QLabel { background: #8a1c1c; color: white; padding: 8px; }");
  banner_->hide();
  layout->addWidget(banner_);
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
      heatmap_->draw();
    });
    tabs_->addTab(overview_, "Overview");
  } else {
    auto* msg = new QLabel("OpenGL 3 is not available here: the live views are disabled.", tabs_);
    msg->setAlignment(Qt::AlignCenter);
    tabs_->addTab(msg, "Overview");
  }
  explorer_ = new ExplorerPanel(host_, session_, tabs_);
  tabs_->addTab(explorer_, "Activation Explorer");
  microscope_ = new MicroscopePanel(host_, session_, tabs_);
  tabs_->addTab(microscope_, "Block Microscope");
  learn_ = new LearnPanel(host_, session_, explorer_, tabs_);
  tabs_->addTab(learn_, "Learn");
  compare_ = new ComparePanel(host_, session_, tabs_);
  tabs_->addTab(compare_, "Compare");
  export_ = new ExportPanel(host_, session_, learn_, tabs_);  // issue #9, item 5
  tabs_->addTab(export_, "Export");
  connect(explorer_, &ExplorerPanel::blockClicked, this, [this](const QString& point, int layer, int block) {
    tabs_->setCurrentWidget(microscope_);
    microscope_->select(point, layer, block);
  });
  connect(learn_, &LearnPanel::showExplorer, this, [this] { tabs_->setCurrentWidget(explorer_); });
  setCentralWidget(central);
  buildMenus();
  buildDocks();
  connectEngine();
  buildTour();
  QSettings settings;
  restoreGeometry(settings.value("window/geometry").toByteArray());
  restoreState(settings.value("window/state").toByteArray());
  tabs_->setCurrentIndex(settings.value("window/tab", 0).toInt());
  if (!settings.contains("window/geometry")) resize(1280, 800);
}

MainWindow::~MainWindow() { delete heatmap_; }

void MainWindow::buildMenus() {
  QMenu* file = menuBar()->addMenu("&File");
  QAction* open_dir = file->addAction("&Open model folder...", this, [this] {
    const QString dir = QFileDialog::getExistingDirectory(this, "Open a Hugging Face model folder");
    if (!dir.isEmpty()) openModel(dir);
  });
  open_dir->setShortcut(QKeySequence::Open);
  file->addAction("Open llama2.c &checkpoint...", this, [this] {
    const QString f = QFileDialog::getOpenFileName(this, "Open a llama2.c checkpoint", {}, "llama2.c (*.bin)");
    if (!f.isEmpty()) openModel(f);
  });
  recent_menu_ = file->addMenu("Open &recent");
  rebuildRecentMenu();
  file->addAction("Open the &demo model", this, [this] {
    openModel(resources_dir() + "/models/gutenberg-llama-6M");
  });
  file->addSeparator();
  QAction* prefs = file->addAction("&Settings...", this, [this] {
    SettingsDialog dialog(this);
    if (dialog.exec() != QDialog::Accepted) return;
    const StudioSettings s = dialog.settings();
    s.save();
    apply_settings(s, host_);
    log("settings: device " + s.device + ", threads " + QString::number(s.threads) + ", palette " + s.palette);
  });
  prefs->setShortcut(QKeySequence::Preferences);
  file->addSeparator();
  file->addAction(export_->exportAction());
  file->addAction(export_->verifyAction());
  connect(export_->exportAction(), &QAction::triggered, this, [this] { tabs_->setCurrentWidget(export_); });
  connect(export_->verifyAction(), &QAction::triggered, this, [this] { tabs_->setCurrentWidget(export_); });
  file->addSeparator();
  QAction* quit = file->addAction("&Quit", this, &QWidget::close);
  quit->setShortcut(QKeySequence::Quit);

  QMenu* learn = menuBar()->addMenu("&Learn");
  for (QAction* a : {learn_->startAction(), learn_->pauseAction(), learn_->cancelAction()}) learn->addAction(a);
  connect(learn_->startAction(), &QAction::triggered, this, [this] { tabs_->setCurrentWidget(learn_); });

  QMenu* help = menuBar()->addMenu("&Help");
  help->addAction("Show &tour", this, [this] { showTour(); });
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
}

void MainWindow::connectEngine() {
  connect(host_, &EngineHost::jobStarted, this, [this](quint64 id, const QString& tag) {
    current_job_ = id;
    progress_->setRange(0, 0);
    progress_->show();
    cancel_->show();
    if (overview_ != nullptr) overview_->setAnimating(true);
    log("started: " + tag);
  });
  connect(host_, &EngineHost::jobProgress, this, [this](quint64, const QString& stage, qint64 done, qint64 total) {
    // Byte counts pass 2^31 on large models: the bar counts in units that fit an int.
    const qint64 unit = std::max<qint64>(1, total / (qint64(1) << 30));
    progress_->setRange(0, total > 0 ? static_cast<int>(total / unit) : 0);
    progress_->setValue(static_cast<int>(done / unit));
    progress_->setFormat(stage + (unit > 1 ? " %p%" : " %v/%m"));
  });
  auto job_ended = [this] {
    progress_->hide();
    cancel_->hide();
    if (overview_ != nullptr) overview_->setAnimating(false);
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
  connect(session_, &ModelSession::openFailed, this, [this](const QString& path, const QString& msg) {
    showBanner("Could not open " + path + ":\n" + msg);
  });
}

void MainWindow::openModel(const QString& path) {
  banner_->hide();
  log("opening " + path);
  session_->open(path);
}

void MainWindow::showModel(const ModelSummary& s) {
  banner_->hide();
  rememberRecent(s.path);
  setWindowTitle("LATMiX Studio — " + QFileInfo(s.path).fileName());
  model_header_->setText(QString("<b>%1</b> (%2, %3)<br>%4 layers, hidden %5, intermediate %6<br>"
                                 "heads %7 / kv %8, head_dim %9, vocab %10<br>%11 parameters (%12 M)<br>%13")
                             .arg(QFileInfo(s.path).fileName(), s.architecture, s.source_format)
                             .arg(s.layers).arg(s.hidden).arg(s.intermediate).arg(s.heads).arg(s.kv_heads)
                             .arg(s.head_dim).arg(s.vocab).arg(s.parameters)
                             .arg(static_cast<double>(s.parameters) / 1e6, 0, 'f', 2)
                             .arg(s.tokenizer.toHtmlEscaped()));
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
  latmix::widgets::HeatmapData data;
  data.title = "Weight outliers: max|W| / RMS(W) per linear layer (hover for values)";
  data.value_label = "max|W| / RMS";
  for (int r = 0; r < s.overview.rows; ++r) data.row_labels << QString("layer %1").arg(r);
  data.col_labels = s.overview.columns;
  data.values = s.overview.max_over_rms;
  heatmap_->setData(std::move(data));
  if (overview_ != nullptr) overview_->update();
  explorer_->modelChanged();
  microscope_->modelChanged();
  learn_->modelChanged();
  export_->modelChanged();
  log(QString("opened %1: %2 parameters").arg(s.path).arg(s.parameters));
}

void MainWindow::showBanner(const QString& message) {
  banner_->setText(message);
  banner_->show();
  log("error: " + message);
}

QString MainWindow::bannerText() const { return banner_->isVisible() ? banner_->text() : QString(); }

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

bool MainWindow::saveScreenshot(const QString& path) { return grab().save(path, "PNG"); }

void MainWindow::buildTour() {
  // Each step points at a tab (or the Learn tab's Start button) in window coordinates, computed when
  // shown so that it follows resizes and moved docks.
  auto tab_rect = [this](QWidget* page) {
    QTabBar* bar = tabs_->tabBar();
    const QRect r = bar->tabRect(tabs_->indexOf(page));
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
                   [this] { tabs_->setCurrentWidget(explorer_); }});
  steps.push_back({"The Block Microscope",
                   "Click a heatmap cell (or open this tab) to see one block: its 32 values, the shared power-of-two "
                   "scale, the format's grid, and the error of every value, before and after the transform. "
                   "Compare MXFP4, MXFP6, MXFP8, MXINT8 and NVFP4 on the same block.",
                   [this, tab_rect] { return tab_rect(microscope_); },
                   [this] { tabs_->setCurrentWidget(microscope_); }});
  steps.push_back({"Learn transforms",
                   "Pick a method (LATMiX learns an affine transform that makes the blocks easier to quantize) "
                   "and press <b>Start</b>: the loss curves come live; Pause, Resume and Cancel any time "
                   "(Ctrl+L starts).",
                   [widget_rect, start] { return widget_rect(start); },
                   [this] { tabs_->setCurrentWidget(learn_); }});
  steps.push_back({"Compare and export",
                   "<b>Compare</b> evaluates methods side by side (perplexity, tasks, SQNR). <b>Export</b> writes "
                   "the quantized model with its transforms as a verified compressed-tensors bundle in one click."
                   "<br><br>This tour is in Help &gt; Show tour.",
                   [this, tab_rect] { return tab_rect(export_); },
                   [this] { tabs_->setCurrentWidget(export_); }});
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

namespace {

// Runs `then` (after a short settle) the first time `signal` fires.
template <typename Sender, typename Signal>
void after(QObject* receiver, Sender* sender, Signal signal, std::function<void()> then, int settle_ms = 400) {
  auto conn = std::make_shared<QMetaObject::Connection>();
  *conn = QObject::connect(sender, signal, receiver, [receiver, conn, then, settle_ms] {
    QObject::disconnect(*conn);
    QTimer::singleShot(settle_ms, receiver, then);
  });
}

}  // namespace

void MainWindow::saveScreenshots(const QString& dir, std::function<void(bool)> done) {
  // Overview -> explorer (after a short calibration) -> microscope -> compare (specs) -> learn
  // (20 steps; a second run refreshed mid-run and cancelled) -> compare (methods).
  auto ok = std::make_shared<bool>(true);
  auto ended = std::make_shared<bool>(false);
  auto finish = [done, ended](bool result) {  // once, whichever way the scenario ends
    if (*ended) return;
    *ended = true;
    done(result);
  };
  auto shoot = [this, dir, ok](const QString& name) { *ok = saveScreenshot(dir + "/" + name + ".png") && *ok; };
  resize(1560, 960);
  // A failed (or unexpectedly cancelled) step ends the scenario with an error instead of waiting forever.
  auto failed = [this, finish](quint64, const QString& tag, const QString& message) {
    static const QStringList watched = {"calibrate",       "microscope",     "compare", "learn",
                                        "compare-methods", "compare-report", "export",  "verify-export"};
    if (!watched.contains(tag)) return;
    log("screenshot scenario stopped: " + tag + " " + message);
    finish(false);
  };
  connect(host_, &EngineHost::jobFailed, this, failed);
  connect(host_, &EngineHost::jobCancelled, this, [failed](quint64 id, const QString& tag) {
    if (tag != "learn") failed(id, tag, "cancelled");  // the scenario cancels one learning run itself
  });
  tabs_->setCurrentIndex(0);
  showTour();  // the first-run tour's first step (tour.png), dismissed before the scenario goes on
  QTimer::singleShot(400, this, [this, shoot] {
    shoot("tour");
    tour_->dismiss();
  });
  QTimer::singleShot(800, this, [this, dir, shoot, finish, ok] {
    shoot("overview");
    tabs_->setCurrentWidget(explorer_);
    after(this, explorer_, &ExplorerPanel::calibrated, [this, dir, shoot, finish, ok] {
      explorer_->setView("residual", "energy_share", "before");
      QTimer::singleShot(300, this, [this, dir, shoot, finish, ok] {
        shoot("explorer");
        tabs_->setCurrentWidget(microscope_);
        after(this, microscope_, &MicroscopePanel::refreshed, [this, dir, shoot, finish, ok] {
          shoot("microscope");
          tabs_->setCurrentWidget(compare_);
          after(this, compare_, &ComparePanel::finished, [this, dir, shoot, finish, ok] {
            shoot("compare");
            shootLearning(dir, shoot, [this, dir, shoot, finish, ok](bool result) {
              if (!result) {
                finish(false);
                return;
              }
              shootExport(dir, shoot, [finish, ok](bool exported) { finish(exported && *ok); });
            });
          });
          // a short comparison, so that the scripted run stays quick on a small machine
          compare_->configure("text:" + resources_dir() + "/calibration/pride_and_prejudice_ch1-6.txt,winogrande",
                              "w=mxfp4,a=none,weights=rtn\nw=mxfp4,a=mxfp4,weights=gptq", 20);
          if (compare_->run() == 0) finish(false);
        });
        microscope_->select("residual", 1, 6);
      });
    });
    if (explorer_->calibrate() == 0) finish(false);
  });
}

void MainWindow::shootLearning(const QString& dir, std::function<void(const QString&)> shoot,
                               std::function<void(bool)> done) {
  const QString sample = resources_dir() + "/calibration/pride_and_prejudice_ch1-6.txt";
  LearnRequest r;
  r.method = "latmix";
  r.quant = "mxfp4";
  r.calib = QFileInfo::exists(studio_data_dir() + "/corpus/gutenberg") ? "gutenberg" : sample;
  r.samples = 32;
  r.seqlen = 128;
  r.steps = 20;
  tabs_->setCurrentWidget(learn_);
  learn_->setRequest(r);
  learn_->setLogScale(true);  // the regularizer is two decades below the KL term
  learn_probe_ = new LatencyProbe(host_, this);  // event-loop lateness while learning runs
  LearnController* ctl = learn_->controller();
  after(this, ctl, &LearnController::finished, [this, dir, shoot, done, ctl, r]() mutable {
    const size_t steps = ctl->curve().size();
    log(QString("scenario: learned %1 steps, loss %2 -> %3").arg(steps)
            .arg(steps > 0 ? ctl->curve().front().loss : 0.0).arg(steps > 0 ? ctl->curve().back().loss : 0.0));
    shoot("learn");
    // 20 steps, or fewer when validation stopped the run early (LearnSettings::patience).
    if (steps == 0 || steps > 20) done(false);
    scenario_plan_ = std::make_shared<LearnOutcome>(ctl->outcome());  // exported at the end
    // A second, longer run: refresh the explorer's heatmap from a snapshot mid-run, then cancel it.
    r.steps = 400;
    learn_->setRequest(r);
    after(this, ctl, &LearnController::stepsArrived, [this, ctl] {
      log("scenario: refreshing the heatmap from the run in progress");
      if (!learn_->refreshHeatmap()) ctl->cancel();
    }, 0);
    after(this, learn_, &LearnPanel::heatmapRefreshed, [this, ctl] {
      log("scenario: heatmap refreshed mid-run; cancelling the run");
      ctl->cancel();
    }, 0);
    after(this, ctl, &LearnController::cancelled, [this, dir, shoot, done] {
      const auto s = learn_probe_->summary();
      learning_latency_ = {s.samples, s.p50_ms, s.p99_ms, s.max_ms};
      delete learn_probe_;
      learn_probe_ = nullptr;
      log(QString("scenario: learning run cancelled; GUI lateness while learning p50 %1 ms, p99 %2 ms, max %3 ms")
              .arg(s.p50_ms, 0, 'f', 1).arg(s.p99_ms, 0, 'f', 1).arg(s.max_ms, 0, 'f', 1));
      tabs_->setCurrentWidget(compare_);
      after(this, compare_, &ComparePanel::methodsFinished, [this, dir, shoot, done] {
        shoot("compare-methods");
        after(this, compare_, &ComparePanel::reportSaved, [done] { done(true); }, 0);
        if (compare_->saveReport(dir + "/compare-report") == 0) done(false);
      });
      LearnRequest m;
      m.quant = "mxfp4";
      m.calib = resources_dir() + "/calibration/pride_and_prejudice_ch1-6.txt";
      m.samples = 16;
      m.seqlen = 128;
      m.steps = 8;
      // held-out text of the gutenberg models when the data folder is there, else the bundled sample
      const bool data = QFileInfo::exists(studio_data_dir() + "/corpus/gutenberg");
      compare_->configureMethods({"rtn", "quarot", "mr-gptq", "latmix"}, data ? "frankenstein" : "text:" + m.calib, 8,
                                 256, m);
      if (compare_->runMethods() == 0) done(false);
    });
    // started a moment after the screenshot, as a person would
    QTimer::singleShot(300, this, [this, done] {
      if (learn_->start() == 0) done(false);
    });
  });
  if (learn_->start() == 0) done(false);
}

void MainWindow::shootExport(const QString& dir, std::function<void(const QString&)> shoot,
                             std::function<void(bool)> done) {
  // The plan learned first (20 steps), as compressed-tensors in a .zip bundle in `dir`, with the Learn
  // tab's format; then the bundle is verified again from disk, as Verify bundle... does.
  tabs_->setCurrentWidget(export_);
  if (scenario_plan_ && !scenario_plan_->plan_prefix.isEmpty()) {
    export_->setPlan(*scenario_plan_);
  } else {
    log("scenario: no learned plan to export");
    done(false);
    return;
  }
  export_->setOutputFolder(dir);
  export_->setKind("compressed-tensors");
  export_->setZip(true);
  export_->setQuant("");
  after(this, export_, &ExportPanel::exported, [this, shoot, done] {
    const ExportOutcome o = export_->lastOutcome();
    log(QString("scenario: exported %1 (%2, verified: %3)").arg(o.path).arg(format_bytes(o.zip_bytes))
            .arg(o.verified ? "yes" : "NO"));
    if (!o.verified) {
      done(false);
      return;
    }
    after(this, export_, &ExportPanel::verified, [this, shoot, done] {
      const ExportOutcome v = export_->lastOutcome();
      log(QString("scenario: bundle %1: %2").arg(v.path, v.verified ? "verified" : "VERIFICATION FAILED"));
      shoot("export");
      done(v.verified);
    }, 300);
    if (export_->verify(o.path) == 0) done(false);
  }, 0);
  after(this, export_, &ExportPanel::exportFailed, [this, done] {
    log("scenario: export failed: " + export_->lastOutcome().message);
    done(false);
  }, 0);
  after(this, export_, &ExportPanel::exportCancelled, [done] { done(false); }, 0);
  if (export_->startExport() == 0) done(false);
}

void MainWindow::closeEvent(QCloseEvent* e) {
  QSettings settings;
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
