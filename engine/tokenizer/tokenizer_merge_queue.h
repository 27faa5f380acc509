#pragma once
// Private to the tokenizer implementation files: the pair-merge loop shared by BPE (merge rank)
// and llama2.c (best score). Included by tokenizer_internal.h.

#include <cstddef>
#include <cstdint>
#include <optional>
#include <queue>
#include <utility>
#include <vector>

namespace latmix::tok {

namespace merge_detail {
struct Candidate {
  double priority;
  size_t left;  // index of the left symbol; symbols merge into the left one, so this is also
                // its position order among the live symbols
  int32_t left_id;
  int32_t right_id;
  int32_t merged_id;
};
struct Later {
  bool operator()(const Candidate& a, const Candidate& b) const {
    if (a.priority != b.priority) return a.priority > b.priority;
    return a.left > b.left;
  }
};
constexpr size_t kNone = static_cast<size_t>(-1);
}  // namespace merge_detail

// Merges adjacent symbols of `ids` until no pair merges. `pair_fn(left_id, right_id)` returns
// std::optional<std::pair<double, int32_t>>: (priority, merged id) when the pair merges; the
// lowest priority merges first, the leftmost pair on ties.
//
// A heap of candidate pairs over a linked list of symbols. Popping the lowest (priority, left)
// is the same as rescanning the whole list for the best pair after every merge (what GPT-2's
// bpe() and run.c do), because a merge only changes the pairs next to it; stale candidates are
// recognised by their ids no longer being there.
template <class PairFn>
void merge_symbols(std::vector<int32_t>& ids, PairFn pair_fn) {
  using merge_detail::Candidate;
  using merge_detail::kNone;
  const size_t n = ids.size();
  if (n < 2) return;
  std::vector<size_t> prev(n), next(n);
  std::vector<bool> alive(n, true);
  for (size_t i = 0; i < n; ++i) {
    prev[i] = i == 0 ? kNone : i - 1;
    next[i] = i + 1 == n ? kNone : i + 1;
  }
  std::priority_queue<Candidate, std::vector<Candidate>, merge_detail::Later> queue;
  auto push = [&](size_t left) {
    const size_t right = next[left];
    if (right == kNone) return;
    const std::optional<std::pair<double, int32_t>> merge = pair_fn(ids[left], ids[right]);
    if (merge) queue.push({merge->first, left, ids[left], ids[right], merge->second});
  };
  for (size_t i = 0; i + 1 < n; ++i) push(i);
  while (!queue.empty()) {
    const Candidate c = queue.top();
    queue.pop();
    const size_t right = next[c.left];
    if (!alive[c.left] || right == kNone || ids[c.left] != c.left_id || ids[right] != c.right_id) {
      continue;
    }
    ids[c.left] = c.merged_id;
    alive[right] = false;
    next[c.left] = next[right];
    if (next[right] != kNone) prev[next[right]] = c.left;
    if (prev[c.left] != kNone) push(prev[c.left]);
    push(c.left);
  }
  size_t out = 0;
  for (size_t i = 0; i != kNone; i = next[i]) ids[out++] = ids[i];
  ids.resize(out);
}

}  // namespace latmix::tok
