// The zero-shot tasks: which file, which reader, which prompt (eval_data.h).
#include <algorithm>

#include "latmix/error.h"
#include "latmix/eval_data.h"

namespace latmix {

namespace {

struct TaskEntry {
  const char* name;
  TaskKind kind;
  bool acc_norm;
  std::vector<std::string> files;
};

const std::vector<TaskEntry>& task_table() {
  static const std::vector<TaskEntry> table = {
      {"arc_easy", TaskKind::MultipleChoice, true, {"eval/arc_easy/arc_easy_test.mosaic.jsonl"}},
      {"arc_challenge", TaskKind::MultipleChoice, true, {"eval/arc_challenge/arc_challenge_test.mosaic.jsonl"}},
      {"boolq", TaskKind::MultipleChoice, false, {"eval/boolq/boolq_validation.mosaic.jsonl"}},
      {"hellaswag", TaskKind::MultipleChoice, true, {"eval/hellaswag/hellaswag_val_full.txt"}},
      {"openbookqa", TaskKind::MultipleChoice, true, {"eval/openbookqa/openbookqa_test.mosaic.jsonl"}},
      {"piqa", TaskKind::MultipleChoice, true, {"eval/piqa/valid.jsonl", "eval/piqa/valid-labels.lst"}},
      {"winogrande", TaskKind::PartialScoring, false, {"eval/winogrande/winogrande_dev.mosaic.jsonl"}},
      {"lambada", TaskKind::LastWord, false, {"eval/lambada/lambada_openai_test.mosaic.jsonl"}},
      {"copa", TaskKind::MultipleChoice, false, {"eval/copa/copa.mosaic.jsonl"}},
  };
  return table;
}

const TaskEntry& find_task(const std::string& name) {
  for (const TaskEntry& t : task_table()) {
    if (name == t.name) return t;
  }
  std::string valid;
  for (const TaskEntry& t : task_table()) valid += (valid.empty() ? "" : ", ") + std::string(t.name);
  throw UsageError("unknown zero-shot task '" + name + "' (valid: " + valid + ")");
}

std::string join_path(const std::string& dir, const std::string& rel) {
  if (dir.empty()) return rel;
  return dir.back() == '/' ? dir + rel : dir + "/" + rel;
}

std::vector<ChoiceItem> read_task(const std::string& name, const std::vector<std::string>& paths, int64_t max_items,
                                  bool* whole) {
  if (name == "arc_easy" || name == "arc_challenge" || name == "boolq") {
    return read_mosaic_choices(paths[0], "\nAnswer:", max_items, whole);
  }
  if (name == "openbookqa" || name == "copa") return read_mosaic_choices(paths[0], "", max_items, whole);
  if (name == "hellaswag") return read_hellaswag_llamacpp(paths[0], max_items, whole);
  if (name == "piqa") return read_piqa_original(paths[0], paths[1], max_items, whole);
  if (name == "winogrande") return read_mosaic_partial(paths[0], max_items, whole);
  return read_mosaic_lambada(paths[0], max_items, whole);
}

}  // namespace

const std::vector<std::string>& zero_shot_task_names() {
  static const std::vector<std::string> names = [] {
    std::vector<std::string> out;
    for (const TaskEntry& t : task_table()) out.emplace_back(t.name);
    return out;
  }();
  return names;
}

bool is_zero_shot_task(const std::string& name) {
  const auto& names = zero_shot_task_names();
  return std::find(names.begin(), names.end(), name) != names.end();
}

std::vector<std::string> zero_shot_task_files(const std::string& name) {
  return find_task(name).files;
}

TaskData load_zero_shot_task(const std::string& name, const std::string& data_dir, int64_t max_items) {
  const TaskEntry& entry = find_task(name);
  std::vector<std::string> paths;
  for (const std::string& f : entry.files) paths.push_back(join_path(data_dir, f));
  TaskData data;
  data.name = name;
  data.kind = entry.kind;
  data.report_acc_norm = entry.acc_norm;
  for (const std::string& p : paths) data.source += (data.source.empty() ? "" : " + ") + p;
  data.items = read_task(name, paths, max_items, &data.whole);
  return data;
}

}  // namespace latmix
