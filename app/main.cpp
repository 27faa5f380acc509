// latmix-studio: the desktop application.
#include <QApplication>
#include <QByteArray>
#include <QCommandLineParser>
#include <QDir>
#include <QElapsedTimer>
#include <QFile>
#include <QSettings>
#include <QTimer>

#include <cstdio>
#include <memory>

#include "engine_host.h"
#include "latency_probe.h"
#include "latmix/malloc_tuning.h"
#include "latmix/version.h"
#include "main_window.h"
#include "model_session.h"
#include "settings_dialog.h"

namespace {

// --help and --version must answer without a display (a server, the package test): QApplication would
// abort for want of one, so these are parsed by a QCoreApplication first.
bool asks_only_for_help_or_version(int argc, char** argv) {
  for (int i = 1; i < argc; ++i) {
    const QByteArray a(argv[i]);
    if (a == "--help" || a == "-h" || a == "--help-all" || a == "--version" || a == "-v") return true;
  }
  return false;
}

}  // namespace

int main(int argc, char** argv) {
  QCoreApplication::setOrganizationName("LATMiX");
  QCoreApplication::setApplicationName("LATMiX Studio");
  QCoreApplication::setApplicationVersion(QString("%1 (commit %2)").arg(latmix::version(), latmix::git_commit()));

  QCommandLineParser parser;
  parser.setApplicationDescription("Inspect and quantize LLMs to the OCP microscaling (MX) formats.");
  parser.addHelpOption();
  parser.addVersionOption();
  QCommandLineOption model({"m", "model"}, "Open this model folder or llama2.c .bin.", "PATH");
  parser.addOption(model);
  QCommandLineOption screenshot("screenshot",
                                "Open the model (--model, else the bundled demo), save a PNG of the window to FILE once it "
                                "is open, and quit: exit 0, or 1 when the model or the file fails (scripts, bug reports).",
                                "FILE");
  parser.addOption(screenshot);
  if (asks_only_for_help_or_version(argc, argv)) {
    QCoreApplication core(argc, argv);
    parser.process(core);  // prints the help or the version and exits (or reports a bad option)
  }
  // Before any thread or tensor: the engine's work runs on the EngineHost's thread (latmix/malloc_tuning.h).
  latmix::tune_malloc_for_tensors();
  QApplication app(argc, argv);
  parser.process(app);

  latmix::studio::EngineHost host;
  latmix::studio::ModelSession session(&host);
  latmix::studio::apply_settings(latmix::studio::StudioSettings::load(), &host);
  latmix::studio::MainWindow window(&host, &session);
  window.show();

  const QString shot = parser.value(screenshot);
  if (!shot.isEmpty()) {
    // --screenshot FILE: no recovery offer, no tour; the window once the model is open, then quit.
    const QString path = parser.value(model).isEmpty() ? latmix::studio::demo_model() : parser.value(model);
    QObject::connect(&session, &latmix::studio::ModelSession::opened, &window, [&window, &app, shot] {
      QTimer::singleShot(100, &window, [&window, &app, shot] {  // after the panels' first paint
        const bool ok = window.saveScreenshot(shot);
        if (!ok) std::fprintf(stderr, "latmix-studio: cannot write the screenshot %s\n", qPrintable(shot));
        app.exit(ok ? 0 : 1);
      });
    });
    QObject::connect(&session, &latmix::studio::ModelSession::openFailed, &window,
                     [&app](const QString& failed, const QString& message) {
                       std::fprintf(stderr, "latmix-studio: %s: %s\n", qPrintable(failed), qPrintable(message));
                       app.exit(1);
                     });
    window.openModel(path);
    return app.exec();
  }

  // After a crash (the last start never quit cleanly), offer that session back first.
  const bool recovered = parser.value(model).isEmpty() && window.offerRecovery();
  QString path = recovered ? QString() : parser.value(model);
  const bool first_start = !QSettings().contains("recent");
  if (!recovered && path.isEmpty() && first_start) {
    path = latmix::studio::demo_model();
  }
  if (!path.isEmpty()) window.openModel(path);
  // The first-run tour (issue #10).
  QTimer::singleShot(500, &window, [&window] { window.startTourIfFirstRun(); });

  return app.exec();
}
