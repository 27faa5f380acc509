#pragma once
// LossChart: learning curves (one line per named series over the step axis) drawn with QPainter:
// linear or log10 value axis with round ticks, a legend that toggles series, and a tooltip with
// every series' value at the step under the mouse. Long curves are drawn decimated to one
// min/max pair per pixel column, so a repaint costs O(width), not O(steps). A series can have a
// fixed colour and dots at its points (sparse measurements such as the validation loss), and one
// point of one series can be marked with a ring and a label (the best validation step).

#include <QColor>
#include <QHash>
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
  /// Adds a point to `series` (created on first use, in a fixed colour order), kept in step order:
  /// a point whose step is below the series' last is inserted where it belongs (a layer-split run
  /// reports its layers side by side). Schedules one repaint (Qt merges repeated update() calls).
  void addPoint(const QString& series, double step, double value);
  /// The series called `series` (now, and whenever it is created again after reset()) is drawn
  /// in `colour`, with a dot at every point when `dots`, instead of the next colour of the order.
  void setSeriesStyle(const QString& series, const QColor& colour, bool dots);
  /// Marks the point of `series` at `step` with a ring and `label` (one mark; reset() removes it).
  void setMark(const QString& series, double step, const QString& label);
  void clearMark();
  /// The marked series ("" when none) and step (NaN when none).
  QString markedSeries() const { return mark_series_; }
  double markedStep() const;
  /// The (step, value) points of a series (empty if unknown).
  std::vector<std::pair<double, double>> points(const QString& series) const;
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
    bool dots = false;
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
  void drawMark(QPainter& p, const Frame& f) const;
  QPointF toPixel(const Frame& f, double step, double value) const;  // NaN y for values a log axis cannot show

  std::vector<Series> series_;
  std::vector<std::pair<double, QString>> markers_;
  struct Style {
    QColor colour;
    bool dots = false;
  };
  QHash<QString, Style> styles_;  // fixed styles by series name (kept by reset())
  QString mark_series_, mark_label_;
  double mark_step_ = 0;
  std::vector<QRectF> legend_boxes_;  // one per series, from the last paint (click to toggle)
  QString title_;
  qint64 total_steps_ = 0;
  bool log_scale_ = false;
  double hover_x_ = -1;  // mouse x in widget pixels (-1: none)
};

}  // namespace latmix::widgets
