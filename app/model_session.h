#pragma once
// ModelSession: the studio's open model. Loading runs on the EngineHost; the GUI gets a plain
// ModelSummary (no tensors) and, for views that need numbers, small precomputed tables.

#include <QObject>
#include <QString>
#include <QStringList>

#include <memory>
#include <vector>

#include "engine_host.h"

namespace latmix {
class Model;
class Tokenizer;
}  // namespace latmix

namespace latmix::studio {

/// One weight tensor of the model, for the model panel.
struct ModuleRow {
  QString name;   ///< "layers.3.mlp.down_proj"
  QString shape;  ///< "[256, 704]"
  QString dtype;  ///< "float32"
  qint64 parameters = 0;
};

/// Per-layer, per-linear weight statistics for the overview heatmap: rows = layers, cols = the
/// seven linear layers (q, k, v, o, gate, up, down); value = max|W| / RMS(W) (outlier ratio).
struct WeightOverview {
  QStringList columns;
  int rows = 0;
  std::vector<float> max_over_rms;  ///< rows x columns, row-major
  std::vector<float> rms;
};

struct ModelSummary {
  QString path;
  QString architecture;
  QString family;
  QString source_format;
  qint64 layers = 0, hidden = 0, intermediate = 0, heads = 0, kv_heads = 0, head_dim = 0, vocab = 0;
  qint64 parameters = 0;
  QString tokenizer;
  std::vector<ModuleRow> modules;
  WeightOverview overview;
};

class ModelSession : public QObject {
  Q_OBJECT

 public:
  explicit ModelSession(EngineHost* host, QObject* parent = nullptr);

  /// Starts loading a model folder or llama2.c .bin; supersedes a load still queued.
  quint64 open(const QString& path);
  bool hasModel() const { return model_ != nullptr; }
  const ModelSummary& summary() const { return summary_; }
  /// Engine-side objects, for jobs that run on the engine thread.
  std::shared_ptr<latmix::Model> model() const { return model_; }
  std::shared_ptr<latmix::Tokenizer> tokenizer() const { return tokenizer_; }

 Q_SIGNALS:
  void opened(const latmix::studio::ModelSummary& summary);
  void openFailed(const QString& path, const QString& message);

 private:
  EngineHost* host_;
  quint64 pending_ = 0;
  QString pending_path_;
  std::shared_ptr<latmix::Model> model_;
  std::shared_ptr<latmix::Tokenizer> tokenizer_;
  ModelSummary summary_;
};

/// Builds the summary of a loaded model (engine thread).
ModelSummary summarize_model(const QString& path, const latmix::Model& model, const latmix::Tokenizer& tokenizer);

}  // namespace latmix::studio

Q_DECLARE_METATYPE(latmix::studio::ModelSummary)
