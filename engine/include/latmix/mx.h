#pragma once
/// \file mx.h
/// Room: engine/mx/ (latmix_engine).
/// OCP Microscaling (MX v1.0) formats: exact element codecs, E8M0 block scales, fake
/// quantization with a straight-through gradient, and packed encode/decode (see
/// docs/mx-formats.md for the tables and every edge case).
///
/// A block of `block` consecutive values along one axis shares a scale X; each value V is stored
/// as an element P = round(V / X), saturated at the element's largest finite magnitude. MX
/// formats use a power-of-two E8M0 scale X = 2^e (e in -127..127, code e + 127, 0xFF = NaN);
/// NVFP4 uses an E4M3 scale (and optionally an fp32 tensor scale) over blocks of 16.
///
/// Arithmetic is defined on fp32 values: bf16/fp16 inputs are widened exactly, fp64 inputs are
/// rounded to fp32 first. For the MX formats every step is exact (power-of-two scaling), so the
/// fp32 result is the exact dequantized value, and every implementation (the ATen path, the CPU
/// loop, the fused CUDA kernel, the Python reference in tests/golden/mx_reference.py) agrees bit
/// for bit. Results are returned in the input's dtype (bf16 results are exact except below
/// 2^-126, where bf16 has fewer subnormals than fp32).
///
/// Special values (the whole block): a block holding any NaN or +-Inf gets the NaN scale (E8M0
/// 0xFF, E4M3 0x7F for NVFP4) and dequantizes to NaN everywhere (the microxcaling reference's
/// behaviour; the spec leaves the choice to the implementation). An all-zero block gets
/// scale code 0 (2^-127) and zero elements. A tail shorter than `block` at the end of the axis is
/// a block of its own (its scale comes from the values present; nothing is padded into results).

#include <ATen/ATen.h>

#include <cstdint>
#include <string>
#include <vector>

namespace latmix {

/// Element data types of the MX formats.
enum class ElementFormat {
  E2M1,  ///< MXFP4: max 6, magnitudes 0, .5, 1, 1.5, 2, 3, 4, 6
  E3M2,  ///< MXFP6: max 28, no Inf/NaN
  E2M3,  ///< MXFP6: max 7.5, no Inf/NaN
  E4M3,  ///< MXFP8: max 448, only S.1111.111 is NaN, no Inf
  E5M2,  ///< MXFP8: max 57344, IEEE-like Inf (S.11111.00) and NaN (S.11111.{01,10,11})
  INT8,  ///< MXINT8: two's complement k * 2^-6; MX quantization uses k in -127..127
  INT4,  ///< MXINT4 (not in OCP v1.0): microxcaling's sign-magnitude k/4, k in -7..7
};

/// How the E8M0 exponent e of a block is chosen from the block's largest magnitude `amax`
/// (emax: the element's largest exponent, max: its largest value).
enum class ScaleRule {
  Floor,  ///< OCP v1.0: e = floor(log2 amax) - emax (may clip the largest values)
  Ceil,   ///< e = ceil(log2 amax) - emax
  RCeil,  ///< e = ceil(log2(amax / max)): the smallest e that never clips (cuBLAS/cuDNN)
  Even,   ///< amax rounded (half up) to the element's mantissa width, then Floor (torchao, vLLM)
};

/// Rounding of the scaled values to the element grid.
enum class Rounding {
  NearestEven,  ///< ties to the even code (default)
  NearestAway,  ///< ties away from zero (the microxcaling library's default)
};

/// The block scale's data type.
enum class ScaleType {
  E8M0,  ///< MX: power of two
  E4M3,  ///< NVFP4: FP8 E4M3 (amax / 6), optionally times an fp32 tensor scale
};

/// Facts about an element format.
struct ElementInfo {
  const char* name;    ///< "E2M1", "INT8", ...
  int bits;            ///< 4, 6 or 8
  int ebits;           ///< exponent bits (0 for integers)
  int mbits;           ///< mantissa bits; for integers the fractional bits (INT8: 6, INT4: 2)
  int bias;            ///< exponent bias (0 for integers)
  int emax;            ///< exponent of the largest value (OCP's emax_elem)
  double max;          ///< largest finite value of MX quantization (INT8: 127/64)
  double min_positive; ///< smallest positive value (a subnormal for the FP formats)
  bool has_inf;        ///< E5M2 only
  bool has_nan;        ///< E4M3, E5M2
  bool is_int;         ///< INT8, INT4
};

/// The facts of an element format.
const ElementInfo& element_info(ElementFormat format);

/// The exact value of an element code (the low `bits` bits of `code` are used). NaN for the
/// NaN codes, +-Inf for E5M2's Inf codes, -0.0 for the negative-zero codes (not INT8).
double element_decode(ElementFormat format, uint8_t code);

/// The code of the element value nearest `value` (no scaling), with ties broken by `rounding`.
/// Finite values beyond the largest finite magnitude saturate to it (INT8: the code range is
/// the full two's complement -128..127, i.e. -2 .. 127/64). +-Inf gives E5M2's Inf codes and
/// saturates in the other formats; NaN gives the NaN code (E4M3, E5M2) or 0. The sign of zero
/// is kept where the format has a negative zero. encode(decode(c)) == c for every non-NaN code.
uint8_t element_encode(ElementFormat format, double value, Rounding rounding = Rounding::NearestEven);

/// The value of an E8M0 scale code: 2^(code - 127); NaN for 0xFF.
double e8m0_decode(uint8_t code);

/// A complete MX (or NVFP4) quantization format.
struct MxFormat {
  ElementFormat element = ElementFormat::E2M1;
  int64_t block = 32;                         ///< values per block (NVFP4: 16)
  ScaleRule scale = ScaleRule::Floor;         ///< E8M0 exponent rule (ignored for NVFP4)
  Rounding rounding = Rounding::NearestEven;  ///< element rounding
  ScaleType scale_type = ScaleType::E8M0;
  /// NVFP4 only: divide the block scales by an fp32 tensor scale amax(|x|) / (6 * 448), so the
  /// E4M3 block scales use their full range (NVIDIA's two-level scaling).
  bool tensor_scale = false;

  /// A named format with its defaults: "mxfp4", "mxfp6_e3m2", "mxfp6_e2m3", "mxfp8_e4m3",
  /// "mxfp8_e5m2", "mxint8", "mxint4", "nvfp4" (E2M1, block 16, E4M3 scale).
  /// \throws latmix::UsageError for any other name (listing the valid ones).
  static MxFormat parse(const std::string& name);
  /// The short name ("mxfp4", ..., "nvfp4").
  std::string name() const;
  /// "mxfp4 (E2M1, block 32, scale floor, round even)".
  std::string describe() const;
  const ElementInfo& info() const { return element_info(element); }
  /// The element format's largest finite value used by quantization.
  double element_max() const { return info().max; }
  /// Whether two codes share a byte when packed (E2M1, INT4).
  bool is_4bit() const { return info().bits == 4; }
  /// \throws latmix::UsageError when the block is < 1 or NVFP4 has a non-E2M1 element.
  void validate() const;
};

/// The names MxFormat::parse accepts, in a fixed order.
std::vector<std::string> mx_format_names();
/// "floor", "ceil", "rceil", "even". \throws latmix::UsageError for anything else.
ScaleRule parse_scale_rule(const std::string& name);
/// "even", "away". \throws latmix::UsageError for anything else.
Rounding parse_rounding(const std::string& name);
std::string to_string(ScaleRule rule);
std::string to_string(Rounding rounding);

/// Which implementation computes a quantization. Every choice gives the same bits.
enum class MxKernel {
  Auto,  ///< CPU tensors: CpuLoop; CUDA tensors: Cuda in builds with CUDA; otherwise Aten
  Aten,  ///< unfused ATen tensor operations (any device)
  CpuLoop,  ///< direct C++ loop over blocks with at::parallel_for (CPU only)
  Cuda,  ///< fused CUDA kernel, one pass over memory (CUDA tensors; throws latmix::Error elsewhere
         ///< and in builds without CUDA, see mx_cuda_kernel_built)
};

/// Whether this build has the fused CUDA kernel (LibTorch with CUDA and nvcc at build time).
bool mx_cuda_kernel_built();

/// Quantize-then-dequantize along `axis` (negative counts from the end). Returns a tensor of
/// x's shape, dtype and device. Floating inputs only (fp32, bf16, fp16, fp64).
///
/// Gradient: straight-through. When x requires grad (and grad mode is on), the result is
/// differentiable and d result / d x is the identity, so gradients flow through to whatever
/// produced x (e.g. a learned transform); the forward value is exactly the quantized value.
/// \throws latmix::UsageError for a bad axis/format; latmix::Error for a non-floating tensor.
at::Tensor fake_quantize(const at::Tensor& x, const MxFormat& format, int64_t axis = -1,
                         MxKernel kernel = MxKernel::Auto);

/// Encoded MX data. The quantized axis is moved last: for x of shape [a, b, n] quantized along
/// axis 1, codes hold [a, n, b] (or [a, n, ceil(b/2)] packed) and scales [a, n, ceil(b/block)].
/// For the default axis (last) this is the compressed-tensors layout: `weight_packed`
/// [out, in/2] and `weight_scale` [out, in/32].
struct MxPacked {
  /// uint8 element codes; 4-bit formats packed two per byte when `nibbles` (element 2i in the
  /// low nibble, 2i+1 in the high nibble; an odd count leaves the last high nibble 0).
  at::Tensor codes;
  /// uint8 scale codes: E8M0 (0xFF NaN), or E4M3 for NVFP4 (0x7F NaN).
  at::Tensor scales;
  std::vector<int64_t> shape;  ///< shape of the original tensor
  int64_t axis = 0;            ///< the quantized axis of the original tensor (non-negative)
  MxFormat format;
  bool nibbles = false;        ///< whether codes are packed two per byte
  float tensor_scale = 1.0f;   ///< NVFP4's fp32 tensor scale (1 when unused)
};

/// Encodes x (any floating dtype, any device; CUDA tensors in builds with CUDA by one fused kernel
/// on the device, codes and scales staying there; everything else on the CPU). 4-bit formats are
/// packed two codes per byte when `pack_nibbles`; 6- and 8-bit formats always use one byte per code.
/// mx_decode(mx_encode(x, f)) equals fake_quantize(x, f) (as fp32) bit for bit.
MxPacked mx_encode(const at::Tensor& x, const MxFormat& format, int64_t axis = -1, bool pack_nibbles = true);

/// Dequantizes MxPacked data to a tensor of the original shape, on the codes' device (CUDA codes
/// in builds with CUDA: one fused unpack + decode kernel, the same bits as on the CPU).
/// \throws latmix::Error when the codes/scales do not match shape and format.
at::Tensor mx_decode(const MxPacked& packed, at::ScalarType dtype = at::kFloat);

/// Packs 4-bit codes (uint8, values 0..15) along the last dimension: byte i = codes[2i] |
/// codes[2i+1] << 4; an odd length gets a 0 high nibble in its last byte.
at::Tensor pack_nibbles(const at::Tensor& codes);
/// The inverse of pack_nibbles: `count` codes along the last dimension.
at::Tensor unpack_nibbles(const at::Tensor& packed, int64_t count);

/// GGUF's MXFP4 blocks (ggml block_mxfp4): 17 bytes per 32 values, byte 0 the E8M0 scale,
/// byte 1 + j holding element j (low nibble) and element j + 16 (high nibble). x is quantized
/// along its last dimension, which must be a multiple of 32; `format` must be E2M1 with block
/// 32 (its scale rule and rounding are used; ggml itself uses Floor). Returns uint8
/// [numel / 32, 17].
at::Tensor gguf_mxfp4_encode(const at::Tensor& x, const MxFormat& format = MxFormat{});
/// Decodes GGUF MXFP4 blocks to an fp32 tensor of `shape` (last dimension a multiple of 32).
at::Tensor gguf_mxfp4_decode(const at::Tensor& blocks, at::IntArrayRef shape);

/// Quantization error of one tensor in one format.
struct MxErrorStats {
  int64_t numel = 0;
  int64_t blocks = 0;
  int64_t nan_blocks = 0;    ///< blocks with NaN/Inf input (excluded from the figures below)
  int64_t clipped = 0;       ///< elements whose scaled magnitude exceeded the element max
  double clip_rate = 0;      ///< clipped / finite elements
  double mse = 0;            ///< mean squared error over finite blocks
  double sqnr_db = 0;        ///< 10 log10(sum x^2 / sum (x - q)^2); +inf when exact
};

/// Quantization error of x in `format` along `axis` (computed on the CPU in fp64).
MxErrorStats mx_error_stats(const at::Tensor& x, const MxFormat& format, int64_t axis = -1);

}  // namespace latmix
