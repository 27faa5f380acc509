#include "analyze_panel.h"

#include <QCheckBox>
#include <QComboBox>
#include <QDoubleSpinBox>
#include <QFileDialog>
#include <QHBoxLayout>
#include <QHeaderView>
#include <QLabel>
#include <QLineEdit>
#include <QPointer>
#include <QProgressBar>
#include <QPushButton>
#include <QSpinBox>
#include <QSplitter>
#include <QTableWidget>
#include <QVBoxLayout>

#include <cmath>
#include <iterator>
#include <utility>

#include "analyze_plots.h"
#include "engine_host.h"
#include "engine_link.h"
#include "latmix/error.h"
#include "latmix/model.h"
#include "latmix/tokenizer.h"
#include "learn_request.h"
#include "main_window.h"
#include "model_session.h"
#include "settings_dialog.h"
#include "studio_context.h"

namespace latmix::studio {

namespace {

const char* kPoints[] = {"residual", "attn_in", "o_in", "residual_mid", "mlp_in", "down_in", "lm_head_in"};
const char* kPointTips[] = {"the hidden state entering the layer (before input_layernorm)",
                            "the normalized input of q/k/v_proj",
                            "the attention output, input of o_proj",
                            "the residual stream between attention and MLP",
                            "the normalized input of gate/up_proj",
                            "the MLP's intermediate activation, input of down_proj",
                            "the final norm's output, input of lm_head (one capture, whatever the layer)"};

QString number(double v) {
  return std::isfinite(v) ? QString::number(v, 'g', 4) : QString("-");
}

QComboBox* combo(QWidget* parent, const QStringList& items, const QString& tip) {
  auto* c = new QComboBox(parent);
  c->addItems(items);
  c->setToolTip(tip);
  return c;
}

QSpinBox* spin(QWidget* parent, int lo, int hi, int value, const QString& tip) {
  auto* s = new QSpinBox(parent);
  s->setRange(lo, hi);
  s->setValue(value);
  s->setToolTip(tip);
  return s;
}

void add_row(QVBoxLayout* layout, QWidget* parent, const std::vector<std::pair<QString, QWidget*>>& items) {
  auto* row = new QHBoxLayout();
  for (const auto& [label, w] : items) {
    if (!label.isEmpty()) row->addWidget(new QLabel(label, parent));
    row->addWidget(w, qobject_cast<QLineEdit*>(w) != nullptr ? 1 : 0);
  }
  row->addStretch(0);
  layout->addLayout(row);
}

}  // namespace

AnalyzePanel::AnalyzePanel(StudioContext* context, QWidget* parent)
    : QWidget(parent), context_(context), host_(context->host()), session_(context->session()) {
  buildControls();
  connect(host_, &EngineHost::jobProgress, this, &AnalyzePanel::onProgress);
  connect(host_, &EngineHost::jobFinished, this, [this](quint64 id, const QString&, double) {
    // The result came first (posted before the job ended); without it, it was another model's.
    if (id == job_) ended("The analysis finished for a model that is no longer open: its result was dropped.");
  });
  connect(host_, &EngineHost::jobCancelled, this, [this](quint64 id, const QString&) {
    if (id == report_job_) {
      report_job_ = 0;
      save_->setEnabled(analysis_ != nullptr);
    }
    if (id != job_) return;
    ended(analysis_ ? "Cancelled. The result shown is the previous analysis." : "Cancelled.");
    Q_EMIT cancelled();
  });
  connect(host_, &EngineHost::jobFailed, this, [this](quint64 id, const QString&, const QString& message) {
    if (id == report_job_) {
      report_job_ = 0;
      save_->setEnabled(analysis_ != nullptr);
      showStatus("Could not save the report: " + message, true);
      Q_EMIT reportFailed(message);
    }
    if (id != job_) return;
    ended({});
    showStatus("The analysis failed: " + message, true);
    Q_EMIT failed(message);
  });
  // The command line follows every setting.
  auto follow = [this] { cli_->setText(cliCommand()); };
  for (QComboBox* c : {sampling_, layer_, format_, scale_, round_, affine_})
    connect(c, &QComboBox::currentIndexChanged, this, follow);
  for (QSpinBox* b : {samples_, seqlen_, seed_, detail_, steps_, batch_})
    connect(b, &QSpinBox::valueChanged, this, follow);
  for (QDoubleSpinBox* d : {lr_, holdout_}) connect(d, &QDoubleSpinBox::valueChanged, this, follow);
  for (QLineEdit* e : {data_, blocks_}) connect(e, &QLineEdit::textChanged, this, follow);
  for (QCheckBox* b : points_) connect(b, &QCheckBox::toggled, this, follow);
  cli_->setText(cliCommand());
}

AnalyzePanel::~AnalyzePanel() = default;

void AnalyzePanel::buildControls() {
  auto* layout = new QVBoxLayout(this);
  data_ = new QLineEdit(bundled_sample(), this);
  data_->setToolTip("--data: the calibration text whose activations are analysed");
  auto* browse = new QPushButton("...", this);
  connect(browse, &QPushButton::clicked, this, [this] {
    const QString f = QFileDialog::getOpenFileName(this, "Calibration text", last_folder("text"),
                                                   "Text (*.txt *.raw);;All files (*)");
    if (f.isEmpty()) return;
    remember_folder("text", f);
    data_->setText(f);
  });
  samples_ = spin(this, 1, 4096, 8, "--samples: calibration sequences");
  seqlen_ = spin(this, 2, 8192, 128, "--seqlen: tokens per sequence");
  sampling_ = combo(this, {"even", "random"}, "--sampling: how the windows of the text are chosen");
  seed_ = spin(this, 0, 1 << 30, 0, "--seed: of --sampling random and of the Hadamards' random signs");
  add_row(layout, this,
          {{"text", data_},
           {"", browse},
           {"samples", samples_},
           {"seqlen", seqlen_},
           {"sampling", sampling_},
           {"seed", seed_}});

  layer_ = combo(this, {"all layers"}, "--layer: the decoder layer analysed, or all of them");
  QStringList formats;
  for (const auto& f : mx_format_names()) formats << QString::fromStdString(f);
  format_ = combo(this, formats, "--format: the MX element format (its block size is what varies)");
  scale_ = combo(this, {"floor", "ceil", "rceil", "even"}, "--scale: the E8M0 scale rule");
  round_ = combo(this, {"even", "away"}, "--round: element rounding (ties to even or away from zero)");
  blocks_ = new QLineEdit(this);
  blocks_->setPlaceholderText("2..1024 dividing the width");
  blocks_->setToolTip("--blocks: block sizes, comma-separated (empty: every power of two 2..1024 dividing the width)");
  blocks_->setMinimumWidth(110);
  detail_ = spin(this, 1, 1 << 16, 32, "--detail-block: the block size of the per-block error view");
  add_row(layout, this,
          {{"layer", layer_},
           {"format", format_},
           {"scale", scale_},
           {"round", round_},
           {"blocks", blocks_},
           {"per-block at", detail_}});

  auto* points = new QHBoxLayout();
  points->addWidget(new QLabel("capture points", this));
  for (size_t i = 0; i < std::size(kPoints); ++i) {
    auto* b = new QCheckBox(kPoints[i], this);
    b->setToolTip(QString("--point %1: %2").arg(kPoints[i], kPointTips[i]));
    b->setChecked(i == 0);
    points_.push_back(b);
    points->addWidget(b);
  }
  points->addStretch(1);
  layout->addLayout(points);

  steps_ = spin(this, 0, 100000, 40, "--steps: Adam steps per learned fit (0: report the block-Hadamard start)");
  lr_ = new QDoubleSpinBox(this);
  lr_->setDecimals(6);
  lr_->setRange(1e-6, 10);
  lr_->setSingleStep(1e-4);
  lr_->setValue(1e-3);
  lr_->setToolTip("--lr: Adam learning rate of the learned fits (the affine's: lr x sqrt(32 / block size))");
  holdout_ = new QDoubleSpinBox(this);
  holdout_->setDecimals(3);
  holdout_->setRange(0, 0.95);
  holdout_->setSingleStep(0.05);
  holdout_->setValue(0.25);
  holdout_->setToolTip(
      "--holdout: share of the tokens (the last sequences) held out from fitting; every figure is "
      "measured there (0: fit and measure on all tokens, in-sample)");
  affine_ = combo(this, {"lu", "qr"}, "--affine: parametrization of the learned affine transform");
  batch_ = spin(this, 1, 1024, 4, "--batch: sequences per forward pass while capturing");
  add_row(
      layout, this,
      {{"learned fits: steps", steps_}, {"lr", lr_}, {"holdout", holdout_}, {"affine", affine_}, {"batch", batch_}});

  auto* actions = new QHBoxLayout();
  run_ = new QPushButton("Run analysis", this);
  run_->setToolTip("Capture the activations and measure the MX error against the block size (engine thread)");
  cancel_ = new QPushButton("Cancel", this);
  cancel_->setEnabled(false);
  save_ = new QPushButton("Save report...", this);
  save_->setToolTip("Write report.md, report.json and the PNG plots (as latmix analyze --out) to a folder");
  save_->setEnabled(false);
  progress_ = new QProgressBar(this);
  progress_->setTextVisible(true);
  progress_->hide();
  for (QWidget* w : std::initializer_list<QWidget*>{run_, cancel_, save_}) actions->addWidget(w);
  actions->addWidget(progress_, 2);
  actions->addStretch(1);
  layout->addLayout(actions);
  connect(run_, &QPushButton::clicked, this, &AnalyzePanel::run);
  connect(cancel_, &QPushButton::clicked, this, &AnalyzePanel::cancel);
  connect(save_, &QPushButton::clicked, this, [this] {
    const QString dir = QFileDialog::getExistingDirectory(this, "Save the analysis report into", last_folder("report"));
    if (dir.isEmpty()) return;
    remember_folder("report", dir);
    saveReport(dir);
  });
  status_ = new QLabel("Open a model, choose the settings and press Run analysis.", this);
  status_->setWordWrap(true);
  status_->setTextInteractionFlags(Qt::TextSelectableByMouse);
  layout->addWidget(status_);
  cli_ = new QLineEdit(this);
  cli_->setReadOnly(true);
  cli_->setToolTip("The same analysis headless");
  add_row(layout, this, {{"command", cli_}});
  layout->addWidget(buildResults(), 1);
}

QWidget* AnalyzePanel::buildResults() {
  auto* box = new QWidget(this);
  auto* layout = new QVBoxLayout(box);
  layout->setContentsMargins(0, 0, 0, 0);
  result_ = combo(box, {}, "Which capture point and layer of the result is shown (no rerun)");
  table_block_ = combo(box, {}, "The block size the table below compares the transforms at (no rerun)");
  result_->setMinimumContentsLength(24);
  add_row(layout, box, {{"show", result_}, {"table at block size", table_block_}});
  connect(result_, &QComboBox::currentIndexChanged, this, [this] { updateResult(); });
  connect(table_block_, &QComboBox::currentIndexChanged, this, [this] { updateTable(); });
  auto* split = new QSplitter(Qt::Horizontal, box);
  error_plot_ = new MxErrorPlot(split);
  block_plot_ = new BlockErrorPlot(split);
  error_plot_->clear("The relative MX error against the block size appears here after a run.");
  block_plot_->clear("Each block's share of the error appears here after a run.");
  split->addWidget(error_plot_);
  split->addWidget(block_plot_);
  split->setMinimumHeight(280);
  layout->addWidget(split, 2);
  table_ = new QTableWidget(0, 8, box);
  table_->setHorizontalHeaderLabels({"transform", "relative error", "vs none", "condition number", "block crest",
                                     "block peak power", "fit: start -> kept", "note"});
  const QStringList tips = {
      "the transform T in front of the MX quantizer",
      "E = sum ||x - T^-1 Q(T x)||^2 / sum ||x||^2 on the measured tokens (lower is better)",
      "E / E(no transform)",
      "sigma_max / sigma_min of T: how much T^-1 can amplify the error made in T's basis (1 for rotations)",
      "mean over (token, block) of max|Tx| / rms(Tx): how far the block scale sits above the values",
      "sum b max|Tx|^2 / sum ||Tx||^2: the energy the block scales are sized for, relative to the energy there is",
      "learned transforms: the error on the fitting tokens of the block-Hadamard start and of the kept transform",
      "why a transform was skipped, or what a learned fit kept"};
  for (int c = 0; c < tips.size(); ++c) table_->horizontalHeaderItem(c)->setToolTip(tips[c]);
  table_->horizontalHeader()->setStretchLastSection(true);
  table_->verticalHeader()->hide();
  table_->setEditTriggers(QAbstractItemView::NoEditTriggers);
  table_->setMinimumHeight(170);
  layout->addWidget(table_, 1);
  explanation_ = new QLabel(box);
  explanation_->setWordWrap(true);
  explanation_->setTextFormat(Qt::PlainText);
  layout->addWidget(explanation_);
  return box;
}

api::AnalyzeRequest AnalyzePanel::request() const {
  api::AnalyzeRequest r;
  r.model = session_->hasModel() ? session_->summary().path.toStdString() : std::string("MODEL");
  r.device = StudioSettings::load().device.toStdString();
  r.data = data_->text().toStdString();
  r.samples = samples_->value();
  r.seqlen = seqlen_->value();
  r.sampling = sampling_->currentText().toStdString();
  r.seed = static_cast<uint64_t>(seed_->value());
  if (layer_->currentIndex() > 0) r.layer = layer_->currentIndex() - 1;
  QStringList points;
  for (QCheckBox* b : points_) {
    if (b->isChecked()) points << b->text();
  }
  r.point = points.join(',').toStdString();
  r.format = format_->currentText().toStdString();
  r.scale = scale_->currentText().toStdString();  // the panel always says which rule and rounding
  r.round = round_->currentText().toStdString();
  r.blocks = blocks_->text().remove(' ').toStdString();
  r.detail_block = detail_->value();
  r.steps = steps_->value();
  r.lr = lr_->value();
  r.holdout = holdout_->value();
  r.affine = affine_->currentText().toStdString();
  r.batch = batch_->value();
  return r;
}

void AnalyzePanel::setRequest(const api::AnalyzeRequest& r) {
  data_->setText(QString::fromStdString(r.data));
  samples_->setValue(static_cast<int>(r.samples));
  seqlen_->setValue(static_cast<int>(r.seqlen));
  sampling_->setCurrentText(QString::fromStdString(r.sampling));
  seed_->setValue(static_cast<int>(r.seed));
  const int layer = r.layer ? static_cast<int>(*r.layer) + 1 : 0;
  if (layer < layer_->count()) layer_->setCurrentIndex(layer);
  const QStringList points = QString::fromStdString(r.point).split(',', Qt::SkipEmptyParts);
  for (QCheckBox* b : points_) b->setChecked(points.contains(b->text()));
  format_->setCurrentText(QString::fromStdString(r.format));
  scale_->setCurrentText(QString::fromStdString(r.scale.value_or("floor")));
  round_->setCurrentText(QString::fromStdString(r.round.value_or("even")));
  blocks_->setText(QString::fromStdString(r.blocks));
  detail_->setValue(static_cast<int>(r.detail_block));
  steps_->setValue(static_cast<int>(r.steps));
  lr_->setValue(r.lr);
  holdout_->setValue(r.holdout);
  affine_->setCurrentText(QString::fromStdString(r.affine));
  batch_->setValue(static_cast<int>(r.batch));
  cli_->setText(cliCommand());
}

QString AnalyzePanel::cliCommand() const { return shell_command(to_qstrings(api::analyze_command_line(request()))); }

void AnalyzePanel::showStatus(const QString& text, bool error) {
  status_->setText(error ? "<span style='color:#c0392b'>" + text.toHtmlEscaped() + "</span>" : text.toHtmlEscaped());
}

QString AnalyzePanel::statusText() const {
  return status_->text();
}

QString AnalyzePanel::progressText() const {
  return progress_->isVisible() || job_ != 0 ? progress_->text() : QString();
}

quint64 AnalyzePanel::run() {
  auto model = session_->model();
  auto tokenizer = session_->tokenizer();
  auto engine = session_->remote();
  QString refusal;
  if (job_ != 0) refusal = "An analysis is already running: wait for it or press Cancel.";
  if ((!model || !tokenizer) && !engine) refusal = "No model is open: open one (File > Open, or the demo model) first.";
  const api::AnalyzeRequest r = request();
  if (refusal.isEmpty()) {
    try {  // the settings are checked here, before anything is queued
      api::check_analyze_request(r);
      if (r.layer && *r.layer >= session_->summary().layers)
        throw UsageError("--layer " + std::to_string(*r.layer) + " is out of range: the model has " +
                         std::to_string(session_->summary().layers) + " decoder layers");
    } catch (const std::exception& e) {
      refusal = QString("Bad settings: ") + e.what();
    }
  }
  if (!refusal.isEmpty()) {
    showStatus(refusal, true);
    Q_EMIT failed(refusal);
    return 0;
  }
  cli_->setText(cliCommand());
  run_->setEnabled(false);
  cancel_->setEnabled(true);
  progress_->setRange(0, 0);
  progress_->setFormat("waiting for the engine");
  progress_->show();
  stage_.clear();
  showStatus(
      QString("Analysing %1 at %2 (%3) ...")
          .arg(r.layer ? QString("layer %1").arg(*r.layer) : QString("every layer"),
               QString::fromStdString(r.point).replace(',', ", "), QString::fromStdString(r.format)),
      false);
  if (engine) return job_ = runOnEngine(r);
  QPointer<AnalyzePanel> self(this);  // the job may outlive the panel (a window closed meanwhile)
  job_ = host_->submit("analyze", [self, model, tokenizer, r](const JobControl& job) {
    auto result = std::make_shared<const MxAnalysis>(api::run_analyze(r, *model, *tokenizer, job).analysis);
    EngineHost::post(self, [self, result, model] {
      if (model == self->session_->model()) self->showAnalysis(result);  // else: of the model open before
    });
  });
  return job_;
}

// The task "analyze" on the engine the model is open on: the server's calibration text (this
// computer's bundled sample is sent as the server's own), the result read back with
// analyze_result_from_json() and drawn as an in-process one.
quint64 AnalyzePanel::runOnEngine(api::AnalyzeRequest r) {
  auto engine = session_->remote();
  const QString path = session_->summary().path;
  r.data = context_->engineLink()->engineText(r.data);
  EngineRunHooks hooks;
  hooks.gate = context_->engineLink()->lossGate();
  QPointer<AnalyzePanel> self(this);
  return host_->submit("analyze", [self, engine, r, hooks, path](const JobControl& job) {
    const nlohmann::json result = run_on_engine(*engine, "analyze", api::to_json(r), job, hooks);
    auto analysis = std::make_shared<const MxAnalysis>(api::analyze_result_from_json(result).analysis);
    EngineHost::post(self, [self, analysis, engine, path] {
      // else: of the model open before
      if (engine == self->session_->remote() && path == self->session_->summary().path) self->showAnalysis(analysis);
    });
  });
}

void AnalyzePanel::cancel() {
  if (job_ != 0) host_->cancel(job_);
}

void AnalyzePanel::onProgress(quint64 id, const QString& stage, qint64 done, qint64 total) {
  if (id != job_) return;
  if (stage != stage_ || done < stage_done_) {  // a new stage: a new pace to estimate from
    stage_ = stage;
    stage_clock_.start();
  }
  stage_done_ = done;
  progress_->setRange(0, total > 0 ? static_cast<int>(total) : 0);
  progress_->setValue(static_cast<int>(done));
  const QString what = stage == "capture" ? "capturing activations (layers run)"
                       : stage == "fit"   ? "fitting learned transforms"
                                          : stage;
  progress_->setFormat(what + " %v/%m" + eta_text(static_cast<double>(stage_clock_.elapsed()) / 1000.0, done, total));
}

void AnalyzePanel::ended(const QString& status) {
  job_ = 0;
  run_->setEnabled(true);
  cancel_->setEnabled(false);
  progress_->hide();
  save_->setEnabled(analysis_ != nullptr && report_job_ == 0);
  if (!status.isEmpty()) showStatus(status, false);
}

void AnalyzePanel::showAnalysis(std::shared_ptr<const MxAnalysis> analysis) {
  analysis_ = std::move(analysis);
  const MxAnalysis& a = *analysis_;
  ended(QString("%1 capture%2 analysed: %3, %4 sequences x %5 tokens; learned fits: %6 Adam steps, lr %7, affine "
                "%8, %9.")
            .arg(a.layers.size())
            .arg(a.layers.size() == 1 ? "" : "s")
            .arg(QString::fromStdString(a.format_description))
            .arg(a.sequences)
            .arg(a.seqlen)
            .arg(a.steps)
            .arg(a.lr)
            .arg(QString::fromStdString(a.affine))
            .arg(a.holdout > 0 ? QString("fitted on the first %1% of the tokens, measured on the rest")
                                     .arg(100 * (1 - a.holdout), 0, 'g', 3)
                               : QString("fitted and measured on all tokens")));
  {
    const QSignalBlocker keep(result_);
    result_->clear();
    for (const auto& l : a.layers) {
      result_->addItem(QString("%1, layer %2 (%3 channels)")
                           .arg(QString::fromStdString(capture_point_name(l.point)))
                           .arg(l.layer)
                           .arg(l.features));
    }
    result_->setCurrentIndex(a.layers.empty() ? -1 : 0);
  }
  updateResult();
  Q_EMIT finished();
}

int AnalyzePanel::shownResult() const {
  return result_->currentIndex();
}

void AnalyzePanel::showResult(int index) {
  result_->setCurrentIndex(index);
}

int AnalyzePanel::tableBlock() const {
  return table_block_->currentData().toInt();
}

void AnalyzePanel::setTableBlock(int block) {
  const int i = table_block_->findData(block);
  if (i >= 0) table_block_->setCurrentIndex(i);
}

void AnalyzePanel::updateResult() {
  const int index = result_->currentIndex();
  if (!analysis_ || index < 0 || index >= static_cast<int>(analysis_->layers.size())) {
    error_plot_->clear("No result to show.");
    block_plot_->clear("No result to show.");
    table_->setRowCount(0);
    explanation_->clear();
    return;
  }
  const MxLayerAnalysis& l = analysis_->layers[static_cast<size_t>(index)];
  const QString where = QString("%1, layer %2").arg(QString::fromStdString(capture_point_name(l.point))).arg(l.layer);
  std::vector<PlotCurve> errors, blocks;
  int colour = 0;
  for (const TransformCurve& c : l.curves) {
    PlotCurve e;
    e.name = QString::fromStdString(analysis_transform_name(c.transform));
    e.colour = transform_colour(colour++);
    for (const BlockSizeResult& r : c.sizes) {
      if (!r.skipped) e.points.emplace_back(static_cast<double>(r.block), r.rel_error);
    }
    if (e.points.empty()) e.note = "skipped";
    PlotCurve b{e.name, e.colour, {}, {}};
    for (size_t j = 0; j < c.block_errors.size(); ++j) b.points.emplace_back(static_cast<double>(j), c.block_errors[j]);
    if (b.points.empty()) b.note = "n/a";
    errors.push_back(std::move(e));
    blocks.push_back(std::move(b));
  }
  error_plot_->setCurves(std::move(errors), QString("Relative %1 error vs block size: %2 (%3 tokens)")
                                                .arg(QString::fromStdString(analysis_->format), where)
                                                .arg(l.tokens));
  if (l.detail_block > 0) {
    block_plot_->setBlockSize(static_cast<int>(l.detail_block));
    block_plot_->setCurves(std::move(blocks),
                           QString("Per-block error at block size %1: %2 (share of E)").arg(l.detail_block).arg(where));
  } else {
    block_plot_->clear(QString("No per-block errors: the per-block size %1 is not among this capture's block sizes.")
                           .arg(detail_->value()));
  }
  {
    const QSignalBlocker keep(table_block_);
    const int wanted = table_block_->count() > 0 ? tableBlock() : 32;
    table_block_->clear();
    for (int64_t b : l.block_sizes) table_block_->addItem(QString::number(b), static_cast<int>(b));
    int i = table_block_->findData(wanted);
    if (i < 0) i = table_block_->findData(static_cast<int>(l.detail_block));
    table_block_->setCurrentIndex(i >= 0 ? i : table_block_->count() - 1);
  }
  updateTable();
}

void AnalyzePanel::updateTable() {
  const int index = result_->currentIndex();
  table_->setRowCount(0);
  explanation_->clear();
  if (!analysis_ || index < 0 || index >= static_cast<int>(analysis_->layers.size())) return;
  const MxLayerAnalysis& l = analysis_->layers[static_cast<size_t>(index)];
  const int block = tableBlock();
  size_t at = l.block_sizes.size();
  for (size_t i = 0; i < l.block_sizes.size(); ++i) {
    if (l.block_sizes[i] == block) at = i;
  }
  if (at == l.block_sizes.size()) return;
  const double none = l.curve(AnalysisTransform::None).sizes[at].rel_error;
  table_->setRowCount(static_cast<int>(l.curves.size()));
  for (int row = 0; row < static_cast<int>(l.curves.size()); ++row) {
    const TransformCurve& c = l.curves[static_cast<size_t>(row)];
    const BlockSizeResult& r = c.sizes[at];
    const bool learned = !std::isnan(r.fit_error);
    const QStringList cells = {QString::fromStdString(analysis_transform_name(c.transform)),
                               r.skipped ? "-" : number(r.rel_error),
                               r.skipped || !(none > 0) ? "-" : QString::number(r.rel_error / none, 'f', 3) + "x",
                               r.skipped ? "-" : number(r.condition_number),
                               r.skipped ? "-" : QString::number(r.block_crest, 'f', 3),
                               r.skipped ? "-" : QString::number(r.block_peak_power, 'f', 3),
                               learned ? number(r.init_error) + " -> " + number(r.fit_error) +
                                             QString(" (step %1 of %2)").arg(r.best_step).arg(r.steps)
                                       : QString(),
                               QString::fromStdString(r.note)};
    for (int col = 0; col < cells.size(); ++col) {
      auto* item = new QTableWidgetItem(cells[col]);
      if (col == 0) item->setForeground(transform_colour(row));
      table_->setItem(row, col, item);
    }
  }
  table_->resizeColumnsToContents();
  const BlockSizeResult& rot = l.curve(AnalysisTransform::LearnedRotation).sizes[at];
  const BlockSizeResult& aff = l.curve(AnalysisTransform::LearnedAffine).sizes[at];
  QString here;
  if (!rot.skipped && !aff.skipped) {
    here = QString(
               "\nHere at block size %1: the affine map's E is %2 (condition number %3, crest %4, peak %5), the "
               "rotation's %6 (condition number 1, crest %7, peak %8): the %9.")
               .arg(block)
               .arg(number(aff.rel_error), number(aff.condition_number), QString::number(aff.block_crest, 'f', 3),
                    QString::number(aff.block_peak_power, 'f', 3), number(rot.rel_error),
                    QString::number(rot.block_crest, 'f', 3), QString::number(rot.block_peak_power, 'f', 3))
               .arg(aff.rel_error < rot.rel_error ? "affine map is lower" : "rotation is lower or equal");
  }
  explanation_->setText(
      "Why an affine map can beat a rotation: the paper's bound weighs the transform's conditioning (how much T^-1 "
      "can amplify the error made in T's basis; 1 for any rotation) against the block magnitudes T x leaves for the "
      "power-of-two scales (crest, peak power), so an affine map may pay a condition number above 1 for blocks that "
      "quantize better." +
      here);
}

QString AnalyzePanel::tableText() const {
  QStringList lines;
  QStringList header;
  for (int c = 0; c < table_->columnCount(); ++c) header << table_->horizontalHeaderItem(c)->text();
  lines << header.join('\t');
  for (int r = 0; r < table_->rowCount(); ++r) {
    QStringList cells;
    for (int c = 0; c < table_->columnCount(); ++c)
      cells << (table_->item(r, c) ? table_->item(r, c)->text() : QString());
    lines << cells.join('\t');
  }
  return lines.join('\n');
}

QString AnalyzePanel::explanationText() const {
  return explanation_->text();
}

quint64 AnalyzePanel::saveReport(const QString& dir) {
  if (!analysis_ || report_job_ != 0) return 0;
  auto analysis = analysis_;
  const std::string path = dir.toStdString();
  save_->setEnabled(false);
  showStatus("Writing the report to " + dir + " ...", false);
  QPointer<AnalyzePanel> self(this);
  report_job_ = host_->submit("analyze-report", [self, analysis, path, dir](const JobControl&) {
    const std::vector<std::string> written = write_mx_analysis_report(*analysis, path);
    QStringList files;
    for (const auto& f : written) files << QString::fromStdString(f);
    EngineHost::post(self, [self, files, dir] {
      self->report_job_ = 0;
      self->save_->setEnabled(self->analysis_ != nullptr);
      self->showStatus(
          QString("Report written: %1 files in %2 (report.md, report.json, PNG plots).").arg(files.size()).arg(dir),
          false);
      Q_EMIT self->reportSaved(files);
    });
  });
  return report_job_;
}

void AnalyzePanel::modelChanged() {
  if (job_ != 0) host_->cancel(std::exchange(job_, 0));  // forgotten: its end must not touch the new state
  ended({});
  analysis_.reset();
  save_->setEnabled(false);
  {
    const QSignalBlocker keep(result_);
    result_->clear();
  }
  table_block_->clear();
  updateResult();
  const qint64 layers = session_->summary().layers;
  const int keep = layer_->currentIndex();
  layer_->clear();
  layer_->addItem("all layers");
  for (qint64 l = 0; l < layers; ++l) layer_->addItem(QString("layer %1").arg(l));
  layer_->setCurrentIndex(keep > 0 && keep < layer_->count() ? keep : 0);
  error_plot_->clear("No analysis yet for this model: choose the settings and press Run analysis.");
  block_plot_->clear("Each block's share of the error appears here after a run.");
  showStatus("No analysis yet for this model: choose the settings and press Run analysis.", false);
  cli_->setText(cliCommand());
}

}  // namespace latmix::studio
