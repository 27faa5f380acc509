#pragma once
// The fast Walsh-Hadamard transform's two implementations (fast_walsh_hadamard in hadamard_matrix.cpp
// picks one), for the unit test that checks they give the same bits.
#include <ATen/ATen.h>

namespace latmix::hadamard_detail {

/// log2(n) stages of ATen operations: any device, any floating dtype, differentiable.
at::Tensor butterflies_aten(const at::Tensor& x);
/// The same butterflies in place on a contiguous copy (CPU float or double, no autograd).
at::Tensor butterflies_host(const at::Tensor& x);

}  // namespace latmix::hadamard_detail
