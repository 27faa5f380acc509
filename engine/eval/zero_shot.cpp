// Log-likelihood scoring of (context, continuation) requests (eval_zero_shot.h).
#include <ATen/ATen.h>
#include <c10/core/InferenceMode.h>

#include <algorithm>
#include <map>
#include <numeric>

#include "latmix/error.h"
#include "latmix/eval_zero_shot.h"

namespace latmix {

namespace {

/// One distinct input row and the requests that read their continuation from it.
struct Row {
  std::vector<int32_t> input;  // (context + continuation)[:-1], cut on the left to max_length
  std::vector<size_t> requests;
};

/// A continuation token to score: its hidden state is `position` of batch row `row`.
struct Target {
  int64_t row, position;
  int32_t token;
  size_t request;
};

/// Log-probabilities and greedy matches of the targets, accumulated into `out`.
void score_targets(const Model& model, const at::Tensor& hidden, const std::vector<Target>& targets,
                   std::vector<Loglikelihood>& out) {
  if (targets.empty()) return;
  const int64_t T = hidden.size(1);
  std::vector<int64_t> flat, tokens;
  for (const Target& t : targets) {
    flat.push_back(t.row * T + t.position);
    tokens.push_back(t.token);
  }
  const at::Device dev = hidden.device();
  at::Tensor index = at::tensor(flat, at::kLong).to(dev);
  at::Tensor selected = hidden.reshape({-1, hidden.size(2)}).index_select(0, index);
  at::Tensor logp = at::log_softmax(model.logits_from_hidden(selected), -1);
  at::Tensor tok = at::tensor(tokens, at::kLong).to(dev);
  at::Tensor lp = logp.gather(1, tok.unsqueeze(1)).squeeze(1).to(at::kDouble).cpu();
  at::Tensor hit = logp.argmax(1).eq(tok).cpu();
  const double* lpp = lp.data_ptr<double>();
  const bool* hp = hit.data_ptr<bool>();
  for (size_t i = 0; i < targets.size(); ++i) {
    Loglikelihood& r = out[targets[i].request];
    r.logprob += lpp[i];
    r.greedy = r.greedy && hp[i];
  }
}

std::vector<Row> build_rows(const std::vector<LoglikelihoodRequest>& requests, int64_t max_length) {
  std::map<std::vector<int32_t>, size_t> index;
  std::vector<Row> rows;
  for (size_t i = 0; i < requests.size(); ++i) {
    std::vector<int32_t> full = requests[i].context;
    full.insert(full.end(), requests[i].continuation.begin(), requests[i].continuation.end());
    full.pop_back();
    if (static_cast<int64_t>(full.size()) > max_length) full.erase(full.begin(), full.end() - max_length);
    auto [it, added] = index.emplace(full, rows.size());
    if (added) rows.push_back({std::move(full), {}});
    rows[it->second].requests.push_back(i);
  }
  // Longest first, as lm-eval: a batch's padding stays small and an out-of-memory shows at once.
  std::stable_sort(rows.begin(), rows.end(),
                   [](const Row& a, const Row& b) { return a.input.size() > b.input.size(); });
  return rows;
}

void score_rows(const Model& model, const std::vector<LoglikelihoodRequest>& requests, const ScoringOptions& opt,
                int64_t max_length, const JobControl& job, std::vector<Loglikelihood>& out) {
  const std::vector<Row> rows = build_rows(requests, max_length);
  const size_t batch = static_cast<size_t>(std::max<int64_t>(1, opt.batch_size));
  int64_t done = 0;
  for (size_t r0 = 0; r0 < rows.size(); r0 += batch) {
    job.cancel.check();
    const size_t nb = std::min(batch, rows.size() - r0);
    const int64_t T = static_cast<int64_t>(rows[r0].input.size());
    at::Tensor ids = at::zeros({static_cast<int64_t>(nb), T}, at::kLong);
    std::vector<Target> targets;
    for (size_t b = 0; b < nb; ++b) {
      const Row& row = rows[r0 + b];
      const int64_t n = static_cast<int64_t>(row.input.size());
      auto acc = ids.accessor<int64_t, 2>();
      for (int64_t t = 0; t < n; ++t) acc[static_cast<int64_t>(b)][t] = row.input[static_cast<size_t>(t)];
      for (size_t q : row.requests) {
        const auto& cont = requests[q].continuation;
        const int64_t L = static_cast<int64_t>(cont.size());
        for (int64_t k = 0; k < L; ++k) {
          targets.push_back({static_cast<int64_t>(b), n - L + k, cont[static_cast<size_t>(k)], q});
        }
        ++done;
      }
    }
    score_targets(model, model.hidden_states(ids), targets, out);
    job.report("score", done, static_cast<int64_t>(requests.size()));
  }
}

/// Requests [first, last) share their context: it runs once, each continuation from a copy of the cache.
void score_group_cached(const Model& model, const std::vector<LoglikelihoodRequest>& requests, size_t first,
                        size_t last, std::vector<Loglikelihood>& out) {
  const auto& ctx = requests[first].context;
  KvCache cache;
  at::Tensor ids = at::tensor(std::vector<int64_t>(ctx.begin(), ctx.end()), at::kLong).unsqueeze(0);
  at::Tensor ctx_hidden = model.hidden_states(ids, &cache);
  at::Tensor last_hidden = ctx_hidden.narrow(1, ctx_hidden.size(1) - 1, 1);
  for (size_t q = first; q < last; ++q) {
    const auto& cont = requests[q].continuation;
    at::Tensor hidden = last_hidden;
    if (cont.size() > 1) {
      KvCache branch = cache;  // the cache grows by concatenation: the copy leaves `cache` as it is
      at::Tensor rest = at::tensor(std::vector<int64_t>(cont.begin(), cont.end() - 1), at::kLong).unsqueeze(0);
      hidden = at::cat({last_hidden, model.hidden_states(rest, &branch)}, 1);
    }
    std::vector<Target> targets;
    for (size_t k = 0; k < cont.size(); ++k) targets.push_back({0, static_cast<int64_t>(k), cont[k], q});
    score_targets(model, hidden, targets, out);
  }
}

void score_cached(const Model& model, const std::vector<LoglikelihoodRequest>& requests, const ScoringOptions& opt,
                  int64_t max_length, const JobControl& job, std::vector<Loglikelihood>& out) {
  std::vector<LoglikelihoodRequest> too_long;
  std::vector<size_t> too_long_index;
  size_t first = 0;
  while (first < requests.size()) {
    job.cancel.check();
    size_t last = first + 1;
    while (last < requests.size() && requests[last].context == requests[first].context) ++last;
    bool fits = true;
    for (size_t q = first; q < last; ++q) {
      fits =
          fits && static_cast<int64_t>(requests[q].context.size() + requests[q].continuation.size()) - 1 <= max_length;
    }
    if (fits) score_group_cached(model, requests, first, last, out);
    for (size_t q = first; q < last && !fits; ++q) {
      too_long.push_back(requests[q]);
      too_long_index.push_back(q);
    }
    job.report("score", static_cast<int64_t>(last), static_cast<int64_t>(requests.size()));
    first = last;
  }
  if (too_long.empty()) return;
  std::vector<Loglikelihood> cut(too_long.size(), Loglikelihood{0, true});
  score_rows(model, too_long, opt, max_length, {}, cut);
  for (size_t i = 0; i < cut.size(); ++i) out[too_long_index[i]] = cut[i];
}

}  // namespace

std::vector<Loglikelihood> score_loglikelihoods(const Model& model, const std::vector<LoglikelihoodRequest>& requests,
                                                const ScoringOptions& options, const JobControl& job) {
  const int64_t max_length = options.max_length > 0 ? options.max_length : model.config().max_position;
  if (max_length < 2) throw UsageError("zero-shot scoring: max_length must be at least 2");
  for (size_t i = 0; i < requests.size(); ++i) {
    if (requests[i].continuation.empty())
      throw Error("zero-shot scoring: request " + std::to_string(i) + " has an empty continuation");
    if (requests[i].context.empty())
      throw Error("zero-shot scoring: request " + std::to_string(i) + " has an empty context");
    if (static_cast<int64_t>(requests[i].continuation.size()) > max_length) {
      throw Error("zero-shot scoring: request " + std::to_string(i) + " has a continuation of " +
                  std::to_string(requests[i].continuation.size()) + " tokens, more than max_length " +
                  std::to_string(max_length));
    }
  }
  c10::InferenceMode guard;
  std::vector<Loglikelihood> out(requests.size(), Loglikelihood{0, true});
  job.report("score", 0, static_cast<int64_t>(requests.size()));
  if (options.prefix_cache)
    score_cached(model, requests, options, max_length, job, out);
  else
    score_rows(model, requests, options, max_length, job, out);
  return out;
}

}  // namespace latmix
