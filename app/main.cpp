// latmix-studio: the desktop application.
#include <QApplication>
#include <QByteArray>
#include <QCommandLineParser>
#include <QDir>
#include <QElapsedTimer>
#include <QFile>
#include <QSettings>
#include <QTimer>

#include <memory>

#include "engine_host.h"
#include "main_window.h"
#include "latency_probe.h"
#include "latmix/version.h"
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
  QCommandLineOption shots("screenshot-dir", "Save a screenshot of each screen into DIR, then quit.", "DIR");
  parser.addOption(model);
  parser.addOption(shots);
  if (asks_only_for_help_or_version(argc, argv)) {
    QCoreApplication core(argc, argv);
    parser.process(core);  // prints the help or the version and exits (or reports a bad option)
  }
  QApplication app(argc, argv);
  parser.process(app);

  latmix::studio::EngineHost host;
  latmix::studio::ModelSession session(&host);
  latmix::studio::apply_settings(latmix::studio::StudioSettings::load(), &host);
  latmix::studio::MainWindow window(&host, &session);
  window.show();

  // After a crash (the last start never quit cleanly), offer that session back first.
  const bool recovered = !parser.isSet(shots) && parser.value(model).isEmpty() && window.offerRecovery();
  QString path = recovered ? QString() : parser.value(model);
  const bool first_start = !QSettings().contains("recent");
  if (!recovered && path.isEmpty() && (first_start || parser.isSet(shots))) {
    path = latmix::studio::resources_dir() + "/models/gutenberg-llama-6M";
  }
  if (!path.isEmpty()) window.openModel(path);
  // The first-run tour (issue #10); the screenshot scenario shows and dismisses it itself.
  if (!parser.isSet(shots)) QTimer::singleShot(500, &window, [&window] { window.startTourIfFirstRun(); });

  if (parser.isSet(shots)) {
    const QString dir = parser.value(shots);
    QDir().mkpath(dir);
    auto* probe = new latmix::studio::LatencyProbe(&host, &window);
    auto wall = std::make_shared<QElapsedTimer>();
    wall->start();
    QObject::connect(&session, &latmix::studio::ModelSession::opened, &window, [&window, &app, dir, probe, wall] {
      window.saveScreenshots(dir, [&window, &app, dir, probe, wall](bool ok) {
        const auto s = probe->summary();
        const auto l = window.learningLatency();
        // Responsiveness is reported here, not gated (the test shares the cores with other tests; the
        // benchmark gui_learn_latency measures it alone): 50 ms is the p99 target while learning runs.
        const bool responsive = l.samples > 0 && l.p99_ms < 50.0;
        QFile f(dir + "/latency.txt");
        if (f.open(QIODevice::WriteOnly | QIODevice::Text)) {
          f.write(QString("gui event-loop lateness while jobs ran: %1 samples, p50 %2 ms, p99 %3 ms, max %4 ms\n"
                          "gui event-loop lateness while learning ran: %5 samples, p50 %6 ms, p99 %7 ms, max %8 ms "
                          "(%9: the target is a p99 under 50 ms; reported, not gated)\n"
                          "scenario wall time: %10 s\n")
                      .arg(s.samples).arg(s.p50_ms, 0, 'f', 1).arg(s.p99_ms, 0, 'f', 1).arg(s.max_ms, 0, 'f', 1)
                      .arg(l.samples).arg(l.p50_ms, 0, 'f', 1).arg(l.p99_ms, 0, 'f', 1).arg(l.max_ms, 0, 'f', 1)
                      .arg(responsive ? "ok" : "over the target")
                      .arg(static_cast<double>(wall->elapsed()) / 1000.0, 0, 'f', 1)
                      .toUtf8());
        }
        app.exit(ok && l.samples > 0 ? 0 : 1);
      });
    });
    QObject::connect(&session, &latmix::studio::ModelSession::openFailed, &window, [&app] { app.exit(1); });
  }
  return app.exec();
}
