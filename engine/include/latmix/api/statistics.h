#pragma once
/// \file api/statistics.h
/// Room: engine/api, the use-case layer (issue 16). The statistics task: activation statistics per
/// layer and MX block over calibration text, before and after a transform (`latmix stats`, the
/// studio's Explorer heatmap and the Learn tab's refreshes of it while a plan learns). Each client
/// only converts between its own form and this request and result.

#include <nlohmann/json.hpp>

#include <cstdint>
#include <optional>
#include <map>
#include <string>
#include <vector>

#include "latmix/calib.h"
#include "latmix/calib_collector.h"
#include "latmix/calib_data.h"
#include "latmix/model.h"
#include "latmix/progress.h"
#include "latmix/tokenizer.h"

namespace latmix {
struct TransformPlan;
}  // namespace latmix

namespace latmix::api {

/// What to measure: the values of `latmix stats`'s options, by the same names (snake_case here and
/// in JSON, --kebab-case on the command line).
struct StatisticsRequest {
  std::string model;             ///< --model (the client opens it; run_statistics() takes it open)
  std::string tokenizer;         ///< --tokenizer ("": the model's own)
  std::string device = "cpu";    ///< --device
  std::string dtype = "fp32";    ///< --dtype
  std::string weights = "auto";  ///< --weights: how the CLI loads the model
  std::string data;              ///< --data FILE: the calibration text
  int64_t samples = 16;          ///< --samples
  int64_t seqlen = 256;          ///< --seqlen
  std::string sampling = "even";  ///< --sampling: even | random
  uint64_t seed = 0;              ///< --seed: of random sampling and of the transforms' random signs
  bool bos = false;               ///< --bos: every sequence starts with the BOS token
  std::string format = "mxfp4";   ///< --format: the quantization figures' MX format
  std::optional<int64_t> block;     ///< --block (unset: the format's)
  std::optional<std::string> scale;  ///< --scale (unset: the format's rule)
  std::optional<std::string> round;  ///< --round (unset: the format's)
  std::string transform = "none";   ///< --transform: a built-in transform (builtin_transform_names())
  std::string transforms;           ///< --transforms PREFIX: a learned plan (excludes --transform)
  std::string point = "residual";   ///< --point: comma-separated capture points
  std::vector<int64_t> layers;      ///< --layers (empty: all)
  int64_t top = 8;                  ///< --top: outlier channels kept per layer
  int64_t batch = 4;                ///< --batch: sequences per forward pass
  std::string out;                  ///< --out FILE: the result's JSON ("": none)
  std::string safetensors;          ///< --safetensors FILE: the vectors ("": none)
  /// Not an option of `latmix stats`: the name the result gives the --transforms plan ("": "learned
  /// (PREFIX)"; the studio: its label, e.g. "latmix, step 40").
  std::string transform_name;
};

/// Every field (block / scale / round null when unset).
nlohmann::json to_json(const StatisticsRequest& request);
/// The inverse of to_json(). Strict: an unknown key or a value of the wrong type is a
/// latmix::UsageError naming the key ("statistics request: key 'top': ..."); a key left out keeps
/// the default. Values are checked by check_statistics_request().
StatisticsRequest statistics_request_from_json(const nlohmann::json& json);

/// The checks that need no model (the CLI's messages, naming the option): the format and its
/// block / scale / round, the capture points, --sampling, --transform vs --transforms, the sizes.
/// Returns the collector's options (transform_name set). \throws latmix::UsageError.
StatsOptions check_statistics_request(const StatisticsRequest& request);

/// The calibration windows the request reads (--bos resolved with the tokenizer, else the model's
/// BOS id). \throws latmix::UsageError for --bos without a BOS token.
CalibrationOptions statistics_data_options(const StatisticsRequest& request, const Model& model,
                                           const Tokenizer& tokenizer);

/// What run_statistics() measured.
struct StatisticsResult {
  StatisticsRequest request;
  ActivationStats stats;
  std::string data;  ///< CalibrationSet::describe() of the sequences read
  double seconds = 0;  ///< collecting (the forward passes and the accumulators)
  /// The text of every token id among the outlier channels' tokens (both views), each id decoded
  /// alone by the request's tokenizer ("" for an id it cannot decode): a client without that
  /// tokenizer (the studio on a `latmix serve` engine) shows the tokens with them.
  std::map<int32_t, std::string> token_texts;
};
/// The result as `latmix stats --json` prints it (and `latmix serve` returns it): the keys of
/// stats_to_json() of the statistics (what --out writes), then "request" (to_json(StatisticsRequest)),
/// "data", "seconds" and "token_texts" ({"ID": "text"}).
nlohmann::json to_json(const StatisticsResult& result);
/// The inverse of to_json(). Strict at the top: an unknown key or a run key of the wrong type is a
/// latmix::UsageError naming the key ("statistics result: key 'seconds': ..."), the request's keys
/// as statistics_request_from_json() reads them; the statistics are read by stats_from_json()
/// (a malformed one: latmix::Error naming "statistics result" and the key). What the round trip
/// does not restore: a figure that is not finite is written as null and reads back as +inf (NaN
/// too); nothing else is lost.
StatisticsResult statistics_result_from_json(const nlohmann::json& json);

/// Measures: check_statistics_request(); the transform (the plan of --transforms checked against
/// the model, else the built-in one, seeded by --seed); the calibration text; the forward passes in
/// batches with progress per decoder layer (stage "stats", layers x passes; cancel checked at each
/// layer) on a copy of `model` that shares its weights (a mapped model stays mapped; the caller's
/// hooks are left alone); then --out and --safetensors, written atomically.
/// \throws latmix::UsageError, latmix::Error (files), latmix::Cancelled.
StatisticsResult run_statistics(const StatisticsRequest& request, const Model& model, const Tokenizer& tokenizer,
                                const JobControl& job = {});
/// run_statistics() with `plan`, held in memory, as the transform (a learning run's snapshot): the
/// request's `transform` must be "none"; its `transforms` is not read (it may name where the plan was
/// saved, for the result's request); the result is named `transform_name` ("learned" when empty).
StatisticsResult run_statistics(const StatisticsRequest& request, const TransformPlan& plan, const Model& model,
                                const Tokenizer& tokenizer, const JobControl& job = {});

}  // namespace latmix::api
