// The Compare tab's "quantization specs" page (compare_panel.h): `latmix eval --quant` per spec.
#include "compare_specs_page.h"

#include <QCheckBox>
#include <QComboBox>
#include <QFileDialog>
#include <QFileInfo>
#include <QGridLayout>
#include <QHBoxLayout>
#include <QHeaderView>
#include <QColor>
#include <QLabel>
#include <QLineEdit>
#include <QMessageBox>
#include <QPlainTextEdit>
#include <QPointer>
#include <QProgressBar>
#include <QPushButton>
#include <QSettings>
#include <QSpinBox>
#include <QSplitter>
#include <QStackedWidget>
#include <QTableWidget>
#include <QTextDocument>
#include <QVBoxLayout>

#include <nlohmann/json.hpp>

#include <cmath>
#include <iterator>
#include <limits>
#include <utility>

#include "compare_common.h"
#include "engine_host.h"
#include "engine_link.h"
#include "latmix/api/calibration.h"
#include "latmix/api/evaluate.h"
#include "latmix/api/learn.h"
#include "latmix/calib_data.h"
#include "latmix/compare.h"
#include "latmix/error.h"
#include "latmix/files.h"
#include "latmix/memory.h"
#include "latmix/model.h"
#include "latmix/quant.h"
#include "latmix/recovery.h"
#include "latmix/serve/client.h"
#include "latmix/tasks.h"
#include "learn_knobs.h"
#include "main_window.h"
#include "model_session.h"
#include "settings_dialog.h"

namespace latmix::studio {

using namespace compare_detail;

CompareSpecsPage::CompareSpecsPage(EngineHost* host, ModelSession* session, EngineLink* link, CompareEvaluation eval,
                                   QWidget* parent)
    : QWidget(parent), host_(host), session_(session), link_(link), eval_(eval) {
  QWidget* page = this;
  auto* layout = new QVBoxLayout(page);
  layout->setContentsMargins(0, 0, 0, 0);
  auto* row = new QHBoxLayout();
  run_ = new QPushButton("Run comparison", page);
  save_ = new QPushButton("Save report...", page);
  save_->setEnabled(false);
  row->addWidget(new QLabel("Quantization specs (one per line), compared with the full-precision model:", page));
  row->addStretch(1);
  row->addWidget(run_);
  row->addWidget(save_);
  layout->addLayout(row);
  specs_ = new QPlainTextEdit(
      "w=mxfp4,a=none,weights=rtn\nw=mxfp4,a=none,weights=gptq\nw=mxfp4,a=mxfp4,weights=rtn\n"
      "w=mxfp4,a=mxfp4,weights=gptq",
      page);
  specs_->setMaximumHeight(90);
  specs_->setToolTip(
      "One quantization spec per line (latmix eval --quant grammar); FP is always the first column. "
      "GPTQ calibrates on the text below (default: the bundled sample).");
  layout->addWidget(specs_);
  // GPTQ's calibration, as `latmix eval --calib FILE --calib-samples N --calib-seqlen N`; each control
  // carries its option's name (the drift test fills the page as a person would).
  const api::CalibrationSize gptq = api::gptq_calibration_defaults(false, 0);
  auto* calib_row = new QHBoxLayout();
  calib_ = new QLineEdit(page);
  calib_->setObjectName("calib");
  calib_->setPlaceholderText("the bundled sample");
  calib_->setToolTip("latmix eval --calib FILE: the text GPTQ calibrates on (weights=gptq lines)");
  calib_samples_ = new QSpinBox(page);
  calib_samples_->setObjectName("calib-samples");
  calib_samples_->setRange(0, 1 << 20);
  calib_samples_->setSpecialValueText(QString("default (%1 on the CPU, 128 on CUDA)").arg(gptq.samples));
  calib_samples_->setToolTip("latmix eval --calib-samples N: GPTQ's calibration sequences");
  calib_seqlen_ = new QSpinBox(page);
  calib_seqlen_->setObjectName("calib-seqlen");
  calib_seqlen_->setRange(0, 1 << 20);
  calib_seqlen_->setSpecialValueText(QString("default (%1 on the CPU, 2048 on CUDA)").arg(gptq.seqlen));
  calib_seqlen_->setToolTip("latmix eval --calib-seqlen N: tokens per calibration sequence");
  calib_row->addWidget(new QLabel("GPTQ calibration:", page));
  calib_row->addWidget(calib_, 2);
  calib_row->addWidget(new QLabel("sequences", page));
  calib_row->addWidget(calib_samples_, 1);
  calib_row->addWidget(new QLabel("tokens each", page));
  calib_row->addWidget(calib_seqlen_, 1);
  layout->addLayout(calib_row);
  table_ = table(page);
  layout->addWidget(table_, 1);
  specs_note_ = new QLabel(page);
  specs_note_->setWordWrap(true);
  layout->addWidget(specs_note_);
  connect(run_, &QPushButton::clicked, this, &CompareSpecsPage::run);
  connect(save_, &QPushButton::clicked, this, &CompareSpecsPage::save);
  auto ended = [this](quint64 id, const QString& message) {
    if (id != specs_job_ || id == 0) return;
    specs_job_ = 0;
    run_->setEnabled(true);
    if (!message.isEmpty()) showFailure(message);
  };
  connect(host_, &EngineHost::jobCancelled, this, [ended](quint64 id, const QString&) { ended(id, {}); });
  connect(host_, &EngineHost::jobFailed, this,
          [ended](quint64 id, const QString&, const QString& message) { ended(id, message); });
}

api::EvaluateRequest CompareSpecsPage::specsRequest() const {
  api::EvaluateRequest r;
  r.model = session_->summary().path.toStdString();
  r.device = StudioSettings::load().device.toStdString();
  r.tasks = eval_.tasks->text().toStdString();
  r.limit = eval_.limit->value();
  r.seqlen = eval_.seqlen->value();
  if (studio_data_dir().toStdString() != default_eval_data_dir()) r.data_dir = studio_data_dir().toStdString();
  for (const QString& line : specs_->toPlainText().split('\n', Qt::SkipEmptyParts)) {
    if (!line.trimmed().isEmpty()) r.quant.push_back(line.trimmed().toStdString());
  }
  r.calib = calib_->text().trimmed().toStdString();
  if (calib_samples_->value() > 0) r.calib_samples = calib_samples_->value();  // 0: "default"
  if (calib_seqlen_->value() > 0) r.calib_seqlen = calib_seqlen_->value();
  return r;
}

namespace {

// The columns of an evaluation's result, FP first.
std::vector<CompareColumn> columns_of(const api::EvaluateResult& result) {
  std::vector<CompareColumn> columns = {{"FP", result.fp}};
  for (const api::EvaluatedSpec& q : result.quantized) columns.push_back({QString::fromStdString(q.spec), q.results});
  return columns;
}

}  // namespace

quint64 CompareSpecsPage::run() {
  auto model = session_->model();
  auto tokenizer = session_->tokenizer();
  if ((!model || !tokenizer) && !session_->remote()) return 0;
  const api::EvaluateRequest request = specsRequest();
  settings_text_ = QString("model %1; tasks %2; limit %3; seqlen %4; data %5")
                       .arg(session_->summary().path, eval_.tasks->text())
                       .arg(request.limit)
                       .arg(request.seqlen)
                       .arg(session_->remote()
                                ? "the engine's default (on " + QString::fromStdString(session_->remote()->url()) + ")"
                                : studio_data_dir());
  run_->setEnabled(false);
  if (session_->remote()) return specs_job_ = runOnEngine(request);
  const std::string sample = bundled_sample().toStdString();
  QPointer<CompareSpecsPage> self(this);  // the job may outlive the panel (a window closed meanwhile)
  return specs_job_ = host_->submit("compare", [self, model, tokenizer, request, sample](const JobControl& job) {
    api::EvaluateControl control;
    control.job = job;
    control.bundled_sample = sample;  // the GPTQ calibration's default text, as `latmix eval`'s
    const std::vector<CompareColumn> columns = columns_of(api::run_evaluate(request, *model, *tokenizer, control));
    EngineHost::post(self, [self, columns, model] {
      if (model == self->session_->model()) self->showColumns(columns);  // else: of the model open before
    });
  });
}

// The task "evaluate" on the engine the model is open on: its texts are the server's (this computer's
// bundled sample named as the server's own), its data folder and GPTQ text the server's defaults.
quint64 CompareSpecsPage::runOnEngine(api::EvaluateRequest request) {
  auto engine = session_->remote();
  const QString path = session_->summary().path;
  request.tasks = link_->engineTexts(request.tasks);
  if (!request.calib.empty()) request.calib = link_->engineText(request.calib);
  request.data_dir.clear();
  EngineRunHooks hooks;
  hooks.gate = link_->lossGate();
  QPointer<CompareSpecsPage> self(this);
  return host_->submit("compare", [self, engine, request, hooks, path](const JobControl& job) {
    const nlohmann::json result = run_on_engine(*engine, "evaluate", api::to_json(request), job, hooks);
    const std::vector<CompareColumn> columns = columns_of(api::evaluate_result_from_json(result));
    EngineHost::post(self, [self, columns, engine, path] {
      // else: of the model open before
      if (engine == self->session_->remote() && path == self->session_->summary().path) self->showColumns(columns);
    });
  });
}

QString CompareSpecsPage::specsNote() const { return specs_note_->text(); }

QString CompareSpecsPage::tableText() const {
  QStringList cells;
  for (int r = 0; r < table_->rowCount(); ++r) {
    for (int c = 0; c < table_->columnCount(); ++c) {
      if (const QTableWidgetItem* item = table_->item(r, c)) cells << item->text();
    }
  }
  return cells.join('\n');
}

void CompareSpecsPage::showColumns(const std::vector<CompareColumn>& columns) {
  columns_ = columns;
  run_->setEnabled(true);
  save_->setEnabled(true);
  table_->clear();
  table_->setColumnCount(static_cast<int>(columns.size()) + 1);
  QStringList headers = {"task: metric"};
  for (const auto& c : columns) headers << c.spec;
  table_->setHorizontalHeaderLabels(headers);
  const auto& fp = columns.front().results;
  table_->setRowCount(static_cast<int>(fp.size()));
  int64_t fewest = std::numeric_limits<int64_t>::max();
  for (int r = 0; r < static_cast<int>(fp.size()); ++r) {
    const TaskResult& base = fp[static_cast<size_t>(r)];
    const QString metric = headline(base);
    if (metric != "ppl") fewest = std::min(fewest, base.items);
    auto* name = new QTableWidgetItem(QString::fromStdString(base.task) + ": " + metric_name(metric));
    name->setToolTip(metric_tip(metric) + QString("\n%1 %2").arg(base.items).arg(metric == "ppl" ? "windows" : "items"));
    table_->setItem(r, 0, name);
    for (size_t c = 0; c < columns.size(); ++c) {
      const TaskResult& res = columns[c].results[static_cast<size_t>(r)];
      table_->setItem(r, static_cast<int>(c) + 1, new QTableWidgetItem(cell(res, metric, c == 0 ? nullptr : &base)));
    }
  }
  table_->setToolTip(
      "± one standard error. In brackets: recovery, quantized / FP for accuracies and FP / quantized for perplexity, "
      "± its standard error.");
  QString note = "Accuracy is lm-eval's acc in both Compare modes; ± is one standard error.";
  if (fewest != std::numeric_limits<int64_t>::max() && fewest < kSmallSample) {
    note += QString(" <b style='color:#b9770e'>Small sample</b>: %1 items per task; a recovery above 100 % or "
                    "differences within two standard errors are noise, not an improvement. Raise the limit.")
                .arg(fewest);
  }
  specs_note_->setText(note);
  Q_EMIT finished();
}

QString CompareSpecsPage::markdown() const {
  QString md = "# LATMiX Studio comparison\n\n" + settings_text_ + "\n\n| task / metric |";
  for (const auto& c : columns_) md += " " + c.spec + " |";
  md += "\n|---|" + QString("---|").repeated(static_cast<int>(columns_.size())) + "\n";
  for (int r = 0; r < table_->rowCount(); ++r) {
    md += "|";
    for (int c = 0; c < table_->columnCount(); ++c) md += " " + table_->item(r, c)->text() + " |";
    md += "\n";
  }
  QTextDocument note;
  note.setHtml(specs_note_->text());
  if (!note.toPlainText().isEmpty()) md += "\n" + note.toPlainText() + "\n";
  return md;
}

void CompareSpecsPage::save() {
  const QString path = QFileDialog::getSaveFileName(this, "Save the comparison", last_folder("report") + "/comparison.md",
                                                    "Markdown (*.md)");
  if (path.isEmpty()) return;
  remember_folder("report", path);
  try {
    write_file_atomic(path.toStdString(), markdown().toStdString());
  } catch (const Error& e) {
    QMessageBox::warning(this, "Save the comparison", QString::fromStdString(e.what()));
  }
}

// A failed run says why in the table and leaves no earlier result that looks like its own
// (issue 17, Major 4).
void CompareSpecsPage::showFailure(const QString& message) {
  columns_.clear();
  specs_note_->clear();
  save_->setEnabled(false);
  table_->clear();
  table_->setColumnCount(1);
  table_->setRowCount(1);
  table_->setHorizontalHeaderLabels({"comparison failed"});
  auto* item = new QTableWidgetItem("Failed: " + message);
  item->setForeground(QColor(0xc0, 0x39, 0x2b));
  item->setToolTip(message);
  table_->setItem(0, 0, item);
  Q_EMIT failed(message);
}

void CompareSpecsPage::setSpecs(const QString& specs) { specs_->setPlainText(specs); }

void CompareSpecsPage::modelChanged() {
  // Forgotten at once: its end (cancelled) must not write over this page's new state.
  if (specs_job_ != 0) host_->cancel(std::exchange(specs_job_, 0));
  run_->setEnabled(true);
  columns_.clear();
  table_->clear();
  table_->setRowCount(0);
  table_->setColumnCount(0);
  specs_note_->clear();
  save_->setEnabled(false);
}

}  // namespace latmix::studio
