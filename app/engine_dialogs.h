#pragma once
// The dialogs of a remote engine: File > Connect to engine... (address and token, remembered) and
// File > Open model on engine... (a browser of the server's roots, listed with GET /v1/files on the
// engine thread) and File > Engine jobs... (the engine's jobs, whoever submitted them; a learn job is
// followed in the Learn tab).

#include <QDialog>
#include <QString>

#include <memory>

#include "engine_link.h"

class QLabel;
class QLineEdit;
class QListWidget;
class QPushButton;
class QTableWidget;

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

/// The engine's jobs (GET /v1/jobs, listed off the GUI thread: the engine thread may be following
/// a run): id, task, state (queue position), progress, model. "Follow in Learn tab" accepts with a
/// queued, running or paused learn job chosen; "Cancel job" cancels the chosen one there.
class EngineJobsDialog : public QDialog {
  Q_OBJECT

 public:
  EngineJobsDialog(std::shared_ptr<const latmix::serve::RemoteEngine> engine, QWidget* parent = nullptr);
  /// Lists the jobs again; listed() or listFailed() follows.
  void refresh();
  /// The rows shown: "ID TASK STATE" each.
  QStringList rows() const;
  /// Selects the row of job `id`; false when it is not listed.
  bool select(const QString& id);
  /// The job chosen with Follow, and its request as the engine runs it.
  QString chosenId() const { return chosen_id_; }
  const nlohmann::json& chosenRequest() const { return chosen_request_; }
  QPushButton* followButton() const { return follow_; }

 Q_SIGNALS:
  void listed(int jobs);
  void listFailed(const QString& message);

 private:
  void fill(const nlohmann::json& jobs);
  void selectionChanged();
  void cancelChosen();

  std::shared_ptr<const latmix::serve::RemoteEngine> engine_;
  nlohmann::json jobs_ = nlohmann::json::array();
  QTableWidget* table_ = nullptr;
  QLabel* status_ = nullptr;
  QPushButton* follow_ = nullptr;
  QPushButton* cancel_ = nullptr;
  QString chosen_id_;
  nlohmann::json chosen_request_;
};

}  // namespace latmix::studio
