// make_random_model: writes a random-weight Hugging Face Llama folder of a given shape, streaming
// (one tensor in memory at a time) and atomically (a temp folder beside OUT, renamed into place
// when complete), so that the big-model paths (issue 15) can be measured without a hub.
//
//   make_random_model OUT --shape 1b|8b|22m|tiny [--dtype bf16|fp16|fp32] [--seed N]
//                     [--shard-size MB] [--tokenizer FILE] [--layers N] [--vocab N]
//
// Shapes: 1b and 8b are Llama-3.2-1B's and Llama-3.1-8B's (as ../shared/bench/make_model.py
// writes them with transformers: vocab 128256, llama3 RoPE, 1B tied, 8B untied); tiny is a
// 2-layer model for tests; 22m is ../shared/data's gutenberg-llama-22M's (the figures issue 19 asks
// of it, on a machine where the trained model cannot be copied). Weights are N(0, 0.02)
// (transformers' initializer_range; drawn from a pool, see RandomPool), norm gains 1.
// --tokenizer copies a tokenizer.json beside the weights; without --vocab the vocabulary is made at
// least as large as the tokenizer's.
#include <ATen/ATen.h>
#include <unistd.h>

#include <algorithm>
#include <cstdio>
#include <memory>
#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>
#include <stdexcept>
#include <string>
#include <vector>

#include "latmix/files.h"
#include "latmix/tensor_io.h"
#include "latmix/tokenizer.h"

namespace fs = std::filesystem;
using nlohmann::ordered_json;

namespace {

struct Shape {
  int64_t hidden, intermediate, layers, heads, kv_heads, head_dim, vocab;
  bool tied;
  double rope_factor;
};

Shape shape_named(const std::string& name) {
  if (name == "1b") return {2048, 8192, 16, 32, 8, 64, 128256, true, 32.0};
  if (name == "8b") return {4096, 14336, 32, 32, 8, 128, 128256, false, 8.0};
  if (name == "22m") return {512, 1408, 6, 8, 4, 64, 8192, true, 1.0};
  if (name == "tiny") return {64, 160, 2, 4, 2, 16, 4096, false, 8.0};
  throw std::runtime_error("--shape: expected 1b, 8b, 22m or tiny, found '" + name + "'");
}

ordered_json config_json(const Shape& s, const std::string& dtype) {
  return {{"architectures", {"LlamaForCausalLM"}},
          {"model_type", "llama"},
          {"hidden_size", s.hidden},
          {"intermediate_size", s.intermediate},
          {"num_hidden_layers", s.layers},
          {"num_attention_heads", s.heads},
          {"num_key_value_heads", s.kv_heads},
          {"head_dim", s.head_dim},
          {"vocab_size", s.vocab},
          {"max_position_embeddings", 131072},
          {"rms_norm_eps", 1e-5},
          {"rope_theta", 500000.0},
          {"rope_scaling",
           {{"rope_type", "llama3"},
            {"factor", s.rope_factor},
            {"low_freq_factor", 1.0},
            {"high_freq_factor", 4.0},
            {"original_max_position_embeddings", 8192}}},
          {"hidden_act", "silu"},
          {"attention_bias", false},
          {"mlp_bias", false},
          {"tie_word_embeddings", s.tied},
          // Llama 3's ids, or (a vocabulary cut short, as tiny's) the bundled model tokenizer's.
          {"bos_token_id", s.vocab > 128001 ? 128000 : 0},
          {"eos_token_id", s.vocab > 128001 ? 128001 : 1},
          {"torch_dtype", dtype}};
}

// Drawing 8 G normal samples takes longer than writing them on a small machine, so the values come
// from one pool of 2^24 N(0, 0.02) samples: each tensor is a run through the pool from a random
// offset (wrapping), at copy speed. The figures this folder is for depend on shapes, not values.
class RandomPool {
 public:
  explicit RandomPool(at::ScalarType type) : pool_((at::randn({int64_t{1} << 24}) * 0.02).to(type)) {}
  at::Tensor take(const std::vector<int64_t>& shape) const {
    at::Tensor out = at::empty(shape, pool_.options());
    at::Tensor flat = out.view({-1});
    const int64_t size = pool_.numel();
    int64_t from = at::randint(0, size, {1}, at::kLong).item<int64_t>();
    for (int64_t done = 0; done < flat.numel();) {
      const int64_t n = std::min(flat.numel() - done, size - from);
      flat.narrow(0, done, n).copy_(pool_.narrow(0, from, n));
      done += n;
      from = 0;
    }
    return out;
  }

 private:
  at::Tensor pool_;
};

// Every tensor in the order transformers' save_pretrained lists a Llama's (layer by layer).
std::vector<latmix::TensorSource> tensors(const Shape& s, latmix::DType dtype, at::ScalarType type) {
  std::vector<latmix::TensorSource> out;
  auto pool = std::make_shared<RandomPool>(type);
  auto randn = [&](const std::string& name, std::vector<int64_t> shape) {
    out.push_back({name, dtype, shape, [shape, pool] { return pool->take(shape); }});
  };
  auto ones = [&](const std::string& name, int64_t n) {
    out.push_back({name, dtype, {n}, [n, type] { return at::ones({n}, type); }});
  };
  const int64_t H = s.hidden, I = s.intermediate, Q = s.heads * s.head_dim, KV = s.kv_heads * s.head_dim;
  randn("model.embed_tokens.weight", {s.vocab, H});
  for (int64_t l = 0; l < s.layers; ++l) {
    const std::string p = "model.layers." + std::to_string(l) + ".";
    ones(p + "input_layernorm.weight", H);
    randn(p + "self_attn.q_proj.weight", {Q, H});
    randn(p + "self_attn.k_proj.weight", {KV, H});
    randn(p + "self_attn.v_proj.weight", {KV, H});
    randn(p + "self_attn.o_proj.weight", {H, Q});
    ones(p + "post_attention_layernorm.weight", H);
    randn(p + "mlp.gate_proj.weight", {I, H});
    randn(p + "mlp.up_proj.weight", {I, H});
    randn(p + "mlp.down_proj.weight", {H, I});
  }
  ones("model.norm.weight", H);
  if (!s.tied) randn("lm_head.weight", {s.vocab, H});
  return out;
}

std::string arg_value(std::vector<std::string>& args, const std::string& name, const std::string& fallback) {
  for (size_t i = 0; i + 1 < args.size(); ++i) {
    if (args[i] == "--" + name) {
      std::string v = args[i + 1];
      args.erase(args.begin() + static_cast<long>(i), args.begin() + static_cast<long>(i) + 2);
      return v;
    }
  }
  return fallback;
}

int run(std::vector<std::string> args) {
  const std::string shape_name = arg_value(args, "shape", "");
  const std::string dtype_name = arg_value(args, "dtype", "bf16");
  const int64_t seed = std::stoll(arg_value(args, "seed", "0"));
  const uint64_t shard_mb = std::stoull(arg_value(args, "shard-size", "5000"));
  const std::string tokenizer = arg_value(args, "tokenizer", "");
  const std::string layers = arg_value(args, "layers", "");
  const std::string vocab = arg_value(args, "vocab", "");
  if (args.size() != 1 || shape_name.empty()) {
    std::fprintf(stderr,
                 "usage: make_random_model OUT --shape 1b|8b|22m|tiny [--dtype bf16|fp16|fp32] [--seed N] "
                 "[--shard-size MB] [--tokenizer FILE] [--layers N] [--vocab N]\n");
    return 2;
  }
  Shape s = shape_named(shape_name);
  if (!layers.empty()) s.layers = std::stoll(layers);
  if (!vocab.empty()) {
    s.vocab = std::stoll(vocab);
  } else if (!tokenizer.empty()) {
    // The model's table covers every id the tokenizer gives (the tiny shape's 4096 is smaller than
    // the bundled tokenizer's 8192).
    s.vocab = std::max<int64_t>(s.vocab, latmix::load_tokenizer(tokenizer)->vocab_size());
  }
  latmix::DType dtype = latmix::DType::BF16;
  at::ScalarType type = at::kBFloat16;
  std::string hf_dtype = "bfloat16";
  if (dtype_name == "fp16") {
    dtype = latmix::DType::F16, type = at::kHalf, hf_dtype = "float16";
  } else if (dtype_name == "fp32") {
    dtype = latmix::DType::F32, type = at::kFloat, hf_dtype = "float32";
  } else if (dtype_name != "bf16") {
    throw std::runtime_error("--dtype: expected bf16, fp16 or fp32");
  }
  const fs::path out = fs::absolute(args[0]);
  if (fs::exists(out)) throw std::runtime_error(out.string() + ": already exists (remove it first)");
  const fs::path temp = out.parent_path() / ("." + out.filename().string() + ".tmp-" + std::to_string(::getpid()));
  fs::create_directories(temp);
  try {
    at::manual_seed(static_cast<uint64_t>(seed));
    latmix::JobControl job;
    int last = -1;
    job.progress = [&last](std::string_view, int64_t done, int64_t total) {
      const int pct = total > 0 ? static_cast<int>(100 * done / total) : 0;
      if (pct / 10 != last) std::fprintf(stderr, "write: %d%%\n", pct), last = pct / 10;
    };
    latmix::write_safetensors_sharded(temp.string(), tensors(s, dtype, type), shard_mb * 1000000ull,
                                      {{"format", "pt"}}, job);
    latmix::write_file_atomic((temp / "config.json").string(), config_json(s, hf_dtype).dump(2) + "\n");
    if (!tokenizer.empty()) fs::copy_file(tokenizer, temp / "tokenizer.json");
    latmix::fsync_folder(temp.string());
    if (latmix::rename_no_replace(temp.string(), out.string()) != 0) {
      throw std::runtime_error(out.string() + ": could not rename the finished folder into place");
    }
    latmix::fsync_folder(out.parent_path().string());
  } catch (...) {
    std::error_code ec;
    fs::remove_all(temp, ec);
    throw;
  }
  std::printf("wrote %s (%s, %lld layers, %s)\n", out.string().c_str(), shape_name.c_str(),
              static_cast<long long>(s.layers), dtype_name.c_str());
  return 0;
}

}  // namespace

int main(int argc, char** argv) {
  try {
    return run(std::vector<std::string>(argv + 1, argv + argc));
  } catch (const std::exception& e) {
    std::fprintf(stderr, "make_random_model: %s\n", e.what());
    return 1;
  }
}
