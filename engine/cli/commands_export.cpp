// latmix export | verify
#include <unistd.h>

#include <algorithm>
#include <cstdio>
#include <filesystem>
#include <iostream>
#include <nlohmann/json.hpp>

#include "commands.h"
#include "console.h"
#include "latmix/calib_data.h"
#include "latmix/config.h"
#include "latmix/error.h"
#include "latmix/export.h"
#include "latmix/learn.h"
#include "latmix/files.h"
#include "latmix/json.h"
#include "latmix/text_stream.h"
#include "latmix/model_files.h"
#include "latmix/quant.h"
#ifdef LATMIX_WITH_BUNDLE
#include "bundle.h"
#endif

namespace latmix::cli {

using json = nlohmann::json;
namespace fs = std::filesystem;

namespace {

constexpr bool kHasBundle =
#ifdef LATMIX_WITH_BUNDLE
    true;
#else
    false;
#endif

/// The plan of a method and what the manifest records about it.
struct MethodPlan {
  TransformPlan plan;
  json settings = json::object();  ///< every setting of the method
  std::string source = "none";     ///< where the plan came from
  std::vector<std::string> notes;
};

/// Where `--method NAME` without --transforms becomes a plan: nothing for rtn/gptq, the fixed
/// transforms of quarot/mr-gptq, and for the learned presets a learning run with the method's
/// defaults (latmix/learn.h) on the --calib text, announced on stderr.
MethodPlan obtain_method_plan(const std::string& method, const Model& model, const CalibrationSet* calib,
                              const QuantSpec& spec, const JobControl& job) {
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
    std::fprintf(stderr, "note: no --transforms: learning %s with its defaults first (%lld steps%s, %s)\n",
                 method.c_str(), static_cast<long long>(s.steps), s.mode == LearnMode::LayerWise ? " per layer" : "",
                 calib->describe().c_str());
  }
  LearnControl control;
  control.job.cancel = interrupt_token();
  control.job = job;
  MethodResult r = obtain_plan(model, calib, s, control);
  out.plan = std::move(r.plan);
  out.settings = s.to_json();
  out.source = preset.learned ? "learned by this export (method defaults)" : "built by this export (fixed transforms)";
  for (const auto& [name, value] : r.conditions) {
    out.notes.push_back("condition number of the learned " + name + ": " + std::to_string(value));
  }
  return out;
}

// The text of the perplexity check: --verify-data, else the bundled calibration sample.
std::string verify_text_path(const Args& args) {
  if (args.has("verify-data")) return args.get("verify-data");
  const std::string res = bundled_resources_dir();
  if (res.empty()) return {};
  const fs::path p = fs::path(res) / "calibration" / "pride_and_prejudice_ch1-6.txt";
  std::error_code ec;
  return fs::is_regular_file(p, ec) ? p.string() : std::string();
}

// A hidden folder beside the zip for the export before it is zipped (removed afterwards).
std::string staging_folder_for(const std::string& zip) {
  const fs::path z(zip);
  const fs::path dir = z.has_parent_path() ? z.parent_path() : fs::path(".");
  return (dir / ("." + z.filename().string() + ".folder-" + std::to_string(::getpid()))).string();
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

void print_result(const ExportResult& r, const std::string& out_path, bool zipped) {
  std::printf("%s export written to %s (%s bytes, %zu files%s) in %s\n", to_string(r.kind).c_str(), out_path.c_str(),
              std::to_string(r.bytes).c_str(), r.files.size(), zipped ? ", zipped" : "",
              format_duration(r.seconds).c_str());
  if (!r.quantization.spec.empty()) std::printf("%s\n", r.quantization.describe().c_str());
  std::printf("verification:\n%s", r.verification.describe().c_str());
  for (const auto& n : r.notes) std::printf("note: %s\n", n.c_str());
}

int run_export(const Args& args) {
  const ExportKind kind = parse_export_kind(args.get("as"));
  const QuantSpec spec = parse_quant_spec(args.get("quant"));
  const bool zip = args.flag("zip");
  const std::string out = args.get("out");
  if (zip && !kHasBundle) {
    throw UsageError(
        "--zip needs the Qt build of latmix (the bundle library uses Qt 6 Core and QuaZip); this build "
        "has neither: export the folder without --zip, or build with Qt 6 and QuaZip installed");
  }
  if (zip && fs::path(out).extension() != ".zip")
    throw UsageError("--zip: --out must name a .zip file, found '" + out + "'");
  if (zip) {
    // The folder export checks its own target; the zip is written elsewhere, so check it here too,
    // before any work: never the source model, nor inside its folder (issue 20, item 15).
    std::error_code ec;
    const fs::path zip_path = fs::weakly_canonical(fs::absolute(out), ec);
    const fs::path source = fs::weakly_canonical(fs::absolute(args.get("model")), ec);
    const auto rel = zip_path.lexically_relative(source);
    if (!ec && (zip_path == source || (!rel.empty() && *rel.begin() != ".."))) {
      fail(out, "refusing to write the bundle there: it would write into the source model",
           "a path outside " + source.string(), zip_path.string());
    }
  }
  // The export ships the folder's own tokenizer files; checking its perplexity with another
  // tokenizer would verify something else than what is shipped (issue 20, item 7).
  if (args.has("tokenizer") && fs::is_directory(args.get("model"))) {
    throw UsageError("--tokenizer: an export ships the model folder's own tokenizer files, so it is checked with "
                     "them; put the tokenizer you want in the folder instead (or leave --tokenizer out)");
  }
  if (args.integer("shard-size") < 1) throw UsageError("--shard-size: expected 1 (MB) or more");
  // The perplexity check's text, judged before any work (issue 20, item 22): an empty path or a
  // folder used to skip the check without a word.
  const std::string text = verify_text_path(args);
  if (args.has("verify-data")) {
    if (text.empty()) throw UsageError("--verify-data: empty path (give a text file, or leave the option out)");
    if (args.flag("no-verify")) throw UsageError("--verify-data is the text of the verification, which --no-verify skips");
    if (kind == ExportKind::Transforms || kind == ExportKind::Gguf) {
      throw UsageError("--verify-data: --as " + to_string(kind) + " has no perplexity check");
    }
    ::close(open_regular_file(text));  // a folder, FIFO or device is refused naming what it is
  }
  if (args.integer("verify-seqlen") < 2) throw UsageError("--verify-seqlen: expected 2 or more");
  if (args.integer("verify-windows") < 0) throw UsageError("--verify-windows: expected 0 (all) or more");
  if (args.has("calib") && spec.method != WeightMethod::Gptq && !find_method(args.get("method")).learned)
    throw UsageError("--calib is for weights=gptq in --quant, or for learning a method's transforms");
  // Mapped weights stream an rtn/gptq export without transforms; the methods that build or learn
  // transforms (and folding) need the model in memory.
  const bool streamable = !args.has("transforms") && (args.get("method") == "rtn" || args.get("method") == "gptq");
  // --weights auto streams on CUDA too: each weight goes through the device once (measured on the
  // 8B shape: 4 min 00 s and 18.6 GB of GPU memory against 4 min 52 s and 28.0 GB held).
  const bool mapped = args.get("weights") == "auto" || mapped_weights(args);
  LoadedModel m = load_model_from_args(args, parse_compute_dtype(args.get("dtype")), mapped && streamable);
  ProgressPrinter progress(args.flag("quiet"));
  JobControl job;
  job.cancel = interrupt_token();
  job.progress = progress.callback();
  std::optional<CalibrationSet> calib;
  std::string calib_file;
  if (args.has("calib") || spec.method == WeightMethod::Gptq)
    calib = calibration_from_args(args, m.model, *m.tokenizer, &calib_file);

  const std::string method = args.get("method");
  MethodPlan mp;
  if (args.has("transforms")) {
    CheckedTransforms t = load_transforms_checked(args.get("transforms"), args.get("model"));
    mp.plan = std::move(t.plan);
    mp.source = args.get("transforms");
    mp.notes = std::move(t.notes);
    if (!t.metadata.is_null() && t.metadata.contains("settings")) mp.settings = t.metadata["settings"];
    const std::string learned = mp.settings.value("method", method);
    if (learned != method) {
      mp.notes.push_back("the transforms were saved with --method " + learned + "; recorded as " + method);
    }
    mp.settings["method"] = method;
  } else {
    // Learning takes only text the user named (the bundled sample is GPTQ's default, not training text).
    mp = obtain_method_plan(method, m.model, args.has("calib") && calib ? &*calib : nullptr, spec, job);
  }

  ExportOptions o;
  o.kind = kind;
  o.overwrite = args.flag("overwrite");
  o.method = method;
  o.settings = mp.settings;
  if (calib) o.settings["calibration"] = {{"file", calib_file}, {"description", calib->describe()}};
  o.transforms_source = mp.source;
  o.max_shard_bytes = static_cast<uint64_t>(args.integer("shard-size")) << 20;
  o.verify = !args.flag("no-verify");
  o.gguf_float = parse_gguf_float(args.get("gguf-float"));
  if (kind != ExportKind::Gguf && args.get("gguf-float") != "f32") throw UsageError("--gguf-float is for --as gguf");
  if (kind == ExportKind::Gguf && spec.activations) {
    mp.notes.push_back("the spec's activation format (" + spec.activations->name() +
                       ") is not in a GGUF file: llama.cpp runs the MXFP4 weights with its own activation "
                       "handling (Q8_0 on the CPU)");
  }
  // load_model() reads folded-bf16 and compressed-tensors folders; a GGUF file is checked by decoding.
  const bool ppl_check = kind == ExportKind::FoldedBf16 || kind == ExportKind::CompressedTensors;
  if (o.verify && ppl_check && !text.empty()) {
    o.verify_ppl.seqlen = args.integer("verify-seqlen");
    o.verify_ppl.max_windows = args.integer("verify-windows");
    // Only what the check's windows need, and that text travels inside the export.
    EncodedText t = encode_text_file(*m.tokenizer, text, o.verify_ppl.max_windows * o.verify_ppl.seqlen, true);
    if (static_cast<int64_t>(t.ids.size()) < o.verify_ppl.seqlen) {
      fail(text, "too short for the perplexity check (--verify-data)",
           "at least one window of " + std::to_string(o.verify_ppl.seqlen) + " tokens (--verify-seqlen)",
           std::to_string(t.ids.size()) + " tokens");
    }
    o.verify_ids = std::move(t.ids);
    o.verify_text = text;
    o.verify_text_bytes = std::move(t.text);
  } else if (o.verify && ppl_check) {
    std::fprintf(stderr, "note: no perplexity check: the bundled sample text is not installed; give --verify-data FILE\n");
  }
  RemoveOnExit staging;
  o.out = out;
  if (zip) {
    std::error_code ec;
    if (fs::exists(out, ec) && !o.overwrite)
      fail(out, "already exists", "a new path, or --overwrite", "an existing file");
    staging.path = staging_folder_for(out);
    o.out = staging.path;
    o.overwrite = false;
    o.space_factor = 2.0;
  }
  ExportResult r = export_model(m.model, args.get("model"), mp.plan, spec, calib ? &*calib : nullptr, o, job);
  for (auto& n : mp.notes) r.notes.insert(r.notes.begin(), n);
#ifdef LATMIX_WITH_BUNDLE
  if (zip) {
    write_bundle(staging.path, out, args.flag("overwrite"), job);
    const ExportVerification v = verify_bundle(out, job);
    for (const auto& c : v.checks) {
      if (!c.ok) {
        std::error_code ec;
        fs::remove(out, ec);
        fail(out, "the bundle failed its verification and was removed: " + c.what + ": " + c.detail);
      }
    }
    r.verification.add("bundle " + fs::path(out).filename().string(), true,
                       std::to_string(v.checks.size()) + " entries match the manifest");
  }
#endif
  progress.finish();
  if (args.flag("json")) {
    json j = {{"path", out},      {"kind", to_string(r.kind)}, {"zip", zip},
              {"bytes", r.bytes}, {"seconds", r.seconds},      {"verification", r.verification.to_json()},
              {"notes", r.notes}, {"manifest", r.manifest}};
    std::cout << j.dump(2) << "\n";
  } else {
    print_result(r, out, zip);
  }
  return 0;
}

int run_verify(const Args& args) {
  const std::string path = args.get("path");
  ProgressPrinter progress(args.flag("quiet"));
  JobControl job;
  job.cancel = interrupt_token();
  job.progress = progress.callback();
  ExportVerification v;
  std::error_code ec;
  if (fs::is_regular_file(path, ec)) {
#ifdef LATMIX_WITH_BUNDLE
    v = verify_bundle_contents(path, args.has("data") ? args.get("data") : "", args.flag("no-ppl"), job);
    if (args.flag("no-ppl")) std::fprintf(stderr, "note: no perplexity check (--no-ppl)\n");
#else
    throw UsageError(
        "verifying a .zip bundle needs the Qt build of latmix (Qt 6 Core and QuaZip); this build can "
        "verify an export folder: unzip it and run latmix verify on the folder");
#endif
  } else {
    v = verify_export_with_text(path, args.has("data") ? args.get("data") : "", args.flag("no-ppl"), job);
    if (args.flag("no-ppl")) std::fprintf(stderr, "note: no perplexity check (--no-ppl)\n");
  }
  progress.finish();
  if (args.flag("json")) {
    std::cout << v.to_json().dump(2) << "\n";
  } else {
    bool not_run = false, failed = false;
    for (const auto& c : v.checks) {
      if (!c.ran) not_run = true;
      else if (!c.ok) failed = true;
    }
    std::printf("%s%s: %s\n", v.describe().c_str(), path.c_str(),
                v.ok()                   ? "verified"
                : not_run && !failed     ? "NOT VERIFIED (a check could not run)"
                                         : "VERIFICATION FAILED");
  }
  return v.ok() ? 0 : 1;
}

}  // namespace

std::vector<Command> export_commands() {
  std::vector<Command> commands = {
      {{"export",
        "Export a model with its transforms and quantization: folded bf16, compressed-tensors MXFP4, GGUF MXFP4, or "
        "transforms.",
        "--as folded-bf16: a plain Hugging Face folder (bf16) of the weight-quantized model, every transform folded\n"
        "(online ones into effective weights Q(W A^-1) A); compressed-tensors: mxfp4-pack-quantized (vLLM,\n"
        "compressed-tensors), online transforms in transform_config; gguf: OUT/model.gguf for llama.cpp (llama\n"
        "architecture, byte-level BPE vocabulary, MXFP4 weights as ggml blocks from our codes, other tensors\n"
        "--gguf-float; plans with an online transform are refused); transforms: the plan with the model's\n"
        "fingerprint, for --transforms later. --method names the preset (recorded in the manifest); without\n"
        "--transforms only rtn and gptq (no transforms) export. Written atomically (temp folder, fsync, rename),\n"
        "checked before it appears (packed codes bit for bit; the perplexity of the folder as load_model() reads it\n"
        "on --verify-data, default the bundled calibration text: the part of that text the check uses is written\n"
        "into the export as perplexity-text.txt), with README.md and manifest.json (SHA-256 of every file).\n"
        "--zip (Qt build): the folder as one .zip (stored, zip64). Memory: with --weights mapped (the default) an\n"
        "rtn/gptq export without transforms streams: each weight is quantized (GPTQ: one layer's Hessians at a\n"
        "time), written and dropped, so an 8B model exports in a few GB. Other exports hold the model in memory;\n"
        "GPTQ runs layer by layer on the calibration stream (samples x seqlen x hidden, on the model's device) with\n"
        "one layer's Hessians; compressed-tensors moves each quantized layer to host memory once the stream has\n"
        "passed it, so the device holds the model plus one layer's work. See docs/export.md.",
        {model_option(),
         tokenizer_option(),
         {"method", "NAME", "method preset (rtn, gptq, or the method the --transforms were learned with)", "", true},
         {"transforms", "PREFIX",
          "transforms saved by latmix learn / export --as transforms (PREFIX.json + .safetensors)", "", false},
         {"quant", "SPEC", "quantization (latmix/quant.h grammar), e.g. w=mxfp4,a=mxfp4", "", true},
         {"as", "KIND", "folded-bf16, compressed-tensors, gguf or transforms", "", true},
         {"gguf-float", "TYPE", "gguf: type of the tensors that are not MXFP4 (norms stay f32): f32, f16 or bf16",
          "f32", false},
         {"out", "PATH", "export folder to create (with --zip: the .zip file)", "", true},
         {"zip", "", "write the export as one .zip bundle (needs the Qt build)", "", false},
         {"overwrite", "", "replace an earlier export at --out", "", false},
         {"shard-size", "MB", "largest safetensors shard (tensor data)", "4096", false},
         {"verify-data", "FILE", "text of the perplexity check (default: the bundled sample)", "", false},
         {"verify-seqlen", "N", "perplexity window of the check", "256", false},
         {"verify-windows", "K", "windows of the check (0: all)", "8", false},
         {"no-verify", "", "skip the verification pass", "", false},
         dtype_option(),
         {"weights", "auto|mapped|memory",
          "mapped: the source stays memory-mapped and an rtn/gptq export without transforms streams (each weight "
          "quantized, written and dropped); memory: the model converted at load and held; auto: mapped, on the CPU "
          "and on CUDA",
          "auto", false}}},
       run_export},
      {{"verify",
        "Check an export folder or .zip bundle against its manifest.",
        "Every file's size and SHA-256 against manifest.json (nothing missing, nothing extra, no folder or link); then\n"
        "for a folder what its kind allows: folded-bf16 and compressed-tensors load (packed codes decoded) and their\n"
        "perplexity on the export's own perplexity-text.txt (or --data) matches the manifest; transforms reload.\n"
        "A recorded perplexity that cannot be recomputed is reported as SKIP and the export is NOT VERIFIED. A .zip\n"
        "bundle (Qt build): entry names must be plain, sizes are checked against the manifest before anything is\n"
        "read, then every entry is hashed; when all match, the entries are unzipped into a private temp folder\n"
        "($TMPDIR, removed afterwards) and get the folder's checks. Exit code 1 when a check fails or could not run.",
        {{"path", "PATH", "export folder or .zip bundle", "", true},
         {"data", "FILE", "text for the perplexity check (default: the export's perplexity-text.txt)", "", false},
         {"no-ppl", "", "skip the perplexity check", "", false}}},
       run_verify},
  };
  auto& options = commands[0].spec.options;
  for (auto& o : calibration_options()) options.insert(options.end() - 1, o);
  return commands;
}

}  // namespace latmix::cli
