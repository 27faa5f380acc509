#include "latency_probe.h"

#include <algorithm>

#include "engine_host.h"

namespace latmix::studio {

namespace {
constexpr int kIntervalMs = 10;
}

LatencyProbe::LatencyProbe(EngineHost* host, QObject* parent) : QObject(parent), host_(host) {
  timer_.setTimerType(Qt::PreciseTimer);
  timer_.setInterval(kIntervalMs);
  connect(&timer_, &QTimer::timeout, this, &LatencyProbe::tick);
  clock_.start();
  last_ns_ = clock_.nsecsElapsed();
  timer_.start();
}

void LatencyProbe::tick() {
  const qint64 now = clock_.nsecsElapsed();
  const double late = static_cast<double>(now - last_ns_) / 1e6 - kIntervalMs;
  last_ns_ = now;
  if (host_->busy()) late_ms_.push_back(std::max(0.0, late));
}

LatencyProbe::Summary LatencyProbe::summary() const {
  Summary s;
  if (late_ms_.empty()) return s;
  std::vector<double> v = late_ms_;
  std::sort(v.begin(), v.end());
  auto at = [&](double q) { return v[std::min(v.size() - 1, static_cast<size_t>(q * static_cast<double>(v.size())))]; };
  s.samples = static_cast<int>(v.size());
  s.p50_ms = at(0.50);
  s.p99_ms = at(0.99);
  s.max_ms = v.back();
  return s;
}

}  // namespace latmix::studio
