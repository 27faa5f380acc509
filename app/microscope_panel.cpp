#include "microscope_panel.h"

#include <QComboBox>
#include <QFileInfo>
#include <QFormLayout>
#include <QHBoxLayout>
#include <QLabel>
#include <QPointer>
#include <QSpinBox>
#include <QVBoxLayout>

#include <c10/core/InferenceMode.h>

#include <cmath>

#include "block_microscope_view.h"
#include "engine_host.h"
#include "imgui_host.h"
#include "latmix/calib_transforms.h"
#include "latmix/error.h"
#include "latmix/files.h"
#include "latmix/model.h"
#include "latmix/mx_block.h"
#include "latmix/tokenizer.h"
#include "main_window.h"
#include "model_session.h"

namespace latmix::studio {

using latmix::widgets::FormatComparisonRow;
using latmix::widgets::MicroscopeData;

std::vector<int64_t> calibration_sample_ids(const Tokenizer& tokenizer, int count) {
  const std::string text =
      read_text_file((resources_dir() + "/calibration/pride_and_prejudice_ch1-6.txt").toStdString());
  std::vector<int32_t> ids = tokenizer.encode_with_bos(text.substr(0, 8000));
  if (ids.size() > static_cast<size_t>(count)) ids.resize(static_cast<size_t>(count));
  return {ids.begin(), ids.end()};
}

namespace {

const char* kComparisonFormats[] = {"mxfp4", "mxfp6_e2m3", "mxfp6_e3m2", "mxfp8_e4m3", "mxfp8_e5m2", "mxint8", "mxint4"};

QString scale_label(const MxBlockView& b) {
  const double e = std::log2(b.scale);
  if (b.scale > 0 && std::abs(e - std::round(e)) < 1e-12) return QString("2^%1").arg(static_cast<int>(std::round(e)));
  return QString::number(b.scale, 'g', 4);
}

std::vector<FormatComparisonRow> compare_formats(const at::Tensor& block) {
  std::vector<FormatComparisonRow> rows;
  for (const char* name : kComparisonFormats) {
    MxBlockView v = inspect_mx_block(block, MxFormat::parse(name));
    rows.push_back({QString::fromStdString(v.format), scale_label(v), v.sqnr_db, v.mse, v.clipped});
  }
  // NVFP4 uses blocks of 16: the 32 values are two NVFP4 blocks.
  const MxFormat nv = MxFormat::parse("nvfp4");
  MxErrorStats s = mx_error_stats(block, nv, 0);
  rows.push_back({"nvfp4 (2 x 16)", "E4M3 per 16", s.sqnr_db, s.mse, static_cast<int>(s.clipped)});
  return rows;
}

}  // namespace

MicroscopePanel::MicroscopePanel(EngineHost* host, ModelSession* session, QWidget* parent)
    : QWidget(parent), host_(host), session_(session), view_(std::make_unique<latmix::widgets::BlockMicroscopeView>()) {
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
  for (const char* f : kComparisonFormats) format_->addItem(f);
  format_->addItem("nvfp4");  // blocks of 16 values with an E4M3 scale
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
  sample_ids_.reset();
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
    sample_ids_.reset();
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
  sample_ids_.reset();
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
  if (!model || !tokenizer) return;
  const std::string point = point_->currentText().toStdString();
  const int layer = layer_->value(), token = token_->value(), block = block_->value();
  const std::string format = format_->currentText().toStdString();
  const std::string transform = transform_->currentText().toStdString();
  const std::string plan_prefix = transform_->currentData().toString().toStdString();  // learned / loaded plans
  auto ids_cache = sample_ids_;
  auto source = source_;
  QPointer<MicroscopePanel> self(this);  // the job may outlive the panel (a window closed meanwhile)
  host_->submit("microscope", [self, model, tokenizer, point, layer, token, block, format, transform, plan_prefix,
                               ids_cache, source](const JobControl& job) {
    auto ids = ids_cache;
    if (!ids && source) {  // the explorer's calibration sequence (the same windows as its statistics)
      const CalibrationSet set = load_calibration_text(source->text, *tokenizer, source->options);
      if (source->sequence < 0 || source->sequence >= set.size())
        fail(source->text, "calibration sequence", "0 to " + std::to_string(set.size() - 1),
             std::to_string(source->sequence));
      const auto& seq = set.sequences[static_cast<size_t>(source->sequence)];
      ids = std::make_shared<std::vector<int64_t>>(seq.begin(), seq.end());
    }
    if (!ids) ids = std::make_shared<std::vector<int64_t>>(calibration_sample_ids(*tokenizer, 128));
    const CapturePoint cp = parse_capture_point(point);
    const int64_t lay = cp == CapturePoint::FinalNormOut ? model->config().num_layers : layer;
    at::Tensor act = capture_activation(*model, at::tensor(*ids, at::kLong), cp, lay, job);
    const int64_t t = std::min<int64_t>(token, act.size(0) - 1);
    const MxFormat fmt = MxFormat::parse(format);
    const int64_t size = fmt.block;  // 32, or 16 for NVFP4
    const int64_t nblocks = (act.size(1) + size - 1) / size;
    const int64_t b = std::min<int64_t>(block, nblocks - 1);
    at::Tensor values = act[t].narrow(0, b * size, std::min<int64_t>(size, act.size(1) - b * size)).contiguous();
    MicroscopeData data;
    data.block = inspect_mx_block(values, fmt);
    data.comparison = compare_formats(values);
    data.transform = QString::fromStdString(transform);
    if (transform != "none") {
      const ActivationTransform apply = plan_prefix.empty()
                                            ? make_builtin_activation_transform(transform, *model, fmt, 0)
                                            : make_plan_activation_transform(plan_prefix, *model);
      at::Tensor rotated = apply(cp, lay, act[t]);
      at::Tensor after = rotated.narrow(0, b * size, values.numel()).contiguous();
      data.has_after = true;
      data.after = inspect_mx_block(after, fmt);
      data.comparison_after = compare_formats(after);
    }
    const std::string tok = tokenizer->decode({static_cast<int32_t>((*ids)[static_cast<size_t>(t)])});
    data.where = QString("%1, layer %2, token %3 ('%4'), block %5 of %6 (channels %7-%8)")
                     .arg(QString::fromStdString(point)).arg(lay).arg(t).arg(QString::fromStdString(tok).toHtmlEscaped())
                     .arg(b).arg(nblocks).arg(b * size).arg(b * size + values.numel() - 1);
    data.where += source ? QString(", calibration sequence %1 of %2")
                               .arg(source->sequence)
                               .arg(QFileInfo(QString::fromStdString(source->text)).fileName().toHtmlEscaped())
                         : QString(", bundled sample");
    const int shown_token = static_cast<int>(t), shown_block = static_cast<int>(b);
    EngineHost::post(self, [self, data, ids, shown_token, shown_block, model, source] {
      if (model != self->session_->model()) return;  // a block of the model that was open before
      if (source != self->source_) return;            // tokens of another text (a newer selection)
      self->sample_ids_ = ids;
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
