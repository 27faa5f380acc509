#pragma once
// The ticks of the studio's QPainter charts (the Learn tab's loss chart, the Analyze tab's plots):
// one rule for round steps and log axes, so that the charts label their axes alike.
// (The reports' PNG plots have their own axes, latmix/plot.h, which also choose the range.)

#include <QString>

#include <vector>

namespace latmix::widgets {

/// A round tick spacing (1, 2 or 5 x 10^k) giving about `count` ticks over `range`.
double nice_step(double range, int count);

/// Ticks every nice_step(hi - lo, count) within [lo, hi].
std::vector<double> linear_ticks(double lo, double hi, int count);

/// The ticks of a log axis showing log10 values y0..y1 (axis units): decades, with 2x and 5x when
/// the range is narrow (under two decades); when that gives fewer than three, round values
/// 1, 2 or 5 x 10^k apart (as log10 values).
std::vector<double> log_ticks(double y0, double y1);

/// A tick's label: 4 significant digits, exponent form below 1e-3 or from 1e5.
QString tick_label(double value);

}  // namespace latmix::widgets
