// Qt Test (offscreen): the learn controller on the bundled model — step events in order and
// throttled, cancel with the GUI thread still running its timers, pause / resume (with work run
// on a snapshot while paused), saving and loading transforms, and the request's CLI parity; the
// Learn and Compare panels' command lines, and the loss chart's drawing. The GUI thread's lateness
// while learning runs is measured by guiLatencyWhileLearningBench (ctest label bench: it reports,
// it does not gate CI).
#include <QElapsedTimer>
#include <QFileInfo>
#include <QSignalSpy>
#include <QStandardPaths>
#include <QTemporaryDir>
#include <QTest>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cmath>
#include <memory>
#include <thread>

#include <QAction>
#include <QImage>

#include "compare_panel.h"
#include "engine_host.h"
#include "explorer_panel.h"
#include "latency_probe.h"
#include "latmix/api/learn.h"
#include "latmix/learn.h"
#include "latmix/quant.h"
#include "latmix/transform_fold.h"
#include "learn_controller.h"
#include "learn_panel.h"
#include "loss_chart.h"
#include "model_session.h"
#include "session_file.h"
#include "studio_context.h"
#include "studio_fixture.h"

using latmix::studio::EngineHost;
using latmix::studio::LearnController;
using latmix::studio::LearnRequest;
using latmix::studio::ModelSession;

namespace {

QString source(const QString& rel) {
  return QStringLiteral(LATMIX_SOURCE_DIR) + "/" + rel;
}

// A small run: short sequences, one per step, so that steps take milliseconds to a second.
LearnRequest tiny_request(qint64 steps) {
  LearnRequest r;
  r.method = "latmix";
  r.quant = "mxfp4";
  r.calib = source("resources/calibration/pride_and_prejudice_ch1-6.txt").toStdString();
  r.samples = 4;
  r.seqlen = 32;
  r.steps = steps;
  r.batch = 1;
  return r;
}

}  // namespace

class TestLearnController : public QObject {
  Q_OBJECT

 private Q_SLOTS:
  void initTestCase() {
    latmix::studio::test::isolate_settings("studio-learn-tests", false);
    host_ = std::make_unique<EngineHost>();
    session_ = std::make_unique<ModelSession>(host_.get());
    QSignalSpy opened(session_.get(), &ModelSession::opened);
    session_->open(source("resources/models/gutenberg-llama-6M"));
    QVERIFY(opened.wait(60000));
  }

  void cleanupTestCase() {
    session_.reset();
    host_.reset();
  }

  void theRequestBuildsTheSettingsAsTheCliDoes() {
    LearnRequest r;
    r.method = "latmix";
    r.quant = "mxint4,weights=rtn";
    r.steps = 7;
    r.lr = 0.01;
    r.schedule = "constant";
    const latmix::LearnSettings s = latmix::api::learn_settings(r, at::kCPU);
    QCOMPARE(s.steps, int64_t(7));
    QCOMPARE(s.lr, 0.01);
    QVERIFY(!s.cosine);
    QVERIFY(s.quant.method == latmix::WeightMethod::Rtn);  // weights= given explicitly wins
    QCOMPARE(QString::fromStdString(s.quant.weights->name()), QString("mxint4"));
    r.quant = "mxfp4";
    QVERIFY(latmix::api::learn_settings(r, at::kCPU).quant.method == latmix::WeightMethod::Gptq);  // the method's quantizer
    r.method = "quarot";  // a fixed preset ignores the learning knobs
    QCOMPARE(latmix::api::learn_settings(r, at::kCPU).steps, int64_t(0));
    const QStringList args = latmix::studio::to_qstrings(latmix::api::learn_option_arguments(r));
    QVERIFY(args.contains("--steps") && args.contains("--lr") && args.contains("--schedule"));
    r.quant = "mxfp9";
    QVERIFY_THROWS_EXCEPTION(latmix::UsageError, latmix::api::learn_settings(r, at::kCPU));
    QCOMPARE(latmix::studio::shell_command({"latmix", "--calib", "a b.txt"}), QString("latmix --calib 'a b.txt'"));
  }

  void stepsArriveInOrderAndTheResultIsSaved() {
    LearnController ctl(host_.get(), session_.get());
    QSignalSpy finished(&ctl, &LearnController::finished);
    QSignalSpy failed(&ctl, &LearnController::failed);
    std::vector<std::pair<int, int>> batches;
    connect(&ctl, &LearnController::stepsArrived, this,
            [&](int first, int count) { batches.emplace_back(first, count); });
    QVERIFY(ctl.start(tiny_request(6)) != 0);
    QVERIFY(ctl.running());
    QVERIFY(ctl.start(tiny_request(6)) == 0);  // one run at a time
    QVERIFY2(finished.wait(180000), failed.isEmpty() ? "timeout" : qPrintable(failed.at(0).at(0).toString()));
    QVERIFY(!ctl.running());
    QCOMPARE(static_cast<int>(ctl.curve().size()), 6);
    int next = 0;
    for (const auto& [first, count] : batches) {  // contiguous batches, nothing twice
      QCOMPARE(first, next);
      QVERIFY(count > 0);
      next += count;
    }
    QCOMPARE(next, 6);
    for (int i = 0; i < 6; ++i) {
      const auto& s = ctl.curve()[static_cast<size_t>(i)];
      QCOMPARE(s.step, qint64(i + 1));
      QCOMPARE(s.total, qint64(6));
      QVERIFY(std::isfinite(s.loss) && s.loss > 0);
      QVERIFY(!s.terms.empty() && s.terms.front().first == "kl");
    }
    const auto& o = ctl.outcome();
    QCOMPARE(o.method, QString("latmix"));
    QCOMPARE(o.steps, qint64(6));
    QCOMPARE(o.first_loss, ctl.curve().front().loss);
    QCOMPARE(o.last_loss, ctl.curve().back().loss);
    QVERIFY(!o.conditions.empty());
    QVERIFY(ctl.hasPlan());
    QVERIFY(QFileInfo::exists(o.plan_prefix + ".json") && QFileInfo::exists(o.plan_prefix + ".safetensors"));

    // Save, then load what was saved: the same placements come back.
    QTemporaryDir dir;
    QSignalSpy saved(&ctl, &LearnController::saved);
    QVERIFY(ctl.save(dir.filePath("t")) != 0);
    QVERIFY(saved.wait(30000));
    QVERIFY(QFileInfo::exists(dir.filePath("t.safetensors")));
    const QStringList learned = o.transforms;
    QSignalSpy loaded(&ctl, &LearnController::loaded);
    QVERIFY(ctl.load(dir.filePath("t")) != 0);
    QVERIFY(loaded.wait(30000));
    QVERIFY(ctl.outcome().loaded);
    QCOMPARE(ctl.outcome().transforms.size(), learned.size());
    QVERIFY(ctl.outcome().transforms.front().startsWith("residual: affine_lu 256"));
    QVERIFY(ctl.hasPlan());

    // A missing file fails with a message naming it; the controller keeps working.
    QVERIFY(ctl.load(dir.filePath("missing")) != 0);
    QVERIFY(failed.wait(30000));
    QVERIFY(failed.last().at(0).toString().contains("missing"));
  }

  // Issue 17, Major 8: the summary says whether the loss fell or rose, and a layer-wise run is
  // judged per layer (its layers' losses differ in scale: first-vs-last compares different layers).
  void lossSummariesSayWhetherTheLossFellOrRose() {
    using latmix::studio::LearnStep;
    auto step = [](qint64 n, double loss, qint64 layer = -1) {
      LearnStep s;
      s.step = n;
      s.loss = loss;
      s.layer = layer;
      return s;
    };
    QVERIFY(latmix::studio::loss_change_text({}).isEmpty());
    const QString fell = latmix::studio::loss_change_text({step(1, 0.5), step(2, 0.25)});
    QVERIFY2(fell.contains("fell from 0.5 to 0.25 (-50.0 %)"), qPrintable(fell));
    const QString rose = latmix::studio::loss_change_text({step(1, 0.058), step(2, 0.063)});
    QVERIFY2(rose.contains("rose") && rose.contains("+8.6 %"), qPrintable(rose));
    // FlatQuant-like: each layer falls, but the last layer's loss is above the first's.
    const QString layers = latmix::studio::loss_change_text(
        {step(1, 0.058, 0), step(2, 0.04, 0), step(3, 0.09, 1), step(4, 0.063, 1)});
    QVERIFY2(layers.startsWith("layer-wise: the loss fell in 2 of 2 layers"), qPrintable(layers));
    QVERIFY2(!layers.contains("rose"), qPrintable(layers));
    const QString mixed = latmix::studio::loss_change_text({step(1, 1, 0), step(2, 2, 0), step(3, 1, 1), step(4, 0.5, 1)});
    QVERIFY2(mixed.contains("fell in 1 of 2 layers") && mixed.contains("layer 0 rose"), qPrintable(mixed));
    // A layer-split run's live curve: two processes report layers 0 and 1 side by side (steps 1-2 and
    // 3-4 of the run), so neither the summary nor the layer markers may take a change of layer from
    // one step to the next for a boundary.
    const std::vector<LearnStep> split = {step(1, 1, 0), step(3, 4, 1), step(2, 0.5, 0), step(4, 3, 1)};
    const QString side = latmix::studio::loss_change_text(split);
    QVERIFY2(side.startsWith("layer-wise: the loss fell in 2 of 2 layers") &&
                 side.contains("layer 0 fell from 1 to 0.5") && side.contains("layer 1 fell from 4 to 3"),
             qPrintable(side));
    const auto markers = latmix::studio::layer_markers(split);
    QCOMPARE(markers.size(), size_t(2));
    QCOMPARE(markers[0], std::make_pair(0.5, QString("layer 0")));
    QCOMPARE(markers[1], std::make_pair(2.5, QString("layer 1")));
  }

  // Issue 17, Major 3: a run that is cancelled or fails keeps the current plan; the history keeps
  // every finished run with its curve; saved transforms say what they are.
  void theHistoryKeepsRunsAndACancelKeepsThePlan() {
    LearnController ctl(host_.get(), session_.get());
    QSignalSpy finished(&ctl, &LearnController::finished);
    QSignalSpy cancelled(&ctl, &LearnController::cancelled);
    QVERIFY(ctl.start(tiny_request(3)) != 0);
    QVERIFY(finished.wait(180000));
    const QString plan = ctl.outcome().plan_prefix;
    QVERIFY(ctl.hasPlan());
    QCOMPARE(ctl.outcome().run, 1);
    QCOMPARE(ctl.outcome().model_path, session_->summary().path);
    QVERIFY(!ctl.outcome().model_digest.isEmpty());
    QCOMPARE(ctl.unsavedRuns(), 1);
    QSignalSpy arrived(&ctl, &LearnController::stepsArrived);
    QVERIFY(ctl.start(tiny_request(100000)) != 0);
    QVERIFY(arrived.wait(120000));
    ctl.cancel();
    QVERIFY(cancelled.wait(60000));
    QVERIFY(ctl.hasPlan());
    QCOMPARE(ctl.outcome().plan_prefix, plan);
    QCOMPARE(ctl.outcome().run, 1);
    QVERIFY(ctl.start(tiny_request(2)) != 0);
    QVERIFY(finished.wait(180000));
    const auto runs = ctl.runs(session_->summary().path);
    QCOMPARE(runs.size(), size_t{2});
    QCOMPARE(runs[0]->curve.size(), size_t{3});
    QCOMPARE(runs[1]->curve.size(), size_t{2});
    QCOMPARE(runs[1]->outcome.run, 2);
    QVERIFY(ctl.selectRun(session_->summary().path, 1));
    QCOMPARE(ctl.outcome().plan_prefix, plan);
    QVERIFY(!ctl.selectRun(session_->summary().path, 7));
    QVERIFY(!ctl.selectRun("/another/model", 1));
    // Saved: with the fingerprint and the method; a later load reads them back.
    QTemporaryDir dir;
    QSignalSpy saved(&ctl, &LearnController::saved);
    QVERIFY(ctl.save(dir.filePath("run1")) != 0);  // run 1's plan, read from disk
    QVERIFY(saved.wait(30000));
    QCOMPARE(ctl.unsavedRuns(), 1);  // run 2 is still unsaved
    QSignalSpy loaded(&ctl, &LearnController::loaded);
    QVERIFY(ctl.load(dir.filePath("run1")) != 0);
    QVERIFY(loaded.wait(30000));
    QCOMPARE(ctl.outcome().method, QString("latmix"));
    QVERIFY(ctl.outcome().quant.contains("mxfp4"));
    QVERIFY(!ctl.outcome().model_digest.isEmpty());
    QVERIFY(ctl.outcome().notes.isEmpty());  // the fingerprint was checked, nothing to say
  }

  void aFastLearnerDoesNotFloodTheGui() {
    // A scripted learner sends 4000 steps as fast as it can (through the same LearnControl that
    // obtain_plan gets): they must all arrive, in order, in batches at most ~30 per second.
    LearnController ctl(host_.get(), session_.get());
    QSignalSpy finished(&ctl, &LearnController::finished);
    QElapsedTimer clock;
    clock.start();
    std::vector<qint64> at_ms;
    connect(&ctl, &LearnController::stepsArrived, this, [&](int, int) { at_ms.push_back(clock.elapsed()); });
    constexpr int64_t kSteps = 4000;
    std::atomic<qint64> learner_ms{0};
    QVERIFY(ctl.startWork(tiny_request(kSteps), [&learner_ms, &clock](const latmix::LearnControl& control) {
      LearnController::RunResult run;
      run.result.method = "latmix";
      for (int64_t i = 1; i <= kSteps; ++i) {
        control.pause.wait(control.job.cancel);
        control.job.cancel.check();
        latmix::LearnEvent e;
        e.step = i;
        e.total = kSteps;
        e.loss = 1.0 / static_cast<double>(i);
        e.terms = {{"kl", e.loss}, {"reg", 0.0}};
        control.on_step(e);
        run.result.curve.push_back(e);
        if (i % 8 == 0) std::this_thread::sleep_for(std::chrono::microseconds(200));
      }
      learner_ms = clock.elapsed();
      return run;
    }) != 0);
    QVERIFY(finished.wait(60000));
    QCOMPARE(static_cast<int64_t>(ctl.curve().size()), kSteps);
    for (int64_t i = 0; i < kSteps; ++i) QCOMPARE(ctl.curve()[static_cast<size_t>(i)].step, i + 1);
    for (size_t i = 1; i + 1 < at_ms.size(); ++i)
      QVERIFY2(at_ms[i] - at_ms[i - 1] >= 30, "deliveries closer than 30 ms");
    const double seconds = static_cast<double>(clock.elapsed()) / 1000.0;
    qInfo("%lld steps sent in %lld ms, delivered in %zu batches over %.2f s", static_cast<long long>(kSteps),
          static_cast<long long>(learner_ms.load()), at_ms.size(), seconds);
    QVERIFY(static_cast<double>(at_ms.size()) <= seconds * 31 + 2);
    QVERIFY(at_ms.size() < static_cast<size_t>(kSteps) / 10);
    QCOMPARE(ctl.outcome().steps, kSteps);
    QVERIFY(!ctl.hasPlan());  // the scripted learner has no transforms
  }

  void cancelEndsTheRunAndTheGuiKeepsRunning() {
    LearnController ctl(host_.get(), session_.get());
    QSignalSpy arrived(&ctl, &LearnController::stepsArrived);
    QSignalSpy cancelled(&ctl, &LearnController::cancelled);
    QSignalSpy finished(&ctl, &LearnController::finished);
    latmix::studio::LatencyProbe probe(host_.get());  // a 10 ms timer on this (the GUI) thread
    QVERIFY(ctl.start(tiny_request(100000)) != 0);
    QVERIFY(arrived.wait(120000));
    QTest::qWait(500);
    QElapsedTimer t;
    t.start();
    ctl.cancel();
    QVERIFY(cancelled.wait(30000));
    qInfo("cancelled after %lld ms, %zu steps", static_cast<long long>(t.elapsed()), ctl.curve().size());
    QVERIFY(!ctl.running());
    QVERIFY(finished.isEmpty());
    QVERIFY(!ctl.hasPlan());
    const auto s = probe.summary();
    qInfo("GUI timer lateness during the run: %d samples, p50 %.1f ms, p99 %.1f ms, max %.1f ms", s.samples, s.p50_ms,
          s.p99_ms, s.max_ms);
    QVERIFY2(s.samples > 20, "the GUI thread's timer did not run while learning ran");  // latency: the bench below
    // and a new run can start afterwards
    QVERIFY(ctl.start(tiny_request(100000)) != 0);
    ctl.cancel();
    QVERIFY(cancelled.wait(60000));
  }

  // Benchmark, not a test (ctest entry gui_learn_latency, label bench; skipped unless LATMIX_BENCH=1):
  // the GUI thread's event-loop lateness (a 10 ms timer) while a learning run steps for 10 s.
  // Reports p50/p99/max; a p99 of 100 ms or more is printed as a warning, never a failure, since on
  // a shared machine it measures the other jobs as much as the studio (docs/benchmarks.md).
  void guiLatencyWhileLearningBench() {
    if (qEnvironmentVariable("LATMIX_BENCH") != "1") QSKIP("a benchmark: set LATMIX_BENCH=1 (ctest --preset bench)");
    LearnController ctl(host_.get(), session_.get());
    QSignalSpy arrived(&ctl, &LearnController::stepsArrived);
    QSignalSpy cancelled(&ctl, &LearnController::cancelled);
    QVERIFY(ctl.start(tiny_request(100000)) != 0);
    QVERIFY(arrived.wait(120000));
    latmix::studio::LatencyProbe probe(host_.get());
    QTest::qWait(10000);
    const auto s = probe.summary();
    ctl.cancel();
    QVERIFY(cancelled.wait(60000));
    qInfo("BENCH gui event-loop lateness while learning ran (10 s, %zu steps): %d samples, p50 %.1f ms, "
          "p99 %.1f ms, max %.1f ms",
          ctl.curve().size(), s.samples, s.p50_ms, s.p99_ms, s.max_ms);
    if (s.p99_ms >= 100) qWarning("BENCH p99 %.1f ms is over the 100 ms target", s.p99_ms);
  }

  void pauseStopsStepsAndResumeContinues() {
    LearnController ctl(host_.get(), session_.get());
    QSignalSpy arrived(&ctl, &LearnController::stepsArrived);
    QSignalSpy paused(&ctl, &LearnController::pausedChanged);
    QSignalSpy held(&ctl, &LearnController::pauseHeld);
    QSignalSpy cancelled(&ctl, &LearnController::cancelled);
    QVERIFY(!ctl.withSnapshot([](const latmix::TransformPlan&, qint64, const latmix::JobControl&) {}));  // no run
    QVERIFY(ctl.start(tiny_request(100000)) != 0);
    QVERIFY(arrived.wait(120000));
    ctl.pause();
    QCOMPARE(paused.count(), 1);
    QVERIFY(ctl.paused());
    // The run acknowledges the pause where it holds: the step in progress ended and was delivered.
    QVERIFY(held.wait(60000));
    const size_t n = ctl.curve().size();
    QCOMPARE(held.first().first().toLongLong(), ctl.curve().back().step);
    QCOMPARE(held.count(), 1);

    // Work on a snapshot runs while paused, with the transforms of the last step.
    std::atomic<qint64> seen_step{-1};
    std::atomic<bool> has_residual{false};
    QVERIFY(ctl.withSnapshot([&](const latmix::TransformPlan& plan, qint64 step, const latmix::JobControl&) {
      has_residual = plan.residual != nullptr;
      seen_step = step;
    }));
    QTRY_VERIFY_WITH_TIMEOUT(seen_step.load() >= 0, 10000);
    QCOMPARE(seen_step.load(), qint64(n));
    QVERIFY(has_residual.load());
    QCOMPARE(ctl.curve().size(), n);

    ctl.resume();
    QVERIFY(!ctl.paused());
    QTRY_VERIFY_WITH_TIMEOUT(ctl.curve().size() > n, 60000);
    for (size_t i = 0; i < ctl.curve().size(); ++i) QCOMPARE(ctl.curve()[i].step, qint64(i + 1));
    // cancel while paused ends the run too
    ctl.pause();
    ctl.cancel();
    QVERIFY(cancelled.wait(30000));
  }

  void thePanelsWriteTheirCommandLines() {
    latmix::studio::StudioContext context(host_.get(), session_.get());
    latmix::studio::ExplorerPanel explorer(&context);
    latmix::studio::LearnPanel panel(&context);
    LearnRequest r = tiny_request(12);
    r.quant = "mxint4";
    r.lr = 0.002;
    r.lambda = 0.5;
    r.init = "identity";
    panel.setRequest(r);
    const LearnRequest back = panel.request();
    QVERIFY(back.method == r.method);
    QVERIFY(back.quant == r.quant);
    QVERIFY(back.calib == r.calib);
    QVERIFY(back.samples == r.samples);
    QVERIFY(back.seqlen == r.seqlen);
    QCOMPARE(*back.steps, qint64(12));
    QCOMPARE(*back.batch, qint64(1));
    QCOMPARE(*back.lr, 0.002);
    QCOMPARE(*back.lambda, 0.5);
    QVERIFY(back.init == std::optional<std::string>("identity"));
    QVERIFY(!back.warmup);  // left empty: the method's default
    const QString cli = panel.cliCommand();
    QVERIFY2(cli.startsWith("latmix learn --model " + source("resources/models/gutenberg-llama-6M") +
                            " --method latmix --quant mxint4 --calib "),
             qPrintable(cli));
    for (const char* part : {"--samples 4", "--seqlen 32", "--steps 12", "--batch 1", "--lr 0.002", "--lambda 0.5",
                             "--init identity", "--device cpu", "--out PREFIX"}) {
      QVERIFY2(cli.contains(part), qPrintable(cli + " lacks " + part));
    }
    QCOMPARE(panel.startAction()->shortcut(), QKeySequence("Ctrl+L"));
    QCOMPARE(panel.cancelAction()->shortcut(), QKeySequence("Ctrl+Shift+L"));

    latmix::studio::ComparePanel compare(&context);
    LearnRequest m = tiny_request(3);
    compare.configureMethods({"rtn", "latmix"}, "frankenstein", 8, 256, m);
    QCOMPARE(compare.checkedMethods(), QStringList({"rtn", "latmix"}));
    const QString ccli = compare.methodsCliCommand();
    QVERIFY2(ccli.startsWith("latmix compare --model " + source("resources/models/gutenberg-llama-6M") +
                             " --methods rtn,latmix --tasks frankenstein --limit 8 --eval-seqlen 256 --quant mxfp4"),
             qPrintable(ccli));
    QVERIFY(ccli.contains("--steps 3") && ccli.contains("--out DIR"));
  }

  // Issue 21: the Learn tab draws the held-out loss beside the training loss (the values of the
  // step events, the start's measurement, the best step marked) and says what validation decided.
  void theLearnTabShowsTheValidationCurve() {
    latmix::studio::StudioContext context(host_.get(), session_.get());
    latmix::studio::ExplorerPanel explorer(&context);
    latmix::studio::LearnPanel panel(&context);
    LearnRequest r = tiny_request(6);
    r.samples = 8;
    r.validation = 2;
    r.eval_every = 2;
    r.patience = 0;
    r.deployed_check = "ends";  // latmix quantizes its weights with GPTQ: the note says what GPTQ did
    panel.setRequest(r);
    const LearnRequest back = panel.request();
    QCOMPARE(*back.validation, qint64(2));
    QCOMPARE(*back.eval_every, qint64(2));
    QCOMPARE(*back.patience, qint64(0));
    QVERIFY(back.deployed_check == std::optional<std::string>("ends"));
    const latmix::LearnSettings s = latmix::api::learn_settings(back, at::kCPU);
    QCOMPARE(s.validation, int64_t(2));
    QCOMPARE(s.eval_every, int64_t(2));
    QCOMPARE(s.patience, int64_t(0));
    QVERIFY(s.deployed_check == latmix::DeployedCheck::Ends);
    const QString cli = panel.cliCommand();
    for (const char* part : {"--validation 2", "--eval-every 2", "--patience 0", "--deployed-check ends"})
      QVERIFY2(cli.contains(part), qPrintable(cli + " lacks " + part));
    r.deployed_check = "sometimes";
    QVERIFY_THROWS_EXCEPTION(latmix::UsageError, latmix::api::learn_settings(r, at::kCPU));

    LearnController* ctl = panel.controller();
    std::vector<std::pair<double, double>> events;  // (step, validation) of the step events
    connect(ctl, &LearnController::stepsArrived, this, [&](int first, int count) {
      for (int i = first; i < first + count; ++i) {
        const auto& step = ctl->curve()[static_cast<size_t>(i)];
        if (step.validation) events.emplace_back(static_cast<double>(step.step), *step.validation);
      }
    });
    QSignalSpy finished(ctl, &LearnController::finished);
    QSignalSpy failed(ctl, &LearnController::failed);
    QVERIFY(panel.start() != 0);
    QVERIFY2(finished.wait(300000), failed.isEmpty() ? "timeout" : qPrintable(failed.at(0).at(0).toString()));
    QVERIFY2(events.size() == 3, qPrintable(QString::number(events.size())));  // steps 2, 4, 6
    const auto& o = ctl->outcome();
    QCOMPARE(o.validation_samples, qint64(2));
    QCOMPARE(static_cast<int>(o.validation_curve.size()), 4);  // the start (step 0) and the three events
    QCOMPARE(o.validation_curve.front().first, qint64(0));

    const auto* chart = panel.chart();
    QVERIFY(chart->seriesNames().contains("validation"));
    const auto points = chart->points("validation");
    QCOMPARE(points.size(), o.validation_curve.size());
    for (size_t i = 0; i < points.size(); ++i) {
      QCOMPARE(points[i].first, static_cast<double>(o.validation_curve[i].first));
      QCOMPARE(points[i].second, o.validation_curve[i].second);
    }
    for (const auto& e : events) {  // the events' values, exactly
      QVERIFY2(std::find(points.begin(), points.end(), e) != points.end(),
               qPrintable(QString("step %1: %2").arg(e.first).arg(e.second, 0, 'g', 17)));
    }
    QCOMPARE(chart->markedSeries(), QString("validation"));
    QCOMPARE(chart->markedStep(), static_cast<double>(o.best_step));
    QVERIFY(chart->pointCount("total") == 6);

    QVERIFY(o.validation_note.startsWith("validation (2 held-out sequences)"));
    QVERIFY2(o.validation_note.contains("deployed model (GPTQ weights)"), qPrintable(o.validation_note));
    QVERIFY2(panel.summaryText().contains(o.validation_note.toHtmlEscaped()), qPrintable(panel.summaryText()));

    // A session keeps the request's validation settings, the validation curve, note and the steps' values.
    const latmix::studio::LearnRun& run = *ctl->runs(session_->summary().path).back();
    const latmix::studio::LearnRun again =
        latmix::studio::learn_run_from_json(latmix::studio::to_json(run, run.outcome.plan_prefix));
    QCOMPARE(again.outcome.validation_curve, o.validation_curve);
    QCOMPARE(again.outcome.best_step, o.best_step);
    QCOMPARE(again.outcome.validation_note, o.validation_note);
    QCOMPARE(again.outcome.validation_samples, o.validation_samples);
    QCOMPARE(again.outcome.deployed_start, o.deployed_start);
    QCOMPARE(again.outcome.deployed_result, o.deployed_result);
    QCOMPARE(*again.request.validation, qint64(2));
    QVERIFY(again.request.deployed_check == std::optional<std::string>("ends"));
    // ... and the whole request: the engine's JSON, every knob (issue 16).
    QCOMPARE(latmix::api::to_json(again.request).dump(), latmix::api::to_json(run.request).dump());
    QCOMPARE(again.curve.size(), run.curve.size());
    for (size_t i = 0; i < run.curve.size(); ++i) QCOMPARE(again.curve[i].validation, run.curve[i].validation);

    // A run picked from the history draws the same validation curve and mark.
    QVERIFY(panel.selectRun(o.run));
    QCOMPARE(panel.chart()->points("validation"), points);
    QCOMPARE(panel.chart()->markedStep(), static_cast<double>(o.best_step));
  }

  void theLossChartDrawsItsCurves() {
    latmix::widgets::LossChart chart;
    chart.resize(480, 320);
    const QColor total(31, 119, 180);  // the first series' colour
    auto pixels = [&](const QColor& c) {
      const QImage img = chart.grab().toImage();
      int n = 0;
      for (int y = 40; y < img.height() - 40; ++y) {  // the plot area, below the legend
        for (int x = 70; x < img.width() - 10; ++x) {
          const QColor p = img.pixelColor(x, y);
          n += std::abs(p.red() - c.red()) + std::abs(p.green() - c.green()) + std::abs(p.blue() - c.blue()) < 40;
        }
      }
      return n;
    };
    QCOMPARE(pixels(total), 0);
    chart.clear(100);
    for (int i = 1; i <= 100; ++i) {
      chart.addPoint("total", i, 1.0 / i);
      chart.addPoint("reg", i, i == 1 ? 0.0 : 1e-4 * i);  // a zero is skipped on the log axis
    }
    QCOMPARE(chart.pointCount("total"), 100);
    QCOMPARE(chart.seriesNames(), QStringList({"total", "reg"}));
    const int drawn = pixels(total);
    QVERIFY2(drawn > 100, qPrintable(QString::number(drawn)));
    chart.setLogScale(true);
    QVERIFY(pixels(total) > 100);
    chart.setSeriesVisible("total", false);
    QCOMPARE(pixels(total), 0);
    // a long curve is decimated to about two points per pixel column, and still drawn
    chart.setSeriesVisible("total", true);
    chart.clear(0);
    for (int i = 1; i <= 200000; ++i) chart.addPoint("total", i, 1.0 + std::sin(i * 0.001));
    QElapsedTimer t;
    t.start();
    QVERIFY(pixels(total) > 100);
    qInfo("200000-point curve drawn in %lld ms", static_cast<long long>(t.elapsed()));
    // a styled sparse series keeps its colour after reset(); the mark is removed by reset()
    const QColor cyan(23, 190, 207);
    chart.setSeriesStyle("validation", cyan, true);
    chart.reset(10);
    QCOMPARE(pixels(cyan), 0);
    for (int i = 0; i <= 10; i += 5) chart.addPoint("validation", i, 2.0 - 0.1 * i);
    chart.setMark("validation", 10, "best: step 10");
    QVERIFY(pixels(cyan) > 20);
    QCOMPARE(chart.markedStep(), 10.0);
    QCOMPARE(chart.points("validation").size(), size_t(3));
    chart.reset(10);
    QVERIFY(std::isnan(chart.markedStep()));
    // points that come out of step order (a layer-split run's layers side by side) are kept in order
    for (const int step : {1, 6, 2, 7, 3, 8, 4, 9, 5, 10}) chart.addPoint("total", step, 100.0 - step);
    chart.addPoint("total", 6, 0.5);  // a second point at a step goes after the first
    const auto sorted = chart.points("total");
    QCOMPARE(sorted.size(), size_t(11));
    for (size_t i = 0; i < 6; ++i) QCOMPARE(sorted[i], std::make_pair(double(i + 1), 99.0 - double(i)));
    QCOMPARE(sorted[6], std::make_pair(6.0, 0.5));
    QCOMPARE(sorted[10], std::make_pair(10.0, 90.0));
    QCOMPARE(chart.lastValue("total"), 90.0);
  }

 private:
  std::unique_ptr<EngineHost> host_;
  std::unique_ptr<ModelSession> session_;
};

QTEST_MAIN(TestLearnController)
#include "test_learn_controller.moc"
