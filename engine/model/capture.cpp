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

at::Tensor capture_activation(const Model& model, const at::Tensor& ids, CapturePoint point, int64_t layer) {
  const int64_t last = point == CapturePoint::FinalNormOut ? model.config().num_layers : model.config().num_layers - 1;
  if (layer < 0 || layer > last) {
    throw UsageError("layer " + std::to_string(layer) + " out of range for " + capture_point_name(point) +
                     " (0.." + std::to_string(last) + ")");
  }
  c10::InferenceMode guard;
  Model probe = model;  // shares the weights; hooks are per copy
  auto hook = std::make_shared<GrabHook>(point, layer);
  probe.add_hook(hook);
  probe.hidden_states(ids.dim() == 1 ? ids.unsqueeze(0) : ids);
  return ids.dim() == 1 ? hook->grabbed.squeeze(0) : hook->grabbed;
}

}  // namespace latmix
