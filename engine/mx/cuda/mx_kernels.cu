// Fused CUDA kernels for MX fake quantization and encoding: one read of the input, one write of
// the output, the block maximum reduced in registers. Bit for bit the CPU loop (mx_cpu.cpp): the
// scalar steps are those of mx_cuda_math.h, compiled with --fmad=false and without fast math.
//
// Two kernels per operation:
//  - vector: when the blocks tile each row (n % block == 0), a block is a whole number of 16-byte
//    vectors (block / (16 / sizeof(T)) = 1, 2, 4, ..., 32 threads) and both pointers are 16-byte
//    aligned. Each thread loads one vector, the threads of a block combine their maxima with warp
//    shuffles, and each thread writes its vector. Specialized at compile time on the element
//    family (FP with E8M0, INT with E8M0, NVFP4) and the rounding.
//  - per-block: one thread per block, two passes over the block (the second from cache). Any
//    block size, tails (the last block of a row shorter than the others), any alignment.
#include <cuda_fp16.h>
#include <cuda_runtime.h>

#include <cstdint>

#include "mx_cuda.h"
#include "mx_cuda_math.h"

namespace latmix::mx_cuda {

namespace {

constexpr int kVecThreads = 256;
constexpr int kBlockThreads = 128;

// Storage of each dtype: fp32 as float, bf16 and fp16 as their 16 bits.
template <int DT>
struct Elem {
  using T = uint16_t;
  static constexpr int kVec = 8;  // per 16 bytes
};
template <>
struct Elem<0> {
  using T = float;
  static constexpr int kVec = 4;
};

template <int DT>
__device__ __forceinline__ float to_float(typename Elem<DT>::T v);
template <>
__device__ __forceinline__ float to_float<0>(float v) {
  return v;
}
template <>
__device__ __forceinline__ float to_float<1>(uint16_t v) {
  return __uint_as_float(static_cast<uint32_t>(v) << 16);
}
template <>
__device__ __forceinline__ float to_float<2>(uint16_t v) {
  return __half2float(__ushort_as_half(v));
}

// Rounds to the storage type as LibTorch's CPU conversions do (round to nearest even). Only ever
// given non-NaN values: bad blocks are written with nan_value.
template <int DT>
__device__ __forceinline__ typename Elem<DT>::T from_float(float f);
template <>
__device__ __forceinline__ float from_float<0>(float f) {
  return f;
}
template <>
__device__ __forceinline__ uint16_t from_float<1>(float f) {
  const uint32_t u = __float_as_uint(f);  // c10::detail::round_to_nearest_even
  return static_cast<uint16_t>((u + 0x7FFFu + ((u >> 16) & 1u)) >> 16);
}
template <>
__device__ __forceinline__ uint16_t from_float<2>(float f) {
  return __half_as_ushort(__float2half_rn(f));
}

// The NaN LibTorch's CPU conversions produce from fp32's default NaN (0x7FC00000).
template <int DT>
__device__ __forceinline__ typename Elem<DT>::T nan_value();
template <>
__device__ __forceinline__ float nan_value<0>() {
  return __uint_as_float(0x7FC00000u);
}
template <>
__device__ __forceinline__ uint16_t nan_value<1>() {
  return 0x7FC0u;
}
template <>
__device__ __forceinline__ uint16_t nan_value<2>() {
  return 0x7E00u;
}

// Element families the vector kernels are specialized on.
enum Family { kFp = 0, kInt = 1, kNvfp4 = 2 };

// p with the compile-time facts filled in, so the inlined scalar code folds its branches.
template <int FAMILY, int AWAY>
__device__ __forceinline__ QuantParams specialize(const QuantParams& p) {
  QuantParams q = p;
  q.el.is_int = FAMILY == kInt;
  q.nvfp4 = FAMILY == kNvfp4;
  q.away = AWAY;
  return q;
}

// The maximum of m over the `tpb` aligned lanes that share a block (tpb: 1, 2, 4, ..., 32). Every
// lane of the warp must call it.
__device__ __forceinline__ uint32_t group_max(uint32_t m, int tpb) {
  for (int o = tpb / 2; o > 0; o /= 2) {
    const uint32_t other = __shfl_xor_sync(0xFFFFFFFFu, m, o);
    m = other > m ? other : m;
  }
  return m;
}

// Per-halfword unsigned minimum and maximum of two 16-bit pairs.
__device__ __forceinline__ uint32_t min_u16x2(uint32_t a, uint32_t b) {
#if defined(__CUDA_ARCH__) && __CUDA_ARCH__ >= 900
  uint32_t d;
  asm("min.u16x2 %0, %1, %2;" : "=r"(d) : "r"(a), "r"(b));
  return d;
#else
  return __vminu2(a, b);
#endif
}
__device__ __forceinline__ uint32_t max_u16x2(uint32_t a, uint32_t b) {
#if defined(__CUDA_ARCH__) && __CUDA_ARCH__ >= 900
  uint32_t d;
  asm("max.u16x2 %0, %1, %2;" : "=r"(d) : "r"(a), "r"(b));
  return d;
#else
  return __vmaxu2(a, b);
#endif
}

// Unpacks a 16-byte vector into fp32 values and returns the maximum of their amax_bits. For the
// 16-bit types the maximum is taken on the 16-bit patterns (ordered like the values for
// non-negative numbers) with NaN and Inf clamped to Inf, two at a time.
template <int DT>
__device__ __forceinline__ uint32_t unpack(const uint4& raw, float (&v)[Elem<DT>::kVec]);
template <>
__device__ __forceinline__ uint32_t unpack<0>(const uint4& raw, float (&v)[4]) {
  const uint32_t w[4] = {raw.x, raw.y, raw.z, raw.w};
  uint32_t m = 0;
#pragma unroll
  for (int i = 0; i < 4; ++i) {
    v[i] = __uint_as_float(w[i]);
    const uint32_t b = amax_bits(v[i]);
    m = b > m ? b : m;
  }
  return m;
}
template <>
__device__ __forceinline__ uint32_t unpack<1>(const uint4& raw, float (&v)[8]) {
  const uint32_t w[4] = {raw.x, raw.y, raw.z, raw.w};
  uint32_t m2 = 0;
#pragma unroll
  for (int i = 0; i < 4; ++i) {
    v[2 * i] = __uint_as_float(w[i] << 16);
    v[2 * i + 1] = __uint_as_float(w[i] & 0xFFFF0000u);
    m2 = max_u16x2(m2, min_u16x2(w[i] & 0x7FFF7FFFu, 0x7F807F80u));
  }
  const uint32_t lo = m2 & 0xFFFFu, hi = m2 >> 16;
  return (hi > lo ? hi : lo) << 16;
}
template <>
__device__ __forceinline__ uint32_t unpack<2>(const uint4& raw, float (&v)[8]) {
  const uint32_t w[4] = {raw.x, raw.y, raw.z, raw.w};
  uint32_t m2 = 0;
#pragma unroll
  for (int i = 0; i < 4; ++i) {
    v[2 * i] = __half2float(__ushort_as_half(static_cast<unsigned short>(w[i] & 0xFFFFu)));
    v[2 * i + 1] = __half2float(__ushort_as_half(static_cast<unsigned short>(w[i] >> 16)));
    m2 = max_u16x2(m2, min_u16x2(w[i] & 0x7FFF7FFFu, 0x7C007C00u));
  }
  const uint32_t lo = m2 & 0xFFFFu, hi = m2 >> 16;
  return amax_bits(__half2float(__ushort_as_half(static_cast<unsigned short>(hi > lo ? hi : lo))));
}

// Packs fp32 results into a 16-byte vector, rounding as LibTorch's CPU conversions (never given
// a NaN: bad blocks are written by nan_vec).
template <int DT>
__device__ __forceinline__ uint4 pack(const float (&r)[Elem<DT>::kVec]);
template <>
__device__ __forceinline__ uint4 pack<0>(const float (&r)[4]) {
  return make_uint4(__float_as_uint(r[0]), __float_as_uint(r[1]), __float_as_uint(r[2]), __float_as_uint(r[3]));
}
template <>
__device__ __forceinline__ uint4 pack<1>(const float (&r)[8]) {
  uint32_t w[4];
#pragma unroll
  for (int i = 0; i < 4; ++i) {
    const uint32_t a = __float_as_uint(r[2 * i]), b = __float_as_uint(r[2 * i + 1]);
    // c10::detail::round_to_nearest_even on each, then the two upper halves side by side
    w[i] = __byte_perm(a + 0x7FFFu + ((a >> 16) & 1u), b + 0x7FFFu + ((b >> 16) & 1u), 0x7632);
  }
  return make_uint4(w[0], w[1], w[2], w[3]);
}
template <>
__device__ __forceinline__ uint4 pack<2>(const float (&r)[8]) {
  uint32_t w[4];
#pragma unroll
  for (int i = 0; i < 4; ++i) {
    w[i] = static_cast<uint32_t>(__half_as_ushort(__float2half_rn(r[2 * i]))) |
           (static_cast<uint32_t>(__half_as_ushort(__float2half_rn(r[2 * i + 1]))) << 16);
  }
  return make_uint4(w[0], w[1], w[2], w[3]);
}

template <int DT>
__device__ __forceinline__ uint4 nan_vec() {
  const uint32_t w = DT == 0 ? 0x7FC00000u : (DT == 1 ? 0x7FC07FC0u : 0x7E007E00u);
  return make_uint4(w, w, w, w);
}

template <int DT, int FAMILY, int AWAY>
__global__ void __launch_bounds__(kVecThreads)
    fake_quant_vec(const uint4* __restrict__ in, uint4* __restrict__ out, int64_t nvec, int tpb,
                   QuantParams params) {
  constexpr int V = Elem<DT>::kVec;
  const QuantParams p = specialize<FAMILY, AWAY>(params);
  const int64_t g = static_cast<int64_t>(blockIdx.x) * kVecThreads + threadIdx.x;
  const bool live = g < nvec;
  const uint4 raw = live ? in[g] : make_uint4(0u, 0u, 0u, 0u);
  float v[V];
  const uint32_t m = group_max(unpack<DT>(raw, v), tpb);
  if (!live) return;
  const BlockScale s = block_scale(m, p);
  if (s.bad) {
    out[g] = nan_vec<DT>();
    return;
  }
  if constexpr (DT == 1 && FAMILY != kNvfp4) {
    if (bf16_exact(s, p)) {  // the common case: bf16 conversion is a truncation
      uint32_t w[4];
#pragma unroll
      for (int i = 0; i < 4; ++i) {
        w[i] = __byte_perm(__float_as_uint(fake_quant_value<true>(v[2 * i], s, p)),
                           __float_as_uint(fake_quant_value<true>(v[2 * i + 1], s, p)), 0x7632);
      }
      out[g] = make_uint4(w[0], w[1], w[2], w[3]);
      return;
    }
  }
  float r[V];
#pragma unroll
  for (int i = 0; i < V; ++i) r[i] = fake_quant_value<true>(v[i], s, p);
  out[g] = pack<DT>(r);
}

template <int DT, int FAMILY, int AWAY>
__global__ void __launch_bounds__(kVecThreads)
    encode_vec(const uint4* __restrict__ in, uint8_t* __restrict__ codes, uint8_t* __restrict__ scales,
               int64_t nvec, int tpb, QuantParams params) {
  constexpr int V = Elem<DT>::kVec;
  const QuantParams p = specialize<FAMILY, AWAY>(params);
  const int64_t g = static_cast<int64_t>(blockIdx.x) * kVecThreads + threadIdx.x;
  const bool live = g < nvec;
  const uint4 raw = live ? in[g] : make_uint4(0u, 0u, 0u, 0u);
  float v[V];
  const uint32_t m = group_max(unpack<DT>(raw, v), tpb);
  if (!live) return;
  const BlockScale s = block_scale(m, p);
  uint32_t words[V / 4];
#pragma unroll
  for (int w = 0; w < V / 4; ++w) {
    uint32_t word = 0;
#pragma unroll
    for (int i = 0; i < 4; ++i) {
      const uint32_t c = s.bad ? 0u : element_code(element_value<true>(v[w * 4 + i], s, p), p.el);
      word |= c << (8 * i);
    }
    words[w] = word;
  }
  if constexpr (V == 8) {
    reinterpret_cast<uint2*>(codes)[g] = make_uint2(words[0], words[1]);
  } else {
    reinterpret_cast<uint32_t*>(codes)[g] = words[0];
  }
  if (threadIdx.x % tpb == 0) scales[g / tpb] = static_cast<uint8_t>(s.code);
}

// Block i of the [rows, n] tensor: its first element and its length.
__device__ __forceinline__ void block_span(int64_t i, int64_t nb, const QuantParams& p, int64_t& start,
                                           int64_t& len) {
  const int64_t row = i / nb;
  const int64_t c0 = (i - row * nb) * p.block;
  start = row * p.n + c0;
  len = p.n - c0 < p.block ? p.n - c0 : p.block;
}

template <int DT>
__global__ void __launch_bounds__(kBlockThreads)
    fake_quant_blocks(const typename Elem<DT>::T* __restrict__ in, typename Elem<DT>::T* __restrict__ out,
                      int64_t nblocks, int64_t nb, QuantParams p) {
  const int64_t i = static_cast<int64_t>(blockIdx.x) * kBlockThreads + threadIdx.x;
  if (i >= nblocks) return;
  int64_t start = 0, len = 0;
  block_span(i, nb, p, start, len);
  uint32_t m = 0;
  for (int64_t j = 0; j < len; ++j) {
    const uint32_t b = amax_bits(to_float<DT>(in[start + j]));
    m = b > m ? b : m;
  }
  const BlockScale s = block_scale(m, p);
  for (int64_t j = 0; j < len; ++j) {
    out[start + j] = s.bad ? nan_value<DT>() : from_float<DT>(fake_quant_value(to_float<DT>(in[start + j]), s, p));
  }
}

template <int DT>
__global__ void __launch_bounds__(kBlockThreads)
    encode_blocks(const typename Elem<DT>::T* __restrict__ in, uint8_t* __restrict__ codes,
                  uint8_t* __restrict__ scales, int64_t nblocks, int64_t nb, QuantParams p) {
  const int64_t i = static_cast<int64_t>(blockIdx.x) * kBlockThreads + threadIdx.x;
  if (i >= nblocks) return;
  int64_t start = 0, len = 0;
  block_span(i, nb, p, start, len);
  uint32_t m = 0;
  for (int64_t j = 0; j < len; ++j) {
    const uint32_t b = amax_bits(to_float<DT>(in[start + j]));
    m = b > m ? b : m;
  }
  const BlockScale s = block_scale(m, p);
  for (int64_t j = 0; j < len; ++j) {
    codes[start + j] = static_cast<uint8_t>(
        s.bad ? 0u : element_code(element_value(to_float<DT>(in[start + j]), s, p), p.el));
  }
  scales[i] = static_cast<uint8_t>(s.code);
}

int vec_width(DType dt) { return dt == DType::Float ? 4 : 8; }

bool aligned(const void* ptr, uintptr_t bytes) { return (reinterpret_cast<uintptr_t>(ptr) & (bytes - 1)) == 0; }

// Threads per block for the vector kernels, or 0 when they do not apply.
int vector_tpb(const void* in, const void* out, uintptr_t out_align, DType dt, const QuantParams& p) {
  const int64_t vw = vec_width(dt);
  if (p.block % vw != 0 || p.n % p.block != 0) return 0;
  const int64_t tpb = p.block / vw;
  if (tpb > 32 || (tpb & (tpb - 1)) != 0) return 0;
  if (!aligned(in, 16) || !aligned(out, out_align)) return 0;
  return static_cast<int>(tpb);
}

int family(const QuantParams& p) { return p.nvfp4 ? kNvfp4 : (p.el.is_int ? kInt : kFp); }

const char* launched() {
  const cudaError_t err = cudaGetLastError();
  return err == cudaSuccess ? nullptr : cudaGetErrorString(err);
}

constexpr int64_t kMaxGrid = 0x7FFFFFFF;

template <int DT, int FAMILY, int AWAY>
void launch_fq_vec(const void* in, void* out, int64_t nvec, int tpb, const QuantParams& p, cudaStream_t st) {
  const auto grid = static_cast<unsigned>((nvec + kVecThreads - 1) / kVecThreads);
  fake_quant_vec<DT, FAMILY, AWAY><<<grid, kVecThreads, 0, st>>>(static_cast<const uint4*>(in),
                                                                  static_cast<uint4*>(out), nvec, tpb, p);
}

template <int DT, int FAMILY, int AWAY>
void launch_enc_vec(const void* in, uint8_t* codes, uint8_t* scales, int64_t nvec, int tpb, const QuantParams& p,
                    cudaStream_t st) {
  const auto grid = static_cast<unsigned>((nvec + kVecThreads - 1) / kVecThreads);
  encode_vec<DT, FAMILY, AWAY><<<grid, kVecThreads, 0, st>>>(static_cast<const uint4*>(in), codes, scales, nvec,
                                                              tpb, p);
}

template <int DT>
const char* fake_quantize_dt(const void* in, void* out, const QuantParams& p, cudaStream_t st) {
  using T = typename Elem<DT>::T;
  const int64_t numel = p.rows * p.n;
  if (numel == 0) return nullptr;
  const int tpb = vector_tpb(in, out, 16, static_cast<DType>(DT), p);
  if (tpb > 0) {
    const int64_t nvec = numel / Elem<DT>::kVec;
    if ((nvec + kVecThreads - 1) / kVecThreads > kMaxGrid) return "MX CUDA kernel: tensor too large";
    const int fam = family(p);
    if (fam == kFp) {
      (p.away ? launch_fq_vec<DT, kFp, 1> : launch_fq_vec<DT, kFp, 0>)(in, out, nvec, tpb, p, st);
    } else if (fam == kInt) {
      (p.away ? launch_fq_vec<DT, kInt, 1> : launch_fq_vec<DT, kInt, 0>)(in, out, nvec, tpb, p, st);
    } else {
      (p.away ? launch_fq_vec<DT, kNvfp4, 1> : launch_fq_vec<DT, kNvfp4, 0>)(in, out, nvec, tpb, p, st);
    }
    return launched();
  }
  const int64_t nb = (p.n + p.block - 1) / p.block;
  const int64_t nblocks = p.rows * nb;
  if ((nblocks + kBlockThreads - 1) / kBlockThreads > kMaxGrid) return "MX CUDA kernel: tensor too large";
  const auto grid = static_cast<unsigned>((nblocks + kBlockThreads - 1) / kBlockThreads);
  fake_quant_blocks<DT><<<grid, kBlockThreads, 0, st>>>(static_cast<const T*>(in), static_cast<T*>(out), nblocks,
                                                        nb, p);
  return launched();
}

template <int DT>
const char* encode_dt(const void* in, uint8_t* codes, uint8_t* scales, const QuantParams& p, cudaStream_t st) {
  using T = typename Elem<DT>::T;
  const int64_t numel = p.rows * p.n;
  if (numel == 0) return nullptr;
  const int tpb = vector_tpb(in, codes, static_cast<uintptr_t>(Elem<DT>::kVec), static_cast<DType>(DT), p);
  if (tpb > 0) {
    const int64_t nvec = numel / Elem<DT>::kVec;
    if ((nvec + kVecThreads - 1) / kVecThreads > kMaxGrid) return "MX CUDA kernel: tensor too large";
    const int fam = family(p);
    if (fam == kFp) {
      (p.away ? launch_enc_vec<DT, kFp, 1> : launch_enc_vec<DT, kFp, 0>)(in, codes, scales, nvec, tpb, p, st);
    } else if (fam == kInt) {
      (p.away ? launch_enc_vec<DT, kInt, 1> : launch_enc_vec<DT, kInt, 0>)(in, codes, scales, nvec, tpb, p, st);
    } else {
      (p.away ? launch_enc_vec<DT, kNvfp4, 1> : launch_enc_vec<DT, kNvfp4, 0>)(in, codes, scales, nvec, tpb, p, st);
    }
    return launched();
  }
  const int64_t nb = (p.n + p.block - 1) / p.block;
  const int64_t nblocks = p.rows * nb;
  if ((nblocks + kBlockThreads - 1) / kBlockThreads > kMaxGrid) return "MX CUDA kernel: tensor too large";
  const auto grid = static_cast<unsigned>((nblocks + kBlockThreads - 1) / kBlockThreads);
  encode_blocks<DT><<<grid, kBlockThreads, 0, st>>>(static_cast<const T*>(in), codes, scales, nblocks, nb, p);
  return launched();
}

}  // namespace

const char* fake_quantize(const void* in, void* out, DType dtype, const QuantParams& p, void* stream) {
  const auto st = static_cast<cudaStream_t>(stream);
  switch (dtype) {
    case DType::Float: return fake_quantize_dt<0>(in, out, p, st);
    case DType::BFloat16: return fake_quantize_dt<1>(in, out, p, st);
    case DType::Half: return fake_quantize_dt<2>(in, out, p, st);
  }
  return "MX CUDA kernel: unsupported dtype";
}

const char* encode(const void* in, uint8_t* codes, uint8_t* scales, DType dtype, const QuantParams& p, void* stream) {
  const auto st = static_cast<cudaStream_t>(stream);
  switch (dtype) {
    case DType::Float: return encode_dt<0>(in, codes, scales, p, st);
    case DType::BFloat16: return encode_dt<1>(in, codes, scales, p, st);
    case DType::Half: return encode_dt<2>(in, codes, scales, p, st);
  }
  return "MX CUDA kernel: unsupported dtype";
}

const char* kernel_choice(const void* in, const void* out, DType dtype, const QuantParams& p) {
  return vector_tpb(in, out, 16, dtype, p) > 0 ? "vector" : "per-block";
}

}  // namespace latmix::mx_cuda
