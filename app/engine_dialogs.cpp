#include "engine_dialogs.h"

#include <QDialogButtonBox>
#include <QFileDialog>
#include <QFormLayout>
#include <QHBoxLayout>
#include <QHeaderView>
#include <QLabel>
#include <QLineEdit>
#include <QListWidget>
#include <QPointer>
#include <QPushButton>
#include <QTableWidget>
#include <QThreadPool>
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

namespace {

// "running", "queued (2nd)", "paused", ...
QString state_text(const nlohmann::json& job) {
  QString state = QString::fromStdString(job.value("state", std::string()));
  const int64_t position = job.value("position", int64_t{0});
  if (state == "queued" && position > 0) state += QString(" (%1 in line)").arg(position);
  return state;
}

QString progress_text(const nlohmann::json& job) {
  const nlohmann::json& p = job.contains("progress") ? job["progress"] : nlohmann::json();
  if (!p.is_object()) return {};
  QString text = QString::fromStdString(p.value("stage", std::string()));
  const int64_t done = p.value("done", int64_t{0}), total = p.value("total", int64_t{0});
  if (total > 0) text += QString(" %1/%2").arg(done).arg(total);
  return text;
}

// Not ended: queued, running or paused.
bool active(const nlohmann::json& job) {
  const std::string state = job.value("state", std::string());
  return state == "queued" || state == "running" || state == "paused";
}

bool followable(const nlohmann::json& job) {
  return job.value("task", std::string()) == "learn" && job.contains("request") && job["request"].is_object() &&
         active(job);
}

}  // namespace

EngineJobsDialog::EngineJobsDialog(std::shared_ptr<const latmix::serve::RemoteEngine> engine, QWidget* parent)
    : QDialog(parent), engine_(std::move(engine)) {
  setWindowTitle("Engine jobs");
  auto* layout = new QVBoxLayout(this);
  auto* intro = new QLabel(
      "The jobs of the engine at " + QString::fromStdString(engine_->url()) +
          ", whoever submitted them (this studio, another one, <code>latmix --engine URL ...</code>). A learning "
          "run that is queued or runs can be followed in the Learn tab: its curve from the first step, then live.",
      this);
  intro->setWordWrap(true);
  layout->addWidget(intro);
  table_ = new QTableWidget(0, 5, this);
  table_->setObjectName("engine-jobs");
  table_->setHorizontalHeaderLabels({"job", "task", "state", "progress", "model"});
  table_->setSelectionBehavior(QAbstractItemView::SelectRows);
  table_->setSelectionMode(QAbstractItemView::SingleSelection);
  table_->setEditTriggers(QAbstractItemView::NoEditTriggers);
  table_->horizontalHeader()->setStretchLastSection(true);
  table_->verticalHeader()->hide();
  layout->addWidget(table_);
  status_ = new QLabel(this);
  status_->setWordWrap(true);
  layout->addWidget(status_);
  auto* buttons = new QHBoxLayout();
  follow_ = new QPushButton("Follow in Learn tab", this);
  follow_->setObjectName("follow-job");
  follow_->setToolTip("The chosen learning run's curve in the Learn tab (its model must be open on the engine)");
  cancel_ = new QPushButton("Cancel job", this);
  cancel_->setObjectName("cancel-job");
  auto* again = new QPushButton("Refresh", this);
  auto* close = new QPushButton("Close", this);
  buttons->addWidget(follow_);
  buttons->addWidget(cancel_);
  buttons->addStretch();
  buttons->addWidget(again);
  buttons->addWidget(close);
  layout->addLayout(buttons);
  follow_->setEnabled(false);
  cancel_->setEnabled(false);
  connect(table_, &QTableWidget::itemSelectionChanged, this, &EngineJobsDialog::selectionChanged);
  connect(table_, &QTableWidget::cellDoubleClicked, this, [this] {
    if (follow_->isEnabled()) follow_->click();
  });
  connect(follow_, &QPushButton::clicked, this, [this] {
    const int row = table_->currentRow();
    if (row < 0 || row >= static_cast<int>(jobs_.size()) || !followable(jobs_[static_cast<size_t>(row)])) return;
    const nlohmann::json& job = jobs_[static_cast<size_t>(row)];
    chosen_id_ = QString::fromStdString(job.value("id", std::string()));
    chosen_request_ = job["request"];
    accept();
  });
  connect(cancel_, &QPushButton::clicked, this, &EngineJobsDialog::cancelChosen);
  connect(again, &QPushButton::clicked, this, &EngineJobsDialog::refresh);
  connect(close, &QPushButton::clicked, this, &QDialog::reject);
  resize(720, 360);
}

void EngineJobsDialog::refresh() {
  status_->setText("listing the engine's jobs...");
  QPointer<EngineJobsDialog> self(this);
  auto engine = engine_;
  QThreadPool::globalInstance()->start([self, engine] {
    try {
      const nlohmann::json answer = engine->jobs();
      EngineHost::post(self, [self, answer] { self->fill(answer.value("jobs", nlohmann::json::array())); });
    } catch (const std::exception& e) {
      EngineHost::post(self, [self, message = QString::fromUtf8(e.what())] {
        self->status_->setText(message);
        Q_EMIT self->listFailed(message);
      });
    }
  });
}

void EngineJobsDialog::fill(const nlohmann::json& jobs) {
  const QString selected = table_->currentRow() >= 0 && table_->item(table_->currentRow(), 0) != nullptr
                               ? table_->item(table_->currentRow(), 0)->text()
                               : QString();
  jobs_ = jobs.is_array() ? jobs : nlohmann::json::array();
  table_->setRowCount(static_cast<int>(jobs_.size()));
  for (size_t i = 0; i < jobs_.size(); ++i) {
    const nlohmann::json& job = jobs_[i];
    const nlohmann::json& request = job.contains("request") && job["request"].is_object() ? job["request"] : nlohmann::json();
    const QString cells[] = {QString::fromStdString(job.value("id", std::string())),
                             QString::fromStdString(job.value("task", std::string())), state_text(job),
                             progress_text(job),
                             QString::fromStdString(request.is_object() ? request.value("model", std::string()) : "")};
    for (int c = 0; c < 5; ++c) table_->setItem(static_cast<int>(i), c, new QTableWidgetItem(cells[c]));
  }
  table_->resizeColumnsToContents();
  status_->setText(jobs_.empty() ? QString("No jobs on this engine.") : QString());
  if (!selected.isEmpty()) select(selected);
  selectionChanged();
  Q_EMIT listed(static_cast<int>(jobs_.size()));
}

QStringList EngineJobsDialog::rows() const {
  QStringList out;
  for (int r = 0; r < table_->rowCount(); ++r) {
    out << table_->item(r, 0)->text() + " " + table_->item(r, 1)->text() + " " + table_->item(r, 2)->text();
  }
  return out;
}

bool EngineJobsDialog::select(const QString& id) {
  for (int r = 0; r < table_->rowCount(); ++r) {
    if (table_->item(r, 0)->text() == id) {
      table_->selectRow(r);
      table_->setCurrentCell(r, 0);
      return true;
    }
  }
  return false;
}

void EngineJobsDialog::selectionChanged() {
  const int row = table_->currentRow();
  const bool any = row >= 0 && row < static_cast<int>(jobs_.size());
  const nlohmann::json job = any ? jobs_[static_cast<size_t>(row)] : nlohmann::json::object();
  follow_->setEnabled(any && followable(job));
  cancel_->setEnabled(any && active(job));
}

void EngineJobsDialog::cancelChosen() {
  const int row = table_->currentRow();
  if (row < 0 || row >= static_cast<int>(jobs_.size())) return;
  const std::string id = jobs_[static_cast<size_t>(row)].value("id", std::string());
  QPointer<EngineJobsDialog> self(this);
  auto engine = engine_;
  status_->setText("cancelling job " + QString::fromStdString(id) + "...");
  QThreadPool::globalInstance()->start([self, engine, id] {
    QString message;
    try {
      engine->cancel(id);
    } catch (const std::exception& e) {
      message = QString::fromUtf8(e.what());
    }
    EngineHost::post(self, [self, message] {
      if (!message.isEmpty()) self->status_->setText(message);
      else self->refresh();
    });
  });
}

}  // namespace latmix::studio
