// MainWindow's remote engine (issue 19): File > Connect to engine..., File > Open model on engine...,
// the engine badge, the banner's Retry after a remote job's stream was lost, and the views emptied
// when the model closes. Apart from main_window.cpp to keep
// both short.
#include <QLabel>
#include <QPushButton>
#include <QTreeWidget>

#include "engine_dialogs.h"
#include "engine_host.h"
#include "explorer_panel.h"
#include "heatmap_view.h"
#include "imgui_host.h"
#include "latmix/api/learn.h"
#include "latmix/serve/client.h"
#include "learn_controller.h"
#include "learn_panel.h"
#include "main_window.h"
#include "microscope_panel.h"
#include "analyze_panel.h"
#include "compare_panel.h"
#include "export_panel.h"
#include "model_session.h"
#include "studio_context.h"

namespace latmix::studio {

void MainWindow::connectToEngine(const EngineAddress& address) {
  address.save();
  std::string token;
  try {
    token = address.resolveToken();
  } catch (const std::exception& e) {
    showBanner("Could not connect to the engine at " + address.url + ":\n" + QString::fromUtf8(e.what()));
    return;
  }
  log("connecting to " + address.url);
  context_->engineLink()->connectTo(address.url, token);
}

void MainWindow::chooseEngine() {
  EngineLink* link = context_->engineLink();
  ConnectDialog dialog(EngineAddress::load(), link->isRemote(), this);
  if (dialog.exec() != QDialog::Accepted) return;
  if (dialog.disconnectChosen()) {
    if (!confirmDiscard("disconnect from the engine", false)) return;
    link->disconnectEngine();
    return;
  }
  connectToEngine(dialog.address());
}

void MainWindow::chooseRemoteModel() {
  auto engine = context_->engineLink()->remote();
  if (!engine) return;
  RemoteFileDialog dialog(host_, engine, this);
  if (dialog.exec() != QDialog::Accepted || dialog.chosen().isEmpty()) return;
  openRemoteModel(dialog.chosen());
}

void MainWindow::chooseEngineJob() {
  auto engine = context_->engineLink()->remote();
  if (!engine) return;
  EngineJobsDialog dialog(engine, this);
  dialog.refresh();
  if (dialog.exec() != QDialog::Accepted || dialog.chosenId().isEmpty()) return;
  followEngineJob(dialog.chosenId(), dialog.chosenRequest());
}

bool MainWindow::followEngineJob(const QString& id, const nlohmann::json& request) {
  LearnController* ctl = context_->learnController();
  if (!session_->remote()) {
    showBanner("Open the job's model on the engine first (File > Open model on engine...), then follow job " + id + ".");
    return false;
  }
  LearnRequest r;
  try {
    r = api::learn_request_from_json(request);
  } catch (const std::exception& e) {
    showBanner("Cannot follow job " + id + ": its request does not read as a learning run's (" +
               QString::fromUtf8(e.what()) + ").");
    return false;
  }
  const QString model = QString::fromStdString(r.model);
  if (model != session_->summary().path) {
    showBanner("Job " + id + " learns " + model + ", and " + session_->summary().path +
               " is open: open that model on the engine first (File > Open model on engine...).");
    return false;
  }
  if (r.out.empty()) {
    showBanner("Job " + id + " writes no transforms (its request has no out): the Learn tab could not take its plan.");
    return false;
  }
  if (ctl->running()) {
    showBanner("A learning run is in progress in the Learn tab: cancel it or let it end, then follow job " + id + ".");
    return false;
  }
  showTab(learn_);
  log("following the engine's learn job " + id);
  return ctl->attach(id, r) != 0;
}

void MainWindow::openRemoteModel(const QString& path) {
  auto engine = context_->engineLink()->remote();
  if (!engine) {
    showBanner("Not connected to an engine: File > Connect to engine... first.");
    return;
  }
  if (!confirmDiscard("open another model", false)) return;
  context_->learnController()->cancel();
  banner_box_->hide();
  log("opening " + path + " on " + QString::fromStdString(engine->url()));
  session_->openRemote(engine, path);
}

void MainWindow::dismissBanner() {
  banner_box_->hide();
  EngineLink* link = context_->engineLink();
  if (!link->streamIsLost()) return;
  log("gave up following the remote job");
  link->giveUpLostStream();
}

void MainWindow::retryLostStream() {
  banner_box_->hide();
  log("re-attaching to the remote job");
  context_->engineLink()->retryLostStream();
}

QString MainWindow::engineBadge() const { return engine_badge_->text(); }

void MainWindow::resetPanelsForModel() {
  explorer_->modelChanged();
  microscope_->modelChanged();
  analyze_->modelChanged();
  learn_->modelChanged();
  compare_->modelChanged();
  export_->modelChanged();
}

void MainWindow::showNoModel() {
  setWindowTitle("LATMiX Studio");
  model_header_->setText("No model open.");
  model_tree_->clear();
  heatmap_->setData({});
  overview_note_.clear();
  if (overview_ != nullptr) overview_->update();
  resetPanelsForModel();
  log("model closed");
}

}  // namespace latmix::studio
