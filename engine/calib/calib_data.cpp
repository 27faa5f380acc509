// Calibration windows from a tokenized text (see calib_data.h for the sampling rules).
#include "latmix/calib_data.h"

#include <algorithm>
#include <numeric>
#include <random>

#include "latmix/error.h"
#include "latmix/files.h"
#include "latmix/text_stream.h"

namespace latmix {

namespace {

// Unbiased index in [0, n) from raw mt19937_64 output (rejection sampling), identical everywhere.
uint64_t draw_below(std::mt19937_64& rng, uint64_t n) {
  const uint64_t limit = UINT64_MAX - UINT64_MAX % n;
  uint64_t r = rng();
  while (r >= limit) r = rng();
  return r % n;
}

std::vector<int64_t> choose_windows(int64_t available, const CalibrationOptions& o) {
  std::vector<int64_t> chosen(static_cast<size_t>(o.samples));
  if (o.sampling == WindowSampling::Even) {
    for (int64_t i = 0; i < o.samples; ++i) chosen[static_cast<size_t>(i)] = i * available / o.samples;
    return chosen;
  }
  std::vector<int64_t> all(static_cast<size_t>(available));
  std::iota(all.begin(), all.end(), 0);
  std::mt19937_64 rng(o.seed);
  for (int64_t i = 0; i < o.samples; ++i) {
    const auto j = i + static_cast<int64_t>(draw_below(rng, static_cast<uint64_t>(available - i)));
    std::swap(all[static_cast<size_t>(i)], all[static_cast<size_t>(j)]);
  }
  chosen.assign(all.begin(), all.begin() + o.samples);
  std::sort(chosen.begin(), chosen.end());
  return chosen;
}

// With `counted` >= 0 the text is not in `ids`: the set gets its windows' offsets and each
// sequence only its BOS (the caller appends the text tokens).
CalibrationSet sample_impl(const std::vector<int32_t>& ids, const CalibrationOptions& o, const std::string& origin,
                           int64_t counted = -1) {
  const int64_t min_len = o.bos_id ? 3 : 2;
  if (o.samples < 1) throw UsageError("calibration samples: expected 1 or more, found " + std::to_string(o.samples));
  if (o.seqlen < min_len) {
    throw UsageError("calibration seqlen: expected " + std::to_string(min_len) + " or more, found " +
                     std::to_string(o.seqlen));
  }
  const int64_t text_per_window = o.bos_id ? o.seqlen - 1 : o.seqlen;
  const auto n = counted >= 0 ? counted : static_cast<int64_t>(ids.size());
  const int64_t available = n / text_per_window;
  if (available < o.samples) {
    fail(origin, "calibration text too short",
         std::to_string(o.samples) + " non-overlapping windows of " + std::to_string(text_per_window) +
             " text tokens (" + std::to_string(o.samples * text_per_window) + " tokens)",
         std::to_string(n) + " tokens, " + std::to_string(available) +
             " windows; lower --samples or --seqlen, or use a longer text");
  }
  CalibrationSet set;
  set.options = o;
  set.text_tokens = n;
  set.windows_available = available;
  for (int64_t w : choose_windows(available, o)) {
    const int64_t start = w * text_per_window;
    std::vector<int32_t> seq;
    seq.reserve(static_cast<size_t>(o.seqlen));
    if (o.bos_id) seq.push_back(*o.bos_id);
    if (counted < 0) seq.insert(seq.end(), ids.begin() + start, ids.begin() + start + text_per_window);
    set.sequences.push_back(std::move(seq));
    set.offsets.push_back(start);
  }
  return set;
}

}  // namespace

WindowSampling parse_window_sampling(const std::string& name) {
  if (name == "even") return WindowSampling::Even;
  if (name == "random") return WindowSampling::Random;
  throw UsageError("unknown window sampling '" + name + "' (expected even or random)");
}

std::string to_string(WindowSampling sampling) {
  return sampling == WindowSampling::Even ? "even" : "random";
}

std::string CalibrationSet::describe() const {
  std::string s = std::to_string(size()) + " x " + std::to_string(seqlen()) + " tokens, ";
  s +=
      options.sampling == WindowSampling::Even ? "evenly spaced" : "random (seed " + std::to_string(options.seed) + ")";
  s += " over " + std::to_string(windows_available) + " windows of a " + std::to_string(text_tokens) + "-token text, " +
       (options.bos_id ? "BOS first" : "no BOS");
  return s;
}

at::Tensor CalibrationSet::batch(int64_t first, int64_t count, at::Device device) const {
  if (first < 0 || count < 0 || first + count > size()) {
    throw Error("calibration batch [" + std::to_string(first) + ", " + std::to_string(first + count) +
                ") out of range (" + std::to_string(size()) + " sequences)");
  }
  at::Tensor out = at::empty({count, seqlen()}, at::TensorOptions().dtype(at::kLong));
  auto acc = out.accessor<int64_t, 2>();
  for (int64_t i = 0; i < count; ++i) {
    const auto& seq = sequences[static_cast<size_t>(first + i)];
    for (int64_t t = 0; t < seqlen(); ++t) acc[i][t] = seq[static_cast<size_t>(t)];
  }
  return out.to(device);
}

CalibrationSet sample_calibration(const std::vector<int32_t>& ids, const CalibrationOptions& options) {
  return sample_impl(ids, options, "");
}

CalibrationSet load_calibration_text(const std::string& path, const Tokenizer& tokenizer,
                                     const CalibrationOptions& options) {
  // A text of up to kKeptTokens tokens is kept whole; a longer one is read twice, in pieces: once
  // to count its windows, once to take the chosen ones. Memory stays bounded by the windows.
  constexpr size_t kKeptTokens = size_t{16} << 20;
  std::vector<int32_t> ids;
  int64_t n = 0;
  {
    TextTokenStream stream(tokenizer, path);
    bool more = true;
    while (ids.size() <= kKeptTokens && (more = stream.next(ids))) {
    }
    if (!more) return sample_impl(ids, options, path);
    n = static_cast<int64_t>(ids.size());  // too long to keep: count the rest
    ids.clear();
    ids.shrink_to_fit();
    while (stream.next(ids)) {
      n += static_cast<int64_t>(ids.size());
      ids.clear();
    }
  }
  CalibrationSet layout = sample_impl(std::vector<int32_t>(), options, path, n);
  TextTokenStream stream(tokenizer, path);
  std::vector<int32_t> piece;
  int64_t first = 0;  // file position of piece[0], in tokens
  size_t w = 0;
  const int64_t text_per_window = options.bos_id ? options.seqlen - 1 : options.seqlen;
  while (w < layout.offsets.size() && stream.next(piece)) {
    while (w < layout.offsets.size() &&
           layout.offsets[w] + text_per_window <= first + static_cast<int64_t>(piece.size())) {
      auto& seq = layout.sequences[w];
      const auto begin = piece.begin() + (layout.offsets[w] - first);
      seq.insert(seq.end(), begin, begin + text_per_window);
      ++w;
    }
    // Keep what the next window may still need from this piece.
    const int64_t end = first + static_cast<int64_t>(piece.size());
    const int64_t keep_from = w < layout.offsets.size() ? std::min(std::max(layout.offsets[w], first), end) : end;
    piece.erase(piece.begin(), piece.begin() + (keep_from - first));
    first = keep_from;
  }
  if (w != layout.offsets.size()) fail(path, "the file changed while it was read (fewer tokens on the second pass)");
  return layout;
}

}  // namespace latmix
