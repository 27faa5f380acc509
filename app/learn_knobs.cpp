#include "learn_knobs.h"

#include <QComboBox>
#include <QDoubleValidator>
#include <QFormLayout>
#include <QIntValidator>
#include <QLineEdit>
#include <QLocale>
#include <QVBoxLayout>

#include <algorithm>
#include <utility>
#include <vector>

namespace latmix::studio {

namespace {

QComboBox* choice(QWidget* parent, const QStringList& items) {
  auto* c = new QComboBox(parent);
  c->addItem("default", QString());
  for (const QString& i : items) c->addItem(i, i);
  return c;
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

QString g(double v) { return QString::number(v, 'g', 6); }

}  // namespace

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

std::optional<int64_t> count_of(const QLineEdit* e) {
  bool ok = false;
  const qint64 v = e->text().trimmed().toLongLong(&ok);
  return ok ? std::optional<int64_t>(v) : std::nullopt;
}

std::optional<double> number_of(const QLineEdit* e) {
  bool ok = false;
  const double v = QLocale::c().toDouble(e->text().trimmed(), &ok);
  return ok ? std::optional<double>(v) : std::nullopt;
}

void set_number(QLineEdit* e, const std::optional<double>& v) {
  e->setText(v ? QString::number(*v, 'g', QLocale::FloatingPointShortest) : QString());
}

void set_count(QLineEdit* e, const std::optional<int64_t>& v) { e->setText(v ? QString::number(*v) : QString()); }

QString cli_tip(const char* name) {
  return QString("--%1: %2").arg(name, QString::fromStdString(api::learn_option_help(name)));
}

LearnKnobs::LearnKnobs(const QString& default_text, QWidget* parent)
    : QGroupBox(QString("Advanced (empty: %1)").arg(default_text), parent), default_text_(default_text) {
  setCheckable(true);
  setChecked(false);
  setFlat(true);
  auto* form = new QFormLayout();
  auto* inner = new QWidget(this);
  inner->setLayout(form);
  inner->setVisible(false);
  auto* layout = new QVBoxLayout(this);
  layout->addWidget(inner);
  connect(this, &QGroupBox::toggled, inner, &QWidget::setVisible);
  connect(this, &QGroupBox::toggled, this, [this](bool on) { setFlat(!on); });
  optimizer_ = choice(this, {"adamw", "sgd"});
  schedule_ = choice(this, {"cosine", "constant"});
  init_ = choice(this, {"hadamard", "block_hadamard", "random", "identity"});
  lambda_ = number_field(this);
  warmup_ = number_field(this);
  grad_clip_ = number_field(this);
  momentum_ = number_field(this);
  weight_decay_ = number_field(this);
  param_ = choice(this, {"lu", "qr"});
  affine_bias_ = choice(this, {"yes", "no"});
  rotation_map_ = choice(this, {"cayley", "exp"});
  mode_ = choice(this, {"e2e", "layerwise"});
  loss_ = choice(this, {"kl", "ce", "mse"});
  // Validation (docs/methods.md, "Never worse than the start").
  validation_ = count_field(this, 0);
  eval_every_ = count_field(this, 1);
  patience_ = count_field(this, 0);
  deployed_check_ = choice(this, {"no", "ends", "every"});
  gptq_refresh_ = count_field(this, 0);
  // Memory of end-to-end learning (docs/methods.md, "How memory is chosen"): same result, other speed.
  micro_batch_ = count_field(this, 1);
  loss_chunk_ = count_field(this, 1);
  recompute_ = choice(this, {"yes", "no"});
  kept_layers_ = count_field(this, 0);
  teacher_cache_ = choice(this, {"yes", "no"});
  const std::vector<std::tuple<const char*, QWidget*, const char*>> rows = {
      {"optimizer", optimizer_, "optimizer"},
      {"momentum (SGD)", momentum_, "momentum"},
      {"weight decay (AdamW)", weight_decay_, "weight-decay"},
      {"schedule", schedule_, "schedule"},
      {"warm-up fraction", warmup_, "warmup"},
      {"gradient clip", grad_clip_, "grad-clip"},
      {"mode", mode_, "mode"},
      {"loss", loss_, "loss"},
      {"init", init_, "init"},
      {"lambda (volume term)", lambda_, "lambda"},
      {"affine parametrization", param_, "param"},
      {"affine bias", affine_bias_, "affine-bias"},
      {"rotation map", rotation_map_, "rotation-map"},
      {"validation sequences", validation_, "validation"},
      {"validate every (steps)", eval_every_, "eval-every"},
      {"patience", patience_, "patience"},
      {"deployed check", deployed_check_, "deployed-check"},
      {"GPTQ refresh (steps)", gptq_refresh_, "gptq-refresh"},
      {"micro-batch", micro_batch_, "micro-batch"},
      {"loss chunk (positions)", loss_chunk_, "loss-chunk"},
      {"recompute layers", recompute_, "recompute"},
      {"kept layers", kept_layers_, "kept-layers"},
      {"teacher cache", teacher_cache_, "teacher-cache"}};
  for (const auto& [label, w, name] : rows) {
    form->addRow(label, w);
    w->setToolTip(cli_tip(name));
    w->setObjectName(name);  // the option's name: tests set the form as a person would
    if (auto* c = qobject_cast<QComboBox*>(w)) {
      c->setItemText(0, default_text_);
      connect(c, &QComboBox::currentIndexChanged, this, &LearnKnobs::changed);
    } else if (auto* e = qobject_cast<QLineEdit*>(w)) {
      e->setPlaceholderText(default_text_);
      connect(e, &QLineEdit::textChanged, this, &LearnKnobs::changed);
    }
  }
}

void LearnKnobs::showDefaults(const LearnSettings& d) {
  lambda_->setPlaceholderText(g(d.lambda));
  warmup_->setPlaceholderText(g(d.warmup));
  grad_clip_->setPlaceholderText(g(d.grad_clip));
  momentum_->setPlaceholderText(g(d.momentum));
  weight_decay_->setPlaceholderText(g(d.weight_decay));
  auto item = [this](QComboBox* c, const QString& value) { c->setItemText(0, default_text_ + " (" + value + ")"); };
  item(optimizer_, QString::fromStdString(to_string(d.optimizer)));
  item(schedule_, d.cosine ? "cosine" : "constant");
  item(init_, QString::fromStdString(to_string(d.init)));
  item(param_, d.param == AffineTransform::Param::QR ? "qr" : "lu");
  item(affine_bias_, d.affine_bias ? "yes" : "no");
  item(rotation_map_, d.rotation_map == RotationTransform::Map::Exp ? "exp" : "cayley");
  item(mode_, QString::fromStdString(to_string(d.mode)));
  item(loss_, QString::fromStdString(to_string(d.loss)) + "; with a mode: its loss");
  item(recompute_, d.checkpoint_layers ? "yes" : "no");
  item(teacher_cache_, "by memory; CPU: no");
  item(deployed_check_, QString::fromStdString(to_string(d.deployed_check)));
  validation_->setPlaceholderText("one in eight (none under 8)");
  eval_every_->setPlaceholderText("an eighth of the steps");
  patience_->setPlaceholderText(QString::number(d.patience));
  gptq_refresh_->setPlaceholderText(d.gptq_refresh > 0 ? QString::number(d.gptq_refresh) : "off (RTN student)");
  micro_batch_->setPlaceholderText("from free memory (CPU: the batch)");
  loss_chunk_->setPlaceholderText("256 MB of logits");
  kept_layers_->setPlaceholderText("what fits in 30 % of a GPU (CPU: 0)");
}

void LearnKnobs::read(api::LearnRequest& r) const {
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
}

void LearnKnobs::write(const api::LearnRequest& r) {
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
}

}  // namespace latmix::studio
