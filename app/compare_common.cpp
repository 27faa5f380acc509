#include "compare_common.h"

#include <QHeaderView>
#include <QTableWidget>

#include <cmath>

#include "latmix/recovery.h"
#include "main_window.h"

namespace latmix::studio::compare_detail {


/// The metric a task is compared on, the same in both modes (issue 17, Major 8): accuracy ("acc")
/// for zero-shot tasks, perplexity ("ppl") for texts. acc_norm only where a task has no acc.
QString headline(const TaskResult& r) {
  for (const char* m : {"acc", "ppl", "acc_norm"}) {
    if (r.metrics.count(m) != 0U) return m;
  }
  return r.metrics.empty() ? QString() : QString::fromStdString(r.metrics.begin()->first);
}

/// Plain names for the metrics' identifiers.
QString metric_name(const QString& metric) {
  if (metric == "acc") return "accuracy %";
  if (metric == "acc_norm") return "length-normalized accuracy %";
  if (metric == "ppl") return "perplexity";
  return metric;
}

QString metric_tip(const QString& metric) {
  if (metric == "acc") return "acc: share of items where the right answer has the highest log-likelihood (lm-eval acc), ± one standard error";
  if (metric == "acc_norm") return "acc_norm: as accuracy, with log-likelihoods divided by the answer's length in bytes";
  if (metric == "ppl") return "ppl: exp(mean negative log-likelihood per token) on the text; lower is better";
  return metric;
}

QString cell(const TaskResult& r, const QString& metric, const TaskResult* fp) {
  const std::string m = metric.toStdString();
  const Estimate value = metric_estimate(r, m);
  const bool ppl = metric == "ppl";
  QString text = ppl ? QString::number(value.value, 'f', 2) : QString::number(100 * value.value, 'f', 1);
  if (!ppl && std::isfinite(value.se)) text += QString(" ± %1").arg(100 * value.se, 0, 'f', 1);
  if (fp != nullptr && fp->metrics.count(m) != 0U) {
    const Estimate rec = recovery(m, *fp, r);  // recovery.h: the engine's one recovery
    text += "  (" + (std::isnan(rec.value) ? QString("n/a") : QString::number(rec.value, 'f', 1));
    if (std::isfinite(rec.se)) text += QString(" ± %1").arg(rec.se, 0, 'f', 0);
    text += " %)";
  }
  return text;
}

const TaskResult* find_task(const std::vector<TaskResult>& results, const std::string& task) {
  for (const auto& r : results) {
    if (r.task == task) return &r;
  }
  return nullptr;
}

QTableWidgetItem* item(const QString& text, const QString& tip) {
  auto* i = new QTableWidgetItem(text);
  i->setTextAlignment(Qt::AlignRight | Qt::AlignVCenter);
  if (!tip.isEmpty()) i->setToolTip(tip);
  return i;
}

QTableWidget* table(QWidget* parent) {
  auto* t = new QTableWidget(parent);
  t->setEditTriggers(QAbstractItemView::NoEditTriggers);
  t->horizontalHeader()->setSectionResizeMode(QHeaderView::ResizeToContents);
  return t;
}

}  // namespace latmix::studio::compare_detail
