// Axis ranges and "nice" ticks (1-2-5 steps, decades on log axes), tick labels, the palette.
#include <algorithm>
#include <cmath>
#include <cstdio>
#include <filesystem>
#include <system_error>
#include <string>

#include "latmix/error.h"
#include "latmix/plot.h"

namespace latmix {

namespace {

std::string printf_string(const char* format, int precision, double value) {
  char buf[64];
  std::snprintf(buf, sizeof(buf), format, precision, value);
  return buf;
}

// Decimals needed to print multiples of `step` exactly (0.25 -> 2, 5 -> 0, 2e-3 -> 3).
int decimals_for(double step) {
  for (int d = 0; d <= 12; ++d) {
    const double scaled = step * std::pow(10.0, d);
    if (std::abs(scaled - std::round(scaled)) <= 1e-6 * scaled) return d;
  }
  return 12;
}

// 1, 2 or 5 times a power of ten, near raw.
double nice_step(double raw) {
  const double mag = std::pow(10.0, std::floor(std::log10(raw)));
  const double norm = raw / mag;
  const double mult = norm < 1.5 ? 1 : norm < 3 ? 2 : norm < 7 ? 5 : 10;
  return mult * mag;
}

Axis linear_axis(double lo, double hi, int target) {
  Axis axis;
  const double step = nice_step((hi - lo) / target);
  const double k0 = std::floor(lo / step + 1e-9), k1 = std::ceil(hi / step - 1e-9);
  axis.lo = k0 * step;
  axis.hi = k1 * step;
  for (double k = k0; k <= k1 + 0.5; ++k) {
    const double v = k * step;  // from the index, so errors do not accumulate
    axis.ticks.push_back({v, format_tick(v, step), true});
  }
  return axis;
}

std::string decade_label(int exponent) {
  if (exponent >= -4 && exponent <= 5) return format_tick(std::pow(10.0, exponent), std::pow(10.0, exponent));
  return "1e" + std::to_string(exponent);
}

// A log axis over two decades or more: ends on decades, labels every k-th, minor ticks 2..9.
Axis decade_axis(int d0, int d1, int target) {
  Axis axis;
  axis.log = true;
  axis.lo = std::pow(10.0, d0);
  axis.hi = std::pow(10.0, d1);
  const int every = std::max(1, (d1 - d0 + target - 1) / target);
  for (int d = d0; d <= d1; ++d) {
    const bool labelled = ((d % every) + every) % every == 0;
    axis.ticks.push_back({std::pow(10.0, d), labelled ? decade_label(d) : std::string(), true});
    if (d < d1 && d1 - d0 <= 8) {
      for (int m = 2; m <= 9; ++m) axis.ticks.push_back({m * std::pow(10.0, d), "", false});
    }
  }
  return axis;
}

// A log axis narrower than that: ends and ticks on m x 10^e, m from {1, 2, 5} or, when that
// gives fewer than three ticks, from 1..9.
Axis narrow_log_axis(double lo, double hi) {
  const int e0 = static_cast<int>(std::floor(std::log10(lo))) - 1, e1 = static_cast<int>(std::ceil(std::log10(hi)));
  for (const std::vector<int>& mults : {std::vector<int>{1, 2, 5}, std::vector<int>{1, 2, 3, 4, 5, 6, 7, 8, 9}}) {
    std::vector<double> cands;
    for (int e = e0; e <= e1; ++e) {
      for (int m : mults) cands.push_back(m * std::pow(10.0, e));
    }
    // The largest candidate <= lo and the smallest >= hi (relative tolerance for rounding).
    double alo = cands.front(), ahi = cands.back();
    for (double c : cands) {
      if (c <= lo * (1 + 1e-9)) alo = c;
    }
    for (auto it = cands.rbegin(); it != cands.rend(); ++it) {
      if (*it >= hi * (1 - 1e-9)) ahi = *it;
    }
    Axis axis;
    axis.log = true;
    axis.lo = alo;
    axis.hi = ahi;
    for (double c : cands) {
      if (c >= alo * (1 - 1e-9) && c <= ahi * (1 + 1e-9)) {
        axis.ticks.push_back({c, format_tick(c, std::pow(10.0, std::floor(std::log10(c) + 1e-9))), true});
      }
    }
    if (axis.ticks.size() >= 3 || mults.size() > 3) return axis;
  }
  return {};  // not reached: the second pass always returns
}

}  // namespace

double Axis::fraction(double v) const {
  if (log) return (std::log10(v) - std::log10(lo)) / (std::log10(hi) - std::log10(lo));
  return (v - lo) / (hi - lo);
}

std::string format_tick(double value, double step) {
  step = std::abs(step);
  if (!std::isfinite(value)) return std::isnan(value) ? "nan" : (value > 0 ? "inf" : "-inf");
  if (step > 0 && std::abs(value) < step * 1e-6) value = 0;  // no "-0" or "1.2e-17" at zero
  if (value == 0) return "0";
  if ((step > 0 && step < 1e-4) || std::abs(value) >= 1e7) {
    // Significant digits: from the value's magnitude down to the step's.
    const double ref = step > 0 ? step : std::abs(value);
    const int digits =
        static_cast<int>(std::floor(std::log10(std::abs(value))) - std::floor(std::log10(ref) + 1e-9)) + 1;
    return printf_string("%.*g", std::clamp(digits, 1, 15), value);
  }
  return printf_string("%.*f", step > 0 ? decimals_for(step) : 6, value);
}

Axis make_axis(double data_lo, double data_hi, bool log, int target_ticks) {
  if (data_lo > data_hi) std::swap(data_lo, data_hi);
  target_ticks = std::clamp(target_ticks, 2, 20);
  if (!std::isfinite(data_lo) || !std::isfinite(data_hi)) {
    throw UsageError(
        describe_error("", "axis range", "finite bounds", format_tick(data_lo, 0) + " .. " + format_tick(data_hi, 0)));
  }
  if (!log) {
    if (data_hi - data_lo <= 1e-12 * std::max(std::abs(data_lo), std::abs(data_hi))) {
      const double pad = data_lo == 0 ? 1 : std::abs(data_lo) * 0.1;
      data_lo -= pad;
      data_hi += pad;
    }
    return linear_axis(data_lo, data_hi, target_ticks);
  }
  if (!(data_lo > 0)) {
    throw UsageError(describe_error("", "log axis range", "values > 0", "minimum " + format_tick(data_lo, 0)));
  }
  double l0 = std::log10(data_lo), l1 = std::log10(data_hi);
  if (l1 - l0 < 1e-9) {
    l0 -= 0.15;
    l1 += 0.15;
  }
  if (l1 - l0 > 1.3) {
    return decade_axis(static_cast<int>(std::floor(l0 + 1e-9)), static_cast<int>(std::ceil(l1 - 1e-9)), target_ticks);
  }
  if (l1 - l0 >= 0.4) return narrow_log_axis(std::pow(10.0, l0), std::pow(10.0, l1));
  // Less than half a decade: linear 1-2-5 ticks read best and stay positive at this width.
  Axis axis = linear_axis(std::pow(10.0, l0), std::pow(10.0, l1), target_ticks);
  if (axis.lo <= 0) return narrow_log_axis(std::pow(10.0, l0), std::pow(10.0, l1));
  axis.log = true;
  return axis;
}

std::vector<Rgba> default_palette() {
  // Okabe & Ito (2008), "Color Universal Design".
  return {{0, 114, 178}, {213, 94, 0},   {0, 158, 115}, {204, 121, 167},
          {230, 159, 0}, {86, 180, 233}, {0, 0, 0},     {240, 228, 66}};
}

void create_report_folder(const std::string& dir) {
  std::error_code ec;
  std::filesystem::create_directories(dir, ec);
  if (ec) fail(dir, "report folder", "a folder that can be created", ec.message());
}

std::string markdown_plot_links(const std::vector<std::string>& plots) {
  if (plots.empty()) return "";
  std::string md = "\n## Plots\n\n";
  for (const auto& p : plots) {
    const std::string name = std::filesystem::path(p).filename().string();
    md += "![" + name + "](" + name + ")\n\n";
  }
  return md;
}

}  // namespace latmix
