// Tokenization of zero-shot items and their metrics (eval_zero_shot.h).
#include <algorithm>
#include <cmath>

#include "latmix/error.h"
#include "latmix/eval_zero_shot.h"

namespace latmix {

namespace {

/// Unicode characters of UTF-8 text (bytes that are not continuation bytes).
double char_length(const std::string& s) {
  return static_cast<double>(
      std::count_if(s.begin(), s.end(), [](char c) { return (static_cast<unsigned char>(c) & 0xC0) != 0x80; }));
}

/// The choice text lm-eval measures for acc_norm: the continuation without the delimiter space.
double choice_length(const std::string& continuation) {
  const bool delimited = !continuation.empty() && continuation[0] == ' ';
  return std::max(1.0, char_length(continuation) - (delimited ? 1.0 : 0.0));
}

size_t argmax(const std::vector<double>& v) {
  return static_cast<size_t>(std::max_element(v.begin(), v.end()) - v.begin());  // first of equal maxima
}

double mean_stderr(double p, int64_t n) {
  return std::sqrt(p * (1.0 - p) / static_cast<double>(n - 1));
}

void set_accuracy(ZeroShotResult& r, const std::string& name, double hits) {
  const double p = hits / static_cast<double>(r.items);
  r.metrics[name] = p;
  if (r.items >= 2) r.standard_errors[name] = mean_stderr(p, r.items);
}

void compute_metrics(const TaskData& task, const std::vector<ChoiceItem>& items, ZeroShotResult& r) {
  double acc = 0, acc_norm = 0, loglik = 0;
  for (size_t i = 0; i < items.size(); ++i) {
    const ItemScores& s = r.scores[i];
    if (task.kind == TaskKind::LastWord) {
      acc += s.greedy[0] ? 1 : 0;
      loglik += s.logprobs[0];
      continue;
    }
    acc += argmax(s.logprobs) == static_cast<size_t>(s.gold) ? 1 : 0;
    std::vector<double> normed;
    for (size_t c = 0; c < s.logprobs.size(); ++c) {
      normed.push_back(s.logprobs[c] / choice_length(items[i].continuations[c]));
    }
    acc_norm += argmax(normed) == static_cast<size_t>(s.gold) ? 1 : 0;
  }
  set_accuracy(r, "acc", acc);
  if (task.report_acc_norm) set_accuracy(r, "acc_norm", acc_norm);
  if (task.kind == TaskKind::LastWord) r.metrics["ppl"] = std::exp(-loglik / static_cast<double>(r.items));
}

}  // namespace

LoglikelihoodRequest tokenize_request(const Tokenizer& tokenizer, const std::string& context,
                                      const std::string& continuation, bool bos) {
  const size_t keep = context.find_last_not_of(" \t\n\r\f\v");
  const size_t cut = keep == std::string::npos ? 0 : keep + 1;
  const std::string ctx = context.substr(0, cut);
  const std::string cont = context.substr(cut) + continuation;
  std::vector<int32_t> whole = tokenizer.encode(ctx + cont);
  std::vector<int32_t> ctx_ids = tokenizer.encode(ctx);
  LoglikelihoodRequest r;
  if (bos || ctx.empty()) {
    const std::optional<int32_t> prefix = tokenizer.bos_id() ? tokenizer.bos_id() : tokenizer.eos_id();
    if (!prefix)
      throw Error(tokenizer.source_file() + ": BOS needed (empty context or BOS asked for) but the tokenizer has none");
    r.context.push_back(*prefix);
  }
  r.context.insert(r.context.end(), ctx_ids.begin(), ctx_ids.end());
  const size_t n = std::min(ctx_ids.size(), whole.size());
  r.continuation.assign(whole.begin() + static_cast<std::ptrdiff_t>(n), whole.end());
  if (r.continuation.empty()) {
    throw Error("zero-shot: the continuation \"" + continuation + "\" encodes to no tokens after its context");
  }
  return r;
}

ZeroShotResult evaluate_zero_shot(const Model& model, const Tokenizer& tokenizer, const TaskData& task,
                                  const ZeroShotOptions& options, const JobControl& job) {
  if (options.limit < 0) throw UsageError("zero-shot: limit must be 0 (all) or more");
  const size_t n =
      options.limit > 0 ? std::min(task.items.size(), static_cast<size_t>(options.limit)) : task.items.size();
  const std::vector<ChoiceItem> items(task.items.begin(), task.items.begin() + static_cast<std::ptrdiff_t>(n));
  ZeroShotResult r;
  r.task = task.name;
  r.items = static_cast<int64_t>(n);
  r.bos = options.bos.value_or(tokenizer.add_bos_by_default());
  if (n == 0) throw Error(task.source + ": no items to evaluate");
  std::vector<LoglikelihoodRequest> requests;
  for (const ChoiceItem& item : items) {
    for (size_t c = 0; c < item.contexts.size(); ++c) {
      requests.push_back(tokenize_request(tokenizer, item.contexts[c], item.continuations[c], r.bos));
    }
  }
  const std::vector<Loglikelihood> scores = score_loglikelihoods(model, requests, options.scoring, job);
  size_t q = 0;
  for (const ChoiceItem& item : items) {
    ItemScores s;
    s.gold = item.gold;
    for (size_t c = 0; c < item.contexts.size(); ++c, ++q) {
      s.logprobs.push_back(scores[q].logprob);
      s.greedy.push_back(scores[q].greedy);
    }
    r.scores.push_back(std::move(s));
  }
  compute_metrics(task, items, r);
  return r;
}

}  // namespace latmix
