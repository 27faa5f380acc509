// quantize_model(): weights (RTN or GPTQ, layer by layer) and the activation hook (quant.h).
#include <c10/core/InferenceMode.h>

#include <chrono>
#include <cmath>
#include <functional>
#include <limits>
#include <map>
#include <memory>
#include <optional>
#include <sstream>
#include <utility>
#include <vector>

#include "latmix/distributed.h"
#include "latmix/error.h"
#include "latmix/quant.h"
#include "latmix/scoped_hook.h"
#include "quant/gptq_sweep.h"

namespace latmix {

namespace {

using Clock = std::chrono::steady_clock;

double seconds_since(Clock::time_point start) {
  return std::chrono::duration<double>(Clock::now() - start).count();
}

bool is_linear_input(CapturePoint point) {
  return point == CapturePoint::AttnIn || point == CapturePoint::OIn || point == CapturePoint::MlpIn ||
         point == CapturePoint::DownIn;
}

// The seven linears of a decoder layer and the capture point that feeds each.
struct LinearRef {
  const char* name;
  at::Tensor LayerWeights::*member;
  CapturePoint input;
};

const LinearRef kLinears[] = {
    {"q", &LayerWeights::q, CapturePoint::AttnIn},       {"k", &LayerWeights::k, CapturePoint::AttnIn},
    {"v", &LayerWeights::v, CapturePoint::AttnIn},       {"o", &LayerWeights::o, CapturePoint::OIn},
    {"gate", &LayerWeights::gate, CapturePoint::MlpIn},  {"up", &LayerWeights::up, CapturePoint::MlpIn},
    {"down", &LayerWeights::down, CapturePoint::DownIn},
};
constexpr int64_t kLinearsPerLayer = 7;

// Accumulates the Hessians of the inputs of one layer's linears (layer == num_layers: lm_head).
class HessianHook : public CaptureHook {
 public:
  HessianHook(int64_t layer, int64_t num_layers) : layer_(layer), num_layers_(num_layers) {}

  bool wants(CapturePoint point, int64_t layer) const override {
    if (layer != layer_) return false;
    return layer_ == num_layers_ ? point == CapturePoint::FinalNormOut : is_linear_input(point);
  }

  at::Tensor on_capture(CapturePoint point, int64_t, const at::Tensor& x) override {
    auto it = hessians_.find(point);
    if (it == hessians_.end()) it = hessians_.emplace(point, HessianAccumulator(x.size(-1))).first;
    it->second.add(x);
    return {};
  }

  // The Hessian of `point`'s input (after sum_over: the whole calibration set's).
  const at::Tensor& hessian(CapturePoint point) const {
    const auto it = summed_.find(point);
    return it != summed_.end() ? it->second : hessians_.at(point).hessian();
  }

  // Data-parallel: this rank's running means (over its share of the batches) become the whole
  // calibration set's, sum over ranks of share x mean, with `share` this rank's fraction of the
  // rows. `points` are the capture points with their feature counts (a rank without batches has
  // no Hessian: zeros).
  void sum_over(dist::Group& group, const std::vector<std::pair<CapturePoint, int64_t>>& points, double share,
                const at::Device& device) {
    std::vector<at::Tensor> parts;
    for (const auto& [point, features] : points) {
      const auto it = hessians_.find(point);
      parts.push_back(it != hessians_.end() && it->second.hessian().defined()
                          ? it->second.hessian() * share
                          : at::zeros({features, features}, at::TensorOptions().dtype(at::kFloat).device(device)));
    }
    group.sum(parts);
    for (size_t i = 0; i < points.size(); ++i) summed_[points[i].first] = parts[i];
  }

 private:
  std::map<CapturePoint, at::Tensor> summed_;
  int64_t layer_, num_layers_;
  std::map<CapturePoint, HessianAccumulator> hessians_;
};

// Calls `f(first, n)` for this rank's calibration batches of `batch_size` sequences (all of them
// alone; with a group, batch b when b mod N is the rank) and returns this rank's fraction of the
// sequences.
double for_my_batches(const CalibrationSet& calib, int64_t batch_size, const dist::Group* group, const JobControl& job,
                      const std::function<void(int64_t first, int64_t n)>& f) {
  const int64_t rank = group != nullptr ? group->rank() : 0, world = group != nullptr ? group->world() : 1;
  int64_t rows = 0;
  for (int64_t first = 0, b = 0; first < calib.size(); first += batch_size, ++b) {
    job.cancel.check();
    if (b % world != rank) continue;
    const int64_t n = std::min(batch_size, calib.size() - first);
    f(first, n);
    rows += n;
  }
  return static_cast<double>(rows) / static_cast<double>(calib.size());
}

// The residual stream of every calibration batch entering decoder layer layer(), kept on the
// model's device so that GPTQ's layer-by-layer calibration runs each layer twice (once for its
// Hessians, once through its quantized weights) instead of running the model from the embeddings
// for every layer. The batches are the ones a full forward pass would see, and forward_layer is
// that pass's layer step, so every Hessian gets the same inputs, bit for bit.
//
// Data-parallel (`group`): this rank keeps batch b when b mod N is its rank.
class CalibrationStream {
 public:
  CalibrationStream(const Model& model, const CalibrationSet& calib, int64_t batch_size, const JobControl& job,
                    const dist::Group* group = nullptr) {
    c10::InferenceMode guard;
    share_ = for_my_batches(calib, batch_size, group, job, [&](int64_t first, int64_t n) {
      h_.push_back(model.embed(calib.batch(first, n, model.device())));
    });
  }

  int64_t layer() const { return layer_; }
  // This rank's fraction of the calibration rows (1 alone).
  double share() const { return share_; }

  // Runs layer() over every batch for its capture points only (the hooks see its inputs).
  void observe(const Model& model, const JobControl& job) const {
    c10::InferenceMode guard;
    for (const at::Tensor& h : h_) {
      job.cancel.check();
      model.forward_layer(layer_, h);
    }
  }

  // Moves the stream through layer() with the layer's current weights.
  void advance(const Model& model, const JobControl& job) {
    c10::InferenceMode guard;
    for (at::Tensor& h : h_) {
      job.cancel.check();
      h = model.forward_layer(layer_, h);
    }
    ++layer_;
  }

 private:
  std::vector<at::Tensor> h_;
  int64_t layer_ = 0;
  double share_ = 1;
};

// The capture points of a decoder layer's linear inputs, with their widths.
std::vector<std::pair<CapturePoint, int64_t>> layer_points(const ModelConfig& c) {
  return {{CapturePoint::AttnIn, c.hidden_size},
          {CapturePoint::OIn, c.q_size()},
          {CapturePoint::MlpIn, c.hidden_size},
          {CapturePoint::DownIn, c.intermediate_size}};
}

// The Hessians of the linear inputs of the stream's layer (with a group: summed over the ranks).
std::shared_ptr<HessianHook> collect_layer_hessians(Model& model, const CalibrationStream& stream,
                                                    const JobControl& job, dist::Group* group = nullptr) {
  auto hook = std::make_shared<HessianHook>(stream.layer(), model.config().num_layers);
  {
    const ScopedHook installed(model, hook);
    stream.observe(model, job);
  }
  if (group != nullptr) hook->sum_over(*group, layer_points(model.config()), stream.share(), model.device());
  return hook;
}

// Runs the calibration set through the whole model for the Hessian of lm_head's input (with a
// group: each rank its batches, b mod N, summed over the ranks).
std::shared_ptr<HessianHook> collect_lm_head_hessian(Model& model, const CalibrationSet& calib, int64_t batch_size,
                                                     const JobControl& job, dist::Group* group) {
  c10::InferenceMode guard;
  const int64_t layers = model.config().num_layers;
  auto hook = std::make_shared<HessianHook>(layers, layers);
  double share = 1;
  {
    const ScopedHook installed(model, hook);
    share = for_my_batches(calib, batch_size, group, job, [&](int64_t first, int64_t n) {
      model.hidden_states(calib.batch(first, n, model.device()));
    });
  }
  if (group != nullptr) {
    hook->sum_over(*group, {{CapturePoint::FinalNormOut, model.config().hidden_size}}, share, model.device());
  }
  return hook;
}

double sqnr_db(const at::Tensor& w, const at::Tensor& q) {
  const at::Tensor w64 = w.to(at::kDouble);
  const double signal = w64.pow(2).sum().item<double>();
  const double noise = (w64 - q.to(at::kDouble)).pow(2).sum().item<double>();
  if (noise == 0) return std::numeric_limits<double>::infinity();
  return 10.0 * std::log10(signal / noise);
}

// The Hessian factors of one layer's inputs (GPTQ), each made when a linear first needs it: q, k
// and v share theirs, as do gate and up.
class LayerFactors {
 public:
  LayerFactors(const Model& model, const QuantSpec& spec) : device_(model.device()), options_(spec.gptq) {}
  const gptq_detail::HessianFactor* get(CapturePoint input, const at::Tensor& hessian) {
    if (!hessian.defined()) return nullptr;
    auto it = factors_.find(input);
    if (it == factors_.end())
      it = factors_.emplace(input, gptq_detail::factor_hessian(hessian, options_, device_)).first;
    return &it->second;
  }

 private:
  at::Device device_;
  GptqOptions options_;
  std::map<CapturePoint, gptq_detail::HessianFactor> factors_;
};

// Quantizes one weight in place in `slot`, returning its report line (`factor`: the Hessian's,
// when made already).
// On a mapped model the slot holds the file's tensor: it is converted here, and the quantized
// one (compute dtype) replaces it.
LinearQuantReport quantize_linear(const Model& model, at::Tensor& slot, const MxFormat& format, const QuantSpec& spec,
                                  const at::Tensor& hessian, const JobControl& job,
                                  const gptq_detail::HessianFactor* factor = nullptr) {
  const auto start = Clock::now();
  LinearQuantReport r;
  at::Tensor q;
  const at::Tensor w = model.compute(slot);
  if (spec.method == WeightMethod::Gptq) {
    GptqResult g =
        gptq_detail::quantize_weight(w, hessian, format, spec.gptq, job, gptq_detail::SweepKernel::Auto, factor);
    q = g.weight;
    r.relative_output_error = g.relative_output_error;
    r.reprojected = g.reprojected;
  } else {
    q = rtn_quantize_weight(w, format);
    r.relative_output_error = std::numeric_limits<double>::quiet_NaN();
  }
  r.weight_sqnr_db = sqnr_db(w, q);
  slot = q;
  r.seconds = seconds_since(start);
  return r;
}

void check_spec(const Model& fp, const QuantSpec& spec, const CalibrationSet* calib) {
  const int64_t layers = fp.config().num_layers;
  if (spec.first_layer < 0 || spec.first_layer >= layers || spec.last_layer >= layers) {
    throw UsageError("quantization spec: layers=" + std::to_string(spec.first_layer) + "-" +
                     (spec.last_layer >= 0 ? std::to_string(spec.last_layer) : std::string()) +
                     ": the model has layers 0-" + std::to_string(layers - 1));
  }
  const bool gptq_needed = spec.method == WeightMethod::Gptq && (spec.weights || spec.lm_head);
  if (gptq_needed && (calib == nullptr || calib->size() == 0)) {
    throw UsageError("quantization spec: weights=gptq needs calibration data");
  }
  for (const auto* f : {&spec.weights, &spec.lm_head}) {
    if (gptq_needed && f->has_value() && (*f)->scale_type != ScaleType::E8M0) {
      throw UsageError("quantization spec: weights=gptq supports MX formats only, not " + (*f)->name());
    }
  }
  if (spec.gptq.batch_size < 1) throw UsageError("GPTQ: batch_size: expected 1 or more");
}

// A layer's linears in host memory (see QuantizeOptions::layers_to_host).
void layer_to_host(LayerWeights& lw) {
  for (const LinearRef& ref : kLinears) {
    at::Tensor& t = lw.*ref.member;
    if (t.defined() && !t.is_cpu()) t = t.to(at::kCPU);
  }
}

// Data-parallel GPTQ: the linear `owner` quantized (in `slot`, the compute dtype) and its report
// line, sent to every other rank, which receives them into its own slot.
void share_linear(const Model& model, dist::Group& group, int owner, at::Tensor& slot, LinearQuantReport& r) {
  const bool mine = group.rank() == owner;
  const auto f32 = at::TensorOptions().dtype(at::kFloat).device(model.device());
  // As float32 (bf16 and fp16 widen exactly): not every backend sends every dtype.
  std::vector<at::Tensor> weight = {mine ? slot.to(f32) : at::empty(slot.sizes(), f32)};
  group.broadcast(weight, owner);
  std::vector<at::Tensor> line = {
      mine ? at::tensor({r.relative_output_error, r.weight_sqnr_db, r.seconds, static_cast<double>(r.reprojected)},
                        at::TensorOptions().dtype(at::kDouble))
                 .to(model.device())
           : at::empty({4}, at::TensorOptions().dtype(at::kDouble).device(model.device()))};
  group.broadcast(line, owner);
  if (mine) return;
  slot = weight.front().to(model.dtype());
  const at::Tensor v = line.front().cpu();
  r.relative_output_error = v[0].item<double>();
  r.weight_sqnr_db = v[1].item<double>();
  r.seconds = v[2].item<double>();
  r.reprojected = static_cast<int64_t>(v[3].item<double>());
}

void quantize_layers(Model& model, const QuantSpec& spec, const CalibrationSet* calib, QuantReport& report,
                     int64_t total, const JobControl& job, bool to_host, dist::Group* group) {
  const int64_t layers = model.config().num_layers;
  // Only GPTQ shares its work: RTN has no calibration pass and costs less than sending its result.
  if (spec.method != WeightMethod::Gptq) group = nullptr;
  std::optional<CalibrationStream> stream;
  for (int64_t l = 0; l < layers; ++l) {
    if (!spec.covers_layer(l, layers)) continue;
    std::shared_ptr<HessianHook> hook;
    if (spec.method == WeightMethod::Gptq) {
      if (!stream) stream.emplace(model, *calib, spec.gptq.batch_size, job, group);
      while (stream->layer() < l) stream->advance(model, job);
      hook = collect_layer_hessians(model, *stream, job, group);
    }
    // stored_weights(): a mapped model stays mapped; only the quantized tensors are held.
    LayerWeights& lw = model.stored_weights().layers[static_cast<size_t>(l)];
    LayerFactors factors(model, spec);
    int64_t index = 0;
    for (const LinearRef& ref : kLinears) {
      job.cancel.check();
      const int owner = group != nullptr ? static_cast<int>(index++ % group->world()) : 0;
      LinearQuantReport r;
      if (group == nullptr || group->rank() == owner) {
        const at::Tensor h = hook ? hook->hessian(ref.input) : at::Tensor();
        r = quantize_linear(model, lw.*ref.member, *spec.weights, spec, h, job, factors.get(ref.input, h));
      }
      if (group != nullptr) share_linear(model, *group, owner, lw.*ref.member, r);
      r.layer = l;
      r.name = ref.name;
      report.linears.push_back(r);
      job.report("quantize", static_cast<int64_t>(report.linears.size()), total);
    }
    if (to_host) {
      // The stream passes this layer with its quantized weights before they leave the device.
      if (stream && stream->layer() == l && l + 1 < layers) stream->advance(model, job);
      layer_to_host(lw);
    }
  }
}

void quantize_lm_head(Model& model, const QuantSpec& spec, const CalibrationSet* calib, QuantReport& report,
                      int64_t total, const JobControl& job, dist::Group* group) {
  const int64_t layers = model.config().num_layers;
  if (spec.method != WeightMethod::Gptq) group = nullptr;
  std::shared_ptr<HessianHook> hook;
  if (spec.method == WeightMethod::Gptq)
    hook = collect_lm_head_hessian(model, *calib, spec.gptq.batch_size, job, group);
  ModelWeights& w = model.stored_weights();
  // A tied lm_head becomes its own tensor; the embedding stays in high precision.
  at::Tensor slot = w.lm_head;
  const at::Tensor h = hook ? hook->hessian(CapturePoint::FinalNormOut) : at::Tensor();
  // With a group every rank quantizes it from the same Hessian (one linear: nothing to share).
  LinearQuantReport r = quantize_linear(model, slot, *spec.lm_head, spec, h, job);
  w.lm_head = slot;
  r.layer = layers;
  r.name = "lm_head";
  report.linears.push_back(r);
  job.report("quantize", static_cast<int64_t>(report.linears.size()), total);
}

}  // namespace

ActivationQuantHook::ActivationQuantHook(MxFormat format, int64_t first_layer, int64_t last_layer, bool lm_head_input,
                                         int64_t num_layers)
    : format_(format),
      first_(first_layer),
      last_(last_layer < 0 ? num_layers - 1 : last_layer),
      lm_head_input_(lm_head_input),
      num_layers_(num_layers) {
  format_.validate();
}

bool ActivationQuantHook::wants(CapturePoint point, int64_t layer) const {
  if (point == CapturePoint::FinalNormOut) return lm_head_input_ && layer == num_layers_;
  return is_linear_input(point) && layer >= first_ && layer <= last_;
}

at::Tensor ActivationQuantHook::on_capture(CapturePoint, int64_t, const at::Tensor& x) {
  return fake_quantize(x, format_, -1);
}

std::string QuantReport::describe() const {
  std::ostringstream s;
  s.setf(std::ios::fixed);
  s.precision(2);
  s << "quantization " << spec << ": " << linears.size() << " linears in " << seconds << " s";
  if (calibration_sequences > 0) {
    s << " (GPTQ on " << calibration_sequences << " x " << calibration_seqlen << " calibration tokens)";
  }
  std::map<std::string, std::pair<double, int64_t>> by_kind;
  for (const auto& r : linears) {
    auto& acc = by_kind[r.name];
    acc.first += r.weight_sqnr_db;
    acc.second += 1;
  }
  s << "\nmean weight SQNR (dB):";
  for (const char* kind : {"q", "k", "v", "o", "gate", "up", "down", "lm_head"}) {
    auto it = by_kind.find(kind);
    if (it != by_kind.end()) s << " " << kind << " " << it->second.first / static_cast<double>(it->second.second);
  }
  return s.str();
}

QuantizedModel quantize_model(const Model& fp, const QuantSpec& spec, const CalibrationSet* calib,
                              const JobControl& job) {
  return quantize_model(fp, spec, calib, job, QuantizeOptions{});
}

QuantizedModel quantize_model(const Model& fp, const QuantSpec& spec, const CalibrationSet* calib,
                              const JobControl& job, const QuantizeOptions& options) {
  check_spec(fp, spec, calib);
  const auto start = Clock::now();
  QuantizedModel out{fp, nullptr, {}};  // shares fp's tensors until they are replaced
  out.report.spec = to_string(spec);
  const int64_t layers = fp.config().num_layers;
  int64_t covered = 0;
  for (int64_t l = 0; l < layers; ++l) covered += spec.covers_layer(l, layers) ? 1 : 0;
  const int64_t total = (spec.weights ? covered * kLinearsPerLayer : 0) + (spec.lm_head ? 1 : 0);
  if (spec.method == WeightMethod::Gptq && total > 0) {
    out.report.calibration_sequences = calib->size();
    out.report.calibration_seqlen = calib->seqlen();
  }
  // GPTQ of lm_head runs the whole quantized model: its layers stay where it runs.
  const bool to_host =
      options.layers_to_host && !fp.device().is_cpu() && !(spec.lm_head && spec.method == WeightMethod::Gptq);
  if (spec.weights) quantize_layers(out.model, spec, calib, out.report, total, job, to_host, options.group);
  if (spec.lm_head) quantize_lm_head(out.model, spec, calib, out.report, total, job, options.group);
  if (spec.activations) {
    out.activation_hook = std::make_shared<ActivationQuantHook>(*spec.activations, spec.first_layer, spec.last_layer,
                                                                spec.lm_head.has_value(), layers);
    out.model.add_hook(out.activation_hook);
  }
  out.report.seconds = seconds_since(start);
  return out;
}

}  // namespace latmix

namespace latmix {

struct StreamingQuantizer::State {
  Model work;  // shares the FP model's tensors; the held layer's slots are replaced
  QuantSpec spec;
  const CalibrationSet* calib;
  JobControl job;
  QuantReport report;
  int64_t total = 0;
  std::optional<CalibrationStream> stream;
  int64_t held_layer = -1;
  LayerWeights original;  // the held layer's FP slots, put back once the stream is past it
  std::map<std::string, at::Tensor> held;
};

StreamingQuantizer::StreamingQuantizer(const Model& fp, const QuantSpec& spec, const CalibrationSet* calib,
                                       const JobControl& job)
    : state_(new State{fp, spec, calib, job, {}, 0, std::nullopt, -1, {}, {}}) {
  check_spec(fp, spec, calib);
  if (spec.method == WeightMethod::Gptq && spec.lm_head) {
    throw UsageError("streaming quantization: lm_head with weights=gptq needs a pass of the whole quantized model");
  }
  State& s = *state_;
  s.report.spec = to_string(spec);
  const int64_t layers = fp.config().num_layers;
  for (int64_t l = 0; l < layers; ++l) s.total += spec.weights && spec.covers_layer(l, layers) ? kLinearsPerLayer : 0;
  s.total += spec.lm_head ? 1 : 0;
  if (spec.method == WeightMethod::Gptq && s.total > 0) {
    s.report.calibration_sequences = calib->size();
    s.report.calibration_seqlen = calib->seqlen();
  }
}

StreamingQuantizer::~StreamingQuantizer() = default;

const QuantReport& StreamingQuantizer::report() const { return state_->report; }

at::Tensor StreamingQuantizer::weight(int64_t layer, const std::string& name) {
  State& s = *state_;
  c10::InferenceMode guard;
  const int64_t layers = s.work.config().num_layers;
  const auto start = Clock::now();
  auto record = [&](LinearQuantReport r, int64_t l, const std::string& n) {
    r.layer = l;
    r.name = n;
    s.report.linears.push_back(r);
    s.report.seconds += seconds_since(start);
    s.job.report("quantize", static_cast<int64_t>(s.report.linears.size()), s.total);
  };
  if (name == "lm_head") {
    if (!s.spec.lm_head || layer != layers) throw UsageError("streaming quantization: lm_head is not quantized");
    at::Tensor slot = s.work.stored_weights().lm_head;
    record(quantize_linear(s.work, slot, *s.spec.lm_head, s.spec, {}, s.job), layers, name);
    return slot;
  }
  const LinearRef* ref = nullptr;
  for (const LinearRef& r : kLinears) {
    if (name == r.name) ref = &r;
  }
  if (ref == nullptr || !s.spec.weights || layer < 0 || layer >= layers || !s.spec.covers_layer(layer, layers)) {
    throw UsageError("streaming quantization: linear '" + name + "' of layer " + std::to_string(layer) +
                     " is not quantized by " + s.report.spec);
  }
  if (s.spec.method == WeightMethod::Rtn) {
    at::Tensor slot = s.work.stored_weights().layers[static_cast<size_t>(layer)].*ref->member;
    record(quantize_linear(s.work, slot, *s.spec.weights, s.spec, {}, s.job), layer, name);
    return slot;
  }
  if (layer == s.held_layer) return s.held.at(name);
  if (layer < s.held_layer) {
    throw UsageError("streaming quantization: GPTQ layers are quantized in order; layer " + std::to_string(layer) +
                     " was asked for after layer " + std::to_string(s.held_layer));
  }
  ModelWeights& w = s.work.stored_weights();
  if (!s.stream) s.stream.emplace(s.work, *s.calib, s.spec.gptq.batch_size, s.job);
  while (s.stream->layer() < layer) {
    s.stream->advance(s.work, s.job);  // through the held layer with its quantized weights
    if (s.stream->layer() - 1 == s.held_layer) {
      w.layers[static_cast<size_t>(s.held_layer)] = s.original;
      s.held.clear();
      s.held_layer = -1;
    }
  }
  const std::shared_ptr<HessianHook> hook = collect_layer_hessians(s.work, *s.stream, s.job);
  LayerWeights& lw = w.layers[static_cast<size_t>(layer)];
  s.original = lw;
  s.held_layer = layer;
  LayerFactors factors(s.work, s.spec);
  for (const LinearRef& r : kLinears) {
    s.job.cancel.check();
    const auto one = Clock::now();
    const at::Tensor& h = hook->hessian(r.input);
    LinearQuantReport line =
        quantize_linear(s.work, lw.*r.member, *s.spec.weights, s.spec, h, s.job, factors.get(r.input, h));
    line.layer = layer;
    line.name = r.name;
    s.report.linears.push_back(line);
    s.report.seconds += seconds_since(one);
    s.job.report("quantize", static_cast<int64_t>(s.report.linears.size()), s.total);
    s.held[r.name] = lw.*r.member;
  }
  return s.held.at(name);
}

}  // namespace latmix
