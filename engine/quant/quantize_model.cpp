// quantize_model(): weights (RTN or GPTQ, layer by layer) and the activation hook (quant.h).
#include <c10/core/InferenceMode.h>

#include <chrono>
#include <cmath>
#include <limits>
#include <map>
#include <sstream>

#include "latmix/error.h"
#include "latmix/quant.h"

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

// Thrown by HessianHook at the first capture after the layer it needs: the rest of the forward
// pass would be wasted work. Only Model::capture lies between the throw and the catch.
struct StopForward {};

// Accumulates the Hessians of the inputs of one layer's linears (layer == num_layers: lm_head).
class HessianHook : public CaptureHook {
 public:
  HessianHook(int64_t layer, int64_t num_layers) : layer_(layer), num_layers_(num_layers) {}

  bool wants(CapturePoint point, int64_t layer) const override {
    if (layer == layer_) return layer_ == num_layers_ ? point == CapturePoint::FinalNormOut : is_linear_input(point);
    return layer == layer_ + 1 && (point == CapturePoint::Residual || point == CapturePoint::FinalNormOut);
  }

  at::Tensor on_capture(CapturePoint point, int64_t layer, const at::Tensor& x) override {
    if (layer != layer_) throw StopForward{};
    auto it = hessians_.find(point);
    if (it == hessians_.end()) it = hessians_.emplace(point, HessianAccumulator(x.size(-1))).first;
    it->second.add(x);
    return {};
  }

  const at::Tensor& hessian(CapturePoint point) const { return hessians_.at(point).hessian(); }

 private:
  int64_t layer_, num_layers_;
  std::map<CapturePoint, HessianAccumulator> hessians_;
};

// Runs the calibration set through `model` up to `layer` and returns the Hessian hook.
std::shared_ptr<HessianHook> collect_hessians(Model& model, const CalibrationSet& calib, int64_t layer,
                                              int64_t batch_size, const JobControl& job) {
  c10::InferenceMode guard;
  auto hook = std::make_shared<HessianHook>(layer, model.config().num_layers);
  model.add_hook(hook);
  try {
    for (int64_t first = 0; first < calib.size(); first += batch_size) {
      job.cancel.check();
      const at::Tensor ids = calib.batch(first, std::min(batch_size, calib.size() - first), model.device());
      try {
        model.hidden_states(ids);
      } catch (const StopForward&) {
      }
    }
  } catch (...) {
    model.remove_hook(hook);
    throw;
  }
  model.remove_hook(hook);
  return hook;
}

double sqnr_db(const at::Tensor& w, const at::Tensor& q) {
  const at::Tensor w64 = w.to(at::kDouble);
  const double signal = w64.pow(2).sum().item<double>();
  const double noise = (w64 - q.to(at::kDouble)).pow(2).sum().item<double>();
  if (noise == 0) return std::numeric_limits<double>::infinity();
  return 10.0 * std::log10(signal / noise);
}

// Quantizes one weight in place in `slot`, returning its report line.
LinearQuantReport quantize_linear(at::Tensor& slot, const MxFormat& format, const QuantSpec& spec,
                                  const at::Tensor& hessian, const JobControl& job) {
  const auto start = Clock::now();
  LinearQuantReport r;
  at::Tensor q;
  if (spec.method == WeightMethod::Gptq) {
    GptqResult g = gptq_quantize_weight(slot, hessian, format, spec.gptq, job);
    q = g.weight;
    r.relative_output_error = g.relative_output_error;
    r.reprojected = g.reprojected;
  } else {
    q = rtn_quantize_weight(slot, format);
    r.relative_output_error = std::numeric_limits<double>::quiet_NaN();
  }
  r.weight_sqnr_db = sqnr_db(slot, q);
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

void quantize_layers(Model& model, const QuantSpec& spec, const CalibrationSet* calib, QuantReport& report,
                     int64_t total, const JobControl& job) {
  const int64_t layers = model.config().num_layers;
  for (int64_t l = 0; l < layers; ++l) {
    if (!spec.covers_layer(l, layers)) continue;
    std::shared_ptr<HessianHook> hook;
    if (spec.method == WeightMethod::Gptq) hook = collect_hessians(model, *calib, l, spec.gptq.batch_size, job);
    LayerWeights& lw = model.weights().layers[static_cast<size_t>(l)];
    for (const LinearRef& ref : kLinears) {
      job.cancel.check();
      const at::Tensor h = hook ? hook->hessian(ref.input) : at::Tensor();
      LinearQuantReport r = quantize_linear(lw.*ref.member, *spec.weights, spec, h, job);
      r.layer = l;
      r.name = ref.name;
      report.linears.push_back(r);
      job.report("quantize", static_cast<int64_t>(report.linears.size()), total);
    }
  }
}

void quantize_lm_head(Model& model, const QuantSpec& spec, const CalibrationSet* calib, QuantReport& report,
                      int64_t total, const JobControl& job) {
  const int64_t layers = model.config().num_layers;
  std::shared_ptr<HessianHook> hook;
  if (spec.method == WeightMethod::Gptq) hook = collect_hessians(model, *calib, layers, spec.gptq.batch_size, job);
  ModelWeights& w = model.weights();
  // A tied lm_head becomes its own tensor; the embedding stays in high precision.
  at::Tensor slot = w.lm_head;
  const at::Tensor h = hook ? hook->hessian(CapturePoint::FinalNormOut) : at::Tensor();
  LinearQuantReport r = quantize_linear(slot, *spec.lm_head, spec, h, job);
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
  if (spec.weights) quantize_layers(out.model, spec, calib, out.report, total, job);
  if (spec.lm_head) quantize_lm_head(out.model, spec, calib, out.report, total, job);
  if (spec.activations) {
    out.activation_hook = std::make_shared<ActivationQuantHook>(*spec.activations, spec.first_layer, spec.last_layer,
                                                                spec.lm_head.has_value(), layers);
    out.model.add_hook(out.activation_hook);
  }
  out.report.seconds = seconds_since(start);
  return out;
}

}  // namespace latmix
