#pragma once
/// \file export.h
/// Room: engine/export/ (latmix_engine).
/// One-click export (docs/export.md, DESIGN.md §7): a model with its transforms and quantization
/// written as a folder that other runtimes load, a manifest that makes it verifiable, and the
/// fingerprint that ties saved transforms to the model they were learned on.
///
/// Kinds:
///  - folded-bf16: a plain Hugging Face folder of the original architecture. Every transform is
///    folded; a linear layer with an online transform A before it (down_online, attn_online,
///    mlp_online) gets its effective weight in the original basis, Q(W A^-1) A (bias
///    b + Q(W A^-1) v for an affine A x + v), so the folder is exactly the weight-quantized
///    model (W4A16-style: activation quantization is a runtime matter and is not in it).
///    Every floating tensor is stored as bf16.
///  - compressed-tensors: the `mxfp4-pack-quantized` format of vLLM's compressed-tensors: per
///    quantized linear `weight_packed` U8 [out, in/2] (element 2i in the low nibble) and
///    `weight_scale` U8 [out, in/32] (E8M0), config.json's `quantization_config` for MXFP4A16
///    (weights only) or MXFP4 (plus dynamic group-32 activations), and the online transforms
///    that remain declared in its `transform_config` with their matrices stored beside the
///    weights. MXFP4 (E2M1, block 32, E8M0 scales) weights only.
///  - gguf: `model.gguf`, a GGUF v3 file of llama.cpp's `llama` architecture (Llama, Mistral):
///    llama metadata, the tokenizer.json's byte-level BPE vocabulary and merges with the
///    pre-tokenizer's llama.cpp name (llama-bpe, qwen2, gpt-2) and add_bos_token as the
///    tokenizer's post-processor has it, q/k rows permuted to llama.cpp's rotary layout, MXFP4
///    linear weights as ggml block_mxfp4 (encoded from our codes: they decode to the fake-quantized
///    weights bit for bit), norms F32, other tensors `gguf_float`. Refused: online transforms
///    (GGUF has none), weight formats other than MXFP4, biases, other architectures.
///  - transforms: the plan as save_transforms() writes it (transforms.safetensors +
///    transforms.json) with the model fingerprint and the settings in the JSON's "metadata",
///    reloadable with load_transforms_checked() to export again without learning again.
///
/// How a folder is written: into a temp folder beside the target (`.NAME.latmix-tmp-PID-XXXXXX`),
/// tensors produced, written and dropped one at a time (write_safetensors_sharded), checked
/// (the verification below), README.md and manifest.json added, every file fsync'ed, then the
/// folder renamed into place. On any error or cancel the temp folder is removed and an existing
/// target is untouched. Before any work: the target must not be the source model (or hold it),
/// must not exist unless `overwrite` (and then only an earlier export, one with a manifest, is
/// replaced), its parent must be writable, and the file system must have room (statvfs; the
/// error says how much is needed and how much is free).
///
/// Memory: the folded, quantized model is held in memory next to the FP model (it is the
/// in-memory reference the verification compares against); what is written is produced per
/// tensor (bf16 casts, packing, effective weights), so writing adds one tensor at a time.
/// Streaming (a mapped model, see Model; an empty plan; not GPTQ with lm_head): nothing is held.
/// Each quantized weight is made when its tensor is written (StreamingQuantizer: RTN per weight,
/// GPTQ one layer at a time), checked right then against its encoding (the packed codes decode to
/// it, or bf16 holds it exactly), written and dropped; the verification then reads every such
/// tensor back and compares its bytes with what was produced (a 64-bit digest), and records the
/// folder's perplexity without an in-memory model to compare it with. The files are the same,
/// byte for byte, as the in-memory export's (tests/model/test_mapped_model.cpp).
///
/// Verification (before the rename; a failure is an Error and nothing is left):
///  - compressed-tensors: every weight_packed/weight_scale pair, read back from disk and
///    decoded, equals the in-memory fake-quantized weight bit for bit;
///  - folded-bf16: every quantized linear without an online transform, read back, equals the
///    in-memory fake-quantized weight bit for bit; and, when `verify_ids` is given, the folder
///    loaded by load_model() has the same perplexity, to the printed precision (ppl_digits
///    decimals), as the in-memory weight-quantized model as the folder stores it (every tensor
///    rounded to bf16, online transforms in effective weights; no activation quantization), and
///    is within bf16's relative precision (1/256) of the in-memory model in its compute dtype with
///    the online transforms as hooks (bf16 storage of folded, off-grid values moves perplexity:
///    2e-4 relative measured on gutenberg-llama-6M with a Hadamard plan, 1.7e-3 for the fp32
///    stories260K, docs/export.md);
///  - gguf: the file read back: every MXFP4 tensor decodes to the fake-quantized weight (q/k rows
///    permuted) bit for bit, every float tensor equals the in-memory one cast to its type;
///  - transforms: the files reload to the same tensors, bit for bit.

#include <nlohmann/json.hpp>

#include <cstdint>
#include <map>
#include <optional>
#include <string>
#include <vector>

#include "latmix/calib_data.h"
#include "latmix/eval.h"
#include "latmix/gguf.h"
#include "latmix/model.h"
#include "latmix/progress.h"
#include "latmix/quant.h"
#include "latmix/transform_fold.h"

namespace latmix {

enum class ExportKind { FoldedBf16, CompressedTensors, Transforms, Gguf };

/// "folded-bf16", "compressed-tensors", "transforms", "gguf".
std::string to_string(ExportKind kind);
/// The inverse of to_string. \throws latmix::UsageError listing the valid names.
ExportKind parse_export_kind(const std::string& name);

struct ExportOptions {
  ExportKind kind = ExportKind::FoldedBf16;
  std::string out;         ///< the folder to create
  /// gguf: the type of the tensors that are neither MX-quantized nor norms (F32, F16 or BF16).
  GgmlType gguf_float = GgmlType::F32;
  bool overwrite = false;  ///< replace an existing export at `out`
  /// The method preset that produced the plan, and every one of its settings (an object), for
  /// the manifest and the README.
  std::string method = "rtn";
  nlohmann::json settings = nlohmann::json::object();
  /// Where the plan came from ("PREFIX" of a transforms file, "learned", "none"), for the manifest.
  std::string transforms_source = "none";
  /// Evaluation figures to record in the manifest (any object; the verification adds its own).
  nlohmann::json evaluation = nlohmann::json::object();
  /// Shard size limit of the safetensors files (bytes of tensor data per file).
  uint64_t max_shard_bytes = 4ull << 30;
  /// The free space asked for is this times the export's size (2 when the folder is zipped next).
  double space_factor = 1.0;
  /// Run the verification pass (see the file comment).
  bool verify = true;
  /// Token ids of a text for the perplexity check of folded-bf16 (empty: no perplexity check),
  /// its name for the report, the protocol, and the decimals it is compared to.
  std::vector<int32_t> verify_ids;
  std::string verify_text;
  PerplexityOptions verify_ppl;
  /// The text that gave verify_ids (a prefix of the file, see text_stream.h): written into the
  /// export as kPerplexityTextFile, so that verify_export() needs nothing outside the export.
  std::string verify_text_bytes;
  int ppl_digits = 2;
};

/// One file of an export.
struct ExportedFile {
  std::string name;  ///< relative to the export folder
  uint64_t bytes = 0;
  std::string sha256;
};

/// One check of a verification.
struct VerifyCheck {
  std::string what;  ///< "sha256 model.safetensors", "packed codes", "perplexity", ...
  bool ok = false;
  std::string detail;  ///< figures or the mismatch
  bool ran = true;     ///< false: the check could not run (detail says why); not a pass
};

/// What a verification found.
struct ExportVerification {
  std::vector<VerifyCheck> checks;
  /// Figures measured on the way (perplexities, counts), for reports and manifests.
  nlohmann::json figures = nlohmann::json::object();
  /// Every check ran and passed (and there is at least one).
  bool ok() const;
  void add(std::string what, bool ok, std::string detail);
  /// A check that could not run: reported as "SKIP", and ok() is false.
  void add_not_run(std::string what, std::string why);
  /// One line per check: "ok    what: detail", "FAIL  what: detail" or "SKIP  what: why".
  std::string describe() const;
  nlohmann::json to_json() const;
};

/// What export_model() wrote.
struct ExportResult {
  std::string path;  ///< the export folder
  ExportKind kind = ExportKind::FoldedBf16;
  std::vector<ExportedFile> files;  ///< every file but manifest.json
  uint64_t bytes = 0;               ///< total size of the files
  double seconds = 0;
  QuantReport quantization;  ///< empty for the transforms kind
  ExportVerification verification;
  std::vector<std::string> notes;  ///< folding notes, bias changes, unverified fingerprints, ...
  nlohmann::json manifest;         ///< what manifest.json holds
};

/// Exports `fp` (as loaded from `source_path`) with `plan` folded in (may be empty) and quantized
/// by `spec` (`calib` for GPTQ). See the file comment for what is written and checked.
/// Progress stages: "hash" (source files and written files, bytes), "quantize" (linears; a
/// streamed export quantizes inside "write" and reports no "quantize" stage),
/// "write" (bytes), "verify" (and "ppl" inside it). Cancel is checked throughout.
/// \throws latmix::UsageError for options that do not fit the kind (compressed-tensors with a
///         format other than MXFP4, a transform the format cannot declare, ...);
///         latmix::Error for a bad target, too little space, a failed write or a failed
///         verification (the message names the path and the problem); latmix::Cancelled.
ExportResult export_model(const Model& fp, const std::string& source_path, const TransformPlan& plan,
                          const QuantSpec& spec, const CalibrationSet* calib, const ExportOptions& options,
                          const JobControl& job = {});

/// Checks an export folder written by export_model(): every file the manifest lists is there
/// with its size and SHA-256, no other file is (manifest.json aside), and nothing else is in the
/// folder (a subfolder, a symbolic link or a FIFO fails the check); then what the kind allows
/// without the source model: folded-bf16 and compressed-tensors load with load_model() (packed
/// codes decoded, transform_config matrices applied) and, when the manifest recorded a
/// perplexity, it is recomputed on `ppl_ids` and compared; compressed-tensors also checks every
/// packed tensor's shapes and finite scales; transforms: the files reload. A recorded perplexity
/// that cannot be recomputed (no `ppl_ids`) is a check that did not run, with
/// `ppl_missing` as its reason: ok() is then false. Never throws for a mismatch (that is a failed
/// check); throws latmix::Error when `path` is no export (no or unreadable manifest.json).
ExportVerification verify_export(const std::string& path, const std::vector<int32_t>& ppl_ids = {},
                                 const JobControl& job = {}, const std::string& ppl_missing = "");

/// verify_export() as `latmix verify` runs it: the text of the recorded perplexity check is `text`
/// when given (a regular file), else the copy inside the export (kPerplexityTextFile), never the
/// path the manifest recorded; it is tokenized with the export's own tokenizer, only as far as
/// the recorded windows need. When that cannot be done the check is reported as not run (ok()
/// is false), except with `no_ppl`, which leaves it out.
ExportVerification verify_export_with_text(const std::string& path, const std::string& text = "", bool no_ppl = false,
                                           const JobControl& job = {});

/// The file inside an export that holds the text of its perplexity check.
inline constexpr const char* kPerplexityTextFile = "perplexity-text.txt";

/// The perplexity check an export recorded, and where its text is.
struct RecordedPerplexity {
  bool recorded = false;   ///< the manifest holds a perplexity to compare with
  std::string text_file;   ///< EXPORT/perplexity-text.txt when the manifest lists it; empty otherwise
  int64_t tokens = 0;      ///< text tokens the check uses (windows x window), 0 = all
  std::string text_name;   ///< the text it was computed on, as the export was given it (information only)
};
/// Reads the manifest of `export_path`. Only a file inside the export is ever named: never the
/// path the manifest recorded (issue 20, item 11). 	hrows latmix::Error as verify_export().
RecordedPerplexity recorded_perplexity_of(const std::string& export_path);

/// Compares what was found (file name -> size and SHA-256) with the manifest's "files" list.
/// Adds one check per listed file, and one failed check per unlisted file; `manifest_file` names
/// the manifest in errors (a mistyped entry throws latmix::Error naming it and the key). Used for
/// folders here and for zip bundles by the bundle library.
void check_manifest_files(const nlohmann::json& manifest, const std::string& manifest_file,
                          const std::map<std::string, ExportedFile>& found, ExportVerification& out);

// ---- Fingerprints ------------------------------------------------------------------------------

/// What ties transforms to a model. `model_digest` is SHA-256 over config.json's bytes and, for
/// each safetensors file (sorted by name), its name, its size and its header (the bytes up to
/// the data area); a llama2.c .bin contributes its size and 28-byte header instead. Weight
/// values are not read: a change that keeps every header and size is not seen.
/// `fingerprint` is SHA-256 over model_digest and the settings (canonical JSON).
struct ModelFingerprint {
  std::string model_path;    ///< absolute
  std::string model_digest;  ///< hex
  std::string fingerprint;   ///< hex
  /// What went in, for messages: [{"name", "bytes", "sha256" (of the header or the file)}].
  nlohmann::json files = nlohmann::json::array();
  nlohmann::json settings = nlohmann::json::object();
  nlohmann::json to_json() const;
};

/// \throws latmix::Error naming the file when the model's files cannot be read.
ModelFingerprint model_fingerprint(const std::string& model_path,
                                   const nlohmann::json& settings = nlohmann::json::object());

/// save_transforms() with {"model": fingerprint, "settings", "tool": {version, commit}} as the
/// metadata of PREFIX.json.
void save_transforms_for_model(const std::string& path_prefix, const TransformPlan& plan, const std::string& model_path,
                               const nlohmann::json& settings);

/// Transforms loaded for a model.
struct CheckedTransforms {
  TransformPlan plan;
  nlohmann::json metadata;         ///< null for files without one
  std::vector<std::string> notes;  ///< e.g. "no fingerprint: ...", settings that differ
};

/// load_transforms() after checking the fingerprint in PREFIX.json against `model_path`.
/// \throws latmix::Error when the files were saved for another model ("... learned for another
/// model ...") or the model changed on disk since ("... changed since ..."), naming the files
/// that differ. Files without a fingerprint load with a note saying they could not be checked.
CheckedTransforms load_transforms_checked(const std::string& path_prefix, const std::string& model_path);

}  // namespace latmix
