// latmix analyze: the LATMiX paper's Figure 2 (MX error against the block size) on the user's model.
#include <chrono>
#include <cstdio>
#include <iostream>

#include "commands.h"
#include "commands_analyze.h"
#include "console.h"
#include "remote.h"
#include "latmix/error.h"
#include "latmix/mx_analysis.h"
#include "result_text.h"

namespace latmix::cli {

namespace {

void append_layer(std::string& out, const MxLayerAnalysis& a) {
  appendf(out,
          "\n%s, layer %lld: %lld channels, %lld tokens measured (%lld fitted on); relative MX error (lower is "
          "better)\n",
          capture_point_name(a.point).c_str(), static_cast<long long>(a.layer), static_cast<long long>(a.features),
          static_cast<long long>(a.tokens), static_cast<long long>(a.fit_tokens));
  appendf(out, "%-17s", "transform");
  for (int64_t b : a.block_sizes) appendf(out, " %9s", ("b=" + std::to_string(b)).c_str());
  appendf(out, "\n");
  for (const auto& c : a.curves) {
    appendf(out, "%-17s", analysis_transform_name(c.transform).c_str());
    for (const auto& r : c.sizes) {
      if (r.skipped) {
        appendf(out, " %9s", "-");
      } else {
        appendf(out, " %9.3e", r.rel_error);
      }
    }
    appendf(out, "\n");
  }
  appendf(out, "%-17s %6s %9s %9s %9s  %s\n", "at block 32 /last", "block", "cond", "crest", "peak", "note");
  for (const auto& c : a.curves) {
    const BlockSizeResult* shown = nullptr;
    for (const auto& r : c.sizes) {
      if (!r.skipped && (!shown || shown->block != 32)) shown = &r;  // block 32, else the largest
    }
    if (!shown) {
      appendf(out, "%-17s %s\n", analysis_transform_name(c.transform).c_str(),
              c.sizes.empty() ? "" : c.sizes.front().note.c_str());
      continue;
    }
    appendf(out, "%-17s %6lld %9.3g %9.3f %9.3f  %s\n", analysis_transform_name(c.transform).c_str(),
            static_cast<long long>(shown->block), shown->condition_number, shown->block_crest, shown->block_peak_power,
            shown->note.c_str());
  }
}

int run_analyze(const Args& args) {
  const api::AnalyzeRequest request = analyze_request_from_args(args);
  api::check_analyze_request(request);  // bad options fail before the model loads
  ProgressPrinter progress(args.flag("quiet"));
  api::AnalyzeResult result;
  if (remote_engine()) {
    result = api::analyze_result_from_json(run_remote("analyze", api::to_json(request), {progress.callback()}));
  } else {
    LoadedModel m = load_model_from_args(args, parse_compute_dtype(request.dtype), mapped_weights(args));
    JobControl job;
    job.cancel = interrupt_token();
    job.progress = progress.callback();
    result = api::run_analyze(request, m.model, *m.tokenizer, job);
  }
  progress.finish();
  if (args.flag("json")) {
    std::cout << api::to_json(result).dump(1) << "\n";
    return 0;
  }
  std::printf("%s", format_analyze_text(result).c_str());
  return 0;
}

}  // namespace

std::string format_analyze_text(const api::AnalyzeResult& result) {
  const MxAnalysis& analysis = result.analysis;
  std::string out;
  appendf(out, "data: %s (%s); %s, block size varied; learned: %lld Adam steps, lr %g, affine %s\n",
          result.request.data.c_str(), result.data.c_str(), analysis.format_description.c_str(),
          static_cast<long long>(analysis.steps), analysis.lr, analysis.affine.c_str());
  for (const auto& a : analysis.layers) append_layer(out, a);
  appendf(out, "\nanalysed in %s", format_duration(result.seconds).c_str());
  if (!result.files.empty()) appendf(out, "; wrote %s (%zu files)", result.request.out.c_str(), result.files.size());
  appendf(out, "\n");
  return out;
}

api::AnalyzeRequest analyze_request_from_args(const Args& args) {
  api::AnalyzeRequest r;
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
  if (args.has("layer")) r.layer = args.integer("layer");
  r.point = args.get("point");
  r.format = args.get("format");
  if (args.has("scale")) r.scale = args.get("scale");
  if (args.has("round")) r.round = args.get("round");
  r.blocks = args.get("blocks");
  r.detail_block = args.integer("detail-block");
  r.steps = args.integer("steps");
  r.lr = args.number("lr");
  r.holdout = args.number("holdout");
  r.affine = args.get("affine");
  r.batch = args.integer("batch");
  r.out = args.get("out");
  return r;
}

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
