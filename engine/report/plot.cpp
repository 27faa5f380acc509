// Line plots and grouped bar charts drawn on an Image: layout, axes, legend, notes, data.
#include "latmix/plot.h"

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <string>

#include "latmix/error.h"

namespace latmix {

namespace {

constexpr Rgba kInk{33, 33, 33};
constexpr Rgba kAxisInk{90, 90, 90};
constexpr Rgba kGrid{226, 226, 226};
constexpr Rgba kMinorGrid{242, 242, 242};
constexpr Rgba kNoteInk{110, 110, 110};
constexpr Rgba kWhite{255, 255, 255};
constexpr int kPad = 12;      // outer margin
constexpr int kTickLen = 5;   // major tick mark; minor ones are 3
constexpr int kTickGap = 4;   // between a tick mark and its label
constexpr int kLabelGap = 8;  // between tick labels and the axis label
constexpr int kLegendRow = 15;
constexpr int kSwatch = 22;
constexpr int kNoteRow = 12;
constexpr int kMinWidth = 240, kMinHeight = 160;

// The plot area [left, right) x [top, bottom); the frame is drawn on its outermost pixels.
struct Frame {
  int left = 0, top = 0, right = 0, bottom = 0;
  int w() const { return right - left; }
  int h() const { return bottom - top; }
  // Continuous coordinates of an axis fraction: 0 is the centre of the first row or column.
  double x_at(double f) const { return left + 0.5 + f * (w() - 1); }
  double y_at(double f) const { return bottom - 0.5 - f * (h() - 1); }
};

struct LegendEntry {
  std::string name;
  Rgba color;
  bool bar = false;  // filled square swatch instead of a line
  bool dashed = false;
  bool markers = false;
  Marker marker = Marker::kCircle;
};

void check_size(int width, int height) {
  if (width < kMinWidth || height < kMinHeight || width > Image::kMaxSide || height > Image::kMaxSide) {
    throw UsageError(describe_error("", "chart size",
                                    std::to_string(kMinWidth) + "x" + std::to_string(kMinHeight) + " .. " +
                                        std::to_string(Image::kMaxSide) + " per side",
                                    std::to_string(width) + " x " + std::to_string(height)));
  }
}

// `text` cut to fit `max_px`, with ".." marking the cut.
std::string fit_text(const std::string& text, int max_px, int scale = 1) {
  if (text_width(text, scale) <= max_px) return text;
  const int chars = (max_px / scale + 1) / FontMetrics::kCellWidth - 2;
  return chars <= 0 ? std::string() : text.substr(0, static_cast<size_t>(chars)) + "..";
}

int title_scale(const std::string& title, int width) {
  return text_width(title, 2) <= width - 2 * kPad ? 2 : 1;
}

int title_band(const std::string& title, int width) {
  return title.empty() ? kPad + 4 : kPad + text_height(title_scale(title, width)) + kPad;
}

int legend_width(const std::vector<LegendEntry>& entries) {
  int widest = 0;
  for (const auto& e : entries) widest = std::max(widest, text_width(fit_text(e.name, 170)));
  return entries.empty() ? 0 : 6 + kSwatch + 6 + widest + 8;
}

Marker marker_for(size_t index) {
  static constexpr Marker kShapes[] = {Marker::kCircle, Marker::kSquare, Marker::kDiamond};
  return kShapes[index % 3];
}

void draw_legend(Image& img, const std::vector<LegendEntry>& entries, int x, int y) {
  if (entries.empty()) return;
  const int w = legend_width(entries), h = static_cast<int>(entries.size()) * kLegendRow + 8;
  img.fill_rect(x, y, x + w, y + h, kWhite);
  img.draw_rect(x, y, x + w, y + h, kGrid);
  for (size_t i = 0; i < entries.size(); ++i) {
    const LegendEntry& e = entries[i];
    const int row_mid = y + 4 + static_cast<int>(i) * kLegendRow + kLegendRow / 2;
    const double sx0 = x + 6, sx1 = x + 6 + kSwatch, sy = row_mid + 0.5;
    if (e.bar) {
      img.fill_rect(x + 6 + 5, row_mid - 5, x + 6 + kSwatch - 5, row_mid + 6, e.color);
    } else if (e.dashed) {
      img.draw_dashed_line({sx0, sy}, {sx1, sy}, e.color, 2.0, 5, 3);
    } else {
      img.draw_line({sx0, sy}, {sx1, sy}, e.color, 2.0);
    }
    if (e.markers) img.draw_marker({(sx0 + sx1) / 2, sy}, e.marker, 7, e.color);
    img.draw_text(x + 6 + kSwatch + 6, row_mid - 3, fit_text(e.name, 170), kInk);
  }
}

// Keeps every k-th label, the smallest k for which neighbouring labels do not touch.
int label_stride(const std::vector<std::pair<double, int>>& centre_and_width) {
  for (int k = 1; k < 64; ++k) {
    bool ok = true;
    for (size_t i = static_cast<size_t>(k); i < centre_and_width.size() && ok; i += static_cast<size_t>(k)) {
      const auto& [c0, w0] = centre_and_width[i - static_cast<size_t>(k)];
      const auto& [c1, w1] = centre_and_width[i];
      ok = c1 - w1 / 2.0 >= c0 + w0 / 2.0 + 8;
    }
    if (ok) return k;
  }
  return 64;
}

int y_label_width(const Axis& axis) {
  int w = 0;
  for (const auto& t : axis.ticks) w = std::max(w, text_width(t.label));
  return w;
}

// The frame for a chart: everything outside it (title, tick labels, axis labels, legend, notes)
// is measured first. `bottom_rows` counts text rows under the x axis (tick or group labels).
Frame layout_frame(int width, int height, const std::string& title, const std::string& x_label,
                   const std::string& y_label, const Axis& y_axis, int legend_w, size_t notes, int bottom_rows) {
  Frame f;
  f.top = title_band(title, width);
  f.bottom = height - kPad - static_cast<int>(notes) * kNoteRow - (x_label.empty() ? 0 : text_height() + kLabelGap) -
             bottom_rows * (text_height() + 3) - kTickGap - kTickLen;
  f.left = kPad + (y_label.empty() ? 0 : text_height() + kLabelGap) + y_label_width(y_axis) + kTickGap + kTickLen;
  f.right = width - kPad - (legend_w > 0 ? legend_w + kPad : 0);
  if (f.w() < 60 || f.h() < 60) {
    throw UsageError(describe_error("", "chart layout", "a plot area of at least 60x60 px",
                                    std::to_string(std::max(0, f.w())) + " x " + std::to_string(std::max(0, f.h())) +
                                        " px left after titles, labels and legend"));
  }
  return f;
}

int y_target_ticks(int plot_h) {
  return std::clamp(plot_h / 45, 3, 10);
}

// Axis with ticks sized for the plot height that the layout will give it. The y axis's tick
// labels set the left margin, which does not change the height, so one pass is enough.
Axis y_axis_for(double lo, double hi, bool log, int height, const std::string& title, int width, size_t notes,
                bool x_label, int bottom_rows) {
  const int plot_h = height - title_band(title, width) - kPad - static_cast<int>(notes) * kNoteRow -
                     (x_label ? text_height() + kLabelGap : 0) - bottom_rows * (text_height() + 3) - kTickGap -
                     kTickLen;
  return make_axis(lo, hi, log, y_target_ticks(std::max(plot_h, 60)));
}

void draw_y_axis(Image& img, const Frame& f, const Axis& axis, const std::string& y_label) {
  for (const auto& t : axis.ticks) {
    const double frac = axis.fraction(t.value);
    if (frac < -1e-9 || frac > 1 + 1e-9) continue;
    const int row = static_cast<int>(std::lround(f.y_at(frac) - 0.5));
    img.fill_rect(f.left + 1, row, f.right - 1, row + 1, t.major ? kGrid : kMinorGrid);
    img.fill_rect(f.left - (t.major ? kTickLen : 3), row, f.left, row + 1, kAxisInk);
    if (!t.label.empty()) {
      img.draw_text(f.left - kTickLen - kTickGap - text_width(t.label), row - 3, t.label, kInk);
    }
  }
  if (!y_label.empty()) {
    const std::string label = fit_text(y_label, f.h());
    img.draw_text_up(kPad, f.top + (f.h() + text_width(label)) / 2, label, kInk);
  }
}

void draw_x_axis(Image& img, const Frame& f, const Axis& axis, const std::string& x_label) {
  std::vector<std::pair<double, int>> labelled;
  std::vector<std::pair<int, const AxisTick*>> cols;
  for (const auto& t : axis.ticks) {
    const double frac = axis.fraction(t.value);
    if (frac < -1e-9 || frac > 1 + 1e-9) continue;
    const int col = static_cast<int>(std::lround(f.x_at(frac) - 0.5));
    cols.emplace_back(col, &t);
    img.fill_rect(col, f.top + 1, col + 1, f.bottom - 1, t.major ? kGrid : kMinorGrid);
    img.fill_rect(col, f.bottom, col + 1, f.bottom + (t.major ? kTickLen : 3), kAxisInk);
    if (!t.label.empty()) labelled.emplace_back(col + 0.5, text_width(t.label));
  }
  const int stride = label_stride(labelled);
  int index = 0;
  for (const auto& [col, t] : cols) {
    if (t->label.empty()) continue;
    if (index++ % stride != 0) continue;
    img.draw_text(col - text_width(t->label) / 2, f.bottom + kTickLen + kTickGap, t->label, kInk);
  }
  if (!x_label.empty()) {
    const std::string label = fit_text(x_label, f.w());
    img.draw_text(f.left + (f.w() - text_width(label)) / 2, f.bottom + kTickLen + kTickGap + text_height() + kLabelGap,
                  label, kInk);
  }
}

void draw_title(Image& img, const Frame& f, const std::string& title) {
  if (title.empty()) return;
  const int scale = title_scale(title, img.width());
  const std::string text = fit_text(title, img.width() - 2 * kPad, scale);
  const int w = text_width(text, scale);
  const int x = std::clamp(f.left + (f.w() - w) / 2, kPad, std::max(kPad, img.width() - kPad - w));
  img.draw_text(x, kPad, text, kInk, scale);
}

void draw_notes(Image& img, const std::vector<std::string>& notes) {
  int y = img.height() - kPad - static_cast<int>(notes.size()) * kNoteRow + 3;
  for (const auto& n : notes) {
    img.draw_text(kPad, y, fit_text(n, img.width() - 2 * kPad), kNoteInk);
    y += kNoteRow;
  }
}

void draw_no_data(Image& img, const Frame& f) {
  const std::string text = "no data";
  img.draw_text(f.left + (f.w() - text_width(text, 2)) / 2, f.top + (f.h() - text_height(2)) / 2, text, kNoteInk, 2);
}

std::string series_list(const std::vector<std::string>& names) {
  std::string out;
  for (size_t i = 0; i < names.size() && i < 3; ++i) out += (i ? ", " : "") + names[i];
  if (names.size() > 3) out += ", ...";
  return out.empty() ? out : " (" + out + ")";
}

std::string count_text(size_t n, const char* what) {
  return std::to_string(n) + " " + what + (n == 1 ? "" : "s");
}

bool usable(double v, bool log) {
  return std::isfinite(v) && (!log || v > 0);
}

// ---- line plots ----

Rgba series_color(const Series& s, size_t index) {
  if (s.color.a != 0) return s.color;
  const auto palette = default_palette();
  return palette[index % palette.size()];
}

std::vector<std::string> line_notes(const LinePlot& plot) {
  size_t bad = 0, nonpos = 0;
  std::vector<std::string> bad_names, nonpos_names;
  for (const Series& s : plot.series) {
    size_t b = 0, p = 0;
    for (size_t i = 0; i < s.x.size(); ++i) {
      if (!std::isfinite(s.x[i]) || !std::isfinite(s.y[i])) {
        ++b;
      } else if (plot.log_y && s.y[i] <= 0) {
        ++p;
      }
    }
    if (b > 0) bad_names.push_back(s.name);
    if (p > 0) nonpos_names.push_back(s.name);
    bad += b;
    nonpos += p;
  }
  std::vector<std::string> notes;
  if (bad > 0)
    notes.push_back("note: " + count_text(bad, "point") + " with NaN/Inf not shown" + series_list(bad_names));
  if (nonpos > 0) {
    notes.push_back("note: " + count_text(nonpos, "point") + " with y <= 0 not shown on the log scale" +
                    series_list(nonpos_names));
  }
  return notes;
}

void draw_series(Image& img, const Frame& f, const Axis& xa, const Axis& ya, const Series& s, size_t index,
                 bool log_y) {
  const Rgba color = series_color(s, index);
  std::vector<std::vector<PointF>> runs(1);
  for (size_t i = 0; i < s.x.size(); ++i) {
    if (std::isfinite(s.x[i]) && usable(s.y[i], log_y)) {
      runs.back().push_back({f.x_at(xa.fraction(s.x[i])), f.y_at(ya.fraction(s.y[i]))});
    } else if (!runs.back().empty()) {
      runs.emplace_back();
    }
  }
  for (const auto& run : runs) {
    if (run.size() >= 2) img.draw_polyline(run, color, 2.0, s.dashed ? 6 : 0, s.dashed ? 4 : 0);
    if (run.size() == 1 && !s.markers) img.fill_circle(run[0], 3.0, color);  // else invisible
    if (s.markers) {
      for (const PointF& p : run) img.draw_marker(p, marker_for(index), 7, color);
    }
  }
}

}  // namespace

Image render(const LinePlot& plot, std::vector<std::string>* notes_out) {
  check_size(plot.width, plot.height);
  double xlo = INFINITY, xhi = -INFINITY, ylo = INFINITY, yhi = -INFINITY;
  std::vector<LegendEntry> legend;
  for (size_t si = 0; si < plot.series.size(); ++si) {
    const Series& s = plot.series[si];
    if (s.x.size() != s.y.size()) {
      throw UsageError(
          describe_error("", "series '" + s.name + "'", "x and y of equal length",
                         std::to_string(s.x.size()) + " x values, " + std::to_string(s.y.size()) + " y values"));
    }
    for (size_t i = 0; i < s.x.size(); ++i) {
      if (!std::isfinite(s.x[i]) || !usable(s.y[i], plot.log_y)) continue;
      xlo = std::min(xlo, s.x[i]), xhi = std::max(xhi, s.x[i]);
      ylo = std::min(ylo, s.y[i]), yhi = std::max(yhi, s.y[i]);
    }
    if (!s.name.empty()) legend.push_back({s.name, series_color(s, si), false, s.dashed, s.markers, marker_for(si)});
  }
  const bool has_data = xlo <= xhi;
  if (!has_data) xlo = 0, xhi = 1, ylo = plot.log_y ? 1 : 0, yhi = plot.log_y ? 10 : 1;

  const std::vector<std::string> notes = line_notes(plot);
  const Axis ya =
      y_axis_for(ylo, yhi, plot.log_y, plot.height, plot.title, plot.width, notes.size(), !plot.x_label.empty(), 1);
  const Frame f = layout_frame(plot.width, plot.height, plot.title, plot.x_label, plot.y_label, ya,
                               legend_width(legend), notes.size(), 1);
  const Axis xa = make_axis(xlo, xhi, false, std::clamp(f.w() / 90, 2, 10));

  Image img(plot.width, plot.height, kWhite);
  draw_title(img, f, plot.title);
  draw_y_axis(img, f, ya, plot.y_label);
  draw_x_axis(img, f, xa, plot.x_label);
  img.draw_rect(f.left, f.top, f.right, f.bottom, kAxisInk);
  img.set_clip(f.left, f.top, f.right, f.bottom);
  for (size_t si = 0; si < plot.series.size(); ++si) draw_series(img, f, xa, ya, plot.series[si], si, plot.log_y);
  img.reset_clip();
  if (!has_data) draw_no_data(img, f);
  draw_legend(img, legend, f.right + kPad, f.top);
  draw_notes(img, notes);
  if (notes_out != nullptr) *notes_out = notes;
  return img;
}

// ---- bar charts ----

namespace {

size_t bar_series_count(const BarChart& chart) {
  const size_t n = !chart.series_names.empty() ? chart.series_names.size()
                                               : (chart.groups.empty() ? 0 : chart.groups.front().values.size());
  for (const BarGroup& g : chart.groups) {
    const std::string what = "bar group '" + g.label + "'";
    if (g.values.size() != n) {
      throw UsageError(
          describe_error("", what, std::to_string(n) + " values (one per series)", std::to_string(g.values.size())));
    }
    if (!g.errors.empty() && g.errors.size() != n) {
      throw UsageError(describe_error("", what, "no errors or " + std::to_string(n), std::to_string(g.errors.size())));
    }
    for (double e : g.errors) {
      if (!std::isfinite(e) || e < 0) {
        throw UsageError(describe_error("", what, "errors finite and >= 0", format_tick(e, 0)));
      }
    }
  }
  return n;
}

std::string value_text(double v) {
  char buf[32];
  std::snprintf(buf, sizeof(buf), "%.4g", v);
  return buf;
}

struct BarGeometry {
  double group_w = 0, bar_w = 0;
  double bar_x(size_t g, size_t s, const Frame& f) const { return f.left + g * group_w + 0.1 * group_w + s * bar_w; }
};

// Draws the label of one bar (its value, or "n/a") beyond the bar's end `y_end`, rotated when
// wider than the bar. `up` is false for bars below zero.
void draw_bar_label(Image& img, double cx, double bar_w, double y_end, bool up, const std::string& text, Rgba ink) {
  const int w = text_width(text);
  if (w <= bar_w + 4) {
    const int y =
        up ? static_cast<int>(std::lround(y_end)) - 3 - text_height() : static_cast<int>(std::lround(y_end)) + 3;
    img.draw_text(static_cast<int>(std::lround(cx - w / 2.0)), y, text, ink);
  } else {
    const int x = static_cast<int>(std::lround(cx - text_height() / 2.0));
    const int y = up ? static_cast<int>(std::lround(y_end)) - 3 : static_cast<int>(std::lround(y_end)) + 3 + w;
    img.draw_text_up(x, y, text, ink);
  }
}

}  // namespace

Image render(const BarChart& chart, std::vector<std::string>* notes_out) {
  check_size(chart.width, chart.height);
  const size_t n_series = bar_series_count(chart);
  const size_t n_groups = chart.groups.size();

  double lo = INFINITY, hi = -INFINITY;
  size_t missing = 0, nonpos = 0;
  int widest_value = 0;
  for (const BarGroup& g : chart.groups) {
    for (size_t s = 0; s < n_series; ++s) {
      const double v = g.values[s], e = g.errors.empty() ? 0 : g.errors[s];
      if (!std::isfinite(v)) {
        ++missing;
        continue;
      }
      if (chart.log_y && v <= 0) {
        ++nonpos;
        continue;
      }
      hi = std::max(hi, v + e);
      lo = std::min(lo, (!chart.log_y || v - e > 0) ? v - e : v);
      widest_value = std::max(widest_value, text_width(value_text(v)));
    }
  }
  const bool has_data = lo <= hi;
  if (!has_data) lo = chart.log_y ? 1 : 0, hi = chart.log_y ? 10 : 1;
  if (!chart.log_y) lo = std::min(lo, 0.0), hi = std::max(hi, 0.0);  // bars start at zero
  if (chart.log_y && has_data) lo /= 2;  // log bars start at the axis: keep the smallest one visible

  std::vector<std::string> notes;
  if (missing > 0) notes.push_back("note: " + count_text(missing, "value") + " missing (NaN/Inf), shown as n/a");
  if (nonpos > 0) notes.push_back("note: " + count_text(nonpos, "value") + " <= 0 not shown on the log scale");

  std::vector<LegendEntry> legend;
  const auto palette = default_palette();
  for (size_t s = 0; s < chart.series_names.size(); ++s) {
    if (!chart.series_names[s].empty()) legend.push_back({chart.series_names[s], palette[s % palette.size()], true});
  }

  // Group labels go on two staggered rows when one row would make them collide.
  auto label_rows_for = [&](const Frame& f) {
    if (n_groups == 0) return 1;
    const double gw = static_cast<double>(f.w()) / n_groups;
    for (const BarGroup& g : chart.groups) {
      if (text_width(g.label) > gw - 6) return 2;
    }
    return 1;
  };
  Axis ya = y_axis_for(lo, hi, chart.log_y, chart.height, chart.title, chart.width, notes.size(), false, 1);
  Frame f = layout_frame(chart.width, chart.height, chart.title, "", chart.y_label, ya, legend_width(legend),
                         notes.size(), 1);
  const int label_rows = label_rows_for(f);
  if (chart.value_labels && has_data) {
    // Head room for the labels: the widest one may stand rotated above the tallest bar.
    const double need = widest_value + 6.0, frac = need / std::max(f.h() - need, 1.0);
    if (!chart.log_y) {
      const double span = hi - lo;
      if (hi > 0) hi += span * frac;
      if (lo < 0) lo -= span * frac;
    } else {
      hi = std::pow(10.0, std::log10(hi) + (std::log10(hi) - std::log10(lo) + 0.3) * frac);
    }
  }
  ya = y_axis_for(lo, hi, chart.log_y, chart.height, chart.title, chart.width, notes.size(), false, label_rows);
  f = layout_frame(chart.width, chart.height, chart.title, "", chart.y_label, ya, legend_width(legend), notes.size(),
                   label_rows);

  Image img(chart.width, chart.height, kWhite);
  draw_title(img, f, chart.title);
  draw_y_axis(img, f, ya, chart.y_label);
  img.draw_rect(f.left, f.top, f.right, f.bottom, kAxisInk);

  BarGeometry geo;
  geo.group_w = n_groups ? static_cast<double>(f.w()) / n_groups : 0;
  geo.bar_w = n_series ? 0.8 * geo.group_w / n_series : 0;
  const double base_y = chart.log_y ? f.bottom - 0.5 : f.y_at(ya.fraction(0.0));
  const int gap = geo.bar_w >= 6 ? 1 : 0;  // a white pixel between neighbouring bars
  img.set_clip(f.left + 1, f.top + 1, f.right - 1, f.bottom - 1);
  for (size_t g = 0; g < n_groups; ++g) {
    const BarGroup& grp = chart.groups[g];
    for (size_t s = 0; s < n_series; ++s) {
      const double v = grp.values[s], x0 = geo.bar_x(g, s, f), cx = x0 + geo.bar_w / 2;
      if (!usable(v, chart.log_y)) {
        draw_bar_label(img, cx, geo.bar_w, base_y, true, std::isfinite(v) ? "<=0" : "n/a", kNoteInk);
        continue;
      }
      const double vy = f.y_at(ya.fraction(v));
      const int px0 = static_cast<int>(std::lround(x0)) + gap, px1 = static_cast<int>(std::lround(x0 + geo.bar_w));
      const int py0 = static_cast<int>(std::lround(std::min(vy, base_y))),
                py1 = static_cast<int>(std::lround(std::max(vy, base_y)));
      img.fill_rect(px0, py0, std::max(px1, px0 + 1), std::max(py1, py0 + 1), palette[s % palette.size()]);
      double label_y = vy;
      if (!grp.errors.empty() && grp.errors[s] > 0) {
        const double e = grp.errors[s];
        const double ylo_e = usable(v - e, chart.log_y) ? f.y_at(ya.fraction(v - e)) : base_y;
        const double yhi_e = f.y_at(ya.fraction(v + e));
        const double cap = std::min(geo.bar_w * 0.3, 6.0);
        img.draw_line({cx, ylo_e}, {cx, yhi_e}, kInk, 1.5);
        img.draw_line({cx - cap, ylo_e}, {cx + cap, ylo_e}, kInk, 1.5);
        img.draw_line({cx - cap, yhi_e}, {cx + cap, yhi_e}, kInk, 1.5);
        label_y = v >= 0 ? std::min(vy, yhi_e) : std::max(vy, ylo_e);
      }
      if (chart.value_labels) draw_bar_label(img, cx, geo.bar_w, label_y, v >= 0 || chart.log_y, value_text(v), kInk);
    }
  }
  img.reset_clip();
  if (!chart.log_y && ya.lo < 0) {
    const int row = static_cast<int>(std::lround(base_y - 0.5));
    img.fill_rect(f.left, row, f.right, row + 1, kAxisInk);
  }
  for (size_t g = 0; g < n_groups; ++g) {
    const double cx = f.left + (g + 0.5) * geo.group_w;
    const int row = label_rows == 2 ? static_cast<int>(g % 2) : 0;
    const std::string label = fit_text(chart.groups[g].label, static_cast<int>(geo.group_w * label_rows) - 6);
    img.fill_rect(static_cast<int>(cx), f.bottom, static_cast<int>(cx) + 1, f.bottom + kTickLen, kAxisInk);
    img.draw_text(static_cast<int>(std::lround(cx - text_width(label) / 2.0)),
                  f.bottom + kTickLen + kTickGap + row * (text_height() + 3), label, kInk);
  }
  if (!has_data) draw_no_data(img, f);
  draw_legend(img, legend, f.right + kPad, f.top);
  draw_notes(img, notes);
  if (notes_out != nullptr) *notes_out = notes;
  return img;
}

}  // namespace latmix
