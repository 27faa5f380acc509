#pragma once
// LatencyProbe: measures how late the GUI thread's event loop runs a 10 ms timer while engine
// jobs run — the responsiveness figure (p50 / p99 / max lateness in ms).

#include <QElapsedTimer>
#include <QObject>
#include <QTimer>

#include <vector>

namespace latmix::studio {

class EngineHost;

class LatencyProbe : public QObject {
  Q_OBJECT

 public:
  explicit LatencyProbe(EngineHost* host, QObject* parent = nullptr);
  struct Summary {
    int samples = 0;
    double p50_ms = 0, p99_ms = 0, max_ms = 0;
  };
  /// Lateness of the ticks that happened while a job was running.
  Summary summary() const;

 private:
  void tick();
  EngineHost* host_;
  QTimer timer_;
  QElapsedTimer clock_;
  qint64 last_ns_ = 0;
  std::vector<double> late_ms_;
};

}  // namespace latmix::studio
