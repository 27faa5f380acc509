// latmix stats: streaming activation statistics over calibration text, before and after a transform.
#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <iostream>
#include <map>
#include <sstream>

#include "commands.h"
#include "console.h"
#include "latmix/calib.h"
#include "latmix/calib_collector.h"
#include "latmix/calib_data.h"
#include "latmix/calib_transforms.h"
#include "latmix/error.h"
#include "latmix/transform_fold.h"
#include "latmix/transforms.h"

namespace latmix::cli {

namespace {

std::vector<CapturePoint> points_from_args(const std::string& list) {
  std::vector<CapturePoint> points;
  std::stringstream in(list);
  std::string name;
  while (std::getline(in, name, ',')) {
    if (!name.empty()) points.push_back(parse_capture_point(name));
  }
  if (points.empty()) throw UsageError("--point: expected one or more capture point names");
  return points;
}

MxFormat format_from_args(const Args& args) {
  MxFormat f = MxFormat::parse(args.get("format"));
  if (args.has("block")) f.block = args.integer("block");
  if (args.has("scale")) f.scale = parse_scale_rule(args.get("scale"));
  if (args.has("round")) f.rounding = parse_rounding(args.get("round"));
  f.validate();
  return f;
}

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

void print_point_table(const ActivationStats& s, CapturePoint point) {
  const LayerStats* first = nullptr;
  for (const LayerStats& l : s.layers) {
    if (l.point == point) {
      first = &l;
      break;
    }
  }
  if (!first) return;
  std::printf("\n%s: %lld channels, %lld blocks of %lld; %s; transform %s; %lld tokens\n",
              capture_point_name(point).c_str(), static_cast<long long>(first->features),
              static_cast<long long>(first->original.blocks.energy.size()), static_cast<long long>(s.block),
              s.format.c_str(), s.transform.c_str(), static_cast<long long>(first->tokens));
  std::printf("%-5s %-32s %-17s %-23s %-30s %8s %8s %7s %7s\n", "layer", "outlier channels (rms/median)",
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
    std::printf("%-5lld %-32s %-17s %-23s %-30s %8.2f %8.2f %7.2f %7.2f\n", static_cast<long long>(l.layer),
                outlier_list(l.original, 3).c_str(), before, after, worst_blocks(a.quant, 3).c_str(),
                l.original.quant.sqnr_db, a.quant.sqnr_db, l.original.kurtosis, a.kurtosis);
  }
}

int run_stats(const Args& args) {
  if (args.has("transforms") && args.get("transform") != "none") {
    throw UsageError("--transform and --transforms exclude each other");
  }
  StatsOptions opt;
  opt.points = points_from_args(args.get("point"));
  opt.format = format_from_args(args);
  opt.batch_size = args.integer("batch");
  opt.top_channels = args.integer("top");
  if (args.has("layers")) opt.layers = args.integer_list("layers");
  CalibrationOptions data_opt;
  data_opt.samples = args.integer("samples");
  data_opt.seqlen = args.integer("seqlen");
  data_opt.sampling = parse_window_sampling(args.get("sampling"));
  data_opt.seed = static_cast<uint64_t>(args.integer("seed"));
  LoadedModel m = load_model_from_args(args, parse_compute_dtype(args.get("dtype")), mapped_weights(args));
  if (args.flag("bos")) {
    auto bos = m.tokenizer->bos_id() ? m.tokenizer->bos_id() : m.model.config().bos_token_id;
    if (!bos) throw UsageError("--bos: the model's tokenizer has no BOS token");
    data_opt.bos_id = *bos;
  }
  ActivationTransform transform;
  if (args.has("transforms")) {
    transform = make_plan_activation_transform(args.get("transforms"), m.model);
    opt.transform_name = "learned (" + args.get("transforms") + ")";
  } else if (args.get("transform") != "none") {
    transform = make_builtin_activation_transform(args.get("transform"), m.model, opt.format, data_opt.seed);
    opt.transform_name = args.get("transform");
  }
  const CalibrationSet data = load_calibration_text(args.get("data"), *m.tokenizer, data_opt);
  ProgressPrinter progress(args.flag("quiet"));
  // The bar moves per layer: one pass of a big model takes minutes on a CPU.
  const int64_t batch = std::max<int64_t>(1, opt.batch_size);  // the engine rejects < 1 itself
  const LayerProgress layers(m.model, "stats", (data.size() + batch - 1) / batch,
                             progress.callback());
  const auto t0 = std::chrono::steady_clock::now();
  const ActivationStats stats = collect_activation_stats(m.model, data, opt, transform, layers.job);
  const double seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  progress.finish();
  if (args.has("out")) write_stats_json(args.get("out"), stats);
  if (args.has("safetensors")) write_stats_safetensors(args.get("safetensors"), stats);
  if (args.flag("json")) {
    std::cout << stats_to_json(stats, 1) << "\n";
    return 0;
  }
  std::printf("data: %s (%s); %s\n", args.get("data").c_str(), data.describe().c_str(), opt.format.describe().c_str());
  for (CapturePoint p : stats.points()) print_point_table(stats, p);
  std::printf("\ncollected in %s", format_duration(seconds).c_str());
  if (args.has("out")) std::printf("; wrote %s", args.get("out").c_str());
  std::printf("\n");
  return 0;
}

}  // namespace

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
        {model_option(),
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
         weights_option()}},
       run_stats},
  };
}

}  // namespace latmix::cli
