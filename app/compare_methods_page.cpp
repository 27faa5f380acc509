// The Compare tab's "methods" page (compare_panel.h): `latmix compare` through api::run_compare.
#include "compare_methods_page.h"

#include <QCheckBox>
#include <QColor>
#include <QComboBox>
#include <QDateTime>
#include <QFileDialog>
#include <QFileInfo>
#include <QGridLayout>
#include <QHBoxLayout>
#include <QHeaderView>
#include <QLabel>
#include <QLineEdit>
#include <QMessageBox>
#include <QPlainTextEdit>
#include <QPointer>
#include <QProgressBar>
#include <QPushButton>
#include <QRegularExpression>
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
#include "latmix/tasks.h"
#include "learn_knobs.h"
#include "main_window.h"
#include "model_session.h"
#include "settings_dialog.h"

namespace latmix::studio {

using namespace compare_detail;

CompareMethodsPage::CompareMethodsPage(EngineHost* host, ModelSession* session, EngineLink* link,
                                       CompareEvaluation eval, QWidget* parent)
    : QWidget(parent), host_(host), session_(session), link_(link), eval_(eval) {
  QWidget* page = this;
  auto* layout = new QVBoxLayout(page);
  layout->setContentsMargins(0, 0, 0, 0);
  auto* methods = new QHBoxLayout();
  methods->addWidget(new QLabel("methods", page));
  for (const auto& p : method_presets()) {
    auto* b = new QCheckBox(QString::fromStdString(p.name), page);
    b->setToolTip(QString::fromStdString(p.summary + "\n" + p.transforms));
    method_boxes_.push_back(b);
    methods->addWidget(b);
    connect(b, &QCheckBox::toggled, this, [this] {
      m_cli_->setText(methodsCliCommand());
      QSettings().setValue("compare/methods", checkedMethods());
    });
  }
  methods->addStretch(1);
  layout->addLayout(methods);

  auto* opts = new QGridLayout();
  m_quant_ = new QComboBox(page);
  m_quant_->setEditable(true);
  m_quant_->addItems({"mxfp4", "mxint4", "mxfp6", "mxfp8", "w=mxfp4,a=none"});
  m_quant_->setToolTip("Formats for every method (--quant); weights= in the spec overrides every method's quantizer");
  m_calib_ = new QComboBox(page);
  m_calib_->setEditable(true);
  m_calib_->setSizeAdjustPolicy(
      QComboBox::AdjustToMinimumContentsLengthWithIcon);  // long paths must not widen the page
  m_calib_->setMinimumContentsLength(16);
  if (QFileInfo::exists(studio_data_dir() + "/corpus/gutenberg")) m_calib_->addItem("gutenberg");
  m_calib_->addItem(bundled_sample());
  m_calib_->setToolTip("Calibration text (--calib): gutenberg (the training books) or comma-separated files");
  const api::CalibrationSize size = api::learn_calibration_defaults(StudioSettings::load().device == "cuda", 0);
  m_samples_ = new QSpinBox(page);
  m_samples_->setRange(1, 100000);
  m_samples_->setValue(static_cast<int>(size.samples));
  m_seqlen_ = new QSpinBox(page);
  m_seqlen_->setRange(2, 131072);
  m_seqlen_->setValue(static_cast<int>(size.seqlen));
  m_steps_ = new QSpinBox(page);
  m_steps_->setRange(0, 1000000);
  m_steps_->setSpecialValueText("each method's default");
  m_batch_ = count_field(page, 1);
  m_batch_->setPlaceholderText("each method's default");
  m_lr_ = number_field(page);
  m_lr_->setPlaceholderText("each method's default");
  m_seed_ = new QSpinBox(page);
  m_seed_->setRange(0, 1 << 30);
  const std::pair<const char*, QWidget*> items[] = {{"format", m_quant_},    {"calibration", m_calib_},
                                                    {"samples", m_samples_}, {"seq. length", m_seqlen_},
                                                    {"steps", m_steps_},     {"batch", m_batch_},
                                                    {"learning rate", m_lr_}, {"seed", m_seed_}};
  const std::pair<QWidget*, const char*> options[] = {{m_quant_, "quant"},   {m_calib_, "calib"}, {m_samples_, "samples"},
                                                      {m_seqlen_, "seqlen"}, {m_steps_, "steps"}, {m_batch_, "batch"},
                                                      {m_lr_, "lr"},         {m_seed_, "seed"}};
  for (const auto& [w, name] : options) {
    w->setToolTip(cli_tip(name) + "\n(every learned method; `latmix compare` takes the same option)");
    w->setObjectName(name);  // the option's name: tests set the form as a person would
  }
  // Rows of three (issue 17, Major 7): one row of six needed more than 1024 px.
  for (int i = 0; i < static_cast<int>(std::size(items)); ++i) {
    opts->addWidget(new QLabel(items[i].first, page), i / 3, (i % 3) * 2);
    opts->addWidget(items[i].second, i / 3, (i % 3) * 2 + 1);
  }
  opts->setColumnStretch(3, 1);  // the calibration text's column takes the spare width
  layout->addLayout(opts);
  // Every other learning option of `latmix learn`, shared by the learned methods (issue 16).
  m_knobs_ = new LearnKnobs("each method's default", page);
  layout->addWidget(m_knobs_);
  connect(m_knobs_, &LearnKnobs::changed, this, [this] { m_cli_->setText(methodsCliCommand()); });
  for (QLineEdit* e : {m_batch_, m_lr_}) {
    connect(e, &QLineEdit::textChanged, this, [this] { m_cli_->setText(methodsCliCommand()); });
  }

  auto* actions = new QHBoxLayout();
  m_run_ = new QPushButton("Run methods", page);
  m_cancel_ = new QPushButton("Cancel", page);
  m_cancel_->setEnabled(false);
  m_save_ = new QPushButton("Save report...", page);
  m_save_->setEnabled(false);
  m_save_->setToolTip("Writes report.md, report.json and PNG plots into a folder (latmix compare --out DIR)");
  m_progress_ = new QProgressBar(page);
  m_progress_->setTextVisible(true);
  m_progress_->hide();
  for (QWidget* w : std::initializer_list<QWidget*>{m_run_, m_cancel_, m_save_}) actions->addWidget(w);
  actions->addWidget(m_progress_, 2);
  actions->addStretch(1);
  layout->addLayout(actions);
  m_cli_ = new QLineEdit(page);
  m_cli_->setReadOnly(true);
  layout->addWidget(m_cli_);
  m_status_ = new QLabel(
      "Choose methods and press Run methods. Each method: learn (or build) its transforms, fold, "
      "quantize the weights with its quantizer, evaluate.",
      page);
  m_status_->setWordWrap(true);
  layout->addWidget(m_status_);

  auto* split = new QSplitter(Qt::Vertical, page);
  m_table_ = table(split);
  m_sqnr_ = table(split);
  m_sqnr_->setToolTip(
      "Per decoder layer: SQNR (dB) of the activation quantization at the inputs of the quantized "
      "linears, on the transformed, weight-quantized model (higher is better)");
  split->addWidget(m_table_);
  split->addWidget(m_sqnr_);
  split->setStretchFactor(0, 3);
  split->setStretchFactor(1, 2);
  layout->addWidget(split, 1);

  connect(m_run_, &QPushButton::clicked, this, &CompareMethodsPage::runMethods);
  connect(m_cancel_, &QPushButton::clicked, this, &CompareMethodsPage::cancelMethods);
  connect(m_save_, &QPushButton::clicked, this, [this] {
    const QString dir =
        QFileDialog::getExistingDirectory(this, "Save the comparison report into a folder", last_folder("report"));
    if (dir.isEmpty()) return;
    remember_folder("report", dir);
    saveReport(dir);
  });
  for (QComboBox* c : {m_quant_, m_calib_}) {
    connect(c, &QComboBox::currentTextChanged, this, [this] { m_cli_->setText(methodsCliCommand()); });
  }
  connect(eval_.tasks, &QLineEdit::textChanged, this, [this] { m_cli_->setText(methodsCliCommand()); });
  for (QSpinBox* s : {m_samples_, m_seqlen_, m_steps_, m_seed_, eval_.limit, eval_.seqlen}) {
    connect(s, &QSpinBox::valueChanged, this, [this] { m_cli_->setText(methodsCliCommand()); });
  }
  auto ended = [this](quint64 id, const QString& message) {
    if (id == 0) return;
    if (id == report_job_) m_status_->setText("Save failed: " + message);
    if (id == methods_job_) methodsEnded(message.isEmpty() ? "Cancelled." : "Failed: " + message);
  };
  connect(host_, &EngineHost::jobCancelled, this, [ended](quint64 id, const QString&) { ended(id, {}); });
  connect(host_, &EngineHost::jobFailed, this,
          [ended](quint64 id, const QString&, const QString& message) { ended(id, message); });
  connect(host_, &EngineHost::jobProgress, this, [this](quint64 id, const QString& stage, qint64 done, qint64 total) {
    if (id != methods_job_) return;
    m_progress_->setRange(0, total > 0 ? static_cast<int>(total) : 0);
    m_progress_->setValue(static_cast<int>(done));
    m_progress_->setFormat(stage + " %v/%m");
  });
  const QStringList checked =
      QSettings().value("compare/methods", QStringList{"rtn", "gptq", "quarot", "mr-gptq", "latmix"}).toStringList();
  for (QCheckBox* box : method_boxes_) box->setChecked(checked.contains(box->text()));
  m_cli_->setText(methodsCliCommand());
}

QStringList CompareMethodsPage::checkedMethods() const {
  QStringList out;
  for (const QCheckBox* b : method_boxes_) {
    if (b->isChecked()) out << b->text();
  }
  return out;
}

api::CompareRequest CompareMethodsPage::methodsRequest() const {
  api::CompareRequest c;
  c.methods = checkedMethods().join(',').toStdString();
  c.tasks = eval_.tasks->text().toStdString();
  c.limit = eval_.limit->value();
  c.eval_seqlen = eval_.seqlen->value();
  LearnRequest& r = c.learning;
  r.model = session_->summary().path.toStdString();
  r.device = StudioSettings::load().device.toStdString();
  r.quant = m_quant_->currentText().trimmed().toStdString();
  r.calib = m_calib_->currentText().trimmed().toStdString();
  // The data folder (evaluation files, gutenberg) only when it is not the CLI's default.
  if (studio_data_dir().toStdString() != default_eval_data_dir()) r.data_dir = studio_data_dir().toStdString();
  const api::CalibrationSize size = api::learn_calibration_defaults(r.device == "cuda", 0);
  if (m_samples_->value() != size.samples) r.samples = m_samples_->value();
  if (m_seqlen_->value() != size.seqlen) r.seqlen = m_seqlen_->value();
  r.seed = static_cast<uint64_t>(m_seed_->value());
  if (m_steps_->value() > 0) r.steps = m_steps_->value();
  r.batch = count_of(m_batch_);
  r.lr = number_of(m_lr_);
  m_knobs_->read(r);
  return c;
}

QString CompareMethodsPage::methodsCliCommand() const {
  api::CompareRequest request = methodsRequest();
  if (!session_->hasModel()) request.learning.model = "MODEL";
  return shell_command(to_qstrings(api::compare_command_line(request)));
}

quint64 CompareMethodsPage::runMethods() {
  auto model = session_->model();
  auto tokenizer = session_->tokenizer();
  if (((!model || !tokenizer) && !session_->remote()) || checkedMethods().isEmpty() || methods_job_ != 0) return 0;
  const api::CompareRequest request = methodsRequest();
  m_cli_->setText(methodsCliCommand());
  m_run_->setEnabled(false);
  m_cancel_->setEnabled(true);
  m_save_->setEnabled(false);
  m_progress_->setRange(0, 0);
  m_progress_->show();
  m_status_->setText("Running: " + checkedMethods().join(", ") + " ...");
  if (session_->remote()) return methods_job_ = runOnEngine(request);
  QPointer<CompareMethodsPage> self(this);
  methods_job_ = host_->submit("compare-methods", [self, model, tokenizer, request](const JobControl& job) {
    LearnControl control;
    control.job = job;
    auto c = std::make_shared<Comparison>(api::run_compare(request, *model, *tokenizer, control).comparison);
    EngineHost::post(self, [self, c, model] {
      if (model == self->session_->model()) self->showComparison(c);  // else: of the model open before
    });
  });
  return methods_job_;
}

// The task "compare" on the engine the model is open on: the texts are the server's (this computer's
// bundled sample named as the server's own), the data folder the server's default, and the report is
// written there too, in "latmix-studio-compare-DATE" under the server's first root (the status names
// its files; Save report... writes one here as well).
quint64 CompareMethodsPage::runOnEngine(api::CompareRequest request) {
  auto engine = session_->remote();
  const QString path = session_->summary().path;
  request.tasks = link_->engineTexts(request.tasks);
  request.learning.calib = link_->engineTexts(request.learning.calib);
  request.learning.data_dir.clear();
  request.out =
      QString("latmix-studio-compare-%1").arg(QDateTime::currentDateTime().toString("yyyyMMdd-HHmmss")).toStdString();
  EngineRunHooks hooks;
  hooks.gate = link_->lossGate();
  QPointer<CompareMethodsPage> self(this);
  return host_->submit("compare-methods", [self, engine, request, hooks, path](const JobControl& job) {
    api::CompareResult r =
        api::compare_result_from_json(run_on_engine(*engine, "compare", api::to_json(request), job, hooks));
    auto c = std::make_shared<Comparison>(std::move(r.comparison));
    QStringList files;
    for (const auto& f : r.files) files << QString::fromStdString(f);
    EngineHost::post(self, [self, c, engine, path, files] {
      if (engine != self->session_->remote() || path != self->session_->summary().path) return;  // of the model before
      self->server_report_ = files;
      self->showComparison(c);
    });
  });
}

void CompareMethodsPage::cancelMethods() {
  if (methods_job_ != 0) host_->cancel(methods_job_);
}

void CompareMethodsPage::methodsEnded(const QString& message) {
  const bool cancelled = message == "Cancelled.";
  methods_job_ = 0;
  m_run_->setEnabled(true);
  m_cancel_->setEnabled(false);
  m_progress_->hide();
  m_save_->setEnabled(comparison_ != nullptr);
  m_status_->setText(message);
  if (cancelled) Q_EMIT methodsCancelled();
}

void CompareMethodsPage::showComparison(std::shared_ptr<const Comparison> result) {
  comparison_ = std::move(result);
  methodsEnded(QString("%1 methods on %2; total %3 s. Recovery: accuracy / FP accuracy (zero-shot mean), "
                       "or FP perplexity / perplexity without zero-shot tasks; gap closed: share of the "
                       "FP-to-RTN perplexity gap.")
                   .arg(comparison_->rows.size())
                   .arg(QString::fromStdString(comparison_->calibration))
                   .arg(comparison_->seconds, 0, 'f', 1) +
               (server_report_.isEmpty()
                    ? QString()
                    : "<br>The report is on the engine's server, in " +
                          QFileInfo(server_report_.front()).absolutePath().toHtmlEscaped() + ": " +
                          QStringList(server_report_).replaceInStrings(QRegularExpression("^.*/"), "").join(", ")));
  server_report_.clear();
  const Comparison& cmp = *comparison_;
  std::vector<const TaskResult*> ppl, zs;
  for (const auto& r : cmp.fp) (is_perplexity_task(r) ? ppl : zs).push_back(&r);
  const MethodRow* rtn = nullptr;
  for (const auto& row : cmp.rows) {
    if (row.method == "rtn") rtn = &row;
  }
  QStringList headers = {"method"};
  QStringList tips = {"the method (hover for its settings)"};
  for (const TaskResult* t : ppl) {
    headers << QString::fromStdString(t->task) + " perplexity";
    tips << metric_tip("ppl");
    if (rtn != nullptr) {
      headers << QString::fromStdString(t->task) + " gap closed vs RTN";
      tips << "the share of the FP-to-RTN perplexity gap the method closes (100 %: FP perplexity)";
    }
  }
  int64_t fewest = std::numeric_limits<int64_t>::max();
  for (const TaskResult* t : zs) {
    headers << QString::fromStdString(t->task) + " accuracy %";
    tips << metric_tip("acc") + QString(" (%1 items)").arg(t->items);
    fewest = std::min(fewest, t->items);
  }
  if (!zs.empty()) {
    headers << "zero-shot mean %";
    tips << "mean accuracy over the zero-shot tasks, ± its standard error";
  }
  headers << "recovery %"
          << "learn s"
          << "quantize s"
          << "eval s";
  tips << "zero-shot mean / FP zero-shot mean (or FP perplexity / perplexity without zero-shot tasks), ± one "
          "standard error"
       << "wall time of learning or building the transforms"
       << "wall time of folding and quantizing the weights"
       << "wall time of the evaluation";
  m_table_->clear();
  m_table_->setColumnCount(static_cast<int>(headers.size()));
  m_table_->setHorizontalHeaderLabels(headers);
  for (int c = 0; c < headers.size(); ++c) m_table_->horizontalHeaderItem(c)->setToolTip(tips[c]);
  m_table_->setRowCount(static_cast<int>(cmp.rows.size()) + 1);
  auto fill = [&](int r, const QString& name, const std::vector<TaskResult>& results, const MethodRow* row) {
    int c = 0;
    m_table_->setItem(r, c++, new QTableWidgetItem(name));
    for (const TaskResult* t : ppl) {
      const TaskResult* mine = find_task(results, t->task);
      const double v = mine != nullptr ? mine->metrics.at("ppl") : std::nan("");
      m_table_->setItem(r, c++, item(QString::number(v, 'f', 3), QString::fromStdString(t->convention)));
      if (rtn == nullptr) continue;
      const TaskResult* base = find_task(rtn->results, t->task);
      const double closed = row != nullptr && base != nullptr
                                ? gap_closed(t->metrics.at("ppl"), base->metrics.at("ppl"), v)
                                : std::nan("");
      m_table_->setItem(r, c++, item(std::isnan(closed) ? QString() : QString::number(closed, 'f', 1) + " %"));
    }
    for (const TaskResult* t : zs) {
      const TaskResult* mine = find_task(results, t->task);
      QString text = "n/a";
      if (mine != nullptr && mine->metrics.count("acc") != 0U) {
        text = QString::number(100 * mine->metrics.at("acc"), 'f', 1);
        if (auto se = mine->standard_errors.find("acc"); se != mine->standard_errors.end()) {
          text += QString(" ± %1").arg(100 * se->second, 0, 'f', 1);
        }
      }
      m_table_->setItem(r, c++, item(text, QString::fromStdString(t->convention)));
    }
    if (!zs.empty()) {
      const Estimate mean = zero_shot_mean(results);  // recovery.h
      QString text = QString::number(100 * mean.value, 'f', 1);
      if (std::isfinite(mean.se)) text += QString(" ± %1").arg(100 * mean.se, 0, 'f', 1);
      m_table_->setItem(r, c++, item(text));
    }
    // recovery.h: of the zero-shot mean when zero-shot tasks ran, else of the first text's
    // perplexity (the comparison report's figure). The FP row: 100 %, no spread against itself.
    const Estimate rec = headline_recovery(cmp.fp, results);
    QString rec_text = std::isnan(rec.value) ? QString() : QString::number(rec.value, 'f', 1);
    if (row != nullptr && std::isfinite(rec.se)) rec_text += QString(" ± %1").arg(rec.se, 0, 'f', 0);
    m_table_->setItem(r, c++, item(rec_text));
    for (double s :
         {row ? row->learn_seconds : 0.0, row ? row->quantize_seconds : 0.0, row ? row->eval_seconds : 0.0}) {
      m_table_->setItem(r, c++, item(row != nullptr ? QString::number(s, 'f', 1) : QString()));
    }
  };
  fill(0, "FP", cmp.fp, nullptr);
  for (size_t i = 0; i < cmp.rows.size(); ++i) {
    const MethodRow& row = cmp.rows[i];
    fill(static_cast<int>(i) + 1, QString::fromStdString(row.method), row.results, &row);
    m_table_->item(static_cast<int>(i) + 1, 0)->setToolTip(QString::fromStdString(row.settings.to_json().dump()));
  }

  if (!zs.empty() && fewest < kSmallSample) {
    m_status_->setText(m_status_->text() + QString(" <b style='color:#b9770e'>Small sample</b>: %1 items per zero-shot "
                                                   "task; accuracies differing by less than two standard errors "
                                                   "(the ± figures) are not told apart.")
                                               .arg(fewest));
  }
  size_t layers = 0;
  for (const auto& row : cmp.rows) layers = std::max(layers, row.layer_sqnr_db.size());
  double lo = INFINITY, hi = -INFINITY;
  for (const auto& row : cmp.rows) {
    for (double v : row.layer_sqnr_db) {
      if (std::isfinite(v)) lo = std::min(lo, v), hi = std::max(hi, v);
    }
  }
  m_sqnr_->clear();
  m_sqnr_->setRowCount(static_cast<int>(cmp.rows.size()));
  m_sqnr_->setColumnCount(static_cast<int>(layers) + 1);
  QStringList sh = {"activation SQNR dB"};
  for (size_t l = 0; l < layers; ++l) sh << QString("layer %1").arg(l);
  m_sqnr_->setHorizontalHeaderLabels(sh);
  for (size_t i = 0; i < cmp.rows.size(); ++i) {
    const MethodRow& row = cmp.rows[i];
    m_sqnr_->setItem(static_cast<int>(i), 0, new QTableWidgetItem(QString::fromStdString(row.method)));
    for (size_t l = 0; l < layers; ++l) {
      const bool has = l < row.layer_sqnr_db.size();
      const double v = has ? row.layer_sqnr_db[l] : std::nan("");
      auto* it = item(has ? QString::number(v, 'f', 2) : "n/a", has ? QString() : "no activation quantization");
      if (has && std::isfinite(v) && hi > lo) {  // red (worst) -> green (best) within the table
        const double t = (v - lo) / (hi - lo);
        it->setBackground(QColor::fromHsvF(0.33 * t, 0.35, 0.95));
        it->setForeground(Qt::black);
      }
      m_sqnr_->setItem(static_cast<int>(i), static_cast<int>(l) + 1, it);
    }
  }
  Q_EMIT methodsFinished();
}

quint64 CompareMethodsPage::saveReport(const QString& dir) {
  if (!comparison_) return 0;
  auto c = comparison_;
  QPointer<CompareMethodsPage> self(this);
  m_status_->setText("Writing the report into " + dir + " ...");
  return report_job_ = host_->submit("compare-report", [self, c, dir](const JobControl&) {
    QStringList files;
    for (const auto& f : write_comparison_report(*c, dir.toStdString())) files << QString::fromStdString(f);
    EngineHost::post(self, [self, files] {
      self->m_status_->setText("Written: " + files.join(", "));
      Q_EMIT self->reportSaved(files);
    });
  });
}

QString CompareMethodsPage::methodsTableText() const {
  QStringList cells;
  for (int r = 0; r < m_table_->rowCount(); ++r) {
    for (int c = 0; c < m_table_->columnCount(); ++c) {
      if (const QTableWidgetItem* item = m_table_->item(r, c)) cells << item->text();
    }
  }
  return cells.join('\n');
}

void CompareMethodsPage::configure(const QStringList& methods, const LearnRequest& learning) {
  for (QCheckBox* b : method_boxes_) b->setChecked(methods.contains(b->text()));
  m_quant_->setCurrentText(QString::fromStdString(learning.quant));
  m_calib_->setCurrentText(QString::fromStdString(learning.calib));
  const api::CalibrationSize size = api::learn_calibration_defaults(StudioSettings::load().device == "cuda", 0);
  m_samples_->setValue(static_cast<int>(learning.samples.value_or(size.samples)));
  m_seqlen_->setValue(static_cast<int>(learning.seqlen.value_or(size.seqlen)));
  m_steps_->setValue(learning.steps ? static_cast<int>(*learning.steps) : 0);
  set_count(m_batch_, learning.batch);
  set_number(m_lr_, learning.lr);
  m_seed_->setValue(static_cast<int>(learning.seed));
  m_knobs_->write(learning);
}

void CompareMethodsPage::modelChanged() {
  // Forgotten at once: its end (cancelled) must not write over this page's new state.
  if (methods_job_ != 0) host_->cancel(std::exchange(methods_job_, 0));
  m_run_->setEnabled(true);
  m_cancel_->setEnabled(false);
  m_progress_->hide();
  comparison_.reset();
  m_table_->clear();
  m_table_->setRowCount(0);
  m_table_->setColumnCount(0);
  m_sqnr_->clear();
  m_sqnr_->setRowCount(0);
  m_sqnr_->setColumnCount(0);
  m_save_->setEnabled(false);
  m_status_->setText("No comparison yet for this model: choose methods and press Run methods.");
  m_cli_->setText(methodsCliCommand());
}

}  // namespace latmix::studio
