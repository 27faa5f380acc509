// The analyze task (latmix/api/analyze.h): the request <-> JSON and its command line, and the one
// place where a request becomes calibration windows, the capture and the fits.
#include "latmix/api/analyze.h"

#include <algorithm>
#include <chrono>
#include <memory>
#include <sstream>

#include "latmix/error.h"
#include "lists.h"
#include "request_json.h"
#include "result_json.h"

namespace latmix::api {

using json = nlohmann::json;

namespace {

// In the order of `latmix analyze --help`.
const detail::FieldTable<AnalyzeRequest>& analyze_fields() {
  using R = AnalyzeRequest;
  using detail::as_integer;
  using detail::as_number;
  using detail::as_string;
  using detail::as_unsigned;
  using detail::optional;
  using detail::required;
  static const detail::FieldTable<R> table = {
      {"model", required(&R::model, as_string)},
      {"tokenizer", required(&R::tokenizer, as_string)},
      {"data", required(&R::data, as_string)},
      {"samples", required(&R::samples, as_integer)},
      {"seqlen", required(&R::seqlen, as_integer)},
      {"sampling", required(&R::sampling, as_string)},
      {"seed", required(&R::seed, as_unsigned)},
      {"layer", optional(&R::layer, as_integer)},
      {"point", required(&R::point, as_string)},
      {"format", required(&R::format, as_string)},
      {"scale", optional(&R::scale, as_string)},
      {"round", optional(&R::round, as_string)},
      {"blocks", required(&R::blocks, as_string)},
      {"detail_block", required(&R::detail_block, as_integer)},
      {"steps", required(&R::steps, as_integer)},
      {"lr", required(&R::lr, as_number)},
      {"holdout", required(&R::holdout, as_number)},
      {"affine", required(&R::affine, as_string)},
      {"batch", required(&R::batch, as_integer)},
      {"out", required(&R::out, as_string)},
      {"dtype", required(&R::dtype, as_string)},
      {"weights", required(&R::weights, as_string)},
      {"device", required(&R::device, as_string)},
  };
  return table;
}

}  // namespace

json to_json(const AnalyzeRequest& request) { return detail::write_request(analyze_fields(), request); }

AnalyzeRequest analyze_request_from_json(const json& j) {
  return detail::read_request("analyze request", analyze_fields(), j);
}

std::vector<std::string> analyze_command_line(const AnalyzeRequest& r) {
  const AnalyzeRequest d;
  std::vector<std::string> a = {"latmix", "analyze", "--model", r.model};
  if (!r.tokenizer.empty()) a.insert(a.end(), {"--tokenizer", r.tokenizer});
  a.insert(a.end(), {"--data", r.data});
  auto integer = [&a](const char* name, int64_t v, int64_t fallback) {
    if (v != fallback) a.insert(a.end(), {name, std::to_string(v)});
  };
  auto number = [&a](const char* name, double v, double fallback) {
    if (v != fallback) a.insert(a.end(), {name, detail::number_text(v)});
  };
  auto text = [&a](const char* name, const std::string& v, const std::string& fallback) {
    if (v != fallback) a.insert(a.end(), {name, v});
  };
  integer("--samples", r.samples, d.samples);
  integer("--seqlen", r.seqlen, d.seqlen);
  text("--sampling", r.sampling, d.sampling);
  if (r.seed != 0) a.insert(a.end(), {"--seed", std::to_string(r.seed)});
  if (r.layer) a.insert(a.end(), {"--layer", std::to_string(*r.layer)});
  text("--point", r.point, d.point);
  text("--format", r.format, d.format);
  if (r.scale) a.insert(a.end(), {"--scale", *r.scale});
  if (r.round) a.insert(a.end(), {"--round", *r.round});
  text("--blocks", r.blocks, d.blocks);
  integer("--detail-block", r.detail_block, d.detail_block);
  integer("--steps", r.steps, d.steps);
  number("--lr", r.lr, d.lr);
  number("--holdout", r.holdout, d.holdout);
  text("--affine", r.affine, d.affine);
  integer("--batch", r.batch, d.batch);
  text("--dtype", r.dtype, d.dtype);
  text("--weights", r.weights, d.weights);
  a.insert(a.end(), {"--device", r.device, "--out", r.out.empty() ? std::string("DIR") : r.out});
  return a;
}

MxAnalysisOptions check_analyze_request(const AnalyzeRequest& r) {
  MxAnalysisOptions opt;
  opt.points = detail::capture_point_list(r.point);
  opt.format = parse_option("format", [&] { return MxFormat::parse(r.format); });
  if (r.scale) opt.format.scale = parse_option("scale", [&] { return parse_scale_rule(*r.scale); });
  if (r.round) opt.format.rounding = parse_option("round", [&] { return parse_rounding(*r.round); });
  if (r.layer) {
    if (*r.layer < 0) {
      throw UsageError("--layer " + std::to_string(*r.layer) + " is out of range: decoder layers count from 0");
    }
    opt.layers = {*r.layer};
  }
  // Every item, as `latmix analyze --blocks` has always read them (an empty one is no number).
  std::stringstream blocks(r.blocks);
  for (std::string item; std::getline(blocks, item, ',');) {
    size_t used = 0;
    int64_t b = 0;
    try {
      b = std::stoll(item, &used);
    } catch (const std::exception&) {
      used = 0;
    }
    if (used == 0 || used != item.size()) throw UsageError("--blocks: '" + item + "' is not a whole number");
    if (b < 1) throw UsageError("--blocks: block sizes must be >= 1, got " + std::to_string(b));
    opt.block_sizes.push_back(b);
  }
  opt.detail_block = r.detail_block;
  if (opt.detail_block < 1) throw UsageError("--detail-block: must be >= 1");
  opt.steps = r.steps;
  if (opt.steps < 0) throw UsageError("--steps: must be >= 0, got " + std::to_string(opt.steps));
  opt.holdout = r.holdout;
  if (!(opt.holdout >= 0 && opt.holdout < 1)) throw UsageError("--holdout: must be in [0, 1)");
  opt.lr = r.lr;
  if (!(opt.lr > 0)) throw UsageError("--lr: must be > 0");
  if (r.affine != "lu" && r.affine != "qr") throw UsageError("--affine: expected lu or qr, got '" + r.affine + "'");
  opt.affine = r.affine == "lu" ? AffineTransform::Param::LU : AffineTransform::Param::QR;
  opt.seed = r.seed;
  opt.batch_size = r.batch;
  if (opt.batch_size < 1) throw UsageError("--batch: must be >= 1");
  if (r.samples < 1) throw UsageError("--samples: must be >= 1");
  if (r.seqlen < 2) throw UsageError("--seqlen: must be >= 2");
  analyze_data_options(r);
  return opt;
}

CalibrationOptions analyze_data_options(const AnalyzeRequest& r) {
  CalibrationOptions c;
  c.samples = r.samples;
  c.seqlen = r.seqlen;
  c.sampling = parse_option("sampling", [&] { return parse_window_sampling(r.sampling); });
  c.seed = r.seed;
  return c;
}

json to_json(const AnalyzeResult& result) {
  json out = json::parse(mx_analysis_to_json(result.analysis));
  out["request"] = to_json(result.request);
  out["data"] = result.data;
  out["seconds"] = result.seconds;
  out["files"] = result.files;
  return out;
}

namespace {

// ---- the result's JSON read back (mx_analysis_to_json()'s layout) -------------------------------------

const char* const kWhat = "analyze result";

AnalysisTransform transform_named(const std::string& path, const std::string& name) {
  for (AnalysisTransform t : analysis_transforms()) {
    if (analysis_transform_name(t) == name) return t;
  }
  throw UsageError(std::string(kWhat) + ": key '" + path + "': unknown transform '" + name + "'");
}

BlockSizeResult read_size(const std::string& path, const json& j) {
  const detail::ResultReader r(kWhat, path, j,
                               {"block", "skipped", "note", "rel_error", "condition_number", "block_crest",
                                "block_peak_power", "init_error", "fit_error", "best_step", "steps"});
  using detail::kNaN;
  using detail::number_or;
  BlockSizeResult s;
  r.get("block", s.block, detail::as_integer);
  r.get("skipped", s.skipped, detail::as_bool);
  r.get("note", s.note, detail::as_string);
  r.get("rel_error", s.rel_error, number_or(kNaN));
  r.get("condition_number", s.condition_number, number_or(kNaN));
  r.get("block_crest", s.block_crest, number_or(kNaN));
  r.get("block_peak_power", s.block_peak_power, number_or(kNaN));
  r.get("init_error", s.init_error, number_or(kNaN));
  r.get("fit_error", s.fit_error, number_or(kNaN));
  r.get("best_step", s.best_step, detail::as_integer);
  r.get("steps", s.steps, detail::as_integer);
  return s;
}

// The curves in `order` (the result's "transforms"); every transform of the layer must be one of them.
MxLayerAnalysis read_layer(const std::string& path, const json& j, const std::vector<std::string>& order) {
  const detail::ResultReader r(
      kWhat, path, j,
      {"point", "layer", "features", "tokens", "fit_tokens", "block_sizes", "detail_block", "transforms"});
  MxLayerAnalysis a;
  r.get("point", a.point, [&](const json& v) {
    try {
      return parse_capture_point(detail::as_string(v));
    } catch (const UsageError& e) {
      throw UsageError(std::string(kWhat) + ": key '" + r.name("point") + "': " + e.what());
    }
  });
  r.get("layer", a.layer, detail::as_integer);
  r.get("features", a.features, detail::as_integer);
  r.get("tokens", a.tokens, detail::as_integer);
  r.get("fit_tokens", a.fit_tokens, detail::as_integer);
  r.get("block_sizes", a.block_sizes, detail::as_integers);
  r.get("detail_block", a.detail_block, detail::as_integer);
  const json& curves = r.raw("transforms");
  if (curves.is_null()) return a;
  if (!curves.is_object()) detail::wrong_type(kWhat, r.name("transforms"), "an object", curves);
  for (const auto& [name, value] : curves.items()) {
    if (std::find(order.begin(), order.end(), name) == order.end()) {
      throw UsageError(std::string(kWhat) + ": unknown key '" + r.name("transforms") + "." + name + "'");
    }
  }
  for (const std::string& name : order) {
    if (!curves.contains(name)) continue;
    const std::string at = r.name("transforms") + "." + name;
    const detail::ResultReader c(kWhat, at, curves.at(name), {"sizes", "block_errors"});
    TransformCurve curve;
    curve.transform = transform_named(r.name("transforms"), name);
    c.list("sizes", curve.sizes, read_size);
    c.get("block_errors", curve.block_errors, [](const json& v) { return detail::as_numbers_or(v, detail::kNaN); });
    a.curves.push_back(std::move(curve));
  }
  return a;
}

}  // namespace

AnalyzeResult analyze_result_from_json(const json& j) {
  const detail::ResultReader r(kWhat, "", j,
                               {"format", "format_description", "affine", "steps", "lr", "holdout", "seed", "sequences",
                                "seqlen", "transforms", "layers", "request", "data", "seconds", "files"});
  AnalyzeResult out;
  MxAnalysis& a = out.analysis;
  r.get("format", a.format, detail::as_string);
  r.get("format_description", a.format_description, detail::as_string);
  r.get("affine", a.affine, detail::as_string);
  r.get("steps", a.steps, detail::as_integer);
  r.get("lr", a.lr, detail::as_number);
  r.get("holdout", a.holdout, detail::as_number);
  r.get("seed", a.seed, detail::as_unsigned);
  r.get("sequences", a.sequences, detail::as_integer);
  r.get("seqlen", a.seqlen, detail::as_integer);
  // Written from analysis_transforms(); the order of every layer's curves.
  std::vector<std::string> order;
  for (AnalysisTransform t : analysis_transforms()) order.push_back(analysis_transform_name(t));
  r.get("transforms", order, detail::as_strings);
  for (const std::string& name : order) transform_named(r.name("transforms"), name);
  r.list("layers", a.layers, [&order](const std::string& path, const json& v) { return read_layer(path, v, order); });
  if (r.has("request")) out.request = analyze_request_from_json(r.raw("request"));
  r.get("data", out.data, detail::as_string);
  r.get("seconds", out.seconds, detail::as_number);
  r.get("files", out.files, detail::as_strings);
  return out;
}

AnalyzeResult run_analyze(const AnalyzeRequest& request, const Model& model, const Tokenizer& tokenizer,
                          const JobControl& job) {
  const MxAnalysisOptions opt = check_analyze_request(request);
  const int64_t layers = model.config().num_layers;
  if (request.layer && *request.layer >= layers) {
    throw UsageError("--layer " + std::to_string(*request.layer) + " is out of range: the model has " +
                     std::to_string(layers) + " decoder layers (0.." + std::to_string(layers - 1) + ")");
  }
  const CalibrationSet data = load_calibration_text(request.data, tokenizer, analyze_data_options(request));
  // The bar moves per decoder layer while capturing (one pass of a big model takes minutes on a CPU),
  // and cancel stops at the next layer; the analysis's own per-batch capture reports are dropped but
  // for its last.
  Model probe = model;  // its own hook list; shares the weights (a mapped model stays mapped)
  const int64_t passes = (data.size() + opt.batch_size - 1) / opt.batch_size;
  probe.add_hook(std::make_shared<LayerProgressHook>("capture", layers, passes, job));
  JobControl fits;
  fits.cancel = job.cancel;
  fits.progress = [job, total = layers * passes](std::string_view stage, int64_t done, int64_t all) {
    if (stage != "capture") return job.report(stage, done, all);
    if (all > 0 && done >= all) job.report(stage, total, total);
  };
  AnalyzeResult out;
  out.request = request;
  out.data = data.describe();
  const auto t0 = std::chrono::steady_clock::now();
  out.analysis = analyze_mx_error(probe, data, opt, fits);
  out.seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  if (!request.out.empty()) out.files = write_mx_analysis_report(out.analysis, request.out);
  return out;
}

}  // namespace latmix::api
