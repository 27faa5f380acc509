#include "export_panel.h"

#include <QAction>
#include <QCheckBox>
#include <QComboBox>
#include <QDateTime>
#include <QDir>
#include <QFileDialog>
#include <QFileInfo>
#include <QFormLayout>
#include <QGroupBox>
#include <QHBoxLayout>
#include <QLabel>
#include <QLineEdit>
#include <QPointer>
#include <QProgressBar>
#include <QPushButton>
#include <QScrollArea>
#include <QSettings>
#include <QSpinBox>
#include <QStandardPaths>
#include <QVBoxLayout>

#include <filesystem>
#include <optional>
#include <system_error>
#include <utility>
#include <vector>

#include "engine_dialogs.h"
#include "engine_host.h"
#include "latmix/api/export.h"
#include "latmix/error.h"
#include "latmix/quant.h"
#include "learn_panel.h"
#include "main_window.h"
#include "model_session.h"
#include "settings_dialog.h"
#include "studio_context.h"

namespace latmix::studio {

namespace fs = std::filesystem;

QString format_bytes(qint64 bytes) {
  const double b = static_cast<double>(bytes);
  if (bytes >= (qint64(1) << 30)) return QString("%1 GB").arg(b / double(1 << 30), 0, 'f', 2);
  if (bytes >= (qint64(1) << 20)) return QString("%1 MB").arg(b / double(1 << 20), 0, 'f', 1);
  if (bytes >= 1024) return QString("%1 KB").arg(b / 1024.0, 0, 'f', 1);
  return QString("%1 B").arg(bytes);
}

namespace {


QString notes_html(const QStringList& notes) {
  if (notes.isEmpty()) return {};
  QStringList lines;
  for (const QString& n : notes) lines << "note: " + n.toHtmlEscaped();
  return "<small>" + lines.join("<br>") + "</small>";
}

// `edit` with a "..." button beside it that picks a text file into it.
QHBoxLayout* text_file_row(QWidget* parent, QLineEdit* edit, const QString& title) {
  auto* browse = new QPushButton("...", edit->parentWidget());
  QObject::connect(browse, &QPushButton::clicked, edit, [parent, edit, title] {
    const QString file =
        QFileDialog::getOpenFileName(parent, title, last_folder("text"), "Text (*.txt *.raw);;All files (*)");
    if (!file.isEmpty()) edit->setText(file);
  });
  auto* row = new QHBoxLayout();
  row->addWidget(edit, 1);
  row->addWidget(browse);
  return row;
}

bool is_byte_stage(const QString& stage) {
  return stage == "hash" || stage == "write" || stage == "zip" || stage == "download";
}

// Entries an export of `target` may leave in its folder while it runs: the export's temp folder
// (.NAME.latmix-tmp-*), the zip's temp file (.NAME.tmp-*) and the staging folder (.NAME.folder-*).
QStringList leftovers_of(const fs::path& target, const fs::path& staging) {
  QStringList out;
  std::error_code ec;
  const fs::path dir = target.has_parent_path() ? target.parent_path() : fs::path(".");
  const std::string mine = "." + target.filename().string() + ".";
  const std::string staged = staging.empty() ? std::string() : "." + staging.filename().string() + ".";
  for (fs::directory_iterator it(dir, ec), end; !ec && it != end; it.increment(ec)) {
    const std::string name = it->path().filename().string();
    if (name.rfind(mine, 0) == 0 || (!staged.empty() && (name.rfind(staged, 0) == 0 ||
                                                         name == staging.filename().string()))) {
      out << QString::fromStdString(it->path().string());
    }
  }
  return out;
}

}  // namespace

ExportPanel::ExportPanel(StudioContext* context, QWidget* parent)
    : QWidget(parent), context_(context), host_(context->host()), session_(context->session()) {
  qRegisterMetaType<latmix::studio::ExportOutcome>();
  buildUi();
  export_action_ = new QAction("&Export model...", this);
  export_action_->setShortcut(QKeySequence("Ctrl+E"));
  export_action_->setToolTip("Export with the options of the Export tab (Ctrl+E)");
  verify_action_ = new QAction("&Verify export or bundle...", this);
  connect(export_action_, &QAction::triggered, this, [this] { startExport(); });
  connect(verify_action_, &QAction::triggered, this, &ExportPanel::verifyDialog);
  connect(export_, &QPushButton::clicked, export_action_, &QAction::trigger);
  connect(verify_, &QPushButton::clicked, verify_action_, &QAction::trigger);
  connect(cancel_, &QPushButton::clicked, this, &ExportPanel::cancel);
  connect(host_, &EngineHost::jobProgress, this, &ExportPanel::onProgress);
  // A job's outcome comes as a posted value from the job itself, before the host's signal (showOutcome
  // forgets the id); a job still known here when the host says it ended posted none: it was cancelled
  // while queued, before it started.
  auto ended = [this](quint64 id) {
    if (id != 0 && id == job_) {
      ExportOutcome o;
      o.status = ExportOutcome::Status::Cancelled;
      o.path = QString::fromStdString(request().out);
      showOutcome(o);
    }
    if (id != 0 && id == verify_job_) verify_job_ = 0;
    updateButtons();
  };
  connect(host_, &EngineHost::jobFinished, this, [ended](quint64 id, const QString&, double) { ended(id); });
  connect(host_, &EngineHost::jobCancelled, this, [this, ended](quint64 id, const QString&) {
    if (id != 0 && id == download_job_) downloadEnded({}, "cancelled: no file was written");
    ended(id);
  });
  connect(host_, &EngineHost::jobFailed, this, [this, ended](quint64 id, const QString&, const QString& message) {
    if (id != 0 && id == download_job_) downloadEnded({}, message);
    ended(id);
  });
  // The plan follows the Learn tab's current plan: a finished run, a loaded file or a run picked
  // from the history sets it; a run in progress (or one cancelled or failed) leaves it as it is.
  LearnController* ctl = context_->learnController();
  connect(ctl, &LearnController::finished, this, [this](const LearnOutcome& o) { setPlan(o); });
  connect(ctl, &LearnController::loaded, this, [this](const LearnOutcome& o) { setPlan(o); });
  connect(ctl, &LearnController::runSelected, this, [this](const LearnOutcome& o) { setPlan(o); });
  // Without a plan the format is the Learn tab's: the command line and the placeholder follow it.
  connect(context_, &StudioContext::learnRequestChanged, this, &ExportPanel::updateCli);
  restoreSettings();
  updatePlanText();
  updateButtons();
}

ExportPanel::~ExportPanel() {
  if (job_ != 0) host_->cancel(job_);
  if (verify_job_ != 0) host_->cancel(verify_job_);
  if (download_job_ != 0) host_->cancel(download_job_);
}

void ExportPanel::buildUi() {
  auto* layout = new QVBoxLayout(this);
  layout->setContentsMargins(8, 8, 8, 8);
  auto* intro = new QLabel(
      "<b>Export</b> the open model, quantized, with its transforms folded in, as a folder other runtimes load "
      "(vLLM, compressed-tensors, Hugging Face) and a manifest that makes it verifiable. "
      "<i>One click</i>: compressed-tensors MXFP4 in a .zip bundle, checked bit for bit before it appears.",
      this);
  intro->setWordWrap(true);
  layout->addWidget(intro);
  plan_text_ = new QLabel(this);
  plan_text_->setWordWrap(true);
  plan_text_->setTextInteractionFlags(Qt::TextSelectableByMouse);
  layout->addWidget(plan_text_);

  auto* where = new QHBoxLayout();
  where->addWidget(new QLabel("Into folder:", this));
  folder_ = new QLineEdit(this);
  where->addWidget(folder_, 1);
  auto* browse = new QPushButton("...", this);
  browse->setToolTip("Choose the folder the export (or the .zip) is written into");
  connect(browse, &QPushButton::clicked, this, &ExportPanel::chooseFolder);
  where->addWidget(browse);
  layout->addLayout(where);
  target_ = new QLabel(this);
  target_->setWordWrap(true);  // a long path must not widen the page past the window
  target_->setTextInteractionFlags(Qt::TextSelectableByMouse);
  layout->addWidget(target_);

  auto* buttons = new QHBoxLayout();
  export_ = new QPushButton("Export", this);
  export_->setDefault(true);
  export_->setMinimumWidth(140);
  QFont f = export_->font();
  f.setBold(true);
  export_->setFont(f);
  options_button_ = new QPushButton("Options...", this);
  options_button_->setCheckable(true);
  options_button_->setToolTip("Every option of latmix export: kind, bundle, format, method, overwrite, verification");
  verify_ = new QPushButton("Verify bundle...", this);
  verify_->setToolTip("Checks an export folder or .zip bundle against its manifest (latmix verify)");
  cancel_ = new QPushButton("Cancel", this);
  cancel_->setToolTip("Stops the export; nothing is left behind (the temp folder is removed, an existing target kept)");
  download_ = new QPushButton("Download bundle...", this);
  download_->setToolTip("Copy the .zip bundle just written on the engine's server to a file on this computer");
  download_->hide();  // shown while the model is open on an engine
  connect(download_, &QPushButton::clicked, this, &ExportPanel::downloadDialog);
  for (QPushButton* b : {export_, options_button_, verify_, download_, cancel_}) buttons->addWidget(b);
  buttons->addStretch(1);
  layout->addLayout(buttons);

  options_ = new QGroupBox("Options", this);
  auto* form = new QFormLayout(options_);
  kind_ = new QComboBox(options_);
  kind_->addItem("compressed-tensors (MXFP4, vLLM)", "compressed-tensors");
  kind_->addItem("folded-bf16 (plain Hugging Face folder)", "folded-bf16");
  kind_->addItem("gguf (MXFP4, llama.cpp / ollama / LM Studio)", "gguf");
  kind_->addItem("transforms (the plan, with the model's fingerprint)", "transforms");
  kind_->setToolTip(
      "compressed-tensors: mxfp4-pack-quantized, online transforms declared in transform_config (MXFP4 weights "
      "only);\nfolded-bf16: every transform folded, weights quantized, stored as bf16;\ngguf: model.gguf for "
      "llama.cpp, MXFP4 weights as ggml blocks, other tensors f32 (no online transforms);\ntransforms: the plan "
      "alone, reloadable with --transforms");
  zip_ = new QCheckBox("one .zip bundle (stored, zip64, manifest.json first)", options_);
  quant_ = new QComboBox(options_);
  quant_->setEditable(true);
  quant_->addItems({"", "w=mxfp4,a=mxfp4", "w=mxfp4,a=none", "w=mxfp4,a=mxfp4,weights=gptq", "mxfp8", "mxint8"});
  quant_->setToolTip(
      "The quantization (latmix --quant grammar). Empty: the plan's format, else the Learn tab's. "
      "compressed-tensors holds MXFP4 weights only; weights=gptq calibrates on the calibration text below.");
  method_ = new QLineEdit(options_);
  method_->setToolTip("The method recorded in the manifest. Empty: the plan's method (rtn or gptq without a plan)");
  name_ = new QLineEdit(options_);
  name_->setToolTip("The export's name in the folder. Empty: MODEL-METHOD-KIND, numbered when it exists");
  overwrite_ = new QCheckBox("replace an earlier export of that name (never anything else)", options_);
  verify_check_ = new QCheckBox("verify before it appears (packed codes / weights bit for bit, perplexity)", options_);
  verify_text_ = new QLineEdit(options_);
  QHBoxLayout* verify_row = text_file_row(this, verify_text_, "Verification text");
  verify_text_->setToolTip("folded-bf16: the text of the perplexity check (latmix export --verify-data)");
  verify_seqlen_ = new QSpinBox(options_);
  verify_seqlen_->setRange(8, 131072);
  verify_windows_ = new QSpinBox(options_);
  verify_windows_->setRange(0, 100000);
  verify_windows_->setToolTip("windows of the perplexity check (0: all)");
  shard_ = new QSpinBox(options_);
  shard_->setRange(1, 1 << 20);
  shard_->setSuffix(" MB");
  // GPTQ's calibration (and the text a method without a plan learns on): latmix export --calib ...
  calib_ = new QLineEdit(options_);
  calib_->setPlaceholderText("the bundled sample (GPTQ); a method without a plan learns only on text named here");
  calib_->setToolTip("latmix export --calib FILE: the text of weights=gptq, and the training text of a learned "
                     "method that has no plan yet (learned with its defaults first)");
  QHBoxLayout* calib_row = text_file_row(this, calib_, "Calibration text");
  const latmix::api::CalibrationSize gptq = latmix::api::gptq_calibration_defaults(false, 0);
  calib_samples_ = new QSpinBox(options_);
  calib_samples_->setRange(0, 1 << 20);
  calib_samples_->setSpecialValueText(QString("default (%1 on the CPU, 128 on CUDA)").arg(gptq.samples));
  calib_seqlen_ = new QSpinBox(options_);
  calib_seqlen_->setRange(0, 1 << 20);
  calib_seqlen_->setSpecialValueText(QString("default (%1 on the CPU, 2048 on CUDA)").arg(gptq.seqlen));
  // Each control carries its option's name: tests fill the form as a person would (the drift test).
  const std::vector<std::pair<QWidget*, const char*>> names = {
      {kind_, "as"},
      {zip_, "zip"},
      {quant_, "quant"},
      {method_, "method"},
      {overwrite_, "overwrite"},
      {verify_check_, "verify"},
      {verify_text_, "verify-data"},
      {verify_seqlen_, "verify-seqlen"},
      {verify_windows_, "verify-windows"},
      {shard_, "shard-size"},
      {calib_, "calib"},
      {calib_samples_, "calib-samples"},
      {calib_seqlen_, "calib-seqlen"}};
  for (const auto& [w, name] : names) w->setObjectName(name);
  form->addRow("kind", kind_);
  form->addRow("bundle", zip_);
  form->addRow("format", quant_);
  form->addRow("method recorded", method_);
  form->addRow("name", name_);
  form->addRow("overwrite", overwrite_);
  form->addRow("verification", verify_check_);
  form->addRow("verification text", verify_row);
  form->addRow("perplexity window", verify_seqlen_);
  form->addRow("perplexity windows", verify_windows_);
  form->addRow("largest shard", shard_);
  form->addRow("calibration text", calib_row);
  form->addRow("calibration sequences", calib_samples_);
  form->addRow("calibration length", calib_seqlen_);
  options_->setVisible(false);
  connect(options_button_, &QPushButton::toggled, options_, &QWidget::setVisible);
  layout->addWidget(options_);

  layout->addWidget(new QLabel("The same export from the command line:", this));
  cli_ = new QLineEdit(this);
  cli_->setReadOnly(true);
  layout->addWidget(cli_);

  auto* prog = new QHBoxLayout();
  progress_ = new QProgressBar(this);
  progress_->setRange(0, 1000);
  progress_->setTextVisible(false);
  progress_->setMaximumWidth(360);
  progress_text_ = new QLabel(this);
  prog->addWidget(progress_);
  prog->addWidget(progress_text_, 1);
  layout->addLayout(prog);

  auto* result = new QGroupBox("Result", this);
  auto* rl = new QVBoxLayout(result);
  summary_ = new QLabel("No export yet.", result);
  summary_->setWordWrap(true);
  summary_->setTextInteractionFlags(Qt::TextSelectableByMouse);
  summary_->setAlignment(Qt::AlignTop | Qt::AlignLeft);
  // The result scrolls inside its box (verification tables are long), so the page fits the window.
  auto* result_scroll = new QScrollArea(result);
  result_scroll->setWidgetResizable(true);
  result_scroll->setFrameShape(QFrame::NoFrame);
  result_scroll->setWidget(summary_);
  result_scroll->setMinimumHeight(120);
  rl->addWidget(result_scroll);
  layout->addWidget(result, 1);

  for (QComboBox* c : {kind_, quant_}) connect(c, &QComboBox::currentTextChanged, this, &ExportPanel::updateCli);
  for (QCheckBox* c : {zip_, overwrite_, verify_check_}) connect(c, &QCheckBox::toggled, this, &ExportPanel::updateCli);
  for (QLineEdit* e : {folder_, method_, name_, verify_text_, calib_})
    connect(e, &QLineEdit::textChanged, this, &ExportPanel::updateCli);
  for (QSpinBox* s : {verify_seqlen_, verify_windows_, shard_, calib_samples_, calib_seqlen_})
    connect(s, &QSpinBox::valueChanged, this, &ExportPanel::updateCli);
}

void ExportPanel::setPlan(const LearnOutcome& plan) {
  plan_ = plan;
  updatePlanText();
  updateCli();
}

void ExportPanel::clearPlan() {
  plan_.reset();
  updatePlanText();
  updateCli();
}

void ExportPanel::modelChanged() {
  clearPlan();
  engine_bundle_.clear();
  // The folder is this computer's or the engine's server's, as the model is: each side keeps its own.
  const bool engine = session_->remote() != nullptr;
  if (engine != folder_is_engine_) {
    const QString shown = folder_->text();
    folder_is_engine_ = engine;
    folder_->setText(std::exchange(other_folder_, shown));
    folder_->setPlaceholderText(engine ? "the engine's first root (a folder of the server)" : QString());
  }
  download_->setVisible(engine);
  updateButtons();
}

void ExportPanel::setOutputFolder(const QString& dir) { folder_->setText(dir); }

void ExportPanel::setKind(const QString& kind) {
  const int i = kind_->findData(kind);
  if (i >= 0) kind_->setCurrentIndex(i);
}

void ExportPanel::setZip(bool zip) { zip_->setChecked(zip); }

void ExportPanel::setQuant(const QString& spec) { quant_->setCurrentText(spec); }

void ExportPanel::updatePlanText() {
  QString html;
  if (plan_ && !plan_->plan_prefix.isEmpty()) {
    const LearnOutcome& o = *plan_;
    const QString method = o.method.isEmpty() ? QString("method not recorded") : o.method;
    const QString quant = o.quant.isEmpty() ? QString() : ", " + o.quant;
    html = o.loaded ? QString("Plan: <b>%1</b>%2 loaded from %3.json")
                          .arg(method.toHtmlEscaped(), quant.toHtmlEscaped(), o.plan_prefix.toHtmlEscaped())
                    : QString("Plan: <b>%1</b>%2, run %3 of the Learn tab%4")
                          .arg(method.toHtmlEscaped(), quant.toHtmlEscaped())
                          .arg(o.run)
                          .arg(o.learned ? QString(" (%1 steps, loss %2)").arg(o.steps).arg(o.last_loss, 0, 'g', 4)
                                         : QString(" (fixed transforms)"));
    if (!o.notes.isEmpty()) html += "<br><small>" + o.notes.join("; ").toHtmlEscaped() + "</small>";
    if (!o.transforms.isEmpty()) html += "<br><small>" + o.transforms.join("; ").toHtmlEscaped() + "</small>";
  } else {
    html = "Plan: <b>none</b>: the weights are quantized as they are (method rtn). Learn or load transforms in the "
           "Learn tab to export them.";
  }
  plan_text_->setText(html);
}

QString ExportPanel::outputName(const api::ExportRequest& r) const {
  if (!name_->text().trimmed().isEmpty()) return name_->text().trimmed();
  QString model = QFileInfo(session_->summary().path).completeBaseName();
  if (model.isEmpty()) model = "model";
  const QString kind = r.as == "compressed-tensors" ? "ct"
                       : r.as == "folded-bf16"      ? "bf16"
                       : r.as == "gguf"             ? "gguf"
                                                    : "transforms";
  return QString("%1-%2-%3").arg(model, QString::fromStdString(r.method), kind);
}

QString ExportPanel::cliCommand(const api::ExportRequest& r) {
  QStringList argv;
  for (const auto& a : api::export_command_line(r)) argv << QString::fromStdString(a);
  return shell_command(argv);
}

api::ExportRequest ExportPanel::request() const {
  api::ExportRequest r;
  r.model = session_->summary().path.toStdString();
  r.device = StudioSettings::load().device.toStdString();
  r.as = kind_->currentData().toString().toStdString();
  r.zip = zip_->isChecked();
  const bool has_plan = plan_ && !plan_->plan_prefix.isEmpty();
  // The format and the weight quantizer are the plan's (what it was learned for, issue 17 Major 2),
  // unless Options sets them; without a plan (or a file that records none) the Learn tab's format.
  std::string default_quant = context_->learnRequest().quant;
  if (has_plan && !plan_->quant.isEmpty()) default_quant = plan_->quant.toStdString();
  const QString quant = quant_->currentText().trimmed();
  r.quant = quant.isEmpty() ? default_quant : quant.toStdString();
  bool gptq = false;
  try {
    gptq = parse_quant_spec(r.quant).method == WeightMethod::Gptq;
  } catch (const Error&) {
    // a bad spec is reported by the export itself, with the engine's message
  }
  if (has_plan) {
    // The plan on disk, checked against the model as `latmix export --transforms` checks it (a run
    // of this session is saved with the model's fingerprint and its settings).
    r.transforms = plan_->plan_prefix.toStdString();
    // The method the plan records; a file that records none is "transforms" (never the Learn tab's choice).
    r.method = plan_->method.isEmpty() ? std::string("transforms") : plan_->method.toStdString();
    if (!plan_->loaded) {
      r.transforms_source = QString("learned in LATMiX Studio (%1%2, run %3%4)")
                                .arg(plan_->method)
                                .arg(plan_->learned ? QString(", %1 steps").arg(plan_->steps) : "")
                                .arg(plan_->run)
                                .arg(plan_->model_digest.isEmpty() ? QString() : ", model " + plan_->model_digest.left(12))
                                .toStdString();
    }
  } else {
    r.method = gptq ? "gptq" : "rtn";
  }
  if (!method_->text().trimmed().isEmpty()) r.method = method_->text().trimmed().toStdString();
  r.overwrite = overwrite_->isChecked();
  r.no_verify = !verify_check_->isChecked();
  r.verify_data = verify_text_->text().trimmed().toStdString();
  r.verify_seqlen = verify_seqlen_->value();
  r.verify_windows = verify_windows_->value();
  r.shard_size = shard_->value();
  r.calib = calib_->text().trimmed().toStdString();
  if (calib_samples_->value() > 0) r.calib_samples = calib_samples_->value();  // 0: "default"
  if (calib_seqlen_->value() > 0) r.calib_seqlen = calib_seqlen_->value();
  // The target: NAME (or NAME.zip) in the folder, numbered rather than failing on an earlier export.
  const QString ext = r.zip ? ".zip" : "";
  if (folder_is_engine_) {  // a path of the server (relative: in its first root), named by the time
    const QString name = outputName(r) + QDateTime::currentDateTime().toString("-yyyyMMdd-HHmmss") + ext;
    r.out = (folder_->text().trimmed().isEmpty() ? name : QDir(folder_->text().trimmed()).filePath(name)).toStdString();
    return r;
  }
  const QString dir = folder_->text().trimmed().isEmpty() ? QDir::homePath() : folder_->text().trimmed();
  const QString base = QDir(dir).filePath(outputName(r));
  QString out = base + ext;
  for (int n = 2; !r.overwrite && QFileInfo::exists(out) && n < 1000; ++n) out = QString("%1-%2%3").arg(base).arg(n).arg(ext);
  r.out = out.toStdString();
  return r;
}

void ExportPanel::updateCli() {
  const api::ExportRequest r = request();
  target_->setText("Writes: <b>" + QString::fromStdString(r.out).toHtmlEscaped() + "</b>" +
                   (r.as == "compressed-tensors" || r.as == "gguf"
                        ? QString(" &nbsp; (%1)").arg(QString::fromStdString(r.quant).toHtmlEscaped())
                        : QString()));
  cli_->setText(cliCommand(r));
  cli_->setCursorPosition(0);
  cli_->setToolTip(cli_->text());
  const bool plan_format = plan_ && !plan_->plan_prefix.isEmpty() && !plan_->quant.isEmpty();
  quant_->lineEdit()->setPlaceholderText(
      plan_format ? "the plan's format (" + plan_->quant + ")"
                  : "the Learn tab's format (" + QString::fromStdString(context_->learnRequest().quant) + ")");
}

void ExportPanel::updateButtons() {
  const bool busy = job_ != 0 || verify_job_ != 0 || download_job_ != 0;
  download_->setEnabled(!busy && canDownload());
  export_->setEnabled(!busy && session_->hasModel());
  export_action_->setEnabled(export_->isEnabled());
  verify_->setEnabled(!busy);
  verify_action_->setEnabled(!busy);
  cancel_->setEnabled(busy);
  progress_->setVisible(busy);
  if (!busy) {
    progress_->setValue(0);
    progress_text_->clear();
  }
}

QString ExportPanel::summaryText() const { return summary_->text(); }

quint64 ExportPanel::startExport() {
  storeSettings();
  return startExport(request());
}

void fill_verified(ExportOutcome& o, const std::function<api::VerifyResult()>& verify) {
  o.status = ExportOutcome::Status::Verified;
  try {
    const api::VerifyResult v = verify();
    o.zipped = v.zip;
    o.kind = QString::fromStdString(v.kind);
    o.verification = QString::fromStdString(v.verification.describe());
    o.verified = v.verification.ok();
    o.verdict = QString::fromStdString(api::verdict(v));
    for (const auto& n : v.notes) o.notes << QString::fromStdString(n);
  } catch (const Cancelled&) {
    throw;
  } catch (const std::exception& e) {
    o.verified = false;
    o.message = QString::fromUtf8(e.what());
    o.verification = "FAIL  " + o.message + "\n";
    o.verdict = "VERIFICATION FAILED";
  }
}

void add_note(ExportOutcome& o, const std::string& line) {
  const std::string prefix = "note: ";
  o.notes << QString::fromStdString(line.rfind(prefix, 0) == 0 ? line.substr(prefix.size()) : line);
}

void fill_written(ExportOutcome& o, const api::ExportResult& res) {
  const latmix::ExportResult& w = res.written;
  o.status = ExportOutcome::Status::Written;
  o.bytes = static_cast<qint64>(w.bytes);
  o.zip_bytes = static_cast<qint64>(res.zip_bytes);
  o.files = static_cast<int>(w.files.size());
  o.seconds = w.seconds;
  if (!w.quantization.spec.empty()) o.quantization = QString::fromStdString(w.quantization.describe());
  o.verification = QString::fromStdString(w.verification.describe());
  o.verified = w.verification.ok();
  for (const auto& n : w.notes) o.notes << QString::fromStdString(n);
}

quint64 ExportPanel::startExport(const api::ExportRequest& r) {
  if (running() || verify_job_ != 0 || download_job_ != 0) return 0;
  if (session_->remote()) return startExportOnEngine(r);
  auto model = session_->model();
  auto tokenizer = session_->tokenizer();
  if (!model || !tokenizer) return 0;
  summary_->setText("Exporting to " + QString::fromStdString(r.out).toHtmlEscaped() + " ...<br><code>" +
                    cliCommand(r).toHtmlEscaped() + "</code>");
  stage_.clear();
  QPointer<ExportPanel> self(this);
  const std::string sample = bundled_sample().toStdString();
  job_ = host_->submit("export", [self, r, model, tokenizer, sample](const JobControl& job) {
    const fs::path target(r.out);
    std::error_code ec;
    const bool existed = fs::exists(target, ec);
    ExportOutcome o;
    o.path = QString::fromStdString(r.out);
    o.kind = QString::fromStdString(r.as);
    o.zipped = r.zip;
    // After a cancel or an error: look at what is there, so that the summary can say nothing was left.
    auto look = [&](ExportOutcome::Status status, const QString& message) {
      o.status = status;
      o.message = message;
      o.leftovers = leftovers_of(target, fs::path(api::export_staging_folder(r)));
      o.target_untouched = existed || !fs::exists(target, ec);
      EngineHost::post(self, [self, o] { self->showOutcome(o); });
    };
    api::ExportControl control;
    control.learn.job = job;
    control.learn.on_note = [&o](const std::string& line) { add_note(o, line); };
    control.bundled_sample = sample;
    try {
      fill_written(o, api::run_export(r, *model, *tokenizer, control));
    } catch (const Cancelled&) {
      look(ExportOutcome::Status::Cancelled, "cancelled");
      throw;
    } catch (const std::exception& e) {
      look(ExportOutcome::Status::Failed, QString::fromUtf8(e.what()));
      throw;
    }
    // run_export() returns once its staging folder is gone, so that the outcome sees the final state.
    EngineHost::post(self, [self, o] { self->showOutcome(o); });
  });
  updateButtons();
  Q_EMIT statusText("export: starting");
  return job_;
}

quint64 ExportPanel::verify(const QString& path) {
  if (running() || verify_job_ != 0 || download_job_ != 0) return 0;
  if (session_->remote()) return verifyOnEngine(path);
  api::VerifyRequest request;
  request.path = path.toStdString();
  QStringList argv;
  for (const auto& a : api::verify_command_line(request)) argv << QString::fromStdString(a);
  summary_->setText("Verifying " + path.toHtmlEscaped() + " ...<br><code>" + shell_command(argv).toHtmlEscaped() +
                    "</code>");
  stage_.clear();
  QPointer<ExportPanel> self(this);
  verify_job_ = host_->submit("verify-export", [self, path, request](const JobControl& job) {
    ExportOutcome o;
    o.path = path;
    // As latmix verify: a .zip's entries against its manifest, then the folder's checks on an
    // unzipped copy; the perplexity check on the text inside the export; a check that cannot run
    // is not a pass.
    fill_verified(o, [&] { return api::run_verify(request, job); });
    EngineHost::post(self, [self, o] { self->showOutcome(o); });
  });
  updateButtons();
  return verify_job_;
}

void ExportPanel::cancel() {
  if (job_ != 0) host_->cancel(job_);
  if (verify_job_ != 0) host_->cancel(verify_job_);
  if (download_job_ != 0) host_->cancel(download_job_);
}

void ExportPanel::onProgress(quint64 id, const QString& stage, qint64 done, qint64 total) {
  if (id == 0 || (id != job_ && id != verify_job_ && id != download_job_)) return;
  if (stage != stage_) {  // the ETA is per stage: each stage has its own unit and rate
    stage_ = stage;
    stage_first_done_ = done;
    stage_clock_.start();
  }
  const bool bytes = is_byte_stage(stage);
  auto amount = [bytes](qint64 n) { return bytes ? format_bytes(n) : QString::number(n); };
  QString text = QString("%1 %2").arg(id == job_ ? "export:" : id == verify_job_ ? "verify:" : "download:", stage);
  if (total > 0) {
    progress_->setValue(static_cast<int>(1000.0 * static_cast<double>(done) / static_cast<double>(total)));
    text += QString(" %1 / %2 (%3%)").arg(amount(done), amount(total)).arg(100.0 * done / total, 0, 'f', 0);
    const double secs = static_cast<double>(stage_clock_.elapsed()) / 1000.0;
    const qint64 progressed = done - stage_first_done_;
    if (progressed > 0 && secs > 0.2 && done < total) {
      const double rate = static_cast<double>(progressed) / secs;
      if (bytes) text += QString(", %1/s").arg(format_bytes(static_cast<qint64>(rate)));
      text += ", ETA " + format_seconds(static_cast<double>(total - done) / rate);
    }
  } else {
    progress_->setValue(0);
    if (done > 0) text += " " + amount(done);
  }
  progress_text_->setText(text);
  Q_EMIT statusText(text);
}

void ExportPanel::showOutcome(const ExportOutcome& o) {
  // A verification of the export just written goes under its summary.
  const bool of_last_export = last_.status == ExportOutcome::Status::Written && last_.path == o.path;
  last_ = o;
  if (o.status == ExportOutcome::Status::Verified) {
    verify_job_ = 0;
  } else {
    job_ = 0;
  }
  updateButtons();
  QString html;
  auto pre = [](const QString& text) { return "<pre style='margin:2px'>" + text.toHtmlEscaped() + "</pre>"; };
  auto left = [&o] {
    if (o.on_engine)
      return QString("On the engine's server, the export removes what it wrote (never a half-written %1).")
          .arg(o.path.toHtmlEscaped());
    if (o.leftovers.isEmpty() && o.target_untouched)
      return QString("Nothing was left behind: no temp folder, no partial file, %1 untouched.")
          .arg(o.path.toHtmlEscaped());
    QString s = "<span style='color:#c0392b'>Left behind: " + o.leftovers.join(", ").toHtmlEscaped();
    if (!o.target_untouched) s += " (and " + o.path.toHtmlEscaped() + ")";
    return s + "</span>";
  };
  switch (o.status) {
    case ExportOutcome::Status::Written: {
      html = QString("<b style='color:%1'>%2</b> %3 export: <b>%4</b><br>%5 in %6 files%7, written in %8")
                 .arg(o.verified ? "#1e8449" : "#c0392b", o.verified ? "Exported and verified" : "Exported, NOT verified",
                      o.kind.toHtmlEscaped(), o.path.toHtmlEscaped(), format_bytes(o.bytes))
                 .arg(o.files)
                 .arg(o.zipped ? QString(", zipped to %1").arg(format_bytes(o.zip_bytes)) : QString())
                 .arg(format_seconds(o.seconds));
      if (!o.quantization.isEmpty()) html += pre(o.quantization.trimmed());
      html += "<b>Verification</b>" + pre(o.verification.trimmed());
      html += notes_html(o.notes);
      written_html_ = html;
      summary_->setText(html);  // before the signal: a handler may start the next job
      Q_EMIT exported(o);
      break;
    }
    case ExportOutcome::Status::Cancelled:
      html = "<b>Export cancelled.</b> " + left();
      Q_EMIT exportCancelled(o);
      break;
    case ExportOutcome::Status::Failed:
      html = "<b style='color:#c0392b'>Export failed:</b> " + o.message.toHtmlEscaped() + "<br>" + left();
      Q_EMIT exportFailed(o);
      break;
    case ExportOutcome::Status::Verified:
      html = QString("<b style='color:%1'>%2</b>: %3%4")
                 .arg(o.verified ? "#1e8449" : "#c0392b", o.verified ? QString("Verified") : o.verdict,
                      o.path.toHtmlEscaped(), o.kind.isEmpty() ? QString() : " (" + o.kind.toHtmlEscaped() + ")");
      html += pre(o.verification.trimmed());
      html += notes_html(o.notes);
      if (of_last_export) html = written_html_ + "<hr>Checked again from disk (Verify bundle): " + html;
      Q_EMIT verified(o);
      break;
  }
  summary_->setText(html);
  Q_EMIT statusText("");
  updateCli();  // the next free name
}

void ExportPanel::chooseFolder() {
  if (folder_is_engine_) return chooseEngineFolder();
  const QString dir = QFileDialog::getExistingDirectory(this, "Export into folder", folder_->text());
  if (dir.isEmpty()) return;
  folder_->setText(dir);
  storeSettings();
}

void ExportPanel::verifyDialog() {
  if (session_->remote()) {  // a bundle or folder of the engine's server
    RemoteFileDialog dialog(host_, session_->remote(), this);
    if (dialog.exec() == QDialog::Accepted && !dialog.chosen().isEmpty()) verify(dialog.chosen());
    return;
  }
  // One dialog for both: a .zip bundle, or an export folder by its manifest.json.
  QString path = QFileDialog::getOpenFileName(this, "Verify an export: a .zip bundle, or a folder's manifest.json",
                                              folder_->text(), "Exports (*.zip manifest.json);;All files (*)");
  if (path.isEmpty()) return;
  if (QFileInfo(path).fileName() == "manifest.json") path = QFileInfo(path).absolutePath();
  verify(path);
}

void ExportPanel::restoreSettings() {
  QSettings s;
  s.beginGroup("export");
  const QString docs = QStandardPaths::writableLocation(QStandardPaths::DocumentsLocation);
  folder_->setText(s.value("folder", docs.isEmpty() ? QDir::homePath() : docs).toString());
  setKind(s.value("kind", "compressed-tensors").toString());
  zip_->setChecked(s.value("zip", true).toBool());
  quant_->setCurrentText(s.value("quant", "").toString());
  overwrite_->setChecked(false);  // never remembered: replacing is a decision per export
  verify_check_->setChecked(s.value("verify", true).toBool());
  verify_text_->setText(s.value("verify_text", "").toString());
  verify_text_->setPlaceholderText("the bundled sample (" + QFileInfo(bundled_sample()).fileName() + ")");
  verify_seqlen_->setValue(s.value("verify_seqlen", 256).toInt());
  verify_windows_->setValue(s.value("verify_windows", 8).toInt());
  shard_->setValue(s.value("shard_mb", 4096).toInt());
  calib_->setText(s.value("calib", "").toString());
  calib_samples_->setValue(s.value("calib_samples", 0).toInt());
  calib_seqlen_->setValue(s.value("calib_seqlen", 0).toInt());
  s.endGroup();
}

void ExportPanel::storeSettings() const {
  QSettings s;
  s.beginGroup("export");
  s.setValue("folder", folder_is_engine_ ? other_folder_ : folder_->text());  // this computer's
  s.setValue("kind", kind_->currentData());
  s.setValue("zip", zip_->isChecked());
  s.setValue("quant", quant_->currentText());
  s.setValue("verify", verify_check_->isChecked());
  s.setValue("verify_text", verify_text_->text());
  s.setValue("verify_seqlen", verify_seqlen_->value());
  s.setValue("verify_windows", verify_windows_->value());
  s.setValue("shard_mb", shard_->value());
  s.setValue("calib", calib_->text());
  s.setValue("calib_samples", calib_samples_->value());
  s.setValue("calib_seqlen", calib_seqlen_->value());
  s.endGroup();
}

}  // namespace latmix::studio
