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
// Encoding writes the element codes one per byte or, for the 4-bit formats, packed two per byte in
// the same pass (MxPacked's layout), and the E8M0/E4M3 scale codes. Decoding (packed or byte codes
// and scale codes to values) has a vector kernel (units of 8 values, 16-byte stores) and a
// per-element one for the rest; both multiply the two table values as mx_decode does on the CPU.
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

// Element families the vector kernels are specialized on. kFp4: E2M1 with an E8M0 scale (MXFP4),
// whose element constants become immediates in the encoder.
enum Family { kFp = 0, kInt = 1, kNvfp4 = 2, kFp4 = 3 };

// p with the compile-time facts filled in, so the inlined scalar code folds its branches.
template <int FAMILY, int AWAY>
__device__ __forceinline__ QuantParams specialize(const QuantParams& p) {
  QuantParams q = p;
  q.el.is_int = FAMILY == kInt;
  q.nvfp4 = FAMILY == kNvfp4;
  q.away = AWAY;
  if (FAMILY == kFp4) {  // the values make_quant_params gives E2M1
    q.el.int_neg_zero = 0;
    q.el.ebits = 2;
    q.el.mbits = 1;
    q.el.bias = 1;
    q.el.emax = 2;
    q.el.max = 6.0f;
    q.el.min_normal_bits = 0x3F800000u;  // 1.0
    q.el.min_exp = -1;
    q.el.max_code = 7;
    q.el.sub_magic = 4194304.0f;  // 2^22
    q.el.sub_inv_step = 2.0f;
  }
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

// Encoding, vector kernel: the codes of one 16-byte input vector (V values) are V bytes, or V / 2
// bytes with NIB (two 4-bit codes a byte, element 2i in the low nibble), stored with one access.
// Needs n % block == 0, so every row is a whole number of vectors and, packed, of bytes: the byte
// of element pair i of the tensor is byte i of `codes`. Each thread takes kEncVecs vectors, a
// thread block apart, and loads them all before encoding any: more reads in flight per thread
// (the kernel writes far fewer bytes than it reads).
constexpr int kEncVecs = 2;

template <int DT, int FAMILY, int AWAY, bool NIB>
__device__ __forceinline__ void encode_one(const uint4& raw, int64_t g, bool live, int tpb, int tpb_shift,
                                           const QuantParams& p, uint8_t* __restrict__ codes,
                                           uint8_t* __restrict__ scales) {
  constexpr int V = Elem<DT>::kVec;
  float v[V];
  const uint32_t m = group_max(unpack<DT>(raw, v), tpb);  // every lane of the warp takes part
  if (!live) return;
  const BlockScale s = block_scale(m, p);
  uint32_t c[V];
  // Codes are computed unconditionally (those of a bad block, from NaN scaled values, are then
  // masked to 0): no branch per element.
  const uint32_t keep = s.bad ? 0u : 0xFFFFFFFFu;
  if constexpr (FAMILY == kInt) {
#pragma unroll
    for (int i = 0; i < V; ++i) c[i] = s.bad ? 0u : encode_element<true>(v[i], s, p);
  } else {
    const FpEncoder enc(p);  // encode_element's FP path with its constants hoisted
    const bool zero_scale = FAMILY == kNvfp4 && s.X == 0.0f;  // NVFP4: signed zeros
#pragma unroll
    for (int i = 0; i < V; ++i) {
      const uint32_t signed_zero = (__float_as_uint(v[i]) >> 31) << enc.sign_shift;
      c[i] = (zero_scale ? signed_zero : enc.code(scaled_value(v[i], s, p))) & keep;
    }
  }
  if constexpr (NIB) {
    uint32_t word = 0;  // V / 2 bytes: 4 (bf16, fp16) or 2 (fp32)
#pragma unroll
    for (int i = 0; i < V; ++i) word |= c[i] << (4 * i);
    if constexpr (V == 8) {
      reinterpret_cast<uint32_t*>(codes)[g] = word;
    } else {
      reinterpret_cast<uint16_t*>(codes)[g] = static_cast<uint16_t>(word);
    }
  } else {
    uint32_t words[V / 4];
#pragma unroll
    for (int w = 0; w < V / 4; ++w) {
      words[w] = c[4 * w] | (c[4 * w + 1] << 8) | (c[4 * w + 2] << 16) | (c[4 * w + 3] << 24);
    }
    if constexpr (V == 8) {
      reinterpret_cast<uint2*>(codes)[g] = make_uint2(words[0], words[1]);
    } else {
      reinterpret_cast<uint32_t*>(codes)[g] = words[0];
    }
  }
  if ((threadIdx.x & (tpb - 1)) == 0) scales[g >> tpb_shift] = static_cast<uint8_t>(s.code);
}

template <int DT, int FAMILY, int AWAY, bool NIB>
__global__ void __launch_bounds__(kVecThreads)
    encode_vec(const uint4* __restrict__ in, uint8_t* __restrict__ codes, uint8_t* __restrict__ scales,
               int64_t nvec, int tpb, QuantParams params) {
  const QuantParams p = specialize<FAMILY, AWAY>(params);
  const int tpb_shift = __ffs(tpb) - 1;  // tpb is a power of two
  const int64_t g0 = static_cast<int64_t>(blockIdx.x) * (kVecThreads * kEncVecs) + threadIdx.x;
  uint4 raw[kEncVecs];
#pragma unroll
  for (int k = 0; k < kEncVecs; ++k) {
    const int64_t g = g0 + k * kVecThreads;
    raw[k] = g < nvec ? in[g] : make_uint4(0u, 0u, 0u, 0u);
  }
#pragma unroll
  for (int k = 0; k < kEncVecs; ++k) {
    const int64_t g = g0 + k * kVecThreads;
    encode_one<DT, FAMILY, AWAY, NIB>(raw[k], g, g < nvec, tpb, tpb_shift, p, codes, scales);
  }
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

// Encoding, per-block kernel: thread i encodes group i of `gb` consecutive blocks of a row (the
// last group of a row may hold fewer). With NIB and an odd block size, gb = 2, so every group
// starts at an even column and no byte is shared between two threads; a row's last byte, for an
// odd n, gets a 0 high nibble. Rows of packed codes are (n + 1) / 2 bytes.
template <int DT, bool NIB>
__global__ void __launch_bounds__(kBlockThreads)
    encode_blocks(const typename Elem<DT>::T* __restrict__ in, uint8_t* __restrict__ codes,
                  uint8_t* __restrict__ scales, int64_t ngroups, int64_t nb, int64_t gb, QuantParams p) {
  const int64_t i = static_cast<int64_t>(blockIdx.x) * kBlockThreads + threadIdx.x;
  if (i >= ngroups) return;
  const int64_t groups_per_row = (nb + gb - 1) / gb;
  const int64_t row = i / groups_per_row;
  const int64_t b0 = (i - row * groups_per_row) * gb;
  const int64_t b1 = b0 + gb < nb ? b0 + gb : nb;
  const typename Elem<DT>::T* x = in + row * p.n;
  uint8_t* out = codes + row * (NIB ? (p.n + 1) / 2 : p.n);
  uint32_t pending = 0;  // NIB: the low nibble of the byte being filled
  for (int64_t b = b0; b < b1; ++b) {
    const int64_t c0 = b * p.block;
    const int64_t c1 = c0 + p.block < p.n ? c0 + p.block : p.n;
    uint32_t m = 0;
    for (int64_t c = c0; c < c1; ++c) {
      const uint32_t a = amax_bits(to_float<DT>(x[c]));
      m = a > m ? a : m;
    }
    const BlockScale s = block_scale(m, p);
    scales[row * nb + b] = static_cast<uint8_t>(s.code);
    for (int64_t c = c0; c < c1; ++c) {
      const uint32_t code = s.bad ? 0u : encode_element(to_float<DT>(x[c]), s, p);
      if (!NIB) {
        out[c] = static_cast<uint8_t>(code);
      } else if (c % 2 == 0) {
        pending = code;
      } else {
        out[c / 2] = static_cast<uint8_t>(pending | (code << 4));
        pending = 0;
      }
    }
  }
  if (NIB && b1 == nb && p.n % 2 == 1) out[p.n / 2] = static_cast<uint8_t>(pending);
}

// Decoding, vector kernel: each step of the grid-stride loop decodes a unit of 8 values (one
// block: block % 8 == 0 and n % block == 0) from 4 code bytes (NIB) or 8, and stores 8 outputs with
// 16-byte accesses. The value tables live in shared memory.
constexpr int kDecThreads = 256;

template <int DT>
__device__ __forceinline__ void store8(typename Elem<DT>::T* out, int64_t unit, const float (&r)[8], bool exact,
                                       bool nan_check) {
  if constexpr (DT == 0) {
    float4* o = reinterpret_cast<float4*>(out) + 2 * unit;
    o[0] = make_float4(r[0], r[1], r[2], r[3]);
    o[1] = make_float4(r[4], r[5], r[6], r[7]);
  } else {
    uint32_t w[4];
#pragma unroll
    for (int i = 0; i < 4; ++i) {
      const uint32_t a = __float_as_uint(r[2 * i]), b = __float_as_uint(r[2 * i + 1]);
      if (DT == 1 && exact) {  // products exact in bf16: rounding is a truncation
        w[i] = __byte_perm(a, b, 0x7632);
      } else {
        uint32_t lo, hi;
        if constexpr (DT == 1) {
          lo = (a + 0x7FFFu + ((a >> 16) & 1u)) >> 16;
          hi = (b + 0x7FFFu + ((b >> 16) & 1u)) >> 16;
        } else {
          lo = __half_as_ushort(__float2half_rn(r[2 * i]));
          hi = __half_as_ushort(__float2half_rn(r[2 * i + 1]));
        }
        if (nan_check) {
          if ((a & 0x7FFFFFFFu) > 0x7F800000u) lo = DT == 1 ? 0x7FC0u : 0x7E00u;
          if ((b & 0x7FFFFFFFu) > 0x7F800000u) hi = DT == 1 ? 0x7FC0u : 0x7E00u;
        }
        w[i] = lo | (hi << 16);
      }
    }
    reinterpret_cast<uint4*>(out)[unit] = make_uint4(w[0], w[1], w[2], w[3]);
  }
}

template <int DT, bool NIB>
__global__ void __launch_bounds__(kDecThreads)
    decode_vec(const uint8_t* __restrict__ codes, const uint8_t* __restrict__ scales,
               typename Elem<DT>::T* __restrict__ out, int64_t nunits, int unit_shift, DecodeParams p) {
  __shared__ float values[256];
  __shared__ float svals[256];
  for (int i = threadIdx.x; i < 256; i += kDecThreads) {
    values[i] = p.values[i];
    svals[i] = p.scales[i];
  }
  __syncthreads();
  const int64_t stride = static_cast<int64_t>(gridDim.x) * kDecThreads;
  for (int64_t u = static_cast<int64_t>(blockIdx.x) * kDecThreads + threadIdx.x; u < nunits; u += stride) {
    uint32_t lo, hi;
    if constexpr (NIB) {
      const uint32_t w = reinterpret_cast<const uint32_t*>(codes)[u];
      lo = w;
      hi = 0;
    } else {
      const uint2 w = reinterpret_cast<const uint2*>(codes)[u];
      lo = w.x;
      hi = w.y;
    }
    const uint32_t scode = scales[u >> unit_shift];
    const float X = svals[scode];
    float r[8];
#pragma unroll
    for (int i = 0; i < 8; ++i) {
      const uint32_t code = NIB ? (lo >> (4 * i)) & 0xFu : ((i < 4 ? lo : hi) >> (8 * (i % 4))) & 0xFFu;
      r[i] = __fmul_rn(values[code], X);
    }
    const bool exact = DT == 1 && decode_bf16_exact(scode, p);
    store8<DT>(out, u, r, exact, !p.e8m0 || p.has_nan || scode == 0xFFu);
  }
}

// Decoding, per-element kernel: any block size, tails, odd rows, any alignment.
template <int DT, bool NIB>
__global__ void __launch_bounds__(kBlockThreads)
    decode_elems(const uint8_t* __restrict__ codes, const uint8_t* __restrict__ scales,
                 typename Elem<DT>::T* __restrict__ out, int64_t numel, DecodeParams p) {
  const int64_t i = static_cast<int64_t>(blockIdx.x) * kBlockThreads + threadIdx.x;
  if (i >= numel) return;
  const int64_t row = i / p.n;
  const int64_t c = i - row * p.n;
  const int64_t nb = (p.n + p.block - 1) / p.block;
  const uint32_t byte = codes[row * (NIB ? (p.n + 1) / 2 : p.n) + (NIB ? c / 2 : c)];
  const uint32_t code = NIB ? (c % 2 ? byte >> 4 : byte & 0xFu) : byte;
  const float r = decode_value(code, scales[row * nb + c / p.block], p);
  out[i] = r != r ? nan_value<DT>() : from_float<DT>(r);
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

template <int DT, int FAMILY, int AWAY, bool NIB>
void launch_enc_vec(const void* in, uint8_t* codes, uint8_t* scales, int64_t nvec, int tpb, const QuantParams& p,
                    cudaStream_t st) {
  const auto grid = static_cast<unsigned>((nvec + kVecThreads * kEncVecs - 1) / (kVecThreads * kEncVecs));
  encode_vec<DT, FAMILY, AWAY, NIB><<<grid, kVecThreads, 0, st>>>(static_cast<const uint4*>(in), codes, scales,
                                                                   nvec, tpb, p);
}

// MXFP4 (E2M1 elements, E8M0 scales), for the encoder's kFp4 specialization.
bool is_mxfp4(const QuantParams& p) {
  return !p.nvfp4 && !p.el.is_int && p.el.ebits == 2 && p.el.mbits == 1 && p.el.bias == 1;
}

template <int DT, bool NIB>
void launch_enc_vec_family(const void* in, uint8_t* codes, uint8_t* scales, int64_t nvec, int tpb,
                           const QuantParams& p, cudaStream_t st) {
  const int fam = family(p);
  if (is_mxfp4(p)) {
    (p.away ? launch_enc_vec<DT, kFp4, 1, NIB> : launch_enc_vec<DT, kFp4, 0, NIB>)(in, codes, scales, nvec, tpb, p,
                                                                                    st);
  } else if (fam == kFp) {
    (p.away ? launch_enc_vec<DT, kFp, 1, NIB> : launch_enc_vec<DT, kFp, 0, NIB>)(in, codes, scales, nvec, tpb, p, st);
  } else if (fam == kInt) {
    (p.away ? launch_enc_vec<DT, kInt, 1, NIB> : launch_enc_vec<DT, kInt, 0, NIB>)(in, codes, scales, nvec, tpb, p,
                                                                                    st);
  } else {
    (p.away ? launch_enc_vec<DT, kNvfp4, 1, NIB> : launch_enc_vec<DT, kNvfp4, 0, NIB>)(in, codes, scales, nvec, tpb,
                                                                                        p, st);
  }
}

// The alignment the encoder's vector kernel needs of `codes`: the bytes of one vector's codes.
uintptr_t code_align(DType dt, bool nibbles) {
  const auto v = static_cast<uintptr_t>(vec_width(dt));
  return nibbles ? v / 2 : v;
}

// Units of 8 values a block holds, as a shift (log2), for the decoder's vector kernel; -1 when it
// does not apply (block not a power-of-two multiple of 8, a tail, misaligned pointers).
int decode_unit_shift(const uint8_t* codes, const void* out, DType dt, const DecodeParams& p) {
  if (p.block % 8 != 0 || p.n % p.block != 0) return -1;
  const int64_t upb = p.block / 8;
  if ((upb & (upb - 1)) != 0) return -1;
  if (!aligned(codes, p.nibbles ? 4 : 8) || !aligned(out, 16)) return -1;
  (void)dt;
  int shift = 0;
  while ((int64_t{1} << shift) < upb) ++shift;
  return shift;
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
const char* encode_dt(const void* in, uint8_t* codes, uint8_t* scales, const QuantParams& p, bool nibbles,
                      cudaStream_t st) {
  using T = typename Elem<DT>::T;
  const int64_t numel = p.rows * p.n;
  if (numel == 0) return nullptr;
  const int tpb = vector_tpb(in, codes, code_align(static_cast<DType>(DT), nibbles), static_cast<DType>(DT), p);
  if (tpb > 0) {
    const int64_t nvec = numel / Elem<DT>::kVec;
    if ((nvec + kVecThreads - 1) / kVecThreads > kMaxGrid) return "MX CUDA kernel: tensor too large";
    (nibbles ? launch_enc_vec_family<DT, true> : launch_enc_vec_family<DT, false>)(in, codes, scales, nvec, tpb, p,
                                                                                    st);
    return launched();
  }
  const int64_t nb = (p.n + p.block - 1) / p.block;
  const int64_t gb = nibbles && p.block % 2 == 1 ? 2 : 1;
  const int64_t ngroups = p.rows * ((nb + gb - 1) / gb);
  if ((ngroups + kBlockThreads - 1) / kBlockThreads > kMaxGrid) return "MX CUDA kernel: tensor too large";
  const auto grid = static_cast<unsigned>((ngroups + kBlockThreads - 1) / kBlockThreads);
  if (nibbles) {
    encode_blocks<DT, true><<<grid, kBlockThreads, 0, st>>>(static_cast<const T*>(in), codes, scales, ngroups, nb, gb,
                                                            p);
  } else {
    encode_blocks<DT, false><<<grid, kBlockThreads, 0, st>>>(static_cast<const T*>(in), codes, scales, ngroups, nb,
                                                             gb, p);
  }
  return launched();
}

template <int DT>
const char* decode_dt(const uint8_t* codes, const uint8_t* scales, void* out, const DecodeParams& p,
                      cudaStream_t st) {
  using T = typename Elem<DT>::T;
  const int64_t numel = p.rows * p.n;
  if (numel == 0) return nullptr;
  const int shift = decode_unit_shift(codes, out, static_cast<DType>(DT), p);
  if (shift >= 0) {
    const int64_t nunits = numel / 8;
    // A grid-stride loop over a grid that fills the device: each thread block copies the value
    // tables into shared memory once.
    int device = 0, sms = 0;
    if (cudaGetDevice(&device) != cudaSuccess ||
        cudaDeviceGetAttribute(&sms, cudaDevAttrMultiProcessorCount, device) != cudaSuccess) {
      return launched();
    }
    const int64_t want = (nunits + kDecThreads - 1) / kDecThreads;
    const auto grid = static_cast<unsigned>(want < int64_t{sms} * 8 ? want : int64_t{sms} * 8);
    if (p.nibbles) {
      decode_vec<DT, true><<<grid, kDecThreads, 0, st>>>(codes, scales, static_cast<T*>(out), nunits, shift, p);
    } else {
      decode_vec<DT, false><<<grid, kDecThreads, 0, st>>>(codes, scales, static_cast<T*>(out), nunits, shift, p);
    }
    return launched();
  }
  if ((numel + kBlockThreads - 1) / kBlockThreads > kMaxGrid) return "MX CUDA kernel: tensor too large";
  const auto grid = static_cast<unsigned>((numel + kBlockThreads - 1) / kBlockThreads);
  if (p.nibbles) {
    decode_elems<DT, true><<<grid, kBlockThreads, 0, st>>>(codes, scales, static_cast<T*>(out), numel, p);
  } else {
    decode_elems<DT, false><<<grid, kBlockThreads, 0, st>>>(codes, scales, static_cast<T*>(out), numel, p);
  }
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

const char* encode(const void* in, uint8_t* codes, uint8_t* scales, DType dtype, const QuantParams& p, void* stream,
                   bool nibbles) {
  const auto st = static_cast<cudaStream_t>(stream);
  switch (dtype) {
    case DType::Float: return encode_dt<0>(in, codes, scales, p, nibbles, st);
    case DType::BFloat16: return encode_dt<1>(in, codes, scales, p, nibbles, st);
    case DType::Half: return encode_dt<2>(in, codes, scales, p, nibbles, st);
  }
  return "MX CUDA kernel: unsupported dtype";
}

const char* decode(const uint8_t* codes, const uint8_t* scales, void* out, DType dtype, const DecodeParams& p,
                   void* stream) {
  const auto st = static_cast<cudaStream_t>(stream);
  switch (dtype) {
    case DType::Float: return decode_dt<0>(codes, scales, out, p, st);
    case DType::BFloat16: return decode_dt<1>(codes, scales, out, p, st);
    case DType::Half: return decode_dt<2>(codes, scales, out, p, st);
  }
  return "MX CUDA kernel: unsupported dtype";
}

const char* kernel_choice(const void* in, const void* out, DType dtype, const QuantParams& p) {
  return vector_tpb(in, out, 16, dtype, p) > 0 ? "vector" : "per-block";
}

const char* encode_kernel_choice(const void* in, const uint8_t* codes, DType dtype, const QuantParams& p,
                                 bool nibbles) {
  return vector_tpb(in, codes, code_align(dtype, nibbles), dtype, p) > 0 ? "vector" : "per-block";
}

const char* decode_kernel_choice(const uint8_t* codes, const void* out, DType dtype, const DecodeParams& p) {
  return decode_unit_shift(codes, out, dtype, p) >= 0 ? "vector" : "per-element";
}

}  // namespace latmix::mx_cuda
