#pragma once
/// \file api/block.h
/// Room: engine/api, the use-case layer (issue 16). The explain-a-block task: `latmix mx block` and
/// the studio's Block Microscope. One activation block of 32 values (16 for nvfp4) at a capture
/// point, layer and token, taken apart under one MX format (inspect_mx_block()), compared under
/// every format, and the same block after a transform (a built-in one or a learned plan): what the
/// quantizer sees. Both clients fill an ExplainBlockRequest and show the BlockExplanation; every
/// step (which tokens, the capture, the slicing and its clamping, the comparison) is done here once.

#include <ATen/ATen.h>

#include <nlohmann/json.hpp>

#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include "latmix/model.h"
#include "latmix/mx_block.h"
#include "latmix/progress.h"
#include "latmix/tokenizer.h"

namespace latmix::api {

/// The formats of the comparison, in its order: every MX format, then "nvfp4" (also the choices of
/// the request's `format`).
std::vector<std::string> explain_block_formats();

/// Which block to explain: `latmix mx block`'s options, by the same names (snake_case here and in
/// JSON, --kebab-case on the command line).
struct ExplainBlockRequest {
  std::string model;           ///< --model (the client opens it; run_explain_block() takes it open)
  std::string tokenizer;       ///< --tokenizer ("": the model's own)
  std::string device = "cpu";  ///< --device
  std::string dtype = "fp32";  ///< --dtype: compute dtype
  std::string point = "residual";  ///< --point: a capture point name (capture_point_name())
  int64_t layer = 0;  ///< --layer (ignored for lm_head_in: the final norm's output)
  int64_t token = 0;  ///< --token: position in the token sequence (past the end: the last)
  int64_t block = 0;  ///< --block: index of the block along the features (past the end: the last)
  std::string format = "mxfp4";  ///< --format: one of explain_block_formats()
  /// --transform: "none", a built-in name (builtin_transform_names()), or the PREFIX of a transforms
  /// file (PREFIX.json + PREFIX.safetensors, a learned plan).
  std::string transform = "none";
  /// The tokens, when `text` is empty: the opening of this sample text (BOS + the tokens of its first
  /// 8000 characters, at most `sample_tokens`). The CLI and the studio give the bundled sample
  /// (resources/calibration/pride_and_prejudice_ch1-6.txt); not an option of the CLI.
  std::string sample;
  int64_t sample_tokens = 128;  ///< not an option of the CLI
  /// --text FILE: the tokens are calibration sequence `sequence` of this text, chosen as
  /// load_calibration_text() chooses them with the options below (the activation explorer's
  /// sequences: an outlier it found is shown at the token that produced it).
  std::string text;
  int64_t sequence = 0;          ///< --sequence
  int64_t samples = 16;          ///< --samples
  int64_t seqlen = 256;          ///< --seqlen
  std::string sampling = "even";  ///< --sampling: even | random
  uint64_t seed = 0;             ///< --seed: of --sampling random and of a built-in transform's random signs
  bool bos = false;              ///< --bos: every sequence starts with the BOS token
  /// The token ids themselves, when a client has them from an earlier result (BlockExplanation::ids;
  /// the studio keeps them while only the layer, token, block, format or transform change): then no
  /// text is read, and `text` / `sequence` only say where they came from. Not an option of the CLI.
  std::vector<int64_t> ids;
};

/// Every field.
nlohmann::json to_json(const ExplainBlockRequest& request);
/// The inverse of to_json(). Strict: an unknown key or a value of the wrong type is a
/// latmix::UsageError naming the key ("explain-block request: key 'layer': expected an integer, ...");
/// a key left out keeps the default. Values are checked by run_explain_block().
ExplainBlockRequest explain_block_request_from_json(const nlohmann::json& json);

/// One row of the format comparison.
struct FormatComparison {
  std::string format;  ///< "mxfp4", ..., "nvfp4 (2 x 16)"
  std::string scale;   ///< the block scale: "2^-3", or a number; "E4M3 per 16" for nvfp4
  double sqnr_db = 0;  ///< +inf when exact
  double mse = 0;
  int64_t clipped = 0;
};
/// "2^E" when the scale is a power of two, else the scale with 4 significant digits.
std::string scale_label(const MxBlockView& block);
/// The block (1-D, at most 32 values) under every format of explain_block_formats(); nvfp4's blocks
/// are 16 values, so its row is the 32 values as two nvfp4 blocks ("nvfp4 (2 x 16)").
std::vector<FormatComparison> compare_formats(const at::Tensor& block);

/// What run_explain_block() found: where the block is, and the block before and after the transform.
struct BlockExplanation {
  std::string point;       ///< the capture point's name
  int64_t layer = 0;       ///< the layer (lm_head_in: the number of layers)
  int64_t token = 0;       ///< the token shown (clamped to the sequence)
  int64_t tokens = 0;      ///< tokens in the sequence
  int32_t token_id = 0;
  std::string token_text;  ///< the token decoded
  bool token_clamped = false;  ///< the request's token was past the end: the last is shown
  int64_t block = 0;           ///< the block shown (clamped)
  int64_t blocks = 0;          ///< blocks along the features
  bool block_clamped = false;
  int64_t first_channel = 0, last_channel = 0;  ///< the block's channels, inclusive
  std::string format;     ///< the request's format
  std::string transform;  ///< the request's transform
  std::string text;       ///< the calibration text ("": the sample's opening)
  int64_t sequence = 0;   ///< its sequence (0 for the sample)
  std::vector<int64_t> ids;  ///< the token ids the model ran (`tokens` of them)
  MxBlockView before;     ///< the block under `format`
  std::vector<FormatComparison> comparison;
  /// With a transform (not "none"): the same channels of T(x).
  std::optional<MxBlockView> after;
  std::vector<FormatComparison> comparison_after;
};

/// The result as `latmix mx block --json` prints it: the fields above by their names, the views as
/// objects of MxBlockView's fields, `after` null without a transform. A number that is not finite
/// (sqnr_db of an exact block is +inf) is written as the string "inf", "-inf" or "nan", as
/// `latmix mx stats --json` writes it, and read back from it.
nlohmann::json to_json(const BlockExplanation& result);
/// The inverse of to_json(); strict as explain_block_request_from_json() ("block explanation: ...").
BlockExplanation block_explanation_from_json(const nlohmann::json& json);

/// Explains the block the request names on `model` (opened from request.model with `tokenizer`):
/// the tokens (request.ids, else the sample's opening, or the calibration sequence of `text`), the activation at the
/// point and layer (capture_activation(), progress "layers" and cancel through `job`), the token and
/// block (clamped to the last when past the end, as the result says), inspect_mx_block() under the
/// format, the comparison, and with a transform the same block of T(x).
/// \throws latmix::UsageError naming the option for a bad point, layer, format, transform, token,
/// block or sequence (or no text at all); latmix::Error for an unreadable text; latmix::Cancelled.
BlockExplanation run_explain_block(const ExplainBlockRequest& request, const Model& model,
                                   const Tokenizer& tokenizer, const JobControl& job = {});

}  // namespace latmix::api
