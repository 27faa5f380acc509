#include <c10/core/InferenceMode.h>

#include <cmath>
#include <cstdio>

#include "latmix/error.h"
#include "latmix/eval.h"

namespace latmix {

std::string PerplexityResult::describe() const {
  char buf[256];
  std::snprintf(buf, sizeof(buf), "ppl %.4f (seqlen %lld, %lld windows, %lld tokens scored, %s)", perplexity,
                static_cast<long long>(seqlen), static_cast<long long>(windows),
                static_cast<long long>(tokens_scored), bos ? "BOS per window" : "no BOS");
  return buf;
}

namespace {

/// Sum of -log p(target) over positions, computing lm_head in chunks to bound memory.
double sum_nll(const Model& model, const at::Tensor& hidden, const at::Tensor& targets) {
  const int64_t T = hidden.size(1);
  const int64_t chunk = 256;
  double total = 0;
  for (int64_t s = 0; s < T; s += chunk) {
    const int64_t n = std::min(chunk, T - s);
    at::Tensor logits = model.logits_from_hidden(hidden.narrow(1, s, n));
    at::Tensor logp = at::log_softmax(logits, -1);
    at::Tensor tgt = targets.narrow(1, s, n).unsqueeze(-1);
    total -= logp.gather(-1, tgt).to(at::kDouble).sum().item<double>();
  }
  return total;
}

}  // namespace

namespace {
int64_t perplexity_windows(size_t text_tokens, const PerplexityOptions& opt) {
  const int64_t text_per_window = std::max<int64_t>(1, opt.bos ? opt.seqlen - 1 : opt.seqlen);
  int64_t windows = static_cast<int64_t>(text_tokens) / text_per_window;
  if (opt.max_windows > 0) windows = std::min(windows, opt.max_windows);
  return windows;
}
}  // namespace

int64_t perplexity_passes(size_t text_tokens, const PerplexityOptions& opt) {
  const int64_t batch = std::max<int64_t>(1, opt.batch_size);
  return (perplexity_windows(text_tokens, opt) + batch - 1) / batch;
}

PerplexityResult evaluate_perplexity(const Model& model, const std::vector<int32_t>& ids,
                                     const PerplexityOptions& opt, const JobControl& job) {
  if (opt.seqlen < 2) throw UsageError("perplexity: seqlen must be at least 2");
  if (opt.bos && opt.bos_id < 0) throw UsageError("perplexity: BOS requested but the model has no BOS token");
  const int64_t text_per_window = opt.bos ? opt.seqlen - 1 : opt.seqlen;
  const int64_t windows = perplexity_windows(ids.size(), opt);
  if (windows == 0) {
    throw Error("perplexity: the text has " + std::to_string(ids.size()) + " tokens, fewer than one window of " +
                std::to_string(text_per_window));
  }
  c10::InferenceMode guard;
  double nll = 0;
  int64_t scored = 0;
  const int64_t batch = std::max<int64_t>(1, opt.batch_size);
  job.report("perplexity", 0, windows);
  for (int64_t w0 = 0; w0 < windows; w0 += batch) {
    job.cancel.check();
    const int64_t nb = std::min(batch, windows - w0);
    at::Tensor text = at::from_blob(const_cast<int32_t*>(ids.data()) + w0 * text_per_window,
                                    {nb, text_per_window}, at::kInt)
                          .to(at::kLong);
    at::Tensor input = opt.bos ? at::cat({at::full({nb, 1}, opt.bos_id, at::kLong), text}, 1) : text;
    at::Tensor hidden = model.hidden_states(input);
    // position t predicts token t+1
    at::Tensor targets = input.narrow(1, 1, opt.seqlen - 1).to(model.device());
    nll += sum_nll(model, hidden.narrow(1, 0, opt.seqlen - 1), targets);
    scored += nb * (opt.seqlen - 1);
    job.report("perplexity", w0 + nb, windows);
  }
  PerplexityResult r;
  r.mean_nll = nll / static_cast<double>(scored);
  r.perplexity = std::exp(r.mean_nll);
  r.seqlen = opt.seqlen;
  r.windows = windows;
  r.tokens_scored = scored;
  r.text_tokens = static_cast<int64_t>(ids.size());
  r.bos = opt.bos;
  return r;
}

}  // namespace latmix
