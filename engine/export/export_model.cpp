// export_model(): the order of the work (export.h): checks, quantized model, files, verification,
// README and manifest, rename.
#include <algorithm>
#include <chrono>
#include <ctime>
#include <filesystem>

#include "export/export_internal.h"
#include "latmix/error.h"
#include "latmix/sha256.h"
#include "latmix/version.h"

namespace latmix {

namespace fs = std::filesystem;
using namespace export_detail;
using nlohmann::json;

namespace {

std::string utc_now() {
  const std::time_t t = std::time(nullptr);
  std::tm tm{};
  gmtime_r(&t, &tm);
  char buf[32];
  std::strftime(buf, sizeof(buf), "%Y-%m-%dT%H:%M:%SZ", &tm);
  return buf;
}

// SHA-256 of every regular file of the source (the folder, or the .bin and the files beside it
// that belong to it: its tokenizers).
json source_files(const std::string& source_path, const JobControl& job) {
  std::error_code ec;
  std::vector<fs::path> paths;
  if (fs::is_directory(source_path, ec)) {
    for (const auto& e : fs::directory_iterator(source_path)) {
      if (e.is_regular_file()) paths.push_back(e.path());
    }
  } else {
    paths.push_back(source_path);
    for (const auto& e : fs::directory_iterator(
             fs::path(source_path).parent_path().empty() ? fs::path(".") : fs::path(source_path).parent_path())) {
      const std::string name = e.path().filename().string();
      if (e.is_regular_file() && name.rfind("tok", 0) == 0) paths.push_back(e.path());
    }
  }
  std::sort(paths.begin(), paths.end());
  json files = json::array();
  for (const auto& p : paths) {
    JobControl per_file;
    per_file.cancel = job.cancel;
    per_file.progress = [&job](std::string_view, int64_t d, int64_t t) { job.report("hash", d, t); };
    files.push_back({{"name", p.filename().string()},
                     {"bytes", static_cast<uint64_t>(fs::file_size(p))},
                     {"sha256", sha256_file(p.string(), per_file)}});
  }
  return files;
}

json quantization_json(const QuantSpec& spec, const QuantReport& report, ExportKind kind) {
  auto fmt = [](const std::optional<MxFormat>& f) { return f ? f->describe() : std::string("none"); };
  json j = {{"spec", to_string(spec)},
            {"weights", fmt(spec.weights)},
            {"activations", fmt(spec.activations)},
            {"lm_head", fmt(spec.lm_head)},
            {"weight_method", to_string(spec.method)}};
  if (kind != ExportKind::Transforms) j["report"] = report.describe();
  return j;
}

json formats_json(ExportKind kind, GgmlType gguf_float) {
  switch (kind) {
    case ExportKind::FoldedBf16:
      return {{"container", "safetensors"},
              {"dtype", "bf16"},
              {"layout", "Hugging Face, original architecture"},
              {"weights", "fake-quantized values (effective weights Q(W A^-1) A behind online transforms)"}};
    case ExportKind::CompressedTensors:
      return {{"container", "safetensors"},
              {"quantization_format", "compressed-tensors mxfp4-pack-quantized"},
              {"packed", "weight_packed U8 [out, in/2], low nibble = even column"},
              {"scales", "weight_scale U8 [out, in/32], E8M0"},
              {"other_tensors", "bf16"}};
    case ExportKind::Transforms:
      return {{"container", "safetensors + JSON"}, {"files", "transforms.safetensors, transforms.json"}};
    case ExportKind::Gguf:
      return {{"container", "GGUF v3"},
              {"file", kGgufFileName},
              {"architecture", "llama"},
              {"packed", "ggml block_mxfp4: E8M0 byte + 16 bytes, element j low nibble, j + 16 high"},
              {"norms", "F32"},
              {"other_tensors", to_string(gguf_float)}};
  }
  return json::object();
}

// The tensors, config and side files of a model folder.
void write_model_folder(const ExportModel& m, const std::string& source_path, const ExportOptions& o,
                        const std::string& dir, const JobControl& job, std::vector<std::string>& notes) {
  if (o.kind == ExportKind::Gguf) {
    const std::string description = std::string("latmix ") + version() + " export: method " + o.method +
                                    ", quantization " + to_string(m.spec) +
                                    " (weights only; see README.md beside this file)";
    write_gguf((fs::path(dir) / kGgufFileName).string(), gguf_metadata(m, source_path, o.gguf_float, description),
               gguf_tensors(m, o.gguf_float), job);
    return;
  }
  const std::vector<TensorSource> tensors =
      o.kind == ExportKind::FoldedBf16 ? folded_bf16_tensors(m) : compressed_tensors_tensors(m);
  write_safetensors_sharded(dir, tensors, o.max_shard_bytes, {{"format", "pt"}}, job);
  write_text((fs::path(dir) / "config.json").string(), export_config(m, source_path, o.kind).dump(2) + "\n");
  for (auto& n : copy_side_files(source_path, dir)) notes.push_back(std::move(n));
}

}  // namespace

std::string to_string(ExportKind kind) {
  switch (kind) {
    case ExportKind::FoldedBf16:
      return "folded-bf16";
    case ExportKind::CompressedTensors:
      return "compressed-tensors";
    case ExportKind::Transforms:
      return "transforms";
    case ExportKind::Gguf:
      return "gguf";
  }
  return "?";
}

ExportKind parse_export_kind(const std::string& name) {
  for (ExportKind k :
       {ExportKind::FoldedBf16, ExportKind::CompressedTensors, ExportKind::Gguf, ExportKind::Transforms}) {
    if (name == to_string(k)) return k;
  }
  throw UsageError("export kind: expected folded-bf16, compressed-tensors, gguf or transforms, found '" + name + "'");
}

ExportResult export_model(const Model& fp, const std::string& source_path, const TransformPlan& plan,
                          const QuantSpec& spec, const CalibrationSet* calib, const ExportOptions& o,
                          const JobControl& job) {
  const auto start = std::chrono::steady_clock::now();
  if (o.kind == ExportKind::CompressedTensors) check_compressed_tensors_spec(spec, plan, fp.config());
  if (o.kind == ExportKind::Gguf) check_gguf_spec(spec, plan, fp.config(), source_path);
  check_target(o.out, source_path, o.overwrite);
  // Space first, from the shapes alone (nothing is produced): the FP model's tensors as the
  // export lists them, plus an lm_head of its own when folding or quantizing unties it.
  ExportModel m{fp, fp, plan, spec, {}, {}, false, false, false, std::nullopt};
  uint64_t needed = estimate_export_bytes(m, source_path, o.kind);
  const ModelConfig& c = fp.config();
  if (o.kind != ExportKind::Transforms && c.tie_word_embeddings && (plan.residual || spec.lm_head)) {
    needed += static_cast<uint64_t>(c.vocab_size * c.hidden_size) * 2;
  }
  AtomicFolder temp(o.out, "export");  // an unwritable target fails here, before any long work
  check_space(parent_of(o.out), static_cast<uint64_t>(static_cast<double>(needed) * std::max(1.0, o.space_factor)));
  job.cancel.check();
  // compressed-tensors never runs the quantized model while writing (its verification brings the
  // layers back for the perplexity check), so its layers wait in host memory: device memory is the
  // FP model plus one layer's work.
  if (o.kind != ExportKind::Transforms) {
    m = prepare_export_model(fp, plan, spec, calib, job, o.kind);
  }
  if (o.kind == ExportKind::CompressedTensors) {
    std::vector<CtSignFold> sign_folds;
    const std::vector<CtTransformGroup> groups = ct_transform_groups(plan, c, &sign_folds);
    if (!sign_folds.empty()) m.before_sign_fold = m.quantized;  // shares the tensors fold_ct_signs replaces
    const std::string folded = fold_ct_signs(m.quantized, sign_folds);
    if (!folded.empty()) m.notes.push_back(folded);
    for (const auto& g : groups) {
      if (g.head_dim == 0 && g.n >= 1024) {
        m.notes.push_back("transform group " + g.name + " is stored dense (" + std::to_string(g.n) + " x " +
                          std::to_string(g.n) + " float32, " + format_bytes(static_cast<uint64_t>(g.n * g.n * 4)) +
                          " for each of its " + std::to_string(g.modules.size()) +
                          " targets): its blocks differ, so no block of head_dim describes it");
      }
    }
    m.notes.push_back(compressed_tensors_output_note(!groups.empty(), spec.activations.has_value()));
  }
  ExportResult result;
  result.kind = o.kind;
  result.notes = m.notes;
  json settings = o.settings.is_null() ? json::object() : o.settings;
  settings["method"] = o.method;
  settings["quant"] = to_string(spec);
  const ModelFingerprint fingerprint = model_fingerprint(source_path, settings);

  if (o.kind == ExportKind::Transforms) {
    save_transforms_for_model((fs::path(temp.path()) / "transforms").string(), plan, source_path, settings);
  } else {
    write_model_folder(m, source_path, o, temp.path(), job, result.notes);
    if (m.stream) m.report = m.stream->report();
    // The text of the perplexity check travels with the export (hashed like every file), so
    // `latmix verify` reads nothing outside it (issue 20, item 11).
    if (o.verify && !o.verify_ids.empty() && !o.verify_text_bytes.empty())
      write_text((fs::path(temp.path()) / kPerplexityTextFile).string(), o.verify_text_bytes);
  }
  job.cancel.check();
  if (o.verify) result.verification = verify_written(m, temp.path(), o, job);
  if (result.verification.figures.contains("perplexity_not_measured")) {
    result.notes.push_back("no perplexity check: " +
                           result.verification.figures["perplexity_not_measured"].get<std::string>());
  }
  if (o.verify && !result.verification.ok()) {
    fail(o.out, "the export failed its verification, nothing was written:\n" + result.verification.describe());
  }
  result.quantization = m.report;

  json manifest = {{"format", "latmix-export"},
                   {"version", 1},
                   {"kind", to_string(o.kind)},
                   {"created_utc", utc_now()},
                   {"tool", {{"name", "latmix"}, {"version", version()}, {"git_commit", git_commit()}}},
                   {"source", fingerprint.to_json()},
                   {"method",
                    {{"name", o.method},
                     {"settings", settings},
                     {"transforms_source", o.transforms_source},
                     {"plan", describe_plan(plan)}}},
                   {"quantization", quantization_json(spec, m.report, o.kind)},
                   {"formats", formats_json(o.kind, o.gguf_float)},
                   {"evaluation", o.evaluation.is_null() ? json::object() : o.evaluation},
                   {"verification", result.verification.to_json()},
                   {"notes", result.notes}};
  manifest["source"]["files_sha256"] = source_files(source_path, job);
  write_text((fs::path(temp.path()) / "README.md").string(), export_readme(manifest));
  result.files = hash_folder(temp.path(), job);
  manifest["files"] = json::array();
  for (const auto& f : result.files) {
    manifest["files"].push_back({{"name", f.name}, {"bytes", f.bytes}, {"sha256", f.sha256}});
    result.bytes += f.bytes;
  }
  write_text((fs::path(temp.path()) / "manifest.json").string(), manifest.dump(2) + "\n");
  job.cancel.check();
  temp.commit(replace_earlier_export(o.overwrite));
  result.path = o.out;
  result.manifest = std::move(manifest);
  result.seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
  return result;
}

}  // namespace latmix
