#pragma once
/// \file eval_data.h
/// Room: engine/eval/data/ (latmix_core, no LibTorch).
/// Zero-shot benchmark data (DESIGN.md §6, shared/data/SOURCES.md §3): loaders for the files in
/// `eval/` and the lm-eval prompt of each task. Torch-free (part of latmix_core).
///
/// Every task becomes a list of ChoiceItem: one (context, continuation) pair per choice and the
/// index of the right one. The strings are the lm-eval prompt texts, before tokenization:
///  - arc_easy, arc_challenge: "Question: Q\nAnswer:" + " " + choice
///  - boolq:                   "Passage: P\nQuestion: Q?\nAnswer:" + " no" / " yes"
///  - openbookqa:              question stem + " " + choice
///  - copa:                    "premise, therefore" / "premise, because" + " " + choice (mosaic text)
///  - piqa:                    "Question: goal\nAnswer:" + " " + sol1 / sol2 (original release)
///  - hellaswag:               "activity_label: ctx" + " " + ending (llama.cpp file, preprocessed)
///  - winogrande:              partial scoring: each option-substituted prefix + " " + the shared rest
///  - lambada:                 one choice: the passage + " " + the last word (greedy-match accuracy)
///
/// Files are read a line at a time (issue 20, item 10): memory is bounded by the items kept and
/// the longest line (kMaxLineBytes, line_reader.h), and with a limit nothing after the last item
/// needed is read, so a huge or damaged tail costs nothing.
///
/// Malformed input throws latmix::Error "FILE:LINE: field 'F': expected ..., found ..."; a line
/// longer than the bound "FILE:LINE: line longer than 4 MiB".

#include <cstdint>
#include <string>
#include <vector>

namespace latmix {

/// How a task's items are scored and which metrics it reports.
enum class TaskKind {
  MultipleChoice,  ///< same context, one continuation per choice: acc (and acc_norm where lm-eval has it)
  PartialScoring,  ///< one context per choice, the same continuation: acc (winogrande)
  LastWord         ///< one (context, continuation): acc = greedy decoding reproduces it, plus perplexity
};

/// One benchmark question: choice i is contexts[i] followed by continuations[i].
struct ChoiceItem {
  std::vector<std::string> contexts;
  std::vector<std::string> continuations;
  int32_t gold = 0;  ///< index of the right choice
};

/// A loaded task.
struct TaskData {
  std::string name;    ///< "arc_easy"
  std::string source;  ///< the file(s) read
  TaskKind kind = TaskKind::MultipleChoice;
  bool report_acc_norm = false;  ///< whether lm-eval reports acc_norm for this task
  std::vector<ChoiceItem> items;
  /// Whether `items` are all the file holds (false: reading stopped at max_items with more left).
  bool whole = true;
};

/// Names of the zero-shot tasks, in report order: arc_easy, arc_challenge, boolq, hellaswag,
/// openbookqa, piqa, winogrande, lambada, copa.
const std::vector<std::string>& zero_shot_task_names();

/// True when `name` is one of zero_shot_task_names().
bool is_zero_shot_task(const std::string& name);

/// Loads a zero-shot task from the shared data folder (the folder holding `eval/`): the first
/// `max_items` items (0: all; reading stops there). Throws UsageError for an unknown name (listing
/// the valid ones) and Error for unreadable or malformed files.
TaskData load_zero_shot_task(const std::string& name, const std::string& data_dir, int64_t max_items = 0);

/// The data file(s) of a task, relative to the data folder (e.g. "eval/arc_easy/arc_easy_test.mosaic.jsonl").
std::vector<std::string> zero_shot_task_files(const std::string& name);

// ---- Format readers (used by load_zero_shot_task; public for tests and custom data). ----
// Each reads items in file order and stops after `max_items` of them (0: to the end of the file);
// `whole`, when given, is set to whether no item was left unread.

/// mosaic multiple-choice jsonl: {"query": str, "choices": [str, ...], "gold": int}. Each item's
/// context is `query + context_suffix`, its continuations " " + choice.
std::vector<ChoiceItem> read_mosaic_choices(const std::string& path, const std::string& context_suffix,
                                            int64_t max_items = 0, bool* whole = nullptr);

/// mosaic WinoGrande jsonl: {"context_options": [str, str], "continuation": str, "gold": int}.
std::vector<ChoiceItem> read_mosaic_partial(const std::string& path, int64_t max_items = 0, bool* whole = nullptr);

/// mosaic LAMBADA jsonl: {"context": str, "continuation": str}; one choice per item, gold 0.
std::vector<ChoiceItem> read_mosaic_lambada(const std::string& path, int64_t max_items = 0, bool* whole = nullptr);

/// llama.cpp HellaSwag text: 6 lines per item (context, gold label 0-3, four endings).
std::vector<ChoiceItem> read_hellaswag_llamacpp(const std::string& path, int64_t max_items = 0, bool* whole = nullptr);

/// Original PIQA release: jsonl {"goal", "sol1", "sol2"} and the aligned labels file (0 or 1 per line).
std::vector<ChoiceItem> read_piqa_original(const std::string& jsonl_path, const std::string& labels_path,
                                           int64_t max_items = 0, bool* whole = nullptr);

}  // namespace latmix
