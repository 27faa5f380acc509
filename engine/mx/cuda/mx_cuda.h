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
/// [p.rows, ceil(p.n / p.block)], exactly as mx_detail::encode_rows_cpu. With `nibbles` (4-bit
/// formats) the codes are packed in the same pass into uint8 [p.rows, ceil(p.n / 2)], exactly as
/// pack_nibbles packs them (element 2i in the low nibble, an odd row's last high nibble 0).
const char* encode(const void* in, uint8_t* codes, uint8_t* scales, DType dtype, const QuantParams& p,
                   void* stream, bool nibbles = false);

/// The decoding parameters of `format` for codes of a row-major [rows, n] tensor (packed two per
/// byte when `nibbles`) with NVFP4's tensor scale `tensor_scale`: the value tables of mx_decode.
/// Host code, defined in mx_cuda_dispatch.cpp.
DecodeParams make_decode_params(const MxFormat& format, float tensor_scale, int64_t rows, int64_t n, bool nibbles);

/// Decoding: codes uint8 [p.rows, p.n] (or [p.rows, ceil(p.n / 2)] packed) and scale codes uint8
/// [p.rows, ceil(p.n / p.block)] to values [p.rows, p.n] of `dtype` in `out`, bit for bit mx_decode's
/// fp32 product rounded to `dtype` as LibTorch's CPU conversion rounds it (NaN as NaN).
const char* decode(const uint8_t* codes, const uint8_t* scales, void* out, DType dtype, const DecodeParams& p,
                   void* stream);

/// Which kernel fake_quantize and encode use for these arguments: "vector" (16-byte accesses, a
/// few threads per block, blocks tile the rows) or "per-block" (one thread per block: tails, odd
/// block sizes, misaligned pointers).
const char* kernel_choice(const void* in, const void* out, DType dtype, const QuantParams& p);
/// Which kernel encode uses: "vector" or "per-block".
const char* encode_kernel_choice(const void* in, const uint8_t* codes, DType dtype, const QuantParams& p,
                                 bool nibbles);
/// Which kernel decode uses: "vector" (units of 8 values in one block, aligned pointers) or
/// "per-element".
const char* decode_kernel_choice(const uint8_t* codes, const void* out, DType dtype, const DecodeParams& p);

}  // namespace latmix::mx_cuda
