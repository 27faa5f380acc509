#pragma once
// HeatmapView: draws a rows x columns grid of values as coloured cells with ImGui draw lists,
// labelled axes, a colour bar, a crosshair on the hovered row and column, and a tooltip with the
// exact number under the mouse; image() renders the same map (same colours) for "Save image".
// Call draw() inside an ImGui window (e.g. from an ImGuiHost draw function).

#include <QImage>
#include <QRectF>
#include <QString>
#include <QStringList>

#include <functional>
#include <optional>
#include <vector>

namespace latmix::widgets {

struct HeatmapData {
  QString title;
  QString value_label;    ///< what a cell's number means ("max|W| / RMS")
  QStringList row_labels; ///< e.g. "layer 0"
  QStringList col_labels; ///< e.g. "q", "k" or block indices
  std::vector<float> values;  ///< rows x cols, row-major
  bool log_scale = false;
  /// A colour range shared with other maps (before and after a transform on one scale); else
  /// the range of `values`.
  bool fixed_range = false;
  float range_lo = 0, range_hi = 1;
  /// Signed values (a difference): a blue-white-red map with white at zero, symmetric about it.
  bool diverging = false;
};

class HeatmapView {
 public:
  void setData(HeatmapData data);
  const HeatmapData& data() const { return data_; }
  /// Draws into the current ImGui window; returns the clicked cell (row, col), if any.
  std::optional<std::pair<int, int>> draw();
  /// Cells drawn `zoom` times their fitted size (1 to 8; Ctrl+wheel over the map, or the - / + /
  /// fit buttons above it); the map scrolls when it is wider or taller than its window.
  void setZoom(int zoom);
  int zoom() const { return zoom_; }
  /// The cell under the mouse during the last draw(), if any.
  std::optional<std::pair<int, int>> hovered() const { return hovered_; }
  /// The crosshair the last draw() drew over the hovered cell (ImGui screen coordinates, which are
  /// the host widget's): the row's and the column's outlines and the cell's.
  struct Crosshair {
    QRectF row, column, cell;
  };
  std::optional<Crosshair> crosshair() const { return crosshair_; }
  /// The map as an image (title, row and column labels, colour bar with its range), each cell
  /// kImageCell pixels wide and high, cell (r, c) at (kImageLeft + c * w, kImageTop + r * h), in
  /// the colours draw() uses. A null image without data.
  QImage image() const;
  static constexpr int kImageCellW = 16, kImageCellH = 16, kImageLeft = 80, kImageTop = 28;
  /// The colour of a value on this map's scale (ImU32: red in the low byte), as draw() paints it.
  unsigned int colourOf(float value) const;

 private:
  std::optional<std::pair<int, int>> hovered_;
  std::optional<Crosshair> crosshair_;
  HeatmapData data_;
  float lo_ = 0, hi_ = 1;
  int zoom_ = 1;
};

/// Perceptual colour ramp (dark blue -> teal -> yellow) for t in [0, 1], as packed ImU32.
unsigned int heat_colour(float t);
/// Diverging ramp (blue -> white at 0.5 -> red) for t in [0, 1], as packed ImU32.
unsigned int diverging_colour(float t);

}  // namespace latmix::widgets
