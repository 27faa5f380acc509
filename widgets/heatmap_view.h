#pragma once
// HeatmapView: draws a rows x columns grid of values as coloured cells with ImGui draw lists,
// labelled axes, a colour bar, and a tooltip with the exact number under the mouse.
// Call draw() inside an ImGui window (e.g. from an ImGuiHost draw function).

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
  /// The cell under the mouse during the last draw(), if any.
  std::optional<std::pair<int, int>> hovered() const { return hovered_; }

 private:
  std::optional<std::pair<int, int>> hovered_;
  HeatmapData data_;
  float lo_ = 0, hi_ = 1;
};

/// Perceptual colour ramp (dark blue -> teal -> yellow) for t in [0, 1], as packed ImU32.
unsigned int heat_colour(float t);
/// Diverging ramp (blue -> white at 0.5 -> red) for t in [0, 1], as packed ImU32.
unsigned int diverging_colour(float t);

}  // namespace latmix::widgets
