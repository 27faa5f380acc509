#pragma once
// Internals of MX-aware GPTQ (quant_gptq.h), shared by gptq.cpp, gptq_sweep.cpp and the unit
// tests: the element grid tables, the column sweep, and which implementation runs its column loop.

#include <ATen/ATen.h>

#include <cstdint>

#include "latmix/mx.h"
#include "latmix/progress.h"
#include "latmix/quant_gptq.h"

namespace latmix::gptq_detail {

/// The finite element values of a format, sorted, with what a tie between neighbours picks.
struct GridTables {
  at::Tensor values;      ///< fp32 [G]
  at::Tensor midpoints;   ///< fp32 [G - 1]
  at::Tensor pick_upper;  ///< int64 [G - 1]: 1 when a tie between values[i] and values[i + 1] goes up
  bool signed_zero = true;
};

GridTables make_grid(const MxFormat& format, at::Device device);

/// round_to_mx_grid with prepared tables.
at::Tensor round_on_grid(const at::Tensor& values, const at::Tensor& scales, const GridTables& t);

/// Which implementation runs the column loop of each lazy batch. Every choice gives the same bits
/// (the matrix products around the loop are the same ATen calls in all of them).
enum class SweepKernel {
  Auto,  ///< Host for CPU tensors, Cuda for CUDA tensors in builds with the kernel, otherwise Aten
  Aten,  ///< about twenty ATen operations per column (any device; the reference)
  Host,  ///< the fused kernel's loop run on the host (CPU tensors): checks its arithmetic anywhere, and
         ///< is the CPU's sweep (a GPTQ quantization of the 6M model, 32 x 128 tokens: 2.6 s with Aten, 2.3 s)
  Cuda,  ///< the fused kernel (CUDA tensors; throws latmix::Error elsewhere and in builds without it)
};

/// Whether this build has the fused GPTQ kernel (LibTorch with CUDA and nvcc at build time).
bool gptq_cuda_kernel_built();

/// What a sweep takes from the Hessian alone: the same for every linear that reads one input (q, k
/// and v; gate and up), so quantize_model() factors each input's Hessian once per layer.
struct HessianFactor {
  at::Tensor dead;  ///< bool [n]: diag(H) == 0 (those columns' weights become 0)
  at::Tensor perm;  ///< int64 [n]: position -> column (act-order's, or the identity)
  at::Tensor hinv;  ///< fp32 [n, n]: the upper Cholesky factor of (H + damp I)^-1, permuted
};

/// The factor of a Hessian [n, n] (any float dtype) on `device`, with `options`' damping and
/// column order. \throws latmix::Error when H + damp I is not positive definite.
HessianFactor factor_hessian(const at::Tensor& hessian, const GptqOptions& options, at::Device device);

/// The GPTQ sweep over W [rows, n] (fp32, dead columns zeroed) against H [n, n] (fp32, dead
/// diagonal entries set to 1), on W's device: the quantized weight in the original column order,
/// before the final reprojection. Cancel is checked once per lazy batch.
at::Tensor gptq_sweep(const at::Tensor& W, const at::Tensor& H, const MxFormat& format, const GptqOptions& options,
                      const JobControl& job, SweepKernel kernel);
/// The same with H's factor (factor_hessian, on W's device).
at::Tensor gptq_sweep(const at::Tensor& W, const HessianFactor& factor, const MxFormat& format,
                      const GptqOptions& options, const JobControl& job, SweepKernel kernel);

/// gptq_quantize_weight with a chosen implementation of the column loop, and `factor` when the
/// caller has factored `hessian` already (factor_hessian with these options, on the weight's device).
GptqResult quantize_weight(const at::Tensor& weight, const at::Tensor& hessian, const MxFormat& format,
                           const GptqOptions& options, const JobControl& job, SweepKernel kernel,
                           const HessianFactor* factor = nullptr);

}  // namespace latmix::gptq_detail
