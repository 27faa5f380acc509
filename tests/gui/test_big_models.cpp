// Qt Test (offscreen): issue 15 in the studio. The open model stays memory-mapped and the Overview
// and the explorer show the figures of the model held in memory; a job that needs the model held
// (learning, compare, an export that folds transforms) is refused in its panel, with both numbers,
// when it cannot fit (LATMIX_MEMORY_AVAILABLE simulates a small machine); the weight overview reports
// progress and cancels.
#include <QSignalSpy>
#include <QStandardPaths>
#include <QTest>

#include <atomic>
#include <thread>

#include "compare_panel.h"
#include "engine_host.h"
#include "explorer_panel.h"
#include "latmix/calib.h"
#include "latmix/error.h"
#include "latmix/memory.h"
#include "latmix/model.h"
#include "learn_controller.h"
#include "learn_panel.h"
#include "main_window.h"
#include "model_session.h"
#include "studio_fixture.h"

using latmix::studio::EngineHost;
using latmix::studio::ExplorerPanel;
using latmix::studio::MainWindow;
using latmix::studio::ModelSession;

namespace {

const QString kModel = QStringLiteral(LATMIX_SOURCE_DIR) + "/resources/models/gutenberg-llama-6M";

// Sets an environment variable for the scope of a test.
struct ScopedEnv {
  QByteArray name;
  ScopedEnv(const char* n, const QByteArray& value) : name(n) { qputenv(n, value); }
  ~ScopedEnv() { qunsetenv(name.constData()); }
};

}  // namespace

class TestBigModels : public QObject {
  Q_OBJECT

 private Q_SLOTS:
  void initTestCase() {
    latmix::studio::test::isolate_settings("studio-bigmodel-tests", false);
  }

  void theSimulatedLimitReplacesMemAvailable() {
    ScopedEnv limit("LATMIX_MEMORY_AVAILABLE", "3M");
    QCOMPARE(latmix::host_memory_available(), uint64_t{3} << 20);
    const std::string s = latmix::memory_shortfall(uint64_t{5} << 20, at::kCPU);
    QVERIFY2(s == "needs about 5.0 MiB of host memory (LATMIX_MEMORY_AVAILABLE), 3.0 MiB available", s.c_str());
  }

  // The studio opens mapped (as `latmix --weights auto` on the CPU); the Overview's and the
  // explorer's figures are those of the model loaded in memory in fp32 (the studio's path before).
  void opensMappedWithTheFiguresOfTheHeldModel() {
    EngineHost host;
    ModelSession session(&host);
    QSignalSpy opened(&session, &ModelSession::opened);
    QSignalSpy ready(&session, &ModelSession::overviewReady);
    QSignalSpy progress(&host, &EngineHost::jobProgress);
    session.open(kModel);
    QVERIFY(opened.wait(60000));
    QVERIFY(session.model()->mapped());
    QVERIFY(session.summary().mapped);
    QVERIFY(session.summary().weights.startsWith("memory-mapped"));
    QVERIFY(ready.count() == 1 || ready.wait(60000));
    const auto& mapped = session.summary().overview;
    QCOMPARE(mapped.rows, 6);
    QCOMPARE(static_cast<int>(mapped.max_over_rms.size()), 6 * 7);
    bool overview_progress = false;
    for (const auto& args : progress) overview_progress |= args.at(1).toString() == "overview";
    QVERIFY(overview_progress);

    const latmix::Model held = latmix::load_model(kModel.toStdString());
    QVERIFY(!held.mapped());
    const latmix::api::WeightOverview reference = latmix::api::weight_overview(held);
    QVERIFY(mapped.max_over_rms == reference.max_over_rms);  // bit for bit
    QVERIFY(mapped.rms == reference.rms);

    latmix::api::StatisticsRequest r;
    r.data = (QStringLiteral(LATMIX_SOURCE_DIR) + "/resources/calibration/pride_and_prejudice_ch1-6.txt").toStdString();
    r.samples = 2;
    r.seqlen = 64;
    r.point = "residual,attn_in,o_in,mlp_in,down_in";
    std::vector<std::pair<std::string, int64_t>> reports;
    latmix::JobControl job;
    job.progress = [&reports](std::string_view stage, int64_t done, int64_t) { reports.emplace_back(stage, done); };
    const auto from_mapped = latmix::api::run_statistics(r, *session.model(), *session.tokenizer(), job).stats;
    const auto from_held = latmix::api::run_statistics(r, held, *session.tokenizer(), {}).stats;
    QCOMPARE(latmix::stats_to_json(from_mapped), latmix::stats_to_json(from_held));
    // The calibration's progress moves per decoder layer (6 layers, one pass of 2 sequences), then says done.
    QCOMPARE(static_cast<int>(reports.size()), 7);
    QVERIFY(reports.front().first == "stats");
    QCOMPARE(reports.back().second, qint64(6));
  }

  // Learning, compare and an export with transforms need the model held: on a machine that is too
  // small each panel says so, with the numbers, and nothing runs. The mapped views still work.
  void jobsThatNeedTheModelHeldAreRefusedInTheirPanel() {
    EngineHost host;
    ModelSession session(&host);
    MainWindow w(&host, &session);
    QSignalSpy ready(&session, &ModelSession::overviewReady);
    w.openModel(kModel);
    QVERIFY(ready.wait(60000));
    // 6.5 M parameters: about 24.9 MiB in fp32; the "machine" has 4 MiB.
    ScopedEnv limit("LATMIX_MEMORY_AVAILABLE", "4M");

    latmix::studio::LearnPanel* learn = w.learn();
    QSignalSpy learn_failed(learn->controller(), &latmix::studio::LearnController::failed);
    QSignalSpy steps(learn->controller(), &latmix::studio::LearnController::stepsArrived);
    QVERIFY(learn->start() != 0);
    QVERIFY(learn_failed.wait(60000));
    QCOMPARE(steps.count(), 0);
    const QString learn_text = learn->summaryText();
    QVERIFY2(learn_text.contains("Learning: needs about 24.9 MiB of host memory (LATMIX_MEMORY_AVAILABLE), "
                                 "4.0 MiB available; nothing was started"),
             qPrintable(learn_text));

    latmix::studio::ComparePanel* compare = w.compare();
    QSignalSpy compare_failed(compare, &latmix::studio::ComparePanel::failed);
    compare->configure("alice", "w=mxfp4,a=none", 4);
    QVERIFY(compare->run() != 0);
    QVERIFY(compare_failed.wait(60000));
    QVERIFY2(compare_failed.at(0).at(0).toString().contains("Quantized evaluation: needs about 24.9 MiB"),
             qPrintable(compare_failed.at(0).at(0).toString()));

    // What reads the mapped model still runs: the explorer calibrates.
    ExplorerPanel* e = w.explorer();
    QSignalSpy calibrated(e, &ExplorerPanel::calibrated);
    QVERIFY(e->calibrate() != 0);
    QVERIFY(calibrated.wait(120000));
    QVERIFY(e->hasStats());
  }

  void theOverviewCancels() {
    EngineHost host;
    ModelSession session(&host);
    QSignalSpy ready(&session, &ModelSession::overviewReady);
    QSignalSpy stopped(&session, &ModelSession::overviewStopped);
    session.open(kModel);
    QVERIFY(ready.wait(60000));
    // Cancel from the GUI (the status bar's Cancel does the same), here while it waits its turn.
    std::atomic<bool> release{false};
    host.submit("blocker", [&release](const latmix::JobControl&) {
      while (!release) std::this_thread::sleep_for(std::chrono::milliseconds(1));
    });
    const quint64 id = session.computeOverview();
    QVERIFY(id != 0);
    host.cancel(id);
    release = true;
    QVERIFY(stopped.wait(30000));
    QCOMPARE(stopped.at(0).at(0).toString(), QString());  // cancelled, not failed
    QCOMPARE(session.overviewJob(), quint64(0));
    QCOMPARE(ready.count(), 1);  // the earlier overview stays

    // The engine function stops at the next matrix once cancelled mid-way.
    latmix::JobControl job;
    int64_t reported = 0;
    job.progress = [&job, &reported](std::string_view, int64_t done, int64_t) {
      reported = done;
      if (done == 3) job.cancel.cancel();
    };
    bool cancelled = false;
    try {
      latmix::api::weight_overview(*session.model(), job);
    } catch (const latmix::Cancelled&) {
      cancelled = true;
    }
    QVERIFY(cancelled);
    QCOMPARE(reported, int64_t{3});
  }

  void etaText() {
    QCOMPARE(latmix::studio::eta_text(0.5, 1, 10), QString());  // no pace yet
    QCOMPARE(latmix::studio::eta_text(10, 1, 4), QString(" — ETA 30 s"));
    QCOMPARE(latmix::studio::eta_text(60, 1, 3), QString(" — ETA 2 min 00 s"));
    QCOMPARE(latmix::studio::eta_text(3600, 1, 3), QString(" — ETA 2 h 00 min"));
    QCOMPARE(latmix::studio::eta_text(10, 4, 4), QString());
  }
};

QTEST_MAIN(TestBigModels)
#include "test_big_models.moc"
