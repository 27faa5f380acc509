#pragma once
/// \file eval.h
/// Room: engine/eval/ (latmix_engine).
/// Perplexity by the GPTQ/QuaRot protocol (DESIGN.md §6).

#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include "latmix/model.h"
#include "latmix/progress.h"

namespace latmix {

struct PerplexityOptions {
  int64_t seqlen = 512;     ///< tokens per window (including the BOS when bos is set)
  int64_t max_windows = 0;  ///< 0: every full window
  bool bos = false;         ///< put bos_id at the start of every window
  int32_t bos_id = -1;      ///< required when bos is set
  int64_t batch_size = 4;   ///< windows per forward pass
};

/// The number and its convention, for reports.
struct PerplexityResult {
  double perplexity = 0;
  double mean_nll = 0;        ///< natural log
  int64_t seqlen = 0;
  int64_t windows = 0;        ///< windows evaluated
  int64_t tokens_scored = 0;  ///< predictions averaged
  int64_t text_tokens = 0;    ///< tokens in the whole text
  bool bos = false;
  /// One line: "ppl 63.78 (seqlen 512, 10 windows, 5110 tokens scored, no BOS)".
  std::string describe() const;
};

/// Forward passes evaluate_perplexity() makes over `text_tokens` tokens (for per-layer progress).
int64_t perplexity_passes(size_t text_tokens, const PerplexityOptions& options);

/// Non-overlapping windows over the tokenized text, tail dropped.
/// Without BOS: each window is `seqlen` text tokens and every position but the first is scored.
/// With BOS: each window is BOS + `seqlen - 1` text tokens and every text token is scored.
/// Throws latmix::Error when the text is shorter than one window.
PerplexityResult evaluate_perplexity(const Model& model, const std::vector<int32_t>& ids,
                                     const PerplexityOptions& options, const JobControl& job = {});

}  // namespace latmix
