// config.json of an export (with compressed-tensors' quantization_config) and the copied side files.
#include <filesystem>

#include "export/export_internal.h"
#include "latmix/error.h"
#include "latmix/files.h"
#include "latmix/json.h"

namespace latmix::export_detail {

namespace fs = std::filesystem;
using ojson = nlohmann::ordered_json;

namespace {

fs::path source_folder(const std::string& source_path) {
  std::error_code ec;
  return fs::is_directory(source_path, ec) ? fs::path(source_path) : fs::path(source_path).parent_path();
}

// A config.json for a llama2.c checkpoint (always the Llama architecture).
ojson config_from_model(const ModelConfig& c) {
  ojson j;
  j["architectures"] = {"LlamaForCausalLM"};
  j["model_type"] = "llama";
  j["hidden_size"] = c.hidden_size;
  j["intermediate_size"] = c.intermediate_size;
  j["num_hidden_layers"] = c.num_layers;
  j["num_attention_heads"] = c.num_heads;
  j["num_key_value_heads"] = c.num_kv_heads;
  j["head_dim"] = c.head_dim;
  j["max_position_embeddings"] = c.max_position;
  j["rms_norm_eps"] = c.rms_norm_eps;
  j["rope_theta"] = c.rope.theta;
  j["hidden_act"] = "silu";
  j["vocab_size"] = c.vocab_size;
  j["tie_word_embeddings"] = c.tie_word_embeddings;
  j["attention_bias"] = false;
  j["mlp_bias"] = false;
  if (c.bos_token_id) j["bos_token_id"] = *c.bos_token_id;
  if (c.eos_token_id) j["eos_token_id"] = *c.eos_token_id;
  return j;
}

// QuantizationArgs as compressed-tensors serializes them (its MXFP4 preset, quant_scheme.py).
ojson mxfp4_args(bool dynamic) {
  ojson a;
  a["actorder"] = nullptr;
  a["block_structure"] = nullptr;
  a["dynamic"] = dynamic;
  a["group_size"] = 32;
  a["num_bits"] = 4;
  a["observer"] = dynamic ? ojson(nullptr) : ojson("minmax");
  a["observer_kwargs"] = ojson::object();
  a["scale_dtype"] = "torch.uint8";
  a["strategy"] = "group";
  a["symmetric"] = true;
  a["type"] = "float";
  a["zp_dtype"] = nullptr;
  return a;
}

ojson transform_config(const ExportModel& m) {
  const std::vector<CtTransformGroup> groups = ct_transform_groups(m.plan, m.fp.config());
  if (groups.empty()) return ojson::object();
  ojson config_groups = ojson::object();
  for (const CtTransformGroup& group : groups) {
    ojson args;
    args["targets"] = group.modules;
    args["location"] = "input";
    args["inverse"] = false;
    args["ignore"] = ojson::array();
    ojson g;
    // Loaded with the matrices stored in the checkpoint ("<module>.<group>_input.weight"),
    // applied as x W / sqrt(n) by compressed-tensors' Hadamard transforms and vLLM's dense path
    // (type other than "hadamard", which vLLM would replace by its own Sylvester transform).
    // One group per distinct matrix: compressed-tensors keeps one matrix per size in a group.
    g["type"] = "random-hadamard";
    g["apply"] = ojson::array({args});
    g["randomize"] = false;
    g["requires_grad"] = false;
    g["head_dim"] = group.head_dim > 0 ? ojson(group.head_dim) : ojson(nullptr);
    config_groups[group.name] = g;
  }
  ojson t;
  t["config_groups"] = config_groups;
  return t;
}

ojson quantization_config(const ExportModel& m) {
  ojson group;
  group["format"] = "mxfp4-pack-quantized";
  group["input_activations"] = m.spec.activations ? mxfp4_args(true) : ojson(nullptr);
  group["output_activations"] = nullptr;
  group["targets"] = {"Linear"};
  group["weights"] = mxfp4_args(false);
  ojson ignore = ojson::array();
  if (!m.spec.lm_head) ignore.push_back("lm_head");
  const int64_t layers = m.fp.config().num_layers;
  for (int64_t l = 0; l < layers; ++l) {
    if (m.spec.covers_layer(l, layers)) continue;
    for (const char* name : {"q", "k", "v", "o", "gate", "up", "down"}) ignore.push_back(hf_linear_name(l, name));
  }
  ojson q;
  q["config_groups"] = {{"group_0", group}};
  q["format"] = "mxfp4-pack-quantized";
  q["global_compression_ratio"] = nullptr;
  q["ignore"] = ignore;
  q["kv_cache_scheme"] = nullptr;
  q["quant_method"] = "compressed-tensors";
  q["quantization_status"] = "compressed";
  q["sparsity_config"] = ojson::object();
  q["transform_config"] = transform_config(m);
  return q;
}

}  // namespace

ojson export_config(const ExportModel& m, const std::string& source_path, ExportKind kind) {
  const fs::path dir = source_folder(source_path);
  std::error_code ec;
  ojson j;
  if (fs::is_directory(source_path, ec)) {
    const std::string path = (dir / "config.json").string();
    j = parse_ordered_json_file(path, read_text_file(path));
  } else {
    j = config_from_model(m.fp.config());
  }
  // transformers 5 writes "dtype", 4 wrote "torch_dtype": keep whichever the source has.
  if (j.contains("dtype"))
    j["dtype"] = "bfloat16";
  else
    j["torch_dtype"] = "bfloat16";
  if (m.untied_lm_head) j["tie_word_embeddings"] = false;
  if (m.attention_bias) j["attention_bias"] = true;
  if (m.mlp_bias) j["mlp_bias"] = true;
  if (kind == ExportKind::CompressedTensors)
    j["quantization_config"] = quantization_config(m);
  else
    j.erase("quantization_config");
  return j;
}

std::vector<std::string> copy_side_files(const std::string& source_path, const std::string& out_dir) {
  std::vector<std::string> notes;
  std::error_code ec;
  const fs::path dir = source_folder(source_path);
  bool tokenizer = false;
  for (const char* f : {"generation_config.json", "tokenizer.json", "tokenizer.model", "tokenizer_config.json",
                        "special_tokens_map.json", "added_tokens.json", "vocab.json", "merges.txt"}) {
    if (!fs::is_regular_file(dir / f, ec)) continue;
    copy_file((dir / f).string(), (fs::path(out_dir) / f).string());
    tokenizer = tokenizer || std::string(f).rfind("tokenizer.", 0) == 0;
  }
  if (!fs::is_directory(source_path, ec) && !tokenizer) {
    // llama2.c: a SentencePiece model beside the checkpoint (tok512.model) is what HF folders read.
    std::vector<fs::path> models;
    for (const auto& e : fs::directory_iterator(dir, ec)) {
      if (e.is_regular_file() && e.path().extension() == ".model") models.push_back(e.path());
    }
    if (models.size() == 1) {
      copy_file(models[0].string(), (fs::path(out_dir) / "tokenizer.model").string());
      notes.push_back("tokenizer.model copied from " + models[0].string());
      tokenizer = true;
    }
  }
  if (!tokenizer) notes.push_back("no tokenizer file found beside the source model: none copied");
  return notes;
}

}  // namespace latmix::export_detail
