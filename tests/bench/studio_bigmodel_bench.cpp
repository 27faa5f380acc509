// Issue 15's studio benchmark (never run by ctest; tests/bench/studio_bigmodel.sh runs it under Xvfb):
// the studio's window, scripted on a big model folder: open it (memory-mapped), show the Overview
// until its weight statistics are in, then calibrate the explorer on N sequences x L tokens. The GUI
// thread's event-loop lateness (a 10 ms timer, as app/latency_probe.h) is sampled throughout, and
// per step; each step's wall time is printed. Exit 0 when every step finished and the p99 lateness
// over the whole run is under 50 ms.
// With `learn` last, it then presses Learn: on a model whose held copy cannot fit, the Learn panel's
// refusal (both numbers) is printed; where it fits, the run is cancelled at its first step.
//   studio_bigmodel_bench MODEL [SAMPLES=2] [SEQLEN=128] [learn]
#include <QApplication>
#include <QElapsedTimer>
#include <QTimer>

#include <algorithm>
#include <cstdio>
#include <map>
#include <string>
#include <vector>

#include "engine_host.h"
#include "explorer_panel.h"
#include "learn_controller.h"
#include "learn_panel.h"
#include "main_window.h"
#include "model_session.h"

using namespace latmix::studio;

namespace {

// How late a 10 ms timer fires on the GUI thread, tagged with the step that was running.
class Lateness : public QObject {
 public:
  Lateness() {
    timer_.setTimerType(Qt::PreciseTimer);
    timer_.setInterval(10);
    connect(&timer_, &QTimer::timeout, this, [this] {
      const qint64 now = clock_.nsecsElapsed();
      const double late = std::max(0.0, static_cast<double>(now - last_) / 1e6 - 10.0);
      last_ = now;
      samples_[step].push_back(late);
      samples_["all"].push_back(late);
    });
    clock_.start();
    last_ = clock_.nsecsElapsed();
    timer_.start();
  }
  std::string step = "start";
  void print(const std::string& name) const {
    auto it = samples_.find(name);
    if (it == samples_.end() || it->second.empty()) return;
    std::vector<double> v = it->second;
    std::sort(v.begin(), v.end());
    auto at = [&](double q) { return v[std::min(v.size() - 1, static_cast<size_t>(q * static_cast<double>(v.size())))]; };
    std::printf("LATENESS %-10s %6zu samples, p50 %.1f ms, p99 %.1f ms, max %.1f ms\n", name.c_str(), v.size(),
                at(0.5), at(0.99), v.back());
  }
  double p99(const std::string& name) const {
    std::vector<double> v = samples_.at(name);
    std::sort(v.begin(), v.end());
    return v[std::min(v.size() - 1, static_cast<size_t>(0.99 * static_cast<double>(v.size())))];
  }

 private:
  QTimer timer_;
  QElapsedTimer clock_;
  qint64 last_ = 0;
  std::map<std::string, std::vector<double>> samples_;
};

}  // namespace

int main(int argc, char** argv) {
  QApplication app(argc, argv);
  QCoreApplication::setOrganizationName("LATMiX-bench");
  QCoreApplication::setApplicationName("studio-bigmodel-bench");
  if (argc < 2) {
    std::fprintf(stderr, "usage: studio_bigmodel_bench MODEL [SAMPLES=2] [SEQLEN=128]\n");
    return 2;
  }
  const QString model = QString::fromLocal8Bit(argv[1]);
  const int samples = argc > 2 ? std::atoi(argv[2]) : 2;
  const int seqlen = argc > 3 ? std::atoi(argv[3]) : 128;
  const bool learn = argc > 4 && std::string(argv[4]) == "learn";

  EngineHost host;
  ModelSession session(&host);
  MainWindow window(&host, &session);
  window.setConfirm([](const QString&, const QString&) { return true; });
  window.resize(1280, 720);
  window.show();
  Lateness lateness;
  QElapsedTimer wall, step;
  wall.start();
  int rc = 1;
  auto mark = [&](const char* done, const char* next) {
    std::printf("STEP %-10s %8.1f s (at %.1f s)\n", done, static_cast<double>(step.restart()) / 1000.0,
                static_cast<double>(wall.elapsed()) / 1000.0);
    std::fflush(stdout);
    lateness.step = next;
  };
  QObject::connect(&host, &EngineHost::jobProgress, &app, [&](quint64, const QString& stage, qint64 done, qint64 total) {
    static QElapsedTimer every;
    if (every.isValid() && every.elapsed() < 10000 && done < total) return;  // a line each 10 s
    every.start();
    std::printf("  progress %s %lld/%lld (at %.1f s)\n", qPrintable(stage), static_cast<long long>(done),
                static_cast<long long>(total), static_cast<double>(wall.elapsed()) / 1000.0);
    std::fflush(stdout);
  });
  auto finish = [&] {
    QTimer::singleShot(500, &app, [&] {  // the last view drawn
      for (const char* s : {"open", "overview", "calibrate", "learn", "all"}) lateness.print(s);
      const double p99 = lateness.p99("all");
      std::printf("TOTAL %.1f s; GUI event-loop p99 %.1f ms (%s: under 50 ms)\n",
                  static_cast<double>(wall.elapsed()) / 1000.0, p99, p99 < 50 ? "ok" : "FAILED");
      rc = p99 < 50 ? 0 : 1;
      app.exit(rc);
    });
  };
  QObject::connect(&host, &EngineHost::jobFinished, &app, [&](quint64, const QString& tag, double seconds) {
    std::printf("  job %s: %.1f s (at %.1f s)\n", qPrintable(tag), seconds, static_cast<double>(wall.elapsed()) / 1000.0);
    std::fflush(stdout);
  });
  QObject::connect(&host, &EngineHost::jobFailed, &app, [&](quint64, const QString& tag, const QString& message) {
    if (tag == "learn") return;  // the Learn panel's refusal, below
    std::printf("FAILED %s: %s\n", qPrintable(tag), qPrintable(message));
    app.exit(1);
  });
  LearnController* ctl = window.learn()->controller();
  QObject::connect(ctl, &LearnController::failed, &app, [&](const QString&) {
    mark("learn", "end");
    std::printf("LEARN PANEL: %s\n", qPrintable(window.learn()->summaryText()));
    finish();
  });
  QObject::connect(ctl, &LearnController::stepsArrived, &app, [&, ctl] {
    if (lateness.step != "learn") return;
    mark("learn", "end");
    std::printf("LEARN: started (the held copy fit); cancelled at its first step\n");
    ctl->cancel();
    finish();
  });
  QObject::connect(&session, &ModelSession::opened, &app, [&] { mark("open", "overview"); });
  QObject::connect(&window, &MainWindow::overviewShown, &app, [&] {
    mark("overview", "calibrate");
    ExplorerPanel* e = window.explorer();
    window.showTab(e);
    e->setSequences(samples, seqlen);
    e->calibrate();
  });
  QObject::connect(window.explorer(), &ExplorerPanel::calibrated, &app, [&] {
    mark("calibrate", learn ? "learn" : "end");
    if (!learn) return finish();
    window.showTab(window.learn());
    window.learn()->start();
  });
  step.start();
  lateness.step = "open";
  window.openModel(model);
  app.exec();
  return rc;
}
