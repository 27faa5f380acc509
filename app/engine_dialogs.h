#pragma once
// The dialogs of a remote engine: File > Connect to engine... (address and token, remembered) and
// File > Open model on engine... (a browser of the server's roots, listed with GET /v1/files on the
// engine thread).

#include <QDialog>
#include <QString>

#include <memory>

#include "engine_link.h"

class QLabel;
class QLineEdit;
class QListWidget;
class QPushButton;

namespace latmix::serve {
class RemoteEngine;
}  // namespace latmix::serve

namespace latmix::studio {

class EngineHost;

/// Address, token or token file. Accepted with Connect (address()) or with Disconnect
/// (disconnectChosen()): back to this computer.
class ConnectDialog : public QDialog {
  Q_OBJECT

 public:
  /// `connected`: whether an engine is connected now (Disconnect is offered then).
  ConnectDialog(const EngineAddress& address, bool connected, QWidget* parent = nullptr);
  EngineAddress address() const;
  bool disconnectChosen() const { return disconnect_; }

 private:
  QLineEdit* url_ = nullptr;
  QLineEdit* token_ = nullptr;
  QLineEdit* token_file_ = nullptr;
  bool disconnect_ = false;
};

/// A folder browser of the server's roots: double-click a folder to enter it, "Open" takes the
/// folder shown (a Hugging Face model folder) or the file selected (a llama2.c .bin).
class RemoteFileDialog : public QDialog {
  Q_OBJECT

 public:
  RemoteFileDialog(EngineHost* host, std::shared_ptr<const latmix::serve::RemoteEngine> engine,
                   QWidget* parent = nullptr);
  /// Lists `path` ("": the roots) on the engine thread; listed() or listFailed() follows.
  void browse(const QString& path);
  /// The folder shown ("": the roots) and its entries' names (folders end with "/").
  QString folder() const { return folder_; }
  QStringList entries() const;
  /// What Open chose: the folder shown, or the file selected in it.
  QString chosen() const;

 Q_SIGNALS:
  void listed(const QString& folder);
  void listFailed(const QString& message);

 private:
  void show(const QString& folder, const nlohmann::json& entries);
  void up();

  EngineHost* host_;
  std::shared_ptr<const latmix::serve::RemoteEngine> engine_;
  QString folder_;
  QStringList roots_;
  QLabel* where_ = nullptr;
  QListWidget* list_ = nullptr;
  QLabel* error_ = nullptr;
  QPushButton* open_ = nullptr;
  quint64 job_ = 0;
};

}  // namespace latmix::studio
