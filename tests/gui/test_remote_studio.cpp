// Qt Test (offscreen): the studio against a `latmix serve` engine started in this process on
// 127.0.0.1 (issue 19): File > Connect to engine... (the badge, a wrong token, an unreachable
// address, the address remembered, Disconnect), the browser of the server's roots, a model opened on
// the engine (its description and weight overview), the Explorer's statistics, the analysis, both
// Compare pages and the export computed there equal to (or verified as) those computed in-process, the
// bundle downloaded, and a lost event stream re-attached from the banner's Retry.
#include <QComboBox>
#include <QDir>
#include <QFile>
#include <QFileInfo>
#include <QLabel>
#include <QPushButton>
#include <QSignalSpy>
#include <QSpinBox>
#include <QTableWidget>
#include <QTemporaryDir>
#include <QTest>

#include <arpa/inet.h>
#include <netinet/in.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <atomic>
#include <chrono>
#include <condition_variable>
#include <mutex>
#include <thread>
#include <vector>

#include "analyze_panel.h"
#include "compare_panel.h"
#include "engine_dialogs.h"
#include "engine_link.h"
#include "explorer_panel.h"
#include "export_panel.h"
#include "heatmap_view.h"
#include "latmix/calib.h"
#include "latmix/compare.h"
#include "latmix/mx_analysis.h"
#include "latmix/serve/client.h"
#include "latmix/serve/server.h"
#include "learn_controller.h"
#include "learn_panel.h"
#include "main_window.h"
#include "microscope_panel.h"
#include "model_session.h"
#include "studio_context.h"
#include "studio_fixture.h"
#include "zygote_qtest.h"

using latmix::studio::AnalyzePanel;
using latmix::studio::ComparePanel;
using latmix::studio::EngineAddress;
using latmix::studio::EngineLink;
using latmix::studio::ExportOutcome;
using latmix::studio::ExportPanel;
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

/// A TCP relay on 127.0.0.1 (any free port) to the engine's port, on its own thread: drop() closes
/// every connection and stops listening, so the engine looks unreachable; restore() listens again on
/// the same port.
class Relay {
 public:
  explicit Relay(int target) : target_(target) {
    listen_fd_ = listen_on(0);
    sockaddr_in a{};
    socklen_t n = sizeof a;
    getsockname(listen_fd_, reinterpret_cast<sockaddr*>(&a), &n);
    port_ = ntohs(a.sin_port);
    thread_ = std::thread([this] { loop(); });
  }
  ~Relay() {
    stop_ = true;
    thread_.join();
    close_all();
  }
  QString url() const { return QString("http://127.0.0.1:%1").arg(port_); }
  void drop() { command(Command::Drop); }
  void restore() { command(Command::Listen); }

 private:
  enum class Command { None, Drop, Listen };

  static int listen_on(int port) {
    const int fd = socket(AF_INET, SOCK_STREAM, 0);
    const int one = 1;
    setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
    sockaddr_in a{};
    a.sin_family = AF_INET;
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    a.sin_port = htons(static_cast<uint16_t>(port));
    if (bind(fd, reinterpret_cast<sockaddr*>(&a), sizeof a) != 0 || ::listen(fd, 16) != 0) {
      close(fd);
      return -1;
    }
    return fd;
  }
  int connect_target() const {
    const int fd = socket(AF_INET, SOCK_STREAM, 0);
    sockaddr_in a{};
    a.sin_family = AF_INET;
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    a.sin_port = htons(static_cast<uint16_t>(target_));
    if (::connect(fd, reinterpret_cast<sockaddr*>(&a), sizeof a) != 0) {
      close(fd);
      return -1;
    }
    return fd;
  }
  // Waits until the relay's thread has done it (a handshake, not a sleep).
  void command(Command c) {
    std::unique_lock<std::mutex> lock(mutex_);
    command_ = c;
    done_.wait(lock, [this] { return command_ == Command::None; });
  }
  void close_all() {
    for (auto [a, b] : pairs_) {
      close(a);
      close(b);
    }
    pairs_.clear();
    if (listen_fd_ >= 0) close(listen_fd_);
    listen_fd_ = -1;
  }
  void loop() {
    char buffer[65536];
    while (!stop_) {
      {
        std::lock_guard<std::mutex> lock(mutex_);
        if (command_ == Command::Drop) close_all();
        if (command_ == Command::Listen && listen_fd_ < 0) listen_fd_ = listen_on(port_);
        if (command_ != Command::None) {
          command_ = Command::None;
          done_.notify_all();
        }
      }
      std::vector<pollfd> fds;
      if (listen_fd_ >= 0) fds.push_back({listen_fd_, POLLIN, 0});
      for (auto [a, b] : pairs_) {
        fds.push_back({a, POLLIN, 0});
        fds.push_back({b, POLLIN, 0});
      }
      if (poll(fds.data(), fds.size(), 20) <= 0) continue;
      std::vector<std::pair<int, int>> keep;
      size_t i = 0;
      if (listen_fd_ >= 0 && (fds[i++].revents & POLLIN) != 0) {
        const int client = accept(listen_fd_, nullptr, nullptr);
        const int upstream = client >= 0 ? connect_target() : -1;
        if (upstream >= 0)
          keep.emplace_back(client, upstream);
        else if (client >= 0)
          close(client);
      }
      for (auto [a, b] : pairs_) {
        bool open = true;
        for (auto [from, to] : {std::pair{a, b}, std::pair{b, a}}) {
          if (!open || (fds[i++].revents & (POLLIN | POLLHUP | POLLERR)) == 0) continue;
          const ssize_t n = recv(from, buffer, sizeof buffer, 0);
          open = n > 0 && send(to, buffer, static_cast<size_t>(n), MSG_NOSIGNAL) == n;
        }
        if (open) {
          keep.emplace_back(a, b);
        } else {
          close(a);
          close(b);
        }
      }
      pairs_ = std::move(keep);
    }
  }

  int target_;
  int port_ = 0;
  int listen_fd_ = -1;
  std::vector<std::pair<int, int>> pairs_;
  std::atomic<bool> stop_{false};
  std::mutex mutex_;
  std::condition_variable done_;
  Command command_ = Command::None;
  std::thread thread_;
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
  r.deployed_check = "no";  // the deployed check's two GPTQ runs are the engine tests' (tests/model)
  return r;
}

/// The outlier table's last column (the tokens that produce each channel, as shown).
QStringList outlier_tokens(latmix::studio::ExplorerPanel* explorer) {
  QStringList out;
  for (auto* table : explorer->findChildren<QTableWidget*>()) {
    for (int r = 0; r < table->rowCount(); ++r) {
      if (QTableWidgetItem* item = table->item(r, table->columnCount() - 1)) out << item->text();
    }
  }
  return out;
}

bool connect_studio(test::Studio& s, const EngineAddress& address) {
  QSignalSpy connected(s.window.context()->engineLink(), &EngineLink::connected);
  s.window.connectToEngine(address);
  return connected.wait(30000);
}

/// Connects to `url` and opens the bundled model there.
bool open_on_engine(test::Studio& s, const QString& url) {
  if (!connect_studio(s, {url, kToken, ""})) return false;
  QSignalSpy opened(&s.session, &ModelSession::opened);
  s.window.openRemoteModel(test::demo_model());
  return opened.wait(kJobMs) && s.session.remote() != nullptr;
}

/// A small analysis: layer 1, the residual stream, 2 x 32 tokens, 3 Adam steps per learned fit.
latmix::api::AnalyzeRequest analyze_request() {
  latmix::api::AnalyzeRequest r;
  r.data = latmix::studio::bundled_sample().toStdString();  // this computer's: the server's own is sent
  r.samples = 2;
  r.seqlen = 32;
  r.layer = 1;
  r.point = "residual";
  r.blocks = "16,32";
  r.steps = 3;
  r.batch = 2;
  return r;
}

QString run_analysis(AnalyzePanel* panel) {
  QSignalSpy finished(panel, &AnalyzePanel::finished);
  QSignalSpy failed(panel, &AnalyzePanel::failed);
  if (panel->run() == 0) return "refused: " + panel->statusText();
  if (!QTest::qWaitFor([&] { return finished.count() + failed.count() > 0; }, kJobMs)) return "no end";
  return failed.isEmpty() ? QString() : failed.at(0).at(0).toString();
}

/// The comparisons' settings: the bundled sample's perplexity, 2 windows of 32 tokens.
void configure_compare(ComparePanel* c) {
  c->configure("text:" + latmix::studio::bundled_sample(), "w=mxfp4,a=none,weights=rtn\nw=mxfp4,a=mxfp4,weights=rtn",
               2);
  latmix::studio::LearnRequest learning;
  learning.quant = "mxfp4";
  learning.calib = latmix::studio::bundled_sample().toStdString();
  learning.samples = 2;
  learning.seqlen = 32;
  c->configureMethods({"rtn", "quarot"}, "text:" + latmix::studio::bundled_sample(), 2, 32, learning);
}

/// The figures of a methods comparison (not its wall times): FP's and each method's task metrics.
QString comparison_figures(const latmix::Comparison& c) {
  QStringList out;
  auto add = [&out](const QString& who, const std::vector<latmix::TaskResult>& results) {
    for (const auto& r : results) {
      for (const auto& [metric, value] : r.metrics)
        out << QString("%1 %2 %3 %4")
                   .arg(who, QString::fromStdString(r.task), QString::fromStdString(metric))
                   .arg(value, 0, 'g', 17);
    }
  };
  add("FP", c.fp);
  for (const auto& row : c.rows) add(QString::fromStdString(row.method), row.results);
  return out.join('\n');
}

QByteArray file_bytes(const QString& path) {
  QFile f(path);
  return f.open(QIODevice::ReadOnly) ? f.readAll() : QByteArray();
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
    const QStringList local_tokens = outlier_tokens(explorer);
    QVERIFY(!local_tokens.isEmpty());
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
    // The outlier table's tokens: their text as the server's tokenizer decoded them, not ids.
    QCOMPARE(outlier_tokens(explorer), local_tokens);
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

  void anOutlierRowOpensItsTokensBlockOnTheEngineAsInProcess() {
    LocalServer server;
    test::Studio s;
    auto* explorer = s.window.explorer();
    auto* microscope = s.window.microscope();
    explorer->setSequences(2, 32);
    // In-process: the microscope at the row's largest token, in its calibration window.
    QVERIFY(s.open(test::demo_model()));
    QSignalSpy calibrated(explorer, &latmix::studio::ExplorerPanel::calibrated);
    QVERIFY(explorer->calibrate() != 0);
    QVERIFY(calibrated.wait(kJobMs));
    QVERIFY(explorer->openOutlier(0));
    QTRY_VERIFY_WITH_TIMEOUT(microscope->statusText().contains("calibration sequence"), kJobMs);
    const QString local = microscope->statusText();
    // On the engine: the same window, chosen there from the same statistics request.
    QVERIFY(connect_studio(s, {server.url(), kToken, ""}));
    QSignalSpy opened(&s.session, &ModelSession::opened);
    s.window.openRemoteModel(test::demo_model());
    QVERIFY(opened.wait(kJobMs));
    QVERIFY(explorer->calibrate() != 0);
    QTRY_VERIFY_WITH_TIMEOUT(calibrated.count() == 2, kJobMs);
    QVERIFY(explorer->openOutlier(0));
    QTRY_COMPARE_WITH_TIMEOUT(microscope->statusText(), local, kJobMs);
  }

  void aLearningRunOnTheEngineStreamsItsCurvePausesAndCancelsThere() {
    LocalServer server;
    test::Studio s;
    QVERIFY(open_on_engine(s, server.url()));
    LearnController* ctl = s.window.context()->learnController();

    QSignalSpy finished(ctl, &LearnController::finished);
    QSignalSpy failed(ctl, &LearnController::failed);
    // The Learn tab's "engine processes" go with the job as its "nproc" (and --split as the request's
    // "split"): this in-process server cannot start processes and says so (`latmix serve` can:
    // tests/cli/cli_nproc.sh). In this process the fields are off.
    auto* panel = s.window.learn();
    auto* nproc = panel->findChild<QSpinBox*>("nproc");
    auto* split = panel->findChild<QComboBox*>("split");
    QVERIFY(nproc != nullptr && split != nullptr);
    QVERIFY(nproc->isEnabled());
    nproc->setValue(3);
    split->setCurrentText("layers");
    panel->findChild<QComboBox*>("calib")->setCurrentText(latmix::studio::bundled_sample());  // the server has it
    QVERIFY2(panel->cliCommand().endsWith("--split layers --device cpu --nproc 3"), qPrintable(panel->cliCommand()));
    QVERIFY(panel->start() != 0);
    QTRY_VERIFY_WITH_TIMEOUT(failed.count() > 0, kJobMs);
    QVERIFY2(failed.at(0).at(0).toString().contains("nproc 3: this server cannot start processes"),
             qPrintable(failed.at(0).at(0).toString()));
    failed.clear();
    nproc->setValue(1);
    QVERIFY2(!panel->cliCommand().contains("--nproc"), qPrintable(panel->cliCommand()));
    QVERIFY(ctl->start(learn_request(12)) != 0);
    QTRY_VERIFY_WITH_TIMEOUT(finished.count() + failed.count() > 0, kJobMs);
    QVERIFY2(failed.isEmpty(), qPrintable(failed.isEmpty() ? QString() : failed.at(0).at(0).toString()));
    QCOMPARE(static_cast<int>(ctl->curve().size()), 12);  // every step, from the engine's "step" events
    for (int i = 0; i < 12; ++i) QCOMPARE(ctl->curve()[static_cast<size_t>(i)].step, qint64(i + 1));
    const QString prefix = ctl->outcome().plan_prefix;
    QVERIFY2(prefix.startsWith("latmix-studio-learned-latmix-2-"), qPrintable(prefix));  // the refused one was run 1
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
        if (j["state"] != "done" && j["state"] != "cancelled" && j["state"] != "failed") {
          return QString::fromStdString(j["state"].get<std::string>());
        }
      }
      return QString();
    };
    ctl->pause();
    QVERIFY(ctl->paused());
    QTRY_COMPARE_WITH_TIMEOUT(remote_state(), QString("paused"), 60000);
    // "Refresh heatmap with current transforms" mid-run: the engine's job computes the explorer's
    // statistics with the transforms of the step it holds at, and the explorer shows them.
    auto* explorer = s.window.explorer();
    explorer->setSequences(2, 32);
    QSignalSpy refreshed(s.window.learn(), &latmix::studio::LearnPanel::heatmapRefreshed);
    QSignalSpy calibrated(explorer, &latmix::studio::ExplorerPanel::calibrated);
    QVERIFY(s.window.learn()->refreshHeatmap());
    QVERIFY(refreshed.wait(kJobMs));
    QVERIFY(calibrated.count() == 1 || calibrated.wait(kJobMs));
    const qint64 held = refreshed.at(0).at(0).toLongLong();
    QCOMPARE(held, ctl->curve().back().step);  // paused: taken at once, at the step it holds at
    QCOMPARE(QString::fromStdString(explorer->stats()->transform), QString("latmix, step %1").arg(held));
    QCOMPARE(explorer->stats()->sequences, 2);
    QVERIFY(!explorer->heatmapData().values.empty());
    ctl->resume();
    QTRY_COMPARE_WITH_TIMEOUT(remote_state(), QString("running"), 60000);
    ctl->cancel();
    QVERIFY(cancelled.wait(60000));
    const nlohmann::json jobs = s.window.context()->engineLink()->remote()->jobs();
    QVERIFY2(jobs.dump().find("\"state\":\"cancelled\"") != std::string::npos, jobs.dump().c_str());
    for (const auto& j : jobs["jobs"]) QVERIFY2(j["state"] != "running", jobs.dump().c_str());
  }
  void theAnalysisOnTheEngineEqualsInProcess() {
    LocalServer server;
    test::Studio s;
    AnalyzePanel* panel = s.window.analyze();
    QVERIFY(s.open(test::demo_model()));
    panel->setRequest(analyze_request());
    const QString local_failure = run_analysis(panel);
    QVERIFY2(local_failure.isEmpty(), qPrintable(local_failure));
    const std::string local = latmix::mx_analysis_to_json(*panel->analysis());
    const QString local_table = panel->tableText();

    QVERIFY(open_on_engine(s, server.url()));
    QVERIFY(panel->analysis() == nullptr);  // another model: the result was the old one's
    panel->setRequest(analyze_request());
    const QString failure = run_analysis(panel);
    QVERIFY2(failure.isEmpty(), qPrintable(failure));
    QCOMPARE(latmix::mx_analysis_to_json(*panel->analysis()), local);
    QCOMPARE(panel->tableText(), local_table);  // drawn the same way

    // A text outside the server's roots: the server's refusal, naming the key and the path.
    latmix::api::AnalyzeRequest outside = analyze_request();
    outside.data = "/etc/hostname";
    panel->setRequest(outside);
    const QString refused = run_analysis(panel);
    QVERIFY2(refused.contains("/etc/hostname") && refused.contains("outside the folders this server serves"),
             qPrintable(refused));
  }

  void bothComparePagesOnTheEngineGiveTheSameNumbers() {
    LocalServer server;
    test::Studio s;
    ComparePanel* c = s.window.compare();
    configure_compare(c);
    QVERIFY(s.open(test::demo_model()));
    QSignalSpy specs_done(c, &ComparePanel::finished);
    QSignalSpy methods_done(c, &ComparePanel::methodsFinished);
    QVERIFY(c->run() != 0);
    QVERIFY(specs_done.wait(kJobMs));
    const QString local_specs = c->tableText();
    QVERIFY(c->runMethods() != 0);
    QVERIFY(methods_done.wait(kJobMs));
    const QString local_methods = comparison_figures(*c->comparison());

    QVERIFY(open_on_engine(s, server.url()));
    QVERIFY(c->tableText().isEmpty() && c->comparison() == nullptr);  // the old model's figures are gone
    QSignalSpy failed(c, &ComparePanel::failed);
    QVERIFY(c->run() != 0);
    QTRY_VERIFY_WITH_TIMEOUT(specs_done.count() == 2 || !failed.isEmpty(), kJobMs);
    QVERIFY2(failed.isEmpty(), qPrintable(c->tableText()));
    QCOMPARE(c->tableText(), local_specs);
    QVERIFY(c->runMethods() != 0);
    QVERIFY(methods_done.wait(kJobMs));
    QCOMPARE(comparison_figures(*c->comparison()), local_methods);
    // The report was written on the server, in its first root; the page says where.
    const QStringList reports = QDir(server.out.path()).entryList({"latmix-studio-compare-*"}, QDir::Dirs);
    QCOMPARE(reports.size(), 1);
    const QString folder = QDir(server.out.path()).canonicalPath() + "/" + reports.front();
    QVERIFY(QFileInfo::exists(folder + "/report.md"));
    QString shown;
    for (QLabel* l : c->methodsPage()->findChildren<QLabel*>()) {
      if (l->text().contains("The report is on the engine's server")) shown = l->text();
    }
    QVERIFY2(shown.contains(folder) && shown.contains("report.md"), qPrintable(shown));
  }

  void anExportOnTheEngineIsVerifiedThereAndDownloadedWhole() {
    LocalServer server;
    test::Studio s;
    ExportPanel* p = s.window.exportPanel();
    QVERIFY(open_on_engine(s, server.url()));
    QVERIFY(!p->canDownload());
    p->setOutputFolder("");  // the server's first root
    p->setKind("compressed-tensors");
    p->setZip(true);
    latmix::api::ExportRequest r = p->request();
    QVERIFY2(!QString::fromStdString(r.out).startsWith('/'), r.out.c_str());  // relative: in the server's first root
    r.verify_windows = 2;
    r.verify_seqlen = 32;
    QSignalSpy exported(p, &ExportPanel::exported);
    QSignalSpy export_failed(p, &ExportPanel::exportFailed);
    QVERIFY(p->startExport(r) != 0);
    QTRY_VERIFY_WITH_TIMEOUT(!exported.isEmpty() || !export_failed.isEmpty(), kJobMs);
    QVERIFY2(export_failed.isEmpty(), qPrintable(p->lastOutcome().message));
    const ExportOutcome o = p->lastOutcome();
    QVERIFY(o.on_engine);
    QVERIFY2(o.verified, qPrintable(o.verification));
    QVERIFY2(o.verification.contains("ok    packed codes"), qPrintable(o.verification));
    const QString on_server = QDir(server.out.path()).canonicalPath() + "/" + QString::fromStdString(r.out);
    QCOMPARE(o.path, on_server);
    QVERIFY(QFileInfo::exists(on_server));
    QCOMPARE(QDir(server.out.path()).entryList({".*"}, QDir::Hidden | QDir::AllEntries | QDir::NoDotAndDotDot),
             QStringList());  // no staging folder left there

    // Verify bundle... on the engine: the server's file.
    QSignalSpy verified(p, &ExportPanel::verified);
    QVERIFY(p->verify(on_server) != 0);
    QVERIFY(verified.wait(kJobMs));
    QVERIFY2(p->lastOutcome().verified && p->lastOutcome().on_engine, qPrintable(p->lastOutcome().verification));

    // Download bundle...: byte for byte the server's file.
    QTemporaryDir here;
    QVERIFY(p->canDownload());
    QSignalSpy downloaded(p, &ExportPanel::downloaded);
    QSignalSpy download_failed(p, &ExportPanel::downloadFailed);
    const QString local = here.filePath("bundle.zip");
    QVERIFY(p->downloadBundle(local) != 0);
    QTRY_VERIFY_WITH_TIMEOUT(!downloaded.isEmpty() || !download_failed.isEmpty(), kJobMs);
    QVERIFY2(download_failed.isEmpty(),
             qPrintable(download_failed.isEmpty() ? QString() : download_failed.at(0).at(0).toString()));
    QCOMPARE(downloaded.at(0).at(0).toString(), local);
    QVERIFY(file_bytes(local) == file_bytes(on_server));
    QVERIFY2(p->summaryText().contains("Downloaded"), qPrintable(p->summaryText()));

    // Into a folder that does not exist here: the error names it, and no file appears.
    const QString nowhere = here.filePath("missing/bundle.zip");
    QVERIFY(p->downloadBundle(nowhere) != 0);
    QVERIFY(download_failed.wait(kJobMs));
    QVERIFY2(download_failed.at(0).at(0).toString().contains(here.filePath("missing")),
             qPrintable(download_failed.at(0).at(0).toString()));
    QVERIFY(!QFileInfo::exists(nowhere));
    QCOMPARE(QDir(here.path()).entryList(QDir::AllEntries | QDir::Hidden | QDir::NoDotAndDotDot),
             QStringList{"bundle.zip"});
  }

  // A learn job that another client submitted (as `latmix --engine URL learn` does) is listed in File >
  // Engine jobs... and followed in the Learn tab: its curve from the first step, then live, and its
  // transforms (on the server) the plan when it ends. A job of another model is refused with a reason.
  void aLearnJobSubmittedElsewhereIsFollowedFromTheJobsWindow() {
    LocalServer server;
    test::Studio s;
    QVERIFY(open_on_engine(s, server.url()));
    // What opening starts there (the overview) first: the engine runs one job at a time, and the
    // job paused below would hold any later one of the studio's in its queue.
    QTRY_VERIFY_WITH_TIMEOUT(!s.host.busy(), kJobMs);
    const latmix::serve::RemoteEngine other(server.url().toStdString(), kToken);
    latmix::studio::LearnRequest r = learn_request(20);
    r.model = test::demo_model().toStdString();
    r.out = "learned-elsewhere";
    const std::string id = other.submit("learn", latmix::api::to_json(r)).at("id").get<std::string>();
    // Paused at a step, so that it is still running when the studio follows it.
    other.follow(id, 0, [](const latmix::serve::JobEvent& e) { return e.type != "step"; });  // up to its first step
    other.pause(id);
    QVERIFY(QTest::qWaitFor([&] { return other.job(id).value("state", std::string()) == "paused"; }, kJobMs));

    latmix::studio::EngineJobsDialog dialog(s.window.context()->engineLink()->remote(), &s.window);
    QSignalSpy listed(&dialog, &latmix::studio::EngineJobsDialog::listed);
    dialog.refresh();
    QVERIFY(listed.wait(kJobMs));
    QVERIFY2(dialog.rows().contains(QString::fromStdString(id) + " learn paused"), qPrintable(dialog.rows().join("; ")));
    QVERIFY(dialog.select(QString::fromStdString(id)));
    QVERIFY(dialog.followButton()->isEnabled());
    dialog.followButton()->click();
    QCOMPARE(dialog.result(), int(QDialog::Accepted));
    QCOMPARE(dialog.chosenId(), QString::fromStdString(id));

    // Another model's job is refused, naming both.
    nlohmann::json elsewhere = dialog.chosenRequest();
    elsewhere["model"] = "/somewhere/else";
    QVERIFY(!s.window.followEngineJob(dialog.chosenId(), elsewhere));
    QVERIFY2(s.window.bannerText().contains("learns /somewhere/else"), qPrintable(s.window.bannerText()));
    nlohmann::json no_out = dialog.chosenRequest();
    no_out.erase("out");
    QVERIFY(!s.window.followEngineJob(dialog.chosenId(), no_out));
    QVERIFY2(s.window.bannerText().contains("writes no transforms"), qPrintable(s.window.bannerText()));

    LearnController* ctl = s.window.context()->learnController();
    QSignalSpy finished(ctl, &LearnController::finished);
    QSignalSpy failed(ctl, &LearnController::failed);
    QSignalSpy arrived(ctl, &LearnController::stepsArrived);
    QVERIFY(s.window.followEngineJob(dialog.chosenId(), dialog.chosenRequest()));
    QVERIFY(arrived.wait(kJobMs));  // the steps before the pause
    QVERIFY(ctl->running() && finished.isEmpty());
    ctl->resume();  // the Learn tab's Resume is the engine job's
    QTRY_VERIFY_WITH_TIMEOUT(finished.count() + failed.count() > 0, kJobMs);
    QVERIFY2(failed.isEmpty(), qPrintable(failed.isEmpty() ? QString() : failed.at(0).at(0).toString()));
    QCOMPARE(static_cast<int>(ctl->curve().size()), 20);
    for (int i = 0; i < 20; ++i) QCOMPARE(ctl->curve()[static_cast<size_t>(i)].step, qint64(i + 1));
    const QString prefix = ctl->outcome().plan_prefix;
    QVERIFY2(prefix.endsWith("learned-elsewhere"), qPrintable(prefix));
    QVERIFY2(QFileInfo::exists(prefix + ".safetensors"), qPrintable(prefix));
    QCOMPARE(QString::fromStdString(other.job(id).value("state", std::string())), QString("done"));
  }

  void aLostEventStreamShowsTheBannerAndRetryReattaches() {
    LocalServer server;
    Relay relay(server.port);
    test::Studio s;
    // Five reconnects 20 ms x 1..5 apart (the default is 200 ms x 1..5: 3 s a drop, the engine learning on).
    s.window.context()->engineLink()->setReconnect({5, 20});
    QVERIFY(open_on_engine(s, relay.url()));
    LearnController* ctl = s.window.context()->learnController();
    QSignalSpy finished(ctl, &LearnController::finished);
    QSignalSpy failed(ctl, &LearnController::failed);
    QSignalSpy arrived(ctl, &LearnController::stepsArrived);
    QSignalSpy lost(s.window.context()->engineLink(), &EngineLink::streamLost);
    constexpr int kSteps = 16;  // still learning when the relay drops and when Retry follows it again
    QVERIFY(ctl->start(learn_request(kSteps)) != 0);
    QVERIFY(arrived.wait(kJobMs));
    relay.drop();  // the engine is unreachable: the client's reconnects give up
    QVERIFY(lost.wait(60000));
    QVERIFY2(s.window.bannerText().contains("Lost the connection to the engine at " + relay.url()),
             qPrintable(s.window.bannerText()));
    QVERIFY2(s.window.bannerText().contains("learn job"), qPrintable(s.window.bannerText()));
    auto* retry = s.window.findChild<QPushButton*>("retry-banner");
    QVERIFY(retry != nullptr && !retry->isHidden());  // the window is never shown offscreen
    QVERIFY(ctl->running() && failed.isEmpty());      // the run waits
    relay.restore();
    retry->click();
    QVERIFY(s.window.bannerText().isEmpty());
    QTRY_VERIFY_WITH_TIMEOUT(finished.count() + failed.count() > 0, kJobMs);
    QVERIFY2(failed.isEmpty(), qPrintable(failed.isEmpty() ? QString() : failed.at(0).at(0).toString()));
    // Every step once, in order: the curve so far, then the rest from the event after the last seen.
    QCOMPARE(static_cast<int>(ctl->curve().size()), kSteps);
    for (int i = 0; i < kSteps; ++i) QCOMPARE(ctl->curve()[static_cast<size_t>(i)].step, qint64(i + 1));
    QVERIFY(ctl->outcome().plan_prefix.startsWith("latmix-studio-learned-latmix-"));

    // Dismiss gives up: the run fails with a message that says how to follow the job from the shell.
    QVERIFY(ctl->start(learn_request(100000)) != 0);
    QVERIFY(arrived.wait(kJobMs));
    relay.drop();
    QVERIFY(lost.wait(60000));
    s.window.findChild<QPushButton*>("dismiss-banner")->click();
    QVERIFY(failed.wait(60000));
    const QString message = failed.at(0).at(0).toString();
    QVERIFY2(message.contains("jobs attach") && message.contains(relay.url()), qPrintable(message));
    QVERIFY(!ctl->running());
  }
};

LATMIX_QTEST_MAIN(RemoteStudioTest)
#include "test_remote_studio.moc"
