#include "compare_panel.h"

#include <QFile>
#include <QFileDialog>
#include <QHBoxLayout>
#include <QHeaderView>
#include <QLabel>
#include <QLineEdit>
#include <QPlainTextEdit>
#include <QPushButton>
#include <QSaveFile>
#include <QSpinBox>
#include <QTableWidget>
#include <QVBoxLayout>

#include "engine_host.h"
#include "latmix/calib_data.h"
#include "latmix/quant.h"
#include "latmix/tasks.h"
#include "main_window.h"
#include "model_session.h"
#include "settings_dialog.h"

namespace latmix::studio {

namespace {

QString calibration_path() { return resources_dir() + "/calibration/pride_and_prejudice_ch1-6.txt"; }

/// "acc" for accuracy tasks, "ppl" for perplexity tasks: the headline metric of a result.
QString headline(const TaskResult& r) {
  for (const char* m : {"acc_norm", "acc", "ppl"}) {
    if (r.metrics.count(m) != 0U) return m;
  }
  return r.metrics.empty() ? QString() : QString::fromStdString(r.metrics.begin()->first);
}

QString cell(const TaskResult& r, const QString& metric, const TaskResult* fp) {
  const double v = r.metrics.at(metric.toStdString());
  QString text = metric == "ppl" ? QString::number(v, 'f', 2) : QString::number(100 * v, 'f', 1);
  if (fp != nullptr && fp->metrics.count(metric.toStdString()) != 0U) {
    const double base = fp->metrics.at(metric.toStdString());
    // recovery: for accuracies quantized / FP; for perplexity FP / quantized (lower is better)
    const double rec = metric == "ppl" ? base / v : (base > 0 ? v / base : 0);
    text += QString("  (%1%)").arg(100 * rec, 0, 'f', 1);
  }
  return text;
}

}  // namespace

ComparePanel::ComparePanel(EngineHost* host, ModelSession* session, QWidget* parent)
    : QWidget(parent), host_(host), session_(session) {
  auto* layout = new QVBoxLayout(this);
  auto* row = new QHBoxLayout();
  tasks_ = new QLineEdit("text:" + calibration_path() + ",alice,arc_easy,piqa,winogrande", this);
  tasks_->setToolTip("Comma-separated tasks (latmix eval --tasks): wikitext2, ptb, frankenstein, alice, text:PATH, "
                     "arc_easy, arc_challenge, boolq, hellaswag, openbookqa, piqa, winogrande, lambada, copa, all");
  limit_ = new QSpinBox(this);
  limit_->setRange(0, 100000);
  limit_->setValue(50);
  limit_->setSpecialValueText("all");
  seqlen_ = new QSpinBox(this);
  seqlen_->setRange(16, 8192);
  seqlen_->setValue(256);
  run_ = new QPushButton("Run comparison", this);
  save_ = new QPushButton("Save report...", this);
  save_->setEnabled(false);
  row->addWidget(new QLabel("tasks", this));
  row->addWidget(tasks_, 1);
  row->addWidget(new QLabel("limit", this));
  row->addWidget(limit_);
  row->addWidget(new QLabel("seqlen", this));
  row->addWidget(seqlen_);
  row->addWidget(run_);
  row->addWidget(save_);
  layout->addLayout(row);
  specs_ = new QPlainTextEdit("w=mxfp4,a=none,weights=rtn\nw=mxfp4,a=none,weights=gptq\nw=mxfp4,a=mxfp4,weights=rtn\n"
                              "w=mxfp4,a=mxfp4,weights=gptq",
                              this);
  specs_->setMaximumHeight(90);
  specs_->setToolTip("One quantization spec per line (latmix eval --quant grammar); FP is always the first column. "
                     "GPTQ calibrates on the bundled sample.");
  layout->addWidget(new QLabel("Quantization specs (one per line), compared with the full-precision model:", this));
  layout->addWidget(specs_);
  table_ = new QTableWidget(this);
  table_->setEditTriggers(QAbstractItemView::NoEditTriggers);
  table_->horizontalHeader()->setSectionResizeMode(QHeaderView::ResizeToContents);
  layout->addWidget(table_, 1);
  connect(run_, &QPushButton::clicked, this, &ComparePanel::run);
  connect(save_, &QPushButton::clicked, this, &ComparePanel::save);
  auto enable = [this](quint64, const QString& tag) {
    if (tag == "compare") run_->setEnabled(true);
  };
  connect(host_, &EngineHost::jobCancelled, this, enable);
  connect(host_, &EngineHost::jobFailed, this, enable);
}

void ComparePanel::configure(const QString& tasks, const QString& specs, int limit) {
  tasks_->setText(tasks);
  specs_->setPlainText(specs);
  limit_->setValue(limit);
}

quint64 ComparePanel::run() {
  auto model = session_->model();
  auto tokenizer = session_->tokenizer();
  if (!model || !tokenizer) return 0;
  std::vector<std::string> specs;
  for (const QString& line : specs_->toPlainText().split('\n', Qt::SkipEmptyParts)) {
    specs.push_back(line.trimmed().toStdString());
  }
  EvalOptions opt;
  opt.limit = limit_->value();
  opt.seqlen = seqlen_->value();
  opt.data_dir = studio_data_dir().toStdString();
  const std::string tasks = tasks_->text().toStdString();
  const std::string calib = calibration_path().toStdString();
  settings_text_ = QString("model %1; tasks %2; limit %3; seqlen %4; data %5")
                       .arg(session_->summary().path, tasks_->text())
                       .arg(opt.limit).arg(opt.seqlen).arg(QString::fromStdString(opt.data_dir));
  run_->setEnabled(false);
  return host_->submit("compare", [this, model, tokenizer, specs, opt, tasks, calib](const JobControl& job) {
    const std::vector<std::string> names = parse_task_list(tasks);
    for (const auto& s : specs) parse_quant_spec(s);  // fail early on a typo
    std::vector<CompareColumn> columns;
    columns.push_back({"FP", run_tasks(*model, *tokenizer, names, opt, job)});
    CalibrationOptions copt;
    copt.samples = 32;
    copt.seqlen = 128;
    const CalibrationSet calib_set = load_calibration_text(calib, *tokenizer, copt);
    for (const auto& s : specs) {
      QuantizedModel q = quantize_model(*model, parse_quant_spec(s), &calib_set, job);
      columns.push_back({QString::fromStdString(s), run_tasks(q.model, *tokenizer, names, opt, job)});
    }
    EngineHost::post(this, [this, columns] { showColumns(columns); });
  });
}

void ComparePanel::showColumns(const std::vector<CompareColumn>& columns) {
  columns_ = columns;
  run_->setEnabled(true);
  save_->setEnabled(true);
  table_->clear();
  table_->setColumnCount(static_cast<int>(columns.size()) + 1);
  QStringList headers = {"task / metric"};
  for (const auto& c : columns) headers << c.spec;
  table_->setHorizontalHeaderLabels(headers);
  const auto& fp = columns.front().results;
  table_->setRowCount(static_cast<int>(fp.size()));
  for (int r = 0; r < static_cast<int>(fp.size()); ++r) {
    const QString metric = headline(fp[static_cast<size_t>(r)]);
    table_->setItem(r, 0, new QTableWidgetItem(QString::fromStdString(fp[static_cast<size_t>(r)].task) + " / " +
                                               metric + (metric == "ppl" ? "" : " %")));
    for (size_t c = 0; c < columns.size(); ++c) {
      const TaskResult& res = columns[c].results[static_cast<size_t>(r)];
      table_->setItem(r, static_cast<int>(c) + 1,
                      new QTableWidgetItem(cell(res, metric, c == 0 ? nullptr : &fp[static_cast<size_t>(r)])));
    }
  }
  table_->setToolTip("In brackets: recovery, quantized / FP for accuracies and FP / quantized for perplexity.");
  Q_EMIT finished();
}

QString ComparePanel::markdown() const {
  QString md = "# LATMiX Studio comparison\n\n" + settings_text_ + "\n\n| task / metric |";
  for (const auto& c : columns_) md += " " + c.spec + " |";
  md += "\n|---|" + QString("---|").repeated(static_cast<int>(columns_.size())) + "\n";
  for (int r = 0; r < table_->rowCount(); ++r) {
    md += "|";
    for (int c = 0; c < table_->columnCount(); ++c) md += " " + table_->item(r, c)->text() + " |";
    md += "\n";
  }
  return md;
}

void ComparePanel::save() {
  const QString path = QFileDialog::getSaveFileName(this, "Save the comparison", "comparison.md", "Markdown (*.md)");
  if (path.isEmpty()) return;
  QSaveFile f(path);  // atomic: temp file + rename
  if (f.open(QIODevice::WriteOnly | QIODevice::Text)) {
    f.write(markdown().toUtf8());
    f.commit();
  }
}

}  // namespace latmix::studio
