#pragma once
// Shared pieces of the export module (latmix/export.h): files and folders, the tensors of each
// format, the README and manifest texts.

#include <nlohmann/json.hpp>

#include <cstdint>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "latmix/export.h"
#include "latmix/files.h"
#include "latmix/gguf.h"
#include "latmix/tensor_io.h"

namespace latmix::export_detail {

// ---- files (export_files.cpp) ----------------------------------------------------------------

/// What an export's AtomicFolder (files.h) may replace when its target exists at commit: nothing
/// without `overwrite`; with it, an earlier export (a folder with a latmix manifest.json) or an
/// empty folder, never anything else (the errors name the target and say nothing was written).
AtomicFolder::ReplaceCheck replace_earlier_export(bool overwrite);

/// The checks before any work (see export.h): not the source, not an existing folder unless
/// `overwrite` and it is an earlier export, a parent folder that exists.
void check_target(const std::string& out, const std::string& source, bool overwrite);
/// Free bytes for an unprivileged user on the file system that holds `dir`.
uint64_t free_bytes(const std::string& dir);
/// \throws latmix::Error "DIR: not enough free space: the export needs about X, Y are free".
void check_space(const std::string& dir, uint64_t needed);
/// Copies a file (streaming) into the export folder.
void copy_file(const std::string& from, const std::string& to);
/// Writes a text file (inside the temp folder: the folder as a whole is what appears atomically).
void write_text(const std::string& path, const std::string& text);
/// Every regular file of `dir` (not recursive) but manifest.json, sorted, with size and SHA-256.
std::vector<ExportedFile> hash_folder(const std::string& dir, const JobControl& job);
/// Entries of `dir` an export never writes: folders, symbolic links, FIFOs, devices ("NAME: a
/// folder"), sorted. hash_folder() skips them; verification reports them.
std::vector<std::string> odd_entries(const std::string& dir);
/// "13.1 MB", "812 kB", "4.20 GB" (powers of 1000).
std::string format_bytes(uint64_t bytes);
/// The parent folder of a path ("." when none).
std::string parent_of(const std::string& path);

// ---- tensors (export_tensors.cpp) ------------------------------------------------------------

/// What a streaming export saw of each quantized tensor it wrote, for the verification: the
/// produced bytes' digest (compared with the file read back), and whether the produced encoding
/// held the fake-quantized weight exactly (checked right when it was produced).
struct StreamedWeights {
  std::map<std::string, uint64_t> digests;  // tensor name -> bytes_digest of what was written
  std::string first_mismatch;               // the first tensor whose encoding did not hold its weight
  int64_t tensors = 0, values = 0;
};

/// A 64-bit digest of a contiguous tensor's bytes (not cryptographic: it catches a write or read
/// that changed data, as the SHA-256 of the manifest does for files).
uint64_t bytes_digest(const at::Tensor& t);

/// The folded, quantized model an export writes, and what it needs to write it.
/// Streaming (a mapped model, no transforms): `quantized` is the FP model itself and each
/// quantized weight comes from `stream` when its tensor is produced; `streamed` records them.
struct ExportModel {
  Model fp;         // the model as given (shares its tensors)
  Model quantized;  // plan folded, weights quantized; online hooks installed, no activation hook
  TransformPlan plan;
  QuantSpec spec;
  QuantReport report;
  std::vector<std::string> notes;
  bool untied_lm_head = false;  // the export needs its own lm_head tensor
  bool attention_bias = false;  // the export's config must declare attention biases
  bool mlp_bias = false;        // ... and MLP biases
  // compressed-tensors: `quantized` before the block Hadamards' signs were folded into its weights
  // (fold_ct_signs); with its hooks it is the in-memory side of the perplexity check. Else undefined.
  std::optional<Model> before_sign_fold;
  std::shared_ptr<StreamingQuantizer> stream = nullptr;
  std::shared_ptr<StreamedWeights> streamed = nullptr;
  /// The quantized weight of linear `name` of layer l ("lm_head": the lm_head), held or streamed.
  at::Tensor quantized_weight(int64_t layer, const std::string& name) const;
};

/// Whether export_model() streams this export (see ExportModel): a mapped model, no transforms,
/// no GPTQ of lm_head, a Hugging Face folder (the GGUF writer and its check read held weights).
bool streams(const Model& fp, const TransformPlan& plan, const QuantSpec& spec, ExportKind kind);

/// Folds `plan` into a copy of `fp` and quantizes it by `spec` for an export of `kind` (see
/// export.h). Compressed-tensors: the quantized layers go to host memory as they are made
/// (QuantizeOptions::layers_to_host; that writer never runs the quantized model).
ExportModel prepare_export_model(const Model& fp, const TransformPlan& plan, const QuantSpec& spec,
                                 const CalibrationSet* calib, const JobControl& job, ExportKind kind);

/// The online transform in front of linear `name` ("q", ..., "down") of layer l, or null.
TransformPtr online_transform(const TransformPlan& plan, int64_t layer, const std::string& name);

/// Effective weight Q A (and bias b + Q v) of a linear whose input passes through the online
/// transform t: the weight in the original basis (export.h, folded-bf16).
at::Tensor effective_weight(const at::Tensor& q, const Transform& t);
at::Tensor effective_bias(const at::Tensor& bias, const at::Tensor& q, const Transform& t);

/// Whether linear `name` of layer l is quantized by the spec.
bool linear_quantized(const ExportModel& m, int64_t layer, const std::string& name);

/// Hugging Face names: "model.layers.3.self_attn.q_proj", "model.layers.3.mlp.down_proj".
std::string hf_linear_name(int64_t layer, const std::string& name);

/// The tensors of the folded-bf16 folder, in writing order, produced lazily.
std::vector<TensorSource> folded_bf16_tensors(const ExportModel& m);
/// The tensors of the compressed-tensors folder, in writing order, produced lazily.
/// \throws latmix::UsageError for what the format cannot hold.
std::vector<TensorSource> compressed_tensors_tensors(const ExportModel& m);
/// The transform_config scheme of the online transform before a linear ("down_online",
/// "mlp_online", "attn_online"): its group name, and the infix of its stored matrix.
std::string transform_scheme_name(const std::string& linear);
/// MXFP4 as compressed-tensors packs it: E2M1, block 32, E8M0 scales (floor rule; decoding does
/// not depend on the rule).
MxFormat compressed_tensors_format();
/// One transform group of compressed-tensors' transform_config: the linears that share one
/// stored matrix (compressed-tensors keeps one matrix per size in a group, so layers whose
/// transforms differ get groups of their own).
struct CtTransformGroup {
  std::string name;                  ///< "down_online", or "down_online_0", "down_online_1", ...
  std::string scheme;                ///< "down_online", "attn_online", "mlp_online"
  std::vector<std::string> modules;  ///< Hugging Face module names
  at::Tensor matrix;                 ///< float32 [b, b]: sqrt(b) B^T for the block B of A
  int64_t head_dim = 0;              ///< b when A is block-diagonal with equal blocks (b < n), else 0
  int64_t n = 0;                     ///< the transform's width
};
/// Signs D of an online transform A = B D (B block-diagonal with equal blocks) that the export
/// folds into what produces the transform's input, so that only B's block is stored.
struct CtSignFold {
  int64_t layer = 0;
  std::string scheme;  ///< "down_online" (into up_proj's rows), "attn_online"/"mlp_online" (the norm's gain)
  at::Tensor signs;    ///< float32 [n], +-1
};
/// The groups of a plan's online transforms, in layer order. A transform A = B D with random
/// signs D before a block-diagonal B of equal blocks (MR-GPTQ's block Hadamard) is stored as B's
/// block (made canonical: first column non-negative); D must then be folded (fold_ct_signs):
/// `sign_folds` gets one entry per such transform.
std::vector<CtTransformGroup> ct_transform_groups(const TransformPlan& plan, const ModelConfig& config,
                                                  std::vector<CtSignFold>* sign_folds = nullptr);
/// Folds the signs into `model`: up_proj's rows (and bias) for down_proj, input_layernorm's gain for
/// q/k/v, post_attention_layernorm's for gate/up. Exact: a sign flip of MX-quantized rows is their
/// codes with the sign bit flipped, of a bf16 gain its sign bit. Returns a note, empty when none.
std::string fold_ct_signs(Model& model, const std::vector<CtSignFold>& folds);
/// "<module>.<group>_input.weight": where compressed-tensors and vLLM look for a group's matrix.
std::string ct_transform_tensor_name(const std::string& module, const std::string& group);
/// Checks the transform_config of a compressed-tensors folder as the runtimes read it: every
/// target's matrix present, F32, [head_dim or input width]^2, identical within its group, no
/// module in two groups. Adds one check (none when there are no transforms).
void check_ct_transform_groups(const std::string& dir, ExportVerification& out);
/// Checks that `spec` and `plan` fit compressed-tensors MXFP4 (before any work).
void check_compressed_tensors_spec(const QuantSpec& spec, const TransformPlan& plan, const ModelConfig& config);

/// config.json for the export: the source's (or, for a llama2.c source, one written from the
/// ModelConfig) with dtype bf16, tie_word_embeddings / attention_bias / mlp_bias as the export
/// needs, and for compressed-tensors its quantization_config.
nlohmann::ordered_json export_config(const ExportModel& m, const std::string& source_path, ExportKind kind);

/// Copies generation_config.json and the tokenizer files of the source into `dir`; returns notes.
std::vector<std::string> copy_side_files(const std::string& source_path, const std::string& dir);

/// Bytes the export will take (tensor data, headers and side files, roughly).
uint64_t estimate_export_bytes(const ExportModel& m, const std::string& source_path, ExportKind kind);

// ---- GGUF (export_gguf.cpp) -----------------------------------------------------------------

/// The GGUF file's name inside the export folder.
inline constexpr const char* kGgufFileName = "model.gguf";
/// Checks, before any work, that the plan, spec, architecture and tokenizer fit the GGUF export
/// (no online transform, MXFP4 or no weight quantization, llama architecture, byte-level BPE
/// tokenizer with a pre-tokenizer llama.cpp names). \throws latmix::UsageError saying why.
void check_gguf_spec(const QuantSpec& spec, const TransformPlan& plan, const ModelConfig& config,
                     const std::string& source_path);
/// The key/values of the GGUF file: llama metadata and the tokenizer.
std::vector<GgufKeyValue> gguf_metadata(const ExportModel& m, const std::string& source_path, GgmlType float_type,
                                        const std::string& description);
/// The tensors of the GGUF file in writing order, produced lazily (quantized linears as MXFP4
/// blocks, norms F32, the rest `float_type`). \throws latmix::UsageError for biases.
std::vector<GgufTensorSource> gguf_tensors(const ExportModel& m, GgmlType float_type);
/// llama.cpp's q/k row order (its converter's permute): rows [heads, 2, d/2] -> [heads, d/2, 2].
at::Tensor gguf_permute_rows(const at::Tensor& w, int64_t heads);
/// "blk.3.attn_q.weight", ..., "blk.3.ffn_down.weight" for linear "q", ..., "down".
std::string gguf_linear_name(int64_t layer, const std::string& name);
/// The verification right after writing: `file` read back against the in-memory model (every
/// tensor bit for bit: MXFP4 decoded, floats as cast), one check per kind of tensor.
void verify_gguf_written(const ExportModel& m, const std::string& file, GgmlType float_type, ExportVerification& out);
/// `latmix verify` of a GGUF export: the header reads, the llama keys and the vocabulary are there,
/// every tensor lies inside the file, MXFP4 tensors decode to finite values.
void check_gguf_file(const std::string& file, ExportVerification& out);
/// What the README says about the runtimes that read the GGUF file.
std::string gguf_runtime_note();

// ---- verification (export_verify.cpp) --------------------------------------------------------

/// The verification pass of export_model() over the folder written at `dir`.
ExportVerification verify_written(const ExportModel& m, const std::string& dir, const ExportOptions& options,
                                  const JobControl& job);
/// The transforms kind: the files at PREFIX reload to `plan`'s tensors bit for bit.
void verify_transforms_files(const TransformPlan& plan, const std::string& prefix, ExportVerification& out);

// ---- texts (export_texts.cpp) ----------------------------------------------------------------

/// The JSON description of a plan for manifests: {"residual": kind or null, "value": [kinds], ...}.
nlohmann::json describe_plan(const TransformPlan& plan);
/// README.md of the export folder.
std::string export_readme(const nlohmann::json& manifest);
/// What the compressed-tensors README says about the runtimes that read it.
std::string compressed_tensors_runtime_note();
/// The one-line note of the command's output: which runtime applies which part.
std::string compressed_tensors_output_note(bool has_transforms, bool activations);

}  // namespace latmix::export_detail
