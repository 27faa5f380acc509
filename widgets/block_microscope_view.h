#pragma once
// BlockMicroscopeView: the teaching view of one MX block, drawn with ImGui. Shows the shared
// scale and how it was chosen, the format's grid on a number line with every value and where it
// lands, a per-value table (code, quantized value, error), and the same block under other formats.

#include <QString>

#include <utility>
#include <vector>

#include "latmix/mx_block.h"

namespace latmix::widgets {

/// The block under one format, for the comparison table.
struct FormatComparisonRow {
  QString format;
  QString scale;  ///< e.g. "2^-3" or "0.1875 (E4M3)"
  double sqnr_db = 0;
  double mse = 0;
  int clipped = 0;
};

struct MicroscopeData {
  QString where;     ///< "residual stream, layer 3, token 17 ('the'), block 10 (channels 320-351)"
  QString transform; ///< "none", "hadamard", ...
  MxBlockView block;                  ///< under the selected format
  std::vector<FormatComparisonRow> comparison;
  bool has_after = false;             ///< a transform was chosen: the same block of T(x)
  MxBlockView after;
  std::vector<FormatComparisonRow> comparison_after;
};

class BlockMicroscopeView {
 public:
  void setData(MicroscopeData data) { data_ = std::move(data); has_data_ = true; }
  bool hasData() const { return has_data_; }
  /// Shows nothing (another model is open).
  void clear() {
    data_ = MicroscopeData();
    has_data_ = false;
  }
  void draw();
  /// The number line's axis labels: the clip limits -(element_max x scale) and +(...) and zero, in
  /// the activation's units, each with the value it stands at; then the axis caption (value NaN).
  static std::vector<std::pair<double, QString>> numberLineLabels(const MxBlockView& b);

 private:
  void drawBlock(const char* id, const char* heading, const MxBlockView& block,
                 const std::vector<FormatComparisonRow>& comparison);
  static void drawExplanation(const MxBlockView& b);
  static void drawNumberLine(const MxBlockView& b);
  static void drawValueTable(const char* id, const MxBlockView& b);
  static void drawComparison(const char* id, const std::vector<FormatComparisonRow>& rows);
  MicroscopeData data_;
  bool has_data_ = false;
};

}  // namespace latmix::widgets
