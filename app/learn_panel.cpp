#include "learn_panel.h"

#include <QAction>
#include <QCheckBox>
#include <QComboBox>
#include <QFileDialog>
#include <QFileInfo>
#include <QGroupBox>
#include <QHBoxLayout>
#include <QLabel>
#include <QPointer>
#include <QPushButton>
#include <QScrollArea>
#include <QSettings>
#include <QSplitter>
#include <QTemporaryDir>
#include <QVBoxLayout>

#include <nlohmann/json.hpp>

#include <algorithm>
#include <cmath>
#include <cstring>
#include <map>

#include "engine_host.h"
#include "latmix/api/learn.h"
#include "latmix/api/statistics.h"
#include "latmix/calib.h"
#include "latmix/error.h"
#include "latmix/quant.h"
#include "latmix/tasks.h"
#include "latmix/transform_fold.h"
#include "loss_chart.h"
#include "main_window.h"
#include "model_session.h"
#include "settings_dialog.h"
#include "scratch_dir.h"
#include "studio_context.h"

namespace latmix::studio {

QString format_seconds(double seconds) {
  if (!std::isfinite(seconds) || seconds < 0) return "?";
  const auto s = static_cast<qint64>(std::llround(seconds));
  if (s >= 3600) return QString("%1 h %2 min").arg(s / 3600).arg((s % 3600) / 60, 2, 10, QChar('0'));
  if (s >= 60) return QString("%1 min %2 s").arg(s / 60).arg(s % 60, 2, 10, QChar('0'));
  return QString("%1 s").arg(seconds, 0, 'f', 1);
}

std::vector<std::pair<double, QString>> layer_markers(const std::vector<LearnStep>& curve) {
  std::map<qint64, qint64> first;  // layer -> its lowest step
  for (const LearnStep& s : curve) {
    if (s.layer < 0) continue;
    const auto [it, added] = first.emplace(s.layer, s.step);
    if (!added) it->second = std::min(it->second, s.step);
  }
  std::vector<std::pair<double, QString>> markers;
  for (const auto& [layer, step] : first)
    markers.emplace_back(static_cast<double>(step) - 0.5, QString("layer %1").arg(layer));
  std::sort(markers.begin(), markers.end(), [](const auto& a, const auto& b) { return a.first < b.first; });
  return markers;
}

namespace {

const QString kValidationSeries = QStringLiteral("validation");

}  // namespace

LearnPanel::LearnPanel(StudioContext* context, QWidget* parent)
    : QWidget(parent),
      context_(context),
      host_(context->host()),
      session_(context->session()),
      controller_(context->learnController()),
      snapshots_(make_scratch_dir()) {
  auto* split = new QSplitter(Qt::Horizontal, this);
  auto* settings = new QWidget(split);
  buildSettings(settings);
  settings->setMaximumWidth(520);
  split->addWidget(settings);
  split->addWidget(buildResults());
  split->setStretchFactor(1, 1);
  auto* layout = new QVBoxLayout(this);
  layout->setContentsMargins(4, 4, 4, 4);
  layout->addWidget(split);

  start_action_ = new QAction("&Start learning", this);
  start_action_->setShortcut(QKeySequence("Ctrl+L"));
  pause_action_ = new QAction("&Pause / resume learning", this);
  pause_action_->setShortcut(QKeySequence("Ctrl+Shift+P"));
  cancel_action_ = new QAction("&Cancel learning", this);
  cancel_action_->setShortcut(QKeySequence("Ctrl+Shift+L"));
  for (QAction* a : {start_action_, pause_action_, cancel_action_}) a->setShortcutContext(Qt::ApplicationShortcut);
  connect(start_action_, &QAction::triggered, this, &LearnPanel::start);
  connect(pause_action_, &QAction::triggered, this,
          [this] { controller_->paused() ? controller_->resume() : controller_->pause(); });
  connect(cancel_action_, &QAction::triggered, controller_, &LearnController::cancel);
  connect(start_, &QPushButton::clicked, start_action_, &QAction::trigger);
  connect(pause_, &QPushButton::clicked, pause_action_, &QAction::trigger);
  connect(cancel_, &QPushButton::clicked, cancel_action_, &QAction::trigger);
  start_->setToolTip("Start learning (Ctrl+L)");
  pause_->setToolTip("Pause after the step in progress, or resume (Ctrl+Shift+P)");
  cancel_->setToolTip("Cancel learning (Ctrl+Shift+L); nothing is kept");

  connect(controller_, &LearnController::stepsArrived, this, &LearnPanel::onSteps);
  connect(controller_, &LearnController::finished, this, &LearnPanel::onFinished);
  connect(controller_, &LearnController::loaded, this, &LearnPanel::onLoaded);
  connect(controller_, &LearnController::pausedChanged, this, [this](bool paused) {
    live_->setText(live_->text().remove(QStringLiteral(" — paused")) + (paused ? " — paused" : ""));
    Q_EMIT statusText(paused ? "learning paused" : "learning");
    updateButtons();
  });
  // A cancelled or failed run changes nothing: the result box goes back to the current plan (no
  // stale "Learning..."), with a line saying what happened.
  auto run_ended = [this](const QString& what) {
    if (controller_->hasPlan()) {
      showSummary(controller_->outcome());
      summary_->setText(what + "<br>The current plan is unchanged:<br>" + summary_->text());
    } else {
      summary_->setText(what);
    }
    Q_EMIT statusText("");
    refreshRuns();
    updateButtons();
  };
  connect(controller_, &LearnController::cancelled, this, [this, run_ended] {
    live_->setText(live_->text() + " — cancelled");
    run_ended("<b>Cancelled</b>: nothing of that run was kept.");
  });
  connect(controller_, &LearnController::failed, this, [run_ended](const QString& message) {
    run_ended("<span style='color:#c0392b'><b>Failed:</b> " + message.toHtmlEscaped() + "</span>");
  });
  connect(controller_, &LearnController::historyChanged, this, &LearnPanel::refreshRuns);
  connect(controller_, &LearnController::saved, this, [this](const QString& prefix) {
    showSummary(controller_->outcome());
    summary_->setText(summary_->text() +
                      "<br>Saved: " + (prefix + ".safetensors, " + prefix + ".json").toHtmlEscaped());
  });
  connect(controller_, &LearnController::saveFailed, this, [this](const QString& message) {
    summary_->setText(summary_->text() + "<br><span style='color:#c0392b'>Save failed: " + message.toHtmlEscaped() +
                      "</span>");
  });
  restoreSettings();
  updateButtons();
}

LearnPanel::~LearnPanel() = default;

QWidget* LearnPanel::buildResults() {
  auto* box = new QWidget(this);
  auto* layout = new QVBoxLayout(box);
  auto* bar = new QHBoxLayout();
  log_scale_ = new QCheckBox("log scale", box);
  bar->addWidget(new QLabel("Loss per step (click a legend entry to hide or show that curve)", box));
  bar->addStretch(1);
  bar->addWidget(log_scale_);
  layout->addLayout(bar);
  auto* history = new QHBoxLayout();
  history->addWidget(new QLabel("Runs on this model:", box));
  runs_ = new QComboBox(box);
  runs_->setSizeAdjustPolicy(QComboBox::AdjustToMinimumContentsLengthWithIcon);
  runs_->setMinimumContentsLength(24);
  runs_->setToolTip(
      "Every finished run on the open model: method, format, loss, whether it was saved. Pick one to make it "
      "the current plan (explorer, Export) and to see its curve.");
  overlay_ = new QCheckBox("overlay runs", box);
  overlay_->setToolTip("Draw every run's total loss on the chart, for comparison");
  history->addWidget(runs_, 1);
  history->addWidget(overlay_);
  layout->addLayout(history);
  connect(runs_, &QComboBox::activated, this, [this](int i) { selectRun(runs_->itemData(i).toInt()); });
  connect(overlay_, &QCheckBox::toggled, this, [this] {
    if (controller_->running()) {
      overlayRuns();
      return;
    }
    selectRun(controller_->outcome().run);
  });
  chart_ = new latmix::widgets::LossChart(box);
  chart_->setTitle("loss");
  // The held-out loss: sparse measurements, drawn as dots in a colour none of the others take.
  chart_->setSeriesStyle(kValidationSeries, QColor(23, 190, 207), true);
  layout->addWidget(chart_, 1);
  connect(log_scale_, &QCheckBox::toggled, this, [this](bool on) {
    chart_->setLogScale(on);
    QSettings().setValue("learn/log_scale", on);
  });
  live_ = new QLabel("Not started.", box);
  live_->setWordWrap(true);
  live_->setTextInteractionFlags(Qt::TextSelectableByMouse);
  layout->addWidget(live_);
  auto* row = new QHBoxLayout();
  refresh_ = new QPushButton("Refresh heatmap with current transforms", box);
  refresh_tip_ =
      "Computes the Activation Explorer's statistics (its text, samples, format) with the "
      "transforms as they are now; learning waits meanwhile";
  refresh_->setToolTip(refresh_tip_);
  connect(refresh_, &QPushButton::clicked, this, &LearnPanel::refreshHeatmap);
  row->addWidget(refresh_);
  row->addStretch(1);
  layout->addLayout(row);
  auto* results = new QGroupBox("Result", box);
  auto* rl = new QVBoxLayout(results);
  summary_ = new QLabel("No result yet.", results);
  summary_->setWordWrap(true);
  summary_->setTextInteractionFlags(Qt::TextSelectableByMouse);
  auto* summary_scroll = new QScrollArea(results);  // a long summary scrolls instead of being cut
  summary_scroll->setWidgetResizable(true);
  summary_scroll->setFrameShape(QFrame::NoFrame);
  summary_scroll->setWidget(summary_);
  summary_scroll->setMinimumHeight(90);
  summary_->setAlignment(Qt::AlignTop | Qt::AlignLeft);
  rl->addWidget(summary_scroll, 1);
  auto* actions = new QHBoxLayout();
  save_ = new QPushButton("Save transforms...", results);
  show_ = new QPushButton("Show in explorer", results);
  load_ = new QPushButton("Load transforms...", results);
  save_->setToolTip("Writes PREFIX.safetensors + PREFIX.json (latmix learn --out PREFIX)");
  show_->setToolTip(
      "Adds the plan to the explorer's transform choices and calibrates with it, before / after "
      "(latmix stats --transforms PREFIX)");
  load_->setToolTip("Reads PREFIX.json + PREFIX.safetensors written by latmix learn --out or Save transforms");
  connect(save_, &QPushButton::clicked, this, &LearnPanel::saveTransforms);
  connect(show_, &QPushButton::clicked, this, &LearnPanel::showInExplorer);
  connect(load_, &QPushButton::clicked, this, &LearnPanel::loadTransforms);
  for (QPushButton* b : {save_, show_, load_}) actions->addWidget(b);
  actions->addStretch(1);
  rl->addLayout(actions);
  layout->addWidget(results);
  return box;
}

void LearnPanel::setLogScale(bool on) {
  log_scale_->setChecked(on);
}

void LearnPanel::modelChanged() {
  // The settings stay (they belong to the method and the device); a plan of another model does not
  // fit, and the curves belong to the model they were learned on (its runs stay in the history).
  controller_->clearPlan();
  chart_->reset();
  chart_->setTitle("loss");
  live_->setText("Not started.");
  summary_->setText("No result yet.");
  refreshRuns();
  updateButtons();
  updateCli();
}

QStringList LearnPanel::runLabels() const {
  QStringList out;
  for (int i = 0; i < runs_->count(); ++i) {
    if (runs_->itemData(i).toInt() > 0) out << runs_->itemText(i);
  }
  return out;
}

QString LearnPanel::summaryText() const { return summary_->text(); }
QString LearnPanel::liveText() const { return live_->text(); }

void LearnPanel::refreshRuns() {
  const QSignalBlocker block(runs_);
  runs_->clear();
  const auto runs = controller_->runs(session_->summary().path);
  if (runs.empty()) runs_->addItem("no runs yet", 0);
  for (const LearnRun* r : runs) {
    const LearnOutcome& o = r->outcome;
    QString label = QString("run %1: %2, %3").arg(o.run).arg(o.method, o.quant);
    if (o.learned) label += QString(", loss %1 -> %2").arg(o.first_loss, 0, 'g', 4).arg(o.last_loss, 0, 'g', 4);
    label += !o.saved_prefix.isEmpty() ? ", saved as " + QFileInfo(o.saved_prefix).fileName()
             : o.in_session           ? QString(", in the session")
                                      : QString(", not saved");
    runs_->addItem(label, o.run);
    runs_->setItemData(runs_->count() - 1, o.finished_at + "\n" + o.settings_json, Qt::ToolTipRole);
  }
  const int current = runs_->findData(controller_->outcome().run);
  runs_->setCurrentIndex(controller_->outcome().loaded || current < 0 ? runs_->count() - 1 : current);
  runs_->setEnabled(!runs.empty());
}

bool LearnPanel::selectRun(int run) {
  if (controller_->running()) return false;  // the chart shows the run in progress
  if (!controller_->selectRun(session_->summary().path, run)) return false;
  for (const LearnRun* r : controller_->runs(session_->summary().path)) {
    if (r->outcome.run != run) continue;
    showCurve(r->curve, r->curve.empty() ? r->outcome.steps : r->curve.front().total, &r->outcome);
    showSummary(r->outcome);
  }
  refreshRuns();
  updateButtons();
  return true;
}

void LearnPanel::showCurve(const std::vector<LearnStep>& curve, qint64 total, const LearnOutcome* outcome) {
  chart_->reset(total);
  const bool from_outcome = outcome != nullptr && !outcome->validation_curve.empty();
  for (const LearnStep& s : curve) {
    chart_->addPoint("total", static_cast<double>(s.step), s.loss);
    for (const auto& [name, value] : s.terms) chart_->addPoint(name, static_cast<double>(s.step), value);
    if (s.validation && !from_outcome) chart_->addPoint(kValidationSeries, static_cast<double>(s.step), *s.validation);
  }
  chart_->setMarkers(layer_markers(curve));
  if (from_outcome) {
    for (const auto& [step, value] : outcome->validation_curve)
      chart_->addPoint(kValidationSeries, static_cast<double>(step), value);
    const bool start = outcome->best_step == outcome->validation_curve.front().first;
    if (outcome->best_step >= 0) {
      chart_->setMark(kValidationSeries, static_cast<double>(outcome->best_step),
                      start ? QString("best: the start") : QString("best: step %1").arg(outcome->best_step));
    }
  }
  overlayRuns();
}

void LearnPanel::overlayRuns() {
  if (!overlay_->isChecked()) return;
  for (const LearnRun* r : controller_->runs(session_->summary().path)) {
    const QString name = QString("run %1 (%2)").arg(r->outcome.run).arg(r->outcome.method);
    if (chart_->pointCount(name) > 0) continue;
    for (const LearnStep& s : r->curve) chart_->addPoint(name, static_cast<double>(s.step), s.loss);
  }
}

QString loss_change_text(const std::vector<LearnStep>& curve) {
  if (curve.empty()) return {};
  auto change = [](double first, double last) {
    const double pct = first != 0 ? 100.0 * (last - first) / std::abs(first) : 0.0;
    const char* verb = last < first ? "fell" : last > first ? "rose" : "stayed";
    return QString("%1 from %2 to %3 (%4%5 %)")
        .arg(verb)
        .arg(first, 0, 'g', 5)
        .arg(last, 0, 'g', 5)
        .arg(pct > 0 ? "+" : "")
        .arg(pct, 0, 'f', 1);
  };
  if (curve.front().layer < 0) return "the loss " + change(curve.front().loss, curve.back().loss);
  // Layer-wise: each layer has its own loss scale; compare a layer's first step with its last (by
  // step: a layer-split run's live curve has its processes' layers side by side).
  struct Ends {
    qint64 first_step, last_step;
    double first, last;
  };
  std::map<qint64, Ends> layers;
  for (const LearnStep& s : curve) {
    Ends& e = layers.emplace(s.layer, Ends{s.step, s.step, s.loss, s.loss}).first->second;
    if (s.step < e.first_step) {
      e.first_step = s.step;
      e.first = s.loss;
    }
    if (s.step > e.last_step) {
      e.last_step = s.step;
      e.last = s.loss;
    }
  }
  int fell = 0;
  QStringList parts;
  for (const auto& [layer, e] : layers) {
    if (e.last < e.first) ++fell;
    parts << QString("layer %1 %2").arg(layer).arg(change(e.first, e.last));
  }
  return QString("layer-wise: the loss fell in %1 of %2 layers (%3)")
      .arg(fell)
      .arg(layers.size())
      .arg(parts.join("; "));
}

quint64 LearnPanel::start() {
  if (controller_->running() || !session_->hasModel()) return 0;
  const LearnRequest r = request();
  try {
    api::learn_settings(r, formDevice());  // a typo in the spec or a bad value: say so now, not from the engine
  } catch (const Error& e) {
    summary_->setText("<span style='color:#c0392b'>" + QString::fromUtf8(e.what()).toHtmlEscaped() + "</span>");
    return 0;
  }
  storeSettings();
  showCurve({}, steps_->value());  // earlier runs stay in the run list (and overlaid, if chosen)
  const QString method = QString::fromStdString(r.method);
  chart_->setTitle(QString("%1, %2").arg(method, QString::fromStdString(r.quant)));
  summary_->setText(QString("Learning %1 (run %2 on this model)... The current plan stays until it finishes.")
                        .arg(method)
                        .arg(controller_->runs(session_->summary().path).size() + 1));
  live_->setText(QString("Waiting for the engine: %1").arg(cliCommand()));
  const quint64 id = controller_->start(r, processes());
  updateButtons();
  Q_EMIT statusText("learning " + method);
  return id;
}

void LearnPanel::onSteps(int first, int count) {
  const auto& curve = controller_->curve();
  if (first == 0 && count > 0) showCurve({}, curve.front().total);
  bool new_layer = false;
  for (int i = first; i < first + count; ++i) {
    const LearnStep& s = curve[static_cast<size_t>(i)];
    chart_->addPoint("total", static_cast<double>(s.step), s.loss);
    for (const auto& [name, value] : s.terms) chart_->addPoint(name, static_cast<double>(s.step), value);
    if (s.validation) chart_->addPoint(kValidationSeries, static_cast<double>(s.step), *s.validation);
    new_layer = new_layer || (s.layer >= 0 && (i == 0 || curve[static_cast<size_t>(i) - 1].layer != s.layer));
  }
  if (new_layer) chart_->setMarkers(layer_markers(curve));  // layer boundaries of a layer-wise run
  const LearnStep& s = curve.back();
  QStringList terms;
  for (const auto& [name, value] : s.terms) terms << QString("%1 %2").arg(name).arg(value, 0, 'g', 5);
  QString text = QString("step %1/%2%3: loss %4 (%5), lr %6, |g| %7; %8 elapsed, ETA %9")
                     .arg(s.step)
                     .arg(s.total)
                     .arg(s.layer >= 0 ? QString(" (layer %1)").arg(s.layer) : QString())
                     .arg(s.loss, 0, 'g', 5)
                     .arg(terms.join(", "))
                     .arg(s.lr, 0, 'g', 3)
                     .arg(s.grad_norm, 0, 'g', 3)
                     .arg(format_seconds(s.seconds), format_seconds(s.eta));
  for (auto it = curve.rbegin(); it != curve.rend(); ++it) {  // the latest held-out loss
    if (!it->validation) continue;
    text += QString("; validation %1 at step %2").arg(*it->validation, 0, 'g', 5).arg(it->step);
    break;
  }
  if (controller_->paused()) text += " — paused";
  live_->setText(text);
  Q_EMIT statusText(QString("learning %1: step %2/%3, loss %4, ETA %5")
                        .arg(QString::fromStdString(controller_->request().method))
                        .arg(s.step)
                        .arg(s.total)
                        .arg(s.loss, 0, 'g', 4)
                        .arg(format_seconds(s.eta)));
  if (first == 0) updateButtons();  // the refresh button needs a step
}

void LearnPanel::onFinished(const LearnOutcome& o) {
  refreshRuns();
  const auto& curve = controller_->curve();
  // The result's validation curve has the start's measurement (step 0) and a layer-wise run's
  // last one, which no step event carries, and the best step.
  if (!o.validation_curve.empty()) showCurve(curve, curve.empty() ? o.steps : curve.front().total, &o);
  showSummary(o);
  live_->setText(o.learned ? QString("Finished: %1 steps in %2.").arg(o.steps).arg(format_seconds(o.seconds))
                           : QString("Built the fixed transforms in %1.").arg(format_seconds(o.seconds)));
  Q_EMIT statusText("");
  updateButtons();
}

void LearnPanel::onLoaded(const LearnOutcome& o) {
  refreshRuns();
  showSummary(o);
  updateButtons();
}

void LearnPanel::showSummary(const LearnOutcome& o) {
  QString html;
  const QString method = o.method.isEmpty() ? QString("method not recorded") : o.method;
  if (o.loaded) {
    html = QString("<b>Loaded</b> %1.json: <b>%2</b>%3")
               .arg(o.plan_prefix.toHtmlEscaped(), method.toHtmlEscaped(),
                    o.quant.isEmpty() ? QString() : " on <code>" + o.quant.toHtmlEscaped() + "</code>");
  } else {
    html = QString("<b>Run %1</b>: <b>%2</b> on <code>%3</code>")
               .arg(o.run)
               .arg(o.method.toHtmlEscaped(), o.quant.toHtmlEscaped());
    if (o.learned) {
      std::vector<LearnStep> curve = controller_->curve();
      for (const LearnRun* r : controller_->runs(o.model_path)) {
        if (r->outcome.run == o.run) curve = r->curve;
      }
      const QString change = loss_change_text(curve);
      const bool rose = o.last_loss > o.first_loss && (curve.empty() || curve.front().layer < 0);
      html += QString(": %1 steps in %2; %3")
                  .arg(o.steps)
                  .arg(format_seconds(o.seconds))
                  .arg(rose ? "<span style='color:#c0392b'>" + change.toHtmlEscaped() + "</span>"
                            : change.toHtmlEscaped());
    } else {
      html += QString(": fixed transforms, built in %1").arg(format_seconds(o.seconds));
    }
    if (!o.validation_note.isEmpty()) {
      // The plan validation chose; "learning added nothing" (the start stays) is worth seeing.
      const bool nothing = o.validation_note.contains("added nothing");
      html += "<br>" + (nothing ? "<span style='color:#b9770e'>" + o.validation_note.toHtmlEscaped() + "</span>"
                                : o.validation_note.toHtmlEscaped());
    } else if (o.learned && o.validation_samples == 0 && !o.loaded) {
      html += "<br><small>no validation: the result is the last step's plan (Advanced: validation "
              "sequences; the default holds out one in eight, none under 8 sequences)</small>";
    }
    if (!o.calibration.isEmpty()) html += "<br>calibration: " + o.calibration.toHtmlEscaped();
    html += "<br>" + (!o.saved_prefix.isEmpty() ? "saved as " + o.saved_prefix.toHtmlEscaped()
                      : o.in_session           ? QString("kept in the session")
                                               : QString("<i>not saved</i> (Save transforms, or File &gt; Save session)"));
  }
  if (!o.model_digest.isEmpty()) {
    html += QString("<br><small>model %1 (fingerprint %2...)</small>")
                .arg(QFileInfo(o.model_path).fileName().toHtmlEscaped(), o.model_digest.left(12));
  }
  if (!o.conditions.empty()) {
    QStringList c;
    for (const auto& [name, value] : o.conditions)
      c << QString("%1 %2").arg(name.toHtmlEscaped()).arg(value, 0, 'g', 4);
    html += "<br>condition numbers: " + c.join("; ");
  }
  html += o.transforms.isEmpty() ? QString("<br>no transforms (the weights are quantized as they are)")
                                 : "<br>transforms: " + o.transforms.join("; ").toHtmlEscaped();
  if (!o.notes.isEmpty()) html += "<br><small>note: " + o.notes.join("<br>note: ").toHtmlEscaped() + "</small>";
  summary_->setText(html);
}

bool LearnPanel::refreshHeatmap() {
  if (!controller_->running()) {
    if (!controller_->hasPlan()) return false;
    showInExplorer();
    return true;
  }
  if (session_->remote()) return refreshHeatmapOnEngine();
  auto model = session_->model();
  auto tokenizer = session_->tokenizer();
  if (!model || !tokenizer || !snapshots_->isValid()) return false;
  const api::StatisticsRequest request = context_->statisticsRequest();
  const QString method = QString::fromStdString(controller_->request().method);
  const std::string prefix = snapshots_->filePath("snapshot").toStdString();
  auto keep = snapshots_;
  // Everything the job hands back goes through this panel: destroyed meanwhile, it posts nowhere.
  QPointer<LearnPanel> self(this);
  const bool queued = controller_->withSnapshot([self, keep, prefix, request, method, model, tokenizer](
                                                    const TransformPlan& plan, qint64 step, const JobControl& job) {
    try {
      save_transforms(prefix, plan);  // for the explorer's request: the microscope opens its blocks with it
      api::StatisticsRequest r = request;
      r.transform = "none";
      r.transforms = prefix;
      r.transform_name = QString("%1, step %2").arg(method).arg(step).toStdString();
      auto stats = std::make_shared<ActivationStats>(api::run_statistics(r, plan, *model, *tokenizer, job).stats);
      EngineHost::post(self, [self, stats, model, r, step] {
        self->context_->showStatistics(stats, model, r);
        self->updateButtons();
        Q_EMIT self->heatmapRefreshed(step);
      });
    } catch (const Cancelled&) {
      throw;
    } catch (const std::exception& e) {  // a bad explorer text must not end the learning run
      const QString message = QString::fromUtf8(e.what());
      EngineHost::post(self, [self, message] {
        self->updateButtons();
        self->summary_->setText("<span style='color:#c0392b'>Heatmap refresh failed: " + message.toHtmlEscaped() +
                                "</span>");
      });
    }
  });
  if (queued) refresh_->setEnabled(false);
  return queued;
}

// During a run on an engine: its job computes the statistics at its next step end, on the server's
// model, with the transforms it has then (POST /v1/jobs/ID/snapshot); only the result travels.
bool LearnPanel::refreshHeatmapOnEngine() {
  api::StatisticsRequest request = context_->statisticsRequest();
  if (context_->engineLink() != nullptr) request.data = context_->engineLink()->engineText(request.data);
  nlohmann::json statistics = api::to_json(request);
  for (const char* key : {"model", "tokenizer", "transform", "transforms"}) statistics.erase(key);  // the job's
  QPointer<LearnPanel> self(this);
  const bool asked = controller_->snapshotOnEngine(
      statistics, [self, request](qint64 step, const nlohmann::json& result, const std::string& error) {
        std::shared_ptr<ActivationStats> stats;
        QString message = QString::fromStdString(error);
        if (message.isEmpty()) {
          try {
            stats = std::make_shared<ActivationStats>(api::statistics_result_from_json(result).stats);
          } catch (const std::exception& e) {
            message = QString::fromUtf8(e.what());
          }
        }
        EngineHost::post(self, [self, stats, request, step, message] {
          self->updateButtons();
          if (!stats) {
            self->summary_->setText("<span style='color:#c0392b'>Heatmap refresh failed: " + message.toHtmlEscaped() +
                                    "</span>");
            return;
          }
          // The plan is on the server: the explorer shows its numbers under the model open there.
          api::StatisticsRequest shown = request;
          shown.transform = "none";
          shown.transforms.clear();
          shown.transform_name = stats->transform;
          self->context_->showStatistics(stats, nullptr, shown);
          Q_EMIT self->heatmapRefreshed(step);
        });
      });
  if (asked) refresh_->setEnabled(false);
  return asked;
}

void LearnPanel::showInExplorer() {
  if (!controller_->hasPlan()) return;
  const LearnOutcome& o = controller_->outcome();
  const QString label =
      o.loaded ? "loaded (" + QFileInfo(o.plan_prefix).fileName() + ")" : QString("run %1 (%2)").arg(o.run).arg(o.method);
  context_->addPlan(label, o.plan_prefix);
  context_->requestCalibration();
  Q_EMIT showExplorer();
}

void LearnPanel::saveTransforms() {
  const LearnOutcome& o = controller_->outcome();
  const QString name = QString("%1-%2-run%3.safetensors")
                           .arg(QFileInfo(o.model_path).completeBaseName(), o.method)
                           .arg(o.run);
  QString path = QFileDialog::getSaveFileName(this, "Save transforms (PREFIX.safetensors + PREFIX.json)",
                                              last_folder("transforms") + "/" + name,
                                              "Transforms (*.safetensors *.json)");
  if (path.isEmpty()) return;
  remember_folder("transforms", path);
  for (const char* ext : {".safetensors", ".json"}) {
    if (path.endsWith(ext)) path.chop(static_cast<int>(strlen(ext)));
  }
  controller_->save(path);
}

void LearnPanel::loadTransforms() {
  QString path =
      QFileDialog::getOpenFileName(this, "Load transforms", last_folder("transforms"), "Transforms (*.json *.safetensors)");
  if (path.isEmpty()) return;
  remember_folder("transforms", path);
  for (const char* ext : {".safetensors", ".json"}) {
    if (path.endsWith(ext)) path.chop(static_cast<int>(strlen(ext)));
  }
  controller_->load(path);
}

void LearnPanel::updateButtons() {
  const bool running = controller_->running();
  start_action_->setEnabled(!running && session_->hasModel());
  pause_action_->setEnabled(running && find_method(controller_->request().method).learned);
  cancel_action_->setEnabled(running);
  start_->setEnabled(start_action_->isEnabled());
  pause_->setEnabled(pause_action_->isEnabled());
  pause_->setText(controller_->paused() ? "Resume" : "Pause");
  cancel_->setEnabled(running);
  // On an engine the learning job itself computes the statistics at a step end (a snapshot).
  const bool remote_run = running && session_->remote() != nullptr;
  refresh_->setEnabled(running ? !controller_->curve().empty() : controller_->hasPlan());
  refresh_->setToolTip(remote_run ? "The engine's learning job computes the explorer's statistics with its "
                                    "transforms at its next step end (at once while paused); only the numbers travel"
                                  : refresh_tip_);
  save_->setEnabled(!running && controller_->hasPlan());
  show_->setEnabled(!running && controller_->hasPlan());
  load_->setEnabled(!running && session_->hasModel());
  // Processes are the engine's to start: this process learns alone.
  const bool engine =
      session_->remote() != nullptr && find_method(method_->currentData().toString().toStdString()).learned;
  nproc_->setEnabled(!running && engine);
  split_->setEnabled(!running && engine);
}

}  // namespace latmix::studio
