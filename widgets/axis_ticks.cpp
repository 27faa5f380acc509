#include "axis_ticks.h"

#include <algorithm>
#include <cmath>

namespace latmix::widgets {

double nice_step(double range, int count) {
  const double raw = range / std::max(1, count);
  if (!(raw > 0) || !std::isfinite(raw)) return 1;
  const double mag = std::pow(10.0, std::floor(std::log10(raw)));
  for (double m : {1.0, 2.0, 5.0}) {
    if (raw <= m * mag) return m * mag;
  }
  return 10 * mag;
}

std::vector<double> linear_ticks(double lo, double hi, int count) {
  std::vector<double> ticks;
  const double step = nice_step(hi - lo, count);
  for (double v = std::ceil(lo / step) * step; v <= hi; v += step) ticks.push_back(v);
  return ticks;
}

std::vector<double> log_ticks(double y0, double y1) {
  std::vector<double> ticks;
  const bool narrow = y1 - y0 < 2;
  for (double k = std::floor(y0); k <= std::ceil(y1); k += 1) {
    for (double m : narrow ? std::vector<double>{1, 2, 5} : std::vector<double>{1}) {
      const double v = k + std::log10(m);
      if (v >= y0 && v <= y1) ticks.push_back(v);
    }
  }
  if (ticks.size() >= 3) return ticks;
  ticks.clear();
  for (double v : linear_ticks(std::pow(10.0, y0), std::pow(10.0, y1), 4)) {
    if (v > 0) ticks.push_back(std::log10(v));
  }
  return ticks;
}

QString tick_label(double v) {
  const double a = std::abs(v);
  if (a != 0 && (a < 1e-3 || a >= 1e5)) return QString::number(v, 'e', 0);
  return QString::number(v, 'g', 4);
}

}  // namespace latmix::widgets
