#pragma once
// ModelSession: the studio's open model. Loading runs on the EngineHost; the GUI gets a plain
// ModelSummary (no tensors) and, for views that need numbers, small precomputed tables.

#include <QObject>
#include <QString>
#include <QStringList>

#include <memory>
#include <vector>

#include "engine_host.h"
#include "latmix/api/model.h"
#include "latmix/progress.h"

namespace latmix {
class Model;
class Tokenizer;
}  // namespace latmix

namespace latmix::serve {
class RemoteEngine;
}  // namespace latmix::serve

namespace latmix::studio {

/// One weight tensor of the model, for the model panel (api::ModuleRow in Qt's types).
struct ModuleRow {
  QString name;   ///< "layers.3.mlp.down_proj"
  QString shape;  ///< "[256, 704]"
  QString dtype;  ///< "float32"
  qint64 parameters = 0;
};

/// Per-layer, per-linear weight statistics for the overview heatmap: rows = layers, cols = the
/// seven linear layers (q, k, v, o, gate, up, down); value = max|W| / RMS(W) (outlier ratio).
/// api::WeightOverview (api::weight_overview()) in Qt's types.
struct WeightOverview {
  QStringList columns;
  int rows = 0;
  std::vector<float> max_over_rms;  ///< rows x columns, row-major
  std::vector<float> rms;
};

/// The engine's description of the open model (api::describe_model() and api::model_modules(): the
/// same summary as `latmix info`), in Qt's types for the model panel.
struct ModelSummary {
  latmix::api::ModelDescription description;  ///< what the fields below were converted from
  QString path;
  /// "memory-mapped (weights as stored, converted at use)" or "in memory (fp32)": how the session holds them.
  QString weights;
  bool mapped = false;
  QString architecture;
  QString family;
  QString source_format;
  qint64 layers = 0, hidden = 0, intermediate = 0, heads = 0, kv_heads = 0, head_dim = 0, vocab = 0;
  qint64 parameters = 0;
  QString tokenizer;
  std::vector<ModuleRow> modules;
  WeightOverview overview;  ///< empty until overviewReady() (its own job, after opened())
};

class ModelSession : public QObject {
  Q_OBJECT

 public:
  explicit ModelSession(EngineHost* host, QObject* parent = nullptr);

  /// Starts loading a model folder or llama2.c .bin; supersedes a load still queued. On the CPU
  /// the matrices stay memory-mapped as the files store them (as `latmix --weights auto`), so a
  /// model bigger than the memory opens; jobs that need them held make a copy (api::held_model(), latmix/api/evaluate.h).
  /// Once open, the weight overview is computed by its own job (computeOverview()).
  quint64 open(const QString& path);
  /// Opens a model folder or .bin of a `latmix serve` engine (`path`: the server's path): it is
  /// described there (task "describe", from its headers: no module rows), then its weight overview
  /// is computed there (describe with "overview", its own job like computeOverview()). The session
  /// then holds no Model: remote() is the engine its jobs run on, summary() the description.
  quint64 openRemote(std::shared_ptr<const latmix::serve::RemoteEngine> engine, const QString& path);
  /// Forgets the open model (local or remote); closed().
  void close();
  /// Computes the Overview's weight statistics of the open model (job "weight-overview", with
  /// progress per matrix and cancel); overviewReady() brings them. Returns the job id (0: no model).
  quint64 computeOverview();
  quint64 overviewJob() const { return overview_job_; }
  /// A model is open, here or on the engine.
  bool hasModel() const { return model_ != nullptr || remote_ != nullptr; }
  /// The engine the open model is on (nullptr: it is open in this process, or none is).
  std::shared_ptr<const latmix::serve::RemoteEngine> remote() const { return remote_; }
  const ModelSummary& summary() const { return summary_; }
  /// Engine-side objects, for jobs that run on the engine thread.
  std::shared_ptr<latmix::Model> model() const { return model_; }
  std::shared_ptr<latmix::Tokenizer> tokenizer() const { return tokenizer_; }

 Q_SIGNALS:
  void opened(const latmix::studio::ModelSummary& summary);
  void openFailed(const QString& path, const QString& message);
  /// The model was closed (close()): no model is open.
  void closed();
  /// The weight overview of the open model is in summary().overview.
  void overviewReady();
  /// The overview job was cancelled or failed ("" message: cancelled).
  void overviewStopped(const QString& message);

 private:
  quint64 computeRemoteOverview();

  EngineHost* host_;
  quint64 pending_ = 0;
  quint64 overview_job_ = 0;
  QString pending_path_;
  std::shared_ptr<latmix::Model> model_;
  std::shared_ptr<latmix::Tokenizer> tokenizer_;
  std::shared_ptr<const latmix::serve::RemoteEngine> remote_;
  ModelSummary summary_;
};

/// The summary of a loaded model (engine thread): its description (api::describe_model(), from the
/// headers, with `tokenizer`) and module rows (api::model_modules()) converted to Qt's types, and how
/// the session holds the weights; the overview is left empty (api::weight_overview(), its own job).
ModelSummary summarize_model(const QString& path, const latmix::Model& model, const latmix::Tokenizer& tokenizer);

/// The summary of a model described on an engine (api::ModelDescription read back from the task
/// "describe"): the same fields, no module rows, weights "on the engine at URL".
ModelSummary summarize_remote_model(const QString& path, const QString& url, latmix::api::ModelDescription d);

/// The engine's weight overview in Qt's types.
WeightOverview overview_for_view(const latmix::api::WeightOverview& overview);


}  // namespace latmix::studio

Q_DECLARE_METATYPE(latmix::studio::ModelSummary)
