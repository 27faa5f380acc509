#pragma once
/// \file eval_zero_shot.h
/// Room: engine/eval/ (latmix_engine).
/// Zero-shot scoring with lm-eval's conventions (DESIGN.md §6): log-likelihood of a continuation
/// given a context, batched, and the accuracy metrics of a multiple-choice task.

#include <cstdint>
#include <map>
#include <optional>
#include <string>
#include <vector>

#include "latmix/eval_data.h"
#include "latmix/model.h"
#include "latmix/progress.h"
#include "latmix/tokenizer.h"

namespace latmix {

/// Token ids of one (context, continuation) pair; the continuation is never empty.
struct LoglikelihoodRequest {
  std::vector<int32_t> context;
  std::vector<int32_t> continuation;
};

/// lm-eval's pair encoding: trailing whitespace of the context moves to the front of the
/// continuation; the context is encoded alone and together with the continuation, and the
/// continuation's tokens are those of the joint encoding after the context's tokens. With `bos`
/// the BOS id is put in front of both. An empty context becomes [BOS] (or [EOS] when the tokenizer
/// has no BOS), as lm-eval does. Throws Error when the continuation encodes to no tokens.
LoglikelihoodRequest tokenize_request(const Tokenizer& tokenizer, const std::string& context,
                                      const std::string& continuation, bool bos);

/// The score of one request.
struct Loglikelihood {
  double logprob = 0;   ///< sum over the continuation tokens of log p(token | everything before it)
  bool greedy = false;  ///< every continuation token is the argmax of its distribution
};

struct ScoringOptions {
  int64_t batch_size = 16;  ///< rows per forward pass (1: every request alone)
  int64_t max_length = 0;   ///< longest input row; longer ones are cut on the left (0: the model's max_position)
  /// Run each context once with a KV cache and every continuation that follows it from that cache
  /// (consecutive requests with the same context tokens), instead of batching full rows.
  bool prefix_cache = false;
};

/// Scores requests. Rows (context + continuation without its last token) are sorted by length,
/// identical rows are run once, and batches are right-padded (causal attention never lets a real
/// position see the padding). Results are in request order. Progress stage "score", in requests.
std::vector<Loglikelihood> score_loglikelihoods(const Model& model, const std::vector<LoglikelihoodRequest>& requests,
                                                const ScoringOptions& options, const JobControl& job = {});

/// Which items a run uses: the first `limit` (0: all) of the file, in file order.
struct ZeroShotOptions {
  int64_t limit = 0;
  std::optional<bool> bos;  ///< BOS before every context (default: tokenizer.add_bos_by_default())
  ScoringOptions scoring;
};

/// One item's scores (kept for reports and reference comparisons).
struct ItemScores {
  std::vector<double> logprobs;  ///< per choice
  std::vector<bool> greedy;      ///< per choice
  int32_t gold = 0;
};

/// Metrics of one task: "acc", "acc_norm" (where lm-eval reports it), "ppl" (lambada). Standard
/// errors (lm-eval's: sqrt(p (1 - p) / (n - 1))) for the accuracies when n >= 2.
struct ZeroShotResult {
  std::string task;
  std::map<std::string, double> metrics;
  std::map<std::string, double> standard_errors;
  int64_t items = 0;
  bool bos = false;
  std::vector<ItemScores> scores;
};

/// Tokenizes and scores the first `limit` items of a task and computes its metrics:
/// acc = argmax of the log-likelihoods; acc_norm = argmax of log-likelihood / length of the
/// choice (its characters, without the " " in front, as lm-eval's len(choice)); LastWord tasks:
/// acc = the greedy continuation equals the target, ppl = exp(-mean log-likelihood).
ZeroShotResult evaluate_zero_shot(const Model& model, const Tokenizer& tokenizer, const TaskData& task,
                                  const ZeroShotOptions& options, const JobControl& job = {});

}  // namespace latmix
