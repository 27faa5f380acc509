#pragma once
/// \file quant_gptq.h
/// Room: engine/quant/ (latmix_engine).
/// Weight quantizers for one linear layer W [out, in], quantized along the input dimension (the
/// last one) in MX blocks: round-to-nearest, and MX-aware GPTQ (docs/quantization.md).
///
/// GPTQ (Frantar et al. 2022) quantizes W column by column and spreads each column's error over
/// the columns not yet quantized, weighted by the inverse Hessian H = 2/n X^T X of the layer's
/// inputs X [n, in], so that ||W X^T - Q X^T|| stays small. This implementation follows the
/// reference algorithm (dead columns zeroed, damping `percdamp * mean(diag H)`, the upper Cholesky
/// factor of H^-1, lazy batch updates of `block_columns` columns, optional act-order) and is
/// MX-aware: every row is quantized in MX blocks along the input dimension, in the original
/// column order (blocks [0, k), [k, 2k), ...), and each block's E8M0 scale is computed, by the
/// format's scale rule, from the current (error-compensated) weights of the block's columns at
/// the moment the sweep reaches the first of them. Every column of the block is then rounded to
/// the element grid times that scale. With act-order the sweep visits columns by decreasing
/// Hessian diagonal, so a block's columns are scattered over the sweep; its scale is still taken
/// when the sweep first touches it, from the exactly updated weights of all its columns.
///
/// With GptqOptions::static_scales every block's scale is instead computed once, before the sweep,
/// from the original weights (FP-Quant's MR-GPTQ implementation does this, with act-order groups
/// likewise following the original column order).
///
/// The result is finally passed through fake_quantize() once more, so that it is guaranteed to be
/// a fixed point of the codec (mx_encode of it decodes back bit for bit). With the Floor rule this
/// changes nothing in practice; with Ceil/RCeil, where error compensation can push a block past
/// the amax its scale came from, a few values may move; GptqResult::reprojected counts them.

#include <ATen/ATen.h>

#include <cstdint>

#include "latmix/mx.h"
#include "latmix/progress.h"

namespace latmix {

/// GPTQ's knobs (the reference implementation's names in brackets).
struct GptqOptions {
  double percdamp = 0.01;       ///< damping added to diag(H), a fraction of its mean [percdamp]
  bool act_order = false;       ///< visit columns by decreasing diag(H) [act_order / desc_act]
  int64_t block_columns = 128;  ///< columns per lazy batch update [blocksize]
  int64_t batch_size = 4;       ///< calibration sequences per forward pass when collecting H
  /// Compute every MX block's scale once, before the sweep, from the original weights (what
  /// MR-GPTQ / FP-Quant does) instead of when the sweep enters the block (the default).
  bool static_scales = false;
};

/// What gptq_quantize_weight() returns.
struct GptqResult {
  at::Tensor weight;         ///< the quantized weight, W's shape, dtype and device
  int64_t dead_columns = 0;  ///< input features with diag(H) == 0 (their weights become 0)
  int64_t reprojected = 0;   ///< values moved by the final fake_quantize (see the file comment)
  /// Proxy output error tr((W - Q) H (W - Q)^T) / tr(W H W^T), with the undamped H: the relative
  /// squared error of the layer's output on the calibration inputs.
  double relative_output_error = 0;
};

/// Round-to-nearest MX quantization of a weight [out, in] along the input dimension: exactly
/// fake_quantize(weight, format, -1).
at::Tensor rtn_quantize_weight(const at::Tensor& weight, const MxFormat& format);

/// Rounds `values` [..., n] to the element grid of `format` times `scales` (a tensor that
/// broadcasts against values; powers of two): q = X * round(v / X), saturated at the element's
/// largest finite magnitude, ties broken by format.rounding. Computed in fp32; for X equal to the
/// block scale of the codec this is bit for bit what fake_quantize() gives.
at::Tensor round_to_mx_grid(const at::Tensor& values, const at::Tensor& scales, const MxFormat& format);

/// The E8M0 block scales fake_quantize() would use for x [rows, n] along the last dimension:
/// fp32 [rows, ceil(n / block)] of powers of two (NaN for a block holding NaN or Inf), computed on
/// x's device without a round trip to the host, bit for bit the scales mx_encode() gives.
at::Tensor mx_block_scales(const at::Tensor& x, const MxFormat& format);

/// Accumulates H = 2/n sum x^T x over batches of inputs x [..., in] (fp32, on x's device).
class HessianAccumulator {
 public:
  explicit HessianAccumulator(int64_t features) : features_(features) {}
  /// Adds the rows of x (any leading shape, last dimension `features`).
  void add(const at::Tensor& x);
  /// H (undefined before the first add()).
  const at::Tensor& hessian() const { return hessian_; }
  int64_t samples() const { return samples_; }
  int64_t features() const { return features_; }

 private:
  int64_t features_;
  int64_t samples_ = 0;
  at::Tensor hessian_;
};

/// MX-aware GPTQ of one weight W [out, in] against the Hessian H [in, in] (see the file comment).
/// Runs on W's device in fp32; H is moved there. On CUDA (in builds with the CUDA kernels) the
/// column loop of each lazy batch is one fused kernel, with the same bits as the ATen loop used
/// elsewhere. Cancel is checked once per lazy batch.
/// \throws latmix::UsageError for an NVFP4 format (its scales are not powers of two) or bad
/// options; latmix::Error when the shapes disagree, W is not finite, or the damped H is not
/// positive definite (raise percdamp).
GptqResult gptq_quantize_weight(const at::Tensor& weight, const at::Tensor& hessian, const MxFormat& format,
                                const GptqOptions& options = {}, const JobControl& job = {});

}  // namespace latmix
