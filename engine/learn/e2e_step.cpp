// One end-to-end learning step with bounded memory (student.h): micro-batches with gradient
// accumulation, per-layer recomputation of the student (activation checkpointing, each layer's
// transforms folded when the layer runs), and the lm_head + KL/CE computed chunk by chunk of
// positions, so [batch, seq, vocab] logits never exist.
#include <c10/core/GradMode.h>

#include <algorithm>
#include <chrono>
#include <cstdlib>
#include <cstdio>
#include <sstream>

#if defined(LATMIX_WITH_CUDA)
#include <cuda_runtime_api.h>
#endif

#include "latmix/distributed.h"
#include "latmix/error.h"
#include "latmix/memory.h"
#include "latmix/quant.h"
#include "latmix/transform_fold.h"
#include "learn/student.h"

namespace latmix::learn_detail {

namespace {

constexpr uint64_t kChunkLogitBytes = 256ull << 20;  // float32 logits of one loss chunk
// The share of the device's memory a step may use for speed (kept layers, the teacher cache).
constexpr double kSpeedShare = 0.30;

// LATMIX_PROFILE_STEP=1: each micro-batch's phases timed (the device synchronized around each)
// and printed to stderr, for the benchmarks (docs/benchmarks.md).
class PhaseClock {
 public:
  explicit PhaseClock(at::Device device) : device_(device) {
    const char* e = std::getenv("LATMIX_PROFILE_STEP");
    on_ = e != nullptr && *e != '\0' && std::string(e) != "0";
    if (on_) last_ = now();
  }
  void mark(const char* phase) {
    if (!on_) return;
    const double t = now();
    line_ += std::string(line_.empty() ? "" : ", ") + phase + " " + std::to_string(static_cast<int>((t - last_) * 1e3)) + " ms";
    last_ = t;
  }
  ~PhaseClock() {
    if (on_ && !line_.empty()) std::fprintf(stderr, "step phases: %s\n", line_.c_str());
  }

 private:
  double now() const {
#if defined(LATMIX_WITH_CUDA)
    if (device_.is_cuda()) cudaDeviceSynchronize();
#endif
    return std::chrono::duration<double>(std::chrono::steady_clock::now().time_since_epoch()).count();
  }
  at::Device device_;
  bool on_ = false;
  double last_ = 0;
  std::string line_;
};

// The student one layer at a time: the same folds, fake quantization and hooks as
// build_student(), but a layer's folded weights exist only while that layer runs.
class StreamedStudent {
 public:
  StreamedStudent(const Model& fp, const TransformPlan& dense, const QuantSpec& spec, const WeightResiduals* residuals)
      : fp_(fp), dense_(dense), spec_(spec), residuals_(residuals), student_(layer_model(fp, 0, {})) {
    const ModelWeights& w = fp.weights();
    final_norm_ = w.final_norm;
    lm_head_ = w.lm_head;
    std::shared_ptr<DenseTransform> embed_head;
    if (dense.residual) {
      embed_head = as_dense(dense.residual);
      dense_.residual = embed_head;
      // fold_transforms fuses the final norm gain into lm_head when a residual transform is folded
      // (a layer share without lm_head has nothing to fuse).
      c10::NoGradGuard no_grad;
      if (lm_head_.defined() && !final_norm_.eq(1).all().item<bool>()) {
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
    fake_quantize_layer(lw, spec_, l, fp_.config().num_layers, residuals_);
    return lw;
  }

  const Model& fp_;
  TransformPlan dense_;
  const QuantSpec& spec_;
  const WeightResiduals* residuals_;
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
    if (term.requires_grad()) term.backward({}, /*retain_graph=*/head_grad);
    total += term.detach();
  }
  return total;
}

// One micro-batch through the checkpointed student: a no-grad pass keeps the input of each layer
// below the last `kept` ones, the kept layers run with autograd, then the loss, then the kept
// layers' graph backwards, then the layers below, each recomputed with autograd.
at::Tensor checkpointed_micro_batch(const Model& fp, const TransformPlan& dense, const LearnSettings& s,
                                    const at::Tensor& ids, const at::Tensor& teacher_hidden, int64_t chunk,
                                    double denom, int64_t kept, PhaseClock& clock, const WeightResiduals* residuals) {
  StreamedStudent student(fp, dense, s.quant, residuals);
  const int64_t L = fp.config().num_layers;
  const int64_t first_kept = L - std::clamp<int64_t>(kept, 0, L);
  std::vector<at::Tensor> inputs(static_cast<size_t>(first_kept));
  at::Tensor h;
  {
    c10::NoGradGuard no_grad;
    h = fp.embed(ids);
    for (int64_t l = 0; l < first_kept; ++l) {
      inputs[static_cast<size_t>(l)] = h;
      h = student.layer(l, h);
    }
  }
  // The kept layers' input: a leaf whose gradient goes on to the recomputed layers below.
  at::Tensor x = h.detach().requires_grad_(first_kept > 0);
  at::Tensor top = x;
  for (int64_t l = first_kept; l < L; ++l) top = student.layer(l, top);
  clock.mark("forward");
  at::Tensor hidden = student.final_hidden(top);
  at::Tensor leaf = hidden.detach().requires_grad_(true);
  at::Tensor loss = chunked_loss_backward(leaf, student.lm_head(), teacher_hidden, fp.weights().lm_head, ids, chunk, denom);
  clock.mark("loss");
  hidden.backward(leaf.grad());
  clock.mark("backward (kept layers)");
  at::Tensor grad = first_kept > 0 ? x.grad() : at::Tensor();
  x = at::Tensor();
  for (int64_t l = first_kept - 1; l >= 0; --l) {
    at::Tensor xl = inputs[static_cast<size_t>(l)].detach().requires_grad_(l > 0);
    inputs[static_cast<size_t>(l)] = at::Tensor();
    at::Tensor y = student.layer(l, xl);
    y.backward(grad);
    grad = l > 0 ? xl.grad() : at::Tensor();
  }
  clock.mark("recompute + backward");
  return loss;
}

// One micro-batch through the whole folded student (lm_head quantized, or checkpointing off).
at::Tensor plain_micro_batch(const Model& fp, const TransformPlan& dense, const LearnSettings& s, const at::Tensor& ids,
                             const at::Tensor& teacher_hidden, int64_t chunk, double denom,
                             const WeightResiduals* residuals) {
  Model student = build_student(fp, dense, s.quant, -1, residuals);
  at::Tensor hidden = student.hidden_states(ids);
  at::Tensor leaf = hidden.detach().requires_grad_(true);
  at::Tensor loss =
      chunked_loss_backward(leaf, student.weights().lm_head, teacher_hidden, fp.weights().lm_head, ids, chunk, denom);
  hidden.backward(leaf.grad());
  return loss;
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
  if (checkpoint_layers && kept_layers > 0) o << " (graph kept for the last " << kept_layers << " layers)";
  if (teacher_cache) o << ", teacher cache " << gb(cache_bytes);
  if (free_bytes > 0) o << "; estimated peak " << gb(estimate_bytes) << " of " << gb(free_bytes) << " free";
  return o.str();
}

StepMemory plan_step_memory(const Model& fp, const LearnSettings& s, int64_t samples, int64_t seqlen) {
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
  double estimate = fixed + per_seq * static_cast<double>(m.micro_batch);
  // Speed within kSpeedShare of the device's memory: first the teacher cache (a sequence's teacher
  // pass is as dear as a student forward pass), then the graph of as many top layers as fit (each
  // spares its recomputation).
  const double cap = std::min(0.85 * static_cast<double>(dm.free), kSpeedShare * static_cast<double>(dm.total));
  const double cache = static_cast<double>(samples) * T * D * elt;
  const bool repeats = s.steps * s.batch > samples;
  m.teacher_cache = s.loss == LearnLoss::Kl &&
                    (s.cache_teacher ? *s.cache_teacher : dm.free > 0 && repeats && estimate + cache <= cap);
  if (m.teacher_cache) {
    m.cache_bytes = static_cast<uint64_t>(cache);
    estimate += cache;
  }
  if (m.checkpoint_layers) {
    const double layer_graph = layer_acts * static_cast<double>(m.micro_batch);
    if (s.kept_layers) {
      m.kept_layers = std::clamp<int64_t>(*s.kept_layers, 0, c.num_layers);
    } else if (dm.free > 0 && cap > estimate) {
      m.kept_layers = std::min<int64_t>(c.num_layers, static_cast<int64_t>((cap - estimate) / layer_graph));
    }
    estimate += static_cast<double>(m.kept_layers) * layer_graph;
  }
  m.estimate_bytes = static_cast<uint64_t>(estimate);
  return m;
}

TeacherCache::TeacherCache(int64_t samples, int64_t seqlen, int64_t hidden, at::TensorOptions options)
    : store_(at::empty({samples, seqlen, hidden}, options)), have_(static_cast<size_t>(samples), false) {}

at::Tensor TeacherCache::get(const Model& fp, const std::vector<int64_t>& rows, const at::Tensor& ids,
                             int64_t micro_batch) {
  c10::NoGradGuard no_grad;
  std::vector<int64_t> missing_at, missing_rows;  // positions in the batch, calibration rows
  for (size_t i = 0; i < rows.size(); ++i) {
    const auto r = static_cast<size_t>(rows[i]);
    if (r >= have_.size()) throw Error("teacher cache: calibration row " + std::to_string(rows[i]) + " out of range");
    if (!have_[r] && std::find(missing_rows.begin(), missing_rows.end(), rows[i]) == missing_rows.end()) {
      missing_at.push_back(static_cast<int64_t>(i));
      missing_rows.push_back(rows[i]);
    }
  }
  const auto on = [this](const std::vector<int64_t>& v) {
    return at::tensor(v, at::TensorOptions(at::kLong)).to(store_.device());
  };
  if (!missing_at.empty()) {
    const at::Tensor todo = ids.index_select(0, on(missing_at).to(ids.device()));
    const int64_t n = todo.size(0);
    for (int64_t b0 = 0; b0 < n; b0 += std::max<int64_t>(1, micro_batch)) {
      const int64_t k = std::min(std::max<int64_t>(1, micro_batch), n - b0);
      const at::Tensor out = fp.hidden_states(todo.narrow(0, b0, k));
      const std::vector<int64_t> part(missing_rows.begin() + b0, missing_rows.begin() + b0 + k);
      store_.index_copy_(0, on(part), out.to(store_.scalar_type()));
    }
    for (int64_t r : missing_rows) have_[static_cast<size_t>(r)] = true;
  }
  return store_.index_select(0, on(rows));
}

at::Tensor end_to_end_loss_backward(const Model& fp, const TransformPlan& plan, const LearnSettings& s,
                                    const at::Tensor& ids, const StepMemory& memory, const at::Tensor& teacher_all,
                                    const WeightResiduals* residuals, int64_t batch_rows) {
  const int64_t B = ids.size(0), T = ids.size(1);
  const bool kl = s.loss == LearnLoss::Kl;
  const int64_t rows = batch_rows > 0 ? batch_rows : B;
  const double denom = kl ? static_cast<double>(rows * T) : static_cast<double>(rows * (T - 1));
  // Products with the transforms in the model's dtype: bf16 tensor cores for a bf16 model (the
  // folds of T into every weight were a third of a step in float32 on an H200); float32 otherwise.
  LeafPlan leaves(plan, fp.dtype() == at::kBFloat16 ? at::kBFloat16 : at::kFloat);
  at::Tensor total = at::zeros({}, at::TensorOptions(at::kFloat).device(fp.device()));
  for (int64_t b0 = 0; b0 < B; b0 += memory.micro_batch) {
    PhaseClock clock(fp.device());
    const int64_t n = std::min(memory.micro_batch, B - b0);
    const at::Tensor mb = ids.narrow(0, b0, n);
    at::Tensor teacher;
    if (kl && teacher_all.defined()) {
      teacher = teacher_all.narrow(0, b0, n);
    } else if (kl) {
      c10::NoGradGuard no_grad;
      teacher = fp.hidden_states(mb);
    }
    clock.mark("teacher");
    total += memory.checkpoint_layers
                 ? checkpointed_micro_batch(fp, leaves.dense(), s, mb, teacher, memory.loss_chunk, denom,
                                            memory.kept_layers, clock, residuals)
                 : plain_micro_batch(fp, leaves.dense(), s, mb, teacher, memory.loss_chunk, denom, residuals);
  }
  {
    PhaseClock clock(fp.device());
    leaves.finish();
    clock.mark("transform parameters");
  }
  return total;
}

StepMemory validation_memory(const Model& fp, const LearnSettings& s, int64_t seqlen) {
  LearnSettings e = s;
  e.loss = LearnLoss::Kl;
  e.cache_teacher = false;
  e.kept_layers = 0;
  StepMemory m;
  try {
    m = plan_step_memory(fp, e, 1, seqlen);
  } catch (const Error&) {
    m.micro_batch = 1;
    m.loss_chunk = std::max<int64_t>(1, static_cast<int64_t>(kChunkLogitBytes / (4 * fp.config().vocab_size)));
  }
  m.checkpoint_layers = true;
  return m;
}

at::Tensor end_to_end_loss(const Model& fp, const TransformPlan& plan, const LearnSettings& s, const at::Tensor& ids,
                           const StepMemory& memory, const at::Tensor& teacher_all, const WeightResiduals* residuals) {
  c10::NoGradGuard no_grad;
  const int64_t B = ids.size(0), T = ids.size(1);
  const bool kl = s.loss != LearnLoss::CrossEntropy;  // layer-wise learning is validated by KL
  const double denom = kl ? static_cast<double>(B * T) : static_cast<double>(B * (T - 1));
  const TransformPlan dense = densify(plan);
  at::Tensor total = at::zeros({}, at::TensorOptions(at::kFloat).device(fp.device()));
  for (int64_t b0 = 0; b0 < B; b0 += memory.micro_batch) {
    const int64_t n = std::min(memory.micro_batch, B - b0);
    const at::Tensor mb = ids.narrow(0, b0, n);
    at::Tensor teacher;
    if (kl) teacher = teacher_all.defined() ? teacher_all.narrow(0, b0, n) : fp.hidden_states(mb);
    if (s.quant.lm_head) {
      Model student = build_student(fp, dense, s.quant, -1, residuals);
      total += chunked_loss_backward(student.hidden_states(mb), student.weights().lm_head, teacher,
                                     fp.weights().lm_head, mb, memory.loss_chunk, denom);
    } else {
      StreamedStudent student(fp, dense, s.quant, residuals);
      at::Tensor h = fp.embed(mb);
      for (int64_t l = 0; l < fp.config().num_layers; ++l) h = student.layer(l, h);
      total += chunked_loss_backward(student.final_hidden(h), student.lm_head(), teacher, fp.weights().lm_head, mb,
                                     memory.loss_chunk, denom);
    }
  }
  return total;
}

at::Tensor pipelined_loss(const Model& fp, const TransformPlan& plan, const LearnSettings& s, const at::Tensor& ids,
                          const StepMemory& memory, int64_t first, int64_t last, dist::Group& group) {
  c10::NoGradGuard no_grad;
  const int64_t B = ids.size(0), T = ids.size(1), D = fp.config().hidden_size;
  const int rank = group.rank(), world = group.world();
  const double denom = static_cast<double>(B * T);
  const TransformPlan dense = densify(plan);
  StreamedStudent student(fp, dense, s.quant, nullptr);
  at::Tensor total = at::zeros({}, at::TensorOptions(at::kFloat).device(fp.device()));
  for (int64_t b0 = 0; b0 < B; b0 += memory.micro_batch) {
    const int64_t n = std::min(memory.micro_batch, B - b0);
    const at::Tensor mb = ids.narrow(0, b0, n);
    at::Tensor h, t;  // the student's residual stream and the FP model's
    if (rank == 0) {
      h = fp.embed(mb);
      t = fp.embed(mb);
    } else {
      // Through host memory (Gloo), as the learning's activations: the path CI runs.
      std::vector<at::Tensor> both = {at::empty({n, T, D}, at::TensorOptions(fp.dtype())),
                                      at::empty({n, T, D}, at::TensorOptions(fp.dtype()))};
      group.recv(both, rank - 1);
      h = both[0].to(fp.device());
      t = both[1].to(fp.device());
    }
    for (int64_t l = first; l < last; ++l) {
      h = student.layer(l, h);
      t = fp.forward_layer(l, t);
    }
    if (rank + 1 < world) {
      group.send({h.to(at::kCPU).contiguous(), t.to(at::kCPU).contiguous()}, rank + 1);
    } else {
      total += chunked_loss_backward(student.final_hidden(h), student.lm_head(), fp.final_hidden(t),
                                     fp.weights().lm_head, mb, memory.loss_chunk, denom);
    }
  }
  return total;
}

}  // namespace latmix::learn_detail
