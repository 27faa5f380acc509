// Qt Test (offscreen): the StudioContext on the bundled model — the panels share the explorer's
// settings, the plans, the Learn tab's request and the way to the microscope through it (no panel
// holds another), and a panel destroyed while its job runs gets nothing: neither it nor, through
// it, another panel (issue 16).
#include <QSignalSpy>
#include <QTest>

#include <memory>

#include "analyze_panel.h"
#include "engine_host.h"
#include "explorer_panel.h"
#include "export_panel.h"
#include "latmix/api/analyze.h"
#include "latmix/api/statistics.h"
#include "latmix/calib.h"
#include "learn_controller.h"
#include "learn_panel.h"
#include "microscope_panel.h"
#include "model_session.h"
#include "studio_context.h"
#include "studio_fixture.h"
#include "zygote_qtest.h"

using latmix::studio::AnalyzePanel;
using latmix::studio::BlockTarget;
using latmix::studio::EngineHost;
using latmix::studio::ExplorerPanel;
using latmix::studio::ExportPanel;
using latmix::studio::LearnController;
using latmix::studio::LearnPanel;
using latmix::studio::LearnRequest;
using latmix::studio::MicroscopePanel;
using latmix::studio::ModelSession;
using latmix::studio::StudioContext;

namespace {

const QString kSample = QStringLiteral(LATMIX_SOURCE_DIR "/resources/calibration/pride_and_prejudice_ch1-6.txt");
constexpr int kJobMs = 180000;

// A learning run long enough to be paused, refreshed and cancelled before it ends.
LearnRequest long_request() {
  LearnRequest r;
  r.method = "latmix";
  r.quant = "mxfp4";
  r.calib = kSample.toStdString();
  r.samples = 4;
  r.seqlen = 32;
  r.steps = 400;
  r.batch = 1;
  return r;
}

std::string json_of(const latmix::api::StatisticsRequest& r) {
  return latmix::api::to_json(r).dump();
}

// Waits until the host says job `id` ended (finished, failed or cancelled).
bool wait_job_end(EngineHost& host, quint64 id) {
  bool ended = false;
  auto mark = [&ended, id](quint64 job) { ended = ended || job == id; };
  QObject guard;
  QObject::connect(&host, &EngineHost::jobFinished, &guard, [mark](quint64 job, const QString&, double) { mark(job); });
  QObject::connect(&host, &EngineHost::jobCancelled, &guard, [mark](quint64 job, const QString&) { mark(job); });
  QObject::connect(&host, &EngineHost::jobFailed, &guard,
                   [mark](quint64 job, const QString&, const QString&) { mark(job); });
  return QTest::qWaitFor([&ended] { return ended; }, kJobMs);
}

}  // namespace

class TestStudioContext : public QObject {
  Q_OBJECT

 private Q_SLOTS:
  void initTestCase() {
    latmix::studio::test::isolate_settings("studio-context-tests");
    host_ = std::make_unique<EngineHost>();
    session_ = std::make_unique<ModelSession>(host_.get());
    QSignalSpy opened(session_.get(), &ModelSession::opened);
    session_->open(latmix::studio::test::demo_model());
    QVERIFY(opened.wait(120000));
  }

  void cleanupTestCase() {
    session_.reset();
    host_.reset();
  }

  // What one panel publishes, the others read from the context.
  void thePanelsShareThroughTheContext() {
    StudioContext context(host_.get(), session_.get());
    ExplorerPanel explorer(&context);
    LearnPanel learn(&context);
    ExportPanel exporter(&context);
    MicroscopePanel microscope(&context);
    microscope.modelChanged();

    // The explorer's settings, with the open model.
    explorer.setSequences(3, 48);
    latmix::api::StatisticsRequest shared = context.statisticsRequest();
    QCOMPARE(shared.samples, int64_t(3));
    QCOMPARE(shared.seqlen, int64_t(48));
    QCOMPARE(QString::fromStdString(shared.model), session_->summary().path);
    QCOMPARE(json_of(shared), json_of(explorer.statsRequest()));

    // A plan added to the context is the explorer's transform, selected.
    QSignalSpy added(&context, &StudioContext::planAdded);
    context.addPlan("run 1 (latmix)", "/plans/run1");
    QCOMPARE(added.count(), 1);
    QCOMPARE(context.plans().size(), size_t(1));
    QCOMPARE(QString::fromStdString(explorer.statsRequest().transforms), QString("/plans/run1"));
    QCOMPARE(QString::fromStdString(explorer.statsRequest().transform_name), QString("run 1 (latmix)"));
    QCOMPARE(json_of(context.statisticsRequest()), json_of(explorer.statsRequest()));
    // The same label again: its new prefix, still one plan.
    context.addPlan("run 1 (latmix)", "/plans/run1-again");
    QCOMPARE(context.plans().size(), size_t(1));
    QCOMPARE(QString::fromStdString(context.statisticsRequest().transforms), QString("/plans/run1-again"));

    // The Learn tab's format is Export's default (no plan).
    LearnRequest r = long_request();
    r.quant = "mxint8";
    learn.setRequest(r);
    QCOMPARE(QString::fromStdString(context.learnRequest().quant), QString("mxint8"));
    QCOMPARE(QString::fromStdString(exporter.request().quant), QString("mxint8"));
    QVERIFY(learn.controller() == context.learnController());

    // A block opened through the context is the microscope's.
    BlockTarget target;
    target.point = "mlp_in";
    target.layer = 1;
    target.block = 3;
    target.format = "mxfp8";
    target.transform = "none";
    context.openBlock(target);
    QCOMPARE(microscope.formatText(), QString("mxfp8"));
    QCOMPARE(microscope.transformText(), QString("none"));
    QCOMPARE(microscope.blockIndex(), 3);

    // Another model open: the plans are gone, from the context and the explorer's choices.
    QSignalSpy cleared(&context, &StudioContext::plansCleared);
    QSignalSpy opened(session_.get(), &ModelSession::opened);
    session_->open(latmix::studio::test::demo_model());
    QVERIFY(opened.wait(120000));
    QCOMPARE(cleared.count(), 1);
    QVERIFY(context.plans().empty());
    QVERIFY(explorer.statsRequest().transforms.empty());
    QVERIFY(context.statisticsRequest().transforms.empty());
  }

  // Show in explorer: the Learn tab's plan becomes a plan of the context, the explorer's selected
  // transform, and the explorer calibrates with it.
  void aLearnedPlanReachesTheExplorerThroughTheContext() {
    StudioContext context(host_.get(), session_.get());
    ExplorerPanel explorer(&context);
    explorer.setSequences(2, 32);
    LearnPanel learn(&context);
    QSignalSpy finished(context.learnController(), &LearnController::finished);
    QSignalSpy failed(context.learnController(), &LearnController::failed);
    LearnRequest r = long_request();
    r.method = "quarot";  // fixed transforms: built in a moment
    learn.setRequest(r);
    QVERIFY(learn.start() != 0);
    QVERIFY2(finished.wait(kJobMs), failed.isEmpty() ? "timeout" : qPrintable(failed.at(0).at(0).toString()));
    const QString prefix = context.learnController()->outcome().plan_prefix;
    QVERIFY(!prefix.isEmpty());

    QSignalSpy shown(&learn, &LearnPanel::showExplorer);
    QSignalSpy calibrated(&explorer, &ExplorerPanel::calibrated);
    QVERIFY(learn.refreshHeatmap());  // after a run: Show in explorer
    QCOMPARE(shown.count(), 1);
    QCOMPARE(context.plans().size(), size_t(1));
    QCOMPARE(context.plans().front().prefix, prefix);
    QCOMPARE(QString::fromStdString(explorer.statsRequest().transforms), prefix);
    QVERIFY(calibrated.wait(kJobMs));
    QCOMPARE(QString::fromStdString(explorer.stats()->transform), context.plans().front().label);
  }

  // The Learn tab's heatmap refresh computes statistics on a snapshot for the explorer; a Learn
  // panel destroyed while that job runs hands nothing to the explorer (the job was the panel's).
  void aLearnPanelDestroyedDuringARefreshPostsNothing() {
    StudioContext context(host_.get(), session_.get());
    ExplorerPanel explorer(&context);
    explorer.setSequences(2, 32);
    auto* learn = new LearnPanel(&context);
    LearnController* ctl = context.learnController();
    QSignalSpy held(ctl, &LearnController::pauseHeld);
    QSignalSpy steps(ctl, &LearnController::stepsArrived);
    QSignalSpy cancelled(ctl, &LearnController::cancelled);
    QSignalSpy calibrated(&explorer, &ExplorerPanel::calibrated);
    QSignalSpy computed(&context, &StudioContext::statisticsComputed);
    learn->setRequest(long_request());
    QVERIFY(learn->start() != 0);
    QVERIFY(steps.wait(kJobMs));
    ctl->pause();
    QVERIFY(held.wait(kJobMs));

    // With the panel there, the snapshot's statistics reach the explorer through the context.
    QSignalSpy refreshed(learn, &LearnPanel::heatmapRefreshed);
    QVERIFY(learn->refreshHeatmap());
    QVERIFY(refreshed.wait(kJobMs));
    QCOMPARE(computed.count(), 1);
    QCOMPARE(calibrated.count(), 1);

    // Again, and the panel goes while the job computes: the run is the context's and goes on.
    QVERIFY(learn->refreshHeatmap());
    delete learn;
    const qint64 held_step = ctl->curve().back().step;
    ctl->resume();  // the run leaves the hold only after the refresh's work has run
    QVERIFY(QTest::qWaitFor([&] { return ctl->curve().back().step > held_step; }, kJobMs));
    ctl->cancel();
    QVERIFY(cancelled.wait(kJobMs));
    QTest::qWait(0);  // anything still queued for the GUI thread is delivered now
    QCOMPARE(computed.count(), 1);
    QCOMPARE(calibrated.count(), 1);
  }

  // A panel destroyed while its own job runs: the job finishes, its result goes nowhere, and the
  // context and the engine thread serve the next panel.
  void aPanelDestroyedWhileItsJobRunsGetsNothing() {
    StudioContext context(host_.get(), session_.get());
    auto* explorer = new ExplorerPanel(&context);
    explorer->setSequences(2, 32);
    const quint64 calibration = explorer->calibrate();
    QVERIFY(calibration != 0);
    delete explorer;
    QVERIFY(wait_job_end(*host_, calibration));

    auto* analyze = new AnalyzePanel(&context);
    analyze->modelChanged();
    latmix::api::AnalyzeRequest r;
    r.data = kSample.toStdString();
    r.samples = 2;
    r.seqlen = 32;
    r.layer = 1;
    r.point = "residual";
    r.steps = 2;
    analyze->setRequest(r);
    const quint64 analysis = analyze->run();
    QVERIFY(analysis != 0);
    delete analyze;
    QVERIFY(wait_job_end(*host_, analysis));
    QTest::qWait(0);  // anything still queued for the GUI thread is delivered now

    ExplorerPanel next(&context);
    next.setSequences(2, 32);
    QSignalSpy calibrated(&next, &ExplorerPanel::calibrated);
    QVERIFY(next.calibrate() != 0);
    QVERIFY(calibrated.wait(kJobMs));
    QVERIFY(next.hasStats());
  }

 private:
  std::unique_ptr<EngineHost> host_;
  std::unique_ptr<ModelSession> session_;
};

LATMIX_QTEST_MAIN(TestStudioContext)
#include "test_studio_context.moc"
