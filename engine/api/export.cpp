// The export and verify tasks (latmix/api/export.h): requests <-> JSON, and the one place where a
// request becomes a plan, a calibration, an export, a bundle and a verification.
#include "latmix/api/export.h"

#include <unistd.h>

#include <algorithm>
#include <cstdio>
#include <filesystem>

#include "latmix/config.h"
#include "latmix/error.h"
#include "latmix/files.h"
#include "latmix/memory.h"
#include "latmix/quant.h"
#include "latmix/text_stream.h"
#include "request_json.h"
#include "result_json.h"
#ifdef LATMIX_WITH_BUNDLE
#include "bundle.h"
#endif

namespace latmix::api {

using json = nlohmann::json;
namespace fs = std::filesystem;

namespace {

// ---- JSON ------------------------------------------------------------------------------------------

// In the order of `latmix export --help`.
const detail::FieldTable<ExportRequest>& export_fields() {
  using R = ExportRequest;
  using detail::as_bool;
  using detail::as_integer;
  using detail::as_string;
  using detail::optional;
  using detail::required;
  static const detail::FieldTable<R> table = {
      {"model", required(&R::model, as_string)},
      {"tokenizer", required(&R::tokenizer, as_string)},
      {"method", required(&R::method, as_string)},
      {"transforms", required(&R::transforms, as_string)},
      {"quant", required(&R::quant, as_string)},
      {"as", required(&R::as, as_string)},
      {"gguf_float", required(&R::gguf_float, as_string)},
      {"out", required(&R::out, as_string)},
      {"zip", required(&R::zip, as_bool)},
      {"overwrite", required(&R::overwrite, as_bool)},
      {"shard_size", required(&R::shard_size, as_integer)},
      {"verify_data", required(&R::verify_data, as_string)},
      {"verify_seqlen", required(&R::verify_seqlen, as_integer)},
      {"verify_windows", required(&R::verify_windows, as_integer)},
      {"no_verify", required(&R::no_verify, as_bool)},
      {"dtype", required(&R::dtype, as_string)},
      {"weights", required(&R::weights, as_string)},
      {"calib", required(&R::calib, as_string)},
      {"calib_samples", optional(&R::calib_samples, as_integer)},
      {"calib_seqlen", optional(&R::calib_seqlen, as_integer)},
      {"device", required(&R::device, as_string)},
      {"transforms_source", required(&R::transforms_source, as_string)},
  };
  return table;
}

const detail::FieldTable<VerifyRequest>& verify_fields() {
  using R = VerifyRequest;
  static const detail::FieldTable<R> table = {
      {"path", detail::required(&R::path, detail::as_string)},
      {"data", detail::required(&R::data, detail::as_string)},
      {"no_ppl", detail::required(&R::no_ppl, detail::as_bool)},
  };
  return table;
}

// ---- the export's steps ------------------------------------------------------------------------------

/// The plan of a method and what the manifest records about it.
struct MethodPlan {
  TransformPlan plan;
  json settings = json::object();  ///< every setting of the method
  std::string source = "none";     ///< where the plan came from
  std::vector<std::string> notes;
};

void note(const ExportControl& control, const std::string& line) {
  if (control.learn.on_note) control.learn.on_note(line);
}

/// request.transforms loaded and checked against the model, with the method-mismatch note.
MethodPlan plan_from_file(const ExportRequest& r) {
  CheckedTransforms t = load_transforms_checked(r.transforms, r.model);
  MethodPlan mp;
  mp.plan = std::move(t.plan);
  mp.source = r.transforms;
  mp.notes = std::move(t.notes);
  if (!t.metadata.is_null() && t.metadata.contains("settings") && t.metadata["settings"].is_object()) {
    mp.settings = t.metadata["settings"];
  }
  const std::string learned = mp.settings.value("method", r.method);
  if (learned != r.method) {
    mp.notes.push_back("the transforms were saved with --method " + learned + "; recorded as " + r.method);
  }
  mp.settings["method"] = r.method;
  return mp;
}

/// Where `--method NAME` without --transforms becomes a plan: nothing for rtn/gptq, the fixed
/// transforms of quarot/mr-gptq, and for the learned presets a learning run with the method's
/// defaults (latmix/learn.h) on the --calib text, announced as a note.
MethodPlan plan_of_method(const std::string& method, const Model& model, const CalibrationSet* calib,
                          const QuantSpec& spec, const ExportControl& control) {
  const MethodPreset& preset = find_method(method);
  MethodPlan out;
  if (method == "rtn" || method == "gptq") {
    const WeightMethod want = method == "rtn" ? WeightMethod::Rtn : WeightMethod::Gptq;
    if (spec.weights && spec.method != want) {
      throw UsageError("--method " + method + " quantizes the weights with " + to_string(want) + ": put weights=" +
                       to_string(want) + " in --quant (it says weights=" + to_string(spec.method) + ")");
    }
    out.settings = {{"method", method}, {"transforms", "none"}};
    return out;
  }
  LearnSettings s = method_defaults(method, spec, model.device());
  s.quant = spec;  // the export's --quant decides the final weight quantizer
  if (calib != nullptr) s.batch = std::min(s.batch, calib->size());  // --calib-samples below the default batch
  if (preset.learned) {
    if (calib == nullptr) {
      throw UsageError("--method " + method +
                       " learns its transforms: give --calib FILE (training text; never the evaluation text) "
                       "or --transforms PREFIX from `latmix learn`");
    }
    note(control, "note: no --transforms: learning " + method + " with its defaults first (" +
                      std::to_string(s.steps) + " steps" + (s.mode == LearnMode::LayerWise ? " per layer" : "") +
                      ", " + calib->describe() + ")");
  }
  MethodResult r = obtain_plan(model, calib, s, control.learn);
  out.plan = std::move(r.plan);
  out.settings = s.to_json();
  out.source = preset.learned ? "learned by this export (method defaults)" : "built by this export (fixed transforms)";
  for (const auto& [name, value] : r.conditions) {
    out.notes.push_back("condition number of the learned " + name + ": " + std::to_string(value));
  }
  return out;
}

struct RemoveOnExit {
  std::string path;
  ~RemoveOnExit() {
    std::error_code ec;
    if (!path.empty()) fs::remove_all(path, ec);
  }
};

GgmlType parse_gguf_float(const std::string& name) {
  if (name == "f32") return GgmlType::F32;
  if (name == "f16") return GgmlType::F16;
  if (name == "bf16") return GgmlType::BF16;
  throw UsageError("--gguf-float: expected f32, f16 or bf16, found '" + name + "'");
}

bool has_ppl_check(ExportKind kind) { return kind == ExportKind::FoldedBf16 || kind == ExportKind::CompressedTensors; }

// The checks of the options that need no model, before any work (issue 20, items 7, 15, 22).
void check_request(const ExportRequest& r, ExportKind kind, const QuantSpec& spec) {
  if (r.zip && !export_has_bundle()) {
    throw UsageError(
        "--zip needs the Qt build of latmix (the bundle library uses Qt 6 Core and QuaZip); this build "
        "has neither: export the folder without --zip, or build with Qt 6 and QuaZip installed");
  }
  if (r.out.empty()) throw UsageError("--out: give the export folder (with --zip: the .zip file)");
  if (r.zip && fs::path(r.out).extension() != ".zip") {
    throw UsageError("--zip: --out must name a .zip file, found '" + r.out + "'");
  }
  if (r.zip) {
    // The folder export checks its own target; the zip is written elsewhere, so check it here too:
    // never the source model, nor inside its folder.
    std::error_code ec;
    const fs::path zip_path = fs::weakly_canonical(fs::absolute(r.out), ec);
    const fs::path source = fs::weakly_canonical(fs::absolute(r.model), ec);
    const auto rel = zip_path.lexically_relative(source);
    if (!ec && (zip_path == source || (!rel.empty() && *rel.begin() != ".."))) {
      fail(r.out, "refusing to write the bundle there: it would write into the source model",
           "a path outside " + source.string(), zip_path.string());
    }
  }
  // The export ships the folder's own tokenizer files; checking its perplexity with another
  // tokenizer would verify something else than what is shipped.
  std::error_code ec;
  if (!r.tokenizer.empty() && fs::is_directory(r.model, ec)) {
    throw UsageError("--tokenizer: an export ships the model folder's own tokenizer files, so it is checked with "
                     "them; put the tokenizer you want in the folder instead (or leave --tokenizer out)");
  }
  if (r.shard_size < 1) throw UsageError("--shard-size: expected 1 (MB) or more");
  if (!r.verify_data.empty()) {
    if (r.no_verify) throw UsageError("--verify-data is the text of the verification, which --no-verify skips");
    if (!has_ppl_check(kind)) throw UsageError("--verify-data: --as " + to_string(kind) + " has no perplexity check");
    ::close(open_regular_file(r.verify_data));  // a folder, FIFO or device is refused naming what it is
  }
  if (r.verify_seqlen < 2) throw UsageError("--verify-seqlen: expected 2 or more");
  if (r.verify_windows < 0) throw UsageError("--verify-windows: expected 0 (all) or more");
  if (!r.calib.empty() && spec.method != WeightMethod::Gptq && !find_method(r.method).learned) {
    throw UsageError("--calib is for weights=gptq in --quant, or for learning a method's transforms");
  }
  parse_gguf_float(r.gguf_float);
  if (kind != ExportKind::Gguf && r.gguf_float != "f32") throw UsageError("--gguf-float is for --as gguf");
}

// The export's options from the request, the plan's record and the calibration (the perplexity
// text and the staging are added by run_export()).
ExportOptions export_options(const ExportRequest& r, ExportKind kind, const MethodPlan& mp,
                             const GptqCalibration* calib) {
  ExportOptions o;
  o.kind = kind;
  o.out = r.out;
  o.overwrite = r.overwrite;
  o.method = r.method;
  o.settings = mp.settings;
  if (calib) o.settings["calibration"] = {{"file", calib->file}, {"description", calib->set.describe()}};
  o.transforms_source = r.transforms_source.empty() ? mp.source : r.transforms_source;
  o.max_shard_bytes = static_cast<uint64_t>(r.shard_size) << 20;
  o.verify = !r.no_verify;
  o.gguf_float = parse_gguf_float(r.gguf_float);
  return o;
}

// The folder the output goes into, made when missing (a fresh account has no ~/Documents).
void make_parent_folder(const std::string& out) {
  const fs::path target(out);
  std::error_code ec;
  if (target.has_parent_path() && !fs::exists(target.parent_path(), ec)) {
    fs::create_directories(target.parent_path(), ec);
    if (ec) fail(target.parent_path().string(), "cannot create the export folder", "", ec.message());
  }
}

// The perplexity check of the export: only what its windows need, and that text travels inside it.
void add_verify_text(ExportOptions& o, const ExportRequest& r, const Tokenizer& tokenizer, const std::string& text) {
  o.verify_ppl.seqlen = r.verify_seqlen;
  o.verify_ppl.max_windows = r.verify_windows;
  EncodedText t = encode_text_file(tokenizer, text, o.verify_ppl.max_windows * o.verify_ppl.seqlen, true);
  if (static_cast<int64_t>(t.ids.size()) < o.verify_ppl.seqlen) {
    fail(text, "too short for the perplexity check (--verify-data)",
         "at least one window of " + std::to_string(o.verify_ppl.seqlen) + " tokens (--verify-seqlen)",
         std::to_string(t.ids.size()) + " tokens");
  }
  o.verify_ids = std::move(t.ids);
  o.verify_text = text;
  o.verify_text_bytes = std::move(t.text);
}

// The zip of the staging folder, checked entry by entry against its manifest; removed when it fails.
void bundle_export(const std::string& staging, const ExportRequest& r, ExportResult& result, const JobControl& job) {
#ifdef LATMIX_WITH_BUNDLE
  write_bundle(staging, r.out, r.overwrite, job);
  const ExportVerification v = verify_bundle(r.out, job);
  if (!v.ok()) {
    std::error_code ec;
    fs::remove(r.out, ec);
    fail(r.out, "the bundle failed its verification and was removed:\n" + v.describe());
  }
  result.written.verification.add("bundle " + fs::path(r.out).filename().string(), true,
                                  std::to_string(v.checks.size()) + " entries match the manifest");
  std::error_code ec;
  result.zip_bytes = static_cast<uint64_t>(fs::file_size(r.out, ec));
#else
  (void)staging, (void)r, (void)result, (void)job;
  throw std::logic_error("bundle_export without the bundle library");  // check_request() refused it
#endif
}

std::string format_seconds(double s) {
  char buf[64];
  if (s < 60) {
    std::snprintf(buf, sizeof buf, "%.1f s", s);
  } else {
    std::snprintf(buf, sizeof buf, "%d min %02d s", static_cast<int>(s) / 60, static_cast<int>(s) % 60);
  }
  return buf;
}

// ---- the results' JSON read back ----------------------------------------------------------------------

json quant_report_json(const QuantReport& q) {
  json linears = json::array();
  for (const LinearQuantReport& l : q.linears) {
    linears.push_back({{"layer", l.layer},
                       {"name", l.name},
                       {"weight_sqnr_db", detail::real_json(l.weight_sqnr_db)},
                       {"relative_output_error", detail::real_json(l.relative_output_error)},
                       {"reprojected", l.reprojected},
                       {"seconds", l.seconds}});
  }
  return {{"spec", q.spec},
          {"calibration_sequences", q.calibration_sequences},
          {"calibration_seqlen", q.calibration_seqlen},
          {"seconds", q.seconds},
          {"linears", linears}};
}

QuantReport read_quant_report(const std::string& what, const std::string& path, const json& j) {
  const detail::ResultReader r(what, path, j,
                               {"spec", "calibration_sequences", "calibration_seqlen", "seconds", "linears"});
  QuantReport q;
  r.get("spec", q.spec, detail::as_string);
  r.get("calibration_sequences", q.calibration_sequences, detail::as_integer);
  r.get("calibration_seqlen", q.calibration_seqlen, detail::as_integer);
  r.get("seconds", q.seconds, detail::as_number);
  r.list("linears", q.linears, [&what](const std::string& at, const json& v) {
    const detail::ResultReader l(
        what, at, v, {"layer", "name", "weight_sqnr_db", "relative_output_error", "reprojected", "seconds"});
    LinearQuantReport out;
    l.get("layer", out.layer, detail::as_integer);
    l.get("name", out.name, detail::as_string);
    l.get("weight_sqnr_db", out.weight_sqnr_db, detail::as_real);
    l.get("relative_output_error", out.relative_output_error, detail::as_real);
    l.get("reprojected", out.reprojected, detail::as_integer);
    l.get("seconds", out.seconds, detail::as_number);
    return out;
  });
  return q;
}

// ExportVerification::to_json(): ok (derived from the checks: it must agree), checks, figures.
ExportVerification read_verification(const std::string& what, const std::string& path, const json& j) {
  const detail::ResultReader r(what, path, j, {"ok", "checks", "figures"});
  ExportVerification v;
  r.list("checks", v.checks, [&what](const std::string& at, const json& c) {
    const detail::ResultReader e(what, at, c, {"what", "ok", "ran", "detail"});
    VerifyCheck check;
    e.get("what", check.what, detail::as_string);
    e.get("ok", check.ok, detail::as_bool);
    e.get("ran", check.ran, detail::as_bool);
    e.get("detail", check.detail, detail::as_string);
    return check;
  });
  r.get("figures", v.figures, [](const json& f) {
    if (!f.is_object()) throw detail::WrongType{"an object"};
    return f;
  });
  bool ok = v.ok();
  r.get("ok", ok, detail::as_bool);
  if (ok != v.ok()) {
    throw UsageError(what + ": key '" + r.name("ok") + "': " + (ok ? "true" : "false") + ", but the checks say " +
                     (v.ok() ? "true" : "false"));
  }
  return v;
}

// The manifest's "files" ({name, bytes, sha256} each); none when it has no such list.
std::vector<ExportedFile> manifest_files(const std::string& what, const json& manifest) {
  std::vector<ExportedFile> out;
  if (!manifest.is_object() || !manifest.contains("files")) return out;
  const json& files = manifest.at("files");
  if (!files.is_array()) detail::wrong_type(what, "manifest.files", "an array", files);
  for (size_t i = 0; i < files.size(); ++i) {
    const std::string at = "manifest.files[" + std::to_string(i) + "]";
    const json& f = files[i];
    if (!f.is_object()) detail::wrong_type(what, at, "an object", f);
    ExportedFile file;
    auto get = [&](const char* key, auto& value, auto conv) {
      if (!f.contains(key)) return;
      try {
        value = conv(f.at(key));
      } catch (const detail::WrongType& e) {
        detail::wrong_type(what, at + "." + key, e.expected, f.at(key));
      }
    };
    get("name", file.name, detail::as_string);
    get("bytes", file.bytes, detail::as_unsigned);
    get("sha256", file.sha256, detail::as_string);
    out.push_back(std::move(file));
  }
  return out;
}

}  // namespace

// ---- export ------------------------------------------------------------------------------------------

json to_json(const ExportRequest& request) { return detail::write_request(export_fields(), request); }

ExportRequest export_request_from_json(const json& j) { return detail::read_request("export request", export_fields(), j); }

std::vector<std::string> export_command_line(const ExportRequest& r) {
  std::vector<std::string> a = {"latmix", "export", "--model", r.model};
  if (!r.tokenizer.empty()) a.insert(a.end(), {"--tokenizer", r.tokenizer});
  a.insert(a.end(), {"--method", r.method});
  if (!r.transforms.empty()) a.insert(a.end(), {"--transforms", r.transforms});
  a.insert(a.end(), {"--quant", r.quant, "--as", r.as});
  if (r.gguf_float != "f32") a.insert(a.end(), {"--gguf-float", r.gguf_float});
  if (r.zip) a.emplace_back("--zip");
  a.insert(a.end(), {"--out", r.out});
  if (r.overwrite) a.emplace_back("--overwrite");
  if (r.shard_size != 4096) a.insert(a.end(), {"--shard-size", std::to_string(r.shard_size)});
  if (r.no_verify) {
    a.emplace_back("--no-verify");
  } else if (r.as == "folded-bf16" || r.as == "compressed-tensors") {
    if (!r.verify_data.empty()) a.insert(a.end(), {"--verify-data", r.verify_data});
    if (r.verify_seqlen != 256) a.insert(a.end(), {"--verify-seqlen", std::to_string(r.verify_seqlen)});
    if (r.verify_windows != 8) a.insert(a.end(), {"--verify-windows", std::to_string(r.verify_windows)});
  }
  if (!r.calib.empty()) a.insert(a.end(), {"--calib", r.calib});
  if (r.calib_samples) a.insert(a.end(), {"--calib-samples", std::to_string(*r.calib_samples)});
  if (r.calib_seqlen) a.insert(a.end(), {"--calib-seqlen", std::to_string(*r.calib_seqlen)});
  if (r.dtype != "fp32") a.insert(a.end(), {"--dtype", r.dtype});
  if (r.weights != "auto") a.insert(a.end(), {"--weights", r.weights});
  a.insert(a.end(), {"--device", r.device});
  return a;
}

void check_export_request(const ExportRequest& r) {
  check_request(r, parse_export_kind(r.as), parse_quant_spec(r.quant));
}

bool export_has_bundle() {
#ifdef LATMIX_WITH_BUNDLE
  return true;
#else
  return false;
#endif
}

std::string export_staging_folder(const ExportRequest& r) {
  if (!r.zip) return {};
  const fs::path z(r.out);
  const fs::path dir = z.has_parent_path() ? z.parent_path() : fs::path(".");
  return (dir / ("." + z.filename().string() + ".folder-" + std::to_string(::getpid()))).string();
}

bool export_streams(const ExportRequest& r) {
  return r.transforms.empty() && (r.method == "rtn" || r.method == "gptq");
}

json to_json(const ExportResult& result) {
  const latmix::ExportResult& w = result.written;
  return {{"path", result.path},
          {"kind", to_string(w.kind)},
          {"zip", result.zip},
          {"bytes", w.bytes},
          {"zip_bytes", result.zip_bytes},
          {"files", w.files.size()},
          {"seconds", w.seconds},
          {"quantization", w.quantization.spec.empty() ? std::string() : w.quantization.describe()},
          {"verification", w.verification.to_json()},
          {"notes", w.notes},
          {"manifest", w.manifest},
          {"quantization_report", w.quantization.spec.empty() ? json(nullptr) : quant_report_json(w.quantization)}};
}

ExportResult export_result_from_json(const json& j) {
  const std::string what = "export result";
  const detail::ResultReader r(what, "", j,
                               {"path", "kind", "zip", "bytes", "zip_bytes", "files", "seconds", "quantization",
                                "verification", "notes", "manifest", "quantization_report"});
  ExportResult out;
  latmix::ExportResult& w = out.written;
  r.get("path", out.path, detail::as_string);
  w.path = out.path;
  r.get("kind", w.kind, [&](const json& v) {
    try {
      return parse_export_kind(detail::as_string(v));
    } catch (const UsageError& e) {
      throw UsageError(what + ": key 'kind': " + e.what());
    }
  });
  r.get("zip", out.zip, detail::as_bool);
  r.get("bytes", w.bytes, detail::as_unsigned);
  r.get("zip_bytes", out.zip_bytes, detail::as_unsigned);
  r.get("seconds", w.seconds, detail::as_number);
  if (r.has("verification")) w.verification = read_verification(what, "verification", r.raw("verification"));
  r.get("notes", w.notes, detail::as_strings);
  r.get("manifest", w.manifest, [](const json& v) {
    if (!v.is_object()) throw detail::WrongType{"an object"};
    return v;
  });
  // The files: the manifest lists them (name, bytes, sha256); "files" is their count.
  w.files = manifest_files(what, w.manifest);
  int64_t count = static_cast<int64_t>(w.files.size());
  r.get("files", count, detail::as_integer);
  if (count != static_cast<int64_t>(w.files.size())) {
    throw UsageError(what + ": key 'files': " + std::to_string(count) + " files, but the manifest lists " +
                     std::to_string(w.files.size()));
  }
  const json& report = r.raw("quantization_report");
  if (!report.is_null()) w.quantization = read_quant_report(what, "quantization_report", report);
  // "quantization" is the report's describe() (or ""): it must say the same.
  std::string quantization = w.quantization.spec.empty() ? std::string() : w.quantization.describe();
  const std::string written = quantization;
  r.get("quantization", quantization, detail::as_string);
  if (quantization != written) {
    throw UsageError(what + ": key 'quantization' does not match 'quantization_report' (\"" + quantization +
                     "\" against \"" + written + "\")");
  }
  return out;
}

std::string describe(const ExportResult& result) {
  const latmix::ExportResult& w = result.written;
  std::string s = to_string(w.kind) + " export written to " + result.path + " (" + std::to_string(w.bytes) +
                  " bytes, " + std::to_string(w.files.size()) + " files" + (result.zip ? ", zipped" : "") + ") in " +
                  format_seconds(w.seconds) + "\n";
  if (!w.quantization.spec.empty()) s += w.quantization.describe() + "\n";
  s += "verification:\n" + w.verification.describe();
  for (const auto& n : w.notes) s += "note: " + n + "\n";
  return s;
}

ExportResult run_export(const ExportRequest& r, const Model& model, const Tokenizer& tokenizer,
                        const ExportControl& control) {
  const ExportKind kind = parse_export_kind(r.as);
  const QuantSpec spec = parse_quant_spec(r.quant);
  check_request(r, kind, spec);
  const JobControl& job = control.learn.job;
  // Folding transforms (and building or learning them) needs the model held; a mapped one is copied.
  std::optional<Model> held;
  if (model.mapped() && !export_streams(r)) {
    check_memory_fits("Export", model_weight_bytes(model.config(), model.dtype()), model.device(),
                      "folding transforms needs the model held in memory (an rtn/gptq export without transforms "
                      "streams from the mapped files)");
    held.emplace(model.to(model.device(), model.dtype()));
  }
  const Model& source = held ? *held : model;

  std::optional<GptqCalibration> calib;
  if (!r.calib.empty() || spec.method == WeightMethod::Gptq) {
    calib = gptq_calibration(r.calib, r.calib_samples, r.calib_seqlen, source, tokenizer, control.bundled_sample);
    note(control, calib->note);
  }
  job.cancel.check();
  // Learning takes only text the user named (the bundled sample is GPTQ's default, not training text).
  MethodPlan mp = !r.transforms.empty()
                      ? plan_from_file(r)
                      : plan_of_method(r.method, source, !r.calib.empty() && calib ? &calib->set : nullptr, spec, control);

  ExportOptions o = export_options(r, kind, mp, calib ? &*calib : nullptr);
  if (kind == ExportKind::Gguf && spec.activations) {
    mp.notes.push_back("the spec's activation format (" + spec.activations->name() +
                       ") is not in a GGUF file: llama.cpp runs the MXFP4 weights with its own activation "
                       "handling (Q8_0 on the CPU)");
  }
  // load_model() reads folded-bf16 and compressed-tensors folders; a GGUF file is checked by decoding.
  const std::string text = r.verify_data.empty() ? regular_file_or_empty(control.bundled_sample) : r.verify_data;
  if (o.verify && has_ppl_check(kind) && !text.empty()) {
    add_verify_text(o, r, tokenizer, text);
  } else if (o.verify && has_ppl_check(kind)) {
    note(control, "note: no perplexity check: the bundled sample text is not installed; give --verify-data FILE");
  }

  make_parent_folder(r.out);
  RemoveOnExit staging;
  if (r.zip) {
    std::error_code ec;
    if (fs::exists(r.out, ec) && !r.overwrite) fail(r.out, "already exists", "a new path, or --overwrite", "an existing file");
    staging.path = export_staging_folder(r);
    o.out = staging.path;
    o.overwrite = false;
    o.space_factor = 2.0;
  }
  ExportResult result;
  result.path = r.out;
  result.zip = r.zip;
  result.written = export_model(source, r.model, mp.plan, spec, calib ? &calib->set : nullptr, o, job);
  for (auto& n : mp.notes) result.written.notes.insert(result.written.notes.begin(), n);
  if (r.zip) bundle_export(staging.path, r, result, job);
  return result;
}

// ---- verify ------------------------------------------------------------------------------------------

json to_json(const VerifyRequest& request) { return detail::write_request(verify_fields(), request); }

VerifyRequest verify_request_from_json(const json& j) { return detail::read_request("verify request", verify_fields(), j); }

std::vector<std::string> verify_command_line(const VerifyRequest& r) {
  std::vector<std::string> a = {"latmix", "verify", r.path};
  if (!r.data.empty()) a.insert(a.end(), {"--data", r.data});
  if (r.no_ppl) a.emplace_back("--no-ppl");
  return a;
}

json to_json(const VerifyResult& result) {
  json out = result.verification.to_json();
  out["path"] = result.path;
  out["zip"] = result.zip;
  out["kind"] = result.kind;
  out["notes"] = result.notes;
  return out;
}

VerifyResult verify_result_from_json(const json& j) {
  const std::string what = "verify result";
  const detail::ResultReader r(what, "", j, {"ok", "checks", "figures", "path", "zip", "kind", "notes"});
  VerifyResult out;
  json verification = json::object();
  for (const char* key : {"ok", "checks", "figures"}) {
    if (r.has(key)) verification[key] = r.raw(key);
  }
  out.verification = read_verification(what, "", verification);
  r.get("path", out.path, detail::as_string);
  r.get("zip", out.zip, detail::as_bool);
  r.get("kind", out.kind, detail::as_string);
  r.get("notes", out.notes, detail::as_strings);
  return out;
}

std::string verdict(const VerifyResult& result) {
  bool not_run = false, failed = false;
  for (const auto& c : result.verification.checks) {
    if (!c.ran) {
      not_run = true;
    } else if (!c.ok) {
      failed = true;
    }
  }
  if (result.verification.ok()) return "verified";
  return not_run && !failed ? "NOT VERIFIED (a check could not run)" : "VERIFICATION FAILED";
}

VerifyResult run_verify(const VerifyRequest& r, const JobControl& job) {
  VerifyResult out;
  out.path = r.path;
  std::error_code ec;
  out.zip = fs::is_regular_file(r.path, ec);
  if (out.zip) {
#ifdef LATMIX_WITH_BUNDLE
    out.kind = read_bundle_manifest(r.path).value("kind", std::string());
    out.verification = verify_bundle_contents(r.path, r.data, r.no_ppl, job);
#else
    throw UsageError(
        "verifying a .zip bundle needs the Qt build of latmix (Qt 6 Core and QuaZip); this build can "
        "verify an export folder: unzip it and run latmix verify on the folder");
#endif
  } else {
    out.verification = verify_export_with_text(r.path, r.data, r.no_ppl, job);
    try {  // the kind, for the summary; verify_export_with_text() already judged the manifest
      const json m = json::parse(read_text_file((fs::path(r.path) / "manifest.json").string()));
      if (m.is_object()) out.kind = m.value("kind", std::string());
    } catch (const std::exception&) {
      out.kind.clear();
    }
  }
  if (r.no_ppl) out.notes.push_back("no perplexity check (--no-ppl)");
  return out;
}

}  // namespace latmix::api
