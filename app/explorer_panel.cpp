#include "explorer_panel.h"

#include <QComboBox>
#include <QFileDialog>
#include <QGridLayout>
#include <QHBoxLayout>
#include <QHeaderView>
#include <QImage>
#include <QLabel>
#include <QLineEdit>
#include <QPointer>
#include <QPushButton>
#include <QSpinBox>
#include <QSplitter>
#include <QTableWidget>
#include <QVBoxLayout>

#include <cmath>
#include <iterator>
#include <limits>

#include "engine_host.h"
#include "engine_link.h"
#include "latmix/serve/client.h"
#include "heatmap_view.h"
#include "imgui_host.h"
#include "latmix/calib.h"
#include "latmix/calib_collector.h"
#include "latmix/calib_data.h"
#include "latmix/calib_transforms.h"
#include "latmix/model.h"
#include "latmix/tokenizer.h"
#include "main_window.h"
#include "model_session.h"
#include "settings_dialog.h"
#include "studio_context.h"

namespace latmix::studio {

namespace {

// Plain names in the combo boxes, the identifiers (latmix stats, stats.json) as their data and tooltips.
struct Named {
  const char* id;
  const char* label;
  const char* tip;
};
const Named kMetrics[] = {
    {"energy_share", "energy share", "energy_share: the block's share of the layer's total squared activation"},
    {"block_max", "block max |x|", "block_max: the largest magnitude in the block (what sets its shared scale)"},
    {"max_over_rms", "max / RMS", "max_over_rms: the block's largest magnitude over its RMS (outlier ratio)"},
    {"mean_crest", "crest factor", "mean_crest: max / RMS per token, averaged over the tokens"},
    {"quant_mse", "quantization error (MSE)", "quant_mse: mean squared error of the block under the MX format"},
    {"sqnr_db", "SQNR (dB)", "sqnr_db: signal-to-quantization-noise ratio of the block, in dB (higher is better)"},
    {"clip_rate", "clipped values", "clip_rate: share of the block's values beyond the format's largest code"}};
const Named kPointNames[] = {
    {"residual", "residual stream", "residual: the hidden state between decoder layers"},
    {"attn_in", "attention input", "attn_in: the normalized input of q/k/v_proj"},
    {"o_in", "o_proj input", "o_in: the attention output, input of o_proj"},
    {"mlp_in", "MLP input", "mlp_in: the normalized input of gate/up_proj"},
    {"down_in", "down_proj input", "down_in: the MLP's intermediate activation, input of down_proj"}};

QComboBox* named_combo(QWidget* parent, const Named* items, size_t n) {
  auto* c = new QComboBox(parent);
  for (size_t i = 0; i < n; ++i) {
    c->addItem(items[i].label, QString(items[i].id));
    c->setItemData(c->count() - 1, QString(items[i].tip), Qt::ToolTipRole);
  }
  return c;
}

QComboBox* combo(QWidget* parent, const QStringList& items) {
  auto* c = new QComboBox(parent);
  c->addItems(items);
  return c;
}

}  // namespace

ExplorerPanel::ExplorerPanel(StudioContext* context, QWidget* parent)
    : QWidget(parent),
      context_(context),
      host_(context->host()),
      session_(context->session()),
      heatmap_(std::make_unique<latmix::widgets::HeatmapView>()) {
  buildControls();
  auto enable = [this](quint64, const QString& tag) {
    if (tag == "calibrate") run_->setEnabled(true);
  };
  connect(host_, &EngineHost::jobFinished, this, enable);
  connect(host_, &EngineHost::jobCancelled, this, enable);
  // A failed calibration says why in this panel (not only in the log) and leaves no stale heatmap
  // that looks like its result (issue 17, Major 4).
  connect(host_, &EngineHost::jobFailed, this, [this](quint64, const QString& tag, const QString& message) {
    if (tag != "calibrate") return;
    run_->setEnabled(true);
    stats_.reset();
    outliers_->setRowCount(0);
    heatmap_->setData({});
    if (canvas_ != nullptr) canvas_->update();
    summary_->setText("<span style='color:#c0392b'>Calibration failed: " + message.toHtmlEscaped() + "</span>");
    Q_EMIT calibrationFailed(message);
  });
  // What the others may use: the settings, as they change; the plans learned or loaded elsewhere.
  auto publish = [this] { context_->setStatisticsRequest(statsRequest()); };
  connect(data_, &QLineEdit::textChanged, this, publish);
  for (QSpinBox* s : {samples_, seqlen_}) connect(s, &QSpinBox::valueChanged, this, publish);
  for (QComboBox* c : {format_, transform_}) connect(c, &QComboBox::currentIndexChanged, this, publish);
  for (const StudioPlan& p : context_->plans()) showPlanChoice(p.label, p.prefix);
  publish();
  connect(context_, &StudioContext::planAdded, this, &ExplorerPanel::showPlanChoice);
  connect(context_, &StudioContext::plansCleared, this, &ExplorerPanel::removePlanChoices);
  connect(context_, &StudioContext::calibrationRequested, this, &ExplorerPanel::calibrate);
  connect(context_, &StudioContext::statisticsComputed, this, &ExplorerPanel::showStats);
}

void ExplorerPanel::setTransform(const QString& name) {
  const int i = transform_->findText(name);
  if (i >= 0) transform_->setCurrentIndex(i);
}

QString ExplorerPanel::summaryText() const { return summary_->text(); }

void ExplorerPanel::clickCell(int layer, int block) {
  if (!stats_) return;
  // The format and transform of the statistics shown (not of the controls, which may have changed).
  BlockTarget target;
  target.point = point_->currentData().toString();
  target.layer = layer;
  target.block = block;
  target.format = QString::fromStdString(stats_->format);
  target.transform = QString::fromStdString(stats_->transform);
  target.plan_prefix = shownPlanPrefix();
  context_->openBlock(target);
}

QString ExplorerPanel::shownPlanPrefix() const {
  const QString transform = QString::fromStdString(stats_->transform);
  QString prefix;
  for (int i = 0; i < transform_->count(); ++i) {
    if (transform_->itemText(i) == transform) prefix = transform_->itemData(i).toString();
  }
  return prefix;
}

bool ExplorerPanel::saveHeatmapImage(const QString& path) const {
  const QImage image = heatmap_->image();
  return !image.isNull() && image.save(path, "PNG");
}

bool ExplorerPanel::openOutlier(int row) {
  if (!session_->model() && !session_->remote()) return false;
  if (!stats_ || outlier_layer_ < 0 || row < 0 || row >= outliers_->rowCount()) return false;
  const LayerStats* ls = stats_->find(parse_capture_point(outlier_point_.toStdString()), outlier_layer_);
  if (ls == nullptr || row >= static_cast<int>(ls->original.outliers.size())) return false;
  const OutlierChannel& o = ls->original.outliers[static_cast<size_t>(row)];
  if (o.tokens.empty()) return false;
  const OutlierToken& t = o.tokens.front();  // the largest |value|
  BlockTarget target;
  target.point = outlier_point_;
  target.layer = outlier_layer_;
  target.block = static_cast<int>(o.block);
  target.format = QString::fromStdString(stats_->format);
  target.transform = QString::fromStdString(stats_->transform);
  target.plan_prefix = shownPlanPrefix();
  target.text = QString::fromStdString(stats_request_.data);
  if (session_->model()) {
    target.options = api::statistics_data_options(stats_request_, *session_->model(), *session_->tokenizer());
  } else {  // on an engine: the same windows, chosen there (the BOS id too: the microscope sends bos)
    target.options.samples = stats_request_.samples;
    target.options.seqlen = stats_request_.seqlen;
    target.options.sampling = parse_window_sampling(stats_request_.sampling);
    target.options.seed = stats_request_.seed;
    if (stats_request_.bos) target.options.bos_id = 0;  // a stand-in: only whether there is one is sent
  }
  target.sequence = static_cast<int>(t.sequence);
  target.position = static_cast<int>(t.position);
  context_->openBlock(target);
  return true;
}

ExplorerPanel::~ExplorerPanel() = default;

void ExplorerPanel::buildControls() {
  auto* layout = new QVBoxLayout(this);
  auto* calib = new QHBoxLayout();
  data_ = new QLineEdit(bundled_sample(), this);
  data_->setToolTip("Calibration text: the bundled sample, WikiText-2, or any text file");
  auto* browse = new QPushButton("...", this);
  connect(browse, &QPushButton::clicked, this, [this] {
    const QString f =
        QFileDialog::getOpenFileName(this, "Calibration text", last_folder("text"), "Text (*.txt *.raw);;All files (*)");
    if (f.isEmpty()) return;
    remember_folder("text", f);
    data_->setText(f);
  });
  samples_ = new QSpinBox(this);
  samples_->setRange(1, 4096);
  samples_->setValue(16);
  seqlen_ = new QSpinBox(this);
  seqlen_->setRange(8, 8192);
  seqlen_->setValue(256);
  QStringList formats;
  for (const auto& f : mx_format_names()) formats << QString::fromStdString(f);
  format_ = combo(this, formats);
  QStringList transforms;
  for (const auto& t : builtin_transform_names()) transforms << QString::fromStdString(t);
  transform_ = combo(this, transforms);
  transform_->setCurrentText("hadamard");
  // The options of `latmix stats` they set: tests find the controls by these names.
  const std::pair<QWidget*, const char*> options[] = {
      {data_, "data"}, {samples_, "samples"}, {seqlen_, "seqlen"}, {format_, "format"}, {transform_, "transform"}};
  for (const auto& [w, name] : options) w->setObjectName(name);
  run_ = new QPushButton("Calibrate", this);
  run_->setShortcut(QKeySequence("Ctrl+R"));
  connect(run_, &QPushButton::clicked, this, &ExplorerPanel::calibrate);
  const std::pair<const char*, QWidget*> items[] = {{"text", data_},        {"", browse},
                                                    {"samples", samples_},  {"seqlen", seqlen_},
                                                    {"format", format_},    {"transform", transform_}};
  for (const auto& [label, w] : items) {
    if (*label != '\0') calib->addWidget(new QLabel(label, this));
    calib->addWidget(w, w == data_ ? 1 : 0);
  }
  calib->addWidget(run_);
  layout->addLayout(calib);

  auto* view = new QHBoxLayout();
  point_ = named_combo(this, kPointNames, std::size(kPointNames));
  metric_ = named_combo(this, kMetrics, std::size(kMetrics));
  point_->setToolTip("Where in each layer the activations were captured");
  metric_->setToolTip("What each cell shows (hover an entry for its definition)");
  view_ = combo(this, {"before", "after", "difference"});
  view_->setToolTip("before: the activation as it is; after: T(x) for the chosen transform; difference: after - before");
  for (auto [label, w] : std::initializer_list<std::pair<const char*, QComboBox*>>{
           {"capture point", point_}, {"metric", metric_}, {"view", view_}}) {
    view->addWidget(new QLabel(label, this));
    view->addWidget(w);
    connect(w, &QComboBox::currentIndexChanged, this, &ExplorerPanel::updateHeatmap);
  }
  save_image_ = new QPushButton("Save image...", this);
  save_image_->setToolTip("Writes the heatmap as shown (same colours, labels and colour bar) to a PNG file");
  save_image_->setEnabled(false);
  connect(save_image_, &QPushButton::clicked, this, [this] {
    const QString path = QFileDialog::getSaveFileName(this, "Save the heatmap", last_folder("image") + "/heatmap.png",
                                                      "PNG image (*.png)");
    if (path.isEmpty()) return;
    remember_folder("image", path);
    if (!saveHeatmapImage(path)) summary_->setText("<span style='color:#c0392b'>Could not write " + path.toHtmlEscaped() + "</span>");
  });
  view->addWidget(save_image_);
  view->addStretch(1);
  layout->addLayout(view);
  summary_ = new QLabel("Choose a calibration text and press Calibrate (Ctrl+R).", this);
  summary_->setWordWrap(true);
  layout->addWidget(summary_);

  auto* split = new QSplitter(Qt::Vertical, this);
  if (latmix::widgets::ImGuiHost::openGLAvailable()) {
    canvas_ = new latmix::widgets::ImGuiHost(split);
    canvas_->setDrawFunction([this] {
      if (!stats_) return;
      auto clicked = heatmap_->draw();
      if (auto hov = heatmap_->hovered(); hov && hov->first != outlier_layer_) {
        const int row = hov->first;
        QMetaObject::invokeMethod(this, [this, row] { updateOutliers(row); }, Qt::QueuedConnection);
      }
      if (clicked) {
        const auto cell = *clicked;
        QMetaObject::invokeMethod(this, [this, cell] { clickCell(cell.first, cell.second); }, Qt::QueuedConnection);
      }
    });
    split->addWidget(canvas_);
  } else {
    split->addWidget(new QLabel("OpenGL 3 is not available: the heatmap cannot be drawn here.", split));
  }
  auto* outlier_box = new QWidget(split);
  auto* outlier_layout = new QVBoxLayout(outlier_box);
  outlier_layout->setContentsMargins(0, 0, 0, 0);
  outlier_caption_ = new QLabel("Outlier channels: hover a heatmap row to list its layer's.", outlier_box);
  outlier_layout->addWidget(outlier_caption_);
  outliers_ = new QTableWidget(0, 6, outlier_box);
  outlier_layout->addWidget(outliers_, 1);
  outliers_->setHorizontalHeaderLabels({"channel", "block", "RMS / median", "max |x|", "energy share",
                                        "tokens that produce it (value)"});
  outliers_->horizontalHeader()->setStretchLastSection(true);
  outliers_->setEditTriggers(QAbstractItemView::NoEditTriggers);
  outliers_->setSelectionBehavior(QAbstractItemView::SelectRows);
  connect(outliers_, &QTableWidget::cellActivated, this, [this](int row, int) { openOutlier(row); });
  split->addWidget(outlier_box);
  split->setStretchFactor(0, 3);
  split->setStretchFactor(1, 1);
  layout->addWidget(split, 1);
}

void ExplorerPanel::setSequences(int samples, int seqlen) {
  samples_->setValue(samples);
  seqlen_->setValue(seqlen);
}

api::StatisticsRequest ExplorerPanel::statsRequest() const {
  api::StatisticsRequest r;
  r.model = session_->summary().path.toStdString();
  r.device = StudioSettings::load().device.toStdString();
  r.data = data_->text().toStdString();
  r.samples = samples_->value();
  r.seqlen = seqlen_->value();
  r.format = format_->currentText().toStdString();
  QStringList points;
  for (const Named& p : kPointNames) points << p.id;
  r.point = points.join(',').toStdString();
  const QString prefix = transform_->currentData().toString();  // set for learned / loaded plans
  if (prefix.isEmpty()) {
    r.transform = transform_->currentText().toStdString();
  } else {
    r.transforms = prefix.toStdString();
    r.transform_name = transform_->currentText().toStdString();
  }
  return r;
}

void ExplorerPanel::addPlanChoice(const QString& label, const QString& prefix) {
  context_->addPlan(label, prefix);
}

void ExplorerPanel::showPlanChoice(const QString& label, const QString& prefix) {
  int i = transform_->findText(label);
  if (i < 0) {
    transform_->addItem(label, prefix);
    i = transform_->count() - 1;
  }
  transform_->setItemData(i, prefix);
  transform_->setItemData(i, prefix + ".json", Qt::ToolTipRole);
  transform_->setCurrentIndex(i);
  context_->setStatisticsRequest(statsRequest());  // a new prefix under the label already selected
}

void ExplorerPanel::removePlanChoices() {
  for (int i = transform_->count() - 1; i >= 0; --i) {
    if (!transform_->itemData(i).toString().isEmpty()) transform_->removeItem(i);
  }
}

quint64 ExplorerPanel::calibrate() {
  if (auto engine = session_->remote()) return calibrateOnEngine(engine);
  auto model = session_->model();
  auto tokenizer = session_->tokenizer();
  if (!model || !tokenizer) return 0;
  const api::StatisticsRequest request = statsRequest();
  run_->setEnabled(false);
  QPointer<ExplorerPanel> self(this);  // the job may outlive the panel (a window closed meanwhile)
  return host_->submit("calibrate", [self, model, tokenizer, request](const JobControl& job) {
    auto stats = std::make_shared<ActivationStats>(api::run_statistics(request, *model, *tokenizer, job).stats);
    EngineHost::post(self, [self, stats, model, request] { self->showStats(stats, model, request); });
  });
}

quint64 ExplorerPanel::calibrateOnEngine(const std::shared_ptr<const serve::RemoteEngine>& engine) {
  api::StatisticsRequest request = statsRequest();
  request.data = context_->engineLink()->engineText(request.data);  // a path on the server
  run_->setEnabled(false);
  QPointer<ExplorerPanel> self(this);
  EngineRunHooks hooks;
  hooks.gate = context_->engineLink()->lossGate();
  return host_->submit("calibrate", [self, engine, request, hooks](const JobControl& job) {
    const nlohmann::json result = run_on_engine(*engine, "statistics", api::to_json(request), job, hooks);
    api::StatisticsResult read = api::statistics_result_from_json(result);
    auto stats = std::make_shared<ActivationStats>(std::move(read.stats));
    EngineHost::post(self, [self, stats, request, texts = std::move(read.token_texts)] {
      self->present(stats, nullptr, request, texts);
    });
  });
}

int ExplorerPanel::outlierRows() const { return outliers_->rowCount(); }

void ExplorerPanel::modelChanged() {
  removePlanChoices();
  stats_.reset();
  token_texts_.clear();
  outlier_layer_ = -1;
  outlier_point_.clear();
  outliers_->setRowCount(0);
  outliers_->setToolTip(QString());
  outlier_caption_->setText("Outlier channels: calibrate, then hover a heatmap row.");
  heatmap_->setData({});
  save_image_->setEnabled(false);
  if (canvas_ != nullptr) canvas_->update();
  summary_->setText("No statistics yet for this model: choose a text and press Calibrate.");
}

void ExplorerPanel::showStats(std::shared_ptr<ActivationStats> stats, const std::shared_ptr<Model>& source,
                              const api::StatisticsRequest& request) {
  present(std::move(stats), source, request, {});
}

void ExplorerPanel::present(std::shared_ptr<ActivationStats> stats, const std::shared_ptr<Model>& source,
                            const api::StatisticsRequest& request, std::map<int32_t, std::string> token_texts) {
  run_->setEnabled(true);
  if (!stats || source != session_->model()) return;  // computed for a model that is no longer open
  // On the engine (no Model here): computed for the model open now, on the engine open now.
  if (source == nullptr && (!session_->remote() || QString::fromStdString(request.model) != session_->summary().path))
    return;
  stats_ = std::move(stats);
  stats_request_ = request;
  token_texts_ = std::move(token_texts);
  summary_->setText(QString("%1 sequences x %2 tokens (%3 tokens), %4, transform %5. Hover a cell for numbers and "
                            "its layer's outlier channels; click it to open the block in the microscope.")
                        .arg(stats_->sequences).arg(stats_->seqlen).arg(stats_->tokens)
                        .arg(QString::fromStdString(stats_->format_description))
                        .arg(QString::fromStdString(stats_->transform)));
  outlier_layer_ = -1;
  updateHeatmap();
  updateOutliers(1 < static_cast<int>(session_->summary().layers) ? 1 : 0);
  Q_EMIT calibrated();
}

void ExplorerPanel::setView(const QString& point, const QString& metric, const QString& view) {
  point_->setCurrentIndex(std::max(0, point_->findData(point)));
  metric_->setCurrentIndex(std::max(0, metric_->findData(metric)));
  view_->setCurrentText(view);
  updateHeatmap();
}

QString ExplorerPanel::outlierCaption() const { return outlier_caption_->text(); }

const latmix::widgets::HeatmapData& ExplorerPanel::heatmapData() const { return heatmap_->data(); }

void ExplorerPanel::updateHeatmap() {
  if (!stats_) return;
  const QString point_id = point_->currentData().toString();
  const CapturePoint point = parse_capture_point(point_id.toStdString());
  const HeatmapMetric metric = parse_heatmap_metric(metric_->currentData().toString().toStdString());
  const bool has_after = stats_->transform != "none";
  const QString view = has_after ? view_->currentText() : "before";
  Heatmap before = heatmap(*stats_, metric, point, StatsView::Original);
  latmix::widgets::HeatmapData data;
  data.values = before.values;
  if (has_after) {
    Heatmap after = heatmap(*stats_, metric, point, StatsView::Transformed);
    if (view == "difference") {
      data.values = after.values;
      for (size_t i = 0; i < data.values.size(); ++i) data.values[i] -= before.values[i];
      data.diverging = true;  // white where the transform changed nothing
    } else {
      // Before and after on one colour scale, so that the same colour means the same value.
      float lo = std::numeric_limits<float>::infinity(), hi = -lo;
      for (const auto* values : {&before.values, &after.values}) {
        for (float v : *values) {
          if (std::isfinite(v)) lo = std::min(lo, v), hi = std::max(hi, v);
        }
      }
      if (std::isfinite(lo)) {
        data.fixed_range = true;
        data.range_lo = lo;
        data.range_hi = hi;
      }
      if (view == "after") data.values = after.values;
    }
  }
  const QString view_text = view == "difference" ? "after - before (blue: lower, red: higher)"
                            : has_after           ? view + ", on the before/after colour scale"
                                                  : view;
  data.title = QString("%1 at the %2, %3 (transform %4)")
                   .arg(metric_->currentText(), point_->currentText(), view_text,
                        QString::fromStdString(stats_->transform));
  data.value_label = metric_->currentText();
  for (int64_t l : before.layers) data.row_labels << QString("layer %1").arg(l);
  for (int64_t c = 0; c < before.cols; ++c) data.col_labels << QString("b%1").arg(c);
  heatmap_->setData(std::move(data));
  save_image_->setEnabled(true);
  if (canvas_ != nullptr) canvas_->update();
  // The outlier table shows this capture point's data, never another's (issue 17, Major 10).
  if (outlier_layer_ >= 0 && point_id != outlier_point_) updateOutliers(outlier_layer_);
}

void ExplorerPanel::updateOutliers(int layer) {
  if (!stats_) return;
  outlier_layer_ = layer;
  outlier_point_ = point_->currentData().toString();
  const CapturePoint point = parse_capture_point(outlier_point_.toStdString());
  const LayerStats* ls = stats_->find(point, layer);
  outliers_->setRowCount(0);
  if (ls == nullptr) {
    outlier_caption_->setText(QString("Layer %1, %2: no statistics at this point.").arg(layer).arg(point_->currentText()));
    return;
  }
  outlier_caption_->setText(QString("<b>Outlier channels of layer %1 at the %2</b> (%3), before the transform: "
                                    "the channels with the largest RMS and the tokens that produce them")
                                .arg(layer)
                                .arg(point_->currentText(), outlier_point_));
  auto tokenizer = session_->tokenizer();
  const auto& outliers = ls->original.outliers;
  outliers_->setRowCount(static_cast<int>(outliers.size()));
  for (int r = 0; r < static_cast<int>(outliers.size()); ++r) {
    const OutlierChannel& o = outliers[static_cast<size_t>(r)];
    QStringList toks;
    for (const auto& t : o.tokens) {
      // On the engine the tokenizer is the server's: its text of the token, sent with the
      // statistics (the id, when it did not send one).
      QString text = tokenizer ? QString("?") : QString("#%1").arg(t.token_id);
      if (!tokenizer) {
        const auto found = token_texts_.find(t.token_id);
        if (found != token_texts_.end()) text = QString::fromStdString(found->second);
      }
      if (tokenizer && t.token_id >= 0 && t.token_id < tokenizer->vocab_size()) {
        try {
          text = QString::fromStdString(tokenizer->decode({t.token_id}));
        } catch (const std::exception&) {  // an id the tokenizer cannot decode: show it as "?"
        }
      }
      QString shown = text;
      shown.replace("\r", "\\r").replace("\n", "\\n").replace("\t", "\\t");
      toks << QString("'%1' (%2)").arg(shown).arg(static_cast<double>(t.value), 0, 'g', 3);
    }
    const QStringList cells = {QString::number(o.channel), QString::number(o.block),
                               QString::number(static_cast<double>(o.rms_ratio), 'f', 1) + "x",
                               QString::number(static_cast<double>(o.max_abs), 'g', 4),
                               QString::number(100.0 * static_cast<double>(o.energy_share), 'f', 1) + "%",
                               toks.join(", ")};
    for (int c = 0; c < cells.size(); ++c) outliers_->setItem(r, c, new QTableWidgetItem(cells[c]));
  }
  outliers_->setToolTip(QString("layer %1, %2: the channels with the largest RMS; double-click a row to open its "
                                "largest token in the Block Microscope")
                            .arg(layer)
                            .arg(outlier_point_));
}

}  // namespace latmix::studio
