#pragma once
/// \file api/calibration.h
/// Room: engine/api, the use-case layer (issue 16). The GPTQ calibration and its one default, shared
/// by the export task (api/export.h), the evaluate task (api/evaluate.h: `latmix eval --quant`, the
/// studio's quantization specs) and the studio's Export tab.

#include <cstdint>
#include <optional>
#include <string>

#include "latmix/api/learn.h"
#include "latmix/calib_data.h"
#include "latmix/model.h"
#include "latmix/tokenizer.h"

namespace latmix::api {

/// The GPTQ calibration size when the request leaves it unset, for `latmix export`, `latmix eval
/// --quant ...weights=gptq` and the studio's Export tab alike: the literature's 128 sequences of
/// 2048 tokens on CUDA, 16 of 256 on the CPU (4096 tokens: the Hessians of the bundled models are
/// well conditioned with them, and an export takes seconds); the length at most the model's context
/// (`max_position` <= 0: unknown, 2048). Learning has its own size (learn_calibration_defaults()).
CalibrationSize gptq_calibration_defaults(bool gpu, int64_t max_position);

/// A GPTQ calibration set and what was taken.
struct GptqCalibration {
  CalibrationSet set;
  std::string file;  ///< the text's path
  std::string note;  ///< "calibration: 16 x 256 tokens ... of FILE (the GPTQ default on the CPU: ...)"
};
/// The sequences of `file` ("": `bundled_sample`), `samples` x `seqlen` (unset: the defaults above;
/// with the default count, a text with fewer windows gives all it has).
/// \throws latmix::UsageError when there is no text (the sample not installed) or a size is below
/// 1 sequence / 2 tokens; latmix::Error for an unreadable file.
GptqCalibration gptq_calibration(const std::string& file, std::optional<int64_t> samples,
                                 std::optional<int64_t> seqlen, const Model& model, const Tokenizer& tokenizer,
                                 const std::string& bundled_sample);


/// `path` when it names a regular file, else "" (a bundled sample that is not installed).
std::string regular_file_or_empty(const std::string& path);

}  // namespace latmix::api
