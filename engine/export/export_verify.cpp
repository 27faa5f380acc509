// Verification of an export: right after writing (against the in-memory model) and later from
// the folder alone (latmix verify).
#include <c10/core/InferenceMode.h>

#include <algorithm>
#include <array>
#include <cmath>
#include <cstdio>
#include <filesystem>
#include <sstream>

#include "export/export_internal.h"
#include "latmix/error.h"
#include "latmix/memory.h"
#include "latmix/files.h"
#include "latmix/json.h"
#include "latmix/model_files.h"
#include "latmix/scoped_hook.h"
#include "latmix/text_stream.h"

namespace latmix {

namespace fs = std::filesystem;
using namespace export_detail;

namespace {

std::string round_to(double value, int digits) {
  char buf[64];
  std::snprintf(buf, sizeof(buf), "%.*f", digits, value);
  return buf;
}

const char* kLinearNames[] = {"q", "k", "v", "o", "gate", "up", "down"};

at::Tensor read_packed(const TensorStore& store, const std::string& name, int64_t rows, int64_t cols) {
  MxPacked p;
  p.codes = store.raw_bytes(name + ".weight_packed").view({rows, cols / 2});
  p.scales = store.raw_bytes(name + ".weight_scale").view({rows, cols / 32});
  p.shape = {rows, cols};
  p.axis = 1;
  p.format = compressed_tensors_format();
  p.nibbles = true;
  return mx_decode(p, at::kFloat);
}

// A streaming export: each quantized tensor was checked against its fake-quantized weight when
// it was produced; here the bytes read back must be the bytes produced.
void check_streamed_weights(const ExportModel& m, const TensorStore& store, ExportKind kind, ExportVerification& out) {
  const StreamedWeights& rec = *m.streamed;
  std::string first_mismatch = rec.first_mismatch;
  for (const auto& [name, digest] : rec.digests) {
    if (!first_mismatch.empty()) break;
    if (!store.contains(name)) {
      first_mismatch = name + ": missing from the written files";
    } else if (bytes_digest(store.raw_bytes(name).contiguous()) != digest) {
      first_mismatch = name + ": the bytes read back differ from the bytes written";
    }
  }
  const std::string what = kind == ExportKind::CompressedTensors ? "packed codes decode to the fake-quantized weights"
                                                                 : "quantized weights read back bit for bit";
  out.figures["weights_checked"] = {{"tensors", rec.tensors}, {"values", rec.values}, {"streamed", true}};
  if (!first_mismatch.empty()) {
    out.add(what, false, first_mismatch);
  } else {
    out.add(what, true,
            std::to_string(rec.tensors) + " tensors, " + std::to_string(rec.values) +
                " values equal bit for bit (streamed: checked as each was produced, then read back byte for byte)");
  }
}

// The packed (compressed-tensors) or bf16 (folded) weights read back equal the fake-quantized ones.
void check_quantized_weights(const ExportModel& m, const TensorStore& store, ExportKind kind, ExportVerification& out) {
  if (m.stream) return check_streamed_weights(m, store, kind, out);
  c10::InferenceMode guard;
  int64_t tensors = 0, values = 0;
  std::string first_mismatch;
  auto compare = [&](const std::string& name, const at::Tensor& q) {
    const at::Tensor want = q.detach().to(at::kCPU, at::kFloat);
    at::Tensor got;
    if (kind == ExportKind::CompressedTensors)
      got = read_packed(store, name, want.size(0), want.size(1));
    else
      got = store.get(name + ".weight").to(at::kFloat);
    ++tensors;
    values += want.numel();
    if (first_mismatch.empty() && !at::equal(got, want)) {
      const int64_t differ = got.ne(want).sum().item<int64_t>();
      first_mismatch = name + ": " + std::to_string(differ) + " of " + std::to_string(want.numel()) + " values differ";
    }
  };
  const ModelWeights& w = m.quantized.weights();
  for (int64_t l = 0; l < static_cast<int64_t>(w.layers.size()); ++l) {
    const LayerWeights& lw = w.layers[static_cast<size_t>(l)];
    const at::Tensor* slots[] = {&lw.q, &lw.k, &lw.v, &lw.o, &lw.gate, &lw.up, &lw.down};
    for (int i = 0; i < 7; ++i) {
      if (!linear_quantized(m, l, kLinearNames[i])) continue;
      // Folded-bf16 holds Q A, not Q, behind an online transform: the perplexity check covers those.
      if (kind == ExportKind::FoldedBf16 && online_transform(m.plan, l, kLinearNames[i])) continue;
      compare(hf_linear_name(l, kLinearNames[i]), *slots[i]);
    }
  }
  if (m.spec.lm_head) compare("lm_head", w.lm_head);
  const std::string what = kind == ExportKind::CompressedTensors ? "packed codes decode to the fake-quantized weights"
                                                                 : "quantized weights read back bit for bit";
  out.figures["weights_checked"] = {{"tensors", tensors}, {"values", values}};
  if (!first_mismatch.empty()) {
    out.add(what, false, first_mismatch);
  } else {
    out.add(what, true, std::to_string(tensors) + " tensors, " + std::to_string(values) + " values equal bit for bit");
  }
}

// Every tensor of a decoder layer (weights, biases, norms).
std::array<at::Tensor*, 18> layer_tensors(LayerWeights& lw) {
  return {&lw.attn_norm, &lw.q,      &lw.k,      &lw.v,        &lw.o,      &lw.q_bias,
          &lw.k_bias,    &lw.v_bias, &lw.o_bias, &lw.q_norm,   &lw.k_norm, &lw.mlp_norm,
          &lw.gate,      &lw.up,     &lw.down,   &lw.gate_bias, &lw.up_bias, &lw.down_bias};
}

// The in-memory weight-quantized model as the folder stores it: online transforms folded into
// effective weights, every tensor rounded to bf16 (then back to the compute dtype).
Model stored_model(const ExportModel& m) {
  c10::InferenceMode guard;
  const ModelWeights& w = m.quantized.weights();
  const at::ScalarType dtype = w.embed.scalar_type();
  auto r = [dtype](const at::Tensor& t) { return t.defined() ? t.to(at::kBFloat16).to(dtype) : t; };
  ModelWeights s;
  s.embed = r(w.embed);
  s.final_norm = r(w.final_norm);
  s.lm_head = w.lm_head.is_same(w.embed) ? s.embed : r(w.lm_head);
  for (size_t l = 0; l < w.layers.size(); ++l) {
    LayerWeights lw = w.layers[l];
    at::Tensor* weights[] = {&lw.q, &lw.k, &lw.v, &lw.o, &lw.gate, &lw.up, &lw.down};
    at::Tensor* biases[] = {&lw.q_bias, &lw.k_bias, &lw.v_bias, &lw.o_bias, &lw.gate_bias, &lw.up_bias, &lw.down_bias};
    for (int i = 0; i < 7; ++i) {
      const TransformPtr t = online_transform(m.plan, static_cast<int64_t>(l), kLinearNames[i]);
      if (!t) continue;
      const at::Tensor q = *weights[i];
      *biases[i] = effective_bias(*biases[i], q, *t);
      *weights[i] = effective_weight(q, *t);
    }
    for (at::Tensor* t : layer_tensors(lw)) *t = r(*t);
    s.layers.push_back(lw);
  }
  return Model(m.fp.config(), std::move(s));
}

// The model with every layer tensor on `device`: a compressed-tensors export keeps the quantized
// layers in host memory (QuantizeOptions::layers_to_host) until this check needs them.
Model on_device(const Model& model, at::Device device) {
  Model out = model;
  for (LayerWeights& lw : out.weights().layers) {
    for (at::Tensor* t : layer_tensors(lw)) {
      if (t->defined() && t->device() != device) *t = t->to(device);
    }
  }
  return out;
}

// bf16 keeps 8 significant bits: a model stored in it moves by about this much, relatively.
constexpr double kBf16Tolerance = 1.0 / 256;
// fp32 on another device: each dot product of n terms summed in another order moves by up to
// n * 2^-24 relatively (n = 4096: 2.4e-4), by about sqrt(n) * 2^-24 (4e-6) typically, and the
// perplexity averages thousands of tokens' losses.
constexpr double kFp32DeviceTolerance = 1e-4;

// The device a perplexity is recorded on and compared with, spelled one way: "cpu", "cuda".
std::string device_kind(at::Device device) { return c10::DeviceTypeName(device.type(), /*lower_case=*/true); }

// The folder as load_model() reads it (compressed-tensors: codes decoded, transform_config
// matrices in the weights) against the in-memory model; what `latmix verify` recomputes later.
void check_perplexity(const ExportModel& m, const std::string& dir, const ExportOptions& o, const JobControl& job,
                      ExportVerification& out) {
  LoadOptions lo;
  lo.dtype = m.fp.dtype();
  lo.device = m.fp.device();
  lo.job.cancel = job.cancel;
  lo.mapped = m.fp.mapped();
  if (o.kind == ExportKind::CompressedTensors && !lo.mapped) {
    // Reloading in memory decodes every packed linear and holds it: on a device without that
    // room the check is left out with the reason (the packed codes were compared bit for bit
    // above). Mapped, they are decoded at use, one linear at a time (DeferredMatrices).
    const std::string shortfall = memory_shortfall(model_weight_bytes(m.fp.config(), lo.dtype), lo.device);
    if (!shortfall.empty()) {
      out.figures["perplexity_not_measured"] = "reloading the folder decodes its packed weights: " + shortfall;
      return;
    }
  }
  PerplexityResult exp;
  {
    Model reloaded = load_model(dir, lo);
    // A pass of a mapped 8B model takes minutes on a CPU: progress and cancel per layer.
    reloaded.add_hook(std::make_shared<LayerProgressHook>("verify perplexity", reloaded.config().num_layers,
                                                          perplexity_passes(o.verify_ids.size(), o.verify_ppl), job));
    exp = evaluate_perplexity(reloaded, o.verify_ids, o.verify_ppl, job);
  }  // released before the in-memory model's layers come back to the device
  if (m.stream) {
    // The quantized model was never held: the weights were checked bit for bit instead, and the
    // folder's perplexity is recorded (equal to the in-memory export's: the files are the same).
    out.figures["perplexity"] = {{"text", o.verify_text},      {"exported", exp.perplexity},
                                 {"convention", exp.describe()}, {"seqlen", exp.seqlen},
                                 {"windows", exp.windows},       {"bos", exp.bos},
                                 {"digits", o.ppl_digits},       {"dtype", std::string(c10::toString(lo.dtype))},
                                 {"device", device_kind(lo.device)}};
    if (!o.verify_text_bytes.empty()) out.figures["perplexity"]["file"] = kPerplexityTextFile;
    out.add("perplexity of the exported folder (" + o.verify_text + ")", std::isfinite(exp.perplexity),
            round_to(exp.perplexity, o.ppl_digits) + " (" + exp.describe() +
                "; streamed export: no in-memory quantized model to compare with, its weights are checked above)");
    return;
  }
  const PerplexityResult mem = evaluate_perplexity(on_device(m.before_sign_fold ? *m.before_sign_fold : m.quantized, lo.device),
                                                   o.verify_ids, o.verify_ppl, job);
  const std::string e = round_to(exp.perplexity, o.ppl_digits), f = round_to(mem.perplexity, o.ppl_digits);
  const double rel = std::fabs(exp.perplexity - mem.perplexity) / mem.perplexity;
  out.figures["perplexity"] = {{"text", o.verify_text},
                               {"exported", exp.perplexity},
                               {"in_memory", mem.perplexity},
                               {"relative_difference", rel},
                               {"digits", o.ppl_digits},
                               {"convention", exp.describe()},
                               {"seqlen", exp.seqlen},
                               {"windows", exp.windows},
                               {"bos", exp.bos},
                               {"dtype", std::string(c10::toString(lo.dtype))},
                               {"device", device_kind(lo.device)}};
  if (!o.verify_text_bytes.empty()) out.figures["perplexity"]["file"] = kPerplexityTextFile;
  if (o.kind == ExportKind::FoldedBf16) {
    const PerplexityResult stored = evaluate_perplexity(stored_model(m), o.verify_ids, o.verify_ppl, job);
    const std::string s = round_to(stored.perplexity, o.ppl_digits);
    out.figures["perplexity"]["in_memory_as_stored"] = stored.perplexity;
    out.add("perplexity of the exported folder (" + o.verify_text + ")", e == s,
            e + ", the in-memory weight-quantized model as stored (bf16, online transforms in effective weights) " + s +
                " (" + exp.describe() + ")");
  }
  char buf[64];
  std::snprintf(buf, sizeof(buf), "%.2g", rel);
  out.add("perplexity against the in-memory model (" + std::string(c10::toString(lo.dtype)) +
              ", online transforms as hooks)",
          rel <= kBf16Tolerance, e + " vs " + f + ", relative difference " + buf + " (bf16 storage: at most 1/256)");
}

}  // namespace

bool ExportVerification::ok() const {
  for (const auto& c : checks) {
    if (!c.ok || !c.ran) return false;
  }
  return !checks.empty();
}

void ExportVerification::add(std::string what, bool ok, std::string detail) {
  checks.push_back({std::move(what), ok, std::move(detail)});
}

void ExportVerification::add_not_run(std::string what, std::string why) {
  checks.push_back({std::move(what), false, std::move(why), false});
}

std::string ExportVerification::describe() const {
  std::ostringstream s;
  for (const auto& c : checks) {
    s << (!c.ran ? "SKIP  " : c.ok ? "ok    " : "FAIL  ") << c.what << (c.detail.empty() ? "" : ": ") << c.detail
      << "\n";
  }
  return s.str();
}

nlohmann::json ExportVerification::to_json() const {
  nlohmann::json j = {{"ok", ok()}, {"checks", nlohmann::json::array()}, {"figures", figures}};
  for (const auto& c : checks)
    j["checks"].push_back({{"what", c.what}, {"ok", c.ok}, {"ran", c.ran}, {"detail", c.detail}});
  return j;
}

void check_manifest_files(const nlohmann::json& manifest, const std::string& manifest_file,
                          const std::map<std::string, ExportedFile>& found, ExportVerification& out) {
  const JsonObject m(manifest, manifest_file);
  const size_t count = m.has("files") ? m.array("files").size() : 0;
  std::map<std::string, bool> listed;
  for (size_t i = 0; i < count; ++i) {
    const JsonObject f = m.element("files", i);
    const std::string name = f.string_or("name", "");
    listed[name] = true;
    auto it = found.find(name);
    if (it == found.end()) {
      out.add("file " + name, false, "missing");
      continue;
    }
    const auto bytes = static_cast<uint64_t>(f.integer_in("bytes", 0, INT64_MAX));
    const std::string sha = f.string_or("sha256", "");
    if (it->second.bytes != bytes) {
      out.add("file " + name, false,
              std::to_string(it->second.bytes) + " bytes, the manifest says " + std::to_string(bytes));
    } else if (it->second.sha256 != sha) {
      out.add("file " + name, false, "SHA-256 " + it->second.sha256 + ", the manifest says " + sha);
    } else {
      out.add("file " + name, true, "SHA-256 " + sha.substr(0, 16) + "..., " + std::to_string(bytes) + " bytes");
    }
  }
  for (const auto& [name, f] : found) {
    if (name != "manifest.json" && !listed.count(name)) out.add("file " + name, false, "not listed in manifest.json");
  }
  if (count == 0) out.add("manifest files", false, "manifest.json lists no files");
}

namespace export_detail {

ExportVerification verify_written(const ExportModel& m, const std::string& dir, const ExportOptions& o,
                                  const JobControl& job) {
  ExportVerification out;
  job.report("verify", 0, 1);
  if (o.kind == ExportKind::Transforms) {
    verify_transforms_files(m.plan, (fs::path(dir) / "transforms").string(), out);
    return out;
  }
  if (o.kind == ExportKind::Gguf) {
    verify_gguf_written(m, (fs::path(dir) / kGgufFileName).string(), o.gguf_float, out);
    job.report("verify", 1, 1);
    return out;
  }
  const TensorStore store = TensorStore::open(dir);
  check_quantized_weights(m, store, o.kind, out);
  if (o.kind == ExportKind::CompressedTensors) check_ct_transform_groups(dir, out);
  if ((o.kind == ExportKind::FoldedBf16 || o.kind == ExportKind::CompressedTensors) && !o.verify_ids.empty()) {
    check_perplexity(m, dir, o, job, out);
  }
  job.report("verify", 1, 1);
  return out;
}

void verify_transforms_files(const TransformPlan& plan, const std::string& prefix, ExportVerification& out) {
  const TransformPlan back = load_transforms(prefix);
  const auto a = plan.all(), b = back.all();
  std::string mismatch;
  int64_t tensors = 0;
  if (a.size() != b.size())
    mismatch = std::to_string(b.size()) + " transforms read back, " + std::to_string(a.size()) + " written";
  for (size_t i = 0; mismatch.empty() && i < a.size(); ++i) {
    const NamedTensors sa = a[i]->state(), sb = b[i]->state();
    if (a[i]->kind() != b[i]->kind() || sa.size() != sb.size()) {
      mismatch = "transform " + std::to_string(i) + " (" + a[i]->kind() + ") reads back as " + b[i]->kind();
      break;
    }
    for (size_t k = 0; k < sa.size(); ++k, ++tensors) {
      if (sa[k].first != sb[k].first ||
          !at::equal(sa[k].second.detach().to(at::kCPU), sb[k].second.detach().to(at::kCPU))) {
        mismatch = "transform " + std::to_string(i) + " (" + a[i]->kind() + "): tensor " + sa[k].first + " differs";
        break;
      }
    }
  }
  out.add("transforms reload", mismatch.empty(),
          mismatch.empty()
              ? std::to_string(a.size()) + " transforms, " + std::to_string(tensors) + " tensors equal bit for bit"
              : mismatch);
}

}  // namespace export_detail

// ---- latmix verify DIR ------------------------------------------------------------------------

namespace {

std::string manifest_path(const std::string& export_path) {
  return (fs::path(export_path) / "manifest.json").string();
}

nlohmann::json read_manifest(const std::string& path) {
  const std::string file = manifest_path(path);
  std::error_code ec;
  // exists, not is_regular_file: a FIFO or device there gets read_text_file's precise refusal.
  if (!fs::exists(file, ec)) fail(path, "not an export folder", "a manifest.json", "none");
  nlohmann::json j = read_json_file(file);
  const JsonObject m(j, file);
  if (m.string_or("format", "") != "latmix-export")
    fail(file, "format", "\"latmix-export\"", m.string_or("format", "none"));
  return j;
}

/// The perplexity check the export recorded (an empty object when none).
JsonObject recorded_perplexity(const JsonObject& manifest) {
  return manifest.object_or_empty("verification").object_or_empty("figures").object_or_empty("perplexity");
}

void check_packed_folder(const std::string& path, ExportVerification& out) {
  const TensorStore store = TensorStore::open(path);
  int64_t tensors = 0;
  std::string problem;
  const std::string suffix = ".weight_packed";
  for (const std::string& name : store.names_ending_with(suffix)) {
    const std::string base = name.substr(0, name.size() - suffix.size());
    const TensorInfo& packed = store.info(name);
    if (!store.contains(base + ".weight_scale")) {
      problem = base + ": weight_packed without weight_scale";
      break;
    }
    const TensorInfo& scale = store.info(base + ".weight_scale");
    if (packed.dtype != DType::U8 || scale.dtype != DType::U8 || packed.shape.size() != 2 || scale.shape.size() != 2 ||
        scale.shape[0] != packed.shape[0] || scale.shape[1] * 16 != packed.shape[1]) {
      problem = base + ": weight_packed " + shape_to_string(packed.shape) + " and weight_scale " +
                shape_to_string(scale.shape) + " are not U8 [out, in/2] and U8 [out, in/32]";
      break;
    }
    const at::Tensor decoded = read_packed(store, base, packed.shape[0], packed.shape[1] * 2);
    if (!at::isfinite(decoded).all().item<bool>()) {
      problem = base + ": NaN scales (E8M0 0xFF)";
      break;
    }
    ++tensors;
  }
  if (problem.empty() && tensors == 0) problem = "no weight_packed tensors";
  out.add("packed weights decode", problem.empty(), problem.empty() ? std::to_string(tensors) + " linears" : problem);
}

}  // namespace

RecordedPerplexity recorded_perplexity_of(const std::string& export_path) {
  const nlohmann::json j = read_manifest(export_path);
  const JsonObject m(j, manifest_path(export_path));
  const JsonObject p = recorded_perplexity(m);
  RecordedPerplexity r;
  r.recorded = !p.value().empty() && p.has("exported");
  r.text_name = p.string_or("text", "");
  if (p.has("seqlen") && p.has("windows")) {
    const bool bos = p.boolean_or("bos", false);
    r.tokens = p.integer_in("windows", 0, int64_t{1} << 20) * (p.integer_in("seqlen", 1, int64_t{1} << 20) - (bos ? 1 : 0));
  }
  // Only the file the export wrote, only when the manifest lists it (so its hash is checked), and
  // never through a symbolic link put in its place.
  const fs::path file = fs::path(export_path) / kPerplexityTextFile;
  std::error_code ec;
  if (p.string_or("file", "") == kPerplexityTextFile && !fs::is_symlink(fs::symlink_status(file, ec))) {
    const size_t count = m.has("files") ? m.array("files").size() : 0;
    for (size_t i = 0; i < count; ++i) {
      if (m.element("files", i).string_or("name", "") == kPerplexityTextFile) r.text_file = file.string();
    }
  }
  return r;
}

namespace {

void check_recorded_perplexity(Model& model, const JsonObject& m, const std::vector<int32_t>& ppl_ids,
                               const std::string& ppl_missing, const JobControl& job, ExportVerification& out) {
  const JsonObject p = recorded_perplexity(m);
  if (p.value().empty() || !p.has("exported")) return;  // the export recorded none
  if (ppl_ids.empty()) {
    out.add_not_run("perplexity as recorded",
                    ppl_missing.empty() ? "no text for it (give --data FILE)" : ppl_missing);
    return;
  }
  // Bounded: a tampered manifest must not ask for a window of 10^12 tokens.
  auto in_range = [&](const char* key, int64_t fallback, int64_t min, int64_t max) {
    return p.has(key) ? p.integer_in(key, min, max) : fallback;
  };
  PerplexityOptions po;
  po.seqlen = in_range("seqlen", 512, 2, int64_t{1} << 20);
  po.max_windows = in_range("windows", 0, 0, INT64_MAX);
  po.bos = p.boolean_or("bos", false);
  if (po.bos) {
    const auto bos = model.config().bos_token_id;
    if (!bos) {
      out.add_not_run("perplexity as recorded", "recorded with BOS, and config.json names no bos_token_id");
      return;
    }
    po.bos_id = *bos;
  }
  try {
    // A pass of a mapped 8B model takes minutes on a CPU: progress and cancel per layer.
    const ScopedHook layers(model, std::make_shared<LayerProgressHook>("perplexity", model.config().num_layers,
                                                                       perplexity_passes(ppl_ids.size(), po), job));
    const PerplexityResult r = evaluate_perplexity(model, ppl_ids, po, job);
    const int digits = static_cast<int>(in_range("digits", 2, 0, 17));
    const double recorded = p.number("exported");
    const std::string got = round_to(r.perplexity, digits), want = round_to(recorded, digits);
    const std::string here = device_kind(model.device());
    const std::string there = p.string_or("device", "");
    if (there == here) {  // the same computation: the same digits
      out.add("perplexity as recorded", got == want, got + ", the manifest says " + want + " (" + r.describe() + ")");
    } else {
      // Recorded on another device (or by an export that did not say where): the same sums in
      // another order. Within the compute dtype's rounding: bf16's 8 significant bits
      // (kBf16Tolerance), fp32's 24 bits summed over a few thousand terms per dot product.
      const bool bf16 = model.dtype() == at::kBFloat16;
      const double tolerance = bf16 ? kBf16Tolerance : kFp32DeviceTolerance;
      const double rel = std::fabs(r.perplexity - recorded) / std::max(std::fabs(recorded), 1e-300);
      char buf[160];
      std::snprintf(buf, sizeof(buf), "recorded on %s, measured on %s: relative difference %.2g, within %.2g (%s)",
                    there.empty() ? "a device the manifest does not name" : there.c_str(), here.c_str(), rel,
                    tolerance, bf16 ? "bf16" : "fp32");
      out.add("perplexity as recorded", rel <= tolerance,
              got + ", the manifest says " + want + "; " + buf + " (" + r.describe() + ")");
    }
  } catch (const Cancelled&) {
    throw;
  } catch (const Error& e) {
    out.add_not_run("perplexity as recorded", e.what());
  }
}

}  // namespace

ExportVerification verify_export(const std::string& path, const std::vector<int32_t>& ppl_ids, const JobControl& job,
                                 const std::string& ppl_missing) {
  const nlohmann::json manifest = read_manifest(path);
  const JsonObject m(manifest, manifest_path(path));
  ExportVerification out;
  // An export holds regular files only: a folder or link added later is not part of it (item 17).
  for (const std::string& odd : odd_entries(path)) {
    out.add("entry " + odd.substr(0, odd.find(':')), false, odd.substr(odd.find(':') + 2) + ", not written by an export");
  }
  std::map<std::string, ExportedFile> found;
  for (auto& f : hash_folder(path, job)) found[f.name] = f;
  check_manifest_files(manifest, m.file(), found, out);
  const ExportKind kind = parse_export_kind(m.string_or("kind", ""));
  try {
    if (kind == ExportKind::FoldedBf16 || kind == ExportKind::CompressedTensors) {
      if (kind == ExportKind::CompressedTensors) check_packed_folder(path, out);
      LoadOptions lo;
      lo.mapped = true;  // a big export is checked without holding it
      // The recorded perplexity is recomputed in the dtype it was computed in (an export with
      // --dtype bf16 recorded bf16's), fp32 otherwise.
      if (recorded_perplexity(m).string_or("dtype", "") == "BFloat16") lo.dtype = at::kBFloat16;
      Model model = load_model(path, lo);
      out.add("loads with load_model", true,
              model.config().architecture_name + ", " + std::to_string(model.config().num_layers) + " layers" +
                  (kind == ExportKind::CompressedTensors ? " (packed weights decoded at use)" : ""));
      if (kind == ExportKind::CompressedTensors) check_ct_transform_groups(path, out);
      check_recorded_perplexity(model, m, ppl_ids, ppl_missing, job, out);
    } else if (kind == ExportKind::Gguf) {
      check_gguf_file((fs::path(path) / kGgufFileName).string(), out);
    } else {
      const std::string prefix = (fs::path(path) / "transforms").string();
      verify_transforms_files(load_transforms(prefix), prefix, out);
      out.add("fingerprint recorded", !load_transforms_metadata(prefix).is_null(), "transforms.json metadata.model");
    }
  } catch (const Cancelled&) {
    throw;
  } catch (const Error& e) {
    out.add("contents", false, e.what());
  }
  return out;
}

ExportVerification verify_export_with_text(const std::string& path, const std::string& text, bool no_ppl,
                                           const JobControl& job) {
  const RecordedPerplexity rec = recorded_perplexity_of(path);
  std::vector<int32_t> ids;
  std::string missing;
  const std::string file = text.empty() ? rec.text_file : text;
  if (rec.recorded && !no_ppl) {
    if (file.empty()) {
      missing = std::string("the export holds no ") + kPerplexityTextFile +
                " (older exports); give --data FILE with the text it was made on" +
                (rec.text_name.empty() ? "" : " (recorded as " + json_excerpt(nlohmann::json(rec.text_name)) + ")");
    } else {
      try {  // the folder's own tokenizer; when it cannot be read, the file checks say why
        const ModelConfig config = load_model_config(path);
        const auto tok = load_model_tokenizer(path, "", static_cast<int32_t>(config.vocab_size));
        ids = encode_text_file(*tok, file, rec.tokens).ids;  // a FIFO or device is refused
        if (ids.empty()) missing = file + ": no text";
      } catch (const std::exception& e) {  // latmix::Error, or sentencepiece's protobuf check (docs/export.md)
        missing = e.what();
      }
    }
  }
  ExportVerification v = verify_export(path, ids, job, missing);
  if (no_ppl) {  // asked for: not a check that failed to run
    v.checks.erase(std::remove_if(v.checks.begin(), v.checks.end(), [](const VerifyCheck& c) { return !c.ran; }),
                   v.checks.end());
  }
  return v;
}

}  // namespace latmix
