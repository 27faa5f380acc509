// The statistics task (latmix/api/statistics.h): the request <-> JSON, and the one place where a
// request becomes a transform, calibration windows and the collector's passes.
#include "latmix/api/statistics.h"

#include <algorithm>
#include <chrono>
#include <cstdint>
#include <memory>
#include <sstream>

#include "latmix/calib_transforms.h"
#include "latmix/error.h"
#include "lists.h"
#include "request_json.h"
#include "result_json.h"
#include "windows.h"

namespace latmix::api {

using json = nlohmann::json;

namespace {

// In the order of `latmix stats --help`.
const detail::FieldTable<StatisticsRequest>& statistics_fields() {
  using R = StatisticsRequest;
  using detail::as_bool;
  using detail::as_integer;
  using detail::as_string;
  using detail::as_unsigned;
  using detail::optional;
  using detail::required;
  auto as_integers = [](const json& v) {
    if (!v.is_array()) throw detail::WrongType{"an array of integers"};
    std::vector<int64_t> out;
    for (const auto& e : v) out.push_back(as_integer(e));
    return out;
  };
  static const detail::FieldTable<R> table = {
      {"model", required(&R::model, as_string)},
      {"tokenizer", required(&R::tokenizer, as_string)},
      {"data", required(&R::data, as_string)},
      {"samples", required(&R::samples, as_integer)},
      {"seqlen", required(&R::seqlen, as_integer)},
      {"sampling", required(&R::sampling, as_string)},
      {"seed", required(&R::seed, as_unsigned)},
      {"bos", required(&R::bos, as_bool)},
      {"format", required(&R::format, as_string)},
      {"block", optional(&R::block, as_integer)},
      {"scale", optional(&R::scale, as_string)},
      {"round", optional(&R::round, as_string)},
      {"transform", required(&R::transform, as_string)},
      {"transforms", required(&R::transforms, as_string)},
      {"point", required(&R::point, as_string)},
      {"layers", required(&R::layers, as_integers)},
      {"top", required(&R::top, as_integer)},
      {"batch", required(&R::batch, as_integer)},
      {"out", required(&R::out, as_string)},
      {"safetensors", required(&R::safetensors, as_string)},
      {"dtype", required(&R::dtype, as_string)},
      {"weights", required(&R::weights, as_string)},
      {"device", required(&R::device, as_string)},
      {"transform_name", required(&R::transform_name, as_string)},
  };
  return table;
}

}  // namespace

json to_json(const StatisticsRequest& request) { return detail::write_request(statistics_fields(), request); }

StatisticsRequest statistics_request_from_json(const json& j) {
  return detail::read_request("statistics request", statistics_fields(), j);
}

StatsOptions check_statistics_request(const StatisticsRequest& r) {
  if (!r.transforms.empty() && r.transform != "none") {
    throw UsageError("--transform and --transforms exclude each other");
  }
  if (r.samples < 1) throw UsageError("--samples: expected 1 or more");
  if (r.seqlen < 2) throw UsageError("--seqlen: expected 2 or more");
  if (r.batch < 1) throw UsageError("--batch: expected 1 or more");
  if (r.top < 1) throw UsageError("--top: expected 1 or more");
  parse_window_sampling(r.sampling);
  const std::vector<std::string> builtin = builtin_transform_names();
  if (r.transform != "none" && std::find(builtin.begin(), builtin.end(), r.transform) == builtin.end()) {
    throw UsageError("unknown transform '" + r.transform + "' (expected one of " + builtin_transform_list() + ")");
  }
  StatsOptions opt;
  opt.points = detail::capture_point_list(r.point);
  opt.format = MxFormat::parse(r.format);
  if (r.block) opt.format.block = *r.block;
  if (r.scale) opt.format.scale = parse_scale_rule(*r.scale);
  if (r.round) opt.format.rounding = parse_rounding(*r.round);
  opt.format.validate();
  opt.batch_size = r.batch;
  opt.top_channels = r.top;
  opt.layers = r.layers;
  if (!r.transforms.empty()) {
    opt.transform_name = r.transform_name.empty() ? "learned (" + r.transforms + ")" : r.transform_name;
  } else {
    opt.transform_name = r.transform;
  }
  return opt;
}

CalibrationOptions statistics_data_options(const StatisticsRequest& r, const Model& model, const Tokenizer& tokenizer) {
  return detail::window_options(r.samples, r.seqlen, r.sampling, r.seed, r.bos, model, tokenizer);
}

json to_json(const StatisticsResult& result) {
  json out = stats_json(result.stats);
  out["request"] = to_json(result.request);
  out["data"] = result.data;
  out["seconds"] = result.seconds;
  json texts = json::object();
  for (const auto& [id, text] : result.token_texts) texts[std::to_string(id)] = text;
  out["token_texts"] = std::move(texts);
  return out;
}

StatisticsResult statistics_result_from_json(const json& j) {
  const char* what = "statistics result";
  // The statistics' own keys are read by stats_from_json(); the run's are taken out first.
  const detail::ResultReader r(what, "", j,
                               {"kind", "version", "format", "format_description", "block", "transform", "sequences",
                                "seqlen", "tokens", "layers", "request", "data", "seconds", "token_texts"});
  StatisticsResult out;
  if (r.has("request")) out.request = statistics_request_from_json(r.raw("request"));
  r.get("data", out.data, detail::as_string);
  r.get("seconds", out.seconds, detail::as_number);
  if (r.has("token_texts")) {
    const json& texts = r.raw("token_texts");
    if (!texts.is_object()) throw UsageError(std::string(what) + ": key 'token_texts': expected an object of id: text");
    for (const auto& [key, text] : texts.items()) {
      size_t used = 0;
      long long id = -1;
      try {
        id = std::stoll(key, &used);
      } catch (const std::exception&) {
        used = 0;
      }
      if (used != key.size() || id < 0 || id > INT32_MAX || !text.is_string())
        throw UsageError(std::string(what) + ": key 'token_texts': '" + key +
                         "' is not a token id with its text");
      out.token_texts[static_cast<int32_t>(id)] = text.get<std::string>();
    }
  }
  // The run's keys were checked above; stats_from_json_value() reads the statistics' own.
  out.stats = stats_from_json_value(j, what);
  return out;
}

namespace {

// run_statistics() once its options and transform are known.
StatisticsResult collect(const StatisticsRequest& request, const StatsOptions& opt, const ActivationTransform& transform,
                         const Model& model, const Tokenizer& tokenizer, const JobControl& job) {
  const CalibrationOptions data_options = statistics_data_options(request, model, tokenizer);
  const CalibrationSet data = load_calibration_text(request.data, tokenizer, data_options);
  // Progress per decoder layer (one pass of a mapped 8B model takes minutes on a CPU): the bar moves,
  // with an ETA, and cancel stops at the next layer. The collector's per-batch reports are dropped.
  Model probe = model;  // its own hook list; shares the weights (a mapped model stays mapped)
  const int64_t passes = (data.size() + opt.batch_size - 1) / opt.batch_size;
  const int64_t layers = model.config().num_layers;
  probe.add_hook(std::make_shared<LayerProgressHook>("stats", layers, passes, job));
  JobControl batches;
  batches.cancel = job.cancel;
  StatisticsResult out;
  out.request = request;
  out.data = data.describe();
  const auto t0 = std::chrono::steady_clock::now();
  out.stats = collect_activation_stats(probe, data, opt, transform, batches);
  out.seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  job.report("stats", layers * passes, layers * passes);
  for (const LayerStats& layer : out.stats.layers) {
    for (const ViewStats* view : {&layer.original, layer.transformed ? &*layer.transformed : nullptr}) {
      if (view == nullptr) continue;
      for (const OutlierChannel& channel : view->outliers) {
        for (const OutlierToken& t : channel.tokens) {
          if (t.token_id < 0 || out.token_texts.count(t.token_id) != 0) continue;
          std::string text;
          try {
            if (t.token_id < tokenizer.vocab_size()) text = tokenizer.decode({t.token_id});
          } catch (const std::exception&) {  // an id the tokenizer cannot decode alone
          }
          out.token_texts[t.token_id] = text;
        }
      }
    }
  }
  if (!request.out.empty()) write_stats_json(request.out, out.stats);
  if (!request.safetensors.empty()) write_stats_safetensors(request.safetensors, out.stats);
  return out;
}

}  // namespace

StatisticsResult run_statistics(const StatisticsRequest& request, const Model& model, const Tokenizer& tokenizer,
                                const JobControl& job) {
  const StatsOptions opt = check_statistics_request(request);
  ActivationTransform transform;
  if (!request.transforms.empty()) {
    transform = make_plan_activation_transform(request.transforms, model);
  } else if (request.transform != "none") {
    transform = make_builtin_activation_transform(request.transform, model, opt.format, request.seed);
  }
  return collect(request, opt, transform, model, tokenizer, job);
}

StatisticsResult run_statistics(const StatisticsRequest& request, const TransformPlan& plan, const Model& model,
                                const Tokenizer& tokenizer, const JobControl& job) {
  if (request.transform != "none")
    throw UsageError("--transform " + request.transform + ": the statistics of a plan take no other transform");
  StatsOptions opt = check_statistics_request(request);
  opt.transform_name = request.transform_name.empty() ? "learned" : request.transform_name;
  return collect(request, opt, make_plan_activation_transform(std::make_shared<const TransformPlan>(plan), model),
                 model, tokenizer, job);
}

}  // namespace latmix::api
