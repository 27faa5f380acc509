#include "analyze_plots.h"

#include <QFontMetrics>
#include <QMouseEvent>
#include <QPainter>

#include <algorithm>
#include <cmath>
#include <limits>

#include "axis_ticks.h"

namespace latmix::studio {

namespace {

constexpr double kMargin = 8, kLeftAxis = 64, kBottomAxis = 36, kTop = 26;

const QColor kColours[] = {QColor(90, 90, 90),   QColor(31, 119, 180), QColor(44, 160, 44),
                           QColor(255, 127, 14), QColor(214, 39, 40),  QColor(148, 103, 189)};

QString value_text(double v) {
  return QString::number(v, 'g', 4);
}

double log10_or_nan(double v) {
  return v > 0 && std::isfinite(v) ? std::log10(v) : std::nan("");
}

}  // namespace

QColor transform_colour(int index) {
  const int n = static_cast<int>(sizeof kColours / sizeof kColours[0]);
  return kColours[((index % n) + n) % n];
}

CurvePlot::CurvePlot(QWidget* parent) : QWidget(parent) {
  setMouseTracking(true);
  setAttribute(Qt::WA_OpaquePaintEvent);
  setSizePolicy(QSizePolicy::Expanding, QSizePolicy::Expanding);
}

void CurvePlot::setCurves(std::vector<PlotCurve> curves, const QString& title) {
  curves_ = std::move(curves);
  title_ = title;
  message_.clear();
  update();
}

void CurvePlot::clear(const QString& message) {
  curves_.clear();
  title_.clear();
  message_ = message;
  update();
}

std::vector<std::pair<double, double>> CurvePlot::points(const QString& name) const {
  for (const auto& c : curves_) {
    if (c.name == name) return c.points;
  }
  return {};
}

CurvePlot::Frame CurvePlot::frame() const {
  Frame f;
  f.plot = QRectF(kLeftAxis, kTop, std::max(10.0, width() - kLeftAxis - kMargin),
                  std::max(10.0, height() - kTop - kBottomAxis));
  double xlo = std::numeric_limits<double>::infinity(), xhi = -xlo, ylo = xlo, yhi = -xlo;
  for (const auto& c : curves_) {
    for (const auto& [x, y] : c.points) {
      const double ax = axisX(x), ay = log10_or_nan(y);
      if (!std::isfinite(ax) || !std::isfinite(ay)) continue;
      xlo = std::min(xlo, ax), xhi = std::max(xhi, ax);
      ylo = std::min(ylo, ay), yhi = std::max(yhi, ay);
      f.valid = true;
    }
  }
  if (!f.valid) return f;
  if (xhi - xlo < 1e-12) xlo -= 0.5, xhi += 0.5;
  if (yhi - ylo < 1e-12) ylo -= 0.25, yhi += 0.25;
  const double xpad = (xhi - xlo) * 0.03, ypad = (yhi - ylo) * 0.06;
  f.x0 = xlo - xpad, f.x1 = xhi + xpad;
  f.y0 = ylo - ypad, f.y1 = yhi + ypad;
  return f;
}

QPointF CurvePlot::pixelOf(double x, double y) const {
  const Frame f = frame();
  if (!f.valid) return {std::nan(""), std::nan("")};
  const double ay = log10_or_nan(y);
  return {f.plot.left() + (axisX(x) - f.x0) / (f.x1 - f.x0) * f.plot.width(),
          std::isfinite(ay) ? f.plot.bottom() - (ay - f.y0) / (f.y1 - f.y0) * f.plot.height() : std::nan("")};
}

void CurvePlot::drawAxes(QPainter& p, const Frame& f) const {
  const QColor grid = palette().color(QPalette::Mid);
  const QColor text = palette().color(QPalette::Text);
  auto ypix = [&](double v) { return f.plot.bottom() - (v - f.y0) / (f.y1 - f.y0) * f.plot.height(); };
  auto xpix = [&](double v) { return f.plot.left() + (axisX(v) - f.x0) / (f.x1 - f.x0) * f.plot.width(); };
  for (double v : latmix::widgets::log_ticks(f.y0, f.y1)) {
    const double y = ypix(v);
    p.setPen(QPen(grid, 1, Qt::DotLine));
    p.drawLine(QPointF(f.plot.left(), y), QPointF(f.plot.right(), y));
    p.setPen(text);
    p.drawText(QRectF(0, y - 8, kLeftAxis - 6, 16), Qt::AlignRight | Qt::AlignVCenter,
               QString::number(std::pow(10.0, v), 'g', 3));
  }
  for (const auto& [x, label] : xTicks(f)) {
    const double px = xpix(x);
    if (px < f.plot.left() - 0.5 || px > f.plot.right() + 0.5) continue;
    p.setPen(QPen(grid, 1, Qt::DotLine));
    p.drawLine(QPointF(px, f.plot.top()), QPointF(px, f.plot.bottom()));
    p.setPen(text);
    p.drawText(QRectF(px - 30, f.plot.bottom() + 2, 60, 16), Qt::AlignHCenter | Qt::AlignTop, label);
  }
  p.setPen(QPen(text, 1));
  p.drawRect(f.plot);
  p.drawText(QRectF(f.plot.left(), height() - 18, f.plot.width(), 16), Qt::AlignHCenter, xLabel());
  QFontMetrics fm(font());
  p.drawText(QRectF(kMargin, 2, width() - 2 * kMargin, kTop - 6), Qt::AlignLeft | Qt::AlignVCenter,
             fm.elidedText(title_ + "  (log scale)", Qt::ElideRight, static_cast<int>(width() - 2 * kMargin)));
}

void CurvePlot::drawCurves(QPainter& p, const Frame& f) const {
  for (auto it = curves_.rbegin(); it != curves_.rend(); ++it) {  // the first curve (none) on top
    QPolygonF line;
    for (const auto& [x, y] : it->points) {
      const double ay = log10_or_nan(y);
      if (!std::isfinite(ay)) continue;  // a gap: log10 cannot show it
      line << QPointF(f.plot.left() + (axisX(x) - f.x0) / (f.x1 - f.x0) * f.plot.width(),
                      f.plot.bottom() - (ay - f.y0) / (f.y1 - f.y0) * f.plot.height());
    }
    p.setPen(QPen(it->colour, 1.8));
    if (line.size() > 1) p.drawPolyline(line);
    if (static_cast<double>(line.size()) <= f.plot.width() / 5) {  // sparse: a dot at every point
      p.setBrush(it->colour);
      for (const QPointF& pt : line) p.drawEllipse(pt, 3.0, 3.0);
      p.setBrush(Qt::NoBrush);
    }
  }
}

void CurvePlot::drawLegend(QPainter& p, const Frame& f) const {
  QFontMetrics fm(font());
  double w = 0;
  for (const auto& c : curves_) {
    w = std::max<double>(w, fm.horizontalAdvance(c.name + (c.note.isEmpty() ? "" : " (" + c.note + ")")));
  }
  const double h = fm.height() * static_cast<double>(curves_.size()) + 8;
  // The corner of the plot that hides the fewest points (top right on a tie).
  const QSizeF size(w + 28, h);
  const QRectF corners[] = {QRectF(QPointF(f.plot.right() - size.width() - 6, f.plot.top() + 6), size),
                            QRectF(QPointF(f.plot.left() + 6, f.plot.top() + 6), size),
                            QRectF(QPointF(f.plot.right() - size.width() - 6, f.plot.bottom() - h - 6), size),
                            QRectF(QPointF(f.plot.left() + 6, f.plot.bottom() - h - 6), size)};
  QRectF box = corners[0];
  int fewest = std::numeric_limits<int>::max();
  for (const QRectF& corner : corners) {
    int hidden = 0;
    for (const auto& c : curves_) {
      for (const auto& [x, y] : c.points) {
        const double ay = log10_or_nan(y);
        if (!std::isfinite(ay)) continue;
        const QPointF pt(f.plot.left() + (axisX(x) - f.x0) / (f.x1 - f.x0) * f.plot.width(),
                         f.plot.bottom() - (ay - f.y0) / (f.y1 - f.y0) * f.plot.height());
        hidden += corner.adjusted(-4, -4, 4, 4).contains(pt) ? 1 : 0;
      }
    }
    if (hidden < fewest) fewest = hidden, box = corner;
  }
  QColor back = palette().color(QPalette::Base);
  back.setAlpha(220);
  p.setPen(palette().color(QPalette::Mid));
  p.setBrush(back);
  p.drawRect(box);
  p.setBrush(Qt::NoBrush);
  double y = box.top() + 4;
  for (const auto& c : curves_) {
    const double cy = y + fm.height() / 2.0;
    p.setPen(QPen(c.colour, 3));
    p.drawLine(QPointF(box.left() + 4, cy), QPointF(box.left() + 18, cy));
    p.setPen(palette().color(QPalette::Text));
    p.drawText(QRectF(box.left() + 22, y, w + 4, fm.height()), Qt::AlignLeft | Qt::AlignVCenter,
               c.name + (c.note.isEmpty() ? "" : " (" + c.note + ")"));
    y += fm.height();
  }
}

double CurvePlot::nearestX(const Frame& f, double px) const {
  const double ax = f.x0 + (px - f.plot.left()) / f.plot.width() * (f.x1 - f.x0);
  double best = std::nan(""), dist = std::numeric_limits<double>::infinity();
  for (const auto& c : curves_) {
    for (const auto& pt : c.points) {
      const double d = std::abs(axisX(pt.first) - ax);
      if (d < dist) dist = d, best = pt.first;
    }
  }
  return best;
}

QString CurvePlot::readoutAt(const QPointF& pos) const {
  const Frame f = frame();
  if (!f.valid || !f.plot.contains(pos)) return {};
  const double x = nearestX(f, pos.x());
  if (!std::isfinite(x)) return {};
  QStringList lines = {xName(x)};
  for (const auto& c : curves_) {
    QString value = "-";
    for (const auto& [px, py] : c.points) {
      if (px == x) value = value_text(py);
    }
    lines << c.name + ": " + value;
  }
  return lines.join('\n');
}

QString CurvePlot::hoverText() const {
  return readoutAt(hover_);
}

void CurvePlot::drawHover(QPainter& p, const Frame& f) const {
  const QString text = readoutAt(hover_);
  if (text.isEmpty()) return;
  const double x = nearestX(f, hover_.x());
  const double px = f.plot.left() + (axisX(x) - f.x0) / (f.x1 - f.x0) * f.plot.width();
  p.setPen(QPen(palette().color(QPalette::Text), 1, Qt::DashLine));
  p.drawLine(QPointF(px, f.plot.top()), QPointF(px, f.plot.bottom()));
  const QStringList lines = text.split('\n');
  QFontMetrics fm(font());
  double w = 0;
  for (const auto& l : lines) w = std::max<double>(w, fm.horizontalAdvance(l));
  QRectF box(px + 8, f.plot.top() + 8, w + 12, fm.height() * static_cast<double>(lines.size()) + 8);
  if (box.right() > f.plot.right()) box.moveRight(px - 8);
  p.setPen(palette().color(QPalette::ToolTipText));
  p.setBrush(palette().color(QPalette::ToolTipBase));
  p.drawRect(box);
  p.drawText(box.adjusted(6, 4, -6, -4), Qt::AlignLeft | Qt::AlignTop, text);
  p.setBrush(Qt::NoBrush);
}

void CurvePlot::paintEvent(QPaintEvent*) {
  QPainter p(this);
  p.setRenderHint(QPainter::Antialiasing);
  p.fillRect(rect(), palette().color(QPalette::Base));
  const Frame f = frame();
  if (!f.valid) {
    p.setPen(palette().color(QPalette::Text));
    p.drawText(rect().adjusted(12, 12, -12, -12), Qt::AlignCenter | Qt::TextWordWrap,
               message_.isEmpty() ? QString("No values to plot.") : message_);
    return;
  }
  drawAxes(p, f);
  p.save();
  p.setClipRect(f.plot.adjusted(-4, -4, 4, 4));
  drawCurves(p, f);
  p.restore();
  drawLegend(p, f);
  drawHover(p, f);
}

void CurvePlot::mouseMoveEvent(QMouseEvent* e) {
  hover_ = e->position();
  update();
}

void CurvePlot::leaveEvent(QEvent*) {
  hover_ = QPointF(-1, -1);
  update();
}

double MxErrorPlot::axisX(double x) const {
  return x > 0 ? std::log2(x) : std::nan("");
}

std::vector<std::pair<double, QString>> MxErrorPlot::xTicks(const Frame& f) const {
  std::vector<std::pair<double, QString>> ticks;
  for (double k = std::ceil(f.x0); k <= std::floor(f.x1); k += 1) {
    const double b = std::pow(2.0, k);
    ticks.emplace_back(b, QString::number(b, 'f', 0));
  }
  return ticks;
}

QString MxErrorPlot::xName(double x) const {
  return QString("block size %1").arg(x, 0, 'f', 0);
}

std::vector<std::pair<double, QString>> BlockErrorPlot::xTicks(const Frame& f) const {
  std::vector<std::pair<double, QString>> ticks;
  const double range = f.x1 - f.x0;
  const double step = range <= 16 ? 1 : range <= 40 ? 4 : range <= 80 ? 8 : std::ceil(range / 10 / 8) * 8;
  for (double b = std::ceil(std::max(0.0, f.x0) / step) * step; b <= f.x1; b += step) {
    ticks.emplace_back(b, QString::number(b, 'f', 0));
  }
  return ticks;
}

QString BlockErrorPlot::xName(double x) const {
  const auto b = static_cast<qint64>(std::llround(x));
  return QString("block %1 (channels %2-%3)").arg(b).arg(b * block_).arg((b + 1) * block_ - 1);
}

}  // namespace latmix::studio
