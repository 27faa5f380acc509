// One end-to-end learning step with bounded memory (student.h): micro-batches with gradient
// accumulation, per-layer recomputation of the student (activation checkpointing, each layer's
// transforms folded when the layer runs), and the lm_head + KL/CE computed chunk by chunk of
// positions, so [batch, seq, vocab] logits never exist.
#include <c10/core/GradMode.h>

#include <algorithm>
#include <cstdio>
#include <sstream>

#if defined(LATMIX_WITH_CUDA)
#include <c10/cuda/CUDACachingAllocator.h>
#include <cuda_runtime_api.h>
#endif

#include "latmix/error.h"
#include "latmix/quant.h"
#include "latmix/transform_fold.h"
#include "learn/student.h"

namespace latmix::learn_detail {

namespace {

constexpr uint64_t kChunkLogitBytes = 256ull << 20;  // float32 logits of one loss chunk

// The student one layer at a time: the same folds, fake quantization and hooks as
// build_student(), but a layer's folded weights exist only while that layer runs.
class StreamedStudent {
 public:
  StreamedStudent(const Model& fp, const TransformPlan& dense, const QuantSpec& spec)
      : fp_(fp), dense_(dense), spec_(spec), student_(layer_model(fp, 0, {})) {
    const ModelWeights& w = fp.weights();
    final_norm_ = w.final_norm;
    lm_head_ = w.lm_head;
    std::shared_ptr<DenseTransform> embed_head;
    if (dense.residual) {
      embed_head = as_dense(dense.residual);
      dense_.residual = embed_head;
      // fold_transforms fuses the final norm gain into lm_head when a residual transform is folded.
      c10::NoGradGuard no_grad;
      if (!final_norm_.eq(1).all().item<bool>()) {
        lm_head_ = (lm_head_.to(at::kDouble) * final_norm_.to(at::kDouble).unsqueeze(0)).to(lm_head_.scalar_type());
      }
      final_norm_ = at::ones_like(final_norm_);
    }
    student_.clear_hooks();  // layer_model copied fp's hooks; add_student_hooks adds them in order
    add_student_hooks(student_, fp, dense_, spec, embed_head);
  }

  /// Layer l of the student on h (autograd when grad mode is on).
  at::Tensor layer(int64_t l, const at::Tensor& h) {
    auto& slot = student_.weights().layers[static_cast<size_t>(l)];
    slot = fold_layer(l);
    at::Tensor out = student_.forward_layer(l, h);
    slot = LayerWeights{};
    return out;
  }

  /// The final norm and the lm_head-input capture point (what Model::hidden_states ends with).
  at::Tensor final_hidden(const at::Tensor& h) const {
    at::Tensor xf = h.to(at::kFloat);
    at::Tensor normed = (xf * at::rsqrt(xf.pow(2).mean(-1, true) + fp_.config().rms_norm_eps)).to(h.scalar_type());
    at::Tensor out = final_norm_ * normed;
    const int64_t L = fp_.config().num_layers;
    for (const auto& hook : student_.hooks()) {
      if (!hook->wants(CapturePoint::FinalNormOut, L)) continue;
      at::Tensor replaced = hook->on_capture(CapturePoint::FinalNormOut, L, out);
      if (replaced.defined()) out = replaced;
    }
    return out;
  }

  const at::Tensor& lm_head() const { return lm_head_; }

 private:
  LayerWeights fold_layer(int64_t l) const {
    LayerWeights lw = learn_detail::fold_layer(fp_, dense_, l);
    fake_quantize_layer(lw, spec_, l, fp_.config().num_layers);
    return lw;
  }

  const Model& fp_;
  TransformPlan dense_;
  const QuantSpec& spec_;
  Model student_;
  at::Tensor final_norm_, lm_head_;
};

// The loss over hidden states [m, T, D] (a leaf: its .grad receives dLoss/dhidden), chunk by
// chunk of positions through `head` (whose graph, when it has one, is kept across chunks).
// KL: teacher_hidden [m, T, D] through teacher_head; CE: next-token ids [m, T]. `denom` is the
// number of positions of the whole batch, so the micro-batches' losses add up to the batch's.
at::Tensor chunked_loss_backward(const at::Tensor& hidden, const at::Tensor& head, const at::Tensor& teacher_hidden,
                                 const at::Tensor& teacher_head, const at::Tensor& ids, int64_t chunk, double denom) {
  const int64_t m = hidden.size(0), T = hidden.size(1), D = hidden.size(2);
  const at::Tensor rows = hidden.view({m * T, D});
  const bool kl = teacher_hidden.defined();
  at::Tensor trows = kl ? teacher_hidden.reshape({m * T, D}) : at::Tensor();
  at::Tensor targets, valid;
  if (!kl) {
    // Row (b, t) predicts ids[b, t + 1]; the last position of each sequence predicts nothing.
    at::Tensor next = at::cat({ids.narrow(1, 1, T - 1), ids.narrow(1, 0, 1)}, 1).to(hidden.device(), at::kLong);
    targets = next.reshape({m * T, 1});
    valid = at::ones({m, T}, hidden.options().dtype(at::kFloat));
    valid.select(1, T - 1).zero_();
    valid = valid.reshape({m * T});
  }
  const bool head_grad = head.requires_grad();
  at::Tensor total = at::zeros({}, hidden.options().dtype(at::kFloat));
  for (int64_t r0 = 0; r0 < m * T; r0 += chunk) {
    const int64_t n = std::min(chunk, m * T - r0);
    at::Tensor ls = at::log_softmax(at::matmul(rows.narrow(0, r0, n), head.t()).to(at::kFloat), -1);
    at::Tensor term;
    if (kl) {
      at::Tensor lt;
      {
        c10::NoGradGuard no_grad;
        lt = at::log_softmax(at::matmul(trows.narrow(0, r0, n), teacher_head.t()).to(at::kFloat), -1);
      }
      term = (lt.exp() * (lt - ls)).sum() / denom;
    } else {
      term = -(ls.gather(-1, targets.narrow(0, r0, n)).squeeze(-1) * valid.narrow(0, r0, n)).sum() / denom;
    }
    term.backward({}, /*retain_graph=*/head_grad);
    total += term.detach();
  }
  return total;
}

// One micro-batch through the checkpointed student: a no-grad pass keeps each layer's input,
// then the loss, then the layers backwards, each recomputed with autograd.
at::Tensor checkpointed_micro_batch(const Model& fp, const TransformPlan& dense, const LearnSettings& s,
                                    const at::Tensor& ids, const at::Tensor& teacher_hidden, int64_t chunk,
                                    double denom) {
  StreamedStudent student(fp, dense, s.quant);
  const int64_t L = fp.config().num_layers;
  std::vector<at::Tensor> inputs(static_cast<size_t>(L) + 1);
  {
    c10::NoGradGuard no_grad;
    at::Tensor h = fp.embed(ids);
    for (int64_t l = 0; l < L; ++l) {
      inputs[static_cast<size_t>(l)] = h;
      h = student.layer(l, h);
    }
    inputs[static_cast<size_t>(L)] = h;
  }
  at::Tensor last = inputs.back().detach().requires_grad_(true);
  at::Tensor hidden = student.final_hidden(last);
  at::Tensor leaf = hidden.detach().requires_grad_(true);
  at::Tensor loss = chunked_loss_backward(leaf, student.lm_head(), teacher_hidden, fp.weights().lm_head, ids, chunk, denom);
  hidden.backward(leaf.grad());
  at::Tensor grad = last.grad();
  inputs.back() = at::Tensor();
  for (int64_t l = L - 1; l >= 0; --l) {
    at::Tensor x = inputs[static_cast<size_t>(l)].detach().requires_grad_(l > 0);
    inputs[static_cast<size_t>(l)] = at::Tensor();
    at::Tensor y = student.layer(l, x);
    y.backward(grad);
    grad = l > 0 ? x.grad() : at::Tensor();
  }
  return loss;
}

// One micro-batch through the whole folded student (lm_head quantized, or checkpointing off).
at::Tensor plain_micro_batch(const Model& fp, const TransformPlan& dense, const LearnSettings& s, const at::Tensor& ids,
                             const at::Tensor& teacher_hidden, int64_t chunk, double denom) {
  Model student = build_student(fp, dense, s.quant, -1);
  at::Tensor hidden = student.hidden_states(ids);
  at::Tensor leaf = hidden.detach().requires_grad_(true);
  at::Tensor loss =
      chunked_loss_backward(leaf, student.weights().lm_head, teacher_hidden, fp.weights().lm_head, ids, chunk, denom);
  hidden.backward(leaf.grad());
  return loss;
}

struct DeviceMemory {
  uint64_t free = 0, total = 0;
};

DeviceMemory device_memory(at::Device device) {
  DeviceMemory m;
#if defined(LATMIX_WITH_CUDA)
  if (device.is_cuda()) {
    c10::cuda::CUDACachingAllocator::emptyCache();
    size_t free = 0, total = 0;
    if (cudaMemGetInfo(&free, &total) == cudaSuccess) {
      m.free = free;
      m.total = total;
    }
  }
#else
  (void)device;
#endif
  return m;
}

std::string gb(uint64_t bytes) {
  char buf[32];
  std::snprintf(buf, sizeof buf, "%.1f GB", static_cast<double>(bytes) / 1e9);
  return buf;
}

}  // namespace

std::string StepMemory::describe() const {
  std::ostringstream o;
  o << "memory: micro-batch " << micro_batch << ", loss chunk " << loss_chunk << " positions, "
    << (checkpoint_layers ? "per-layer recomputation" : "whole-model graph");
  if (free_bytes > 0) o << "; estimated peak " << gb(estimate_bytes) << " of " << gb(free_bytes) << " free";
  return o.str();
}

StepMemory plan_step_memory(const Model& fp, const LearnSettings& s, int64_t seqlen) {
  const ModelConfig& c = fp.config();
  StepMemory m;
  m.checkpoint_layers = s.checkpoint_layers && !s.quant.lm_head;
  m.loss_chunk = s.loss_chunk > 0 ? s.loss_chunk
                                   : std::max<int64_t>(1, static_cast<int64_t>(kChunkLogitBytes / (4 * c.vocab_size)));
  // Per sequence, a rough upper bound measured against the device's allocator on Llama shapes
  // (docs/methods.md): the layer inputs kept, one layer's autograd activations and their
  // gradients, the attention's [heads, T, T] scores (explicit attention; SDPA keeps far less).
  const double elt = fp.dtype() == at::kFloat ? 4.0 : 2.0;
  const double T = static_cast<double>(seqlen), D = static_cast<double>(c.hidden_size);
  const double I = static_cast<double>(c.intermediate_size), H = static_cast<double>(c.num_heads);
  const double L = static_cast<double>(c.num_layers);
#if __has_include(<ATen/ops/scaled_dot_product_attention.h>)
  const bool fused_attention = fp.device().is_cuda();  // Model::attention uses SDPA there
#else
  const bool fused_attention = false;
#endif
  const double scores = fused_attention ? 0.0 : H * T * T * (8 + 2 * elt);
  const double layer_acts = T * (24 * D + 10 * I) * elt + scores;
  const double kept = m.checkpoint_layers ? (L + 3) * T * D * elt : L * layer_acts;
  const double per_seq = kept + 2 * layer_acts;
  const double fixed = 6.0 * static_cast<double>(m.loss_chunk) * static_cast<double>(c.vocab_size) * 4 +
                       static_cast<double>(c.vocab_size * c.hidden_size) * elt;  // chunk logits, fused head
  const DeviceMemory dm = device_memory(fp.device());
  m.free_bytes = dm.free;
  if (s.micro_batch > 0) {
    m.micro_batch = std::min(s.micro_batch, s.batch);
  } else if (dm.free == 0) {
    m.micro_batch = s.batch;  // CPU (or unknown): the whole batch
  } else {
    const double budget = 0.85 * static_cast<double>(dm.free) - fixed;
    const auto fits = static_cast<int64_t>(budget / per_seq);
    if (fits < 1) {
      fail(c.architecture_name, "not enough device memory for one sequence of " + std::to_string(seqlen) + " tokens",
           "about " + gb(static_cast<uint64_t>(per_seq + fixed)) + " free", gb(dm.free) + " free of " + gb(dm.total) +
               " (lower --seqlen, or use --mode layerwise)");
    }
    // Split the batch evenly: micro-batches of equal size where possible.
    const int64_t passes = (s.batch + std::min(fits, s.batch) - 1) / std::min(fits, s.batch);
    m.micro_batch = (s.batch + passes - 1) / passes;
  }
  m.estimate_bytes = static_cast<uint64_t>(fixed + per_seq * static_cast<double>(m.micro_batch));
  return m;
}

at::Tensor end_to_end_loss_backward(const Model& fp, const TransformPlan& plan, const LearnSettings& s,
                                    const at::Tensor& ids, const StepMemory& memory) {
  const int64_t B = ids.size(0), T = ids.size(1);
  const bool kl = s.loss == LearnLoss::Kl;
  const double denom = kl ? static_cast<double>(B * T) : static_cast<double>(B * (T - 1));
  // Products with the transforms in the model's dtype: bf16 tensor cores for a bf16 model (the
  // folds of T into every weight were a third of a step in float32 on an H200); float32 otherwise.
  LeafPlan leaves(plan, fp.dtype() == at::kBFloat16 ? at::kBFloat16 : at::kFloat);
  at::Tensor total = at::zeros({}, at::TensorOptions(at::kFloat).device(fp.device()));
  for (int64_t b0 = 0; b0 < B; b0 += memory.micro_batch) {
    const at::Tensor mb = ids.narrow(0, b0, std::min(memory.micro_batch, B - b0));
    at::Tensor teacher;
    if (kl) {
      c10::NoGradGuard no_grad;
      teacher = fp.hidden_states(mb);
    }
    total += memory.checkpoint_layers
                 ? checkpointed_micro_batch(fp, leaves.dense(), s, mb, teacher, memory.loss_chunk, denom)
                 : plain_micro_batch(fp, leaves.dense(), s, mb, teacher, memory.loss_chunk, denom);
  }
  leaves.finish();
  return total;
}

}  // namespace latmix::learn_detail
