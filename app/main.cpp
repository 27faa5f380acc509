// latmix-studio: the desktop application.
#include <QApplication>
#include <QCommandLineParser>
#include <QDir>
#include <QFile>
#include <QSettings>
#include <QTimer>

#include "engine_host.h"
#include "main_window.h"
#include "latency_probe.h"
#include "latmix/version.h"
#include "model_session.h"
#include "settings_dialog.h"

int main(int argc, char** argv) {
  QApplication app(argc, argv);
  QApplication::setOrganizationName("LATMiX");
  QApplication::setApplicationName("LATMiX Studio");
  QApplication::setApplicationVersion(latmix::version());

  QCommandLineParser parser;
  parser.setApplicationDescription("Inspect and quantize LLMs to the OCP microscaling (MX) formats.");
  parser.addHelpOption();
  parser.addVersionOption();
  QCommandLineOption model({"m", "model"}, "Open this model folder or llama2.c .bin.", "PATH");
  QCommandLineOption shots("screenshot-dir", "Save a screenshot of each screen into DIR, then quit.", "DIR");
  parser.addOption(model);
  parser.addOption(shots);
  parser.process(app);

  latmix::studio::EngineHost host;
  latmix::studio::ModelSession session(&host);
  latmix::studio::apply_settings(latmix::studio::StudioSettings::load(), &host);
  latmix::studio::MainWindow window(&host, &session);
  window.show();

  QString path = parser.value(model);
  const bool first_start = !QSettings().contains("recent");
  if (path.isEmpty() && (first_start || parser.isSet(shots))) {
    path = latmix::studio::resources_dir() + "/models/gutenberg-llama-6M";
  }
  if (!path.isEmpty()) window.openModel(path);

  if (parser.isSet(shots)) {
    const QString dir = parser.value(shots);
    QDir().mkpath(dir);
    auto* probe = new latmix::studio::LatencyProbe(&host, &window);
    QObject::connect(&session, &latmix::studio::ModelSession::opened, &window, [&window, &app, dir, probe] {
      window.saveScreenshots(dir, [&app, dir, probe](bool ok) {
        const auto s = probe->summary();
        QFile f(dir + "/latency.txt");
        if (f.open(QIODevice::WriteOnly | QIODevice::Text)) {
          f.write(QString("gui event-loop lateness while jobs ran: %1 samples, p50 %2 ms, p99 %3 ms, max %4 ms\n")
                      .arg(s.samples).arg(s.p50_ms, 0, 'f', 1).arg(s.p99_ms, 0, 'f', 1).arg(s.max_ms, 0, 'f', 1)
                      .toUtf8());
        }
        app.exit(ok ? 0 : 1);
      });
    });
    QObject::connect(&session, &latmix::studio::ModelSession::openFailed, &window, [&app] { app.exit(1); });
  }
  return app.exec();
}
