// The GPTQ sweep (gptq_sweep.h, quant_gptq.h): column order, inverse Hessian factor, lazy batches
// and the MX block scales taken on the way.
//
// Nothing in the column loop waits for the device: where each group's scale is taken, and the
// index lists that gather its current weights, are planned once per sweep and uploaded once; the
// scales are computed on the device (mx_block_scales); no value is read back. On CUDA the loop
// itself is one fused kernel launch per stretch of columns (quant/cuda/gptq_kernels.cu).
#include <ATen/Parallel.h>

#include <algorithm>
#include <array>
#include <string>
#include <vector>

#include "latmix/error.h"
#include "mx/cuda/mx_cuda.h"
#include "quant/cuda/gptq_cuda.h"
#include "quant/gptq_sweep.h"

#if defined(LATMIX_WITH_CUDA)
#include <c10/cuda/CUDAGuard.h>
#include <c10/cuda/CUDAStream.h>
#endif

namespace latmix::gptq_detail {

namespace {

constexpr const char* kCudaWhat = "GPTQ with the fused CUDA kernel (SweepKernel::Cuda)";

// The upper Cholesky factor of (H + damp I)^-1, as the reference GPTQ uses it. H is the caller's
// permuted copy; its diagonal is damped in place.
at::Tensor inverse_hessian_factor(const at::Tensor& H, double percdamp) {
  const double damp = percdamp * H.diagonal().mean().item<double>();
  H.diagonal().add_(damp);
  auto [L, info] = at::linalg_cholesky_ex(H, /*upper=*/false, /*check_errors=*/false);
  if (info.item<int64_t>() != 0) {
    fail("", "GPTQ Hessian", "positive definite after damping",
         "not (raise damp, now " + std::to_string(percdamp) + ")");
  }
  return at::linalg_cholesky(at::cholesky_inverse(L), /*upper=*/true);
}

// Where the sweep takes each MX group's scale (dynamic scales): at the position where it first
// touches one of the group's columns, from the current weights of all of them. Those in the same
// lazy batch are current in the batch's copy W1; later ones still owe the batch's pending update.
struct GroupPlan {
  std::vector<int32_t> first;                // per position: the group first touched there, or -1
  std::vector<int32_t> in_batch;             // per position: L when that group's L columns are exactly the
                                             // positions [p, p + L) of one batch (the fused loop takes the
                                             // scale itself), else 0
  at::Tensor index;                          // int64 on the device: every group's four index lists
  std::vector<std::array<int64_t, 5>> span;  // per group: where its lists start in `index`, and end
};

// State of one GPTQ sweep over the permuted columns.
struct Sweep {
  at::Tensor W;                        // [rows, n] permuted, updated by the lazy batch updates
  at::Tensor Hinv;                     // [n, n] upper factor, permuted
  std::vector<int64_t> perm, invperm;  // position -> original column, and back
  std::vector<int32_t> group;          // position -> MX group
  at::Tensor scales;                   // [rows, groups]
  MxFormat format;
  GridTables grid;
  int64_t batch = 0;  // columns per lazy batch
  GroupPlan plan;
  // The fused loop's view: the factor row-major, and group / in_batch on the device (int32).
  at::Tensor hinv_rows, group_dev, in_batch_dev;
  mx_cuda::QuantParams scale_params;
};

// The index lists of group g (columns [c0, c1)) for the batch [i1, i2) of its first position:
// slot_in/pos_in the group's slots and batch offsets of columns inside the batch, slot_out/pos_out
// those of columns after it (their positions).
void add_group(Sweep& s, int64_t g, int64_t first, std::vector<int64_t>& all) {
  const int64_t n = static_cast<int64_t>(s.perm.size());
  const int64_t c0 = g * s.format.block, c1 = std::min(n, c0 + s.format.block);
  const int64_t i1 = first / s.batch * s.batch, i2 = std::min(n, i1 + s.batch);
  std::array<std::vector<int64_t>, 4> lists;
  int64_t last = first;
  for (int64_t c = c0; c < c1; ++c) {
    const int64_t p = s.invperm[static_cast<size_t>(c)];
    last = std::max(last, p);
    lists[p < i2 ? 0 : 2].push_back(c - c0);
    lists[p < i2 ? 1 : 3].push_back(p < i2 ? p - i1 : p);
  }
  auto& span = s.plan.span[static_cast<size_t>(g)];
  for (size_t k = 0; k < 4; ++k) {
    span[k] = static_cast<int64_t>(all.size());
    all.insert(all.end(), lists[k].begin(), lists[k].end());
  }
  span[4] = static_cast<int64_t>(all.size());
  s.plan.first[static_cast<size_t>(first)] = static_cast<int32_t>(g);
  if (lists[2].empty() && last - first + 1 == c1 - c0) {
    s.plan.in_batch[static_cast<size_t>(first)] = static_cast<int32_t>(c1 - c0);
  }
}

void make_plan(Sweep& s, bool static_scales) {
  const auto n = static_cast<int64_t>(s.perm.size());
  const int64_t B = s.format.block, groups = (n + B - 1) / B;
  s.plan.first.assign(static_cast<size_t>(n), -1);
  s.plan.in_batch.assign(static_cast<size_t>(n), 0);
  s.plan.span.assign(static_cast<size_t>(groups), {});
  if (static_scales) return;
  std::vector<int64_t> first(static_cast<size_t>(groups), n);
  for (int64_t c = 0; c < n; ++c) {
    auto& f = first[static_cast<size_t>(c / B)];
    f = std::min(f, s.invperm[static_cast<size_t>(c)]);
  }
  std::vector<int64_t> all;
  for (int64_t g = 0; g < groups; ++g) add_group(s, g, first[static_cast<size_t>(g)], all);
  s.plan.index = at::tensor(all, at::kLong).to(s.W.device());
}

// The current weights of MX block g's columns (in original order) when the sweep is at position
// i1 + i, its first position, with W1 the current lazy batch [i1, i2) and Err1 its errors so far:
// columns of the batch are current in W1; later ones still owe the batch's pending update
// -Err1 Hinv.
at::Tensor current_block(const Sweep& s, int64_t g, int64_t i1, int64_t i, const at::Tensor& W1,
                         const at::Tensor& Err1) {
  const int64_t n = s.W.size(1), B = s.format.block;
  const int64_t c0 = g * B, c1 = std::min(n, c0 + B);
  const auto& span = s.plan.span[static_cast<size_t>(g)];
  const auto list = [&](size_t k) { return s.plan.index.slice(0, span[k], span[k + 1]); };
  at::Tensor G = at::empty({s.W.size(0), c1 - c0}, s.W.options());
  if (span[1] > span[0]) G.index_copy_(1, list(0), W1.index_select(1, list(1)));
  if (span[3] > span[2]) {
    at::Tensor upd = s.W.index_select(1, list(3));
    if (i > 0) upd = upd - Err1.slice(1, 0, i).matmul(s.Hinv.slice(0, i1, i1 + i).index_select(1, list(3)));
    G.index_copy_(1, list(2), upd);
  }
  return G;
}

void take_scale(Sweep& s, int64_t g, int64_t i1, int64_t i, const at::Tensor& W1, const at::Tensor& Err1) {
  s.scales.select(1, g).copy_(mx_block_scales(current_block(s, g, i1, i, W1, Err1), s.format).select(1, 0));
}

// The batch's update of every later column: W[:, i2:] -= Err1 Hinv[i1:i2, i2:].
void lazy_update(Sweep& s, int64_t i1, int64_t i2, const at::Tensor& Err1) {
  if (i2 < s.W.size(1)) s.W.slice(1, i2).sub_(Err1.matmul(s.Hinv.slice(0, i1, i2).slice(1, i2)));
}

// Quantizes the lazy batch [i1, i2) column by column with ATen operations.
void sweep_batch_aten(Sweep& s, int64_t i1, int64_t i2, at::Tensor& Q) {
  const int64_t count = i2 - i1;
  at::Tensor W1 = s.W.slice(1, i1, i2).clone();
  at::Tensor Err1 = at::zeros_like(W1);
  const at::Tensor Hinv1 = s.Hinv.slice(0, i1, i2).slice(1, i1, i2);
  for (int64_t i = 0; i < count; ++i) {
    const auto p = static_cast<size_t>(i1 + i);
    if (s.plan.first[p] >= 0) take_scale(s, s.plan.first[p], i1, i, W1, Err1);
    const at::Tensor w = W1.select(1, i);
    const at::Tensor q = round_on_grid(w, s.scales.select(1, s.group[p]), s.grid);
    Q.select(1, i1 + i).copy_(q);
    const at::Tensor err = (w - q) / Hinv1[i][i];
    W1.slice(1, i).sub_(err.unsqueeze(1) * Hinv1[i].slice(0, i).unsqueeze(0));
    Err1.select(1, i).copy_(err);
  }
  lazy_update(s, i1, i2, Err1);
}

// gptq_cuda::sweep_columns on the host: the same steps, row by row.
void sweep_columns_host(const gptq_cuda::BatchArgs& a) {
  at::parallel_for(0, a.rows, 16, [&](int64_t r0, int64_t r1) {
    for (int64_t r = r0; r < r1; ++r) {
      float* w = a.w + r * a.ldw;
      float* scales = a.scales + r * a.lds;
      for (int64_t j = a.begin; j < a.end; ++j) {
        const int32_t g = a.group[j];
        if (a.scale_here[j] > 0) {
          uint32_t m = 0;
          for (int64_t k = j; k < j + a.scale_here[j]; ++k) m = std::max(m, mx_cuda::amax_bits(w[k]));
          scales[g] = gptq_cuda::block_scale_value(m, a.scale);
        }
        const float x = w[j];
        const float q = gptq_cuda::grid_round(x, scales[g], a.grid);
        const float e = gptq_cuda::column_error(x, q, a.hinv[j * a.ldh + j]);
        a.q[r * a.ldq + j] = q;
        a.err[r * a.lderr + j] = e;
        const float* h = a.hinv + j * a.ldh;
        for (int64_t k = j + 1; k < a.count; ++k) w[k] = gptq_cuda::updated(w[k], e, h[k]);
      }
    }
  });
}

// Runs the batch columns [begin, end) with the fused loop (on the host or the CUDA device).
void run_columns(Sweep& s, int64_t i1, int64_t begin, int64_t end, at::Tensor& W1, at::Tensor& Err1, at::Tensor& Q,
                 SweepKernel kernel) {
  if (begin >= end) return;
  const int64_t n = s.W.size(1);
  gptq_cuda::BatchArgs a;
  a.w = W1.data_ptr<float>();
  a.ldw = W1.stride(0);
  a.err = Err1.data_ptr<float>();
  a.lderr = Err1.stride(0);
  a.q = Q.data_ptr<float>() + i1;
  a.ldq = Q.stride(0);
  a.hinv = s.hinv_rows.data_ptr<float>() + i1 * n + i1;
  a.ldh = n;
  a.scales = s.scales.data_ptr<float>();
  a.lds = s.scales.stride(0);
  a.group = s.group_dev.data_ptr<int32_t>() + i1;
  a.scale_here = s.in_batch_dev.data_ptr<int32_t>() + i1;
  a.rows = W1.size(0);
  a.count = W1.size(1);
  a.begin = begin;
  a.end = end;
  a.grid = {s.grid.values.data_ptr<float>(), s.grid.midpoints.data_ptr<float>(), s.grid.pick_upper.data_ptr<int64_t>(),
            s.grid.values.size(0), s.grid.signed_zero ? 1 : 0};
  a.scale = s.scale_params;
  if (kernel == SweepKernel::Host) {
    sweep_columns_host(a);
    return;
  }
#if defined(LATMIX_WITH_CUDA)
  const c10::cuda::CUDAGuard guard(W1.device());
  const char* err = gptq_cuda::sweep_columns(a, c10::cuda::getCurrentCUDAStream().stream());
  if (err != nullptr) fail("", kCudaWhat, "a successful kernel launch", err);
#endif
}

// Quantizes the lazy batch [i1, i2) with the fused loop, stopping it where a group's scale needs
// columns outside the batch's copy (act-order, or a group straddling two batches).
void sweep_batch_fused(Sweep& s, int64_t i1, int64_t i2, at::Tensor& Q, SweepKernel kernel) {
  const int64_t count = i2 - i1;
  at::Tensor W1 = s.W.slice(1, i1, i2).clone(at::MemoryFormat::Contiguous);
  at::Tensor Err1 = at::zeros({W1.size(0), count}, W1.options());
  int64_t begin = 0;
  for (int64_t i = 0; i < count; ++i) {
    const auto p = static_cast<size_t>(i1 + i);
    if (s.plan.first[p] < 0 || s.plan.in_batch[p] > 0) continue;
    run_columns(s, i1, begin, i, W1, Err1, Q, kernel);
    take_scale(s, s.plan.first[p], i1, i, W1, Err1);
    begin = i;
  }
  run_columns(s, i1, begin, count, W1, Err1, Q, kernel);
  lazy_update(s, i1, i2, Err1);
}

// The column order (act-order or not) and the factor of H^-1 in it; H's dead diagonal entries are 1.
void factor_into(HessianFactor& f, const at::Tensor& H, const GptqOptions& options) {
  const int64_t n = H.size(0);
  f.perm = options.act_order ? at::argsort(H.diagonal(), /*dim=*/0, /*descending=*/true)
                             : at::arange(n, at::TensorOptions().dtype(at::kLong).device(H.device()));
  f.hinv = inverse_hessian_factor(H.index_select(0, f.perm).index_select(1, f.perm), options.percdamp);
}

// Prepares the block scales and the column loop's plan for H's factor.
Sweep start_sweep(const at::Tensor& W, const HessianFactor& factor, const MxFormat& format, const GptqOptions& options,
                  bool fused) {
  const int64_t n = W.size(1);
  Sweep s;
  s.format = format;
  s.batch = options.block_columns;
  s.grid = make_grid(format, W.device());
  const at::Tensor& perm = factor.perm;
  const at::Tensor perm_cpu = perm.to(at::kCPU).contiguous();
  s.perm.assign(perm_cpu.data_ptr<int64_t>(), perm_cpu.data_ptr<int64_t>() + n);
  s.invperm.assign(static_cast<size_t>(n), 0);
  s.group.assign(static_cast<size_t>(n), 0);
  for (int64_t p = 0; p < n; ++p) {
    const int64_t c = s.perm[static_cast<size_t>(p)];
    s.invperm[static_cast<size_t>(c)] = p;
    s.group[static_cast<size_t>(p)] = static_cast<int32_t>(c / format.block);
  }
  const int64_t groups = (n + format.block - 1) / format.block;
  s.scales =
      options.static_scales ? mx_block_scales(W, format).contiguous() : at::zeros({W.size(0), groups}, W.options());
  s.W = W.index_select(1, perm);
  s.Hinv = factor.hinv;
  make_plan(s, options.static_scales);
  if (fused) {
    s.hinv_rows = s.Hinv.contiguous();
    s.group_dev = at::tensor(s.group, at::kInt).to(W.device());
    s.in_batch_dev = at::tensor(s.plan.in_batch, at::kInt).to(W.device());
    s.scale_params = mx_cuda::make_quant_params(format, W.size(0), n, 1.0f);
  }
  return s;
}

SweepKernel resolve(SweepKernel kernel, const at::Tensor& W) {
  switch (kernel) {
    case SweepKernel::Auto:
      if (W.device().is_cpu()) return SweepKernel::Host;
      return W.is_cuda() && gptq_cuda_kernel_built() ? SweepKernel::Cuda : SweepKernel::Aten;
    case SweepKernel::Aten:
      return kernel;
    case SweepKernel::Host:
      if (!W.device().is_cpu())
        fail("", "GPTQ with the host loop (SweepKernel::Host)", "a CPU tensor", W.device().str());
      return kernel;
    case SweepKernel::Cuda:
      if (!gptq_cuda_kernel_built()) {
        fail("", kCudaWhat, "a build with CUDA (a LibTorch with CUDA and nvcc)", "a build without CUDA");
      }
      if (!W.is_cuda()) fail("", kCudaWhat, "a CUDA tensor", "a tensor on " + W.device().str());
      return kernel;
  }
  return SweepKernel::Aten;
}

}  // namespace

bool gptq_cuda_kernel_built() {
#if defined(LATMIX_WITH_CUDA)
  return true;
#else
  return false;
#endif
}

HessianFactor factor_hessian(const at::Tensor& hessian, const GptqOptions& options, at::Device device) {
  HessianFactor f;
  const at::Tensor H = hessian.detach().to(device, at::kFloat).clone();
  f.dead = H.diagonal() == 0;
  H.diagonal().masked_fill_(f.dead, 1.0);
  factor_into(f, H, options);
  return f;
}

at::Tensor gptq_sweep(const at::Tensor& W, const at::Tensor& H, const MxFormat& format, const GptqOptions& options,
                      const JobControl& job, SweepKernel kernel) {
  HessianFactor f;
  factor_into(f, H, options);
  return gptq_sweep(W, f, format, options, job, kernel);
}

at::Tensor gptq_sweep(const at::Tensor& W, const HessianFactor& factor, const MxFormat& format,
                      const GptqOptions& options, const JobControl& job, SweepKernel kernel) {
  kernel = resolve(kernel, W);
  const int64_t n = W.size(1);
  Sweep s = start_sweep(W, factor, format, options, kernel != SweepKernel::Aten);
  at::Tensor Q = at::zeros(s.W.sizes(), s.W.options());
  for (int64_t i1 = 0; i1 < n; i1 += options.block_columns) {
    job.cancel.check();
    const int64_t i2 = std::min(n, i1 + options.block_columns);
    if (kernel == SweepKernel::Aten) {
      sweep_batch_aten(s, i1, i2, Q);
    } else {
      sweep_batch_fused(s, i1, i2, Q, kernel);
    }
  }
  return Q.index_select(1, at::tensor(s.invperm, at::kLong).to(W.device()));
}

}  // namespace latmix::gptq_detail
