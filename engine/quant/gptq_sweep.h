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

/// The GPTQ sweep over W [rows, n] (fp32, dead columns zeroed) against H [n, n] (fp32, dead
/// diagonal entries set to 1), on W's device: the quantized weight in the original column order,
/// before the final reprojection. Cancel is checked once per lazy batch.
at::Tensor gptq_sweep(const at::Tensor& W, const at::Tensor& H, const MxFormat& format, const GptqOptions& options,
                      const JobControl& job, SweepKernel kernel);

/// gptq_quantize_weight with a chosen implementation of the column loop.
GptqResult quantize_weight(const at::Tensor& weight, const at::Tensor& hessian, const MxFormat& format,
                           const GptqOptions& options, const JobControl& job, SweepKernel kernel);

}  // namespace latmix::gptq_detail
