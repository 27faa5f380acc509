// The fused column loop of one GPTQ lazy batch (gptq_cuda.h): one launch runs a whole stretch of
// columns, where the ATen loop launches about twenty small kernels per column.
//
// The rows of W are independent in this loop (a row's quantization, error and update read only
// that row and the shared inverse factor), so each warp owns one row and walks the columns in
// order: the lanes share the scalar work of a column (all compute it; lane 0 writes) and split its
// update of the later columns. Only __syncwarp orders memory; no block-wide barrier is needed.
#include <cuda_runtime.h>

#include <cstdint>

#include "gptq_cuda.h"

namespace latmix::gptq_cuda {

namespace {

constexpr int kWarpsPerBlock = 8;
constexpr unsigned kFullMask = 0xFFFFFFFFu;

// The maximum of amax_bits over the row's batch columns [j, j + len), in every lane.
__device__ uint32_t block_amax(const float* w, int64_t j, int64_t len, int lane) {
  uint32_t m = 0;
  for (int64_t k = j + lane; k < j + len; k += 32) {
    const uint32_t b = mx_cuda::amax_bits(w[k]);
    m = b > m ? b : m;
  }
  for (int off = 16; off > 0; off >>= 1) {
    const uint32_t o = __shfl_xor_sync(kFullMask, m, off);
    m = o > m ? o : m;
  }
  return m;
}

__global__ void __launch_bounds__(kWarpsPerBlock * 32) sweep_columns_kernel(BatchArgs a) {
  const int lane = static_cast<int>(threadIdx.x) & 31;
  const int64_t r = static_cast<int64_t>(blockIdx.x) * kWarpsPerBlock + static_cast<int64_t>(threadIdx.x >> 5);
  if (r >= a.rows) return;  // a whole warp: r is the same in all its lanes
  float* w = a.w + r * a.ldw;
  float* scales = a.scales + r * a.lds;
  for (int64_t j = a.begin; j < a.end; ++j) {
    const int g = a.group[j];
    const int len = a.scale_here[j];
    if (len > 0) {
      const float X = block_scale_value(block_amax(w, j, len, lane), a.scale);
      if (lane == 0) scales[g] = X;
      __syncwarp();
    }
    const float x = w[j];
    const float q = grid_round(x, scales[g], a.grid);
    const float e = column_error(x, q, a.hinv[j * a.ldh + j]);
    if (lane == 0) {
      a.q[r * a.ldq + j] = q;
      a.err[r * a.lderr + j] = e;
    }
    // Column j itself is not updated: nothing reads it again (the ATen loop's update of it is
    // discarded with the batch).
    const float* h = a.hinv + j * a.ldh;
    for (int64_t k = j + 1 + lane; k < a.count; k += 32) w[k] = updated(w[k], e, h[k]);
    __syncwarp();
  }
}

}  // namespace

const char* sweep_columns(const BatchArgs& a, void* stream) {
  if (a.rows == 0 || a.begin >= a.end) return nullptr;
  const auto blocks = static_cast<unsigned>((a.rows + kWarpsPerBlock - 1) / kWarpsPerBlock);
  sweep_columns_kernel<<<blocks, kWarpsPerBlock * 32, 0, static_cast<cudaStream_t>(stream)>>>(a);
  const cudaError_t err = cudaGetLastError();
  return err == cudaSuccess ? nullptr : cudaGetErrorString(err);
}

}  // namespace latmix::gptq_cuda
