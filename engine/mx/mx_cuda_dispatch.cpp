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

void encode_rows_cuda(const at::Tensor& x2d, const MxFormat& f, float s2, at::Tensor& codes, at::Tensor& scales) {
#if defined(LATMIX_WITH_CUDA)
  require_cuda_tensor(x2d);
  if (x2d.dim() != 2) fail("", kWhat, "a [rows, n] tensor", std::to_string(x2d.dim()) + " dimension(s)");
  const c10::cuda::CUDAGuard guard(x2d.device());
  const at::Tensor xm = rows_layout(x2d, 1);
  const int64_t rows = xm.size(0);
  const int64_t n = xm.size(1);
  const int64_t nb = (n + f.block - 1) / f.block;
  codes = at::empty({rows, n}, xm.options().dtype(at::kByte));
  scales = at::empty({rows, nb}, xm.options().dtype(at::kByte));
  check_launch(mx_cuda::encode(xm.data_ptr(), codes.data_ptr<uint8_t>(), scales.data_ptr<uint8_t>(),
                               kernel_dtype(xm.scalar_type()), mx_cuda::make_quant_params(f, rows, n, s2),
                               c10::cuda::getCurrentCUDAStream().stream()));
#else
  no_cuda(x2d);
#endif
}

}  // namespace mx_detail

}  // namespace latmix
