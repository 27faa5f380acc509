// The README.md of an export folder and the plan description of its manifest.
#include <sstream>

#include "export/export_internal.h"

namespace latmix::export_detail {

using nlohmann::json;

namespace {

json kinds_of(const std::vector<TransformPtr>& list) {
  json out = json::array();
  for (const auto& t : list) out.push_back(t ? json(t->kind()) : json(nullptr));
  return out;
}

std::string str(const json& j, const char* key, const std::string& fallback = "") {
  return j.contains(key) && j[key].is_string() ? j[key].get<std::string>() : fallback;
}

void what_is_in(std::ostringstream& s, const std::string& kind, const json& m) {
  if (kind == "folded-bf16") {
    s << "A plain Hugging Face folder of the original architecture, every floating tensor bf16, that any\n"
         "runtime loads as it would the source model. Every transform of the plan is folded into the weights.\n"
         "A linear layer that had an online transform A in front of it (a rotation of its input applied at run\n"
         "time) is stored with its effective weight in the original basis, Q(W A^-1) A, so the folder is exactly\n"
         "the weight-quantized model (weights on the MX grid in the transformed basis, W4A16-style).\n\n"
         "**Not in it:** activation quantization (a runtime matter: the spec's `a=` part was not applied to\n"
         "anything written here) and online transforms (folded into the effective weights above, so a runtime\n"
         "runs none).\n";
  } else if (kind == "compressed-tensors") {
    const bool acts = m["quantization"].value("activations", "none") != "none";
    s << "A Hugging Face folder in the compressed-tensors `mxfp4-pack-quantized` format. Every quantized\n"
         "linear layer has `weight_packed` (U8 [out, in/2]: two E2M1 codes per byte, element 2i in the low\n"
         "nibble) and `weight_scale` (U8 [out, in/32]: E8M0, value 2^(code - 127)); weight = e2m1(code) x\n"
         "2^(scale - 127). Embeddings, norms and layers left out (`ignore`) are bf16.\n"
         "`config.json` carries `quantization_config` with the scheme "
      << (acts ? "MXFP4 (weights, and activations quantized dynamically in groups of 32 at run time)"
               : "MXFP4A16 (weights only)")
      << ".\nOnline transforms that remain are declared in `quantization_config.transform_config`: one group per\n"
         "distinct matrix (layers whose transforms differ get groups of their own), each matrix stored in float32\n"
         "as `<module>.<group>_input.weight` = sqrt(n) A^T, applied to the input as x W / sqrt(n); a block-diagonal\n"
         "transform whose blocks are all equal is stored as its one block with the group's `head_dim`.\n\n"
      << compressed_tensors_runtime_note();
  } else if (kind == "gguf") {
    s << "`model.gguf`: a GGUF v3 file of llama.cpp's `llama` architecture. Every transform of the plan is\n"
         "folded into the weights (GGUF has no online transforms). Quantized linear layers are ggml MXFP4 blocks\n"
         "(32 values in 17 bytes: the OCP E8M0 scale byte, then 16 bytes holding element j in the low nibble and\n"
         "element j + 16 in the high nibble), encoded from latmix's own codes; norms are F32, the embedding and\n"
         "unquantized layers "
      << m["formats"].value("other_tensors", std::string("F32"))
      << ". q and k rows are permuted into llama.cpp's\n"
         "rotary layout; the tokenizer is the source's byte-level BPE with its merges.\n"
         "Run it: `llama-cli -m model.gguf`, or any runtime built on llama.cpp.\n\n"
      << gguf_runtime_note();
  } else {
    s << "The learned transforms alone: `transforms.safetensors` (every transform's tensors) and\n"
         "`transforms.json` (what each transform is and where it goes, and under `metadata` the fingerprint of\n"
         "the model they were learned on and the settings). Load them with\n"
         "`latmix export --model SOURCE --transforms DIR/transforms ...` to export in another format without\n"
         "learning again; a different or changed model is refused.\n";
  }
}

}  // namespace

json describe_plan(const TransformPlan& plan) {
  json j = {{"residual", plan.residual ? json(plan.residual->kind()) : json(nullptr)},
            {"value", kinds_of(plan.value)},
            {"down_online", kinds_of(plan.down_online)}};
  if (!plan.attn_online.empty()) j["attn_online"] = kinds_of(plan.attn_online);
  if (!plan.mlp_online.empty()) j["mlp_online"] = kinds_of(plan.mlp_online);
  return j;
}

std::string compressed_tensors_runtime_note() {
  return "What each runtime applies to this folder (read from their sources, 2026-11/12):\n"
         "- **vLLM** (`CompressedTensorsW4A16Mxfp4`, Marlin kernel, GPU compute capability >= 8.0; added by\n"
         "  vllm-project/vllm PR #31926, January 2026): the MXFP4 weights as stored, and the online transforms of\n"
         "  `transform_config` (compressed_tensors/transform/, one matrix per target; no tensor parallelism; linears\n"
         "  without a bias, which the export checks). **Activations are not quantized**: the W4A16 path ignores\n"
         "  `input_activations`, so a spec's `a=mxfp4` does nothing there. Issue #56770 (September 2026) reports\n"
         "  MXFP4A16 checkpoints dispatched to a W4A4 kernel on SM100+ GPUs.\n"
         "- **transformers** (5.17, through compressed-tensors): the MXFP4 weights, **not the online transforms**:\n"
         "  its CompressedTensorsConfig has no `transform_config` field and drops it, so a folder with transforms\n"
         "  loads as another model (gutenberg-llama-6M with a block-Hadamard plan: perplexity 95,327 instead of\n"
         "  341). For transformers, export with `--as folded-bf16` (the transforms folded into effective weights).\n"
         "- **compressed-tensors** itself: the weights (`mxfp4-pack-quantized` compressor, experimental since\n"
         "  llm-compressor 0.9.0; older releases cannot decompress it) and the transforms group by group (one\n"
         "  matrix per size in a group: the export gives layers with different matrices groups of their own).\n"
         "  With `input_activations` set it quantizes activations with its own E8M0 scale rule (EVEN: amax rounded\n"
         "  to the element's mantissa first), not latmix's (the spec's rule, FLOOR by default).\n"
         "- **latmix** evaluated `a=` with the spec's own rule in memory; none of the runtimes above reproduces that\n"
         "  exactly.\n";
}

std::string compressed_tensors_output_note(bool has_transforms, bool activations) {
  std::string s = "runtimes: vLLM applies the MXFP4 weights";
  s += has_transforms ? " and the online transforms" : "";
  s += activations ? ", activations unquantized (its W4A16 path ignores a=mxfp4)" : " (weight-only, as exported)";
  s += has_transforms ? "; transformers applies the weights but NOT the transforms (use --as folded-bf16 there)"
                      : "; transformers applies the weights";
  s += "; details in README.md";
  return s;
}

std::string export_readme(const json& m) {
  std::ostringstream s;
  const std::string kind = str(m, "kind");
  const json& source = m["source"];
  const json& method = m["method"];
  s << "# " << kind << " export of " << str(source, "path") << "\n\n";
  s << "Written by latmix " << str(m["tool"], "version") << " (commit " << str(m["tool"], "git_commit") << ") on "
    << str(m, "created_utc") << ".\n\n";
  s << "## How it was made\n\n";
  s << "- source model: `" << str(source, "path") << "` (fingerprint " << str(source, "fingerprint").substr(0, 16)
    << "..., SHA-256 of its files in manifest.json)\n";
  s << "- method: `" << str(method, "name") << "`, transforms: " << str(method, "transforms_source") << "\n";
  s << "- placements: `" << method["plan"].dump() << "`\n";
  s << "- quantization: `" << str(m["quantization"], "spec") << "`\n";
  s << "- every setting: `" << method["settings"].dump() << "`\n\n";
  s << "## What is in it\n\n";
  what_is_in(s, kind, m);
  const json& v = m["verification"];
  s << "\n## Verification\n\nChecked before the folder was moved into place:\n\n";
  for (const auto& c : v.value("checks", json::array())) {
    s << "- " << (c.value("ok", false) ? "ok" : "FAILED") << ": " << c.value("what", "") << ": "
      << c.value("detail", "") << "\n";
  }
  s << "\n`latmix verify PATH` (this folder, or the .zip that `latmix export --zip` makes of it) checks every file "
       "against the SHA-256 in manifest.json.\n";
  const auto notes = m.value("notes", json::array());
  if (!notes.empty()) {
    s << "\n## Notes\n\n";
    for (const auto& n : notes) s << "- " << n.get<std::string>() << "\n";
  }
  return s.str();
}

}  // namespace latmix::export_detail
