#pragma once
/// \file plot.h
/// Room: engine/report/ (latmix_core, no LibTorch).
/// Line plots and grouped bar charts rendered to an Image (png.h), for the report that
/// `latmix compare` writes: loss curves of learned methods, perplexity and accuracy per method,
/// per-layer SQNR. Qt-free and LibTorch-free (latmix_core).
///
/// What render() does with awkward input (documented behaviour, tested):
///  - NaN and +-Inf values are skipped; a line has a gap where they were. On a log axis,
///    values <= 0 are skipped the same way. Each kind of skip is counted and stated in a grey
///    note under the chart ("note: 2 values <= 0 not shown on the log scale"), and the same
///    lines are returned through `notes` when it is not null.
///  - A series (or a run between gaps) of one point is drawn as a marker, so it stays visible.
///  - Empty series are listed in the legend; a chart with no drawable value shows "no data".
///  - Invalid input throws UsageError: x and y of different lengths, a bar group whose number
///    of values differs from the series count, an errors list that is neither empty nor one per
///    value, a negative or non-finite error, a size outside 240x160..16384x16384.
///
/// Axes get "nice" ticks: linear axes use steps of 1, 2 or 5 times a power of ten and end on
/// ticks; log axes spanning two decades or more end on decades, label each decade (every k-th
/// when there are many) and draw 2..9 as minor ticks; narrower log axes get 1-2-5 ticks.

#include <string>
#include <vector>

#include "latmix/png.h"

namespace latmix {

/// One line of a LinePlot. `x` and `y` have equal length (x need not be sorted; points are
/// joined in the given order).
struct Series {
  std::string name;  ///< legend text; empty keeps the series out of the legend
  std::vector<double> x, y;
  Rgba color{0, 0, 0, 0};  ///< alpha 0 (the default) takes default_palette()[index % size]
  bool markers = false;    ///< a marker at every point (shape cycles circle/square/diamond)
  bool dashed = false;     ///< dashed line, e.g. for a reference such as the unquantized model
};

struct LinePlot {
  std::string title, x_label, y_label;
  bool log_y = false;
  std::vector<Series> series;
  int width = 900, height = 520;
};

/// One category of a BarChart (e.g. a method): one value per series (e.g. per model), in the
/// order of BarChart::series_names. NaN marks a missing value (drawn as "n/a").
struct BarGroup {
  std::string label;
  std::vector<double> values;
  std::vector<double> errors;  ///< empty, or one +- half-width per value (an error bar)
};

struct BarChart {
  std::string title, y_label;
  /// Legend entries, one per value in each group. May be empty when every group holds a single
  /// value (no legend then).
  std::vector<std::string> series_names;
  std::vector<BarGroup> groups;
  bool log_y = false;
  bool value_labels = false;  ///< print each value (4 significant digits) above its bar
  int width = 900, height = 520;
};

/// Renders the chart. Notes about skipped values are drawn under the chart and, when `notes` is
/// not null, also returned there (one string per note).
Image render(const LinePlot& plot, std::vector<std::string>* notes = nullptr);
Image render(const BarChart& chart, std::vector<std::string>* notes = nullptr);

/// Okabe-Ito colours (distinguishable with the common colour-vision deficiencies), ordered so
/// that the first ones contrast best on white: blue, vermillion, bluish green, reddish purple,
/// orange, sky blue, black, yellow.
std::vector<Rgba> default_palette();

/// One tick of an axis.
struct AxisTick {
  double value = 0;   ///< in data units
  std::string label;  ///< empty for unlabelled (minor) ticks
  bool major = true;  ///< major ticks get a grid line and a longer mark
};

/// An axis range with its ticks, as render() computes it; exposed for tests and other views.
struct Axis {
  double lo = 0, hi = 1;  ///< in data units (both > 0 on a log axis)
  bool log = false;
  std::vector<AxisTick> ticks;
  /// Position of `v` along the axis: 0 at lo, 1 at hi (log10 spacing on a log axis).
  double fraction(double v) const;
};

/// Ticks for data in [data_lo, data_hi] with about `target_ticks` labelled ticks. Equal bounds
/// are widened; on a log axis both must be finite and > 0 (UsageError otherwise).
Axis make_axis(double data_lo, double data_hi, bool log, int target_ticks = 6);

/// A tick label: `value` printed with as many decimals as `step` needs ("0.25", "1500", "-3"),
/// in exponent form ("2e-05", "1.5e+07") for very small steps or very large values.
std::string format_tick(double value, double step);

/// Reports (compare, analyze): creates the report folder DIR (and its parents), or fails naming it.
void create_report_folder(const std::string& dir);
/// The "## Plots" section of a report's Markdown: one image link per file name (empty when none).
std::string markdown_plot_links(const std::vector<std::string>& plots);

}  // namespace latmix
