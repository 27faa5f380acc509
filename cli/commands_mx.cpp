// latmix mx quantize | mx stats | mx block
#include <cmath>
#include <cstdio>
#include <iostream>
#include <nlohmann/json.hpp>
#include <sstream>

#include "commands.h"
#include "console.h"
#include "remote.h"
#include "latmix/api/block.h"
#include "latmix/calib_transforms.h"
#include "latmix/error.h"
#include "latmix/mx.h"
#include "latmix/tensor_io.h"
#include "result_text.h"

namespace latmix::cli {

using json = nlohmann::json;

namespace {

// The format named by --format (or NAME for stats) with --block / --scale / --round applied.
MxFormat format_from_args(const Args& args, const std::string& name) {
  MxFormat f = MxFormat::parse(name);
  if (args.has("block")) f.block = args.integer("block");
  f.scale = parse_scale_rule(args.get("scale"));
  f.rounding = parse_rounding(args.get("round"));
  f.tensor_scale = args.flag("tensor-scale");
  if (f.tensor_scale && f.scale_type != ScaleType::E4M3) throw UsageError("--tensor-scale applies to nvfp4 only");
  f.validate();
  return f;
}

bool quantizable(const TensorInfo& info) {
  const auto t = to_torch_dtype(info.dtype);
  return t && at::isFloatingType(*t) && !info.shape.empty() && info.numel() > 0;
}

std::string skip_reason(const TensorInfo& info) {
  const auto t = to_torch_dtype(info.dtype);
  if (!t || !at::isFloatingType(*t)) return "not a floating tensor (" + std::string(dtype_name(info.dtype)) + ")";
  return info.shape.empty() ? "a scalar" : "empty";
}

// An unchanged copy of a tensor (raw bytes where LibTorch lacks the dtype).
TensorSource copy_source(const std::shared_ptr<SafetensorsFile>& file, const TensorInfo& info) {
  const std::string name = info.name;
  if (to_torch_dtype(info.dtype)) {
    return {name, info.dtype, info.shape, [file, name] { return file->tensor(name); }};
  }
  return {name, info.dtype, info.shape, [file, name] { return file->raw_bytes(name); }};
}

// The packed tensors of one input tensor; the encoding runs once, when the codes are written.
void add_packed_sources(std::vector<TensorSource>& out, const std::shared_ptr<SafetensorsFile>& file,
                        const TensorInfo& info, const MxFormat& f) {
  auto packed = std::make_shared<MxPacked>();
  const std::string name = info.name;
  auto encode = [file, name, f, packed] {
    if (!packed->codes.defined()) *packed = mx_encode(file->tensor(name), f, -1, true);
  };
  std::vector<int64_t> cshape = info.shape, sshape = info.shape;
  const int64_t n = info.shape.back();
  cshape.back() = f.is_4bit() ? (n + 1) / 2 : n;
  sshape.back() = (n + f.block - 1) / f.block;
  out.push_back({name + ".codes", DType::U8, cshape, [encode, packed] {
                   encode();
                   return packed->codes;
                 }});
  out.push_back({name + ".scales", DType::U8, sshape, [encode, packed] {
                   encode();
                   return packed->scales;
                 }});
  if (f.tensor_scale) {
    out.push_back({name + ".tensor_scale", DType::F32, {1}, [encode, packed] {
                     encode();
                     return at::full({1}, packed->tensor_scale, at::kFloat);
                   }});
  }
}

int run_quantize(const Args& args) {
  apply_common_options(args);
  const MxFormat f = format_from_args(args, args.get("format"));
  const bool pack = args.flag("pack");
  const auto file = SafetensorsFile::open(args.get("in"));
  std::vector<TensorSource> sources;
  json rows = json::array();
  int64_t quantized = 0;
  for (const TensorInfo& info : file->header().tensors) {
    json row{{"name", info.name}, {"dtype", std::string(dtype_name(info.dtype))}, {"shape", info.shape}};
    if (!quantizable(info)) {
      sources.push_back(copy_source(file, info));
      row["action"] = "copied";
      row["note"] = skip_reason(info) + ": copied unchanged";
    } else if (pack) {
      add_packed_sources(sources, file, info, f);
      row["action"] = "packed";
      ++quantized;
    } else {
      const std::string name = info.name;
      sources.push_back({name, info.dtype, info.shape, [file, name, f] { return fake_quantize(file->tensor(name), f); }});
      row["action"] = "fake-quantized";
      ++quantized;
    }
    if (info.shape.size() && quantizable(info) && info.shape.back() % f.block) {
      row["note"] = "last dimension " + std::to_string(info.shape.back()) + " is not a multiple of " +
                    std::to_string(f.block) + ": the last block is a shorter tail";
    }
    rows.push_back(row);
  }
  std::map<std::string, std::string> meta = file->header().metadata;
  meta["latmix.mx.format"] = f.describe();
  meta["latmix.mx.layout"] = pack ? "NAME.codes (U8, 4-bit formats: element 2i low nibble) + NAME.scales (U8)"
                                  : "fake-quantized (dequantized values in the original dtype)";
  ProgressPrinter progress(args.flag("quiet"));
  JobControl job;
  job.cancel = interrupt_token();
  job.progress = progress.callback();
  write_safetensors(args.get("out"), sources, meta, job);
  progress.finish();
  if (args.flag("json")) {
    std::cout << json{{"in", args.get("in")}, {"out", args.get("out")}, {"format", f.describe()},
                      {"packed", pack}, {"quantized", quantized}, {"tensors", rows}}
                     .dump(2)
              << "\n";
    return 0;
  }
  for (const auto& r : rows) {
    std::printf("%-48s %-6s %-16s %s\n", r["name"].get<std::string>().c_str(), r["dtype"].get<std::string>().c_str(),
                r["action"].get<std::string>().c_str(), r.value("note", "").c_str());
  }
  std::printf("%lld of %zu tensors quantized to %s; wrote %s\n", static_cast<long long>(quantized), rows.size(),
              f.describe().c_str(), args.get("out").c_str());
  return 0;
}

std::vector<std::string> split_formats(const std::string& list) {
  std::vector<std::string> out;
  std::stringstream s(list);
  for (std::string item; std::getline(s, item, ',');) {
    if (!item.empty()) out.push_back(item);
  }
  if (out.empty()) throw UsageError("--formats: expected a comma-separated list of formats");
  return out;
}

json stats_json(const MxErrorStats& s) {
  return {{"sqnr_db", std::isfinite(s.sqnr_db) ? json(s.sqnr_db) : json("inf")},
          {"mse", s.mse},
          {"clip_rate", s.clip_rate},
          {"clipped", s.clipped},
          {"blocks", s.blocks},
          {"nan_blocks", s.nan_blocks}};
}

int run_stats(const Args& args) {
  apply_common_options(args);
  std::vector<MxFormat> formats;
  for (const auto& name : split_formats(args.get("formats"))) formats.push_back(format_from_args(args, name));
  const auto file = SafetensorsFile::open(args.get("in"));
  ProgressPrinter progress(args.flag("quiet"));
  const auto& tensors = file->header().tensors;
  json out = json::array();
  const bool as_json = args.flag("json");
  if (!as_json) std::printf("%-40s %-12s %10s %9s\n", "tensor", "format", "SQNR dB", "clip %");
  for (size_t i = 0; i < tensors.size(); ++i) {
    const TensorInfo& info = tensors[i];
    progress.update("stats", static_cast<int64_t>(i), static_cast<int64_t>(tensors.size()));
    if (!quantizable(info)) {
      out.push_back({{"name", info.name}, {"note", skip_reason(info) + ": skipped"}});
      continue;
    }
    const at::Tensor t = file->tensor(info.name);
    json per{{"name", info.name}, {"shape", info.shape}, {"dtype", std::string(dtype_name(info.dtype))}};
    for (const MxFormat& f : formats) {
      const MxErrorStats s = mx_error_stats(t, f);
      per["formats"][f.name()] = stats_json(s);
      if (!as_json) {
        progress.finish();
        std::printf("%-40s %-12s %10.2f %9.3f\n", info.name.c_str(), f.name().c_str(), s.sqnr_db, 100.0 * s.clip_rate);
      }
    }
    out.push_back(per);
  }
  progress.finish();
  if (as_json) {
    json fm = json::array();
    for (const auto& f : formats) fm.push_back(f.describe());
    std::cout << json{{"in", args.get("in")}, {"formats", fm}, {"tensors", out}}.dump(2) << "\n";
  }
  return 0;
}

// ---- mx block -------------------------------------------------------------------------------------

api::ExplainBlockRequest block_request_from_args(const Args& args) {
  api::ExplainBlockRequest r;
  r.model = args.get("model");
  r.tokenizer = args.get("tokenizer");
  r.device = args.get("device");
  r.dtype = args.get("dtype");
  r.point = args.get("point");
  r.layer = args.integer("layer");
  r.token = args.integer("token");
  r.block = args.integer("block");
  r.format = args.get("format");
  r.transform = args.get("transform");
  r.text = args.get("text");
  r.sequence = args.integer("sequence");
  r.samples = args.integer("samples");
  r.seqlen = args.integer("seqlen");
  r.sampling = args.get("sampling");
  const int64_t seed = args.integer("seed");
  if (seed < 0) throw UsageError("--seed: expected 0 or more");
  r.seed = static_cast<uint64_t>(seed);
  r.bos = args.flag("bos");
  r.sample = r.text.empty() ? bundled_sample() : "";
  const bool calib_options = args.has("sequence") || args.has("samples") || args.has("seqlen") ||
                             args.has("sampling") || args.has("bos");
  if (r.text.empty() && calib_options) {
    throw UsageError(
        "--sequence, --samples, --seqlen, --sampling and --bos choose a calibration sequence of --text FILE");
  }
  return r;
}

std::string sqnr_text(double db) {
  char buf[32];
  if (std::isinf(db)) return db > 0 ? "inf" : "-inf";
  std::snprintf(buf, sizeof buf, "%.2f", db);
  return buf;
}

// One block: its scale and rule, then value, code, quantized value and error, then the comparison.
void append_block(std::string& out, const char* heading, const MxBlockView& b,
                  const std::vector<api::FormatComparison>& rows) {
  appendf(out, "%s: %s\n", heading, b.format_details.c_str());
  appendf(out, "  amax %.6g   scale %s (code %d, rule %s)   element max %g   clip limit %.6g\n", b.amax,
          api::scale_label(b).c_str(), b.scale_code, b.scale_rule.c_str(), b.element_max, b.element_max * b.scale);
  appendf(out, "  %4s %14s %6s %14s %14s\n", "i", "value", "code", "quantized", "error");
  for (size_t i = 0; i < b.values.size(); ++i) {
    const double err = static_cast<double>(b.quantized[i]) - static_cast<double>(b.values[i]);
    appendf(out, "  %4zu %14.6g %6d %14.6g %14.6g\n", i, b.values[i], i < b.codes.size() ? b.codes[i] : 0,
            b.quantized[i], err);
  }
  appendf(out, "  SQNR %s dB   MSE %.6g   clipped %d of %zu\n", sqnr_text(b.sqnr_db).c_str(), b.mse, b.clipped,
          b.values.size());
  appendf(out, "  %-16s %-14s %10s %12s %8s\n", "format", "scale", "SQNR dB", "MSE", "clipped");
  for (const auto& r : rows) {
    appendf(out, "  %-16s %-14s %10s %12.4g %8lld\n", r.format.c_str(), r.scale.c_str(), sqnr_text(r.sqnr_db).c_str(),
            r.mse, static_cast<long long>(r.clipped));
  }
}

int run_block(const Args& args) {
  const api::ExplainBlockRequest request = block_request_from_args(args);
  ProgressPrinter progress(args.flag("quiet"));
  api::BlockExplanation e;
  if (remote_engine()) {
    // The engine's own bundled sample, not this machine's path to it.
    nlohmann::json remote_request = api::to_json(request);
    if (request.text.empty()) remote_request["sample"] = "";
    remote_request["weights"] = args.get("weights");
    e = api::block_explanation_from_json(run_remote("explain_block", remote_request, {progress.callback()}));
  } else {
    LoadedModel m = load_model_from_args(args, parse_compute_dtype(request.dtype), mapped_weights(args));
    JobControl job;
    job.cancel = interrupt_token();
    job.progress = progress.callback();
    e = api::run_explain_block(request, m.model, *m.tokenizer, job);
  }
  progress.finish();
  std::fprintf(stderr, "%s", format_block_notes(e, request).c_str());
  if (args.flag("json")) {
    std::cout << api::to_json(e).dump(2) << "\n";
    return 0;
  }
  std::printf("%s", format_block_text(e).c_str());
  return 0;
}

std::vector<OptionSpec> format_options() {
  return {{"block", "N", "values per block (default: 32; nvfp4: 16)", "", false},
          {"scale", "floor|ceil|rceil|even", "E8M0 scale rule", "floor", false},
          {"round", "even|away", "element rounding: ties to even or away from zero", "even", false},
          {"tensor-scale", "", "nvfp4: add the fp32 tensor scale (two-level scaling)", "", false}};
}

}  // namespace

std::string format_block_text(const api::BlockExplanation& e) {
  std::string out;
  const std::string source = e.text.empty() ? "the bundled sample's opening"
                                            : "calibration sequence " + std::to_string(e.sequence) + " of " + e.text;
  appendf(out, "%s, layer %lld, token %lld of %lld ('%s', id %d) of %s\n", e.point.c_str(),
          static_cast<long long>(e.layer), static_cast<long long>(e.token), static_cast<long long>(e.tokens),
          e.token_text.c_str(), e.token_id, source.c_str());
  appendf(out, "block %lld of %lld (channels %lld-%lld)\n\n", static_cast<long long>(e.block),
          static_cast<long long>(e.blocks), static_cast<long long>(e.first_channel),
          static_cast<long long>(e.last_channel));
  append_block(out, "before", e.before, e.comparison);
  if (e.after) {
    appendf(out, "\n");
    append_block(out, ("after " + e.transform).c_str(), *e.after, e.comparison_after);
  }
  return out;
}

std::string format_block_notes(const api::BlockExplanation& e, const api::ExplainBlockRequest& request) {
  std::string out;
  if (e.token_clamped) {
    appendf(out, "note: --token %lld is past the end of the %lld tokens: token %lld is shown\n",
            static_cast<long long>(request.token), static_cast<long long>(e.tokens), static_cast<long long>(e.token));
  }
  if (e.block_clamped) {
    appendf(out, "note: --block %lld is past the end of the %lld blocks: block %lld is shown\n",
            static_cast<long long>(request.block), static_cast<long long>(e.blocks), static_cast<long long>(e.block));
  }
  return out;
}

std::vector<Command> mx_commands() {
  std::vector<OptionSpec> quantize_opts = {
      {"format", "NAME", "mxfp4|mxfp6_e3m2|mxfp6_e2m3|mxfp8_e4m3|mxfp8_e5m2|mxint8|mxint4|nvfp4", "", true},
      {"in", "FILE", "input .safetensors file", "", true},
      {"out", "FILE", "output .safetensors file (written atomically)", "", true},
      {"pack", "", "write NAME.codes and NAME.scales (U8) instead of fake-quantized values", "", false}};
  std::vector<OptionSpec> stats_opts = {
      {"in", "FILE", "input .safetensors file", "", true},
      {"formats", "LIST", "comma-separated formats", "mxfp4,mxfp6_e3m2,mxfp6_e2m3,mxfp8_e4m3,mxfp8_e5m2,mxint8,mxint4,nvfp4",
       false}};
  for (const auto& o : format_options()) {
    quantize_opts.push_back(o);
    stats_opts.push_back(o);
  }
  return {
      {{"mx quantize", "Quantize every floating tensor of a safetensors file to an MX format.",
        "Each floating tensor is quantized along its last dimension in blocks of --block values (a shorter last\n"
        "block is a tail with its own scale) and written back dequantized in its own dtype, or with --pack as\n"
        "NAME.codes (4-bit formats two per byte, element 2i in the low nibble) and NAME.scales (E8M0; E4M3 for\n"
        "nvfp4). Other tensors are copied unchanged. mxint4 is microxcaling's int4, not an OCP format.",
        quantize_opts},
       run_quantize},
      {{"mx stats", "Quantization error (SQNR, clip rate) of each tensor in each MX format.",
        "SQNR = 10 log10(sum x^2 / sum (x - q)^2) over the tensor; clip rate = fraction of values whose scaled\n"
        "magnitude exceeded the element maximum. Blocks holding NaN/Inf are left out of both.",
        stats_opts},
       run_stats},
      {{"mx block", "Take one MX block of an activation apart: values, codes, scale, errors, other formats.",
        "Runs the model on the bundled sample's opening (BOS + up to 128 tokens; or with --text, calibration\n"
        "sequence --sequence of FILE chosen as `latmix stats` chooses them) up to --layer, takes the activation at\n"
        "--point for one token and one block of 32 values (16 for nvfp4), and prints how --format quantizes it:\n"
        "the shared scale and its rule, each value's code, quantized value and error, the SQNR, and the same\n"
        "block under every format. With --transform, the same channels after the transform (what the quantizer\n"
        "sees). A --token or --block past the end shows the last one (a note says so). The studio's Block\n"
        "Microscope shows the same block.",
        {model_option(), tokenizer_option(),
         {"point", "NAME", "capture point: residual|attn_in|o_in|residual_mid|mlp_in|down_in|lm_head_in", "residual",
          false},
         {"layer", "N", "layer (ignored for lm_head_in)", "0", false},
         {"token", "N", "token position in the sequence", "0", false},
         {"block", "N", "block index along the features", "0", false},
         {"format", "NAME", "mxfp4|mxfp6_e2m3|mxfp6_e3m2|mxfp8_e4m3|mxfp8_e5m2|mxint8|mxint4|nvfp4", "mxfp4", false},
         {"transform", "NAME|PREFIX", builtin_transform_list() + ", or a transforms file PREFIX (learned)",
          "none", false},
         {"text", "FILE", "take the tokens from a calibration sequence of this text (default: the bundled sample)", "",
          false},
         {"sequence", "N", "the calibration sequence of --text", "0", false},
         {"samples", "N", "calibration sequences of --text", "16", false},
         {"seqlen", "L", "tokens per sequence of --text", "256", false},
         {"sampling", "even|random", "how windows of --text are chosen", "even", false},
         {"seed", "N", "seed of --sampling random and of the transforms' random signs", "0", false},
         {"bos", "", "start every sequence of --text with the BOS token", "", false}, dtype_option(),
         weights_option()}},
       run_block},
  };
}

}  // namespace latmix::cli
