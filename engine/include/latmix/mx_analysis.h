#pragma once
/// \file mx_analysis.h
/// Room: engine/calib/ (latmix_engine).
/// The LATMiX paper's Figure 2 analysis on a real model: how the MX quantization error of a
/// layer's activations depends on the MX block size, for no transform, a full Hadamard, a block
/// Hadamard of the block size, a learned rotation and a learned affine transform, together with
/// the two quantities the paper's bound weighs (the transform's condition number and the blocks'
/// magnitudes). `latmix analyze` prints and plots it (docs/methods.md, "The MX error analysis").
///
/// Definitions (x: the activation rows of one capture, one row per token; T: a transform; Q: MX
/// fake quantization along the channels with blocks of b; sums run over every token):
///  - relative error  E = sum ||x - T^-1 Q(T x)||^2 / sum ||x||^2 (fp64 sums). With no transform
///    and b = 32 this is 10^(-SQNR/10) for the SQNR that `latmix stats` reports (calib.h).
///  - block crest  = mean over every (token, block) of max|y| / rms(y) within the block, y = T x
///    (an all-zero block counts 0); it sets how far the power-of-two scale sits above the values.
///  - block peak power = sum over (token, block) of b max|y|^2 / sum ||y||^2: the energy the
///    block scales are sized for, relative to the energy there is (1 for flat blocks).
///  - condition number sigma_max / sigma_min of T's matrix (1 for the orthogonal transforms):
///    how much T^-1 can amplify the quantization error made in T's basis.
///  - block errors (at the detail block size, 32 by default): for each aligned block j of
///    channels, sum ||(x - T^-1 Q(T x))_j||^2 / sum ||x||^2, so the block errors sum to E.
///
/// The learned transforms are fitted per (capture, layer, block size) on the fitting rows: the
/// first 1 - holdout of the tokens (whole sequences come first in capture order); every figure is
/// then measured on the held-out rest (holdout 0: fit and measure on all rows, in-sample, as the
/// paper's analysis does). Adam minimizes the relative error through fake_quantize with a
/// straight-through gradient that also follows the block scale (plain straight-through gives the
/// reconstruction error no gradient); both start at the block Hadamard of the block size. The
/// rotation is RotationTransform with the Cayley map, recentered after every step; the affine map
/// is AffineTransform (LU by default, T(x) = A x + v). The parameters with the lowest error on the
/// fitting rows are kept, and when they do not beat the block Hadamard there the block Hadamard
/// itself is kept (note "kept the block-Hadamard init"): on the fitting rows a learned curve never
/// lies above the block-Hadamard curve; on held-out rows it can, and the report shows it.

#include <ATen/ATen.h>

#include <cstdint>
#include <limits>
#include <string>
#include <vector>

#include "latmix/calib_data.h"
#include "latmix/model.h"
#include "latmix/mx.h"
#include "latmix/progress.h"
#include "latmix/transforms.h"

namespace latmix {

/// The transforms of the analysis, in report order.
enum class AnalysisTransform { None, Hadamard, BlockHadamard, LearnedRotation, LearnedAffine };

/// "none", "hadamard", "block_hadamard", "learned_rotation", "learned_affine".
std::string analysis_transform_name(AnalysisTransform transform);
/// Every AnalysisTransform in report order.
std::vector<AnalysisTransform> analysis_transforms();

struct MxAnalysisOptions {
  std::vector<CapturePoint> points{CapturePoint::Residual};  ///< capture points analysed
  std::vector<int64_t> layers;       ///< decoder layers (empty: all); lm_head_in always uses num_layers
  MxFormat format;                   ///< element, scale rule and rounding (its block is ignored)
  std::vector<int64_t> block_sizes;  ///< empty: analysis_block_sizes(width) per capture
  int64_t detail_block = 32;         ///< block size of the per-block errors
  int64_t steps = 40;                ///< Adam steps per learned fit (0: report the initialization)
  double holdout = 0.25;             ///< share of the rows held out from fitting and measured (0: none)
  double lr = 1e-3;                  ///< Adam learning rate (the affine map's: lr * sqrt(32 / block))
  AffineTransform::Param affine = AffineTransform::Param::LU;
  uint64_t seed = 0;       ///< the block/full Hadamards' random signs
  int64_t batch_size = 4;  ///< sequences per forward pass while capturing
};

/// One transform at one block size.
struct BlockSizeResult {
  int64_t block = 0;
  bool skipped = false;  ///< the transform does not exist at this width (see note)
  std::string note;      ///< why skipped; for learned transforms what was kept
  double rel_error = std::numeric_limits<double>::quiet_NaN();
  double condition_number = 1.0;
  double block_crest = 0.0;
  double block_peak_power = 0.0;
  /// Learned transforms: the relative errors on the fitting rows of the block-Hadamard start and
  /// of the kept transform (fit_error <= init_error), and the Adam step whose parameters were
  /// kept (0: the start was kept).
  double init_error = std::numeric_limits<double>::quiet_NaN();
  double fit_error = std::numeric_limits<double>::quiet_NaN();
  int64_t best_step = 0;
  int64_t steps = 0;
};

/// One transform over every block size of a capture.
struct TransformCurve {
  AnalysisTransform transform = AnalysisTransform::None;
  std::vector<BlockSizeResult> sizes;  ///< one per MxLayerAnalysis::block_sizes, same order
  std::vector<double> block_errors;    ///< at detail_block; empty when not analysed or skipped
};

/// The analysis of one (capture point, layer).
struct MxLayerAnalysis {
  CapturePoint point = CapturePoint::Residual;
  int64_t layer = 0;
  int64_t features = 0;
  int64_t tokens = 0;      ///< rows measured (held out from fitting when fit_tokens < all rows)
  int64_t fit_tokens = 0;  ///< rows the learned transforms were fitted on
  std::vector<int64_t> block_sizes;
  int64_t detail_block = 32;           ///< 0 when the detail block size is not among block_sizes
  std::vector<TransformCurve> curves;  ///< in analysis_transforms() order
  /// The curve of `transform` (present for every transform).
  const TransformCurve& curve(AnalysisTransform transform) const;
};

/// A whole run.
struct MxAnalysis {
  std::string format;              ///< MxFormat::name()
  std::string format_description;  ///< MxFormat::describe() (block size as given; see block_sizes)
  std::string affine;              ///< "lu" or "qr"
  int64_t steps = 0;
  double lr = 0;
  double holdout = 0;
  uint64_t seed = 0;
  int64_t sequences = 0, seqlen = 0;
  std::vector<MxLayerAnalysis> layers;  ///< by layer, then capture point
};

/// The powers of two 2, 4, ..., up to `limit` that divide `width`.
std::vector<int64_t> analysis_block_sizes(int64_t width, int64_t limit = 1024);

/// The fixed transforms of the analysis at width `dim` and block size `block`: identity, the
/// full Hadamard (random signs from `seed`; throws latmix::Error for a width the Hadamard
/// construction does not support) and the block Hadamard of `block` (random signs from `seed`).
/// \throws latmix::UsageError for a learned kind.
TransformPtr make_fixed_analysis_transform(AnalysisTransform kind, int64_t dim, int64_t block, uint64_t seed);

/// E = sum ||x - T^-1 Q(T x)||^2 / sum ||x||^2 for rows x [N, d] (T null: no transform), with
/// `format`'s block size. 0 for an all-zero x.
double relative_mx_error(const at::Tensor& x, const Transform* transform, const MxFormat& format);

/// A learned transform and how it got there.
struct FittedTransform {
  TransformPtr transform;  ///< the kept transform (the block Hadamard itself when learning lost)
  double init_error = 0;   ///< relative error of the block-Hadamard start
  double error = 0;        ///< relative error of `transform` (<= init_error)
  int64_t best_step = 0;   ///< 0: the start was kept
};

/// Fits a learned rotation or affine transform (see the file comment) on rows x [N, d] for
/// `format`'s block size. Checks job.cancel before every step.
/// \throws latmix::UsageError for a fixed kind; latmix::Cancelled.
FittedTransform fit_analysis_transform(const at::Tensor& x, AnalysisTransform kind, const MxFormat& format,
                                       const MxAnalysisOptions& options, const JobControl& job = {});

/// The analysis of one capture's rows x [N, d] (split by options.holdout). Progress: stage "fit", one unit per learned
/// fit
/// (`done_before` of `total` are already done by the caller).
MxLayerAnalysis analyze_activations(const at::Tensor& x, CapturePoint point, int64_t layer,
                                    const MxAnalysisOptions& options, const JobControl& job = {},
                                    int64_t done_before = 0, int64_t total = 0);

/// Runs the model over `data` once, keeping the activations of every asked (point, layer) (float32
/// on the CPU: tokens x width x 4 bytes each), then analyze_activations() on each.
/// Progress: stage "capture" in sequences, then "fit". \throws latmix::UsageError for a layer
/// outside 0..num_layers-1 or no points; latmix::Cancelled.
MxAnalysis analyze_mx_error(Model& model, const CalibrationSet& data, const MxAnalysisOptions& options,
                            const JobControl& job = {});

/// The whole result as JSON text (indent < 0: compact). NaN is written as null.
std::string mx_analysis_to_json(const MxAnalysis& analysis, int indent = -1);
/// report.md: tables per capture, the definitions, and the plots (file names) given.
std::string mx_analysis_markdown(const MxAnalysis& analysis, const std::vector<std::string>& plots);
/// Writes DIR/report.md, DIR/report.json and per capture DIR/error_POINT_LAYER.png (relative
/// error against log2 of the block size, log scale) and DIR/blocks_POINT_LAYER.png (block errors
/// at the detail block size). Returns the paths written.
std::vector<std::string> write_mx_analysis_report(const MxAnalysis& analysis, const std::string& dir);

}  // namespace latmix
