#pragma once
// LossChart: learning curves (one line per named series over the step axis) drawn with QPainter:
// linear or log10 value axis with round ticks, a legend that toggles series, and a tooltip with
// every series' value at the step under the mouse. Long curves are drawn decimated to one
// min/max pair per pixel column, so a repaint costs O(width), not O(steps).

#include <QColor>
#include <QString>
#include <QWidget>

#include <vector>
#include <utility>

namespace latmix::widgets {

class LossChart : public QWidget {
  Q_OBJECT

 public:
  explicit LossChart(QWidget* parent = nullptr);

  /// Removes every point; `total_steps` fixes the x axis (0: it grows with the data).
  void clear(qint64 total_steps = 0);
  /// Removes every series (and the markers) as well: a chart for another run or model.
  void reset(qint64 total_steps = 0);
  /// Vertical lines at these steps with a label each (the layer boundaries of a layer-wise run).
  void setMarkers(std::vector<std::pair<double, QString>> markers);
  /// Appends a point of `series` (created on first use, in a fixed colour order). Steps must not
  /// decrease within a series. Schedules one repaint (Qt merges repeated update() calls).
  void addPoint(const QString& series, double step, double value);
  void setLogScale(bool on);
  bool logScale() const { return log_scale_; }
  void setSeriesVisible(const QString& series, bool visible);
  void setTitle(const QString& title);
  QStringList seriesNames() const;
  /// Number of points of a series (0 if unknown).
  int pointCount(const QString& series) const;
  /// The last value of a series (NaN if it has none).
  double lastValue(const QString& series) const;

  QSize sizeHint() const override { return {640, 320}; }
  QSize minimumSizeHint() const override { return {240, 160}; }

 protected:
  void paintEvent(QPaintEvent* e) override;
  void mouseMoveEvent(QMouseEvent* e) override;
  void mousePressEvent(QMouseEvent* e) override;
  void leaveEvent(QEvent* e) override;

 private:
  struct Series {
    QString name;
    QColor colour;
    bool visible = true;
    std::vector<double> steps, values;
  };
  struct Frame {  // the plot rectangle and the value range it shows (in axis units: log10 if log)
    QRectF plot;
    double x0 = 0, x1 = 1, y0 = 0, y1 = 1;
    bool valid = false;
  };
  Series* find(const QString& name);
  const Series* find(const QString& name) const;
  Frame frame() const;
  double axisValue(double v) const;  // log10(v) on a log axis (NaN for v <= 0), else v
  void drawAxes(QPainter& p, const Frame& f) const;
  void drawSeries(QPainter& p, const Frame& f, const Series& s) const;
  void drawLegend(QPainter& p);
  void drawHover(QPainter& p, const Frame& f) const;

  std::vector<Series> series_;
  std::vector<std::pair<double, QString>> markers_;
  std::vector<QRectF> legend_boxes_;  // one per series, from the last paint (click to toggle)
  QString title_;
  qint64 total_steps_ = 0;
  bool log_scale_ = false;
  double hover_x_ = -1;  // mouse x in widget pixels (-1: none)
};

}  // namespace latmix::widgets
