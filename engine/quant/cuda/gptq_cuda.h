#pragma once
// The column loop of one GPTQ lazy batch as the fused CUDA kernel runs it (gptq_kernels.cu), in
// plain C++ (no CUDA, no LibTorch headers) so that the host can run the same steps too
// (gptq_sweep.cpp, SweepKernel::Host) and the unit tests check them against the ATen loop in
// every build, CPU-only ones included. All pointers are device pointers for the kernel.
//
// Bit exactness with the ATen loop (gptq_sweep.cpp): each step is the one correctly rounded fp32
// operation ATen performs (the kernel is built with --fmad=false and uses the _rn intrinsics), the
// grid search is at::bucketize's binary search, and the block scale is the codec's rule
// (mx_cuda::e8m0_exponent, checked against the CPU codec in test_mx_cuda.cpp).

#include <cstdint>

#include "../../mx/cuda/mx_cuda_math.h"

namespace latmix::gptq_cuda {

LATMIX_HD float sub_rn(float a, float b) {
#if defined(__CUDA_ARCH__)
  return __fsub_rn(a, b);
#else
  return a - b;
#endif
}

/// round_to_mx_grid's tables (gptq_sweep.h GridTables): the element values in increasing order,
/// the midpoints between neighbours, and whether a tie at a midpoint goes to the upper value.
struct GridView {
  const float* values = nullptr;        ///< [size]
  const float* midpoints = nullptr;     ///< [size - 1]
  const int64_t* pick_upper = nullptr;  ///< [size - 1]
  int64_t size = 0;
  int signed_zero = 1;  ///< copy the sign of v / X onto the result (all formats but INT8)
};

/// at::bucketize(y, mids, right=false) for one value: the first index whose midpoint is >= y.
/// ATen's loop is written with negated comparisons, which sends NaN past the end; so is this one.
/// Branch-free (the halving below moves `base` with a select, not a jump): the predicate
/// !(m >= y) holds on a prefix of the sorted midpoints, so the prefix's length is the answer.
LATMIX_HD int64_t bucket(const float* mids, int64_t len, float y) {
  if (len <= 0) return 0;
  const float* base = mids;
  int64_t n = len;
  while (n > 1) {
    const int64_t half = n >> 1;
    base = !(base[half] >= y) ? base + half : base;
    n -= half;
  }
  return (base - mids) + (!(*base >= y) ? 1 : 0);
}

/// round_on_grid (gptq_sweep.cpp) of one value w with its block scale s. A tie (y exactly on a
/// midpoint: at::bucketize with right=true would answer past it) goes where pick_upper says.
LATMIX_HD float grid_round(float w, float s, const GridView& g) {
  const float y = mx_cuda::div_rn(w, s);
  const int64_t len = g.size - 1;
  const int64_t lo = bucket(g.midpoints, len, y);
  int64_t hi = lo;  // bucketize(right=true): past the midpoints equal to y
  while (hi < len && !(g.midpoints[hi] > y)) ++hi;
  const int64_t idx = lo != hi ? lo + g.pick_upper[lo < len - 1 ? lo : len - 1] : lo;
  const float q = mx_cuda::mul_rn(g.values[idx], s);
  return g.signed_zero ? mx_cuda::copy_sign(q, y) : q;
}

/// mx_block_scales of a block whose amax_bits maximum is `amax_u`: 2^e by the format's rule, or
/// the NaN that std::nanf("") gives for a block holding a NaN or an Inf.
LATMIX_HD float block_scale_value(uint32_t amax_u, const mx_cuda::QuantParams& p) {
  if (amax_u == 0x7F800000u) return mx_cuda::u2f(0x7FC00000u);
  return mx_cuda::pow2f(mx_cuda::e8m0_exponent(amax_u, p.rule, p.el));
}

/// GPTQ's error of a column value w quantized to q, with d the diagonal of the inverse factor.
LATMIX_HD float column_error(float w, float q, float d) {
  return mx_cuda::div_rn(sub_rn(w, q), d);
}

/// A later column's value after one column's update: x - err * h, two roundings as in ATen.
LATMIX_HD float updated(float x, float err, float h) {
  return sub_rn(x, mx_cuda::mul_rn(err, h));
}

/// Everything the kernel needs for the columns [begin, end) of one lazy batch of `count` columns.
/// Row-major fp32 throughout; `ld*` are row strides in elements.
struct BatchArgs {
  float* w = nullptr;  ///< the batch's current weights W1 [rows, count], updated in place
  int64_t ldw = 0;
  float* err = nullptr;  ///< the batch's scaled errors Err1 [rows, count]
  int64_t lderr = 0;
  float* q = nullptr;  ///< the quantized columns, at the batch's first column [rows, count]
  int64_t ldq = 0;
  const float* hinv = nullptr;  ///< the inverse factor at the batch's first row and column [count, count]
  int64_t ldh = 0;
  float* scales = nullptr;  ///< the block scales [rows, groups]
  int64_t lds = 0;
  const int32_t* group = nullptr;       ///< per batch column: its MX group
  const int32_t* scale_here = nullptr;  ///< per batch column: L > 0 to take the group's scale there,
                                        ///< from batch columns [j, j + L) (the whole group)
  int64_t rows = 0;
  int64_t count = 0;
  int64_t begin = 0;
  int64_t end = 0;
  GridView grid;
  mx_cuda::QuantParams scale;  ///< the format's E8M0 rule and element parameters
};

/// Runs columns [a.begin, a.end) of the batch on `stream` (a cudaStream_t): one warp per row.
/// Returns nullptr, or the CUDA error message when the launch failed. Defined in gptq_kernels.cu
/// (only in builds with CUDA).
const char* sweep_columns(const BatchArgs& a, void* stream);

}  // namespace latmix::gptq_cuda
