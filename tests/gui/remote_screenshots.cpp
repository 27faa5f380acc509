// The studio connected to a `latmix serve` engine, as docs/remote.md shows it step by step (run
// under Xvfb by remote_screenshots.sh: the heatmaps are OpenGL views). A server on 127.0.0.1 (port
// 8187, the docs' tunnel port, when it is free) serves resources/ and a temporary folder; then
//   remote-connect.png   File > Connect to engine..., filled in;
//   remote-browse.png    File > Open model on engine..., the server's models folder;
//   remote-explorer.png  the bundled model open on the engine, its statistics computed there (the
//                        status bar's badge names the engine);
//   remote-learn.png     a short learning run on the engine, its curve streamed here.
// Exits 0 when every step worked and every screenshot was written, 1 otherwise (saying which).
#include <QApplication>
#include <QDir>
#include <QLineEdit>
#include <QTemporaryDir>
#include <QTimer>
#include <torch/version.h>

#include <cstdio>
#include <functional>
#include <memory>
#include <thread>

#include "engine_dialogs.h"
#include "engine_host.h"
#include "engine_link.h"
#include "explorer_panel.h"
#include "latmix/error.h"
#include "latmix/malloc_tuning.h"
#include "latmix/serve/server.h"
#include "learn_controller.h"
#include "learn_panel.h"
#include "main_window.h"
#include "model_session.h"
#include "settings_dialog.h"
#include "studio_context.h"

using namespace latmix::studio;

namespace {

constexpr const char* kToken = "the-token-latmix-serve-wrote-on-the-server";

void note(const QString& line) {
  std::printf("%s\n", line.toUtf8().constData());
  std::fflush(stdout);
}

// Calls `f` once, the first time `signal` of `sender` fires.
template <typename Sender, typename Signal, typename F>
void once(Sender* sender, Signal signal, F f) {
  auto connection = std::make_shared<QMetaObject::Connection>();
  *connection = QObject::connect(sender, signal, sender, [connection, f](auto&&...) {
    QObject::disconnect(*connection);
    f();
  });
}

}  // namespace

int main(int argc, char** argv) {
  if (argc != 2) {
    std::fprintf(stderr, "usage: %s DIR\n", argv[0]);
    return 2;
  }
  latmix::tune_malloc_for_tensors();
  QApplication app(argc, argv);
  QCoreApplication::setOrganizationName("LATMiX");
  QCoreApplication::setApplicationName("LATMiX Studio");
  const QString dir = QString::fromLocal8Bit(argv[1]);
  QDir().mkpath(dir);
  const QString resources = QDir(resources_dir()).canonicalPath();

  QTemporaryDir runs;
  latmix::serve::ServeOptions o;
  o.roots = {runs.path().toStdString(), resources.toStdString()};
  o.token = kToken;
  o.facts = {{"libtorch", TORCH_VERSION}};  // as `latmix serve` says (the badge shows it)
  o.bundled_sample = (resources + "/calibration/pride_and_prejudice_ch1-6.txt").toStdString();
  std::unique_ptr<latmix::serve::Server> server;
  int port = 0;
  for (int wanted : {8187, 0}) {  // the docs' port when free, else any
    try {
      o.port = wanted;
      server = std::make_unique<latmix::serve::Server>(o);
      port = server->bind();
      break;
    } catch (const latmix::Error&) {
      server.reset();
    }
  }
  if (!server) {
    note("remote screenshots: could not start a server on 127.0.0.1");
    return 1;
  }
  std::thread serving([&] { server->run(); });
  const QString url = QString("http://127.0.0.1:%1").arg(port);

  EngineHost host;
  ModelSession session(&host);
  apply_settings(StudioSettings::load(), &host);
  MainWindow window(&host, &session);
  window.resize(1280, 720);
  window.show();
  bool ok = true;
  auto fail = [&](const QString& why) {
    note("remote screenshots: " + why);
    ok = false;
    app.exit(1);
  };
  auto shoot = [&](const QString& name, QWidget* what) {
    const bool saved = what == &window ? window.saveScreenshot(dir + "/" + name + ".png")
                                       : what->grab().save(dir + "/" + name + ".png");
    note("remote screenshots: " + name + ".png" + (saved ? "" : " NOT written"));
    ok = ok && saved;
  };
  EngineLink* link = window.context()->engineLink();
  QObject::connect(link, &EngineLink::connectFailed, &window,
                   [&](const QString&, const QString& message) { fail("connect failed: " + message); });
  QObject::connect(&session, &ModelSession::openFailed, &window, [&] { fail("the model did not open on the engine"); });
  QObject::connect(&host, &EngineHost::jobFailed, &window, [&](quint64, const QString& tag, const QString& message) {
    fail(tag + " failed: " + message);
  });

  // 1. The connect dialog, as a person fills it in after `ssh -L 8187:127.0.0.1:8187 gpu-server`.
  QTimer::singleShot(300, &window, [&] {
    auto* dialog = new ConnectDialog({url, "", ""}, false, &window);
    dialog->show();
    QTimer::singleShot(300, &window, [&, dialog] {
      shoot("remote-connect", dialog);
      dialog->close();
      dialog->deleteLater();
      once(link, &EngineLink::connected, [&] {
        // 2. The server's folders (the dialog lists the roots as it opens).
        auto* browser = new RemoteFileDialog(&host, link->remote(), &window);
        static_cast<QDialog*>(browser)->show();  // (RemoteFileDialog's own show() draws a listing)
        once(browser, &RemoteFileDialog::listed, [&, browser] {
          browser->browse(resources + "/models");
          once(browser, &RemoteFileDialog::listed, [&, browser] {
            shoot("remote-browse", browser);
            browser->close();
            browser->deleteLater();
            // 3. The model open there, its statistics computed there.
            once(&session, &ModelSession::opened, [&] {
              window.showTab(window.explorer());
              window.explorer()->setSequences(8, 128);
              once(window.explorer(), &ExplorerPanel::calibrated, [&] {
                window.explorer()->setView("residual", "energy_share", "before");
                QTimer::singleShot(400, &window, [&] {
                  shoot("remote-explorer", &window);
                  // 4. A short learning run there, its curve here.
                  LearnRequest r;
                  r.method = "latmix";
                  r.quant = "mxfp4";
                  r.calib = bundled_sample().toStdString();
                  r.samples = 8;
                  r.seqlen = 64;
                  r.batch = 2;
                  r.steps = 12;
                  window.showTab(window.learn());
                  window.learn()->setRequest(r);
                  window.learn()->setLogScale(true);
                  once(window.learn()->controller(), &LearnController::finished, [&] {
                    QTimer::singleShot(400, &window, [&] {
                      shoot("remote-learn", &window);
                      app.exit(ok ? 0 : 1);
                    });
                  });
                  if (window.learn()->start() == 0) fail("the learning run did not start");
                });
              });
              if (window.explorer()->calibrate() == 0) fail("the statistics did not start");
            });
            window.openRemoteModel(resources + "/models/gutenberg-llama-6M");
          });
        });
      });
      window.connectToEngine({url, kToken, ""});
    });
  });
  QTimer::singleShot(600000, &window, [&] { fail("timed out after 10 minutes"); });
  const int rc = app.exec();
  server->stop();
  serving.join();
  return rc;
}
