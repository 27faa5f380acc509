#include "compare_panel.h"

#include <QComboBox>
#include <QHBoxLayout>
#include <QLabel>
#include <QLineEdit>
#include <QSettings>
#include <QSpinBox>
#include <QStackedWidget>
#include <QVBoxLayout>

#include "compare_common.h"
#include "main_window.h"
#include "studio_context.h"

namespace latmix::studio {

ComparePanel::ComparePanel(StudioContext* context, QWidget* parent) : QWidget(parent) {
  auto* layout = new QVBoxLayout(this);
  auto* row = new QHBoxLayout();
  mode_ = new QComboBox(this);
  mode_->addItems({"methods (latmix compare)", "quantization specs (latmix eval --quant)"});
  tasks_ = new QLineEdit("text:" + bundled_sample() + ",alice,arc_easy,piqa,winogrande", this);
  tasks_->setToolTip(
      "Comma-separated tasks (latmix eval --tasks): wikitext2, ptb, frankenstein, alice, text:PATH, "
      "arc_easy, arc_challenge, boolq, hellaswag, openbookqa, piqa, winogrande, lambada, copa, all");
  limit_ = new QSpinBox(this);
  limit_->setRange(0, 100000);
  limit_->setValue(50);
  limit_->setSpecialValueText("all");
  limit_->setToolTip("First N items per zero-shot task / N windows per text (--limit)");
  seqlen_ = new QSpinBox(this);
  seqlen_->setRange(16, 8192);
  seqlen_->setValue(256);
  seqlen_->setToolTip("Perplexity window in tokens (--eval-seqlen)");
  row->addWidget(new QLabel("compare", this));
  row->addWidget(mode_);
  row->addWidget(new QLabel("tasks", this));
  row->addWidget(tasks_, 1);
  row->addWidget(new QLabel("limit", this));
  row->addWidget(limit_);
  row->addWidget(new QLabel("seqlen", this));
  row->addWidget(seqlen_);
  layout->addLayout(row);
  const CompareEvaluation eval{tasks_, limit_, seqlen_};
  methods_ = new CompareMethodsPage(context->host(), context->session(), context->engineLink(), eval, this);
  specs_ = new CompareSpecsPage(context->host(), context->session(), context->engineLink(), eval, this);
  pages_ = new QStackedWidget(this);
  pages_->addWidget(methods_);
  pages_->addWidget(specs_);
  layout->addWidget(pages_, 1);
  connect(mode_, &QComboBox::currentIndexChanged, pages_, &QStackedWidget::setCurrentIndex);
  connect(specs_, &CompareSpecsPage::finished, this, &ComparePanel::finished);
  connect(specs_, &CompareSpecsPage::failed, this, &ComparePanel::failed);
  connect(methods_, &CompareMethodsPage::methodsFinished, this, &ComparePanel::methodsFinished);
  connect(methods_, &CompareMethodsPage::methodsCancelled, this, &ComparePanel::methodsCancelled);
  connect(methods_, &CompareMethodsPage::reportSaved, this, &ComparePanel::reportSaved);
  mode_->setCurrentIndex(QSettings().value("compare/mode", 0).toInt());
  connect(mode_, &QComboBox::currentIndexChanged, this, [](int i) { QSettings().setValue("compare/mode", i); });
}

ComparePanel::~ComparePanel() = default;

void ComparePanel::configure(const QString& tasks, const QString& specs, int limit) {
  mode_->setCurrentIndex(1);
  tasks_->setText(tasks);
  specs_->setSpecs(specs);
  limit_->setValue(limit);
}

void ComparePanel::configureMethods(const QStringList& methods, const QString& tasks, int limit, int eval_seqlen,
                                    const LearnRequest& learning) {
  mode_->setCurrentIndex(0);
  tasks_->setText(tasks);
  limit_->setValue(limit);
  seqlen_->setValue(eval_seqlen);
  methods_->configure(methods, learning);
}

void ComparePanel::modelChanged() {
  specs_->modelChanged();
  methods_->modelChanged();
}

}  // namespace latmix::studio
