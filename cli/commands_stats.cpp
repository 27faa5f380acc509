// latmix stats: streaming activation statistics over calibration text, before and after a transform.
#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <iostream>
#include <map>
#include <sstream>

#include "commands.h"
#include "commands_stats.h"
#include "console.h"
#include "remote.h"
#include "latmix/calib.h"
#include "latmix/calib_collector.h"
#include "latmix/calib_data.h"
#include "latmix/calib_transforms.h"
#include "latmix/error.h"
#include "latmix/transform_fold.h"
#include "latmix/transforms.h"
#include "result_text.h"

namespace latmix::cli {

namespace {

std::string outlier_list(const ViewStats& v, size_t count) {
  std::string s;
  char buf[64];
  for (size_t i = 0; i < std::min(count, v.outliers.size()); ++i) {
    std::snprintf(buf, sizeof buf, "%s%lld(%.1fx)", i ? " " : "", static_cast<long long>(v.outliers[i].channel),
                  static_cast<double>(v.outliers[i].rms_ratio));
    s += buf;
  }
  return s;
}

// The `count` blocks with the lowest SQNR: "b10 8.1, b11 9.0".
std::string worst_blocks(const QuantStats& q, size_t count) {
  std::vector<size_t> order(q.block_sqnr_db.size());
  for (size_t i = 0; i < order.size(); ++i) order[i] = i;
  std::sort(order.begin(), order.end(), [&](size_t a, size_t b) { return q.block_sqnr_db[a] < q.block_sqnr_db[b]; });
  std::string s;
  char buf[48];
  for (size_t i = 0; i < std::min(count, order.size()); ++i) {
    std::snprintf(buf, sizeof buf, "%sb%zu %.1f", i ? ", " : "", order[i],
                  static_cast<double>(q.block_sqnr_db[order[i]]));
    s += buf;
  }
  return s;
}

void append_point_table(std::string& out, const ActivationStats& s, CapturePoint point) {
  const LayerStats* first = nullptr;
  for (const LayerStats& l : s.layers) {
    if (l.point == point) {
      first = &l;
      break;
    }
  }
  if (!first) return;
  appendf(out, "\n%s: %lld channels, %lld blocks of %lld; %s; transform %s; %lld tokens\n",
          capture_point_name(point).c_str(), static_cast<long long>(first->features),
          static_cast<long long>(first->original.blocks.energy.size()), static_cast<long long>(s.block),
          s.format.c_str(), s.transform.c_str(), static_cast<long long>(first->tokens));
  appendf(out, "%-5s %-32s %-17s %-23s %-30s %8s %8s %7s %7s\n", "layer", "outlier channels (rms/median)",
          "top block before", "same block after (top)", "worst blocks after (SQNR dB)", "SQNR dB", "after", "kurt",
          "after");
  for (const LayerStats& l : s.layers) {
    if (l.point != point) continue;
    const ViewStats& a = l.view(StatsView::Transformed);
    const int64_t top = l.original.blocks.top_block();
    char before[32], after[32];
    std::snprintf(before, sizeof before, "b%lld %5.1f%%", static_cast<long long>(top),
                  100.0 * static_cast<double>(l.original.blocks.energy_share[static_cast<size_t>(top)]));
    std::snprintf(after, sizeof after, "b%lld %5.1f%% (top b%lld)", static_cast<long long>(top),
                  100.0 * static_cast<double>(a.blocks.energy_share[static_cast<size_t>(top)]),
                  static_cast<long long>(a.blocks.top_block()));
    appendf(out, "%-5lld %-32s %-17s %-23s %-30s %8.2f %8.2f %7.2f %7.2f\n", static_cast<long long>(l.layer),
            outlier_list(l.original, 3).c_str(), before, after, worst_blocks(a.quant, 3).c_str(),
            l.original.quant.sqnr_db, a.quant.sqnr_db, l.original.kurtosis, a.kurtosis);
  }
}

int run_stats(const Args& args) {
  const api::StatisticsRequest request = statistics_request_from_args(args);
  api::check_statistics_request(request);  // bad options fail before the model loads
  ProgressPrinter progress(args.flag("quiet"));
  api::StatisticsResult result;
  if (remote_engine()) {
    result = api::statistics_result_from_json(run_remote("statistics", api::to_json(request), {progress.callback()}));
  } else {
    LoadedModel m = load_model_from_args(args, parse_compute_dtype(request.dtype), mapped_weights(args));
    JobControl job;
    job.cancel = interrupt_token();
    job.progress = progress.callback();
    result = api::run_statistics(request, m.model, *m.tokenizer, job);
  }
  progress.finish();
  if (args.flag("json")) {
    std::cout << api::to_json(result).dump(1) << "\n";
    return 0;
  }
  std::printf("%s", format_stats_text(result).c_str());
  return 0;
}

}  // namespace

std::string format_stats_text(const api::StatisticsResult& result) {
  const ActivationStats& stats = result.stats;
  std::string out;
  appendf(out, "data: %s (%s); %s\n", result.request.data.c_str(), result.data.c_str(),
          stats.format_description.c_str());
  for (CapturePoint p : stats.points()) append_point_table(out, stats, p);
  appendf(out, "\ncollected in %s", format_duration(result.seconds).c_str());
  if (!result.request.out.empty()) appendf(out, "; wrote %s", result.request.out.c_str());
  appendf(out, "\n");
  return out;
}

api::StatisticsRequest statistics_request_from_args(const Args& args) {
  api::StatisticsRequest r;
  r.model = args.get("model");
  r.tokenizer = args.get("tokenizer");
  r.device = args.get("device");
  r.dtype = args.get("dtype");
  r.weights = args.get("weights");
  r.data = args.get("data");
  r.samples = args.integer("samples");
  r.seqlen = args.integer("seqlen");
  r.sampling = args.get("sampling");
  r.seed = static_cast<uint64_t>(args.integer("seed"));
  r.bos = args.flag("bos");
  r.format = args.get("format");
  if (args.has("block")) r.block = args.integer("block");
  if (args.has("scale")) r.scale = args.get("scale");
  if (args.has("round")) r.round = args.get("round");
  r.transform = args.get("transform");
  r.transforms = args.get("transforms");
  r.point = args.get("point");
  if (args.has("layers")) r.layers = args.integer_list("layers");
  r.top = args.integer("top");
  r.batch = args.integer("batch");
  r.out = args.get("out");
  r.safetensors = args.get("safetensors");
  return r;
}

std::vector<OptionSpec> statistics_options() {
  return {model_option(),
          tokenizer_option(),
          {"data", "FILE", "calibration text file", "", true},
          {"samples", "N", "calibration sequences", "16", false},
          {"seqlen", "L", "tokens per sequence", "256", false},
          {"sampling", "even|random", "how windows are chosen", "even", false},
          {"seed", "N", "seed of --sampling random and of the transforms' random signs", "0", false},
          {"bos", "", "start every sequence with the BOS token", "", false},
          {"format", "NAME", "MX format of the quantization figures (mxfp4, mxfp8_e4m3, mxint8, nvfp4, ...)", "mxfp4",
           false},
          {"block", "N", "MX block size (default: the format's)", "", false},
          {"scale", "RULE", "E8M0 scale rule: floor, ceil, rceil, even", "floor", false},
          {"round", "MODE", "element rounding: even, away", "even", false},
          {"transform", "NAME", std::string("transform to compare against: ") + builtin_transform_list().c_str(), "none", false},
          {"transforms", "PREFIX", "learned transforms saved by learning/export (PREFIX.json + PREFIX.safetensors)", "",
           false},
          {"point", "LIST", "capture points to observe", "residual", false},
          {"layers", "LIST", "layers to observe (default: all)", "", false},
          {"top", "K", "outlier channels kept per layer", "8", false},
          {"batch", "N", "sequences per forward pass", "4", false},
          {"out", "FILE", "write the full result as JSON (atomically)", "", false},
          {"safetensors", "FILE", "also write the per-channel/per-block vectors as safetensors", "", false},
          dtype_option(),
          weights_option()};
}

std::vector<Command> stats_commands() {
  return {
      {{"stats",
        "Activation statistics per layer and MX block, before and after a transform.",
        "Runs the model over --samples non-overlapping windows of --seqlen tokens of --data (chosen evenly\n"
        "over the text, or --sampling random with --seed) and accumulates, without storing activations, per\n"
        "channel max/RMS/mean/kurtosis and outlier tokens, per MX block energy, max, crest factor, and the\n"
        "quantization error of --format (MSE, SQNR, clip rate, scale histogram), for x and for T(x).\n"
        "At attn_in/mlp_in/lm_head_in a residual transform sees x / norm gain (the gains are fused first).\n"
        "A calibration sample ships with latmix: resources/calibration/pride_and_prejudice_ch1-6.txt.\n"
        "Capture points: residual, attn_in, o_in, residual_mid, mlp_in, down_in, lm_head_in (comma list).",
        statistics_options()},
       run_stats},
  };
}

}  // namespace latmix::cli
