// The learning loop: student construction, end-to-end and layer-wise training, optimizers,
// schedule, checkpoints (learn.h).
#include <c10/core/GradMode.h>
#include <c10/core/InferenceMode.h>
#include <ATen/ATen.h>

#include <nlohmann/json.hpp>

#include <unistd.h>

#include <algorithm>
#include <array>
#include <cerrno>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <limits>
#include <map>
#include <random>
#include <sstream>
#include <utility>

#include "latmix/compare.h"
#include "latmix/distributed.h"
#include "latmix/error.h"
#include "latmix/files.h"
#include "latmix/json.h"
#include "latmix/tensor_io.h"
#include "learn/learn_internal.h"
#include "learn/student.h"

namespace latmix {

namespace {

using Clock = std::chrono::steady_clock;
using learn_detail::build_student;
using learn_detail::densify;
using learn_detail::trainable;

std::vector<at::Tensor> trainable_parameters(const TransformPlan& plan) {
  std::vector<at::Tensor> out;
  for (const auto& p : plan.parameters()) {
    if (p.requires_grad()) out.push_back(p);
  }
  return out;
}

// ---- Optimizer ---------------------------------------------------------------------------------

class Optimizer {
 public:
  Optimizer(std::vector<at::Tensor> params, const LearnSettings& s) : params_(std::move(params)), s_(s) {
    for (const auto& p : params_) {
      m_.push_back(at::zeros_like(p).detach());
      v_.push_back(s.optimizer == OptimizerKind::AdamW ? at::zeros_like(p).detach() : at::Tensor());
    }
  }

  /// Clips, steps, and returns the global gradient norm before clipping.
  double step(double lr) { return step_at(lr, ++t_, nullptr); }

  /// step() of the parameters in `only` (all when null) as Adam's step `t` (1-based): layer-wise
  /// learning steps one layer's parameters, each layer's count starting at 1.
  double step_at(double lr, int64_t t, const std::vector<at::Tensor>* only) {
    c10::NoGradGuard no_grad;
    std::vector<bool> on(params_.size(), only == nullptr);
    if (only != nullptr) {
      for (const at::Tensor& q : *only) on[index(q)] = true;
    }
    double sq = 0;
    for (size_t i = 0; i < params_.size(); ++i) {
      if (on[i] && params_[i].grad().defined()) sq += params_[i].grad().to(at::kDouble).pow(2).sum().item<double>();
    }
    const double norm = std::sqrt(sq);
    const double clip = s_.grad_clip > 0 && norm > s_.grad_clip ? s_.grad_clip / (norm + 1e-12) : 1.0;
    double lr_p = lr;
    for (size_t i = 0; i < params_.size(); ++i) {
      at::Tensor p = params_[i];
      if (!on[i] || !p.grad().defined()) continue;
      at::Tensor g = p.grad() * clip;
      // A matrix parameter [d, d] moves every one of its d^2 entries by about lr per Adam step:
      // its learning rate is lr / sqrt(d), so a step changes the matrix's norm by about lr (as it
      // does a vector's), whatever the width. Vectors (scales s, biases v) take lr as it is.
      const double scale = p.dim() == 2 ? 1.0 / std::sqrt(static_cast<double>(p.size(1))) : 1.0;
      lr_p = lr * scale;
      if (s_.optimizer == OptimizerKind::AdamW) {
        constexpr double b1 = 0.9, b2 = 0.999, eps = 1e-8;
        m_[i].mul_(b1).add_(g, 1 - b1);
        v_[i].mul_(b2).addcmul_(g, g, 1 - b2);
        const double c1 = 1 - std::pow(b1, static_cast<double>(t));
        const double c2 = 1 - std::pow(b2, static_cast<double>(t));
        if (s_.weight_decay > 0) p.mul_(1 - lr_p * s_.weight_decay);
        p.addcdiv_(m_[i] / c1, (v_[i] / c2).sqrt_().add_(eps), -lr_p);
      } else {
        if (s_.momentum > 0) {
          m_[i].mul_(s_.momentum).add_(g);
          g = m_[i];
        }
        p.add_(g, -lr);
      }
      p.grad().zero_();
    }
    return norm;
  }

  NamedTensors state() const {
    NamedTensors out;
    for (size_t i = 0; i < params_.size(); ++i) {
      out.emplace_back("m." + std::to_string(i), m_[i].to(at::kCPU).contiguous());
      if (v_[i].defined()) out.emplace_back("v." + std::to_string(i), v_[i].to(at::kCPU).contiguous());
    }
    return out;
  }

  /// The moments of `params` (each one of this optimizer's), in place: what a layer-split run
  /// gathers with the parameters for a checkpoint.
  std::vector<at::Tensor> moments(const std::vector<at::Tensor>& params) const {
    std::vector<at::Tensor> out;
    for (const at::Tensor& p : params) {
      const size_t i = index(p);
      out.push_back(m_[i]);
      if (v_[i].defined()) out.push_back(v_[i]);
    }
    return out;
  }

  void load(const SafetensorsFile& file, int64_t t) {
    t_ = t;
    for (size_t i = 0; i < params_.size(); ++i) {
      m_[i].copy_(file.tensor("m." + std::to_string(i)));
      if (v_[i].defined()) v_[i].copy_(file.tensor("v." + std::to_string(i)));
    }
  }

 private:
  size_t index(const at::Tensor& p) const {
    for (size_t i = 0; i < params_.size(); ++i) {
      if (params_[i].is_same(p)) return i;
    }
    throw Error("learning: a parameter the optimizer does not hold");
  }
  std::vector<at::Tensor> params_, m_, v_;
  const LearnSettings& s_;
  int64_t t_ = 0;
};

double learning_rate(const LearnSettings& s, int64_t step, int64_t total) {
  const auto warm = static_cast<int64_t>(std::floor(s.warmup * static_cast<double>(total)));
  if (step < warm) return s.lr * static_cast<double>(step + 1) / static_cast<double>(warm);
  if (!s.cosine) return s.lr;
  const double progress = static_cast<double>(step - warm) / static_cast<double>(std::max<int64_t>(1, total - warm));
  return s.lr * 0.5 * (1 + std::cos(M_PI * progress));
}

// ---- Losses ------------------------------------------------------------------------------------

// lambda * sum over the affine transforms of (log|det A|)^2.
at::Tensor volume_term(const TransformPlan& plan, double lambda, at::Device device) {
  at::Tensor reg = at::zeros({}, at::TensorOptions(at::kFloat).device(device));
  if (lambda <= 0) return reg;
  for (const auto& t : plan.all()) {
    if (t->kind() == "affine_qr" || t->kind() == "affine_lu") reg = reg + t->log_abs_det().pow(2);
  }
  return reg * lambda;
}

// ---- Batches -----------------------------------------------------------------------------------

// A seeded order over the calibration sequences, reshuffled every epoch (mt19937_64 and our own
// index reduction, as calib_data.h, so the order is the same everywhere).
class BatchOrder {
 public:
  BatchOrder(int64_t n, uint64_t seed) : n_(n), rng_(seed ^ 0x6c61746d6978ULL) { shuffle(); }
  std::vector<int64_t> next(int64_t count) {
    std::vector<int64_t> out;
    while (static_cast<int64_t>(out.size()) < count) {
      if (pos_ == n_) shuffle();
      out.push_back(order_[static_cast<size_t>(pos_++)]);
    }
    return out;
  }

 private:
  void shuffle() {
    order_.resize(static_cast<size_t>(n_));
    for (int64_t i = 0; i < n_; ++i) order_[static_cast<size_t>(i)] = i;
    for (int64_t i = n_ - 1; i > 0; --i) {
      const auto j = static_cast<int64_t>(rng_() % static_cast<uint64_t>(i + 1));
      std::swap(order_[static_cast<size_t>(i)], order_[static_cast<size_t>(j)]);
    }
    pos_ = 0;
  }
  int64_t n_;
  std::mt19937_64 rng_;
  std::vector<int64_t> order_;
  int64_t pos_ = 0;
};

at::Tensor gather_ids(const CalibrationSet& calib, const std::vector<int64_t>& rows, at::Device device) {
  const int64_t L = calib.seqlen();
  at::Tensor ids = at::empty({static_cast<int64_t>(rows.size()), L}, at::kLong);
  auto acc = ids.accessor<int64_t, 2>();
  for (size_t r = 0; r < rows.size(); ++r) {
    const auto& seq = calib.sequences[static_cast<size_t>(rows[r])];
    for (int64_t t = 0; t < L; ++t) acc[static_cast<int64_t>(r)][t] = seq[static_cast<size_t>(t)];
  }
  return ids.to(device);
}

// ---- Data-parallel learning (LearnControl::group) -----------------------------------------------

// This process's share of a step's rows: a contiguous part, in rank order (all of them alone).
std::vector<int64_t> share_of(const std::vector<int64_t>& rows, const dist::Group* group) {
  if (group == nullptr || group->world() == 1) return rows;
  const auto n = static_cast<int64_t>(rows.size());
  const int64_t r = group->rank(), w = group->world();
  return {rows.begin() + n * r / w, rows.begin() + n * (r + 1) / w};
}

bool first_rank(const dist::Group* group) { return group == nullptr || group->rank() == 0; }

// Every rank's gradients of the plan's parameters and its loss terms, summed over the ranks in
// place: one collective per dtype and device (Group::sum takes one flat buffer of each). A parameter
// this rank gave no gradient adds zeros.
void sum_over_ranks(dist::Group& group, const std::vector<at::Tensor>& params, std::vector<at::Tensor>& scalars) {
  std::map<std::pair<at::ScalarType, std::string>, std::vector<at::Tensor>> buffers;
  auto add = [&buffers](const at::Tensor& t) { buffers[{t.scalar_type(), t.device().str()}].push_back(t); };
  for (at::Tensor p : params) {
    if (!p.grad().defined()) p.mutable_grad() = at::zeros_like(p);
    add(p.grad());
  }
  for (at::Tensor& t : scalars) {
    t = t.detach().to(at::kFloat).reshape({1}).clone();
    add(t);
  }
  for (auto& [key, tensors] : buffers) group.sum(tensors);
}

// ---- Checkpoints -------------------------------------------------------------------------------

// A checkpoint is one folder, PREFIX.checkpoint/ (transforms.safetensors/.json, optim.safetensors,
// state.json), written beside it under a temp name and swapped in with one rename (an existing
// checkpoint by renameat2 RENAME_EXCHANGE), so a kill at any moment leaves either the old
// checkpoint or the new one, never files of two different steps (issue 20, item 5).
struct Checkpoint {
  std::string prefix;
  std::string fingerprint;
  std::string calibration;  // hash of the calibration token ids: another text is refused on resume
  bool writer = true;       // data-parallel: rank 0 alone writes it (every rank reads it to resume)
  // 3: the fingerprint digests the embedding, the head and each layer apart (a layer-split run's
  // processes each hold a share), and layer-wise Adam counts each layer's steps from 1.
  static constexpr int kVersion = 3;
  bool enabled() const { return !prefix.empty(); }
  std::string folder() const { return prefix + ".checkpoint"; }
  std::string state_path() const { return folder() + "/state.json"; }
  std::string transforms_prefix() const { return folder() + "/transforms"; }
  std::string optim_path() const { return folder() + "/optim.safetensors"; }

  /// `layer_steps`: layer-wise learning, the steps done of each layer (a layer-split run's layers
  /// are learned side by side); `step` is then their sum.
  void save(const TransformPlan& plan, const Optimizer& optim, int64_t step, const LearnSettings& s,
            const std::vector<int64_t>& layer_steps = {}) const {
    if (!writer) return;
    AtomicFolder temp(folder(), "checkpoint");
    save_transforms(temp.path() + "/transforms", plan);
    write_safetensors(temp.path() + "/optim.safetensors", optim.state(), {{"format", "latmix-optimizer"}});
    nlohmann::json j = {{"format", "latmix-learn-checkpoint"}, {"version", kVersion}, {"fingerprint", fingerprint},
                        {"calibration", calibration},          {"step", step},        {"settings", s.to_json()}};
    if (!layer_steps.empty()) j["layer_steps"] = layer_steps;
    write_file_atomic(temp.path() + "/state.json", j.dump(2) + "\n");
    temp.commit([](const std::string&) {});  // the previous checkpoint of this run is replaced in one step
  }
};

void check_settings(const LearnSettings& s, const CalibrationSet* calib, const MethodPreset& preset) {
  if (!preset.learned) return;
  if (calib == nullptr || calib->size() == 0) {
    throw UsageError("method '" + s.method + "' learns its transforms: it needs calibration text");
  }
  if (s.steps < 1) throw UsageError("--steps must be at least 1 for method '" + s.method + "'");
  if (s.batch < 1) throw UsageError("--batch must be at least 1");
  // A batch drawn from fewer sequences repeats them: no new information, memory for nothing
  // (a --batch of 10^6 on 4 samples asked for 7.2 GB; issue 20, item 18).
  if (s.batch > calib->size()) {
    throw UsageError("--batch " + std::to_string(s.batch) + " is larger than the " + std::to_string(calib->size()) +
                     " calibration sequences (--samples): lower --batch to at most " + std::to_string(calib->size()) +
                     " or raise --samples");
  }
  if (s.lr <= 0 || !std::isfinite(s.lr)) throw UsageError("--lr must be a positive number");
  if (s.warmup < 0 || s.warmup >= 1) throw UsageError("--warmup must be in [0, 1)");
  if (s.validation < -1) throw UsageError("--validation: expected 0 or more");
  if (s.eval_every < 0) throw UsageError("--eval-every: expected 1 or more");
  if (s.patience < 0) throw UsageError("--patience: expected 0 or more");
  if (s.gptq_refresh < 0) throw UsageError("--gptq-refresh: expected 0 or more");
  if (s.gptq_refresh > 0 && s.mode == LearnMode::LayerWise && s.quant.method == WeightMethod::Gptq) {
    throw UsageError("--gptq-refresh needs end-to-end learning (--mode e2e)");
  }
  if (s.mode == LearnMode::LayerWise && s.loss != LearnLoss::LayerMse) {
    throw UsageError("layer-wise learning uses the layer MSE loss (--loss mse)");
  }
  if (s.mode == LearnMode::EndToEnd && s.loss == LearnLoss::LayerMse) {
    throw UsageError("the layer MSE loss needs layer-wise learning (--mode layerwise)");
  }
  if (!s.quant.weights && !s.quant.activations) {
    throw UsageError("learning needs something to quantize: the spec has neither weights nor activations");
  }
}

std::vector<std::pair<std::string, double>> conditions(const TransformPlan& plan) {
  c10::NoGradGuard no_grad;
  std::vector<std::pair<std::string, double>> out;
  if (trainable(plan.residual)) out.emplace_back("residual", plan.residual->report().condition_number);
  auto list = [&](const std::vector<TransformPtr>& l, const char* what) {
    double worst = 0;
    bool any = false;
    for (const auto& t : l) {
      if (!trainable(t)) continue;
      worst = std::max(worst, t->report().condition_number);
      any = true;
    }
    if (any) out.emplace_back(std::string(what) + " (max over layers)", worst);
  };
  list(plan.value, "value");
  list(plan.attn_online, "attn_online");
  list(plan.mlp_online, "mlp_online");
  list(plan.down_online, "down_online");
  return out;
}

// After an optimizer step: each Cayley rotation of the plan moves its base to the new rotation.
void recenter_rotations(const TransformPlan& plan) {
  for (const auto& t : plan.all()) {
    if (auto r = std::dynamic_pointer_cast<RotationTransform>(t); r && r->map() == RotationTransform::Map::Cayley) {
      r->recenter();
    }
  }
}

// Data-parallel: at a step's start every rank agrees to go on, to stop (a cancel on any rank) or
// to hold (a pause on any rank; the studio and `latmix serve` pause the process they run in).
// While held, the ranks meet about once a second (a quarter of the group's timeout when that is
// shorter), so a pause longer than the timeout does not end the run: the others wait in a
// collective no longer than that. `on_hold` runs in every rank as a hold begins (a layer-split run
// gathers its plan there, so that snapshots taken while held show every layer).
bool agreed_stop(dist::Group& group, const LearnControl& control, const TransformPlan& plan,
                 const std::function<void()>& on_hold = {}) {
  bool held = false;
  for (;;) {
    const bool cancel = control.job.cancel.cancelled();
    const bool paused = !cancel && control.pause.paused();
    std::vector<at::Tensor> flags = {at::tensor({cancel ? 1.0f : 0.0f, paused ? 1.0f : 0.0f})};
    group.sum(flags);
    const at::Tensor f = flags.front();
    if (f[0].item<float>() > 0) return true;
    if (f[1].item<float>() == 0) return false;
    if (!held && on_hold) on_hold();
    held = true;
    // Work asked for meanwhile (StepEndWork::attach: snapshot_wanted) runs within 50 ms.
    const auto until = Clock::now() + std::min<std::chrono::milliseconds>(std::chrono::seconds(1), group.timeout() / 4);
    for (auto now = Clock::now(); now < until; now = Clock::now()) {
      if (control.on_snapshot && control.snapshot_wanted && control.snapshot_wanted()) {
        control.on_snapshot(clone_plan(plan));
      }
      if (!control.pause.paused() || control.job.cancel.cancelled()) break;
      control.pause.wait_for(
          control.job.cancel,
          std::min(std::chrono::duration_cast<std::chrono::milliseconds>(until - now), std::chrono::milliseconds(50)));
    }
  }
}

// Runs the steps [start, total) of end-to-end learning. `loss_of(step)` builds the loss of a batch
// and returns it with its named terms.
struct StepLoss {
  at::Tensor loss;
  std::vector<std::pair<std::string, at::Tensor>> terms;
  bool backward_done = false;  // the gradients are already in the parameters
};

class Loop {
 public:
  Loop(const LearnSettings& s, const LearnControl& control, const TransformPlan& plan, Optimizer& optim,
       const Checkpoint& checkpoint, MethodResult& result)
      : s_(s), control_(control), plan_(plan), optim_(optim), checkpoint_(checkpoint), result_(result) {}

  void run(int64_t first, int64_t last, int64_t total, const std::function<StepLoss(int64_t step)>& loss_of) {
    dist::Group* group = control_.group;
    for (int64_t step = first; step < last; ++step) {
      bool cancelled = false;
      if (group == nullptr) {
        control_.pause.wait(control_.job.cancel);
        cancelled = control_.job.cancel.cancelled();
      } else {
        cancelled = agreed_stop(*group, control_, plan_);
      }
      if (cancelled) {
        if (checkpoint_.enabled()) checkpoint_.save(plan_, optim_, step, s_);
        throw Cancelled();
      }
      const double lr = learning_rate(s_, step, total);
      StepLoss sl = loss_of(step);
      if (!sl.backward_done && sl.loss.requires_grad()) sl.loss.backward();
      if (group != nullptr) {
        // The whole batch's gradients and loss: every rank's share, added up.
        std::vector<at::Tensor> scalars = {sl.loss};
        for (const auto& term : sl.terms) scalars.push_back(term.second);
        sum_over_ranks(*group, plan_.parameters(), scalars);
        sl.loss = scalars[0].reshape({});
        for (size_t i = 0; i < sl.terms.size(); ++i) sl.terms[i].second = scalars[i + 1].reshape({});
      }
      const double grad_norm = optim_.step(lr);
      recenter_rotations(plan_);
      LearnEvent e;
      e.step = step + 1;
      e.total = total;
      e.loss = sl.loss.item<double>();
      for (const auto& [name, value] : sl.terms) e.terms.emplace_back(name, value.item<double>());
      e.lr = lr;
      e.grad_norm = grad_norm;
      e.seconds = std::chrono::duration<double>(Clock::now() - start_).count();
      const int64_t done_here = step + 1 - resumed_at_;
      e.eta = done_here > 0 ? e.seconds / static_cast<double>(done_here) * static_cast<double>(total - step - 1) : 0;
      if (!std::isfinite(e.loss)) {
        throw Error("learning diverged at step " + std::to_string(e.step) + " (loss " + std::to_string(e.loss) +
                    "): lower --lr or raise --lambda");
      }
      const bool stop = after_step_ && after_step_(e);
      result_.curve.push_back(e);
      if (control_.on_step) control_.on_step(e);
      control_.job.report("learn", e.step, total);
      if (checkpoint_.enabled() && s_.checkpoint_every > 0 && e.step % s_.checkpoint_every == 0) {
        checkpoint_.save(plan_, optim_, e.step, s_);
      }
      if (control_.on_snapshot && control_.snapshot_every > 0 && e.step % control_.snapshot_every == 0 &&
          (!control_.snapshot_wanted || control_.snapshot_wanted())) {
        control_.on_snapshot(clone_plan(plan_));
      }
      if (stop) return;
    }
  }

  void set_resumed_at(int64_t step) { resumed_at_ = step; }

  /// Called with each step's event before it is reported (it may add the validation loss);
  /// returning true ends run() after that step.
  void set_after_step(std::function<bool(LearnEvent&)> f) { after_step_ = std::move(f); }

 private:
  const LearnSettings& s_;
  const LearnControl& control_;
  const TransformPlan& plan_;
  Optimizer& optim_;
  const Checkpoint& checkpoint_;
  MethodResult& result_;
  Clock::time_point start_ = Clock::now();
  int64_t resumed_at_ = 0;
  std::function<bool(LearnEvent&)> after_step_;
};

// The plan restricted to one layer's per-layer transforms (no residual).
TransformPlan layer_plan(const TransformPlan& plan, size_t layer, size_t layers) {
  TransformPlan out;
  auto pick = [&](const std::vector<TransformPtr>& in, std::vector<TransformPtr>& o) {
    if (in.empty()) return;
    o.assign(layers, nullptr);
    o[layer] = in[layer];
  };
  pick(plan.value, out.value);
  pick(plan.down_online, out.down_online);
  pick(plan.attn_online, out.attn_online);
  pick(plan.mlp_online, out.mlp_online);
  return out;
}

void freeze(const TransformPtr& t) {
  if (!t) return;
  for (const auto& p : t->parameters()) p.requires_grad_(false);
}

}  // namespace

TransformPlan clone_plan(const TransformPlan& plan) {
  auto clone = [](const TransformPtr& t) -> TransformPtr {
    if (!t) return nullptr;
    NamedTensors state;
    for (const auto& [name, tensor] : t->state()) state.emplace_back(name, tensor.detach().clone());
    return transform_from_state(t->describe(), state, "plan snapshot");
  };
  TransformPlan out;
  out.residual = clone(plan.residual);
  for (const auto& [in, o] : {std::pair{&plan.value, &out.value}, std::pair{&plan.down_online, &out.down_online},
                               std::pair{&plan.attn_online, &out.attn_online},
                               std::pair{&plan.mlp_online, &out.mlp_online}}) {
    for (const auto& t : *in) o->push_back(clone(t));
  }
  return out;
}

// The held-out part of the calibration set and the best plan seen on it (LearnSettings::validation).
struct Validation {
  std::vector<int64_t> rows, train;  // calibration rows held out / learned from
  double best = std::numeric_limits<double>::infinity();
  double initial = 0;
  int64_t best_step = -1, start_step = 0, since_best = 0, patience = 0;
  TransformPlan best_plan, start_plan;

  Validation(const CalibrationSet& calib, const LearnSettings& s) : patience(s.patience) {
    const int64_t n = calib.size();
    const int64_t k = s.validation >= 0 ? s.validation : (n >= 8 ? n / 8 : 0);
    if (k >= n) {
      throw UsageError("--validation " + std::to_string(k) + ": the calibration set has " + std::to_string(n) +
                       " sequences; at least one must be left to learn from");
    }
    std::vector<bool> held(static_cast<size_t>(n), false);
    for (int64_t j = 0; j < k; ++j) held[static_cast<size_t>((2 * j + 1) * n / (2 * k))] = true;
    for (int64_t i = 0; i < n; ++i) (held[static_cast<size_t>(i)] ? rows : train).push_back(i);
  }
  bool enabled() const { return !rows.empty(); }

  // `rows` in consecutive parts of a batch each: what one validation pass runs at a time.
  static std::vector<std::vector<int64_t>> parts(const std::vector<int64_t>& rows, const LearnSettings& s) {
    const auto per = static_cast<size_t>(std::max<int64_t>(1, s.batch));
    std::vector<std::vector<int64_t>> out;
    for (size_t i = 0; i < rows.size(); i += per) {
      out.emplace_back(rows.begin() + static_cast<std::ptrdiff_t>(i),
                       rows.begin() + static_cast<std::ptrdiff_t>(std::min(rows.size(), i + per)));
    }
    return out;
  }
  // The student's loss on the held-out rows (KL to the FP model, or CE), a batch at a time. Data-parallel,
  // each process measures its share of the rows and the sums are added up (every process gets the same).
  double measure(const Model& fp, const TransformPlan& plan, const LearnSettings& s,
                 const learn_detail::StepMemory& memory, at::Device device, learn_detail::TeacherCache* cache,
                 const learn_detail::WeightResiduals* residuals = nullptr) const {
    double sum = 0;
    for (const std::vector<int64_t>& part : parts(share_of(rows, group_), s)) {
      const at::Tensor ids = gather_ids(*calib_, part, device);
      const at::Tensor teacher =
          cache != nullptr && cache->enabled() ? cache->get(fp, part, ids, memory.micro_batch) : at::Tensor();
      sum += learn_detail::end_to_end_loss(fp, plan, s, ids, memory, teacher, residuals).item<double>() *
             static_cast<double>(part.size());
    }
    if (group_ != nullptr) {
      std::vector<at::Tensor> total = {at::full({1}, sum, at::kDouble)};
      group_->sum(total);
      sum = total.front().item<double>();
    }
    return sum / static_cast<double>(rows.size());
  }
  // measure() of a layer-split run: every held-out row goes through the processes' layers as a
  // pipeline (learn_detail::pipelined_loss); the last rank's sum is every rank's.
  double measure_split(const Model& fp, const TransformPlan& plan, const LearnSettings& s,
                       const learn_detail::StepMemory& memory, int64_t first, int64_t last) const {
    double sum = 0;
    for (const std::vector<int64_t>& part : parts(rows, s)) {
      const at::Tensor ids = gather_ids(*calib_, part, fp.device());
      sum += learn_detail::pipelined_loss(fp, plan, s, ids, memory, first, last, *group_).item<double>() *
             static_cast<double>(part.size());
    }
    std::vector<at::Tensor> total = {at::full({1}, sum, at::kDouble)};
    group_->broadcast(total, group_->world() - 1);
    return total.front().item<double>() / static_cast<double>(rows.size());
  }
  void start(int64_t step, double v, const TransformPlan& plan, MethodResult& r) {
    start_step = step;
    initial = v;
    best = v;
    best_step = step;
    best_plan = clone_plan(plan);
    start_plan = clone_plan(plan);
    r.validation_curve.emplace_back(step, v);
  }
  // Records step's value; true when learning should stop (patience spent).
  bool update(int64_t step, double v, const TransformPlan& plan, MethodResult& r) {
    r.validation_curve.emplace_back(step, v);
    if (v < best) {
      best = v;
      best_step = step;
      best_plan = clone_plan(plan);
      since_best = 0;
      return false;
    }
    ++since_best;
    r.stopped_early = patience > 0 && since_best >= patience;
    return r.stopped_early;
  }
  void finish(TransformPlan& plan, MethodResult& r, int64_t total) {
    r.best_step = best_step;
    std::ostringstream o;
    o.precision(5);
    const int64_t last = r.validation_curve.empty() ? total : r.validation_curve.back().first;
    if (best_step == start_step) {
      o << "validation (" << rows.size() << " held-out sequences): learning added nothing; the plan of step "
        << start_step << " stays (loss " << best << "; step " << last << ": " << r.validation_curve.back().second
        << ")";
    } else {
      o << "validation (" << rows.size() << " held-out sequences): best at step " << best_step << " of " << total
        << ", loss " << best << " (start " << initial << ", " << std::showpos << 100.0 * (best - initial) / initial
        << std::noshowpos << " %)";
    }
    if (r.stopped_early) o << "; stopped at step " << last << " after " << patience << " evaluations without a new best";
    r.validation_note = o.str();
    if (best_step != last) plan = best_plan;
  }
  // The held-out loss of the deployed model: the plan folded and the weights quantized as an
  // export would (GPTQ on the whole calibration set when the spec says so). KL to the FP model;
  // CE when training with CE.
  double deployed(const Model& fp, const TransformPlan& plan, const LearnSettings& s, const JobControl& job) const {
    c10::NoGradGuard no_grad;
    // A copy: folding moves the plan to the model's device (Transform::to), which gives its
    // transforms new parameter tensors, and the optimizer would go on stepping the old ones.
    QuantizedModel q =
        apply_plan(fp, clone_plan(plan), s.quant, s.quant.method == WeightMethod::Gptq ? calib_ : nullptr, job, group_);
    return deployed_loss(fp, q.model, s);
  }
  // The held-out loss of a deployed model `q`.
  double deployed_loss(const Model& fp, const Model& q, const LearnSettings& s) const {
    c10::NoGradGuard no_grad;
    const at::Tensor ids = gather_ids(*calib_, rows, fp.device());
    return s.loss == LearnLoss::CrossEntropy ? mean_cross_entropy(q, ids, 1) : mean_kl_divergence(fp, q, ids, 1);
  }
  // DeployedCheck::Ends: the plan validation chose stays only if its deployed model beats the
  // start's (the RTN student cannot see what GPTQ will do to the weights).
  void check_deployed(const Model& fp, TransformPlan& plan, const LearnSettings& s, MethodResult& r,
                      const JobControl& job) {
    std::ostringstream o;
    o.precision(5);
    const double a = deployed(fp, start_plan, s, job);
    r.deployed_start = a;
    if (best_step == start_step) {
      r.deployed_result = a;
      o << "; deployed model (GPTQ weights): loss " << a;
    } else {
      const double b = deployed(fp, plan, s, job);
      r.deployed_result = std::min(a, b);
      if (b < a) {
        o << "; deployed model (GPTQ weights): start " << a << ", learned " << b << " (" << std::showpos
          << 100.0 * (b - a) / a << std::noshowpos << " %)";
      } else {
        o << "; deployed model (GPTQ weights): start " << a << ", learned " << b
          << ": learning added nothing once GPTQ quantized the weights; the start's plan is the result";
        plan = clone_plan(start_plan);
        r.best_step = start_step;
      }
    }
    r.validation_note += o.str();
  }
  const CalibrationSet* calib_ = nullptr;
  dist::Group* group_ = nullptr;  // data-parallel: measure() splits the held-out rows, deployed() GPTQ
};

namespace {

// Layer-wise learning (LearnMode::LayerWise): each decoder layer's transforms learn, for s.steps
// steps, to make the student layer's output match the FP layer's on the FP model's inputs of that
// layer. Layers are independent: a layer's steps draw the batches at its place in the run's batch
// order (layer l, step i: the (l * steps + i)-th), take the learning rate of step i of the
// schedule, and count Adam's steps from 1; only the layer's parameters step. `done` holds the
// steps done of each layer (a checkpoint's progress) and is kept up to date.
//
// With a group: LearnControl::split_layers gives each process its share of the layers (whole
// batches; the FP activations are sent on at the shares' boundaries; every slot of steps, each
// process runs the next step of its own layers and the steps' events are gathered); else each
// process takes its share of every batch's rows and the gradients are summed.
class LayerwiseRun {
 public:
  LayerwiseRun(const Model& fp, const CalibrationSet& calib, const LearnSettings& s, const LearnControl& control,
               TransformPlan& plan, Optimizer& optim, const Checkpoint& checkpoint, Validation& val,
               MethodResult& result)
      : fp_(fp),
        calib_(calib),
        s_(s),
        control_(control),
        plan_(plan),
        optim_(optim),
        checkpoint_(checkpoint),
        val_(val),
        result_(result),
        layers_(fp.config().num_layers),
        group_(control.group),
        split_(group_ != nullptr && control.split_layers),
        rank_(group_ != nullptr ? group_->rank() : 0),
        world_(group_ != nullptr ? group_->world() : 1),
        share_(split_ ? layer_share_range(layers_, rank_, world_) : std::pair<int64_t, int64_t>{0, layers_}),
        device_(fp.device()),
        store_(device_.is_cuda() ? at::Device(at::kCPU) : device_),
        order_(static_cast<int64_t>(val.train.size()), s.seed) {
    residual_only_.residual = plan.residual;
  }

  void run(std::vector<int64_t>& done, bool deployed_every) {
    done_ = &done;
    const int64_t S = s_.steps, total = layers_ * S;
    int64_t progress = 0;
    for (int64_t d : done) progress += d;
    first_inputs();
    learn_detail::StepMemory vmem = learn_detail::validation_memory(fp_, s_, calib_.seqlen());
    if (split_) {  // the pipeline's micro-batches match
      const std::vector<int64_t> micro = every_rank(vmem.micro_batch);
      vmem.micro_batch = *std::min_element(micro.begin(), micro.end());
    }
    const auto measure = [&] {
      if (deployed_every) return val_.deployed(fp_, plan_, s_, control_.job);
      return split_ ? val_.measure_split(fp_, plan_, s_, vmem, share_.first, share_.second)
                    : val_.measure(fp_, plan_, s_, vmem, device_, nullptr);
    };
    if (val_.enabled()) val_.start(progress, measure(), plan_, result_);

    std::vector<std::pair<int64_t, int64_t>> work;  // (layer, step in it), in order
    for (int64_t l = share_.first; l < share_.second; ++l) {
      for (int64_t i = done[static_cast<size_t>(l)]; i < S; ++i) work.emplace_back(l, i);
    }
    // Split: every process's count of steps (a slot k holds a step of each process with more than k).
    const std::vector<int64_t> sizes = split_ ? every_rank(static_cast<int64_t>(work.size()))
                                              : std::vector<int64_t>{static_cast<int64_t>(work.size())};
    const int64_t slots = *std::max_element(sizes.begin(), sizes.end());
    const auto start = Clock::now();
    for (int64_t k = 0; k < slots; ++k) {
      bool cancelled = false;
      if (group_ != nullptr) {
        cancelled = agreed_stop(*group_, control_, plan_, [this] {
          if (split_) gather(false);
        });
      } else {
        control_.pause.wait(control_.job.cancel);
        cancelled = control_.job.cancel.cancelled();
      }
      if (cancelled) {
        save(progress);
        throw Cancelled();
      }
      // This slot's steps: (layer, step, loss, lr, gradient norm) of each process that had one.
      std::vector<std::array<double, 5>> steps;
      bool snapshot = false;
      const int64_t before = progress;
      std::array<double, 5> mine{};
      const bool active = k < static_cast<int64_t>(work.size());
      if (active) {
        const auto [l, i] = work[static_cast<size_t>(k)];
        const double lr = learning_rate(s_, i, S);
        const auto [loss, norm] = step(l, i, lr);
        mine = {static_cast<double>(l), static_cast<double>(i), loss, lr, norm};
      }
      const bool wants_snapshot = control_.on_snapshot && control_.snapshot_every > 0;
      if (split_) {
        // Every process's step of this slot, and whether a process wants a snapshot after it.
        at::Tensor ev = at::zeros({world_, 7}, at::kDouble);
        auto a = ev.accessor<double, 2>();
        if (active) {
          a[rank_][0] = 1;
          for (size_t j = 0; j < mine.size(); ++j) a[rank_][static_cast<int64_t>(j) + 1] = mine[j];
        }
        const int64_t after = before + std::count_if(sizes.begin(), sizes.end(), [k](int64_t n) { return n > k; });
        a[rank_][6] = wants_snapshot && crossed(before, after, control_.snapshot_every) &&
                              (!control_.snapshot_wanted || control_.snapshot_wanted())
                          ? 1
                          : 0;
        std::vector<at::Tensor> all = {ev};
        group_->sum(all);
        auto b = all.front().accessor<double, 2>();
        for (int r = 0; r < world_; ++r) {
          if (b[r][0] > 0) steps.push_back({b[r][1], b[r][2], b[r][3], b[r][4], b[r][5]});
          snapshot = snapshot || b[r][6] > 0;
        }
      } else if (active) {
        steps.push_back(mine);
      }
      for (const auto& st : steps) {
        const auto l = static_cast<int64_t>(st[0]), i = static_cast<int64_t>(st[1]);
        LearnEvent e;
        e.step = l * S + i + 1;
        e.total = total;
        e.layer = l;
        e.loss = st[2];
        e.terms.emplace_back("mse", st[2]);
        e.lr = st[3];
        e.grad_norm = st[4];
        e.seconds = std::chrono::duration<double>(Clock::now() - start).count();
        e.eta = e.seconds / static_cast<double>(k + 1) * static_cast<double>(slots - k - 1);
        if (!std::isfinite(e.loss)) {
          throw Error("learning diverged at step " + std::to_string(e.step) + " (layer " + std::to_string(l) +
                      ", loss " + std::to_string(e.loss) + "): lower --lr");
        }
        done[static_cast<size_t>(l)] = i + 1;
        ++progress;
        result_.curve.push_back(e);
        if (control_.on_step) control_.on_step(e);
      }
      control_.job.report("learn", progress, total);
      if (s_.checkpoint_every > 0 && crossed(before, progress, s_.checkpoint_every)) save(progress);
      if (!split_) {
        snapshot = wants_snapshot && crossed(before, progress, control_.snapshot_every) &&
                   (!control_.snapshot_wanted || control_.snapshot_wanted());
      } else if (snapshot) {
        gather(false);
      }
      if (snapshot && control_.on_snapshot) control_.on_snapshot(clone_plan(plan_));
    }
    if (split_) gather(false);
    // The events in the order of a one-process run (a split run's slots interleave the layers).
    std::stable_sort(result_.curve.begin(), result_.curve.end(),
                     [](const LearnEvent& a, const LearnEvent& b) { return a.step < b.step; });
    if (val_.enabled()) {
      const double v = measure();
      if (!result_.curve.empty()) result_.curve.back().validation = v;
      val_.update(total, v, plan_, result_);
    }
    save(progress);
  }

 private:
  static bool crossed(int64_t before, int64_t after, int64_t every) {
    return every > 0 && after / every != before / every;
  }

  // Every process's value of v, in rank order.
  std::vector<int64_t> every_rank(int64_t v) const {
    at::Tensor all = at::zeros({world_}, at::kLong);
    all[rank_] = v;
    std::vector<at::Tensor> t = {all};
    group_->sum(t);
    const at::Tensor sum = t.front().contiguous();
    return {sum.data_ptr<int64_t>(), sum.data_ptr<int64_t>() + world_};
  }

  // The FP model's layer l (the frozen residual transform folded in), and its outputs for `in`
  // [rows, T, D] (in the store) a batch at a time.
  Model base_layer(int64_t l) const {
    return learn_detail::layer_model(fp_, l, learn_detail::fold_layer(fp_, residual_only_, l));
  }
  at::Tensor forward_all(const Model& base, int64_t l, const at::Tensor& in) const {
    c10::NoGradGuard no_grad;
    std::vector<at::Tensor> outs;
    for (int64_t b = 0; b < in.size(0); b += s_.batch) {
      const at::Tensor x = in.narrow(0, b, std::min(s_.batch, in.size(0) - b)).to(device_);
      outs.push_back(base.forward_layer(l, x).to(store_));
    }
    return at::cat(outs, 0);
  }

  // The inputs of this process's first layer for every calibration sequence: the embeddings (the
  // residual transform applied) on rank 0 of a split run or alone, else what the previous rank
  // sent; a split run's process then runs its layers once to send the next rank its inputs.
  void first_inputs() {
    c10::NoGradGuard no_grad;
    cur_ = share_.first;
    if (!split_ || rank_ == 0) {
      std::vector<at::Tensor> parts;
      for (int64_t b = 0; b < calib_.size(); b += s_.batch) {
        at::Tensor h = fp_.embed(calib_.batch(b, std::min(s_.batch, calib_.size() - b), device_));
        // = the embedding with T folded into its rows (fold_residual), a batch of rows at a time
        if (plan_.residual) h = plan_.residual->forward(h);
        parts.push_back(h.to(store_));
      }
      inputs_ = at::cat(parts, 0);
    } else {
      std::vector<at::Tensor> in = {at::empty({calib_.size(), calib_.seqlen(), fp_.config().hidden_size},
                                              at::TensorOptions(fp_.dtype()).device(store_))};
      group_->recv(in, rank_ - 1);
      inputs_ = in.front();
    }
    if (split_ && rank_ + 1 < world_) {
      at::Tensor h = inputs_;
      for (int64_t l = share_.first; l < share_.second; ++l) {
        control_.job.cancel.check();
        h = forward_all(base_layer(l), l, h);
      }
      group_->send({h}, rank_ + 1);
    }
  }

  // Makes layer l the one learned: its inputs (running the layers between), FP targets, plan, parameters.
  void begin_layer(int64_t l) {
    c10::NoGradGuard no_grad;
    while (cur_ < l) {
      inputs_ = learning_ == cur_ ? targets_ : forward_all(base_layer(cur_), cur_, inputs_);
      ++cur_;
    }
    base_.emplace(base_layer(l));
    targets_ = forward_all(*base_, l, inputs_);
    learning_ = l;
    lp_ = layer_plan(plan_, static_cast<size_t>(l), static_cast<size_t>(layers_));
    params_ = trainable_parameters(lp_);
  }

  // Step i of layer l: returns (loss, gradient norm before clipping).
  std::pair<double, double> step(int64_t l, int64_t i, double lr) {
    if (learning_ != l) begin_layer(l);
    const std::vector<int64_t> batch = batch_at(l * s_.steps + i);
    dist::Group* rows_group = split_ ? nullptr : group_;
    const std::vector<int64_t> rows = share_of(batch, rows_group);
    at::Tensor loss;
    if (rows.empty()) {
      loss = at::zeros({}, at::TensorOptions(at::kFloat).device(device_));
    } else {
      at::Tensor idx = at::tensor(rows, at::kLong).to(store_);
      at::Tensor x = inputs_.index_select(0, idx).to(device_), y = targets_.index_select(0, idx).to(device_);
      Model student = build_student(*base_, densify(lp_), s_.quant, l);
      at::Tensor out = student.forward_layer(l, x);
      const at::Tensor se = (out.to(at::kFloat) - y.to(at::kFloat)).pow(2);
      // Data-parallel: the mean over the whole batch's elements, of which this process has a share.
      const double elements =
          static_cast<double>(out.numel()) / static_cast<double>(rows.size()) * static_cast<double>(batch.size());
      loss = rows_group == nullptr ? se.mean() : se.sum() / elements;
      loss.backward();
    }
    if (rows_group != nullptr) {
      std::vector<at::Tensor> scalars = {loss};
      sum_over_ranks(*rows_group, params_, scalars);
      loss = scalars[0].reshape({});
    }
    const double norm = optim_.step_at(lr, i + 1, &params_);
    recenter_rotations(lp_);
    return {loss.item<double>(), norm};
  }

  // The rows of the run's p-th batch (the order is drawn forward only: a process's steps come in
  // increasing p).
  std::vector<int64_t> batch_at(int64_t p) {
    for (; drawn_ < p; ++drawn_) order_.next(s_.batch);
    ++drawn_;
    std::vector<int64_t> rows = order_.next(s_.batch);
    for (auto& r : rows) r = val_.train[static_cast<size_t>(r)];
    return rows;
  }

  // Split run: every process's layers' parameters (and their optimizer moments) from their owner,
  // through host memory (Gloo) like every message of a split run, so processes may share a GPU.
  void gather(bool moments) {
    c10::NoGradGuard no_grad;
    for (int r = 0; r < world_; ++r) {
      const auto [a, b] = layer_share_range(layers_, r, world_);
      std::vector<at::Tensor> tensors;
      for (int64_t l = a; l < b; ++l) {
        const std::vector<at::Tensor> p =
            trainable_parameters(layer_plan(plan_, static_cast<size_t>(l), static_cast<size_t>(layers_)));
        tensors.insert(tensors.end(), p.begin(), p.end());
        if (moments) {
          const std::vector<at::Tensor> m = optim_.moments(p);
          tensors.insert(tensors.end(), m.begin(), m.end());
        }
      }
      std::vector<at::Tensor> host;
      for (const at::Tensor& t : tensors) host.push_back(t.to(at::kCPU, /*non_blocking=*/false, /*copy=*/true));
      group_->broadcast(host, r);
      for (size_t i = 0; i < tensors.size(); ++i) tensors[i].copy_(host[i]);
    }
  }

  void save(int64_t progress) {
    if (!checkpoint_.enabled()) return;
    if (split_) gather(true);
    checkpoint_.save(plan_, optim_, progress, s_, *done_);
  }

  const Model& fp_;
  const CalibrationSet& calib_;
  const LearnSettings& s_;
  const LearnControl& control_;
  TransformPlan& plan_;
  Optimizer& optim_;
  const Checkpoint& checkpoint_;
  Validation& val_;
  MethodResult& result_;
  const int64_t layers_;
  dist::Group* group_;
  const bool split_;
  const int rank_, world_;
  const std::pair<int64_t, int64_t> share_;
  const at::Device device_, store_;
  TransformPlan residual_only_;
  BatchOrder order_;
  int64_t drawn_ = 0;
  std::vector<int64_t>* done_ = nullptr;
  at::Tensor inputs_, targets_;  // of layer cur_, and of the layer learned (FP outputs)
  int64_t cur_ = 0, learning_ = -1;
  std::optional<Model> base_;
  TransformPlan lp_;
  std::vector<at::Tensor> params_;
};

}  // namespace

MethodResult obtain_plan(const Model& fp, const CalibrationSet* calib, const LearnSettings& s,
                         const LearnControl& control) {
  const MethodPreset& preset = find_method(s.method);
  check_settings(s, calib, preset);
  const auto start = Clock::now();
  MethodResult result;
  result.method = s.method;
  result.settings = s;
  result.plan = initial_plan(fp.config(), s);
  result.plan.to(fp.device());
  if (!preset.learned) {
    result.seconds = std::chrono::duration<double>(Clock::now() - start).count();
    return result;
  }
  TransformPlan& plan = result.plan;
  const size_t layers = static_cast<size_t>(fp.config().num_layers);
  const bool layerwise = s.mode == LearnMode::LayerWise;
  // Layer-wise: a global residual transform cannot be learned one layer at a time; it stays at
  // its starting rotation and is folded into the FP model the layers are learned against.
  if (layerwise) freeze(plan.residual);
  // A layer-split run (LearnControl::split_layers): each process learns its share of the layers.
  dist::Group* split = layerwise && control.split_layers && control.group != nullptr && control.group->world() > 1
                           ? control.group
                           : nullptr;
  if (control.split_layers && control.group != nullptr && control.group->world() > 1) {
    const std::string what = "splitting the layers between " + std::to_string(control.group->world()) + " processes";
    if (!layerwise) throw UsageError(what + " needs layer-wise learning (--mode layerwise)");
    if (static_cast<size_t>(control.group->world()) > layers) {
      throw UsageError(what + ": the model has " + std::to_string(layers) + " layers; use at most that many processes");
    }
    if (s.quant.lm_head)
      throw UsageError(what + ": a quantized lm_head is not supported there (validation runs as a pipeline)");
    if (s.quant.method == WeightMethod::Gptq && s.deployed_check != DeployedCheck::Off) {
      throw UsageError(what +
                       ": the deployed check runs GPTQ on the whole model, which no process holds; use "
                       "--deployed-check no");
    }
  }

  Checkpoint checkpoint;
  checkpoint.prefix = s.checkpoint_prefix;
  checkpoint.writer = first_rank(control.group);
  if (checkpoint.enabled()) {
    checkpoint.fingerprint = learn_fingerprint(fp, s, split);
    checkpoint.calibration = calibration_hash(*calib);
  }
  const int64_t total = layerwise ? s.steps * static_cast<int64_t>(layers) : s.steps;
  int64_t start_step = 0;
  std::vector<int64_t> layer_steps(layerwise ? layers : 0, 0);  // layer-wise: each layer's steps done
  nlohmann::json resume_state;
  if (s.resume) {
    if (!checkpoint.enabled()) throw UsageError("--resume needs --checkpoint PREFIX");
    if (std::filesystem::exists(checkpoint.prefix + ".state.json") && !std::filesystem::exists(checkpoint.folder())) {
      fail(checkpoint.prefix + ".state.json", "a checkpoint of an earlier version (four separate files, which a kill can leave "
           "from two different steps)", "a checkpoint folder " + checkpoint.folder(), "the old layout: start the run again");
    }
    if (std::filesystem::exists(checkpoint.state_path())) {
      // The shared reader: depth-limited, and errors that name the file (issue 20, item 3).
      resume_state = read_json_file(checkpoint.state_path());
      if (!resume_state.is_object()) fail(checkpoint.state_path(), "checkpoint state", "a JSON object", "something else");
      const std::string found = resume_state.value("fingerprint", "");
      if (found != checkpoint.fingerprint) {
        fail(checkpoint.state_path(), "fingerprint (model and settings)", checkpoint.fingerprint,
             found + ": the checkpoint was made for another model or other settings");
      }
      const std::string text = resume_state.value("calibration", "");
      if (text != checkpoint.calibration) {
        fail(checkpoint.state_path(), "calibration data (hash of its token ids)", checkpoint.calibration,
             text + ": the checkpoint was made with another --calib text, --samples or --seqlen");
      }
      const int version = resume_state.value("version", 0);
      if (version != Checkpoint::kVersion) {
        fail(checkpoint.state_path(), "checkpoint version", std::to_string(Checkpoint::kVersion),
             std::to_string(version) +
                 ": made by an earlier latmix, whose fingerprint and layer-wise steps differ; "
                 "start the run again");
      }
      start_step = resume_state.value("step", int64_t{0});
      if (start_step < 0 || start_step > total) {
        fail(checkpoint.state_path(), "step", "0.." + std::to_string(total), std::to_string(start_step));
      }
      if (layerwise) {
        // Each layer's steps done: recorded by layer-wise runs (a split run's layers progress side
        // by side), else the first `step` steps in layer order.
        for (size_t l = 0; l < layers; ++l) {
          layer_steps[l] = std::clamp<int64_t>(start_step - static_cast<int64_t>(l) * s.steps, 0, s.steps);
        }
        if (resume_state.contains("layer_steps")) {
          const nlohmann::json& d = resume_state["layer_steps"];
          int64_t sum = 0;
          bool ok = d.is_array() && d.size() == layers;
          for (size_t l = 0; ok && l < layers; ++l) {
            ok = d[l].is_number_integer() && d[l].get<int64_t>() >= 0 && d[l].get<int64_t>() <= s.steps;
            if (ok) sum += layer_steps[l] = d[l].get<int64_t>();
          }
          if (!ok || sum != start_step) {
            fail(checkpoint.state_path(), "layer_steps",
                 std::to_string(layers) + " counts of 0.." + std::to_string(s.steps) + " adding up to step " +
                     std::to_string(start_step),
                 d.dump());
          }
        }
      }
      TransformPlan loaded = load_transforms(checkpoint.transforms_prefix());
      loaded.to(fp.device());
      if (layerwise) freeze(loaded.residual);
      // Keep the frozen value biases frozen (load_transforms makes every parameter a leaf).
      for (size_t l = 0; l < plan.value.size() && l < loaded.value.size(); ++l) {
        auto a = std::dynamic_pointer_cast<AffineTransform>(plan.value[l]);
        auto b = std::dynamic_pointer_cast<AffineTransform>(loaded.value[l]);
        if (a && b && !a->bias_param().requires_grad()) b->bias_param().requires_grad_(false);
      }
      plan = loaded;
      result.resumed = true;
    }
  }
  Optimizer optim(trainable_parameters(plan), s);
  if (result.resumed) optim.load(*SafetensorsFile::open(checkpoint.optim_path()), start_step);
  // Validation: held-out sequences, evenly spaced; training draws from the others.
  Validation val(*calib, s);
  val.calib_ = calib;
  val.group_ = control.group;
  result.validation_samples = static_cast<int64_t>(val.rows.size());
  const at::Device device = fp.device();
  // With RTN weights the student is the deployed model; with GPTQ weights validation may judge
  // the deployed model itself (LearnSettings::deployed_check).
  const bool gptq_deployed = s.quant.method == WeightMethod::Gptq && val.enabled();
  const bool deployed_every = gptq_deployed && s.deployed_check == DeployedCheck::Every;
  int64_t gptq_refreshes = 0;  // GPTQ in the loop (learn_detail::GptqLoop)

  if (!layerwise) {
    Loop loop(s, control, plan, optim, checkpoint, result);
    loop.set_resumed_at(start_step);
    BatchOrder order(static_cast<int64_t>(val.train.size()), s.seed);
    auto next_rows = [&] {
      std::vector<int64_t> rows = order.next(s.batch);
      for (auto& r : rows) r = val.train[static_cast<size_t>(r)];
      return rows;
    };
    // Keep the batch order of a resumed run identical to an uninterrupted one.
    for (int64_t i = 0; i < start_step; ++i) order.next(s.batch);
    const learn_detail::StepMemory memory =
        learn_detail::plan_step_memory(fp, s, calib->size(), calib->seqlen());
    result.memory_plan = memory.describe();
    if (control.on_note) control.on_note(result.memory_plan);
    learn_detail::TeacherCache teacher_cache;
    if (memory.teacher_cache) {
      teacher_cache = learn_detail::TeacherCache(calib->size(), calib->seqlen(), fp.config().hidden_size,
                                                 at::TensorOptions(fp.dtype()).device(device));
    }
    // GPTQ in the loop: every measurement refreshes and measures the refresh's deployed model.
    learn_detail::GptqLoop gptq_loop(fp, calib, s, control.job, control.group);
    const auto measure = [&](int64_t updates) {
      if (gptq_loop.enabled()) {
        double v = 0;
        gptq_loop.before(updates, plan, true, [&](const Model& q) { v = val.deployed_loss(fp, q, s); });
        return v;
      }
      return deployed_every ? val.deployed(fp, plan, s, control.job)
                            : val.measure(fp, plan, s, memory, device, &teacher_cache);
    };
    if (val.enabled()) {
      val.start(start_step, measure(start_step), plan, result);
      const int64_t every = s.eval_every > 0 ? s.eval_every : std::max<int64_t>(1, s.steps / 8);
      loop.set_after_step([&, every](LearnEvent& e) {
        if (e.step % every != 0 && e.step != total) return false;
        e.validation = measure(e.step);
        return val.update(e.step, *e.validation, plan, result) && e.step != total;
      });
    }
    loop.run(start_step, total, total, [&](int64_t step) {
      gptq_loop.before(step, plan);
      const std::vector<int64_t> batch = next_rows();
      const std::vector<int64_t> rows = share_of(batch, control.group);
      at::Tensor term = at::zeros({}, at::TensorOptions(at::kFloat).device(device));
      if (!rows.empty()) {
        at::Tensor ids = gather_ids(*calib, rows, device);
        const at::Tensor teacher =
            teacher_cache.enabled() ? teacher_cache.get(fp, rows, ids, memory.micro_batch) : at::Tensor();
        term = learn_detail::end_to_end_loss_backward(fp, plan, s, ids, memory, teacher, gptq_loop.residuals(),
                                                      static_cast<int64_t>(batch.size()));
      }
      // The volume term is the plan's, not a batch's: rank 0 alone adds it (and its gradient).
      at::Tensor reg = first_rank(control.group) ? volume_term(plan, s.lambda, device)
                                                 : at::zeros({}, at::TensorOptions(at::kFloat).device(device));
      if (reg.requires_grad()) reg.backward();
      StepLoss out;
      out.terms.emplace_back(s.loss == LearnLoss::Kl ? "kl" : "ce", term);
      out.loss = (term + reg).detach();
      if (s.lambda > 0 && s.method == "latmix") out.terms.emplace_back("reg", reg.detach());
      out.backward_done = true;
      return out;
    });
    gptq_refreshes = gptq_loop.refreshes();
  } else {
    LayerwiseRun(fp, *calib, s, control, plan, optim, checkpoint, val, result).run(layer_steps, deployed_every);
  }
  if (checkpoint.enabled() && !layerwise) checkpoint.save(plan, optim, total, s);
  if (val.enabled()) {
    val.finish(plan, result, total);
    if (deployed_every || gptq_refreshes > 0) {
      result.deployed_start = val.initial;
      result.deployed_result = val.best;
      result.validation_note += gptq_refreshes > 0 ? " (the deployed model, GPTQ weights, at every measurement: GPTQ in "
                                                     "the loop, " + std::to_string(gptq_refreshes) + " GPTQ runs)"
                                                   : " (the deployed model, GPTQ weights, at every measurement)";
    } else if (gptq_deployed && s.deployed_check == DeployedCheck::Ends) {
      val.check_deployed(fp, plan, s, result, control.job);
    }
  }
  {
    c10::NoGradGuard no_grad;
    for (const auto& p : plan.parameters()) {
      if (p.grad().defined()) p.mutable_grad() = at::Tensor();
    }
  }
  result.conditions = conditions(plan);
  result.seconds = std::chrono::duration<double>(Clock::now() - start).count();
  return result;
}

}  // namespace latmix
