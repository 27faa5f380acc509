#pragma once
// The Analyze tab's two plots, drawn with QPainter (they run offscreen; no OpenGL needed):
//  - MxErrorPlot: the relative MX error against the block size (log2 x axis, log10 y axis), one
//    curve per transform with a legend, and a readout of every curve's value at the block size
//    under the mouse (the LATMiX paper's Figure 2);
//  - BlockErrorPlot: each aligned block's share of the error across a layer's channels, one line
//    per transform, with the same hover readout per block.
// Both draw exactly the points they are given; points() returns them (tests compare them with the
// engine's MxAnalysis).

#include <QColor>
#include <QString>
#include <QWidget>

#include <utility>
#include <vector>

namespace latmix::studio {

/// One curve: (x, y) points in data units (x: the block size, or the block index), drawn in order.
struct PlotCurve {
  QString name;
  QColor colour;
  std::vector<std::pair<double, double>> points;
  QString note;  ///< shown in the legend after the name (e.g. why a transform has no points)
};

/// The colour of the i-th transform in report order (none, hadamard, block_hadamard, rotation, affine).
QColor transform_colour(int index);

/// What the two plots share: curves, a frame with axes, a legend and a hover readout.
class CurvePlot : public QWidget {
  Q_OBJECT

 public:
  explicit CurvePlot(QWidget* parent = nullptr);

  /// Shows `curves` under `title` (replacing what was shown).
  void setCurves(std::vector<PlotCurve> curves, const QString& title);
  /// Shows no curves, only `message` in the middle.
  void clear(const QString& message);
  const std::vector<PlotCurve>& curves() const { return curves_; }
  /// The points of the curve called `name` (empty when there is none).
  std::vector<std::pair<double, double>> points(const QString& name) const;
  QString title() const { return title_; }
  /// The readout shown for the mouse at `pos` (widget pixels): the x value nearest the mouse and
  /// every curve's value there ("" outside the plot or without curves). What hovering shows.
  QString readoutAt(const QPointF& pos) const;
  /// The readout shown now ("" when the mouse is not over the plot).
  QString hoverText() const;
  /// Where the point (x, y) is drawn, in widget pixels (NaN y for values the log axis cannot show).
  QPointF pixelOf(double x, double y) const;

  QSize sizeHint() const override { return {560, 300}; }
  QSize minimumSizeHint() const override { return {280, 200}; }

 protected:
  struct Frame {  // the plot rectangle and the range it shows, in axis units
    QRectF plot;
    double x0 = 0, x1 = 1, y0 = 0, y1 = 1;
    bool valid = false;
  };
  /// Axis units of a data x (log2 for the block-size axis).
  virtual double axisX(double x) const = 0;
  /// The x tick positions (data units) and their labels for a frame.
  virtual std::vector<std::pair<double, QString>> xTicks(const Frame& f) const = 0;
  virtual QString xLabel() const = 0;
  /// How the readout names an x value ("block size 32", "block 3 (channels 96-127)").
  virtual QString xName(double x) const = 0;
  Frame frame() const;

  void paintEvent(QPaintEvent* e) override;
  void mouseMoveEvent(QMouseEvent* e) override;
  void leaveEvent(QEvent* e) override;

 private:
  void drawAxes(QPainter& p, const Frame& f) const;
  void drawCurves(QPainter& p, const Frame& f) const;
  void drawLegend(QPainter& p, const Frame& f) const;
  void drawHover(QPainter& p, const Frame& f) const;
  /// The x value (data units) of the points nearest the pixel column `px`; NaN when none.
  double nearestX(const Frame& f, double px) const;

  std::vector<PlotCurve> curves_;
  QString title_;
  QString message_;
  QPointF hover_{-1, -1};
};

/// Relative MX error against the block size: log2 x axis (2 ... 1024), log10 y axis.
class MxErrorPlot : public CurvePlot {
  Q_OBJECT

 public:
  using CurvePlot::CurvePlot;

 protected:
  double axisX(double x) const override;
  std::vector<std::pair<double, QString>> xTicks(const Frame& f) const override;
  QString xLabel() const override { return "MX block size (log2 axis)"; }
  QString xName(double x) const override;
};

/// Each aligned block's share of the relative error at one block size (log10 y axis).
class BlockErrorPlot : public CurvePlot {
  Q_OBJECT

 public:
  using CurvePlot::CurvePlot;
  /// The block size the block indices count in (for the readout's channel ranges).
  void setBlockSize(int block) { block_ = block; }

 protected:
  double axisX(double x) const override { return x; }
  std::vector<std::pair<double, QString>> xTicks(const Frame& f) const override;
  QString xLabel() const override { return "block (aligned channels)"; }
  QString xName(double x) const override;

 private:
  int block_ = 32;
};

}  // namespace latmix::studio
