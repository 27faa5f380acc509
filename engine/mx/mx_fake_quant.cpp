// fake_quantize: picks the implementation and attaches the straight-through gradient. The only
// file of the MX module that needs LibTorch's autograd headers.
#include <torch/csrc/autograd/custom_function.h>

#include "latmix/error.h"
#include "latmix/mx.h"
#include "mx/mx_internal.h"

namespace latmix {

namespace {

at::Tensor quantize_no_grad(const at::Tensor& x, const MxFormat& f, int64_t axis, MxKernel kernel) {
  if (kernel == MxKernel::Auto) {
    if (x.device().is_cpu()) kernel = MxKernel::CpuLoop;
    else kernel = x.is_cuda() && mx_cuda_kernel_built() ? MxKernel::Cuda : MxKernel::Aten;
  }
  if (kernel == MxKernel::CpuLoop) return mx_detail::fake_quantize_cpu(x, f, axis);
  if (kernel == MxKernel::Cuda) return mx_detail::fake_quantize_cuda(x, f, axis);
  return mx_detail::fake_quantize_aten(x, f, axis);
}

// Forward: the quantized value, exactly. Backward: the identity (straight-through estimator).
struct StraightThrough : public torch::autograd::Function<StraightThrough> {
  static at::Tensor forward(torch::autograd::AutogradContext* /*ctx*/, const at::Tensor& x, MxFormat f,
                            int64_t axis, MxKernel kernel) {
    return quantize_no_grad(x, f, axis, kernel);
  }
  static torch::autograd::variable_list backward(torch::autograd::AutogradContext* /*ctx*/,
                                                 torch::autograd::variable_list grad) {
    return {grad.at(0), at::Tensor(), at::Tensor(), at::Tensor()};
  }
};

}  // namespace

at::Tensor fake_quantize(const at::Tensor& x, const MxFormat& format, int64_t axis, MxKernel kernel) {
  mx_detail::require_floating(x, "MX fake quantization input");
  format.validate();
  const int64_t ax = mx_detail::normalize_axis(x, axis);
  if (x.numel() == 0) return x.clone();
  if (x.requires_grad() && at::GradMode::is_enabled()) return StraightThrough::apply(x, format, ax, kernel);
  return quantize_no_grad(x, format, ax, kernel);
}

}  // namespace latmix
