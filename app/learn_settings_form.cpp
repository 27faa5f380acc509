// The Learn tab's settings form (LearnPanel's other half: learn_panel.cpp has the run, the chart and
// the results): every option of `latmix learn` as a control that shows the CLI's default and quotes
// its help text, read into and set from the engine's request (latmix/api/learn.h). The form holds no
// rule of its own: what a request means is api::learn_settings()'s.
#include <QComboBox>
#include <QDoubleValidator>
#include <QFileDialog>
#include <QFileInfo>
#include <QFormLayout>
#include <QGroupBox>
#include <QHBoxLayout>
#include <QIntValidator>
#include <QLabel>
#include <QLineEdit>
#include <QPushButton>
#include <QSettings>
#include <QSpinBox>
#include <QVBoxLayout>

#include "latmix/api/learn.h"
#include "latmix/error.h"
#include "latmix/quant.h"
#include "latmix/tasks.h"
#include "learn_knobs.h"
#include "learn_panel.h"
#include "main_window.h"
#include "model_session.h"
#include "settings_dialog.h"
#include "studio_context.h"

namespace latmix::studio {

namespace {

bool has_gutenberg() {
  return QFileInfo::exists(studio_data_dir() + "/corpus/gutenberg");
}

bool same_number(double a, double b) {
  return QString::number(a, 'g', 6) == QString::number(b, 'g', 6);  // as the form shows them
}

}  // namespace

at::Device LearnPanel::formDevice() {
  return StudioSettings::load().device == "cuda" ? at::Device(at::kCUDA) : at::Device(at::kCPU);
}

void LearnPanel::buildSettings(QWidget* box) {
  auto* outer = new QVBoxLayout(box);
  auto* form = new QFormLayout();
  method_ = new QComboBox(box);
  for (const auto& p : method_presets()) {
    method_->addItem(QString::fromStdString(p.name), QString::fromStdString(p.name));
    method_->setItemData(method_->count() - 1, QString::fromStdString(p.summary + "\n" + p.transforms),
                         Qt::ToolTipRole);
  }
  method_summary_ = new QLabel(box);
  method_summary_->setWordWrap(true);
  method_summary_->setMinimumWidth(260);
  quant_ = new QComboBox(box);
  quant_->setEditable(true);
  quant_->addItems({"mxfp4", "mxint4", "mxfp6", "mxfp8", "mxint8", "nvfp4", "w=mxfp4,a=none", "w=mxfp4,a=mxfp8"});
  quant_->setToolTip(
      "Formats (latmix --quant grammar): FORMAT for weights and activations, or w=..,a=..; "
      "block=, scale=, round=, weights=rtn|gptq (overrides the method's quantizer)");
  steps_ = new QSpinBox(box);
  steps_->setRange(1, 1000000);
  batch_ = new QSpinBox(box);
  batch_->setRange(1, 4096);
  lr_ = number_field(box);
  calib_ = new QComboBox(box);
  calib_->setEditable(true);
  calib_->setSizeAdjustPolicy(QComboBox::AdjustToMinimumContentsLengthWithIcon);  // long paths must not widen the form
  calib_->setMinimumContentsLength(16);
  if (has_gutenberg()) calib_->addItem("gutenberg");
  calib_->addItem(bundled_sample());
  calib_->setToolTip(
      "gutenberg: the gutenberg models' training books in the data folder (held-out books excluded);\n"
      "or one or more text files, comma-separated");
  auto* browse = new QPushButton("...", box);
  browse->setToolTip("Choose calibration text files");
  connect(browse, &QPushButton::clicked, this, [this] {
    const QStringList files =
        QFileDialog::getOpenFileNames(this, "Calibration text", last_folder("text"), "Text (*.txt *.raw);;All files (*)");
    if (files.isEmpty()) return;
    remember_folder("text", files.front());
    calib_->setCurrentText(files.join(','));
  });
  auto* calib_row = new QHBoxLayout();
  calib_row->addWidget(calib_, 1);
  calib_row->addWidget(browse);
  samples_ = new QSpinBox(box);
  samples_->setRange(1, 100000);
  seqlen_ = new QSpinBox(box);
  seqlen_->setRange(2, 131072);
  seed_ = new QSpinBox(box);
  seed_->setRange(0, 1 << 30);
  device_ = new QLabel(box);
  device_->setToolTip("The device is a setting (File > Settings); the model is loaded there.");
  nproc_ = new QSpinBox(box);
  nproc_->setRange(1, 64);
  nproc_->setObjectName("nproc");
  nproc_->setToolTip(
      "On an engine (File > Connect): processes that learn together on the engine's host (latmix learn --nproc), one "
      "GPU each with --device cuda; data-parallel: each takes its share of every batch. In this process: one.");
  split_ = new QComboBox(box);
  split_->addItems({"batch", "layers"});
  split_->setObjectName("split");
  split_->setToolTip(QString::fromStdString(
      "How the processes share layer-wise learning (latmix learn --split): a share of every batch, or a share of the "
      "layers (each process holds only its layers, for a model larger than one GPU; --mode layerwise)"));
  auto* nproc_row = new QHBoxLayout();
  nproc_row->addWidget(nproc_);
  nproc_row->addWidget(new QLabel("split by", box));
  nproc_row->addWidget(split_, 1);
  form->addRow("method", method_);
  form->addRow("", method_summary_);
  form->addRow("format", quant_);
  form->addRow("steps", steps_);
  form->addRow("batch", batch_);
  form->addRow("learning rate", lr_);
  form->addRow("calibration", calib_row);
  form->addRow("samples", samples_);
  form->addRow("seq. length", seqlen_);
  form->addRow("seed", seed_);
  form->addRow("device", device_);
  form->addRow("engine processes", nproc_row);
  outer->addLayout(form);

  knobs_ = new LearnKnobs("method default", box);
  const std::vector<std::pair<QWidget*, const char*>> tips = {{quant_, "quant"}, {calib_, "calib"},   {samples_, "samples"},
                                                              {seqlen_, "seqlen"}, {seed_, "seed"},   {steps_, "steps"},
                                                              {batch_, "batch"},   {lr_, "lr"}};
  for (const auto& [w, name] : tips) {
    w->setToolTip(cli_tip(name));
    w->setObjectName(name);  // the option's name: tests set the form as a person would
  }
  method_->setObjectName("method");
  outer->addWidget(knobs_);
  learn_knobs_ = {steps_, batch_, lr_, samples_, seqlen_, calib_, browse, knobs_};

  auto* buttons = new QHBoxLayout();
  start_ = new QPushButton("Start", box);
  pause_ = new QPushButton("Pause", box);
  cancel_ = new QPushButton("Cancel", box);
  buttons->addWidget(start_);
  buttons->addWidget(pause_);
  buttons->addWidget(cancel_);
  outer->addLayout(buttons);
  outer->addWidget(new QLabel("The same run from the command line:", box));
  cli_ = new QLineEdit(box);
  cli_->setReadOnly(true);
  cli_->setCursorPosition(0);
  outer->addWidget(cli_);
  outer->addStretch(1);

  connect(method_, &QComboBox::currentIndexChanged, this, &LearnPanel::methodChanged);
  for (QComboBox* c : {quant_, calib_, split_})
    connect(c, &QComboBox::currentTextChanged, this, &LearnPanel::updateCli);
  connect(knobs_, &LearnKnobs::changed, this, &LearnPanel::updateCli);
  for (QSpinBox* s : {steps_, batch_, samples_, seqlen_, seed_, nproc_})
    connect(s, &QSpinBox::valueChanged, this, &LearnPanel::updateCli);
  connect(lr_, &QLineEdit::textChanged, this, &LearnPanel::updateCli);
}

void LearnPanel::methodChanged() {
  const std::string method = method_->currentData().toString().toStdString();
  const MethodPreset& preset = find_method(method);
  method_summary_->setText(QString("<i>%1</i><br><small>%2</small>")
                               .arg(QString::fromStdString(preset.summary).toHtmlEscaped(),
                                    QString::fromStdString(preset.transforms).toHtmlEscaped()));
  const at::Device device = formDevice();
  const LearnSettings d = formDefaults();
  steps_->setValue(static_cast<int>(std::max<int64_t>(1, d.steps)));
  batch_->setValue(static_cast<int>(d.batch));
  lr_->setText(QString::number(d.lr, 'g', 6));
  knobs_->showDefaults(d);
  device_->setText(QString::fromStdString(device.str()) + "  (File > Settings)");
  for (QWidget* w : learn_knobs_) w->setEnabled(preset.learned);
  updateButtons();
  updateCli();
}

LearnSettings LearnPanel::formDefaults() const {
  QuantSpec spec;
  try {
    spec = parse_quant_spec(quant_->currentText().toStdString());
  } catch (const Error&) {
    spec = parse_quant_spec("mxfp4");  // defaults only depend on the device; the spec is checked at Start
  }
  return method_defaults(method_->currentData().toString().toStdString(), spec, formDevice());
}

LearnRequest LearnPanel::request() const {
  LearnRequest r;
  r.model = session_->summary().path.toStdString();
  r.device = StudioSettings::load().device.toStdString();
  r.method = method_->currentData().toString().toStdString();
  r.quant = quant_->currentText().trimmed().toStdString();
  r.calib = calib_->currentText().trimmed().toStdString();
  if (r.calib == "gutenberg") {  // the data folder matters for gutenberg only
    const std::string dir = studio_data_dir().toStdString();
    if (dir != default_eval_data_dir()) r.data_dir = dir;
  }
  const api::CalibrationSize size = api::learn_calibration_defaults(formDevice().is_cuda(), 0);
  if (samples_->value() != size.samples) r.samples = samples_->value();
  if (seqlen_->value() != size.seqlen) r.seqlen = seqlen_->value();
  r.seed = static_cast<uint64_t>(seed_->value());
  if (!find_method(r.method).learned) return r;
  if (processes() > 1) r.split = split_->currentText().toStdString();
  const LearnSettings d = formDefaults();
  if (steps_->value() != d.steps) r.steps = steps_->value();
  if (batch_->value() != d.batch) r.batch = batch_->value();
  const std::optional<double> lr = number_of(lr_);
  if (lr && !same_number(*lr, d.lr)) r.lr = lr;
  knobs_->read(r);
  return r;
}

void LearnPanel::setRequest(const LearnRequest& r) {
  method_->setCurrentIndex(method_->findData(QString::fromStdString(r.method)));
  quant_->setCurrentText(QString::fromStdString(r.quant));
  methodChanged();  // the method's defaults first, then what the request sets
  calib_->setCurrentText(QString::fromStdString(r.calib));
  const api::CalibrationSize size = api::learn_calibration_defaults(formDevice().is_cuda(), 0);
  samples_->setValue(static_cast<int>(r.samples.value_or(size.samples)));
  seqlen_->setValue(static_cast<int>(r.seqlen.value_or(size.seqlen)));
  seed_->setValue(static_cast<int>(r.seed));
  if (r.steps) steps_->setValue(static_cast<int>(*r.steps));
  if (r.batch) batch_->setValue(static_cast<int>(*r.batch));
  if (r.lr) lr_->setText(QString::number(*r.lr, 'g', QLocale::FloatingPointShortest));
  knobs_->write(r);
  updateCli();
}

QString LearnPanel::cliCommand() const {
  LearnRequest r = request();
  if (r.out.empty()) r.out = "PREFIX";  // Save transforms names the files afterwards
  std::vector<std::string> words = api::learn_command_line(r);
  if (processes() > 1) words.insert(words.end(), {"--nproc", std::to_string(processes())});
  return shell_command(to_qstrings(words));
}

int LearnPanel::processes() const {
  return session_->remote() != nullptr && find_method(method_->currentData().toString().toStdString()).learned
             ? nproc_->value()
             : 1;
}

void LearnPanel::updateCli() {
  context_->setLearnRequest(request());  // Export's default format follows the form
  cli_->setText(cliCommand());
  cli_->setCursorPosition(0);
  cli_->setToolTip(cli_->text());
}

void LearnPanel::restoreSettings() {
  QSettings s;
  s.beginGroup("learn");
  const int m = method_->findData(s.value("method", "latmix").toString());
  method_->setCurrentIndex(m >= 0 ? m : 0);
  quant_->setCurrentText(s.value("quant", "mxfp4").toString());
  const bool gpu = formDevice().is_cuda();
  const api::CalibrationSize size = api::learn_calibration_defaults(gpu, 0);
  samples_->setValue(s.value("samples", static_cast<int>(size.samples)).toInt());
  seqlen_->setValue(s.value("seqlen", static_cast<int>(size.seqlen)).toInt());
  seed_->setValue(s.value("seed", 0).toInt());
  if (s.contains("calib")) calib_->setCurrentText(s.value("calib").toString());
  log_scale_->setChecked(s.value("log_scale", false).toBool());
  methodChanged();
  if (s.value("steps_method").toString() == method_->currentData().toString()) {  // the knobs belong to a method
    steps_->setValue(s.value("steps", steps_->value()).toInt());
    batch_->setValue(s.value("batch", batch_->value()).toInt());
    lr_->setText(s.value("lr", lr_->text()).toString());
  }
  s.endGroup();
}

void LearnPanel::storeSettings() const {
  QSettings s;
  s.beginGroup("learn");
  s.setValue("method", method_->currentData());
  s.setValue("quant", quant_->currentText());
  s.setValue("calib", calib_->currentText());
  s.setValue("samples", samples_->value());
  s.setValue("seqlen", seqlen_->value());
  s.setValue("seed", seed_->value());
  s.setValue("log_scale", log_scale_->isChecked());
  s.setValue("steps_method", method_->currentData());
  s.setValue("steps", steps_->value());
  s.setValue("batch", batch_->value());
  s.setValue("lr", lr_->text());
  s.endGroup();
}

}  // namespace latmix::studio
