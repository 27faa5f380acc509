#pragma once
// Host interface of the fused CUDA kernels (mx_kernels.cu). Plain C++: no CUDA and no LibTorch
// headers, so engine/mx/mx_cuda_dispatch.cpp can include it; all pointers are device pointers.

#include <cstdint>

#include "mx_cuda_math.h"

namespace latmix {
struct MxFormat;
}  // namespace latmix

namespace latmix::mx_cuda {

/// The kernel parameters of `format` for a row-major [rows, n] tensor quantized along its rows;
/// s2 is NVFP4's fp32 tensor scale (1 when unused). Host code, defined in mx_cuda_dispatch.cpp
/// (in every build, so the scalar code of mx_cuda_math.h can be checked on the host).
QuantParams make_quant_params(const MxFormat& format, int64_t rows, int64_t n, float s2);

/// The element types the kernels read and write.
enum class DType { Float = 0, BFloat16 = 1, Half = 2 };

/// Fake quantization (quantize, then dequantize) of the row-major [p.rows, p.n] tensor `in` along
/// its rows into `out` (same dtype, same shape, not overlapping `in`), on `stream` (a
/// cudaStream_t). Returns nullptr, or the CUDA error message when the launch failed.
const char* fake_quantize(const void* in, void* out, DType dtype, const QuantParams& p, void* stream);

/// Encoding of the same: element codes uint8 [p.rows, p.n] (one per byte) and scale codes uint8
/// [p.rows, ceil(p.n / p.block)], exactly as mx_detail::encode_rows_cpu.
const char* encode(const void* in, uint8_t* codes, uint8_t* scales, DType dtype, const QuantParams& p,
                   void* stream);

/// Which kernel fake_quantize and encode use for these arguments: "vector" (16-byte accesses, a
/// few threads per block, blocks tile the rows) or "per-block" (one thread per block: tails, odd
/// block sizes, misaligned pointers).
const char* kernel_choice(const void* in, const void* out, DType dtype, const QuantParams& p);

}  // namespace latmix::mx_cuda
