// latmix analyze: the LATMiX paper's Figure 2 (MX error against the block size) on the user's model.
#include <chrono>
#include <cstdio>
#include <iostream>
#include <sstream>

#include "commands.h"
#include "console.h"
#include "latmix/error.h"
#include "latmix/mx_analysis.h"

namespace latmix::cli {

namespace {

std::vector<CapturePoint> points_of(const std::string& list) {
  std::vector<CapturePoint> points;
  std::stringstream in(list);
  std::string name;
  while (std::getline(in, name, ',')) {
    if (!name.empty()) points.push_back(parse_option("point", [&] { return parse_capture_point(name); }));
  }
  if (points.empty()) throw UsageError("--point: expected one or more capture point names");
  return points;
}

MxAnalysisOptions options_of(const Args& args) {
  MxAnalysisOptions opt;
  opt.points = points_of(args.get("point"));
  opt.format = parse_option("format", [&] { return MxFormat::parse(args.get("format")); });
  if (args.has("scale")) opt.format.scale = parse_option("scale", [&] { return parse_scale_rule(args.get("scale")); });
  if (args.has("round")) opt.format.rounding = parse_option("round", [&] { return parse_rounding(args.get("round")); });
  if (args.has("layer")) opt.layers = {args.integer("layer")};
  if (args.has("blocks")) {
    opt.block_sizes = args.integer_list("blocks");
    for (int64_t b : opt.block_sizes) {
      if (b < 1) throw UsageError("--blocks: block sizes must be >= 1, got " + std::to_string(b));
    }
  }
  opt.detail_block = args.integer("detail-block");
  opt.steps = args.integer("steps");
  if (opt.steps < 0) throw UsageError("--steps: must be >= 0, got " + std::to_string(opt.steps));
  opt.holdout = args.number("holdout");
  if (!(opt.holdout >= 0 && opt.holdout < 1)) throw UsageError("--holdout: must be in [0, 1)");
  opt.lr = args.number("lr");
  if (!(opt.lr > 0)) throw UsageError("--lr: must be > 0");
  const std::string affine = args.get("affine");
  if (affine != "lu" && affine != "qr") throw UsageError("--affine: expected lu or qr, got '" + affine + "'");
  opt.affine = affine == "lu" ? AffineTransform::Param::LU : AffineTransform::Param::QR;
  opt.seed = static_cast<uint64_t>(args.integer("seed"));
  opt.batch_size = args.integer("batch");
  if (opt.batch_size < 1) throw UsageError("--batch: must be >= 1");
  return opt;
}

void print_layer(const MxLayerAnalysis& a) {
  std::printf(
      "\n%s, layer %lld: %lld channels, %lld tokens measured (%lld fitted on); relative MX error (lower is "
      "better)\n",
      capture_point_name(a.point).c_str(), static_cast<long long>(a.layer), static_cast<long long>(a.features),
      static_cast<long long>(a.tokens), static_cast<long long>(a.fit_tokens));
  std::printf("%-17s", "transform");
  for (int64_t b : a.block_sizes) std::printf(" %9s", ("b=" + std::to_string(b)).c_str());
  std::printf("\n");
  for (const auto& c : a.curves) {
    std::printf("%-17s", analysis_transform_name(c.transform).c_str());
    for (const auto& r : c.sizes) {
      if (r.skipped) {
        std::printf(" %9s", "-");
      } else {
        std::printf(" %9.3e", r.rel_error);
      }
    }
    std::printf("\n");
  }
  std::printf("%-17s %6s %9s %9s %9s  %s\n", "at block 32 /last", "block", "cond", "crest", "peak", "note");
  for (const auto& c : a.curves) {
    const BlockSizeResult* shown = nullptr;
    for (const auto& r : c.sizes) {
      if (!r.skipped && (!shown || shown->block != 32)) shown = &r;  // block 32, else the largest
    }
    if (!shown) {
      std::printf("%-17s %s\n", analysis_transform_name(c.transform).c_str(),
                  c.sizes.empty() ? "" : c.sizes.front().note.c_str());
      continue;
    }
    std::printf("%-17s %6lld %9.3g %9.3f %9.3f  %s\n", analysis_transform_name(c.transform).c_str(),
                static_cast<long long>(shown->block), shown->condition_number, shown->block_crest,
                shown->block_peak_power, shown->note.c_str());
  }
}

int run_analyze(const Args& args) {
  const MxAnalysisOptions opt = options_of(args);
  CalibrationOptions data_opt;
  data_opt.samples = args.integer("samples");
  data_opt.seqlen = args.integer("seqlen");
  data_opt.sampling = parse_window_sampling(args.get("sampling"));
  data_opt.seed = opt.seed;
  LoadedModel m = load_model_from_args(args, parse_compute_dtype(args.get("dtype")), mapped_weights(args));
  const int64_t layers = m.model.config().num_layers;
  if (args.has("layer") && (opt.layers[0] < 0 || opt.layers[0] >= layers)) {
    throw UsageError("--layer " + std::to_string(opt.layers[0]) + " is out of range: the model has " +
                     std::to_string(layers) + " decoder layers (0.." + std::to_string(layers - 1) + ")");
  }
  const CalibrationSet data = load_calibration_text(args.get("data"), *m.tokenizer, data_opt);
  ProgressPrinter progress(args.flag("quiet"));
  const LayerProgress capture(m.model, "capture", (data.size() + opt.batch_size - 1) / opt.batch_size,
                              progress.callback());
  const auto t0 = std::chrono::steady_clock::now();
  const MxAnalysis analysis = analyze_mx_error(m.model, data, opt, capture.job);
  const double seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  progress.finish();
  std::vector<std::string> written;
  if (args.has("out")) written = write_mx_analysis_report(analysis, args.get("out"));
  if (args.flag("json")) {
    std::cout << mx_analysis_to_json(analysis, 1) << "\n";
    return 0;
  }
  std::printf("data: %s (%s); %s, block size varied; learned: %lld Adam steps, lr %g, affine %s\n",
              args.get("data").c_str(), data.describe().c_str(), opt.format.describe().c_str(),
              static_cast<long long>(opt.steps), opt.lr, analysis.affine.c_str());
  for (const auto& a : analysis.layers) print_layer(a);
  std::printf("\nanalysed in %s", format_duration(seconds).c_str());
  if (!written.empty()) std::printf("; wrote %s (%zu files)", args.get("out").c_str(), written.size());
  std::printf("\n");
  return 0;
}

}  // namespace

std::vector<Command> analyze_commands() {
  return {
      {{"analyze",
        "The MX quantization error against the block size (the LATMiX paper's Figure 2) on real activations.",
        "Runs the model over --samples windows of --seqlen tokens of --data, keeps the activations x of each\n"
        "asked capture point and layer (tokens x width floats each), and for every power-of-two MX block size\n"
        "2..1024 that divides the width (or --blocks) measures the relative error\n"
        "E = sum ||x - T^-1 Q(T x)||^2 / sum ||x||^2 of --format for T = none, hadamard (full width; skipped\n"
        "with a note when the width has no Hadamard construction), block_hadamard (of the block size),\n"
        "learned_rotation and learned_affine. The learned ones are fitted per capture and block size on the\n"
        "first 1 - --holdout of the tokens (--steps Adam steps, a straight-through MX gradient that follows the\n"
        "block scale) starting at the block Hadamard, and every figure is measured on the held-out tokens\n"
        "(--holdout 0: on all, in-sample); when learning does not beat the start on the fitting tokens the\n"
        "start is kept (note: kept the block-Hadamard init).\n"
        "Beside E: the transform's condition number, the block crest (mean over token blocks of max|Tx| /\n"
        "rms) and block peak power (sum b max|Tx|^2 / sum ||Tx||^2); per-block errors at --detail-block.\n"
        "With no transform at block 32 and --holdout 0, E = 10^(-SQNR/10) for the SQNR `latmix stats` reports.\n"
        "--out DIR writes report.md, report.json and PNG plots (error vs block size, per-block error).\n"
        "Capture points: residual, attn_in, o_in, residual_mid, mlp_in, down_in, lm_head_in (comma list).",
        {model_option(),
         tokenizer_option(),
         {"data", "FILE", "calibration text file", "", true},
         {"samples", "N", "calibration sequences", "8", false},
         {"seqlen", "L", "tokens per sequence", "128", false},
         {"sampling", "even|random", "how windows are chosen", "even", false},
         {"seed", "N", "seed of --sampling random and of the Hadamards' random signs", "0", false},
         {"layer", "N", "the decoder layer to analyse (default: all)", "", false},
         {"point", "LIST", "capture points to analyse", "residual", false},
         {"format", "NAME", "MX format (mxfp4, mxint4, mxfp8_e4m3, mxint8, ...); its block size is varied", "mxfp4",
          false},
         {"scale", "RULE", "E8M0 scale rule: floor, ceil, rceil, even", "floor", false},
         {"round", "MODE", "element rounding: even, away", "even", false},
         {"blocks", "LIST", "block sizes (default: the powers of two 2..1024 dividing the width)", "", false},
         {"detail-block", "B", "block size of the per-block errors", "32", false},
         {"steps", "N", "Adam steps per learned fit (0: report the block-Hadamard start)", "40", false},
         {"lr", "X", "Adam learning rate of the learned fits (the affine's: X * sqrt(32 / block size))", "0.001",
          false},
         {"holdout", "F", "share of the tokens (the last sequences) held out from fitting; figures are measured there",
          "0.25", false},
         {"affine", "lu|qr", "parametrization of the learned affine transform", "lu", false},
         {"batch", "N", "sequences per forward pass", "4", false},
         {"out", "DIR", "write report.md, report.json and PNG plots there", "", false},
         dtype_option(),
         weights_option()}},
       run_analyze},
  };
}

}  // namespace latmix::cli
