// The studio's scripted screenshot scenario (issue 16: it moved here from MainWindow): the studio on the
// bundled model under Xvfb at 1280 x 720, one screenshot per screen into DIR once each has its data:
// the first-run tour, Overview, Activation Explorer (after a short calibration), Block Microscope,
// Compare (specs), Learn (12 steps; a second run refreshed mid-run and cancelled), Compare (methods,
// with its report) and Export (the first plan as a compressed-tensors .zip bundle, verified). Writes
// DIR/latency.txt (the GUI event loop's lateness; reported, not gated) and exits 0 when every step
// worked. Run by tests/gui/screenshots.sh (ctest gui_screenshots), which checks the images.
// Usage: latmix_gui_screenshot_scenario DIR
#include <QApplication>
#include <QDir>
#include <QElapsedTimer>
#include <QFile>
#include <QFileInfo>
#include <QSpinBox>
#include <QTabWidget>
#include <QTimer>

#include <cstdio>
#include <functional>
#include <initializer_list>
#include <memory>
#include <utility>

#include "compare_panel.h"
#include "engine_host.h"
#include "explorer_panel.h"
#include "export_panel.h"
#include "latency_probe.h"
#include "latmix/export.h"
#include "learn_controller.h"
#include "learn_panel.h"
#include "main_window.h"
#include "microscope_panel.h"
#include "model_session.h"
#include "settings_dialog.h"
#include "tour.h"

namespace latmix::studio {

namespace {

// Runs `then` (after a short settle) the first time `signal` fires.
template <typename Sender, typename Signal>
void after(QObject* receiver, Sender* sender, Signal signal, std::function<void()> then, int settle_ms = 400) {
  auto conn = std::make_shared<QMetaObject::Connection>();
  *conn = QObject::connect(sender, signal, receiver, [receiver, conn, then, settle_ms] {
    QObject::disconnect(*conn);
    QTimer::singleShot(settle_ms, receiver, then);
  });
}

}  // namespace

/// The scenario, driving a MainWindow through its public interface as a person would.
class Scenario : public QObject {
 public:
  Scenario(MainWindow& w, EngineHost& host) : QObject(&w), w_(w), host_(host) {}
  void run(const QString& dir, std::function<void(bool)> done);
  /// GUI event-loop lateness while the scenario's learning runs were in progress.
  LatencyProbe::Summary learningLatency() const { return learning_latency_; }

 private:
  void shootLearning(const QString& dir, std::function<void(const QString&)> shoot, std::function<void(bool)> done);
  void shootExport(const QString& dir, std::function<void(const QString&)> shoot, std::function<void(bool)> done);
  // Each line with the seconds since the scenario began, so that the slow steps show.
  void note(const QString& line) {
    std::printf("[%6.1f s] %s\n", clock_.elapsed() / 1000.0, line.toUtf8().constData());
    std::fflush(stdout);
  }
  // Sets spin boxes of `panel` by their option names, as a person would; false (and a note) when
  // one is missing.
  bool setFields(QWidget* panel, const QString& what, std::initializer_list<std::pair<const char*, int>> fields) {
    for (const auto& [name, value] : fields) {
      auto* box = panel->findChild<QSpinBox*>(name);
      if (box == nullptr) {
        note(QString("scenario: the %1 has no field '%2'").arg(what, name));
        return false;
      }
      box->setValue(value);
    }
    return true;
  }
  QElapsedTimer clock_;

  MainWindow& w_;
  EngineHost& host_;
  std::shared_ptr<LearnOutcome> scenario_plan_;  // the plan the scenario learned first, for its export
  LatencyProbe* learn_probe_ = nullptr;
  LatencyProbe::Summary learning_latency_;
};

void Scenario::run(const QString& dir, std::function<void(bool)> done) {
  // Overview -> explorer (after a short calibration) -> microscope -> compare (specs) -> learn
  // (12 steps; a second run refreshed mid-run and cancelled) -> compare (methods).
  auto ok = std::make_shared<bool>(true);
  auto ended = std::make_shared<bool>(false);
  auto finish = [done, ended](bool result) {  // once, whichever way the scenario ends
    if (*ended) return;
    *ended = true;
    done(result);
  };
  // Each screen must fit 1280 x 720: a window that grew past it (its content's minimum size) fails.
  clock_.start();
  auto shoot = [this, dir, ok](const QString& name) {
    note("scenario: " + name + ".png");
    const bool fits = w_.width() <= 1280 && w_.height() <= 720;
    if (!fits) note(QString("scenario: %1 does not fit 1280 x 720: the window is %2 x %3").arg(name).arg(w_.width()).arg(w_.height()));
    *ok = w_.saveScreenshot(dir + "/" + name + ".png") && fits && *ok;
  };
  w_.resize(1280, 720);  // issue 17, Major 7: every screen fits a 1280 x 720 display
  // A failed (or unexpectedly cancelled) step ends the scenario with an error instead of waiting forever.
  auto failed = [this, finish](quint64, const QString& tag, const QString& message) {
    static const QStringList watched = {"calibrate",       "microscope",     "compare", "learn",
                                        "compare-methods", "compare-report", "export",  "verify-export"};
    if (!watched.contains(tag)) return;
    note("screenshot scenario stopped: " + tag + " " + message);
    finish(false);
  };
  connect(&host_, &EngineHost::jobFailed, this, failed);
  connect(&host_, &EngineHost::jobCancelled, this, [failed](quint64 id, const QString& tag) {
    if (tag != "learn") failed(id, tag, "cancelled");  // the scenario cancels one learning run itself
  });
  w_.findChild<QTabWidget*>()->setCurrentIndex(0);
  w_.showTour();  // the first-run tour's first step (tour.png), dismissed before the scenario goes on
  QTimer::singleShot(400, this, [this, shoot] {
    shoot("tour");
    w_.tour()->dismiss();
  });
  QTimer::singleShot(800, this, [this, dir, shoot, finish, ok] {
    shoot("overview");
    w_.showTab(w_.explorer());
    after(this, w_.explorer(), &ExplorerPanel::calibrated, [this, dir, shoot, finish, ok] {
      w_.explorer()->setView("residual", "energy_share", "before");
      QTimer::singleShot(300, this, [this, dir, shoot, finish, ok] {
        shoot("explorer");
        w_.showTab(w_.microscope());
        after(this, w_.microscope(), &MicroscopePanel::refreshed, [this, dir, shoot, finish, ok] {
          shoot("microscope");
          w_.showTab(w_.compare());
          after(this, w_.compare(), &ComparePanel::finished, [this, dir, shoot, finish, ok] {
            shoot("compare");
            shootLearning(dir, shoot, [this, dir, shoot, finish, ok](bool result) {
              if (!result) {
                finish(false);
                return;
              }
              shootExport(dir, shoot, [finish, ok](bool exported) { finish(exported && *ok); });
            });
          });
          // a short comparison, so that the scripted run stays quick on a small machine
          w_.compare()->configure("text:" + resources_dir() + "/calibration/pride_and_prejudice_ch1-6.txt,winogrande",
                              "w=mxfp4,a=none,weights=rtn\nw=mxfp4,a=mxfp4,weights=gptq", 6);
          // GPTQ on 8 x 64 tokens of the bundled sample.
          if (!setFields(w_.compare(), "compare page", {{"calib-samples", 8}, {"calib-seqlen", 64}}) ||
              w_.compare()->run() == 0) {
            finish(false);
          }
        });
        w_.microscope()->select("residual", 1, 6);
      });
    });
    w_.explorer()->setSequences(8, 128);  // a short calibration (the panel's default is 16 x 256)
    if (w_.explorer()->calibrate() == 0) finish(false);
  });
}

void Scenario::shootLearning(const QString& dir, std::function<void(const QString&)> shoot,
                               std::function<void(bool)> done) {
  const QString sample = resources_dir() + "/calibration/pride_and_prejudice_ch1-6.txt";
  LearnRequest r;
  r.method = "latmix";
  r.quant = "mxfp4";
  // The bundled sample, not the training books ("gutenberg": three books to tokenize first).
  r.calib = sample.toStdString();
  // 16 x 64 tokens and 12 steps (was 32 x 128 and 20): the same screen, curve and exported plan
  // (a step costs about a second here whatever its tokens; issue 16: the scenario took ~150 s of CPU).
  r.samples = 16;
  r.seqlen = 64;
  r.steps = 12;
  r.deployed_check = "no";  // its two GPTQ runs show nothing on this screen
  w_.showTab(w_.learn());
  w_.learn()->setRequest(r);
  w_.learn()->setLogScale(true);  // the regularizer is two decades below the KL term
  learn_probe_ = new LatencyProbe(&host_, this);  // event-loop lateness while learning runs
  LearnController* ctl = w_.learn()->controller();
  after(this, ctl, &LearnController::finished, [this, dir, shoot, done, ctl, r]() mutable {
    const size_t steps = ctl->curve().size();
    note(QString("scenario: learned %1 steps, loss %2 -> %3").arg(steps)
            .arg(steps > 0 ? ctl->curve().front().loss : 0.0).arg(steps > 0 ? ctl->curve().back().loss : 0.0));
    shoot("learn");
    // 12 steps, or fewer when validation stopped the run early (LearnSettings::patience).
    if (steps == 0 || steps > 12) done(false);
    scenario_plan_ = std::make_shared<LearnOutcome>(ctl->outcome());  // exported at the end
    // A second, longer run: refresh the explorer's heatmap from a snapshot mid-run, then cancel it.
    r.steps = 400;
    w_.learn()->setRequest(r);
    after(this, ctl, &LearnController::stepsArrived, [this, ctl] {
      note("scenario: refreshing the heatmap from the run in progress");
      if (!w_.learn()->refreshHeatmap()) ctl->cancel();
    }, 0);
    after(this, w_.learn(), &LearnPanel::heatmapRefreshed, [this, ctl] {
      note("scenario: heatmap refreshed mid-run; cancelling the run");
      ctl->cancel();
    }, 0);
    after(this, ctl, &LearnController::cancelled, [this, dir, shoot, done] {
      const auto s = learn_probe_->summary();
      learning_latency_ = s;
      delete learn_probe_;
      learn_probe_ = nullptr;
      note(QString("scenario: learning run cancelled; GUI lateness while learning p50 %1 ms, p99 %2 ms, max %3 ms")
              .arg(s.p50_ms, 0, 'f', 1).arg(s.p99_ms, 0, 'f', 1).arg(s.max_ms, 0, 'f', 1));
      w_.showTab(w_.compare());
      after(this, w_.compare(), &ComparePanel::methodsFinished, [this, dir, shoot, done] {
        shoot("compare-methods");
        after(this, w_.compare(), &ComparePanel::reportSaved, [done] { done(true); }, 0);
        if (w_.compare()->saveReport(dir + "/compare-report") == 0) done(false);
      });
      LearnRequest m;
      m.quant = "mxfp4";
      m.calib = (resources_dir() + "/calibration/pride_and_prejudice_ch1-6.txt").toStdString();
      // Three methods (the screen compares them: none, a fixed rotation with GPTQ, the learned plan), on
      // 8 x 64 calibration tokens, 2 learning steps and 4 evaluation windows of 128 tokens (were four
      // methods, 16 x 128, 8 steps, 8 x 256).
      m.samples = 8;
      m.seqlen = 64;
      m.steps = 2;
      // The RTN student alone judges the plan: the deployed check's two GPTQ runs are the Learn tab's
      // to show (they took 4 of the comparison's 20 s here).
      m.deployed_check = "no";
      // held-out text of the gutenberg models when the data folder is there, else the bundled sample
      const bool data = QFileInfo::exists(studio_data_dir() + "/corpus/gutenberg");
      w_.compare()->configureMethods({"rtn", "mr-gptq", "latmix"}, data ? "frankenstein" : "text:" + QString::fromStdString(m.calib), 4,
                                 128, m);
      if (w_.compare()->runMethods() == 0) done(false);
    });
    // started a moment after the screenshot, as a person would
    QTimer::singleShot(300, this, [this, done] {
      if (w_.learn()->start() == 0) done(false);
    });
  });
  if (w_.learn()->start() == 0) done(false);
}

void Scenario::shootExport(const QString& dir, std::function<void(const QString&)> shoot,
                             std::function<void(bool)> done) {
  // The plan learned first (12 steps), as compressed-tensors in a .zip bundle in `dir`, with the Learn
  // tab's format; then the bundle is verified again from disk, as Verify bundle... does.
  w_.showTab(w_.exportPanel());
  if (scenario_plan_ && !scenario_plan_->plan_prefix.isEmpty()) {
    w_.exportPanel()->setPlan(*scenario_plan_);
  } else {
    note("scenario: no learned plan to export");
    done(false);
    return;
  }
  w_.exportPanel()->setOutputFolder(dir);
  w_.exportPanel()->setKind("compressed-tensors");
  w_.exportPanel()->setZip(true);
  w_.exportPanel()->setQuant("");
  // The export's GPTQ on 8 x 64 tokens of the bundled sample and its perplexity check on 2 windows, set
  // in the panel's fields as a person would (the defaults, 32 x 128 and 8, cost this scenario ~3 s).
  if (!setFields(w_.exportPanel(), "export panel", {{"calib-samples", 8}, {"calib-seqlen", 64}, {"verify-windows", 2}})) {
    done(false);
    return;
  }
  after(this, w_.exportPanel(), &ExportPanel::exported, [this, shoot, done] {
    const ExportOutcome o = w_.exportPanel()->lastOutcome();
    note(QString("scenario: exported %1 (%2, verified: %3)").arg(o.path).arg(format_bytes(o.zip_bytes))
            .arg(o.verified ? "yes" : "NO"));
    if (!o.verified) {
      done(false);
      return;
    }
    after(this, w_.exportPanel(), &ExportPanel::verified, [this, shoot, done] {
      const ExportOutcome v = w_.exportPanel()->lastOutcome();
      note(QString("scenario: bundle %1: %2").arg(v.path, v.verified ? "verified" : "VERIFICATION FAILED"));
      shoot("export");
      done(v.verified);
    }, 300);
    if (w_.exportPanel()->verify(o.path) == 0) done(false);
  }, 0);
  after(this, w_.exportPanel(), &ExportPanel::exportFailed, [this, done] {
    note("scenario: export failed: " + w_.exportPanel()->lastOutcome().message);
    done(false);
  }, 0);
  after(this, w_.exportPanel(), &ExportPanel::exportCancelled, [done] { done(false); }, 0);
  if (w_.exportPanel()->startExport() == 0) done(false);
}

}  // namespace latmix::studio

int main(int argc, char** argv) {
  using namespace latmix::studio;
  if (argc != 2) {
    std::fprintf(stderr, "usage: %s DIR\n", argv[0]);
    return 2;
  }
  QApplication app(argc, argv);
  QCoreApplication::setOrganizationName("LATMiX");
  QCoreApplication::setApplicationName("LATMiX Studio");
  const QString dir = QString::fromLocal8Bit(argv[1]);
  QDir().mkpath(dir);
  EngineHost host;
  ModelSession session(&host);
  apply_settings(StudioSettings::load(), &host);
  MainWindow window(&host, &session);
  window.show();
  auto* scenario = new Scenario(window, host);
  auto* probe = new LatencyProbe(&host, &window);
  QElapsedTimer wall;
  wall.start();
  QObject::connect(&session, &ModelSession::opened, &window, [&, dir] {
    scenario->run(dir, [&, dir](bool ok) {
      const auto s = probe->summary();
      const auto l = scenario->learningLatency();
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
                    .arg(static_cast<double>(wall.elapsed()) / 1000.0, 0, 'f', 1)
                    .toUtf8());
      }
      app.exit(ok && l.samples > 0 ? 0 : 1);
    });
  });
  QObject::connect(&session, &ModelSession::openFailed, &window, [&app] { app.exit(1); });
  window.openModel(resources_dir() + "/models/gutenberg-llama-6M");
  return app.exec();
}
