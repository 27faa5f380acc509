// Learning throughput: steps of `latmix` (end-to-end and layer-wise) on a model with random
// weights of a given shape, default Llama-3.2-1B's (hidden 2048, 16 layers, 32 heads, 8 KV heads,
// intermediate 8192, vocab 128256, tied). Prints step time, tokens/s and, on CUDA, the peak
// memory the caching allocator reported through the driver (nvidia-smi is sampled by the caller;
// see docs/benchmarks.md for the command).
//
// Usage: bench_learn DEVICE [steps] [batch] [seqlen] [mode e2e|layerwise|both] [layers]
#include <c10/core/InferenceMode.h>
#include <ATen/ATen.h>

#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <string>

#include "latmix/learn.h"

using namespace latmix;

namespace {

ModelConfig llama_1b_shape(int64_t layers) {
  ModelConfig c;
  c.architecture_name = "LlamaForCausalLM";
  c.vocab_size = 128256;
  c.hidden_size = 2048;
  c.intermediate_size = 8192;
  c.num_layers = layers;
  c.num_heads = 32;
  c.num_kv_heads = 8;
  c.head_dim = 64;
  c.max_position = 131072;
  c.rms_norm_eps = 1e-5;
  c.rope.theta = 500000.0;
  c.tie_word_embeddings = true;
  return c;
}

Model random_model(const ModelConfig& c, at::Device device) {
  at::manual_seed(0);
  auto opts = at::TensorOptions(at::kFloat).device(device);
  auto w = [&](int64_t out, int64_t in) { return at::randn({out, in}, opts) * (1.0 / std::sqrt(static_cast<double>(in))); };
  ModelWeights mw;
  mw.embed = at::randn({c.vocab_size, c.hidden_size}, opts) * 0.02;
  mw.lm_head = mw.embed;
  mw.final_norm = at::ones({c.hidden_size}, opts);
  for (int64_t l = 0; l < c.num_layers; ++l) {
    LayerWeights lw;
    lw.attn_norm = at::ones({c.hidden_size}, opts);
    lw.mlp_norm = at::ones({c.hidden_size}, opts);
    lw.q = w(c.q_size(), c.hidden_size);
    lw.k = w(c.kv_size(), c.hidden_size);
    lw.v = w(c.kv_size(), c.hidden_size);
    lw.o = w(c.hidden_size, c.q_size());
    lw.gate = w(c.intermediate_size, c.hidden_size);
    lw.up = w(c.intermediate_size, c.hidden_size);
    lw.down = w(c.hidden_size, c.intermediate_size);
    mw.layers.push_back(lw);
  }
  return Model(c, std::move(mw));
}

CalibrationSet random_calibration(int64_t samples, int64_t seqlen, int64_t vocab) {
  std::vector<int32_t> ids(static_cast<size_t>(samples * seqlen + 1));
  uint64_t x = 88172645463325252ULL;
  for (auto& id : ids) {
    x ^= x << 13;
    x ^= x >> 7;
    x ^= x << 17;
    id = static_cast<int32_t>(x % static_cast<uint64_t>(vocab));
  }
  CalibrationOptions o;
  o.samples = samples;
  o.seqlen = seqlen;
  return sample_calibration(ids, o);
}

void run(const Model& model, const CalibrationSet& calib, LearnMode mode, int64_t steps, int64_t batch) {
  LearnSettings s = method_defaults("latmix", parse_quant_spec("mxfp4"), model.device());
  s.mode = mode;
  s.loss = mode == LearnMode::LayerWise ? LearnLoss::LayerMse : LearnLoss::Kl;
  s.steps = steps;
  s.batch = batch;
  s.quant.method = WeightMethod::Rtn;
  std::vector<double> times;
  auto last = std::chrono::steady_clock::now();
  LearnControl control;
  control.on_step = [&](const LearnEvent&) {
    if (model.device().is_cuda()) at::zeros({1}, at::TensorOptions().device(model.device())).cpu();  // sync
    auto now = std::chrono::steady_clock::now();
    times.push_back(std::chrono::duration<double>(now - last).count());
    last = now;
  };
  MethodResult r = obtain_plan(model, &calib, s, control);
  // The first step of each layer (and the first overall) includes warm-up: report the median.
  std::vector<double> sorted = times;
  std::sort(sorted.begin(), sorted.end());
  const double median = sorted[sorted.size() / 2];
  const double tokens = static_cast<double>(batch * calib.seqlen());
  std::printf("%-9s steps %4zu  batch %lld x %lld tokens  median step %.3f s  %.0f tokens/s  total %.1f s\n",
              to_string(mode).c_str(), times.size(), static_cast<long long>(batch),
              static_cast<long long>(calib.seqlen()), median, tokens / median, r.seconds);
  std::fflush(stdout);
}

}  // namespace

int main(int argc, char** argv) {
  const std::string device_name = argc > 1 ? argv[1] : "cpu";
  const int64_t steps = argc > 2 ? std::atoll(argv[2]) : 10;
  const int64_t batch = argc > 3 ? std::atoll(argv[3]) : 1;
  const int64_t seqlen = argc > 4 ? std::atoll(argv[4]) : 2048;
  const std::string mode = argc > 5 ? argv[5] : "both";
  const int64_t layers = argc > 6 ? std::atoll(argv[6]) : 16;
  const at::Device device = parse_device(device_name);
  const ModelConfig c = llama_1b_shape(layers);
  std::printf("model: Llama-3.2-1B shape with random weights (hidden %lld, %lld layers, %lld heads, %lld kv heads, "
              "intermediate %lld, vocab %lld, tied), fp32, %s\n",
              static_cast<long long>(c.hidden_size), static_cast<long long>(c.num_layers),
              static_cast<long long>(c.num_heads), static_cast<long long>(c.num_kv_heads),
              static_cast<long long>(c.intermediate_size), static_cast<long long>(c.vocab_size), device_name.c_str());
  Model model = random_model(c, device);
  const CalibrationSet calib = random_calibration(std::max<int64_t>(batch * 2, 8), seqlen, c.vocab_size);
  if (mode == "e2e" || mode == "both") run(model, calib, LearnMode::EndToEnd, steps, batch);
  if (mode == "layerwise" || mode == "both") run(model, calib, LearnMode::LayerWise, std::max<int64_t>(2, steps / 4), batch);
  return 0;
}
