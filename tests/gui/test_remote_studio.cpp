// Qt Test (offscreen): the studio against a `latmix serve` engine started in this process on
// 127.0.0.1 (issue 19): File > Connect to engine... (the badge, a wrong token, an unreachable
// address, the address remembered, Disconnect), the browser of the server's roots, a model opened on
// the engine (its description and weight overview), and the Explorer's statistics computed there
// equal to those computed in-process.
#include <QDir>
#include <QFileInfo>
#include <QSignalSpy>
#include <QTemporaryDir>
#include <QTest>

#include <chrono>
#include <thread>

#include "engine_dialogs.h"
#include "engine_link.h"
#include "explorer_panel.h"
#include "heatmap_view.h"
#include "latmix/calib.h"
#include "latmix/serve/client.h"
#include "learn_controller.h"
#include "latmix/serve/server.h"
#include "main_window.h"
#include "microscope_panel.h"
#include "model_session.h"
#include "studio_context.h"
#include "studio_fixture.h"

using latmix::studio::EngineAddress;
using latmix::studio::EngineLink;
using latmix::studio::LearnController;
using latmix::studio::ModelSession;
using latmix::studio::ModelSummary;
using latmix::studio::RemoteFileDialog;
namespace test = latmix::studio::test;

namespace {

constexpr int kJobMs = 180000;
constexpr const char* kToken = "gui-test-token-0123456789";

/// A `latmix serve` engine on 127.0.0.1 (any free port) serving the source tree's resources/ and a
/// temporary folder, as `latmix serve --root` would.
struct LocalServer {
  QTemporaryDir out;
  std::unique_ptr<latmix::serve::Server> server;
  std::thread thread;
  int port = 0;

  LocalServer() {
    latmix::serve::ServeOptions o;
    o.port = 0;
    // The temporary folder first: relative paths (a plan learned from the studio) go there.
    o.roots = {out.path().toStdString(), LATMIX_SOURCE_DIR "/resources"};
    o.token = kToken;
    o.bundled_sample = LATMIX_SOURCE_DIR "/resources/calibration/pride_and_prejudice_ch1-6.txt";
    o.facts = {{"libtorch", "9.9.9-test"}};
    server = std::make_unique<latmix::serve::Server>(o);
    port = server->bind();
    thread = std::thread([this] { server->run(); });
    // Serving before anything else (a stop() before run() listens would leave run() waiting).
    const latmix::serve::RemoteEngine probe(url().toStdString(), kToken);
    for (int i = 0; i < 500; ++i) {
      try {
        probe.engine();
        return;
      } catch (const latmix::serve::RemoteError&) {
        std::this_thread::sleep_for(std::chrono::milliseconds(10));
      }
    }
  }
  ~LocalServer() {
    server->stop();
    thread.join();
  }
  QString url() const { return QString("http://127.0.0.1:%1").arg(port); }
};

latmix::studio::LearnRequest learn_request(int steps) {
  latmix::studio::LearnRequest r;
  r.method = "latmix";
  r.quant = "mxfp4";
  r.calib = latmix::studio::bundled_sample().toStdString();  // this computer's: the server's own is sent
  r.samples = 2;
  r.seqlen = 32;
  r.steps = steps;
  r.batch = 1;
  return r;
}

bool connect_studio(test::Studio& s, const EngineAddress& address) {
  QSignalSpy connected(s.window.context()->engineLink(), &EngineLink::connected);
  s.window.connectToEngine(address);
  return connected.wait(30000);
}

}  // namespace

class RemoteStudioTest : public QObject {
  Q_OBJECT

 private Q_SLOTS:
  void initTestCase() { test::isolate_settings("latmix-gui-remote-tests"); }

  void connectShowsWhereTheEngineRunsAndRefusalsInTheBanner() {
    LocalServer server;
    test::Studio s;
    EngineLink* link = s.window.context()->engineLink();
    QVERIFY2(s.window.engineBadge().startsWith("Engine: this computer (cpu, LibTorch "), qPrintable(s.window.engineBadge()));

    QSignalSpy failed(link, &EngineLink::connectFailed);
    s.window.connectToEngine({server.url(), "wrong-token", ""});
    QVERIFY(failed.wait(30000));
    QVERIFY2(s.window.bannerText().contains("Could not connect to the engine at " + server.url()), qPrintable(s.window.bannerText()));
    QVERIFY2(s.window.bannerText().contains("refused the token"), qPrintable(s.window.bannerText()));
    QVERIFY(!link->isRemote());
    QVERIFY(s.window.engineBadge().startsWith("Engine: this computer"));

    // Nothing listens on a port just freed.
    int closed_port = 0;
    {
      LocalServer gone;
      closed_port = gone.port;
    }
    s.window.connectToEngine({QString("127.0.0.1:%1").arg(closed_port), kToken, ""});
    QVERIFY(failed.wait(30000));
    QVERIFY2(s.window.bannerText().contains(QString("127.0.0.1:%1").arg(closed_port)), qPrintable(s.window.bannerText()));

    // A token file that is missing: said at once, nothing sent.
    s.window.connectToEngine({server.url(), "", "/nonexistent/engine.token"});
    QVERIFY2(s.window.bannerText().contains("/nonexistent/engine.token"), qPrintable(s.window.bannerText()));

    // The token from a file, as `latmix serve` writes it.
    const QString token_file = server.out.path() + "/engine.token";
    latmix::serve::write_token_file(token_file.toStdString(), kToken);
    QVERIFY(connect_studio(s, {server.url(), "", token_file}));
    QCOMPARE(s.window.engineBadge(), QString("Engine: 127.0.0.1:%1 — cpu, LibTorch 9.9.9-test").arg(server.port));
    QVERIFY(s.window.bannerText().isEmpty());
    QCOMPARE(link->roots().size(), 2);
    QCOMPARE(EngineAddress::load().url, server.url());  // remembered for the next start
    QCOMPARE(EngineAddress::load().token_file, token_file);

    QSignalSpy disconnected(link, &EngineLink::disconnected);
    link->disconnectEngine();
    QCOMPARE(disconnected.count(), 1);
    QVERIFY(s.window.engineBadge().startsWith("Engine: this computer"));
  }

  void theFileBrowserListsTheServersRoots() {
    LocalServer server;
    test::Studio s;
    QVERIFY(connect_studio(s, {server.url(), kToken, ""}));
    RemoteFileDialog dialog(&s.host, s.window.context()->engineLink()->remote());
    QSignalSpy listed(&dialog, &RemoteFileDialog::listed);
    QSignalSpy failed(&dialog, &RemoteFileDialog::listFailed);
    QVERIFY(listed.wait(30000));
    const QString resources = QDir(LATMIX_SOURCE_DIR "/resources").canonicalPath();
    QVERIFY2(dialog.entries().contains(resources + "/"), qPrintable(dialog.entries().join(", ")));
    dialog.browse(resources + "/models");
    QVERIFY(listed.wait(30000));
    QCOMPARE(dialog.folder(), resources + "/models");
    QVERIFY2(dialog.entries().contains("gutenberg-llama-6M/"), qPrintable(dialog.entries().join(", ")));
    QCOMPARE(dialog.chosen(), resources + "/models");
    dialog.browse("/etc");  // outside the roots: the server's refusal, in the dialog
    QVERIFY(failed.wait(30000));
    QVERIFY2(failed.at(0).at(0).toString().contains("outside the folders this server serves"),
             qPrintable(failed.at(0).at(0).toString()));
  }

  void theExplorersStatisticsOnTheEngineEqualThoseInProcess() {
    LocalServer server;
    test::Studio s;
    auto* explorer = s.window.explorer();
    explorer->setSequences(2, 32);
    explorer->setTransform("hadamard");

    QVERIFY(s.open(test::demo_model()));
    QSignalSpy calibrated(explorer, &latmix::studio::ExplorerPanel::calibrated);
    QVERIFY(explorer->calibrate() != 0);
    QVERIFY(calibrated.wait(kJobMs));
    const std::string local = latmix::stats_to_json(*explorer->stats());
    const std::vector<float> local_map = explorer->heatmapData().values;
    const ModelSummary local_summary = s.session.summary();
    auto* microscope = s.window.microscope();
    QSignalSpy refreshed(microscope, &latmix::studio::MicroscopePanel::refreshed);
    explorer->clickCell(1, 2);  // the block in the microscope
    QTRY_VERIFY_WITH_TIMEOUT(microscope->hasBlock() && microscope->blockIndex() == 2 &&
                                 microscope->statusText().contains("layer 1"), kJobMs);
    const QString local_block = microscope->statusText();

    QVERIFY(connect_studio(s, {server.url(), kToken, ""}));
    QSignalSpy opened(&s.session, &ModelSession::opened);
    QSignalSpy overview(&s.window, &latmix::studio::MainWindow::overviewShown);
    s.window.openRemoteModel(test::demo_model());
    QVERIFY(opened.wait(kJobMs));
    QVERIFY(s.session.remote() != nullptr);
    QVERIFY(s.session.model() == nullptr);  // nothing loaded here
    QCOMPARE(s.session.summary().layers, local_summary.layers);
    QCOMPARE(s.session.summary().parameters, local_summary.parameters);
    QVERIFY(s.session.summary().weights.startsWith("on the engine at " + server.url()));
    QVERIFY(overview.wait(kJobMs));
    QCOMPARE(s.session.summary().overview.max_over_rms, local_summary.overview.max_over_rms);

    QVERIFY(!explorer->hasStats());  // another model: the view starts empty
    QSignalSpy calibration_failed(explorer, &latmix::studio::ExplorerPanel::calibrationFailed);
    QVERIFY(explorer->calibrate() != 0);
    QTRY_VERIFY_WITH_TIMEOUT(calibrated.count() == 2 || calibration_failed.count() > 0, kJobMs);
    QVERIFY2(calibration_failed.isEmpty(), qPrintable(explorer->summaryText()));
    QCOMPARE(latmix::stats_to_json(*explorer->stats()), local);
    QCOMPARE(explorer->heatmapData().values, local_map);
    // The microscope's block, explained on the engine (its own bundled sample): the same block.
    explorer->clickCell(1, 2);
    QTRY_COMPARE_WITH_TIMEOUT(microscope->statusText(), local_block, kJobMs);

    // Disconnecting closes the engine's model.
    QSignalSpy closed(&s.session, &ModelSession::closed);
    s.window.context()->engineLink()->disconnectEngine();
    QCOMPARE(closed.count(), 1);
    QVERIFY(!s.session.hasModel());
    QVERIFY(!explorer->hasStats());
  }

  void aLearningRunOnTheEngineStreamsItsCurvePausesAndCancelsThere() {
    LocalServer server;
    test::Studio s;
    QVERIFY(connect_studio(s, {server.url(), kToken, ""}));
    QSignalSpy opened(&s.session, &ModelSession::opened);
    s.window.openRemoteModel(test::demo_model());
    QVERIFY(opened.wait(kJobMs));
    LearnController* ctl = s.window.context()->learnController();

    QSignalSpy finished(ctl, &LearnController::finished);
    QSignalSpy failed(ctl, &LearnController::failed);
    QVERIFY(ctl->start(learn_request(12)) != 0);
    QTRY_VERIFY_WITH_TIMEOUT(finished.count() + failed.count() > 0, kJobMs);
    QVERIFY2(failed.isEmpty(), qPrintable(failed.isEmpty() ? QString() : failed.at(0).at(0).toString()));
    QCOMPARE(static_cast<int>(ctl->curve().size()), 12);  // every step, from the engine's "step" events
    for (int i = 0; i < 12; ++i) QCOMPARE(ctl->curve()[static_cast<size_t>(i)].step, qint64(i + 1));
    const QString prefix = ctl->outcome().plan_prefix;
    QVERIFY2(prefix.startsWith("latmix-studio-learned-latmix-1-"), qPrintable(prefix));
    QVERIFY2(QFileInfo::exists(server.out.path() + "/" + prefix + ".safetensors"), qPrintable(prefix));
    QCOMPARE(ctl->outcome().steps, qint64(12));

    // Cancelling the studio's run cancels the engine's job.
    QSignalSpy arrived(ctl, &LearnController::stepsArrived);
    QSignalSpy cancelled(ctl, &LearnController::cancelled);
    QVERIFY(ctl->start(learn_request(100000)) != 0);
    QVERIFY(arrived.wait(kJobMs));
    // Pause and Resume are the remote job's.
    auto remote_state = [&s] {  // the state of the job not yet ended
      const nlohmann::json listed = s.window.context()->engineLink()->remote()->jobs();
      for (const auto& j : listed["jobs"]) {
        if (j["state"] != "done" && j["state"] != "cancelled") return QString::fromStdString(j["state"].get<std::string>());
      }
      return QString();
    };
    ctl->pause();
    QVERIFY(ctl->paused());
    QTRY_COMPARE_WITH_TIMEOUT(remote_state(), QString("paused"), 60000);
    ctl->resume();
    QTRY_COMPARE_WITH_TIMEOUT(remote_state(), QString("running"), 60000);
    ctl->cancel();
    QVERIFY(cancelled.wait(60000));
    const nlohmann::json jobs = s.window.context()->engineLink()->remote()->jobs();
    QVERIFY2(jobs.dump().find("\"state\":\"cancelled\"") != std::string::npos, jobs.dump().c_str());
    for (const auto& j : jobs["jobs"]) QVERIFY2(j["state"] != "running", jobs.dump().c_str());
  }
};

QTEST_MAIN(RemoteStudioTest)
#include "test_remote_studio.moc"
