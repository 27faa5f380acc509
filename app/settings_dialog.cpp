#include "settings_dialog.h"

#include <QApplication>
#include <QComboBox>
#include <QDir>
#include <QFileInfo>
#include <QDialogButtonBox>
#include <QFormLayout>
#include <QLineEdit>
#include <QPalette>
#include <QSettings>
#include <QSpinBox>
#include <QStandardItemModel>
#include <QStyleFactory>
#include <QThread>

#include <ATen/Context.h>
#include <ATen/Parallel.h>

#include "engine_host.h"
#include "main_window.h"

namespace latmix::studio {

StudioSettings StudioSettings::load() {
  QSettings s;
  StudioSettings r;
  r.device = s.value("engine/device", "cpu").toString();
  r.threads = s.value("engine/threads", 0).toInt();
  r.data_dir = s.value("paths/data", "").toString();
  r.palette = s.value("view/palette", "light").toString();
  if (r.device == "cuda" && !at::hasCUDA()) r.device = "cpu";
  return r;
}

void StudioSettings::save() const {
  QSettings s;
  s.setValue("engine/device", device);
  s.setValue("engine/threads", threads);
  s.setValue("paths/data", data_dir);
  s.setValue("view/palette", palette);
}

QString studio_data_dir() {
  const QString configured = StudioSettings::load().data_dir;
  if (!configured.isEmpty()) return configured;
  const QString env = qEnvironmentVariable("LATMIX_DATA_DIR");
  if (!env.isEmpty()) return env;
  const QString beside = resources_dir() + "/../../shared/data";
  return QFileInfo::exists(beside) ? QDir(beside).absolutePath() : QString("../shared/data");
}

namespace {

QPalette dark_palette() {
  QPalette p;
  const QColor window(45, 45, 48), base(30, 30, 32), text(225, 225, 225), accent(60, 130, 200);
  p.setColor(QPalette::Window, window);
  p.setColor(QPalette::WindowText, text);
  p.setColor(QPalette::Base, base);
  p.setColor(QPalette::AlternateBase, window);
  p.setColor(QPalette::Text, text);
  p.setColor(QPalette::Button, window);
  p.setColor(QPalette::ButtonText, text);
  p.setColor(QPalette::Highlight, accent);
  p.setColor(QPalette::HighlightedText, Qt::white);
  p.setColor(QPalette::ToolTipBase, base);
  p.setColor(QPalette::ToolTipText, text);
  p.setColor(QPalette::Disabled, QPalette::Text, QColor(120, 120, 120));
  p.setColor(QPalette::Disabled, QPalette::ButtonText, QColor(120, 120, 120));
  return p;
}

}  // namespace

void apply_settings(const StudioSettings& settings, EngineHost* host) {
  QApplication::setStyle(QStyleFactory::create("Fusion"));
  QApplication::setPalette(settings.palette == "dark" ? dark_palette() : QApplication::style()->standardPalette());
  // Default: leave one core to the GUI thread so that it stays responsive while the engine works.
  const int threads = settings.threads > 0 ? settings.threads : std::max(1, QThread::idealThreadCount() - 1);
  host->submit("settings", [threads](const JobControl&) { at::set_num_threads(threads); });
}

SettingsDialog::SettingsDialog(QWidget* parent) : QDialog(parent) {
  setWindowTitle("Settings");
  const StudioSettings current = StudioSettings::load();
  auto* form = new QFormLayout(this);
  device_ = new QComboBox(this);
  device_->addItems({"cpu", "cuda"});
  if (!at::hasCUDA()) {
    auto* model = qobject_cast<QStandardItemModel*>(device_->model());
    model->item(1)->setEnabled(false);
    device_->setToolTip("CUDA is disabled: this build's LibTorch has no CUDA support (or no GPU is visible)");
  }
  device_->setCurrentText(current.device);
  threads_ = new QSpinBox(this);
  threads_->setRange(0, QThread::idealThreadCount() * 2);
  threads_->setSpecialValueText("all cores but one");
  threads_->setValue(current.threads);
  data_dir_ = new QLineEdit(current.data_dir, this);
  data_dir_->setPlaceholderText("shared data folder (evaluation sets, extra models)");
  palette_ = new QComboBox(this);
  palette_->addItems({"light", "dark"});
  palette_->setCurrentText(current.palette);
  form->addRow("Device", device_);
  form->addRow("CPU threads", threads_);
  form->addRow("Data folder", data_dir_);
  form->addRow("Palette", palette_);
  auto* buttons = new QDialogButtonBox(QDialogButtonBox::Ok | QDialogButtonBox::Cancel, this);
  connect(buttons, &QDialogButtonBox::accepted, this, &QDialog::accept);
  connect(buttons, &QDialogButtonBox::rejected, this, &QDialog::reject);
  form->addRow(buttons);
}

StudioSettings SettingsDialog::settings() const {
  StudioSettings s;
  s.device = device_->currentText();
  s.threads = threads_->value();
  s.data_dir = data_dir_->text();
  s.palette = palette_->currentText();
  return s;
}

}  // namespace latmix::studio
