// The C++ side of the fused CUDA kernels (mx/cuda/mx_kernels.cu): argument checks, the row-major
// layout, the current device and stream. Compiled in every build; without CUDA (LATMIX_WITH_CUDA
// undefined, e.g. Debian's CPU-only LibTorch) the entry points throw a latmix::Error saying so.
#include <cmath>
#include <string>

#include "latmix/error.h"
#include "latmix/mx.h"
#include "mx/cuda/mx_cuda.h"
#include "mx/mx_internal.h"

#if defined(LATMIX_WITH_CUDA)
#include <c10/cuda/CUDAGuard.h>
#include <c10/cuda/CUDAStream.h>
#endif

namespace latmix {

namespace mx_cuda {

namespace {

ElemParams elem_params(ElementFormat f) {
  const ElementInfo& in = element_info(f);
  const mx_detail::ElementParams p = mx_detail::element_params(f);
  ElemParams k;
  k.is_int = p.is_int ? 1 : 0;
  k.int_neg_zero = p.int_has_negative_zero ? 1 : 0;
  k.ebits = in.ebits;
  k.mbits = p.mbits;
  k.bias = in.bias;
  k.emax = p.emax;
  k.max = p.max;
  k.min_normal_bits = mx_detail::float_to_bits(p.min_normal);
  k.int_step = p.int_step;
  k.int_inv_step = p.is_int ? std::ldexp(1.0f, p.mbits) : 0.0f;
  k.min_exp = p.is_int ? -p.mbits : 1 - in.bias - p.mbits;
  if (!p.is_int) {  // FpEncoder's constants
    const int emin = 1 - in.bias;
    k.max_code = element_encode(f, static_cast<double>(p.max));
    k.sub_magic = std::ldexp(1.0f, 23 + emin - p.mbits);
    k.sub_inv_step = std::ldexp(1.0f, p.mbits - emin);
  }
  return k;
}

}  // namespace

QuantParams make_quant_params(const MxFormat& format, int64_t rows, int64_t n, float s2) {
  QuantParams q;
  q.el = elem_params(format.element);
  q.e4m3 = elem_params(ElementFormat::E4M3);
  q.rows = rows;
  q.n = n;
  q.block = format.block;
  q.rule = static_cast<int>(format.scale);
  q.away = format.rounding == Rounding::NearestAway ? 1 : 0;
  q.nvfp4 = format.scale_type == ScaleType::E4M3 ? 1 : 0;
  q.tensor_scale = q.nvfp4 && format.tensor_scale ? 1 : 0;
  q.s2 = s2;
  return q;
}

DecodeParams make_decode_params(const MxFormat& format, float tensor_scale, int64_t rows, int64_t n, bool nibbles) {
  const ElementInfo& in = element_info(format.element);
  DecodeParams d;
  d.rows = rows;
  d.n = n;
  d.block = format.block;
  d.nibbles = nibbles ? 1 : 0;
  d.e8m0 = format.scale_type == ScaleType::E8M0 ? 1 : 0;
  d.min_exp = elem_params(format.element).min_exp;
  d.has_nan = in.has_nan ? 1 : 0;
  // The tables of mx_decode (mx_pack.cpp): element_decode of every code; e8m0_decode, or the E4M3
  // value of the low 7 bits times the tensor scale, of every scale code.
  for (int c = 0; c < 256; ++c) {
    const auto code = static_cast<uint8_t>(c);
    d.values[c] = c < (1 << in.bits) ? static_cast<float>(element_decode(format.element, code)) : 0.0f;
    if (d.e8m0) {
      d.scales[c] = static_cast<float>(e8m0_decode(code));
    } else {
      const auto sb = static_cast<float>(element_decode(ElementFormat::E4M3, static_cast<uint8_t>(code & 0x7F)));
      d.scales[c] = format.tensor_scale ? sb * tensor_scale : sb;
    }
  }
  return d;
}

}  // namespace mx_cuda

bool mx_cuda_kernel_built() {
#if defined(LATMIX_WITH_CUDA)
  return true;
#else
  return false;
#endif
}

namespace mx_detail {

namespace {

constexpr const char* kWhat = "MX quantization with the fused CUDA kernel (MxKernel::Cuda)";

#if defined(LATMIX_WITH_CUDA)

void require_cuda_tensor(const at::Tensor& x) {
  if (!x.is_cuda()) fail("", kWhat, "a CUDA tensor", "a tensor on " + x.device().str());
}

mx_cuda::DType kernel_dtype(at::ScalarType st) {
  if (st == at::kBFloat16) return mx_cuda::DType::BFloat16;
  if (st == at::kHalf) return mx_cuda::DType::Half;
  return mx_cuda::DType::Float;
}

// x with `ax` moved last, contiguous, in a dtype the kernels read (fp64 is rounded to fp32 first,
// as on the CPU).
at::Tensor rows_layout(const at::Tensor& x, int64_t ax) {
  const at::ScalarType st = x.scalar_type();
  const bool native = st == at::kFloat || st == at::kBFloat16 || st == at::kHalf;
  return (native ? x : x.to(at::kFloat)).detach().movedim(ax, -1).contiguous();
}

void check_launch(const char* err) {
  if (err != nullptr) fail("", kWhat, "a successful kernel launch", err);
}

#else

[[noreturn]] void no_cuda(const at::Tensor& x) {
  fail("", kWhat, "a build with CUDA (a LibTorch with CUDA and nvcc, see engine/CMakeLists.txt)",
       "a build without CUDA (for a tensor on " + x.device().str() + ")");
}

#endif

}  // namespace

at::Tensor fake_quantize_cuda(const at::Tensor& x, const MxFormat& f, int64_t axis) {
#if defined(LATMIX_WITH_CUDA)
  require_cuda_tensor(x);
  const int64_t ax = normalize_axis(x, axis);
  const c10::cuda::CUDAGuard guard(x.device());
  const at::Tensor xm = rows_layout(x, ax);
  at::Tensor out = at::empty_like(xm);
  const int64_t n = xm.size(-1);
  const int64_t rows = n == 0 ? 0 : xm.numel() / n;
  const float s2 = f.scale_type == ScaleType::E4M3 && f.tensor_scale ? nvfp4_tensor_scale(x) : 1.0f;
  check_launch(mx_cuda::fake_quantize(xm.data_ptr(), out.data_ptr(), kernel_dtype(xm.scalar_type()),
                                      mx_cuda::make_quant_params(f, rows, n, s2),
                                      c10::cuda::getCurrentCUDAStream().stream()));
  return out.movedim(-1, ax).to(x.scalar_type()).contiguous();
#else
  no_cuda(x);
#endif
}

void encode_rows_cuda(const at::Tensor& x2d, const MxFormat& f, float s2, at::Tensor& codes, at::Tensor& scales,
                      bool pack_nibbles) {
#if defined(LATMIX_WITH_CUDA)
  require_cuda_tensor(x2d);
  if (x2d.dim() != 2) fail("", kWhat, "a [rows, n] tensor", std::to_string(x2d.dim()) + " dimension(s)");
  const bool nibbles = pack_nibbles && f.is_4bit();
  const c10::cuda::CUDAGuard guard(x2d.device());
  const at::Tensor xm = rows_layout(x2d, 1);
  const int64_t rows = xm.size(0);
  const int64_t n = xm.size(1);
  const int64_t nb = (n + f.block - 1) / f.block;
  codes = at::empty({rows, nibbles ? (n + 1) / 2 : n}, xm.options().dtype(at::kByte));
  scales = at::empty({rows, nb}, xm.options().dtype(at::kByte));
  check_launch(mx_cuda::encode(xm.data_ptr(), codes.data_ptr<uint8_t>(), scales.data_ptr<uint8_t>(),
                               kernel_dtype(xm.scalar_type()), mx_cuda::make_quant_params(f, rows, n, s2),
                               c10::cuda::getCurrentCUDAStream().stream(), nibbles));
#else
  (void)pack_nibbles;
  no_cuda(x2d);
#endif
}

at::Tensor decode_rows_cuda(const at::Tensor& codes2d, const at::Tensor& scales2d, const MxFormat& f,
                            float tensor_scale, int64_t n, bool nibbles, at::ScalarType dtype) {
#if defined(LATMIX_WITH_CUDA)
  require_cuda_tensor(codes2d);
  if (scales2d.device() != codes2d.device()) {
    fail("", "MX packed data", "scales on the codes' device (" + codes2d.device().str() + ")",
         "scales on " + scales2d.device().str());
  }
  const c10::cuda::CUDAGuard guard(codes2d.device());
  const at::Tensor c = codes2d.contiguous();
  const at::Tensor s = scales2d.contiguous();
  // Byte codes of a format with fewer than 256 codes (6-bit, or 4-bit not packed) can hold values
  // without an element; the CPU's table lookup rejects them, and so does this.
  const int count = 1 << f.info().bits;
  if (!nibbles && count < 256 && c.numel() > 0) {
    const int64_t top = c.max().item<int64_t>();
    if (top >= count) {
      fail("", "MX codes", "codes below " + std::to_string(count) + " for " + f.name(), "code " + std::to_string(top));
    }
  }
  const bool native = dtype == at::kFloat || dtype == at::kBFloat16 || dtype == at::kHalf;
  const int64_t rows = c.size(0);
  at::Tensor out = at::empty({rows, n}, c.options().dtype(native ? dtype : at::kFloat));
  check_launch(mx_cuda::decode(c.data_ptr<uint8_t>(), s.data_ptr<uint8_t>(), out.data_ptr(),
                               kernel_dtype(out.scalar_type()),
                               mx_cuda::make_decode_params(f, tensor_scale, rows, n, nibbles),
                               c10::cuda::getCurrentCUDAStream().stream()));
  return native ? out : out.to(dtype);
#else
  (void)scales2d;
  (void)f;
  (void)tensor_scale;
  (void)n;
  (void)nibbles;
  (void)dtype;
  no_cuda(codes2d);
#endif
}

}  // namespace mx_detail

}  // namespace latmix
