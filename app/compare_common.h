#pragma once
// What the Compare tab's two pages share (compare_panel.h): the evaluation fields both read, and the
// helpers that draw a task's figures the same way in both tables.

#include <QString>

#include <cstdint>
#include <string>
#include <vector>

#include "latmix/tasks.h"

class QLineEdit;
class QSpinBox;
class QTableWidget;
class QTableWidgetItem;
class QWidget;

namespace latmix::studio {

/// The evaluation both pages run, as the Compare tab's top row sets it: tasks, limit, window.
struct CompareEvaluation {
  QLineEdit* tasks = nullptr;
  QSpinBox* limit = nullptr;
  QSpinBox* seqlen = nullptr;
};

namespace compare_detail {

/// Fewer items than this and a zero-shot accuracy's standard error is several points: say so.
constexpr int64_t kSmallSample = 200;
/// The metric a task is compared on, the same in both pages: "acc" for zero-shot tasks, "ppl" for
/// texts, acc_norm only where a task has no acc.
QString headline(const TaskResult& r);
QString metric_name(const QString& metric);
QString metric_tip(const QString& metric);
/// A result's cell: the value ± its standard error, and its recovery against `fp` when given.
QString cell(const TaskResult& r, const QString& metric, const TaskResult* fp);
const TaskResult* find_task(const std::vector<TaskResult>& results, const std::string& task);
QTableWidgetItem* item(const QString& text, const QString& tip = {});
QTableWidget* table(QWidget* parent);

}  // namespace compare_detail
}  // namespace latmix::studio
