// The evaluation suite: task names to perplexity or zero-shot runs (tasks.h).
#include <algorithm>
#include <chrono>
#include <cstdlib>
#include <nlohmann/json.hpp>

#include "latmix/error.h"
#include "latmix/eval.h"
#include "latmix/eval_data.h"
#include "latmix/files.h"
#include "latmix/text_stream.h"
#include "latmix/tasks.h"

namespace latmix {

namespace {

struct PerplexityTask {
  const char* name;
  const char* file;
};

const std::vector<PerplexityTask>& perplexity_tasks() {
  static const std::vector<PerplexityTask> table = {
      {"wikitext2", "eval/wikitext-2/wiki.test.raw"},
      {"ptb", "eval/ptb/ptb.test.txt"},
      {"frankenstein", "corpus/gutenberg/pg84_frankenstein.txt"},
      {"alice", "corpus/gutenberg/pg11_alice_in_wonderland.txt"},
  };
  return table;
}

std::string join_path(const std::string& dir, const std::string& rel) {
  if (dir.empty()) return rel;
  return dir.back() == '/' ? dir + rel : dir + "/" + rel;
}

std::string valid_names() {
  std::string s;
  for (const std::string& t : all_task_names()) s += t + ", ";
  return s + "text:PATH, all";
}

/// Progress of one task, reported as "TASK: stage".
JobControl task_job(const std::string& task, const JobControl& job) {
  JobControl j = job;
  if (job.progress) {
    j.progress = [task, outer = job.progress](std::string_view stage, int64_t done, int64_t total) {
      outer(task + ": " + std::string(stage), done, total);
    };
  }
  return j;
}

TaskResult run_perplexity(const Model& model, const Tokenizer& tok, const std::string& task, const std::string& path,
                          const EvalOptions& opt, const JobControl& job) {
  PerplexityOptions po;
  po.seqlen = opt.seqlen;
  po.max_windows = opt.limit;
  po.bos = opt.ppl_bos;
  if (po.bos) {
    const auto bos = tok.bos_id() ? tok.bos_id() : model.config().bos_token_id;
    if (!bos) throw UsageError("perplexity with BOS: the model's tokenizer has no BOS token");
    po.bos_id = *bos;
  }
  // Only as far as --limit windows need (issue 20, item 10).
  const int64_t per_window = po.bos ? po.seqlen - 1 : po.seqlen;
  const EncodedText text = encode_text_file(tok, path, po.max_windows * std::max<int64_t>(per_window, 1));
  const std::vector<int32_t>& ids = text.ids;
  const PerplexityResult p = evaluate_perplexity(model, ids, po, task_job(task, job));
  TaskResult r;
  r.task = task;
  r.metrics = {{"ppl", p.perplexity}, {"mean_nll", p.mean_nll}};
  r.items = p.windows;
  r.convention =
      p.describe() + "; " + (text.whole ? "" : "the first ") + std::to_string(p.text_tokens) + " text tokens of " +
      path + " tokenized as it is" + (text.whole ? "" : " (read as far as --limit needs)");
  return r;
}

TaskResult run_zero_shot(const Model& model, const Tokenizer& tok, const std::string& task, const EvalOptions& opt,
                         const JobControl& job) {
  // Only the items --limit takes are read (issue 20, item 10).
  const TaskData data = load_zero_shot_task(task, opt.data_dir, opt.limit);
  ZeroShotOptions zo;
  zo.limit = opt.limit;
  zo.bos = opt.bos;
  zo.scoring.batch_size = opt.batch_size;
  zo.scoring.prefix_cache = opt.prefix_cache;
  ZeroShotResult z = evaluate_zero_shot(model, tok, data, zo, task_job(task, job));
  TaskResult r;
  r.task = task;
  r.metrics = z.metrics;
  r.standard_errors = z.standard_errors;
  r.items = z.items;
  const std::string which = data.whole ? (z.items < static_cast<int64_t>(data.items.size()) ? "first " : "all ") +
                                             std::to_string(z.items) + " of " + std::to_string(data.items.size()) +
                                             " items"
                                       : "first " + std::to_string(z.items) + " items (read as far as --limit needs)";
  r.convention = "lm-eval zero-shot, " + which + ", " + (z.bos ? "BOS before the context" : "no BOS") +
                 (data.kind == TaskKind::PartialScoring ? ", partial scoring" : "") + "; " + data.source;
  if (opt.keep_item_scores) r.item_scores = std::move(z.scores);
  return r;
}

}  // namespace

std::vector<std::string> all_task_names() {
  std::vector<std::string> names;
  for (const PerplexityTask& t : perplexity_tasks()) names.emplace_back(t.name);
  for (const std::string& t : zero_shot_task_names()) names.push_back(t);
  return names;
}

std::optional<std::string> perplexity_task_file(const std::string& task) {
  if (task.rfind("text:", 0) == 0) return task.substr(5);
  for (const PerplexityTask& t : perplexity_tasks()) {
    if (task == t.name) return std::string(t.file);
  }
  return std::nullopt;
}

std::vector<std::string> parse_task_list(const std::string& list) {
  std::vector<std::string> out;
  auto add = [&out](const std::string& t) {
    if (std::find(out.begin(), out.end(), t) == out.end()) out.push_back(t);
  };
  size_t start = 0;
  while (start <= list.size()) {
    size_t end = list.find(',', start);
    if (end == std::string::npos) end = list.size();
    const std::string name = list.substr(start, end - start);
    start = end + 1;
    if (name == "all") {
      for (const std::string& t : all_task_names()) add(t);
    } else if (name == "text:") {
      throw UsageError("task 'text:' needs a file: text:PATH");
    } else if (perplexity_task_file(name) || is_zero_shot_task(name)) {
      add(name);
    } else {
      throw UsageError("unknown task '" + name + "' (valid: " + valid_names() + ")");
    }
  }
  return out;
}

std::vector<TaskResult> run_tasks(const Model& model, const Tokenizer& tokenizer, const std::vector<std::string>& tasks,
                                  const EvalOptions& options, const JobControl& job) {
  if (options.limit < 0) throw UsageError("limit: expected 0 (all) or more");
  if (options.batch_size < 1) throw UsageError("batch size: expected 1 or more");
  std::vector<TaskResult> results;
  for (const std::string& task : tasks) {
    job.cancel.check();
    const auto t0 = std::chrono::steady_clock::now();
    TaskResult r;
    if (const auto file = perplexity_task_file(task)) {
      const bool named = task.rfind("text:", 0) != 0;
      r = run_perplexity(model, tokenizer, task, named ? join_path(options.data_dir, *file) : *file, options, job);
    } else if (is_zero_shot_task(task)) {
      r = run_zero_shot(model, tokenizer, task, options, job);
    } else {
      throw UsageError("unknown task '" + task + "' (valid: " + valid_names() + ")");
    }
    r.seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
    results.push_back(std::move(r));
  }
  return results;
}

std::string default_eval_data_dir() {
  const char* env = std::getenv("LATMIX_DATA_DIR");
  return env != nullptr && *env != '\0' ? std::string(env) : std::string("../shared/data");
}

nlohmann::json to_json(const TaskResult& r) {
  return {{"task", r.task},   {"metrics", r.metrics},       {"stderr", r.standard_errors},
          {"items", r.items}, {"convention", r.convention}, {"seconds", r.seconds}};
}

}  // namespace latmix
