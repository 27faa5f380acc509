// Qt Test (offscreen): the Analyze tab (issue #21) on the bundled model. Runs the MX error analysis
// through the panel as a person would (settings, Run, wait for the result signal), then checks that
// what the panel plots and tabulates is the engine's MxAnalysis, that the no-transform curve is the
// relative error of the captured activations computed independently, that switching the capture
// shown reruns nothing, that Cancel stops a long run and leaves the panel usable, that bad settings
// and a missing model are refused with a message, and that Save report writes the CLI's files.
#include <QApplication>
#include <QDir>
#include <QFile>
#include <QFileInfo>
#include <QJsonArray>
#include <QJsonDocument>
#include <QJsonObject>
#include <QPushButton>
#include <QScrollArea>
#include <QScrollBar>
#include <QSettings>
#include <QSignalSpy>
#include <QStandardPaths>
#include <QTemporaryDir>
#include <QTest>

#include <algorithm>
#include <cmath>

#include "analyze_panel.h"
#include "analyze_plots.h"
#include "engine_host.h"
#include "latmix/calib_data.h"
#include "latmix/error.h"
#include "latmix/model.h"
#include "latmix/mx_analysis.h"
#include "latmix/tokenizer.h"
#include "main_window.h"
#include "model_session.h"
#include "studio_fixture.h"
#include "zygote_qtest.h"

using latmix::AnalysisTransform;
using latmix::MxAnalysis;
using latmix::MxLayerAnalysis;
using latmix::studio::AnalyzePanel;
using latmix::api::AnalyzeRequest;
using latmix::studio::EngineHost;
using latmix::studio::MainWindow;
using latmix::studio::ModelSession;

namespace {

const QString kModel = QStringLiteral(LATMIX_SOURCE_DIR "/resources/models/gutenberg-llama-6M");
const QString kSample = QStringLiteral(LATMIX_SOURCE_DIR "/resources/calibration/pride_and_prejudice_ch1-6.txt");
constexpr int kRunMs = 240000;

// A small setting: layer 1, two capture points, 4 x 64 tokens, 5 Adam steps per learned fit.
AnalyzeRequest smallRequest() {
  AnalyzeRequest r;
  r.data = kSample.toStdString();
  r.samples = 4;
  r.seqlen = 64;
  r.layer = 1;
  r.point = "residual,mlp_in";
  r.steps = 5;
  return r;
}

using latmix::studio::test::button;

// Runs the panel's analysis and waits for its outcome; the failure message on failure.
QString runAndWait(AnalyzePanel* panel) {
  QSignalSpy finished(panel, &AnalyzePanel::finished);
  QSignalSpy failed(panel, &AnalyzePanel::failed);
  QPushButton* run = button(panel, "Run analysis");
  if (run == nullptr || !run->isEnabled()) return "no enabled Run button";
  run->click();
  if (!QTest::qWaitFor([&] { return !finished.isEmpty() || !failed.isEmpty(); }, kRunMs))
    return QString("no outcome within %1 s").arg(kRunMs / 1000);
  return failed.isEmpty() ? QString() : "failed: " + failed.first().first().toString();
}

bool close(double a, double b, double rel) {
  return std::abs(a - b) <= rel * std::max(std::abs(a), std::abs(b));
}

QString name(AnalysisTransform t) {
  return QString::fromStdString(latmix::analysis_transform_name(t));
}

}  // namespace

class TestAnalyzePanel : public QObject {
  Q_OBJECT

 private Q_SLOTS:
  void initTestCase() {
    latmix::studio::test::isolate_settings("analyze-panel-tests");
  }

  // No model: refused with a message. Bad settings: refused before anything is queued, naming the
  // option. A text that cannot be read: the job fails and says which file; the panel stays usable.
  void refusesWithoutAModelAndOnBadSettings() {
    EngineHost host;
    ModelSession session(&host);
    MainWindow w(&host, &session);
    AnalyzePanel* panel = w.analyze();
    QVERIFY(panel != nullptr);
    QVERIFY(w.tabIndexOf(panel) >= 0);
    QSignalSpy failed(panel, &AnalyzePanel::failed);
    QCOMPARE(panel->run(), quint64(0));
    QVERIFY2(panel->statusText().contains("No model is open"), qPrintable(panel->statusText()));
    QCOMPARE(failed.count(), 1);

    QSignalSpy opened(&session, &ModelSession::opened);
    w.openModel(kModel);
    QVERIFY(opened.wait(120000));
    QTRY_VERIFY_WITH_TIMEOUT(!host.busy(), 120000);  // the weight overview of the model just opened
    QSignalSpy started(&host, &EngineHost::jobStarted);
    auto refused = [&](AnalyzeRequest r, const QString& expected) {
      panel->setRequest(r);
      const quint64 id = panel->run();
      return id == 0 && panel->statusText().contains(expected) && !panel->running();
    };
    AnalyzeRequest r = smallRequest();
    r.blocks = "16, x";
    QVERIFY2(refused(r, "--blocks"), qPrintable(panel->statusText()));
    r = smallRequest();
    r.point.clear();
    QVERIFY2(refused(r, "--point"), qPrintable(panel->statusText()));
    r = smallRequest();
    r.blocks = "0";
    QVERIFY2(refused(r, "--blocks: block sizes must be &gt;= 1"), qPrintable(panel->statusText()));
    r = smallRequest();
    r.holdout = 1.0;  // the spin box stops below 1; the request itself checks it as the CLI does
    QVERIFY_THROWS_EXCEPTION(latmix::UsageError, latmix::api::check_analyze_request(r));
    r = smallRequest();
    r.affine = "svd";
    QVERIFY_THROWS_EXCEPTION(latmix::UsageError, latmix::api::check_analyze_request(r));
    QCOMPARE(started.count(), 0);  // nothing was queued for any of them
    QCOMPARE(failed.count(), 4);

    r = smallRequest();
    r.data = "/nonexistent/calibration.txt";
    panel->setRequest(r);
    const QString why = runAndWait(panel);
    QVERIFY2(why.contains("/nonexistent/calibration.txt"), qPrintable(why));
    QVERIFY2(panel->statusText().contains("The analysis failed"), qPrintable(panel->statusText()));
    QVERIFY(!panel->running());
    QVERIFY(button(panel, "Run analysis")->isEnabled());
    QVERIFY(panel->analysis() == nullptr);
    QVERIFY(!button(panel, "Save report...")->isEnabled());
  }

  // The plots draw the engine's numbers: every curve of every capture equals analysis(), which equals
  // analyze_mx_error run here on the same sequences (the fixed transforms to the last bit; the
  // learned ones too: the same Adam steps on the same rows), and the no-transform curve equals
  // relative_mx_error of the captured rows computed independently. Switching the capture shown
  // and the table's block size reruns nothing. Hovering reads out the values.
  void plotsTheEnginesNumbers() {
    latmix::studio::test::Studio studio;
    EngineHost& host = studio.host;
    ModelSession& session = studio.session;
    MainWindow& w = studio.window;
    QVERIFY(studio.open(kModel, 120000));
    AnalyzePanel* panel = w.analyze();
    const AnalyzeRequest request = smallRequest();
    panel->setRequest(request);
    QVERIFY(panel->cliCommand().contains("latmix analyze --model"));
    QVERIFY(panel->cliCommand().contains("--layer 1 --point residual,mlp_in"));
    const QString why = runAndWait(panel);
    QVERIFY2(why.isEmpty(), qPrintable(why));
    const MxAnalysis* a = panel->analysis();
    QVERIFY(a != nullptr);
    QCOMPARE(a->layers.size(), size_t(2));

    // The engine, on this thread, with the same settings.
    auto model = session.model();
    auto tokenizer = session.tokenizer();
    const latmix::CalibrationSet data =
        latmix::load_calibration_text(kSample.toStdString(), *tokenizer, latmix::api::analyze_data_options(request));
    latmix::Model probe = *model;
    const MxAnalysis ref = latmix::analyze_mx_error(probe, data, latmix::api::check_analyze_request(request));
    QCOMPARE(ref.layers.size(), a->layers.size());

    QSignalSpy started(&host, &EngineHost::jobStarted);
    for (int shown = 1; shown >= 0; --shown) {  // the second capture first: switching reruns nothing
      panel->showResult(shown);
      QCOMPARE(panel->shownResult(), shown);
      const MxLayerAnalysis& l = a->layers[static_cast<size_t>(shown)];
      const MxLayerAnalysis& e = ref.layers[static_cast<size_t>(shown)];
      QCOMPARE(l.block_sizes, e.block_sizes);
      QCOMPARE(l.block_sizes.front(), int64_t(2));
      QCOMPARE(l.block_sizes.back(), int64_t(256));  // the powers of two dividing the width 256
      QVERIFY(panel->errorPlot()->title().contains(QString::fromStdString(latmix::capture_point_name(l.point))));
      QCOMPARE(panel->errorPlot()->curves().size(), size_t(5));
      for (const auto& curve : l.curves) {
        const auto plotted = panel->errorPlot()->points(name(curve.transform));
        const auto& expected = e.curve(curve.transform);
        size_t k = 0;
        for (size_t i = 0; i < curve.sizes.size(); ++i) {
          if (curve.sizes[i].skipped) continue;
          QVERIFY(k < plotted.size());
          QCOMPARE(plotted[k].first, static_cast<double>(curve.sizes[i].block));
          QCOMPARE(plotted[k].second, curve.sizes[i].rel_error);  // the plot draws the result as it is
          QVERIFY2(close(plotted[k].second, expected.sizes[i].rel_error, 1e-9),
                   qPrintable(QString("%1 at %2: plotted %3, engine %4")
                                  .arg(name(curve.transform))
                                  .arg(curve.sizes[i].block)
                                  .arg(plotted[k].second, 0, 'g', 17)
                                  .arg(expected.sizes[i].rel_error, 0, 'g', 17)));
          ++k;
        }
        QCOMPARE(k, plotted.size());
        const auto blocks = panel->blockPlot()->points(name(curve.transform));
        QCOMPARE(blocks.size(), curve.block_errors.size());
        QCOMPARE(blocks.size(), size_t(256 / 32));
        for (size_t j = 0; j < blocks.size(); ++j) {
          QCOMPARE(blocks[j].first, static_cast<double>(j));
          QCOMPARE(blocks[j].second, curve.block_errors[j]);
        }
      }
    }
    QCOMPARE(started.count(), 0);  // nothing ran again
    QVERIFY(!host.busy());

    // The no-transform curve is E of the captured rows, computed here without the analysis: the
    // same forward batches, the last quarter of the tokens (the held-out rows) measured.
    for (size_t i = 0; i < a->layers.size(); ++i) {
      const MxLayerAnalysis& l = a->layers[i];
      std::vector<at::Tensor> rows;
      for (int64_t first = 0; first < data.size(); first += request.batch) {
        const int64_t count = std::min<int64_t>(request.batch, data.size() - first);
        const at::Tensor x = latmix::capture_activation(*model, data.batch(first, count), l.point, l.layer);
        rows.push_back(x.reshape({-1, x.size(-1)}));
      }
      const at::Tensor all = at::cat(rows, 0);
      const int64_t held = std::llround(request.holdout * static_cast<double>(all.size(0)));
      const at::Tensor measured = all.slice(0, all.size(0) - held);
      QCOMPARE(l.tokens, measured.size(0));
      latmix::MxFormat f = latmix::api::check_analyze_request(request).format;
      panel->showResult(static_cast<int>(i));
      for (size_t k = 0; k < l.block_sizes.size(); ++k) {
        f.block = l.block_sizes[k];
        const double expected = latmix::relative_mx_error(measured, nullptr, f);
        const double plotted = panel->errorPlot()->points("none")[k].second;
        QVERIFY2(close(plotted, expected, 1e-9),
                 qPrintable(QString("%1 layer %2, block %3: plotted %4, direct %5")
                                .arg(QString::fromStdString(latmix::capture_point_name(l.point)))
                                .arg(l.layer)
                                .arg(f.block)
                                .arg(plotted, 0, 'g', 17)
                                .arg(expected, 0, 'g', 17)));
      }
    }

    // The table at block 32: each transform's error, condition number and block magnitudes.
    panel->showResult(0);
    panel->setTableBlock(32);
    QCOMPARE(panel->tableBlock(), 32);
    const MxLayerAnalysis& l = a->layers[0];
    const QStringList lines = panel->tableText().split('\n');
    QCOMPARE(lines.size(), 6);
    QVERIFY(lines[0].contains("condition number") && lines[0].contains("block crest"));
    const size_t at32 =
        static_cast<size_t>(std::find(l.block_sizes.begin(), l.block_sizes.end(), 32) - l.block_sizes.begin());
    for (int row = 0; row < 5; ++row) {
      const auto& r = l.curves[static_cast<size_t>(row)].sizes[at32];
      const QStringList cells = lines[row + 1].split('\t');
      QCOMPARE(cells[0], name(l.curves[static_cast<size_t>(row)].transform));
      QCOMPARE(cells[1], QString::number(r.rel_error, 'g', 4));
      QCOMPARE(cells[3], QString::number(r.condition_number, 'g', 4));
      QCOMPARE(cells[4], QString::number(r.block_crest, 'f', 3));
    }
    QVERIFY(close(l.curve(AnalysisTransform::None).sizes[at32].condition_number, 1.0, 1e-12));
    QVERIFY(panel->explanationText().contains("Why an affine map can beat a rotation"));
    QVERIFY(panel->explanationText().contains("Here at block size 32"));
    panel->setTableBlock(8);
    QVERIFY(panel->tableText().split('\n')[1].contains(
        QString::number(l.curve(AnalysisTransform::None).sizes[2].rel_error, 'g', 4)));
    QCOMPARE(started.count(), 0);

    // Hovering the error plot at block size 32 reads out every curve's value there.
    w.resize(1280, 720);  // the size of the other screenshots (docs/screenshots)
    w.show();
    w.showTab(panel);
    QVERIFY(QTest::qWaitForWindowExposed(&w));
    auto* plot = panel->errorPlot();
    const double none32 = l.curve(AnalysisTransform::None).sizes[at32].rel_error;
    const QPointF at = plot->pixelOf(32, none32);
    QVERIFY(std::isfinite(at.x()) && std::isfinite(at.y()));
    QTest::mouseMove(plot, at.toPoint());
    QTRY_VERIFY(!plot->hoverText().isEmpty());
    const QString text = plot->hoverText();
    QVERIFY2(text.startsWith("block size 32"), qPrintable(text));
    QVERIFY2(text.contains("none: " + QString::number(none32, 'g', 4)), qPrintable(text));
    QVERIFY2(text.contains("learned_affine: " +
                           QString::number(l.curve(AnalysisTransform::LearnedAffine).sizes[at32].rel_error, 'g', 4)),
             qPrintable(text));
    QVERIFY(plot->readoutAt(QPointF(-5, -5)).isEmpty());
    // LATMIX_ANALYZE_SCREENSHOT=FILE: the window as it is now (docs/screenshots/analyze.png).
    if (const QString shot = qEnvironmentVariable("LATMIX_ANALYZE_SCREENSHOT"); !shot.isEmpty()) {
      for (QWidget* p = panel->parentWidget(); p != nullptr; p = p->parentWidget()) {  // the results in view
        if (auto* area = qobject_cast<QScrollArea*>(p))
          area->verticalScrollBar()->setValue(area->verticalScrollBar()->maximum());
      }
      QTest::mouseMove(plot, QPoint(5, 5));  // off the plot: no readout over the curves
      QTRY_VERIFY(plot->hoverText().isEmpty());
      QVERIFY2(w.saveScreenshot(shot), qPrintable(shot));
    }
  }

  // Cancel stops a long analysis (all layers, every capture point, many steps) while it fits, and
  // the panel runs the next one to completion.
  void cancelStopsTheJobAndLeavesThePanelUsable() {
    latmix::studio::test::Studio studio;
    EngineHost& host = studio.host;
    MainWindow& w = studio.window;
    QVERIFY(studio.open(kModel, 120000));
    AnalyzePanel* panel = w.analyze();
    AnalyzeRequest big = smallRequest();
    big.layer.reset();
    big.point = "residual,attn_in,o_in,mlp_in,down_in";
    big.steps = 5000;
    panel->setRequest(big);
    QSignalSpy progress(&host, &EngineHost::jobProgress);
    QSignalSpy cancelled(panel, &AnalyzePanel::cancelled);
    QSignalSpy finished(panel, &AnalyzePanel::finished);
    const quint64 id = panel->run();
    QVERIFY(id != 0);
    QVERIFY(panel->running());
    QVERIFY(!button(panel, "Run analysis")->isEnabled());
    QCOMPARE(panel->run(), quint64(0));  // one at a time
    QVERIFY(panel->statusText().contains("already running"));
    auto fitting = [&] {
      for (const auto& args : progress) {
        if (args[0].toULongLong() == id && args[1].toString() == "fit") return true;
      }
      return false;
    };
    QVERIFY2(QTest::qWaitFor(fitting, kRunMs), "the analysis never reached its fits");
    QVERIFY2(panel->progressText().contains("fitting learned transforms"), qPrintable(panel->progressText()));
    QPushButton* cancel = button(panel, "Cancel");
    QVERIFY(cancel != nullptr && cancel->isEnabled());
    cancel->click();
    QVERIFY2(cancelled.wait(60000), "no cancelled() within 60 s of Cancel");
    QCOMPARE(finished.count(), 0);
    QVERIFY(!panel->running());
    QVERIFY(panel->analysis() == nullptr);
    QVERIFY2(panel->statusText().contains("Cancelled"), qPrintable(panel->statusText()));
    QVERIFY(button(panel, "Run analysis")->isEnabled());
    QVERIFY(!cancel->isEnabled());
    QVERIFY(panel->progressText().isEmpty());

    AnalyzeRequest small = smallRequest();
    small.point = "residual";
    panel->setRequest(small);
    const QString why = runAndWait(panel);
    QVERIFY2(why.isEmpty(), qPrintable(why));
    QVERIFY(panel->analysis() != nullptr);
    QCOMPARE(panel->analysis()->layers.size(), size_t(1));
    QCOMPARE(panel->errorPlot()->curves().size(), size_t(5));
  }

  // Save report writes what `latmix analyze --out` writes: report.md, report.json and the PNGs,
  // with the numbers shown.
  void saveReportWritesTheFiles() {
    latmix::studio::test::Studio studio;
    MainWindow& w = studio.window;
    QVERIFY(studio.open(kModel, 120000));
    AnalyzePanel* panel = w.analyze();
    QCOMPARE(panel->saveReport(QDir::tempPath()), quint64(0));  // nothing to save yet
    AnalyzeRequest r = smallRequest();
    r.point = "residual";
    panel->setRequest(r);
    const QString why = runAndWait(panel);
    QVERIFY2(why.isEmpty(), qPrintable(why));
    QVERIFY(button(panel, "Save report...")->isEnabled());
    QTemporaryDir dir;
    const QString out = dir.filePath("analyze-report");
    QSignalSpy saved(panel, &AnalyzePanel::reportSaved);
    QSignalSpy failed(panel, &AnalyzePanel::reportFailed);
    QVERIFY(panel->saveReport(out) != 0);
    QVERIFY(QTest::qWaitFor([&] { return !saved.isEmpty() || !failed.isEmpty(); }, 60000));
    QVERIFY2(failed.isEmpty(), qPrintable(failed.isEmpty() ? QString() : failed.first().first().toString()));
    const QStringList files = saved.first().first().toStringList();
    for (const char* f : {"report.md", "report.json", "error_residual_1.png", "blocks_residual_1.png"}) {
      const QFileInfo info(out + "/" + f);
      QVERIFY2(info.exists() && info.size() > 0, f);
      QVERIFY2(files.contains(info.filePath()) || files.contains(info.absoluteFilePath()), f);
    }
    QCOMPARE(files.size(), 4);
    QFile json(out + "/report.json");
    QVERIFY(json.open(QIODevice::ReadOnly));
    const QJsonObject root = QJsonDocument::fromJson(json.readAll()).object();
    QCOMPARE(root["format"].toString(), QString("mxfp4"));
    const QJsonObject layer = root["layers"].toArray().first().toObject();
    QCOMPARE(layer["layer"].toInt(), 1);
    const QJsonArray sizes = layer["transforms"].toObject()["none"].toObject()["sizes"].toArray();
    const auto plotted = panel->errorPlot()->points("none");
    QCOMPARE(static_cast<size_t>(sizes.size()), plotted.size());
    for (int i = 0; i < sizes.size(); ++i) {
      QVERIFY(close(sizes[i].toObject()["rel_error"].toDouble(), plotted[static_cast<size_t>(i)].second, 1e-12));
    }
    QFile md(out + "/report.md");
    QVERIFY(md.open(QIODevice::ReadOnly));
    QVERIFY(md.readAll().startsWith("# MX quantization error against the block size"));
    QVERIFY(panel->statusText().contains("Report written"));
  }
};

LATMIX_QTEST_MAIN(TestAnalyzePanel)
#include "test_analyze_panel.moc"
