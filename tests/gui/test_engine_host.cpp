// Qt Test (offscreen): the engine thread and the model session, without any window.
#include <QSignalSpy>
#include <QTest>

#include <atomic>
#include <thread>

#include "engine_host.h"
#include "latmix/api/model.h"
#include "latmix/error.h"
#include "model_session.h"
#include "settings_dialog.h"
#include "studio_fixture.h"

#include <QStandardPaths>

using latmix::studio::EngineHost;
using latmix::studio::ModelSession;

class TestEngineHost : public QObject {
  Q_OBJECT

 private Q_SLOTS:
  void initTestCase() {
    latmix::studio::test::isolate_settings("studio-tests", false);
  }

  void settingsPersist() {
    latmix::studio::StudioSettings s;
    s.threads = 3;
    s.palette = "dark";
    s.data_dir = "/tmp/data";
    s.save();
    const auto back = latmix::studio::StudioSettings::load();
    QCOMPARE(back.threads, 3);
    QCOMPARE(back.palette, QString("dark"));
    QCOMPARE(back.data_dir, QString("/tmp/data"));
    QCOMPARE(back.device, QString("cpu"));
  }

  void runsJobsOffTheGuiThread() {
    EngineHost host;
    QSignalSpy finished(&host, &EngineHost::jobFinished);
    std::atomic<bool> on_gui_thread{true};
    const auto gui = std::this_thread::get_id();
    host.submit("t", [&](const latmix::JobControl&) { on_gui_thread = std::this_thread::get_id() == gui; });
    QTRY_VERIFY_WITH_TIMEOUT(finished.count() > 0, 5000);
    QVERIFY(!on_gui_thread);
  }

  void reportsFailuresWithTheMessage() {
    EngineHost host;
    QSignalSpy failed(&host, &EngineHost::jobFailed);
    host.submit("bad", [](const latmix::JobControl&) { throw latmix::Error("model.bin: truncated"); });
    QTRY_VERIFY_WITH_TIMEOUT(failed.count() > 0, 5000);
    QCOMPARE(failed.at(0).at(2).toString(), QString("model.bin: truncated"));
  }

  void cancelStopsARunningJob() {
    EngineHost host;
    QSignalSpy started(&host, &EngineHost::jobStarted);
    QSignalSpy cancelled(&host, &EngineHost::jobCancelled);
    QSignalSpy progress(&host, &EngineHost::jobProgress);
    const quint64 id = host.submit("loop", [](const latmix::JobControl& job) {
      for (int i = 0; i < 100000; ++i) {
        job.cancel.check();
        job.report("spin", i, 100000);
        std::this_thread::sleep_for(std::chrono::milliseconds(1));
      }
    });
    QTRY_VERIFY_WITH_TIMEOUT(started.count() > 0, 5000);
    QTest::qWait(100);
    host.cancel(id);
    QTRY_VERIFY_WITH_TIMEOUT(cancelled.count() > 0, 5000);
    QVERIFY(progress.count() > 0);
    QVERIFY(progress.count() < 20);  // throttled to ~30 Hz over ~0.1 s
  }

  // The first report of a new stage is never throttled away, however soon it follows the last one:
  // the bar must not name the previous stage while the new one's first unit runs (issue #21).
  void theFirstReportOfAStageAlwaysComes() {
    EngineHost host;
    QSignalSpy progress(&host, &EngineHost::jobProgress);
    QSignalSpy finished(&host, &EngineHost::jobFinished);
    host.submit("stages", [](const latmix::JobControl& job) {
      for (int i = 0; i < 50; ++i) job.report("capture", i, 100);  // within microseconds: throttled
      job.report("fit", 0, 10);
    });
    QTRY_VERIFY_WITH_TIMEOUT(finished.count() > 0, 5000);
    QStringList stages;
    for (const auto& args : progress) stages << args.at(1).toString() + " " + args.at(2).toString();
    QVERIFY2(stages.contains("fit 0"), qPrintable(stages.join(", ")));
    QVERIFY2(stages.size() < 50, qPrintable(stages.join(", ")));  // the capture reports were throttled
  }

  void aNewerRequestSupersedesAQueuedOneWithTheSameTag() {
    EngineHost host;
    QSignalSpy finished(&host, &EngineHost::jobFinished);
    std::atomic<bool> release{false};
    host.submit("blocker", [&](const latmix::JobControl&) {
      while (!release) std::this_thread::sleep_for(std::chrono::milliseconds(1));
    });
    std::atomic<int> runs{0};
    host.submit("refresh", [&](const latmix::JobControl&) { runs += 1; });
    host.submit("refresh", [&](const latmix::JobControl&) { runs += 10; });
    release = true;
    QTRY_COMPARE_WITH_TIMEOUT(finished.count(), 2, 5000);
    QCOMPARE(runs.load(), 10);
  }

  void opensTheBundledModel() {
    EngineHost host;
    ModelSession session(&host);
    QSignalSpy opened(&session, &ModelSession::opened);
    QSignalSpy overview(&session, &ModelSession::overviewReady);
    session.open(QStringLiteral(LATMIX_SOURCE_DIR) + "/resources/models/gutenberg-llama-6M");
    QVERIFY(opened.wait(30000));
    QVERIFY(session.hasModel());
    QCOMPARE(session.summary().parameters, qint64(6524160));
    QVERIFY(overview.count() == 1 || overview.wait(30000));  // its own job, after the open
    QCOMPARE(session.summary().overview.rows, 6);
    QCOMPARE(static_cast<int>(session.summary().overview.max_over_rms.size()), 6 * 7);
    QVERIFY(session.summary().modules.size() > 6 * 9);
    // One summary (issue 16): the studio's is the engine's description that `latmix info` prints,
    // with the module rows of the loaded model; its Overview is the engine's weight_overview().
    const latmix::api::ModelDescription& d = session.summary().description;
    nlohmann::json studio = latmix::api::to_json(d);
    studio.erase("modules");
    const latmix::api::DescribeRequest r{session.summary().path.toStdString(), ""};
    const nlohmann::json cli = latmix::api::to_json(latmix::api::describe_model(r));
    QCOMPARE(QString::fromStdString(studio.dump()), QString::fromStdString(cli.dump()));
    QCOMPARE(session.summary().modules.size(), d.modules.size());
    QCOMPARE(session.summary().modules.front().shape, QString("[8192, 256]"));
    QCOMPARE(session.summary().architecture, QString::fromStdString(d.architecture));
    QVERIFY(session.summary().overview.max_over_rms == latmix::api::weight_overview(*session.model()).max_over_rms);
  }

  void aBrokenModelFailsWithAMessageAndKeepsRunning() {
    EngineHost host;
    ModelSession session(&host);
    QSignalSpy failed(&session, &ModelSession::openFailed);
    session.open("/nonexistent/model");
    QVERIFY(failed.wait(10000));
    QVERIFY(failed.at(0).at(1).toString().contains("no such file"));
    QVERIFY(!session.hasModel());
  }
};

QTEST_GUILESS_MAIN(TestEngineHost)
#include "test_engine_host.moc"
