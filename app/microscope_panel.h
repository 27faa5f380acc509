#pragma once
// The Block Microscope panel: pick a capture point, layer, token, block and MX format; the engine
// thread captures the activation on the calibration sample and explains that one block.

#include <QWidget>

#include <memory>
#include <string>
#include <vector>

#include "latmix/calib_data.h"

class QComboBox;
class QSpinBox;
class QLabel;

namespace latmix::widgets {
class ImGuiHost;
class BlockMicroscopeView;
struct MicroscopeData;
}  // namespace latmix::widgets

namespace latmix::studio {

class EngineHost;
class ModelSession;
class StudioContext;

class MicroscopePanel : public QWidget {
  Q_OBJECT

 public:
  /// Shows the blocks opened through `context` (StudioContext::openBlock(): a heatmap cell or an
  /// outlier's token of the explorer).
  explicit MicroscopePanel(StudioContext* context, QWidget* parent = nullptr);
  ~MicroscopePanel() override;

  /// Selects a block (e.g. from a click in the activation explorer) and refreshes; a non-empty
  /// `format` and `transform` (a built-in name, or a plan's label with its `plan_prefix`) are
  /// selected too, so that the block is the one the explorer showed.
  void select(const QString& point, int layer, int block, const QString& format = {},
              const QString& transform = {}, const QString& plan_prefix = {});
  /// select(), at token `position` of calibration sequence `sequence` of `text` (the sequences
  /// `options` choose, as the explorer's statistics did) instead of the bundled sample: an outlier
  /// of the explorer, shown at the token that produced it. select() returns to the bundled sample.
  void selectToken(const QString& point, int layer, int block, const QString& format, const QString& transform,
                   const QString& plan_prefix, const QString& text, const latmix::CalibrationOptions& options,
                   int sequence, int position);
  /// Adds a learned or loaded plan as a transform choice (the explorer's plans).
  void addPlanChoice(const QString& label, const QString& prefix);
  /// Another model is open: clears the block shown (it was the old model's), re-reads the
  /// model's shape and refreshes. A block of the old model still being computed is dropped.
  void modelChanged();
  /// Whether a block is shown, and the line saying which (tests).
  bool hasBlock() const;
  QString statusText() const;
  /// The format and transform chosen (tests).
  QString formatText() const;
  QString transformText() const;
  /// The token shown (its index in the sequence) and the block (tests).
  int tokenIndex() const;
  int blockIndex() const;

 Q_SIGNALS:
  void refreshed();

 private:
  /// Where the tokens come from: a calibration sequence of a text (an outlier opened from the
  /// explorer); none: the bundled sample's opening.
  struct TokenSource {
    std::string text;
    latmix::CalibrationOptions options;
    int64_t sequence = 0;
  };
  void selectBlock(const QString& point, int layer, int block, const QString& format, const QString& transform,
                   const QString& plan_prefix);
  void refresh();
  void show(const latmix::widgets::MicroscopeData& data);

  EngineHost* host_;
  ModelSession* session_;
  StudioContext* context_;
  QComboBox* point_ = nullptr;
  QSpinBox* layer_ = nullptr;
  QSpinBox* token_ = nullptr;
  QSpinBox* block_ = nullptr;
  QComboBox* format_ = nullptr;
  QComboBox* transform_ = nullptr;
  QLabel* status_ = nullptr;
  latmix::widgets::ImGuiHost* host_view_ = nullptr;
  std::unique_ptr<latmix::widgets::BlockMicroscopeView> view_;
  /// The token ids of the last block shown (the engine's result): reused while only the layer, token,
  /// block, format or transform change, so that the text is tokenized once.
  std::vector<int64_t> ids_;
  std::shared_ptr<const TokenSource> source_;
};

}  // namespace latmix::studio
