#pragma once
/// \file api/analyze.h
/// Room: engine/api, the use-case layer (issue 16). The analyze task: the MX quantization error
/// against the block size (the LATMiX paper's Figure 2) on real activations (`latmix analyze`, the
/// studio's Analyze tab). Each client only converts between its own form and this request and result.

#include <nlohmann/json.hpp>

#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include "latmix/calib_data.h"
#include "latmix/model.h"
#include "latmix/mx_analysis.h"
#include "latmix/progress.h"
#include "latmix/tokenizer.h"

namespace latmix::api {

/// What to analyse: the values of `latmix analyze`'s options, by the same names (snake_case here and
/// in JSON, --kebab-case on the command line).
struct AnalyzeRequest {
  std::string model;             ///< --model (the client opens it; run_analyze() takes it open)
  std::string tokenizer;         ///< --tokenizer ("": the model's own)
  std::string device = "cpu";    ///< --device
  std::string dtype = "fp32";    ///< --dtype
  std::string weights = "auto";  ///< --weights: how the CLI loads the model
  std::string data;              ///< --data FILE: the calibration text
  int64_t samples = 8;           ///< --samples
  int64_t seqlen = 128;          ///< --seqlen
  std::string sampling = "even";  ///< --sampling: even | random
  uint64_t seed = 0;              ///< --seed: random windows and the Hadamards' random signs
  std::optional<int64_t> layer;   ///< --layer (unset: every decoder layer)
  std::string point = "residual";  ///< --point: comma-separated capture points
  std::string format = "mxfp4";    ///< --format (its block size is varied)
  std::optional<std::string> scale;  ///< --scale (unset: the format's rule)
  std::optional<std::string> round;  ///< --round (unset: the format's)
  std::string blocks;       ///< --blocks: comma-separated sizes ("": the powers of two 2..1024 dividing the width)
  int64_t detail_block = 32;  ///< --detail-block
  int64_t steps = 40;         ///< --steps: Adam steps per learned fit
  double lr = 1e-3;           ///< --lr
  double holdout = 0.25;      ///< --holdout
  std::string affine = "lu";  ///< --affine: lu | qr
  int64_t batch = 4;          ///< --batch: sequences per forward pass
  std::string out;            ///< --out DIR: report.md, report.json and PNG plots ("": none)
};

/// Every field (layer / scale / round null when unset).
nlohmann::json to_json(const AnalyzeRequest& request);
/// The inverse of to_json(). Strict: an unknown key or a value of the wrong type is a
/// latmix::UsageError naming the key ("analyze request: key 'lr': ..."); a key left out keeps the
/// default. Values are checked by check_analyze_request().
AnalyzeRequest analyze_request_from_json(const nlohmann::json& json);
/// The `latmix analyze` command line of the request: --model, --data, then the options that are not
/// at their defaults, --device last; --out DIR (the placeholder DIR when unset).
std::vector<std::string> analyze_command_line(const AnalyzeRequest& request);

/// The checks that need no model (the CLI's messages, naming the option). Returns the analysis's
/// options. \throws latmix::UsageError.
MxAnalysisOptions check_analyze_request(const AnalyzeRequest& request);
/// The calibration windows the request reads. \throws latmix::UsageError for a bad --sampling.
CalibrationOptions analyze_data_options(const AnalyzeRequest& request);

/// What run_analyze() measured.
struct AnalyzeResult {
  AnalyzeRequest request;
  MxAnalysis analysis;
  std::string data;                ///< CalibrationSet::describe() of the sequences read
  double seconds = 0;              ///< capturing and fitting
  std::vector<std::string> files;  ///< the report's files (request.out), empty without
};
/// The result as `latmix analyze --json` prints it (and `latmix serve` returns it): the keys of
/// mx_analysis_to_json() of the analysis (what --out writes as report.json), then "request"
/// (to_json(AnalyzeRequest)), "data", "seconds" and "files".
nlohmann::json to_json(const AnalyzeResult& result);
/// The inverse of to_json(). Strict: an unknown key (at any depth: "layers[0].transforms.x") or a
/// value of the wrong type is a latmix::UsageError naming the key's path ("analyze result: key
/// 'layers[0].tokens': ..."), the request's keys as analyze_request_from_json() reads them; a key
/// left out keeps the default. What the round trip does not restore: a figure that is not finite is
/// written as null and reads back as NaN (an infinite one too); nothing else is lost.
AnalyzeResult analyze_result_from_json(const nlohmann::json& json);

/// Analyses: check_analyze_request(); --layer checked against the model; the calibration text; the
/// capture with progress per decoder layer (stage "capture", layers x passes; cancel at each layer)
/// on a copy of `model` that shares its weights, then the fits (the analysis's own stages); the
/// report written into request.out when set.
/// \throws latmix::UsageError, latmix::Error (files), latmix::Cancelled.
AnalyzeResult run_analyze(const AnalyzeRequest& request, const Model& model, const Tokenizer& tokenizer,
                          const JobControl& job = {});

}  // namespace latmix::api
