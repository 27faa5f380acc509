#pragma once
/// \file calib_data.h
/// Room: engine/calib/ (latmix_engine).
/// Calibration sequences: N windows of L tokens taken deterministically from a tokenized text.
///
/// The text is tokenized once (no BOS) and cut into its W = floor(tokens / L') non-overlapping
/// windows, where L' is the number of text tokens per window (L, or L - 1 with a BOS), the tail
/// dropped (as perplexity does, DESIGN.md §6). N of these windows are chosen:
///  - Even: windows floor(i * W / N) for i = 0..N-1, spread evenly over the whole text;
///  - Random: a seeded partial Fisher-Yates shuffle of the window indices (std::mt19937_64, whose
///    sequence the C++ standard fixes; the index is drawn by our own reduction, not by a
///    std::*_distribution, so every platform picks the same windows), then sorted.
/// Windows never overlap, so no token is seen twice. A text with fewer than N windows is an error.

#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include <ATen/ATen.h>

#include "latmix/tokenizer.h"

namespace latmix {

/// How the calibration windows are chosen from the text's non-overlapping windows.
enum class WindowSampling {
  Even,    ///< evenly spaced over the text (the default)
  Random,  ///< seeded random choice (see the file comment)
};

/// "even" / "random". \throws latmix::UsageError otherwise.
WindowSampling parse_window_sampling(const std::string& name);
std::string to_string(WindowSampling sampling);

struct CalibrationOptions {
  int64_t samples = 16;  ///< N sequences
  int64_t seqlen = 256;  ///< L tokens per sequence (including the BOS when bos_id is set)
  WindowSampling sampling = WindowSampling::Even;
  uint64_t seed = 0;              ///< Random only
  std::optional<int32_t> bos_id;  ///< when set, every sequence is BOS + (L - 1) text tokens
};

/// The chosen sequences and where they came from.
struct CalibrationSet {
  std::vector<std::vector<int32_t>> sequences;  ///< N sequences of L ids
  std::vector<int64_t> offsets;                 ///< token offset of each window in the text
  int64_t text_tokens = 0;                      ///< tokens in the whole text
  int64_t windows_available = 0;                ///< W
  CalibrationOptions options;

  int64_t size() const { return static_cast<int64_t>(sequences.size()); }
  int64_t seqlen() const { return options.seqlen; }
  /// One line: "16 x 256 tokens, evenly spaced over 58 windows of a 14912-token text, no BOS".
  std::string describe() const;
  /// Sequences [first, first + count) as an int64 tensor [count, L] on `device`.
  at::Tensor batch(int64_t first, int64_t count, at::Device device = at::kCPU) const;
};

/// Chooses the sequences from already tokenized text.
/// \throws latmix::UsageError for samples < 1 or seqlen < 2 (or < 3 with a BOS);
///         latmix::Error "calibration text too short: ..." when the text has fewer than N windows
///         (the message says how many tokens and windows it has and how many are needed).
CalibrationSet sample_calibration(const std::vector<int32_t>& ids, const CalibrationOptions& options);

/// Reads and tokenizes a text file (no BOS; Tokenizer::encode), then sample_calibration().
/// The "too short" error names the file.
CalibrationSet load_calibration_text(const std::string& path, const Tokenizer& tokenizer,
                                     const CalibrationOptions& options);

/// The calibration texts named by `source`: "gutenberg" is every book of DATA/corpus/gutenberg
/// except the held-out ones (pg84 Frankenstein, pg11 Alice: the gutenberg models' evaluation
/// text), in file-name order; otherwise a comma-separated list of text files. 	hrows
/// latmix::Error when a named file or the gutenberg folder does not exist.
std::vector<std::string> calibration_files(const std::string& source, const std::string& data_dir);

/// Tokenizes the files in order (no BOS, nothing between them) until at least `token_budget`
/// tokens are read (0: all), then sample_calibration() on the concatenation. The "too short"
/// error names the files.
CalibrationSet load_calibration_files(const std::vector<std::string>& paths, const Tokenizer& tokenizer,
                                      const CalibrationOptions& options, int64_t token_budget = 0);

}  // namespace latmix
