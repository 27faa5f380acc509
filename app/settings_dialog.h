#pragma once
// Settings: compute device (CPU, or CUDA when this build's LibTorch has it), CPU threads, the
// shared data folder, and the palette. Stored with QSettings; applied on the engine thread.

#include <QDialog>
#include <QString>

class QComboBox;
class QLineEdit;
class QSpinBox;

namespace latmix::studio {

class EngineHost;

struct StudioSettings {
  QString device = "cpu";
  int threads = 0;  ///< 0: LibTorch's default
  QString data_dir;
  QString palette = "light";  ///< "light" or "dark"

  static StudioSettings load();
  void save() const;
};

/// The shared data folder (evaluation sets): the setting, else $LATMIX_DATA_DIR, else
/// `shared/data` beside the checkout that holds the bundled resources.
QString studio_data_dir();

/// Applies device/threads to the engine (queued on the engine thread) and the palette to the app.
void apply_settings(const StudioSettings& settings, EngineHost* host);

class SettingsDialog : public QDialog {
  Q_OBJECT

 public:
  explicit SettingsDialog(QWidget* parent = nullptr);
  StudioSettings settings() const;

 private:
  QComboBox* device_ = nullptr;
  QSpinBox* threads_ = nullptr;
  QLineEdit* data_dir_ = nullptr;
  QComboBox* palette_ = nullptr;
};

}  // namespace latmix::studio
