// The MX error analysis as JSON, markdown and PNG plots (latmix analyze --json / --out).
#include <cmath>
#include <filesystem>
#include <nlohmann/json.hpp>
#include <sstream>

#include "latmix/error.h"
#include "latmix/files.h"
#include "latmix/mx_analysis.h"
#include "latmix/plot.h"

namespace latmix {

namespace {

using nlohmann::json;

json number(double x) {
  return std::isfinite(x) ? json(x) : json(nullptr);
}

json numbers(const std::vector<double>& v) {
  json a = json::array();
  for (double x : v) a.push_back(number(x));
  return a;
}

json size_json(const BlockSizeResult& r, bool learned) {
  json j{{"block", r.block}, {"skipped", r.skipped}};
  if (!r.note.empty()) j["note"] = r.note;
  if (r.skipped) return j;
  j["rel_error"] = number(r.rel_error);
  j["condition_number"] = number(r.condition_number);
  j["block_crest"] = number(r.block_crest);
  j["block_peak_power"] = number(r.block_peak_power);
  if (learned) {
    j["init_error"] = number(r.init_error);
    j["fit_error"] = number(r.fit_error);
    j["best_step"] = r.best_step;
    j["steps"] = r.steps;
  }
  return j;
}

json layer_json(const MxLayerAnalysis& a) {
  json j{{"point", capture_point_name(a.point)},
         {"layer", a.layer},
         {"features", a.features},
         {"tokens", a.tokens},
         {"fit_tokens", a.fit_tokens},
         {"block_sizes", a.block_sizes},
         {"detail_block", a.detail_block}};
  json curves = json::object();
  for (const auto& c : a.curves) {
    const bool learned =
        c.transform == AnalysisTransform::LearnedRotation || c.transform == AnalysisTransform::LearnedAffine;
    json sizes = json::array();
    for (const auto& r : c.sizes) sizes.push_back(size_json(r, learned));
    curves[analysis_transform_name(c.transform)] = {{"sizes", sizes}, {"block_errors", numbers(c.block_errors)}};
  }
  j["transforms"] = curves;
  return j;
}

std::string label(const MxLayerAnalysis& a) {
  return capture_point_name(a.point) + "_" + std::to_string(a.layer);
}

std::string fmt(const char* f, double x) {
  char buf[64];
  std::snprintf(buf, sizeof buf, f, x);
  return buf;
}

}  // namespace

std::string mx_analysis_to_json(const MxAnalysis& analysis, int indent) {
  json layers = json::array();
  for (const auto& a : analysis.layers) layers.push_back(layer_json(a));
  const json j{{"format", analysis.format},
               {"format_description", analysis.format_description},
               {"affine", analysis.affine},
               {"steps", analysis.steps},
               {"lr", analysis.lr},
               {"holdout", analysis.holdout},
               {"seed", analysis.seed},
               {"sequences", analysis.sequences},
               {"seqlen", analysis.seqlen},
               {"transforms",
                [] {
                  json names = json::array();
                  for (AnalysisTransform t : analysis_transforms()) names.push_back(analysis_transform_name(t));
                  return names;
                }()},
               {"layers", layers}};
  return j.dump(indent);
}

std::string mx_analysis_markdown(const MxAnalysis& analysis, const std::vector<std::string>& plots) {
  std::ostringstream md;
  md << "# MX quantization error against the block size\n\n"
     << "Format " << analysis.format << " (element, scale rule and rounding of " << analysis.format_description
     << "; the block size varies), " << analysis.sequences << " sequences of " << analysis.seqlen
     << " tokens. Learned transforms: " << analysis.steps << " Adam steps, lr " << analysis.lr
     << ", from the block Hadamard; affine parametrization " << analysis.affine << "; fitted on the first "
     << 100 * (1 - analysis.holdout) << "% of the tokens, every figure measured on the other " << 100 * analysis.holdout
     << "% (all tokens when 0%).\n\n"
     << "Relative error E = sum ||x - T^-1 Q(T x)||^2 / sum ||x||^2 (lower is better); crest = mean over "
        "(token, block) of max|Tx| / rms(Tx); peak = sum b max|Tx|^2 / sum ||Tx||^2; cond = condition number "
        "of T.\n";
  for (const auto& a : analysis.layers) {
    md << "\n## " << capture_point_name(a.point) << ", layer " << a.layer << " (" << a.features << " channels, "
       << a.tokens << " tokens measured, " << a.fit_tokens << " fitted on)\n\n| transform |";
    for (int64_t b : a.block_sizes) md << " b=" << b << " |";
    md << "\n|---|";
    for (size_t i = 0; i < a.block_sizes.size(); ++i) md << "---|";
    md << "\n";
    for (const auto& c : a.curves) {
      md << "| " << analysis_transform_name(c.transform) << " |";
      for (const auto& r : c.sizes) md << (r.skipped ? " - |" : " " + fmt("%.4g", r.rel_error) + " |");
      md << "\n";
    }
    md << "\nCondition number, block crest, block peak power; learned: error on the fitting rows (start -> "
          "kept):\n\n| transform | block | cond | crest | peak | fit | note |\n"
       << "|---|---|---|---|---|---|---|\n";
    for (const auto& c : a.curves) {
      for (const auto& r : c.sizes) {
        md << "| " << analysis_transform_name(c.transform) << " | " << r.block << " | "
           << (r.skipped ? "-" : fmt("%.3g", r.condition_number)) << " | "
           << (r.skipped ? "-" : fmt("%.3f", r.block_crest)) << " | "
           << (r.skipped ? "-" : fmt("%.3f", r.block_peak_power)) << " | "
           << (std::isnan(r.fit_error) ? "" : fmt("%.4g", r.init_error) + " -> " + fmt("%.4g", r.fit_error)) << " | "
           << r.note << " |\n";
      }
    }
  }
  md << markdown_plot_links(plots);
  return md.str();
}

std::vector<std::string> write_mx_analysis_report(const MxAnalysis& analysis, const std::string& dir) {
  namespace fs = std::filesystem;
  create_report_folder(dir);
  std::vector<std::string> plots;
  auto png = [&](const std::string& name, const Image& image) {
    const std::string path = (fs::path(dir) / name).string();
    write_png(path, image);
    plots.push_back(path);
  };
  for (const auto& a : analysis.layers) {
    LinePlot err{"MX error vs block size: " + capture_point_name(a.point) + ", layer " + std::to_string(a.layer) +
                     " (" + analysis.format + ")",
                 "log2 block size",
                 "relative error",
                 true,
                 {},
                 900,
                 520};
    LinePlot blocks{"Per-block error at block " + std::to_string(a.detail_block) + ": " + capture_point_name(a.point) +
                        ", layer " + std::to_string(a.layer),
                    "block",
                    "share of relative error",
                    true,
                    {},
                    900,
                    520};
    for (const auto& c : a.curves) {
      Series s;
      s.name = analysis_transform_name(c.transform);
      s.markers = true;
      for (const auto& r : c.sizes) {
        if (r.skipped) continue;
        s.x.push_back(std::log2(static_cast<double>(r.block)));
        s.y.push_back(r.rel_error);
      }
      err.series.push_back(s);
      if (c.block_errors.empty()) continue;
      Series b;
      b.name = s.name;
      for (size_t j = 0; j < c.block_errors.size(); ++j) {
        b.x.push_back(static_cast<double>(j));
        b.y.push_back(c.block_errors[j]);
      }
      blocks.series.push_back(std::move(b));
    }
    png("error_" + label(a) + ".png", render(err));
    if (!blocks.series.empty()) png("blocks_" + label(a) + ".png", render(blocks));
  }
  const std::string md = (fs::path(dir) / "report.md").string();
  const std::string js = (fs::path(dir) / "report.json").string();
  write_file_atomic(md, mx_analysis_markdown(analysis, plots));
  write_file_atomic(js, mx_analysis_to_json(analysis, 2) + "\n");
  std::vector<std::string> written{md, js};
  written.insert(written.end(), plots.begin(), plots.end());
  return written;
}

}  // namespace latmix
