#pragma once
// What the studio's GUI tests share (review item D1): settings isolated from the user's, a studio
// window on its own engine thread and session with the bundled model opened, and finding a button.
// Header-only; each test executable includes it.

#include <QCoreApplication>
#include <QPushButton>
#include <QSettings>
#include <QSignalSpy>
#include <QStandardPaths>
#include <QString>
#include <QWidget>

#include "engine_host.h"
#include "main_window.h"
#include "model_session.h"

namespace latmix::studio::test {

/// The bundled demo model (resources/models/gutenberg-llama-6M).
inline QString demo_model() { return QStringLiteral(LATMIX_SOURCE_DIR "/resources/models/gutenberg-llama-6M"); }

/// Settings go to a test location named after `application`, not the user's; `clear` empties them.
inline void isolate_settings(const char* application, bool clear = true) {
  QStandardPaths::setTestModeEnabled(true);
  QCoreApplication::setOrganizationName("LATMiX-test");
  QCoreApplication::setApplicationName(application);
  if (clear) QSettings().clear();
}

/// A studio main window with its own engine thread and model session.
struct Studio {
  EngineHost host;
  ModelSession session{&host};
  MainWindow window{&host, &session};
  /// Opens `path` as File > Open does; false when it is not open within `ms`.
  bool open(const QString& path, int ms = 120000) {
    QSignalSpy opened(&session, &ModelSession::opened);
    window.openModel(path);
    return opened.wait(ms);
  }
};

/// The first push button of `parent` labelled `text`, or nullptr.
inline QPushButton* button(QWidget* parent, const QString& text) {
  for (QPushButton* b : parent->findChildren<QPushButton*>()) {
    if (b->text() == text) return b;
  }
  return nullptr;
}

}  // namespace latmix::studio::test
