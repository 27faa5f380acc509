// Learning settings, presets, events and the pause token (learn.h).
#include <nlohmann/json.hpp>

#include <algorithm>
#include <deque>
#include <thread>

#include "latmix/error.h"
#include "latmix/learn.h"

namespace latmix {

namespace {

template <typename E>
E parse_named(const std::string& name, const std::vector<std::pair<std::string, E>>& names, const char* what) {
  std::string valid;
  for (const auto& [n, e] : names) {
    if (n == name) return e;
    valid += (valid.empty() ? "" : ", ") + n;
  }
  throw UsageError(std::string("unknown ") + what + " '" + name + "' (expected " + valid + ")");
}

}  // namespace

std::string to_string(LearnMode mode) {
  return mode == LearnMode::EndToEnd ? "e2e" : "layerwise";
}
std::string to_string(LearnLoss loss) {
  switch (loss) {
    case LearnLoss::Kl: return "kl";
    case LearnLoss::CrossEntropy: return "ce";
    case LearnLoss::LayerMse: return "mse";
  }
  return "?";
}
std::string to_string(OptimizerKind kind) {
  return kind == OptimizerKind::AdamW ? "adamw" : "sgd";
}
std::string to_string(TransformInit init) {
  switch (init) {
    case TransformInit::Hadamard: return "hadamard";
    case TransformInit::BlockHadamard: return "block_hadamard";
    case TransformInit::Random: return "random";
    case TransformInit::Identity: return "identity";
  }
  return "?";
}
std::string to_string(DeployedCheck check) {
  switch (check) {
    case DeployedCheck::Off: return "no";
    case DeployedCheck::Ends: return "ends";
    case DeployedCheck::Every: return "every";
  }
  return "?";
}

LearnMode parse_learn_mode(const std::string& name) {
  return parse_named<LearnMode>(name, {{"e2e", LearnMode::EndToEnd}, {"layerwise", LearnMode::LayerWise}}, "mode");
}
LearnLoss parse_learn_loss(const std::string& name) {
  return parse_named<LearnLoss>(
      name, {{"kl", LearnLoss::Kl}, {"ce", LearnLoss::CrossEntropy}, {"mse", LearnLoss::LayerMse}}, "loss");
}
DeployedCheck parse_deployed_check(const std::string& name) {
  return parse_named<DeployedCheck>(
      name, {{"no", DeployedCheck::Off}, {"ends", DeployedCheck::Ends}, {"every", DeployedCheck::Every}},
      "deployed check");
}
OptimizerKind parse_optimizer(const std::string& name) {
  return parse_named<OptimizerKind>(name, {{"adamw", OptimizerKind::AdamW}, {"sgd", OptimizerKind::Sgd}},
                                    "optimizer");
}
TransformInit parse_transform_init(const std::string& name) {
  return parse_named<TransformInit>(
      name,
      {{"hadamard", TransformInit::Hadamard},
       {"block_hadamard", TransformInit::BlockHadamard},
       {"random", TransformInit::Random},
       {"identity", TransformInit::Identity}},
      "initialization");
}

nlohmann::json LearnSettings::to_json() const {
  bool learned = false;
  for (const auto& p : method_presets()) {
    if (p.name == method) learned = p.learned;
  }
  // A fixed preset has no learning knobs: only what changes its result.
  if (!learned) return {{"method", method}, {"quant", latmix::to_string(quant)}, {"seed", seed}};
  nlohmann::json j = {{"method", method},
                      {"quant", latmix::to_string(quant)},
                      {"mode", latmix::to_string(mode)},
                      {"loss", latmix::to_string(loss)},
                      {"steps", steps},
                      {"batch", batch},
                      {"optimizer", latmix::to_string(optimizer)},
                      {"lr", lr},
                      {"momentum", momentum},
                      {"weight_decay", weight_decay},
                      {"warmup", warmup},
                      {"schedule", cosine ? "cosine" : "constant"},
                      {"grad_clip", grad_clip},
                      {"lambda", lambda},
                      {"param", param == AffineTransform::Param::QR ? "qr" : "lu"},
                      {"init", latmix::to_string(init)},
                      {"rotation_map", rotation_map == RotationTransform::Map::Exp ? "exp" : "cayley"},
                      {"affine_bias", affine_bias},
                      {"validation", validation},
                      {"eval_every", eval_every},
                      {"patience", patience},
                      {"deployed_check", latmix::to_string(deployed_check)},
                      {"seed", seed}};
  // Only when on: the settings of a run without it (and so the fingerprints of checkpoints
  // written before it existed) stay as they were, and those checkpoints still resume.
  if (gptq_refresh > 0) j["gptq_refresh"] = gptq_refresh;
  return j;
}

nlohmann::json LearnEvent::to_json() const {
  nlohmann::json t = nlohmann::json::object();
  for (const auto& [name, value] : terms) t[name] = value;
  nlohmann::json j = {{"step", step}, {"total", total}, {"loss", loss}, {"terms", t},
                      {"lr", lr},     {"grad_norm", grad_norm}, {"seconds", seconds}, {"eta", eta}};
  if (layer >= 0) j["layer"] = layer;
  if (validation) j["validation"] = *validation;
  return j;
}

PauseToken::PauseToken() : state_(std::make_shared<State>()) {}

void PauseToken::pause() const {
  std::lock_guard<std::mutex> lock(state_->mutex);
  state_->paused = true;
}

void PauseToken::resume() const {
  {
    std::lock_guard<std::mutex> lock(state_->mutex);
    state_->paused = false;
  }
  state_->cv.notify_all();
}

bool PauseToken::paused() const {
  std::lock_guard<std::mutex> lock(state_->mutex);
  return state_->paused;
}

void PauseToken::wait(const CancelToken& cancel) const {
  while (paused() && !cancel.cancelled()) wait_for(cancel, std::chrono::hours(1));
}

void PauseToken::wait_for(const CancelToken& cancel, std::chrono::milliseconds timeout) const {
  const auto until = std::chrono::steady_clock::now() + timeout;
  std::unique_lock<std::mutex> lock(state_->mutex);
  // Cancel does not notify: poll it every 50 ms while paused.
  while (state_->paused && !cancel.cancelled()) {
    const auto now = std::chrono::steady_clock::now();
    if (now >= until) return;
    state_->cv.wait_for(lock,
                        std::min<std::chrono::steady_clock::duration>(until - now, std::chrono::milliseconds(50)));
  }
}

struct StepEndWork::State {
  std::mutex mutex;
  std::condition_variable wake;
  std::deque<Work> work;
  int64_t step = 0;
  int64_t told = -1;  // the paused step on_hold was last told of
};

StepEndWork::StepEndWork() : state_(std::make_shared<State>()) {}

void StepEndWork::push(Work work) const {
  {
    std::lock_guard<std::mutex> lock(state_->mutex);
    state_->work.push_back(std::move(work));
  }
  state_->wake.notify_all();
}

void StepEndWork::set_step(int64_t step) const {
  std::lock_guard<std::mutex> lock(state_->mutex);
  state_->step = step;
}

int64_t StepEndWork::step() const {
  std::lock_guard<std::mutex> lock(state_->mutex);
  return state_->step;
}

void StepEndWork::serve(const TransformPlan& plan, const JobControl& job, const PauseToken& pause,
                        const std::function<void(int64_t step)>& on_hold, bool hold) const {
  std::unique_lock<std::mutex> lock(state_->mutex);
  for (;;) {
    while (!state_->work.empty()) {
      Work w = std::move(state_->work.front());
      state_->work.pop_front();
      const int64_t step = state_->step;
      lock.unlock();
      w(plan, step, job);
      lock.lock();
    }
    if (!pause.paused() || job.cancel.cancelled()) return;
    if (on_hold && state_->told != state_->step) on_hold(state_->step);
    state_->told = state_->step;
    if (!hold) return;
    state_->wake.wait_for(lock, std::chrono::milliseconds(50));
  }
}

bool StepEndWork::wanted(const PauseToken& pause, bool hold) const {
  std::lock_guard<std::mutex> lock(state_->mutex);
  if (!state_->work.empty()) return true;
  return pause.paused() && (hold || state_->told != state_->step);
}

void StepEndWork::wake() const { state_->wake.notify_all(); }

void StepEndWork::drop() const {
  std::lock_guard<std::mutex> lock(state_->mutex);
  state_->work.clear();
}

void StepEndWork::attach(LearnControl& control, const PauseToken& pause,
                         std::function<void(int64_t step)> on_hold) const {
  const StepEndWork self = *this;
  control.on_step = [self, next = std::move(control.on_step)](const LearnEvent& e) {
    self.set_step(e.step);
    if (next) next(e);
  };
  control.snapshot_every = 1;
  // With a group the processes hold together at the next step's start (Loop::agreed_stop).
  const bool hold = control.group == nullptr;
  control.snapshot_wanted = [self, pause, hold] { return self.wanted(pause, hold); };
  control.on_snapshot = [self, job = control.job, pause, on_hold = std::move(on_hold),
                         hold](const TransformPlan& plan) { self.serve(plan, job, pause, on_hold, hold); };
}

const std::vector<MethodPreset>& method_presets() {
  static const std::vector<MethodPreset> presets = {
      {"rtn", "round-to-nearest MX weights, no transform", "none", false},
      {"gptq", "MX-aware GPTQ weights, no transform", "none", false},
      {"quarot", "random Hadamard rotations (fixed) + GPTQ",
       "residual: full Hadamard; values: per-head Hadamard; down_proj input: online Hadamard", false},
      {"mr-gptq", "block Hadamard of the MX block size (fixed) + MX-aware GPTQ",
       "residual, values and down_proj input: block Hadamard (size = MX block)", false},
      {"spinquant", "learned rotations (Cayley SGD, cross-entropy) + GPTQ",
       "residual: learned R1; values: learned per-layer R2; down_proj input: online Hadamard (R4)", true},
      {"flatquant", "per-layer Kronecker affine maps learned layer by layer (MSE)",
       "q/k/v and gate/up inputs: online Kronecker affine; values: Kronecker affine; down_proj input: online "
       "Kronecker affine",
       true},
      {"latmix", "learned affine T1 + per-layer T2 (KL to the FP model) + GPTQ",
       "residual: learned affine T1; values: learned per-layer affine T2; down_proj input: online block Hadamard",
       true},
  };
  return presets;
}

const MethodPreset& find_method(const std::string& name) {
  std::string valid;
  for (const auto& p : method_presets()) {
    if (p.name == name) return p;
    valid += (valid.empty() ? "" : ", ") + p.name;
  }
  throw UsageError("unknown method '" + name + "' (expected " + valid + ")");
}

LearnSettings method_defaults(const std::string& method, const QuantSpec& format, at::Device device) {
  find_method(method);
  const bool gpu = device.is_cuda();
  LearnSettings s;
  s.method = method;
  s.quant = format;
  s.quant.method = WeightMethod::Gptq;
  s.steps = 0;
  if (method == "rtn") {
    s.quant.method = WeightMethod::Rtn;
  } else if (method == "spinquant") {
    // SpinQuant: Cayley SGD, lr 1.5, 100 iterations, cross-entropy on the calibration text.
    s.loss = LearnLoss::CrossEntropy;
    s.optimizer = OptimizerKind::Sgd;
    s.lr = 1.5;
    s.warmup = 0.0;
    s.cosine = false;
    s.grad_clip = 0.0;
    s.steps = gpu ? 100 : 30;
    s.batch = gpu ? 8 : 2;
    s.rotation_map = RotationTransform::Map::Cayley;
  } else if (method == "flatquant") {
    // FlatQuant: AdamW lr 5e-3, cosine, layer-wise MSE, RTN weights in its headline W4A4 results.
    s.mode = LearnMode::LayerWise;
    s.loss = LearnLoss::LayerMse;
    s.optimizer = OptimizerKind::AdamW;
    s.lr = 5e-3;
    s.warmup = 0.0;
    s.steps = gpu ? 240 : 24;  // per layer: 15 epochs of 128 samples / batch 8 on a GPU
    s.batch = gpu ? 8 : 2;
    s.init = TransformInit::Identity;
    s.quant.method = WeightMethod::Rtn;
  } else if (method == "latmix") {
    s.loss = LearnLoss::Kl;
    s.optimizer = OptimizerKind::AdamW;
    s.lr = 1e-3;
    s.warmup = 0.1;
    s.steps = gpu ? 256 : 40;
    s.batch = gpu ? 8 : 2;
    s.lambda = 0.1;
    // Our choice: start from MR-GPTQ's block Hadamard, the best fixed transform for MX in our
    // runs, so that learning starts where the strongest baseline ends.
    s.init = TransformInit::BlockHadamard;
  }
  return s;
}

}  // namespace latmix
