#include "loss_chart.h"

#include <QMouseEvent>
#include <QPainter>
#include <QPainterPath>

#include <algorithm>
#include <cmath>
#include <limits>

#include "axis_ticks.h"

namespace latmix::widgets {

namespace {

// Distinct on light and dark backgrounds; the first is the total loss.
const QColor kColours[] = {QColor(31, 119, 180), QColor(255, 127, 14),  QColor(44, 160, 44),
                           QColor(214, 39, 40),  QColor(148, 103, 189), QColor(140, 86, 75)};
constexpr double kMargin = 8, kLeftAxis = 64, kBottomAxis = 34, kTop = 28;

}  // namespace

LossChart::LossChart(QWidget* parent) : QWidget(parent) {
  setMouseTracking(true);
  setAttribute(Qt::WA_OpaquePaintEvent);
  setSizePolicy(QSizePolicy::Expanding, QSizePolicy::Expanding);
}

void LossChart::clear(qint64 total_steps) {
  for (auto& s : series_) {
    s.steps.clear();
    s.values.clear();
  }
  total_steps_ = total_steps;
  update();
}

void LossChart::reset(qint64 total_steps) {
  series_.clear();
  markers_.clear();
  legend_boxes_.clear();
  mark_series_.clear();
  total_steps_ = total_steps;
  update();
}

void LossChart::setMarkers(std::vector<std::pair<double, QString>> markers) {
  markers_ = std::move(markers);
  update();
}

LossChart::Series* LossChart::find(const QString& name) {
  for (auto& s : series_) {
    if (s.name == name) return &s;
  }
  return nullptr;
}

const LossChart::Series* LossChart::find(const QString& name) const {
  for (const auto& s : series_) {
    if (s.name == name) return &s;
  }
  return nullptr;
}

void LossChart::addPoint(const QString& series, double step, double value) {
  Series* s = find(series);
  if (s == nullptr) {
    const size_t n = series_.size() % (sizeof kColours / sizeof kColours[0]);
    series_.push_back(Series{series, kColours[n], true, false, {}, {}});
    s = &series_.back();
    if (auto it = styles_.constFind(series); it != styles_.constEnd()) {
      s->colour = it->colour;
      s->dots = it->dots;
    }
  }
  if (s->steps.empty() || step >= s->steps.back()) {
    s->steps.push_back(step);
    s->values.push_back(value);
  } else {  // a layer-split run reports its processes' layers side by side: keep the series in step order
    const auto at = std::upper_bound(s->steps.begin(), s->steps.end(), step) - s->steps.begin();
    s->steps.insert(s->steps.begin() + at, step);
    s->values.insert(s->values.begin() + at, value);
  }
  update();
}

void LossChart::setSeriesStyle(const QString& series, const QColor& colour, bool dots) {
  styles_[series] = Style{colour, dots};
  if (Series* s = find(series)) {
    s->colour = colour;
    s->dots = dots;
  }
  update();
}

void LossChart::setMark(const QString& series, double step, const QString& label) {
  mark_series_ = series;
  mark_step_ = step;
  mark_label_ = label;
  update();
}

void LossChart::clearMark() {
  mark_series_.clear();
  update();
}

double LossChart::markedStep() const {
  return mark_series_.isEmpty() ? std::nan("") : mark_step_;
}

std::vector<std::pair<double, double>> LossChart::points(const QString& series) const {
  std::vector<std::pair<double, double>> out;
  if (const Series* s = find(series)) {
    for (size_t i = 0; i < s->steps.size(); ++i) out.emplace_back(s->steps[i], s->values[i]);
  }
  return out;
}

QPointF LossChart::toPixel(const Frame& f, double step, double value) const {
  const double v = axisValue(value);
  return {f.plot.left() + (step - f.x0) / (f.x1 - f.x0) * f.plot.width(),
          std::isfinite(v) ? f.plot.bottom() - (v - f.y0) / (f.y1 - f.y0) * f.plot.height() : std::nan("")};
}

void LossChart::setLogScale(bool on) {
  log_scale_ = on;
  update();
}

void LossChart::setSeriesVisible(const QString& series, bool visible) {
  if (Series* s = find(series)) s->visible = visible;
  update();
}

void LossChart::setTitle(const QString& title) {
  title_ = title;
  update();
}

QStringList LossChart::seriesNames() const {
  QStringList names;
  for (const auto& s : series_) names << s.name;
  return names;
}

int LossChart::pointCount(const QString& series) const {
  const Series* s = find(series);
  return s != nullptr ? static_cast<int>(s->steps.size()) : 0;
}

double LossChart::lastValue(const QString& series) const {
  const Series* s = find(series);
  return s != nullptr && !s->values.empty() ? s->values.back() : std::nan("");
}

double LossChart::axisValue(double v) const {
  if (!log_scale_) return v;
  return v > 0 ? std::log10(v) : std::nan("");
}

LossChart::Frame LossChart::frame() const {
  Frame f;
  f.plot = QRectF(kLeftAxis, kTop, std::max(10.0, width() - kLeftAxis - kMargin),
                  std::max(10.0, height() - kTop - kBottomAxis));
  double lo = std::numeric_limits<double>::infinity(), hi = -lo, last_step = 0;
  for (const auto& s : series_) {
    if (!s.visible) continue;
    for (size_t i = 0; i < s.values.size(); ++i) {
      const double v = axisValue(s.values[i]);
      if (!std::isfinite(v)) continue;
      lo = std::min(lo, v);
      hi = std::max(hi, v);
      last_step = std::max(last_step, s.steps[i]);
      f.valid = true;
    }
  }
  if (!f.valid) return f;
  if (hi - lo < 1e-12) {  // a flat curve: centre it
    const double pad = log_scale_ ? 0.5 : std::max(std::abs(hi) * 0.1, 1e-6);
    lo -= pad;
    hi += pad;
  }
  const double pad = (hi - lo) * 0.05;
  f.y0 = lo - pad;
  f.y1 = hi + pad;
  f.x0 = 0;
  f.x1 = std::max<double>({1.0, static_cast<double>(total_steps_), last_step});
  return f;
}

void LossChart::drawAxes(QPainter& p, const Frame& f) const {
  const QColor grid = palette().color(QPalette::Mid);
  const QColor text = palette().color(QPalette::Text);
  auto ypix = [&](double v) { return f.plot.bottom() - (v - f.y0) / (f.y1 - f.y0) * f.plot.height(); };
  auto xpix = [&](double v) { return f.plot.left() + (v - f.x0) / (f.x1 - f.x0) * f.plot.width(); };
  QFontMetrics fm(font());
  // y ticks: decades (and 2x, 5x within a narrow range) on a log axis, round numbers otherwise
  const std::vector<double> ticks = log_scale_ ? log_ticks(f.y0, f.y1) : linear_ticks(f.y0, f.y1, 5);
  for (double t : ticks) {
    const double y = ypix(t);
    p.setPen(QPen(grid, 1, Qt::DotLine));
    p.drawLine(QPointF(f.plot.left(), y), QPointF(f.plot.right(), y));
    p.setPen(text);
    const QString label = tick_label(log_scale_ ? std::pow(10.0, t) : t);
    p.drawText(QRectF(0, y - 8, kLeftAxis - 6, 16), Qt::AlignRight | Qt::AlignVCenter, label);
  }
  const double xstep = std::max(1.0, nice_step(f.x1 - f.x0, 8));
  for (double v = 0; v <= f.x1 + 1e-9; v += xstep) {
    const double x = xpix(v);
    p.setPen(QPen(grid, 1, Qt::DotLine));
    p.drawLine(QPointF(x, f.plot.top()), QPointF(x, f.plot.bottom()));
    p.setPen(text);
    p.drawText(QRectF(x - 30, f.plot.bottom() + 2, 60, 16), Qt::AlignHCenter | Qt::AlignTop, tick_label(v));
  }
  for (const auto& [step, label] : markers_) {  // layer boundaries
    if (step < f.x0 || step > f.x1) continue;
    const double x = xpix(step);
    p.setPen(QPen(text, 1, Qt::DashLine));
    p.drawLine(QPointF(x, f.plot.top()), QPointF(x, f.plot.bottom()));
    p.drawText(QRectF(x + 2, f.plot.top() + 2, 80, 14), Qt::AlignLeft | Qt::AlignTop, label);
  }
  p.setPen(QPen(text, 1));
  p.drawRect(f.plot);
  p.drawText(QRectF(f.plot.left(), height() - 16, f.plot.width(), 16), Qt::AlignHCenter, "step");
  p.drawText(QRectF(kMargin, 4, width() * 0.5, kTop - 6), Qt::AlignLeft | Qt::AlignVCenter,
             fm.elidedText(title_ + (log_scale_ ? "  (log scale)" : ""), Qt::ElideRight, width() / 2));
}

void LossChart::drawSeries(QPainter& p, const Frame& f, const Series& s) const {
  // One (min, max) pair per pixel column, in the order they occur, keeps the curve's envelope.
  QPolygonF line;
  int column = std::numeric_limits<int>::min();
  QPointF lo, hi;
  size_t lo_i = 0, hi_i = 0;
  auto flush = [&] {
    if (column == std::numeric_limits<int>::min()) return;
    if (lo_i <= hi_i) {
      line << lo;
      if (hi_i != lo_i) line << hi;
    } else {
      line << hi << lo;
    }
  };
  for (size_t i = 0; i < s.steps.size(); ++i) {
    const double v = axisValue(s.values[i]);
    if (!std::isfinite(v)) continue;
    const QPointF pt(f.plot.left() + (s.steps[i] - f.x0) / (f.x1 - f.x0) * f.plot.width(),
                     f.plot.bottom() - (v - f.y0) / (f.y1 - f.y0) * f.plot.height());
    const int c = static_cast<int>(std::floor(pt.x()));
    if (c != column) {
      flush();
      column = c;
      lo = hi = pt;
      lo_i = hi_i = i;
    } else if (pt.y() > lo.y()) {  // pixels grow downwards: "lo" is the lowest value = largest y
      lo = pt;
      lo_i = i;
    } else if (pt.y() < hi.y()) {
      hi = pt;
      hi_i = i;
    }
  }
  flush();
  p.setPen(QPen(s.colour, 1.6));
  if (line.size() == 1) {
    p.setBrush(s.colour);
    p.drawEllipse(line.front(), 2.5, 2.5);
    p.setBrush(Qt::NoBrush);
  } else {
    p.drawPolyline(line);
  }
  if (s.dots && static_cast<double>(line.size()) <= f.plot.width() / 4) {  // sparse: every point visible
    p.setBrush(s.colour);
    for (const QPointF& pt : line) p.drawEllipse(pt, 3.0, 3.0);
    p.setBrush(Qt::NoBrush);
  }
}

void LossChart::drawMark(QPainter& p, const Frame& f) const {
  const Series* s = find(mark_series_);
  if (s == nullptr || !s->visible) return;
  for (size_t i = 0; i < s->steps.size(); ++i) {
    if (s->steps[i] != mark_step_) continue;
    const QPointF pt = toPixel(f, s->steps[i], s->values[i]);
    if (!std::isfinite(pt.y())) return;
    p.setPen(QPen(s->colour, 2));
    p.setBrush(Qt::NoBrush);
    p.drawEllipse(pt, 7.0, 7.0);
    QFontMetrics fm(font());
    const double w = fm.horizontalAdvance(mark_label_) + 4;
    QRectF box(pt.x() + 9, pt.y() - fm.height() - 6, w, fm.height());
    if (box.right() > f.plot.right()) box.moveRight(pt.x() - 9);
    if (box.top() < f.plot.top()) box.moveTop(pt.y() + 6);
    p.setPen(palette().color(QPalette::Text));
    p.drawText(box, Qt::AlignLeft | Qt::AlignVCenter, mark_label_);
    return;
  }
}

void LossChart::drawLegend(QPainter& p) {
  legend_boxes_.clear();
  QFontMetrics fm(font());
  double x = width() - kMargin;
  for (auto it = series_.rbegin(); it != series_.rend(); ++it) {
    const double w = fm.horizontalAdvance(it->name) + 26;
    x -= w;
    legend_boxes_.insert(legend_boxes_.begin(), QRectF(x, 4, w, kTop - 8));
  }
  for (size_t i = 0; i < series_.size(); ++i) {
    const QRectF box = legend_boxes_[i];
    const Series& s = series_[i];
    QColor c = s.colour;
    if (!s.visible) c.setAlpha(70);
    p.setPen(QPen(c, 3));
    p.drawLine(QPointF(box.left() + 2, box.center().y()), QPointF(box.left() + 16, box.center().y()));
    if (s.dots) {
      p.setBrush(c);
      p.drawEllipse(QPointF(box.left() + 9, box.center().y()), 3.0, 3.0);
      p.setBrush(Qt::NoBrush);
    }
    QColor t = palette().color(QPalette::Text);
    if (!s.visible) t.setAlpha(90);
    p.setPen(t);
    p.drawText(box.adjusted(20, 0, 0, 0), Qt::AlignLeft | Qt::AlignVCenter, s.name);
  }
}

void LossChart::drawHover(QPainter& p, const Frame& f) const {
  if (hover_x_ < f.plot.left() || hover_x_ > f.plot.right()) return;
  const double step = f.x0 + (hover_x_ - f.plot.left()) / f.plot.width() * (f.x1 - f.x0);
  QStringList lines;
  double shown_step = -1;
  for (const auto& s : series_) {
    if (!s.visible || s.steps.empty()) continue;
    auto it = std::lower_bound(s.steps.begin(), s.steps.end(), step);
    size_t i = static_cast<size_t>(it - s.steps.begin());
    if (i == s.steps.size() || (i > 0 && step - s.steps[i - 1] < s.steps[i] - step)) i = i == 0 ? 0 : i - 1;
    if (shown_step < 0) shown_step = s.steps[i];
    QString line = QString("%1: %2").arg(s.name).arg(s.values[i], 0, 'g', 6);
    if (s.steps[i] != shown_step) line += QString(" (step %1)").arg(s.steps[i]);  // a sparse series
    lines << line;
  }
  if (lines.isEmpty()) return;
  lines.prepend(QString("step %1").arg(shown_step));
  const double x = f.plot.left() + (shown_step - f.x0) / (f.x1 - f.x0) * f.plot.width();
  p.setPen(QPen(palette().color(QPalette::Text), 1, Qt::DashLine));
  p.drawLine(QPointF(x, f.plot.top()), QPointF(x, f.plot.bottom()));
  QFontMetrics fm(font());
  double w = 0;
  for (const auto& l : lines) w = std::max<double>(w, fm.horizontalAdvance(l));
  const double h = fm.height() * lines.size() + 8;
  QRectF box(x + 8, f.plot.top() + 8, w + 12, h);
  if (box.right() > f.plot.right()) box.moveRight(x - 8);
  p.setPen(palette().color(QPalette::ToolTipText));
  p.setBrush(palette().color(QPalette::ToolTipBase));
  p.drawRect(box);
  p.drawText(box.adjusted(6, 4, -6, -4), Qt::AlignLeft | Qt::AlignTop, lines.join('\n'));
  p.setBrush(Qt::NoBrush);
}

void LossChart::paintEvent(QPaintEvent*) {
  QPainter p(this);
  p.setRenderHint(QPainter::Antialiasing);
  p.fillRect(rect(), palette().color(QPalette::Base));
  const Frame f = frame();
  drawLegend(p);
  if (!f.valid) {
    p.setPen(palette().color(QPalette::Text));
    p.drawText(rect(), Qt::AlignCenter, "No learning steps yet: choose a method and press Start.");
    return;
  }
  drawAxes(p, f);
  p.save();
  p.setClipRect(f.plot.adjusted(-2, -2, 2, 2));
  for (auto it = series_.rbegin(); it != series_.rend(); ++it) {  // the first series (total) on top
    if (it->visible) drawSeries(p, f, *it);
  }
  drawMark(p, f);
  p.restore();
  drawHover(p, f);
}

void LossChart::mouseMoveEvent(QMouseEvent* e) {
  hover_x_ = e->position().x();
  update();
}

void LossChart::mousePressEvent(QMouseEvent* e) {
  for (size_t i = 0; i < legend_boxes_.size() && i < series_.size(); ++i) {
    if (legend_boxes_[i].contains(e->position())) {
      series_[i].visible = !series_[i].visible;
      update();
      return;
    }
  }
}

void LossChart::leaveEvent(QEvent*) {
  hover_x_ = -1;
  update();
}

}  // namespace latmix::widgets
