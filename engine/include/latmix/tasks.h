#pragma once
/// \file tasks.h
/// Room: engine/eval/ (latmix_engine).
/// The evaluation suite: perplexity tasks and zero-shot tasks by name, run on any Model (full
/// precision or quantized) with one call, results as plain values (DESIGN.md §6).
///
/// Task names:
///  - perplexity: "wikitext2" (eval/wikitext-2/wiki.test.raw), "ptb" (eval/ptb/ptb.test.txt),
///    "frankenstein" (corpus/gutenberg/pg84_frankenstein.txt), "alice"
///    (corpus/gutenberg/pg11_alice_in_wonderland.txt), "text:PATH" (any text file). The file is
///    tokenized as it is (Gutenberg header included), cut into windows (evaluate_perplexity).
///  - zero-shot: zero_shot_task_names() (eval_data.h).
///  - "all": every named task above except text:PATH.

#include <nlohmann/json_fwd.hpp>

#include <cstdint>
#include <map>
#include <optional>
#include <string>
#include <vector>

#include "latmix/eval_zero_shot.h"
#include "latmix/model.h"
#include "latmix/progress.h"
#include "latmix/tokenizer.h"

namespace latmix {

struct EvalOptions {
  std::string data_dir;           ///< the shared data folder (holding eval/ and corpus/)
  int64_t limit = 0;              ///< zero-shot: first N items; perplexity: at most N windows (0: all)
  int64_t seqlen = 512;           ///< perplexity window
  bool ppl_bos = false;           ///< perplexity: BOS at the start of every window
  std::optional<bool> bos;        ///< zero-shot: BOS before contexts (default: the tokenizer's add_bos_by_default)
  int64_t batch_size = 16;        ///< zero-shot rows / perplexity windows per forward pass
  bool prefix_cache = false;      ///< zero-shot: ScoringOptions::prefix_cache
  bool keep_item_scores = false;  ///< keep per-item log-likelihoods in TaskResult::item_scores
};

/// The result of one task. Metrics: perplexity tasks "ppl" and "mean_nll"; zero-shot tasks "acc",
/// "acc_norm" (where lm-eval reports it), "ppl" (lambada).
struct TaskResult {
  std::string task;
  std::map<std::string, double> metrics;
  std::map<std::string, double> standard_errors;  ///< by metric name, where one is defined
  int64_t items = 0;                              ///< zero-shot items, or perplexity windows
  std::string convention;               ///< how the number was made (windows, tokens, BOS, prompt, source file)
  double seconds = 0;                   ///< wall time of the task (loading and tokenizing included)
  std::vector<ItemScores> item_scores;  ///< with EvalOptions::keep_item_scores (zero-shot only)
};

/// {task, metrics, stderr, items, convention, seconds}: a task's result as `latmix eval --json` and
/// the comparison's report.json write it.
nlohmann::json to_json(const TaskResult& result);

/// Splits "a,b,c" into task names, expands "all", drops duplicates (first wins) and checks every
/// name; throws UsageError naming an unknown task and listing the valid ones.
std::vector<std::string> parse_task_list(const std::string& list);

/// Every named task in report order (the expansion of "all").
std::vector<std::string> all_task_names();

/// The perplexity file of a named perplexity task relative to the data folder, or nullopt when
/// the task is not one (text:PATH gives PATH itself).
std::optional<std::string> perplexity_task_file(const std::string& task);

/// Runs the tasks one after the other. Progress: stage "TASK: score" / "TASK: perplexity".
/// Throws UsageError for an unknown task, Error for missing or malformed data.
std::vector<TaskResult> run_tasks(const Model& model, const Tokenizer& tokenizer, const std::vector<std::string>& tasks,
                                  const EvalOptions& options, const JobControl& job = {});

/// The default shared data folder: $LATMIX_DATA_DIR when set, else "../shared/data".
std::string default_eval_data_dir();

}  // namespace latmix
