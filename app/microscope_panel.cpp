#include "microscope_panel.h"

#include <QComboBox>
#include <QFileInfo>
#include <QFormLayout>
#include <QHBoxLayout>
#include <QLabel>
#include <QPointer>
#include <QSpinBox>
#include <QVBoxLayout>

#include "block_microscope_view.h"
#include "engine_host.h"
#include "engine_link.h"
#include "latmix/serve/client.h"
#include "imgui_host.h"
#include "latmix/api/block.h"
#include "latmix/calib_transforms.h"
#include "latmix/model.h"
#include "latmix/tokenizer.h"
#include "main_window.h"
#include "model_session.h"
#include "studio_context.h"

namespace latmix::studio {

using latmix::widgets::FormatComparisonRow;
using latmix::widgets::MicroscopeData;

namespace {


std::vector<FormatComparisonRow> comparison_rows(const std::vector<api::FormatComparison>& rows) {
  std::vector<FormatComparisonRow> out;
  for (const auto& r : rows) {
    out.push_back({QString::fromStdString(r.format), QString::fromStdString(r.scale), r.sqnr_db, r.mse,
                   static_cast<int>(r.clipped)});
  }
  return out;
}

// The engine's explanation as the view draws it, with the line saying where the block is.
MicroscopeData microscope_data(const api::BlockExplanation& e, const QString& transform_label) {
  MicroscopeData data;
  data.block = e.before;
  data.comparison = comparison_rows(e.comparison);
  data.transform = transform_label;
  if (e.after) {
    data.has_after = true;
    data.after = *e.after;
    data.comparison_after = comparison_rows(e.comparison_after);
  }
  data.where = QString("%1, layer %2, token %3 ('%4'), block %5 of %6 (channels %7-%8)")
                   .arg(QString::fromStdString(e.point)).arg(e.layer).arg(e.token)
                   .arg(QString::fromStdString(e.token_text).toHtmlEscaped())
                   .arg(e.block).arg(e.blocks).arg(e.first_channel).arg(e.last_channel);
  data.where += !e.text.empty() ? QString(", calibration sequence %1 of %2")
                                      .arg(e.sequence)
                                      .arg(QFileInfo(QString::fromStdString(e.text)).fileName().toHtmlEscaped())
                                : QString(", bundled sample");
  return data;
}

}  // namespace

MicroscopePanel::MicroscopePanel(StudioContext* context, QWidget* parent)
    : QWidget(parent),
      host_(context->host()),
      session_(context->session()),
      context_(context),
      view_(std::make_unique<latmix::widgets::BlockMicroscopeView>()) {
  auto* layout = new QVBoxLayout(this);
  auto* controls = new QHBoxLayout();
  point_ = new QComboBox(this);
  for (const char* p : {"residual", "attn_in", "o_in", "residual_mid", "mlp_in", "down_in", "lm_head_in"}) {
    point_->addItem(p);
  }
  layer_ = new QSpinBox(this);
  token_ = new QSpinBox(this);
  block_ = new QSpinBox(this);
  format_ = new QComboBox(this);
  for (const auto& f : api::explain_block_formats()) format_->addItem(QString::fromStdString(f));  // nvfp4 last
  transform_ = new QComboBox(this);
  for (const auto& t : builtin_transform_names()) transform_->addItem(QString::fromStdString(t));
  transform_->setCurrentText("hadamard");
  transform_->setToolTip("Show the same block of T(x) beside x: what the quantizer sees after the transform");
  const std::pair<const char*, QWidget*> items[] = {{"capture point", point_}, {"layer", layer_},
                                                    {"token", token_},         {"block", block_},
                                                    {"format", format_},       {"transform", transform_}};
  for (const auto& [label, w] : items) {
    controls->addWidget(new QLabel(label, this));
    controls->addWidget(w);
  }
  controls->addStretch(1);
  layout->addLayout(controls);
  status_ = new QLabel(this);
  layout->addWidget(status_);
  if (latmix::widgets::ImGuiHost::openGLAvailable()) {
    host_view_ = new latmix::widgets::ImGuiHost(this);
    host_view_->setDrawFunction([this] { view_->draw(); });
    layout->addWidget(host_view_, 1);
  } else {
    layout->addWidget(new QLabel("OpenGL 3 is not available: the microscope cannot be drawn here.", this), 1);
  }
  for (QComboBox* c : {point_, format_, transform_}) connect(c, &QComboBox::currentIndexChanged, this, &MicroscopePanel::refresh);
  for (QSpinBox* s : {layer_, token_, block_}) connect(s, &QSpinBox::valueChanged, this, &MicroscopePanel::refresh);
  // A block that cannot be read says why here, and nothing stale stays on screen.
  connect(host_, &EngineHost::jobFailed, this, [this](quint64, const QString& tag, const QString& message) {
    if (tag != "microscope") return;
    view_->clear();
    if (host_view_ != nullptr) host_view_->update();
    status_->setText("<span style='color:#c0392b'>Could not read the block: " + message.toHtmlEscaped() + "</span>");
  });
  connect(host_, &EngineHost::jobCancelled, this, [this](quint64, const QString& tag) {
    if (tag != "microscope" || view_->hasData()) return;
    status_->setText("Reading the block was cancelled: choose a layer, token or block to read one.");
  });
  connect(context, &StudioContext::blockOpened, this, [this](const BlockTarget& t) {
    if (t.sequence < 0) {
      select(t.point, t.layer, t.block, t.format, t.transform, t.plan_prefix);
    } else {
      selectToken(t.point, t.layer, t.block, t.format, t.transform, t.plan_prefix, t.text, t.options, t.sequence,
                  t.position);
    }
  });
}

MicroscopePanel::~MicroscopePanel() = default;

bool MicroscopePanel::hasBlock() const { return view_->hasData(); }

QString MicroscopePanel::statusText() const { return status_->text(); }

QString MicroscopePanel::formatText() const { return format_->currentText(); }

QString MicroscopePanel::transformText() const { return transform_->currentText(); }

int MicroscopePanel::tokenIndex() const { return token_->value(); }

int MicroscopePanel::blockIndex() const { return block_->value(); }

void MicroscopePanel::modelChanged() {
  const auto& s = session_->summary();
  ids_.clear();
  source_.reset();  // the bundled sample again: the explorer's sequences were the old model's tokens
  view_->clear();
  for (int i = transform_->count() - 1; i >= 0; --i) {  // plans of the model closed do not fit this one
    if (!transform_->itemData(i).toString().isEmpty()) transform_->removeItem(i);
  }
  status_->setText("Reading a block of " + QFileInfo(s.path).fileName().toHtmlEscaped() + " ...");
  if (host_view_ != nullptr) host_view_->update();
  const QSignalBlocker b1(layer_), b2(block_), b3(token_);
  layer_->setRange(0, static_cast<int>(s.layers) - 1);
  token_->setRange(0, 127);
  block_->setRange(0, static_cast<int>(std::max(s.hidden, s.intermediate) / 32) - 1);
  refresh();
}

void MicroscopePanel::select(const QString& point, int layer, int block, const QString& format,
                             const QString& transform, const QString& plan_prefix) {
  if (source_) {  // back to the bundled sample
    source_.reset();
    ids_.clear();
  }
  selectBlock(point, layer, block, format, transform, plan_prefix);
}

void MicroscopePanel::selectToken(const QString& point, int layer, int block, const QString& format,
                                  const QString& transform, const QString& plan_prefix, const QString& text,
                                  const CalibrationOptions& options, int sequence, int position) {
  auto source = std::make_shared<TokenSource>();
  source->text = text.toStdString();
  source->options = options;
  source->sequence = sequence;
  source_ = std::move(source);
  ids_.clear();
  {
    const QSignalBlocker keep(token_);
    token_->setRange(0, static_cast<int>(std::max<int64_t>(128, options.seqlen)) - 1);
    token_->setValue(position);
  }
  selectBlock(point, layer, block, format, transform, plan_prefix);
}

void MicroscopePanel::selectBlock(const QString& point, int layer, int block, const QString& format,
                                  const QString& transform, const QString& plan_prefix) {
  const QSignalBlocker b1(point_), b2(layer_), b3(block_), b4(format_), b5(transform_);
  point_->setCurrentText(point);
  layer_->setValue(layer);
  if (!format.isEmpty()) {
    if (format_->findText(format) < 0) format_->addItem(format);
    format_->setCurrentText(format);
  }
  if (!plan_prefix.isEmpty()) {
    addPlanChoice(transform, plan_prefix);
  } else if (!transform.isEmpty() && transform_->findText(transform) >= 0) {
    transform_->setCurrentText(transform);
  }
  block_->setValue(block);
  refresh();
}

void MicroscopePanel::addPlanChoice(const QString& label, const QString& prefix) {
  const QSignalBlocker keep(transform_);
  int i = transform_->findText(label);
  if (i < 0) {
    transform_->addItem(label, prefix);
    i = transform_->count() - 1;
  }
  transform_->setItemData(i, prefix);
  transform_->setCurrentIndex(i);
}

void MicroscopePanel::refresh() {
  auto model = session_->model();
  auto tokenizer = session_->tokenizer();
  auto engine = session_->remote();  // a model open on a `latmix serve` engine: explain_block runs there
  if ((!model || !tokenizer) && !engine) return;
  api::ExplainBlockRequest r;
  r.model = session_->summary().path.toStdString();
  r.point = point_->currentText().toStdString();
  r.layer = layer_->value();
  r.token = token_->value();
  r.block = block_->value();
  r.format = format_->currentText().toStdString();
  const QString label = transform_->currentText();
  const QString plan_prefix = transform_->currentData().toString();  // learned / loaded plans
  r.transform = (plan_prefix.isEmpty() ? label : plan_prefix).toStdString();
  auto source = source_;
  if (source) {  // the explorer's calibration sequence (the same windows as its statistics)
    r.text = source->text;
    r.sequence = source->sequence;
    r.samples = source->options.samples;
    r.seqlen = source->options.seqlen;
    r.sampling = to_string(source->options.sampling);
    r.seed = source->options.seed;
    r.bos = source->options.bos_id.has_value();
  } else if (!engine) {
    r.sample = bundled_sample().toStdString();
  }  // on an engine, no text: the server's own bundled sample
  r.ids = ids_;
  QPointer<MicroscopePanel> self(this);  // the job may outlive the panel (a window closed meanwhile)
  EngineRunHooks hooks;
  hooks.gate = context_->engineLink()->lossGate();
  host_->submit("microscope", [self, model, tokenizer, engine, r, label, source, hooks](const JobControl& job) {
    const api::BlockExplanation e =
        engine ? api::block_explanation_from_json(run_on_engine(*engine, "explain_block", api::to_json(r), job, hooks))
               : api::run_explain_block(r, *model, *tokenizer, job);
    const MicroscopeData data = microscope_data(e, label);
    const int shown_token = static_cast<int>(e.token), shown_block = static_cast<int>(e.block);
    EngineHost::post(self, [self, data, ids = e.ids, shown_token, shown_block, model, engine, source] {
      if (model != self->session_->model() || engine != self->session_->remote()) return;  // of the model open before
      if (source != self->source_) return;            // tokens of another text (a newer selection)
      self->ids_ = ids;
      // The spin boxes say what is shown: a block or token past this point's end was clamped.
      const QSignalBlocker keep_block(self->block_), keep_token(self->token_);
      self->block_->setValue(shown_block);
      self->token_->setValue(shown_token);
      self->show(data);
    });
  });
}

void MicroscopePanel::show(const MicroscopeData& data) {
  view_->setData(data);
  status_->setText(data.where);
  if (host_view_ != nullptr) host_view_->update();
  Q_EMIT refreshed();
}

}  // namespace latmix::studio
