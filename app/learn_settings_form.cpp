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
#include "learn_panel.h"
#include "main_window.h"
#include "model_session.h"
#include "settings_dialog.h"

namespace latmix::studio {

namespace {

QString bundled_sample() {
  return resources_dir() + "/calibration/pride_and_prejudice_ch1-6.txt";
}

bool has_gutenberg() {
  return QFileInfo::exists(studio_data_dir() + "/corpus/gutenberg");
}

QLineEdit* number_field(QWidget* parent) {
  auto* e = new QLineEdit(parent);
  auto* v = new QDoubleValidator(0, 1e6, 12, e);
  v->setNotation(QDoubleValidator::ScientificNotation);
  v->setLocale(QLocale::c());
  e->setValidator(v);
  return e;
}

QLineEdit* count_field(QWidget* parent, int minimum) {
  auto* e = new QLineEdit(parent);
  e->setValidator(new QIntValidator(minimum, 1 << 30, e));
  return e;
}

std::optional<qint64> count_of(const QLineEdit* e) {
  bool ok = false;
  const qint64 v = e->text().trimmed().toLongLong(&ok);
  return ok ? std::optional<qint64>(v) : std::nullopt;
}

std::optional<double> number_of(const QLineEdit* e) {
  bool ok = false;
  const double v = QLocale::c().toDouble(e->text().trimmed(), &ok);
  return ok ? std::optional<double>(v) : std::nullopt;
}

QComboBox* choice(QWidget* parent, const QStringList& items) {
  auto* c = new QComboBox(parent);
  c->addItem("method default", QString());
  for (const QString& i : items) c->addItem(i, i);
  return c;
}

// "--name: " and the help text of `latmix learn --help` (one source: latmix/api/learn.h).
QString cli_tip(const char* name) {
  return QString("--%1: %2").arg(name, QString::fromStdString(api::learn_option_help(name)));
}

std::optional<std::string> choice_of(const QComboBox* c) {
  const QString v = c->currentData().toString();
  return v.isEmpty() ? std::nullopt : std::optional<std::string>(v.toStdString());
}

std::optional<bool> yes_no_of(const QComboBox* c) {
  const QString v = c->currentData().toString();
  return v.isEmpty() ? std::nullopt : std::optional<bool>(v == "yes");
}

void set_choice(QComboBox* c, const std::optional<std::string>& v) {
  c->setCurrentIndex(v ? std::max(0, c->findData(QString::fromStdString(*v))) : 0);
}

void set_yes_no(QComboBox* c, const std::optional<bool>& v) {
  c->setCurrentIndex(v ? std::max(0, c->findData(QString(*v ? "yes" : "no"))) : 0);
}

void set_number(QLineEdit* e, const std::optional<double>& v) {
  e->setText(v ? QString::number(*v, 'g', QLocale::FloatingPointShortest) : QString());
}

void set_count(QLineEdit* e, const std::optional<int64_t>& v) {
  e->setText(v ? QString::number(*v) : QString());
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
  outer->addLayout(form);

  auto* advanced = new QGroupBox("Advanced (empty: the method's default)", box);
  advanced->setCheckable(true);
  advanced->setChecked(false);
  auto* adv_form = new QFormLayout();
  auto* adv_inner = new QWidget(advanced);
  adv_inner->setLayout(adv_form);
  adv_inner->setVisible(false);
  auto* adv_layout = new QVBoxLayout(advanced);
  adv_layout->addWidget(adv_inner);
  advanced->setFlat(true);
  connect(advanced, &QGroupBox::toggled, adv_inner, &QWidget::setVisible);
  connect(advanced, &QGroupBox::toggled, advanced, [advanced](bool on) { advanced->setFlat(!on); });
  optimizer_ = choice(advanced, {"adamw", "sgd"});
  schedule_ = choice(advanced, {"cosine", "constant"});
  init_ = choice(advanced, {"hadamard", "block_hadamard", "random", "identity"});
  lambda_ = number_field(advanced);
  warmup_ = number_field(advanced);
  grad_clip_ = number_field(advanced);
  momentum_ = number_field(advanced);
  weight_decay_ = number_field(advanced);
  param_ = choice(advanced, {"lu", "qr"});
  affine_bias_ = choice(advanced, {"yes", "no"});
  rotation_map_ = choice(advanced, {"cayley", "exp"});
  mode_ = choice(advanced, {"e2e", "layerwise"});
  loss_ = choice(advanced, {"kl", "ce", "mse"});
  adv_form->addRow("optimizer", optimizer_);
  adv_form->addRow("momentum (SGD)", momentum_);
  adv_form->addRow("weight decay (AdamW)", weight_decay_);
  adv_form->addRow("schedule", schedule_);
  adv_form->addRow("warm-up fraction", warmup_);
  adv_form->addRow("gradient clip", grad_clip_);
  adv_form->addRow("mode", mode_);
  adv_form->addRow("loss", loss_);
  adv_form->addRow("init", init_);
  adv_form->addRow("lambda (volume term)", lambda_);
  adv_form->addRow("affine parametrization", param_);
  adv_form->addRow("affine bias", affine_bias_);
  adv_form->addRow("rotation map", rotation_map_);
  // Validation (docs/methods.md, "Never worse than the start"): the options of `latmix learn`.
  validation_ = count_field(advanced, 0);
  validation_->setPlaceholderText("one in eight (none under 8)");
  eval_every_ = count_field(advanced, 1);
  eval_every_->setPlaceholderText("an eighth of the steps");
  patience_ = count_field(advanced, 0);
  deployed_check_ = choice(advanced, {"no", "ends", "every"});
  gptq_refresh_ = count_field(advanced, 0);
  adv_form->addRow("validation sequences", validation_);
  adv_form->addRow("validate every (steps)", eval_every_);
  adv_form->addRow("patience", patience_);
  adv_form->addRow("deployed check", deployed_check_);
  adv_form->addRow("GPTQ refresh (steps)", gptq_refresh_);
  // Memory of end-to-end learning (docs/methods.md, "How memory is chosen"): same result, other speed.
  micro_batch_ = count_field(advanced, 1);
  micro_batch_->setPlaceholderText("from free memory (CPU: the batch)");
  loss_chunk_ = count_field(advanced, 1);
  loss_chunk_->setPlaceholderText("256 MB of logits");
  recompute_ = choice(advanced, {"yes", "no"});
  kept_layers_ = count_field(advanced, 0);
  kept_layers_->setPlaceholderText("what fits in 30 % of a GPU (CPU: 0)");
  teacher_cache_ = choice(advanced, {"yes", "no"});
  adv_form->addRow("micro-batch", micro_batch_);
  adv_form->addRow("loss chunk (positions)", loss_chunk_);
  adv_form->addRow("recompute layers", recompute_);
  adv_form->addRow("kept layers", kept_layers_);
  adv_form->addRow("teacher cache", teacher_cache_);
  const std::vector<std::pair<QWidget*, const char*>> tips = {
      {optimizer_, "optimizer"},     {momentum_, "momentum"},       {weight_decay_, "weight-decay"},
      {schedule_, "schedule"},       {warmup_, "warmup"},           {grad_clip_, "grad-clip"},
      {mode_, "mode"},               {loss_, "loss"},               {init_, "init"},
      {lambda_, "lambda"},           {param_, "param"},             {affine_bias_, "affine-bias"},
      {rotation_map_, "rotation-map"}, {validation_, "validation"}, {eval_every_, "eval-every"},
      {patience_, "patience"},       {deployed_check_, "deployed-check"}, {gptq_refresh_, "gptq-refresh"},
      {micro_batch_, "micro-batch"},
      {loss_chunk_, "loss-chunk"},   {recompute_, "recompute"},     {kept_layers_, "kept-layers"},
      {teacher_cache_, "teacher-cache"}, {quant_, "quant"},         {calib_, "calib"},
      {samples_, "samples"},         {seqlen_, "seqlen"},           {seed_, "seed"},
      {steps_, "steps"},             {batch_, "batch"},             {lr_, "lr"}};
  for (const auto& [w, name] : tips) {
    w->setToolTip(cli_tip(name));
    w->setObjectName(name);  // the option's name: tests set the form as a person would
  }
  method_->setObjectName("method");
  outer->addWidget(advanced);
  learn_knobs_ = {steps_, batch_, lr_, samples_, seqlen_, calib_, browse, advanced};

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
  for (QComboBox* c : {quant_, calib_}) connect(c, &QComboBox::currentTextChanged, this, &LearnPanel::updateCli);
  for (QComboBox* c : {optimizer_, schedule_, init_, deployed_check_, param_, affine_bias_, rotation_map_, mode_, loss_,
                       recompute_, teacher_cache_})
    connect(c, &QComboBox::currentIndexChanged, this, &LearnPanel::updateCli);
  for (QSpinBox* s : {steps_, batch_, samples_, seqlen_, seed_})
    connect(s, &QSpinBox::valueChanged, this, &LearnPanel::updateCli);
  for (QLineEdit* e : {lr_, lambda_, warmup_, grad_clip_, momentum_, weight_decay_, validation_, eval_every_, patience_,
                       gptq_refresh_, micro_batch_, loss_chunk_, kept_layers_})
    connect(e, &QLineEdit::textChanged, this, &LearnPanel::updateCli);
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
  lambda_->setPlaceholderText(QString::number(d.lambda, 'g', 6));
  warmup_->setPlaceholderText(QString::number(d.warmup, 'g', 6));
  grad_clip_->setPlaceholderText(QString::number(d.grad_clip, 'g', 6));
  optimizer_->setItemText(0, "method default (" + QString::fromStdString(to_string(d.optimizer)) + ")");
  schedule_->setItemText(0, QString("method default (%1)").arg(d.cosine ? "cosine" : "constant"));
  init_->setItemText(0, "method default (" + QString::fromStdString(to_string(d.init)) + ")");
  momentum_->setPlaceholderText(QString::number(d.momentum, 'g', 6));
  weight_decay_->setPlaceholderText(QString::number(d.weight_decay, 'g', 6));
  param_->setItemText(0, QString("method default (%1)").arg(d.param == AffineTransform::Param::QR ? "qr" : "lu"));
  affine_bias_->setItemText(0, QString("method default (%1)").arg(d.affine_bias ? "yes" : "no"));
  rotation_map_->setItemText(
      0, QString("method default (%1)").arg(d.rotation_map == RotationTransform::Map::Exp ? "exp" : "cayley"));
  mode_->setItemText(0, "method default (" + QString::fromStdString(to_string(d.mode)) + ")");
  loss_->setItemText(0, "method default (" + QString::fromStdString(to_string(d.loss)) + "; with a mode: its loss)");
  recompute_->setItemText(0, QString("default (%1)").arg(d.checkpoint_layers ? "yes" : "no"));
  teacher_cache_->setItemText(0, "default (by memory; CPU: no)");
  patience_->setPlaceholderText(QString::number(d.patience));
  deployed_check_->setItemText(0, "default (" + QString::fromStdString(to_string(d.deployed_check)) + ")");
  gptq_refresh_->setPlaceholderText(d.gptq_refresh > 0 ? QString::number(d.gptq_refresh) : "off (RTN student)");
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
  const LearnSettings d = formDefaults();
  if (steps_->value() != d.steps) r.steps = steps_->value();
  if (batch_->value() != d.batch) r.batch = batch_->value();
  const std::optional<double> lr = number_of(lr_);
  if (lr && !same_number(*lr, d.lr)) r.lr = lr;
  r.optimizer = choice_of(optimizer_);
  r.momentum = number_of(momentum_);
  r.weight_decay = number_of(weight_decay_);
  r.warmup = number_of(warmup_);
  r.schedule = choice_of(schedule_);
  r.grad_clip = number_of(grad_clip_);
  r.lambda = number_of(lambda_);
  r.param = choice_of(param_);
  r.init = choice_of(init_);
  r.affine_bias = yes_no_of(affine_bias_);
  r.rotation_map = choice_of(rotation_map_);
  r.mode = choice_of(mode_);
  r.loss = choice_of(loss_);
  r.micro_batch = count_of(micro_batch_);
  r.loss_chunk = count_of(loss_chunk_);
  r.recompute = yes_no_of(recompute_);
  r.kept_layers = count_of(kept_layers_);
  r.teacher_cache = yes_no_of(teacher_cache_);
  r.validation = count_of(validation_);
  r.eval_every = count_of(eval_every_);
  r.patience = count_of(patience_);
  r.deployed_check = choice_of(deployed_check_);
  r.gptq_refresh = count_of(gptq_refresh_);
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
  set_choice(optimizer_, r.optimizer);
  set_number(momentum_, r.momentum);
  set_number(weight_decay_, r.weight_decay);
  set_number(warmup_, r.warmup);
  set_choice(schedule_, r.schedule);
  set_number(grad_clip_, r.grad_clip);
  set_number(lambda_, r.lambda);
  set_choice(param_, r.param);
  set_choice(init_, r.init);
  set_yes_no(affine_bias_, r.affine_bias);
  set_choice(rotation_map_, r.rotation_map);
  set_choice(mode_, r.mode);
  set_choice(loss_, r.loss);
  set_count(micro_batch_, r.micro_batch);
  set_count(loss_chunk_, r.loss_chunk);
  set_yes_no(recompute_, r.recompute);
  set_count(kept_layers_, r.kept_layers);
  set_yes_no(teacher_cache_, r.teacher_cache);
  set_count(validation_, r.validation);
  set_count(eval_every_, r.eval_every);
  set_count(patience_, r.patience);
  set_choice(deployed_check_, r.deployed_check);
  set_count(gptq_refresh_, r.gptq_refresh);
  updateCli();
}

QString LearnPanel::cliCommand() const {
  LearnRequest r = request();
  if (r.out.empty()) r.out = "PREFIX";  // Save transforms names the files afterwards
  return shell_command(to_qstrings(api::learn_command_line(r)));
}

void LearnPanel::updateCli() {
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
