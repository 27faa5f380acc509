#include "engine_dialogs.h"

#include <QDialogButtonBox>
#include <QFileDialog>
#include <QFormLayout>
#include <QHBoxLayout>
#include <QLabel>
#include <QLineEdit>
#include <QListWidget>
#include <QPointer>
#include <QPushButton>
#include <QVBoxLayout>

#include "engine_host.h"
#include "latmix/serve/client.h"

namespace latmix::studio {

ConnectDialog::ConnectDialog(const EngineAddress& address, bool connected, QWidget* parent) : QDialog(parent) {
  setWindowTitle("Connect to engine");
  auto* layout = new QVBoxLayout(this);
  auto* intro = new QLabel(
      "Run the engine's work on a <code>latmix serve</code> engine (a GPU server, reached through an SSH "
      "tunnel: docs/remote.md). Paths are then the server's paths.",
      this);
  intro->setWordWrap(true);
  layout->addWidget(intro);
  auto* form = new QFormLayout();
  url_ = new QLineEdit(address.url, this);
  url_->setObjectName("engine-url");
  url_->setPlaceholderText("http://127.0.0.1:8187");
  token_ = new QLineEdit(address.token, this);
  token_->setObjectName("engine-token");
  token_->setEchoMode(QLineEdit::Password);
  token_->setPlaceholderText("empty: read from the token file");
  token_file_ = new QLineEdit(address.token_file, this);
  token_file_->setObjectName("engine-token-file");
  token_file_->setPlaceholderText(default_token_file());
  auto* browse = new QPushButton("...", this);
  connect(browse, &QPushButton::clicked, this, [this] {
    const QString f = QFileDialog::getOpenFileName(this, "Token file", token_file_->text());
    if (!f.isEmpty()) token_file_->setText(f);
  });
  auto* file_row = new QHBoxLayout();
  file_row->addWidget(token_file_, 1);
  file_row->addWidget(browse);
  form->addRow("address", url_);
  form->addRow("token", token_);
  form->addRow("or token file", file_row);
  layout->addLayout(form);
  auto* buttons = new QDialogButtonBox(this);
  buttons->addButton("Connect", QDialogButtonBox::AcceptRole);
  if (connected) {
    QPushButton* back = buttons->addButton("Disconnect (this computer)", QDialogButtonBox::ResetRole);
    connect(back, &QPushButton::clicked, this, [this] {
      disconnect_ = true;
      accept();
    });
  }
  buttons->addButton(QDialogButtonBox::Cancel);
  connect(buttons, &QDialogButtonBox::accepted, this, &QDialog::accept);
  connect(buttons, &QDialogButtonBox::rejected, this, &QDialog::reject);
  layout->addWidget(buttons);
}

EngineAddress ConnectDialog::address() const {
  EngineAddress a;
  a.url = url_->text().trimmed();
  a.token = token_->text();
  a.token_file = token_file_->text().trimmed();
  return a;
}

RemoteFileDialog::RemoteFileDialog(EngineHost* host, std::shared_ptr<const serve::RemoteEngine> engine, QWidget* parent)
    : QDialog(parent), host_(host), engine_(std::move(engine)) {
  setWindowTitle("Open a model on the engine");
  resize(640, 480);
  auto* layout = new QVBoxLayout(this);
  auto* row = new QHBoxLayout();
  auto* up_button = new QPushButton("Up", this);
  connect(up_button, &QPushButton::clicked, this, &RemoteFileDialog::up);
  where_ = new QLabel(this);
  where_->setTextInteractionFlags(Qt::TextSelectableByMouse);
  row->addWidget(up_button);
  row->addWidget(where_, 1);
  layout->addLayout(row);
  list_ = new QListWidget(this);
  connect(list_, &QListWidget::itemActivated, this, [this](QListWidgetItem* item) {
    const QString path = item->data(Qt::UserRole).toString();
    if (item->text().endsWith('/')) browse(path);
    else accept();  // a file: a llama2.c checkpoint
  });
  layout->addWidget(list_, 1);
  error_ = new QLabel(this);
  error_->setStyleSheet("color: #c0392b");
  error_->setWordWrap(true);
  layout->addWidget(error_);
  auto* buttons = new QDialogButtonBox(this);
  open_ = buttons->addButton("Open", QDialogButtonBox::AcceptRole);
  open_->setToolTip("Opens the folder shown (a Hugging Face model folder), or the .bin file selected");
  buttons->addButton(QDialogButtonBox::Cancel);
  connect(buttons, &QDialogButtonBox::accepted, this, &QDialog::accept);
  connect(buttons, &QDialogButtonBox::rejected, this, &QDialog::reject);
  layout->addWidget(buttons);
  connect(host_, &EngineHost::jobFailed, this, [this](quint64 id, const QString&, const QString& message) {
    if (id != job_) return;
    error_->setText(message);
    Q_EMIT listFailed(message);
  });
  browse(QString());
}

void RemoteFileDialog::browse(const QString& path) {
  error_->clear();
  where_->setText("listing " + (path.isEmpty() ? QString("the engine's folders") : path) + "...");
  QPointer<RemoteFileDialog> self(this);
  auto engine = engine_;
  job_ = host_->submit("list-engine-files", [self, engine, path](const JobControl&) {
    const nlohmann::json listing = engine->files(path.toStdString());
    EngineHost::post(self, [self, listing] {
      self->show(QString::fromStdString(listing.value("path", std::string())), listing.at("entries"));
    });
  });
}

void RemoteFileDialog::show(const QString& folder, const nlohmann::json& entries) {
  folder_ = folder;
  list_->clear();
  if (folder.isEmpty()) roots_.clear();
  for (const auto& e : entries) {
    const QString name = QString::fromStdString(e.at("name").get<std::string>());
    const bool dir = e.value("kind", std::string()) == "folder";
    if (folder.isEmpty()) roots_ << name;
    auto* item = new QListWidgetItem(dir ? name + "/" : name, list_);
    item->setData(Qt::UserRole, folder.isEmpty() ? name : folder + "/" + name);
  }
  where_->setText(folder.isEmpty() ? QString("The folders the engine serves") : folder);
  open_->setEnabled(!folder.isEmpty());
  Q_EMIT listed(folder);
}

void RemoteFileDialog::up() {
  if (folder_.isEmpty() || roots_.contains(folder_)) return browse(QString());
  browse(folder_.section('/', 0, -2));
}

QStringList RemoteFileDialog::entries() const {
  QStringList out;
  for (int i = 0; i < list_->count(); ++i) out << list_->item(i)->text();
  return out;
}

QString RemoteFileDialog::chosen() const {
  QListWidgetItem* item = list_->currentItem();
  if (item != nullptr && item->isSelected() && !item->text().endsWith('/')) return item->data(Qt::UserRole).toString();
  return folder_;
}

}  // namespace latmix::studio
