#pragma once
/// \file api/export.h
/// Room: engine/api, the use-case layer (issue 16). The export and verify tasks: `latmix export`,
/// `latmix verify`, and the studio's Export tab. Each client only converts between its own form
/// and these requests and results; every step both do lives in run_export() / run_verify() once:
/// the plan (a transforms file checked against the model, or the method's plan built or learned
/// when none is given), the note when the file was learned with another method, the GPTQ
/// calibration and its one default (gptq_calibration_defaults()), the perplexity check's text,
/// the staging folder of a zipped export, the export itself, the bundle and its verification, and
/// the cleanup on failure or cancel (never a half-written output).
///
/// The library: this file's functions are built as `latmix_api_export`, which links the export
/// bundle (engine/bundle, Qt 6 Core + QuaZip) where it is built; elsewhere a zipped export or the
/// verification of a .zip is refused with a UsageError that says so (export_has_bundle()).

#include <nlohmann/json.hpp>

#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include "latmix/api/calibration.h"
#include "latmix/api/learn.h"
#include "latmix/calib_data.h"
#include "latmix/export.h"
#include "latmix/learn.h"
#include "latmix/model.h"
#include "latmix/tokenizer.h"

namespace latmix::api {

// ---- export ------------------------------------------------------------------------------------------

/// What to export: the values of `latmix export`'s options, by the same names (snake_case here and
/// in JSON, --kebab-case on the command line; `as` is --as).
struct ExportRequest {
  std::string model;         ///< --model: the source (Hugging Face folder or llama2.c .bin)
  std::string tokenizer;     ///< --tokenizer ("": the model's own; refused for a folder)
  std::string device = "cpu";  ///< --device
  std::string dtype = "fp32";  ///< --dtype: compute dtype
  std::string weights = "auto";  ///< --weights: auto | mapped | memory (how the CLI loads the model)
  std::string method = "rtn";    ///< --method: the preset (recorded in the manifest; builds or learns the plan)
  std::string transforms;        ///< --transforms PREFIX ("": the method's own plan)
  std::string quant = "mxfp4";   ///< --quant: QuantSpec text
  std::string as = "compressed-tensors";  ///< --as: folded-bf16, compressed-tensors, gguf, transforms
  std::string gguf_float = "f32";         ///< --gguf-float: f32 | f16 | bf16 (gguf only)
  std::string out;                        ///< --out: the folder, or the .zip with `zip`
  bool zip = false;                       ///< --zip: one .zip bundle
  bool overwrite = false;                 ///< --overwrite
  int64_t shard_size = 4096;              ///< --shard-size MB
  std::string verify_data;                ///< --verify-data FILE ("": the bundled sample)
  int64_t verify_seqlen = 256;            ///< --verify-seqlen
  int64_t verify_windows = 8;             ///< --verify-windows (0: all)
  bool no_verify = false;                 ///< --no-verify
  std::string calib;                      ///< --calib FILE: GPTQ's text, and the text a missing plan learns on
  std::optional<int64_t> calib_samples;   ///< --calib-samples (unset: gptq_calibration_defaults())
  std::optional<int64_t> calib_seqlen;    ///< --calib-seqlen (unset: gptq_calibration_defaults())
  /// Not an option of `latmix export`: the manifest's record of where the plan came from, for a plan
  /// a client names otherwise than by its file ("": the --transforms PREFIX; the studio: "learned in
  /// LATMiX Studio (...)").
  std::string transforms_source;
};

/// Every field (calib_samples / calib_seqlen null when unset).
nlohmann::json to_json(const ExportRequest& request);
/// The inverse of to_json(). Strict: an unknown key or a value of the wrong type is a
/// latmix::UsageError naming the key ("export request: key 'zip': expected true or false, ...");
/// a key left out keeps the default. Values are checked by run_export().
ExportRequest export_request_from_json(const nlohmann::json& json);

/// The `latmix export` command line of the request: --model, --method, --transforms, --quant, --as,
/// --zip, --out, then the options that are not at their defaults (the verification's only where
/// the kind has a perplexity check), --device last.
std::vector<std::string> export_command_line(const ExportRequest& request);

/// The checks of the options that need no model (the CLI's messages, naming the option): run_export()
/// runs them first; a client calls them before it opens the model, so that a bad option costs nothing.
/// \throws latmix::UsageError, latmix::Error (a --verify-data that is no regular file, a .zip that
/// would go into the source model).
void check_export_request(const ExportRequest& request);

/// Whether this build zips and unzips bundles (engine/bundle was built).
bool export_has_bundle();

/// Whether the export streams from a memory-mapped model (rtn / gptq without transforms: each
/// weight is quantized, written and dropped); otherwise run_export() holds the model in memory (a
/// copy when the model given is mapped, refused when it cannot fit).
bool export_streams(const ExportRequest& request);

/// The hidden folder beside the .zip that a zipped export is written into before it is zipped
/// (".NAME.zip.folder-PID"; removed in every case), "" for a folder export: a client that reports
/// what a failed or cancelled export left behind looks for it.
std::string export_staging_folder(const ExportRequest& request);

/// What run_export() needs beside the request: the control of the job (cancel; progress stages of
/// export_model(), then "zip" and "hash"; on_note and on_step while a missing plan is learned), and
/// the bundled sample text ("" when not installed): the default of verify_data and calib.
struct ExportControl {
  LearnControl learn;
  std::string bundled_sample;
};

/// What run_export() wrote.
struct ExportResult {
  std::string path;       ///< the request's out: the folder, or the .zip
  bool zip = false;
  uint64_t zip_bytes = 0;  ///< size of the .zip (0 for a folder)
  latmix::ExportResult written;  ///< the export (for a zip: of the staging folder, removed since)
};
/// The result as `latmix export --json` prints it (and `latmix serve` returns it): path, kind, zip,
/// bytes, zip_bytes, seconds, files (their count), verification, quantization (its describe() text,
/// "" for none), notes, manifest, and quantization_report (null for none: spec,
/// calibration_sequences, calibration_seqlen, seconds, linears [{layer, name, weight_sqnr_db,
/// relative_output_error, reprojected, seconds}], a figure that is not finite as "inf" / "nan").
nlohmann::json to_json(const ExportResult& result);
/// The inverse of to_json(). Strict: an unknown key (at any depth but inside the manifest, which is
/// the export's own document) or a value of the wrong type is a latmix::UsageError naming the key's
/// path ("export result: key 'verification.checks[0].ok': ..."), and so are derived keys that
/// disagree with what they derive from ("files" and the manifest's files, "quantization" and
/// quantization_report's describe(), the verification's "ok" and its checks); a key left out keeps
/// the default. written.files come from the manifest's "files" (name, bytes, sha256), written.path
/// is `path`. Nothing describe() or `latmix export` prints is lost.
ExportResult export_result_from_json(const nlohmann::json& json);
/// The result as `latmix export` prints it (the studio shows the same lines): "KIND export written
/// to PATH (N bytes, K files[, zipped]) in T", the quantization, "verification:" and its checks,
/// the notes.
std::string describe(const ExportResult& result);

/// Exports `model` (opened from request.model with `tokenizer`) as the request says: the options
/// checked before any work (the CLI's messages, naming the option); the plan: request.transforms
/// loaded and checked against the model (a note when it was learned with another method, recorded
/// as the request's), else the method's (built, or learned with its defaults on --calib, which a
/// learned method then needs); the GPTQ calibration; the perplexity check's text; the export
/// (into a hidden staging folder beside the .zip for a zipped one), the bundle and its
/// verification; the staging folder removed in every case, a bundle that fails its verification
/// removed. A missing parent folder of `out` is created. Notes that the CLI prints on stderr
/// before the work ("calibration: ...", "note: no --transforms: learning ...") go to
/// control.learn.on_note as they happen; the others are in the result.
/// \throws latmix::UsageError for a bad option, latmix::Error for a failed export (nothing
/// half-written is left: see export_model()), latmix::Cancelled.
ExportResult run_export(const ExportRequest& request, const Model& model, const Tokenizer& tokenizer,
                        const ExportControl& control = {});

// ---- verify ------------------------------------------------------------------------------------------

/// What to verify: `latmix verify`'s options.
struct VerifyRequest {
  std::string path;  ///< --path: an export folder or a .zip bundle
  std::string data;  ///< --data FILE: the perplexity check's text ("": the export's own copy)
  bool no_ppl = false;  ///< --no-ppl
};
nlohmann::json to_json(const VerifyRequest& request);
/// Strict, as export_request_from_json() ("verify request: ...").
VerifyRequest verify_request_from_json(const nlohmann::json& json);
/// "latmix", "verify", PATH, then --data / --no-ppl when set.
std::vector<std::string> verify_command_line(const VerifyRequest& request);

/// What run_verify() found.
struct VerifyResult {
  std::string path;
  bool zip = false;
  std::string kind;  ///< the export's kind from its manifest ("" when unreadable)
  ExportVerification verification;
  std::vector<std::string> notes;  ///< "no perplexity check (--no-ppl)"
};
/// The result as `latmix verify --json` prints it (and `latmix serve` returns it): the
/// verification's JSON (ok, checks, figures), then path, zip, kind and notes.
nlohmann::json to_json(const VerifyResult& result);
/// The inverse of to_json(), strict as export_result_from_json() ("verify result: key
/// 'checks[1].ran': ..."; an "ok" that disagrees with the checks is refused). Nothing is lost.
VerifyResult verify_result_from_json(const nlohmann::json& json);
/// "verified", "NOT VERIFIED (a check could not run)" or "VERIFICATION FAILED".
std::string verdict(const VerifyResult& result);

/// Verifies an export folder (verify_export_with_text()) or a .zip bundle (verify_bundle_contents():
/// the entries against the manifest, then the folder's checks on a private unzipped copy).
/// \throws latmix::UsageError for a .zip in a build without the bundle; latmix::Error when the
/// path is no export; latmix::Cancelled.
VerifyResult run_verify(const VerifyRequest& request, const JobControl& job = {});

}  // namespace latmix::api
