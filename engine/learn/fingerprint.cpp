// Fingerprints of a learning run: the model and settings (learn.h) and the calibration token ids
// (learn_internal.h), checked when a checkpoint is resumed.
#include <ATen/ATen.h>

#include <nlohmann/json.hpp>

#include <sstream>

#include "learn/learn_internal.h"

namespace latmix {

std::string calibration_hash(const CalibrationSet& calib) {
  uint64_t h = 1469598103934665603ULL;
  for (const auto& seq : calib.sequences) {
    for (const auto id : seq) {
      const auto v = static_cast<uint64_t>(static_cast<int64_t>(id));
      for (int b = 0; b < 8; ++b) {
        h ^= (v >> (8 * b)) & 0xff;
        h *= 1099511628211ULL;
      }
    }
    h ^= 0xff;  // sequence boundary
    h *= 1099511628211ULL;
  }
  std::ostringstream o;
  o << std::hex << h;
  return o.str();
}

std::string learn_fingerprint(const Model& model, const LearnSettings& settings) {
  // FNV-1a 64 over the config, every weight's shape and bytes, and the settings.
  uint64_t h = 1469598103934665603ULL;
  auto mix = [&](const void* data, size_t n) {
    const auto* p = static_cast<const unsigned char*>(data);
    for (size_t i = 0; i < n; ++i) {
      h ^= p[i];
      h *= 1099511628211ULL;
    }
  };
  auto mix_str = [&](const std::string& s) { mix(s.data(), s.size()); };
  auto mix_tensor = [&](const at::Tensor& t) {
    if (!t.defined()) {
      mix_str("-");
      return;
    }
    at::Tensor c = t.detach().to(at::kCPU, at::kFloat).contiguous();
    for (int64_t d : c.sizes()) mix(&d, sizeof d);
    mix(c.data_ptr(), static_cast<size_t>(c.numel()) * sizeof(float));
  };
  const ModelConfig& c = model.config();
  for (int64_t v : {c.hidden_size, c.intermediate_size, c.num_layers, c.num_heads, c.num_kv_heads, c.head_dim,
                    c.vocab_size}) {
    mix(&v, sizeof v);
  }
  const ModelWeights& w = model.weights();
  mix_tensor(w.embed);
  mix_tensor(w.final_norm);
  mix_tensor(w.lm_head);
  for (const auto& l : w.layers) {
    for (const at::Tensor* t : {&l.attn_norm, &l.q, &l.k, &l.v, &l.o, &l.mlp_norm, &l.gate, &l.up, &l.down}) {
      mix_tensor(*t);
    }
  }
  mix_str(settings.to_json().dump());
  std::ostringstream s;
  s << std::hex;
  s.width(16);
  s.fill('0');
  s << h;
  return s.str();
}

}  // namespace latmix
