// quantize_model's GPTQ carries the calibration set's residual stream from layer to layer; this
// checks it bit for bit against the straightforward reference it replaced: for every layer, a full
// pass from the embeddings through the partly quantized model, stopped after that layer, gathering
// the Hessians, then gptq_quantize_weight of the layer's seven linears (and lm_head after a last
// full pass). On the tiny Llama 3 fixture, with a last calibration batch smaller than the others,
// partial layer ranges, act-order, static scales, and a hook of the FP model that changes
// activations (it must act on the stream exactly as on a full pass).
#include <c10/core/InferenceMode.h>
#include <gtest/gtest.h>

#include <ATen/ATen.h>

#include <map>
#include <memory>
#include <string>
#include <vector>

#include "latmix/calib_data.h"
#include "latmix/model.h"
#include "latmix/quant.h"
#include "test_paths.h"

namespace {

using latmix::CapturePoint;
using latmix::Model;

const Model& tiny() {
  static const Model m = latmix::load_model(latmix::test::fixtures_path("models/tiny-llama3"));
  return m;
}

latmix::CalibrationSet random_calibration(int64_t samples, int64_t seqlen) {
  at::manual_seed(4);
  const at::Tensor t = at::randint(0, 320, {samples * seqlen}, at::kInt);
  const std::vector<int32_t> tokens(t.data_ptr<int32_t>(), t.data_ptr<int32_t>() + t.numel());
  latmix::CalibrationOptions o;
  o.samples = samples;
  o.seqlen = seqlen;
  return latmix::sample_calibration(tokens, o);
}

// The reference's Hessian hook: gathers layer `layer`'s linear inputs (num_layers: lm_head's) and
// stops the pass at the next layer.
struct StopPass {};
class ReferenceHessians : public latmix::CaptureHook {
 public:
  ReferenceHessians(int64_t layer, int64_t num_layers) : layer_(layer), last_(layer == num_layers) {}
  bool wants(CapturePoint point, int64_t layer) const override {
    if (layer == layer_ + 1) return true;
    if (layer != layer_) return false;
    return last_ ? point == CapturePoint::FinalNormOut
                 : point == CapturePoint::AttnIn || point == CapturePoint::OIn || point == CapturePoint::MlpIn ||
                       point == CapturePoint::DownIn;
  }
  at::Tensor on_capture(CapturePoint point, int64_t layer, const at::Tensor& x) override {
    if (layer != layer_) throw StopPass{};
    hessians.try_emplace(point, x.size(-1)).first->second.add(x);
    return {};
  }
  std::map<CapturePoint, latmix::HessianAccumulator> hessians;

 private:
  int64_t layer_;
  bool last_;
};

std::shared_ptr<ReferenceHessians> reference_hessians(Model& model, const latmix::CalibrationSet& calib, int64_t layer,
                                                      int64_t batch) {
  c10::InferenceMode guard;
  auto hook = std::make_shared<ReferenceHessians>(layer, model.config().num_layers);
  model.add_hook(hook);
  for (int64_t first = 0; first < calib.size(); first += batch) {
    try {
      model.hidden_states(calib.batch(first, std::min(batch, calib.size() - first), model.device()));
    } catch (const StopPass&) {
    }
  }
  model.remove_hook(hook);
  return hook;
}

struct LinearSlot {
  const char* name;
  at::Tensor latmix::LayerWeights::*member;
  CapturePoint input;
};
const LinearSlot kSlots[] = {
    {"q", &latmix::LayerWeights::q, CapturePoint::AttnIn},       {"k", &latmix::LayerWeights::k, CapturePoint::AttnIn},
    {"v", &latmix::LayerWeights::v, CapturePoint::AttnIn},       {"o", &latmix::LayerWeights::o, CapturePoint::OIn},
    {"gate", &latmix::LayerWeights::gate, CapturePoint::MlpIn},  {"up", &latmix::LayerWeights::up, CapturePoint::MlpIn},
    {"down", &latmix::LayerWeights::down, CapturePoint::DownIn},
};

Model reference_quantize(const Model& fp, const latmix::QuantSpec& spec, const latmix::CalibrationSet& calib) {
  Model model = fp;
  const int64_t layers = model.config().num_layers;
  for (int64_t l = 0; l < layers && spec.weights; ++l) {
    if (!spec.covers_layer(l, layers)) continue;
    const auto hook = reference_hessians(model, calib, l, spec.gptq.batch_size);
    latmix::LayerWeights& lw = model.weights().layers[static_cast<size_t>(l)];
    for (const LinearSlot& s : kSlots) {
      lw.*s.member =
          latmix::gptq_quantize_weight(lw.*s.member, hook->hessians.at(s.input).hessian(), *spec.weights, spec.gptq)
              .weight;
    }
  }
  if (spec.lm_head) {
    const auto hook = reference_hessians(model, calib, layers, spec.gptq.batch_size);
    model.weights().lm_head =
        latmix::gptq_quantize_weight(model.weights().lm_head, hook->hessians.at(CapturePoint::FinalNormOut).hessian(),
                                     *spec.lm_head, spec.gptq)
            .weight;
  }
  return model;
}

bool same_bits(const at::Tensor& a, const at::Tensor& b) {
  return a.sizes() == b.sizes() && a.scalar_type() == b.scalar_type() &&
         at::equal(a.contiguous().view(at::kInt), b.contiguous().view(at::kInt));
}

void expect_same_weights(const Model& got, const Model& expected, const std::string& what) {
  for (size_t l = 0; l < got.weights().layers.size(); ++l) {
    for (const LinearSlot& s : kSlots) {
      EXPECT_TRUE(same_bits(got.weights().layers[l].*s.member, expected.weights().layers[l].*s.member))
          << what << ": layer " << l << " " << s.name;
    }
  }
  EXPECT_TRUE(same_bits(got.weights().lm_head, expected.weights().lm_head)) << what << ": lm_head";
}

// Mixes neighbouring channels of what it sees (a stand-in for an online transform of the FP model).
class MixMlpInput : public latmix::CaptureHook {
 public:
  bool wants(CapturePoint point, int64_t layer) const override { return point == CapturePoint::MlpIn && layer == 0; }
  at::Tensor on_capture(CapturePoint, int64_t, const at::Tensor& x) override { return x + 0.5 * x.roll(1, -1); }
};

TEST(GptqStream, QuantizeModelMatchesTheFullPassReference) {
  const latmix::CalibrationSet calib = random_calibration(6, 16);  // batches of 4 and 2
  for (const char* text : {"w=mxfp4,a=mxfp4,weights=gptq",
                           "w=mxint4,a=none,weights=gptq,layers=1,act_order=on,"
                           "gptq_block=48,lm_head=mxfp4",
                           "w=mxfp6,a=none,weights=gptq,gptq_scales=static,layers=0,lm_head=mxint8"}) {
    const latmix::QuantSpec spec = latmix::parse_quant_spec(text);
    const latmix::QuantizedModel q = latmix::quantize_model(tiny(), spec, &calib);
    expect_same_weights(q.model, reference_quantize(tiny(), spec, calib), text);
  }
}

TEST(GptqStream, HooksOfTheFpModelActOnTheStreamAsOnAFullPass) {
  const latmix::CalibrationSet calib = random_calibration(5, 12);
  Model fp = tiny();
  fp.add_hook(std::make_shared<MixMlpInput>());
  latmix::QuantSpec spec = latmix::parse_quant_spec("w=mxfp4,a=none,weights=gptq");
  spec.gptq.batch_size = 2;
  const latmix::QuantizedModel q = latmix::quantize_model(fp, spec, &calib);
  expect_same_weights(q.model, reference_quantize(fp, spec, calib), "with a hook");
  // The hook changed what GPTQ saw: without it the weights differ.
  const latmix::QuantizedModel plain = latmix::quantize_model(tiny(), spec, &calib);
  EXPECT_FALSE(same_bits(plain.model.weights().layers[0].gate, q.model.weights().layers[0].gate));
}

// The export of a model on a GPU moves each quantized layer to the host once the stream has
// passed it (QuantizeOptions::layers_to_host): the same weights, bit for bit, now on the host.
TEST(GptqStream, LayersToHostOnCudaEqualTheDeviceResult) {
  if (!at::hasCUDA()) GTEST_SKIP() << "no CUDA device (layers_to_host only acts on a GPU model)";
  const latmix::CalibrationSet calib = random_calibration(6, 16);
  const Model fp = tiny().to(at::Device(at::kCUDA), at::kFloat);
  for (const char* text : {"w=mxfp4,a=none,weights=gptq", "w=mxfp4,a=none,weights=gptq,layers=1", "w=mxfp4,a=none"}) {
    const latmix::QuantSpec spec = latmix::parse_quant_spec(text);
    const latmix::QuantizedModel on_device = latmix::quantize_model(fp, spec, &calib);
    latmix::QuantizeOptions memory;
    memory.layers_to_host = true;
    const latmix::QuantizedModel hosted = latmix::quantize_model(fp, spec, &calib, {}, memory);
    for (size_t l = 0; l < hosted.model.weights().layers.size(); ++l) {
      const bool covered = spec.covers_layer(static_cast<int64_t>(l), fp.config().num_layers);
      for (const LinearSlot& s : kSlots) {
        const at::Tensor& w = hosted.model.weights().layers[l].*s.member;
        EXPECT_EQ(w.is_cpu(), covered) << text << ": layer " << l << " " << s.name;
        EXPECT_TRUE(same_bits(w.cpu(), (on_device.model.weights().layers[l].*s.member).cpu()))
            << text << ": layer " << l << " " << s.name;
      }
    }
  }
}

}  // namespace
