// Fingerprints of a learning run: the model and settings (learn.h) and the calibration token ids
// (learn_internal.h), checked when a checkpoint is resumed.
#include <ATen/ATen.h>

#include <nlohmann/json.hpp>

#include <algorithm>
#include <cstring>
#include <initializer_list>
#include <sstream>

#include "latmix/distributed.h"
#include "latmix/error.h"
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

std::string learn_fingerprint(const Model& model, const LearnSettings& settings, dist::Group* split) {
  // FNV-1a 64 over the config, a digest of each part (the embedding, the final norm, lm_head, each
  // layer: every weight's shape and bytes) and the settings. In a layer-split run each process
  // digests the parts it holds and the digests are added up over the group (one process per part).
  constexpr uint64_t kBasis = 1469598103934665603ULL;
  auto mix = [](uint64_t& h, const void* data, size_t n) {
    const auto* p = static_cast<const unsigned char*>(data);
    for (size_t i = 0; i < n; ++i) {
      h ^= p[i];
      h *= 1099511628211ULL;
    }
  };
  auto digest = [&mix](std::initializer_list<const at::Tensor*> tensors) {
    uint64_t h = kBasis;
    for (const at::Tensor* t : tensors) {
      if (!t->defined()) {
        mix(h, "-", 1);
        continue;
      }
      at::Tensor c = t->detach().to(at::kCPU, at::kFloat).contiguous();
      for (int64_t d : c.sizes()) mix(h, &d, sizeof d);
      mix(h, c.data_ptr(), static_cast<size_t>(c.numel()) * sizeof(float));
    }
    return h;
  };
  const ModelConfig& c = model.config();
  const ModelWeights& w = model.weights();
  const int64_t layers = c.num_layers;
  const int world = split != nullptr ? split->world() : 1, rank = split != nullptr ? split->rank() : 0;
  at::Tensor parts = at::zeros({3 + layers}, at::kLong);
  auto* part = parts.data_ptr<int64_t>();
  auto put = [part](int64_t i, uint64_t h) { std::memcpy(part + i, &h, sizeof h); };
  if (rank == 0) put(0, digest({&w.embed}));
  if (rank == world - 1) {
    put(1, digest({&w.final_norm}));
    put(2, digest({&w.lm_head}));
  }
  const auto [first, last] = layer_share_range(layers, rank, world);
  for (int64_t l = first; l < last; ++l) {
    const LayerWeights& lw = w.layers[static_cast<size_t>(l)];
    put(3 + l, digest({&lw.attn_norm, &lw.q, &lw.k, &lw.v, &lw.o, &lw.mlp_norm, &lw.gate, &lw.up, &lw.down}));
  }
  if (split != nullptr && world > 1) {
    std::vector<at::Tensor> sum = {parts};
    split->sum(sum);
    parts = sum.front();
  }
  uint64_t h = kBasis;
  for (int64_t v : {c.hidden_size, c.intermediate_size, c.num_layers, c.num_heads, c.num_kv_heads, c.head_dim,
                    c.vocab_size}) {
    mix(h, &v, sizeof v);
  }
  mix(h, parts.data_ptr(), static_cast<size_t>(parts.numel()) * sizeof(int64_t));
  const std::string text = settings.to_json().dump();
  mix(h, text.data(), text.size());
  std::ostringstream s;
  s << std::hex;
  s.width(16);
  s.fill('0');
  s << h;
  return s.str();
}

std::pair<int64_t, int64_t> layer_share_range(int64_t layers, int rank, int world) {
  if (world < 1 || rank < 0 || rank >= world)
    throw Error("layer share: rank " + std::to_string(rank) + " of " + std::to_string(world));
  const int64_t base = layers / world, extra = layers % world;
  const int64_t first = rank * base + std::min<int64_t>(rank, extra);
  return {first, first + base + (rank < extra ? 1 : 0)};
}

}  // namespace latmix
