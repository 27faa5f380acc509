#include <c10/core/InferenceMode.h>

#include "latmix/error.h"
#include "latmix/model.h"

namespace latmix {

namespace {

class GrabHook : public CaptureHook {
 public:
  GrabHook(CapturePoint point, int64_t layer) : point_(point), layer_(layer) {}
  bool wants(CapturePoint point, int64_t layer) const override { return point == point_ && layer == layer_; }
  at::Tensor on_capture(CapturePoint, int64_t, const at::Tensor& x) override {
    grabbed = x.to(at::kCPU, at::kFloat).clone();
    return {};
  }
  at::Tensor grabbed;

 private:
  CapturePoint point_;
  int64_t layer_;
};

}  // namespace

at::Tensor capture_activation(const Model& model, const at::Tensor& ids, CapturePoint point, int64_t layer,
                              const JobControl& control) {
  const int64_t last = point == CapturePoint::FinalNormOut ? model.config().num_layers : model.config().num_layers - 1;
  if (layer < 0 || layer > last) {
    throw UsageError("layer " + std::to_string(layer) + " out of range for " + capture_point_name(point) +
                     " (0.." + std::to_string(last) + ")");
  }
  c10::InferenceMode guard;
  Model probe = model;  // shares the weights; hooks are per copy
  auto hook = std::make_shared<GrabHook>(point, layer);
  probe.add_hook(hook);
  const at::Tensor batch = (ids.dim() == 1 ? ids.unsqueeze(0) : ids).to(model.device(), at::kLong);
  if (point == CapturePoint::FinalNormOut) {
    probe.add_hook(std::make_shared<LayerProgressHook>("layers", model.config().num_layers, 1, control));
    probe.hidden_states(batch);
  } else {
    // The layers after the captured one cannot change it: the model is causal in its layers.
    at::Tensor h = probe.embed(batch);
    for (int64_t l = 0; l <= layer; ++l) {
      control.cancel.check();
      h = probe.forward_layer(l, h);
      control.report("layers", l + 1, layer + 1);
    }
  }
  return ids.dim() == 1 ? hook->grabbed.squeeze(0) : hook->grabbed;
}

}  // namespace latmix
