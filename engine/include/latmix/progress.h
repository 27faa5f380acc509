#pragma once
/// \file progress.h
/// Room: engine/base/ (latmix_core, no LibTorch).
/// Progress reporting and cancellation for every long engine call.

#include <atomic>
#include <cstdint>
#include <functional>
#include <memory>
#include <string_view>

#include "latmix/error.h"

namespace latmix {

/// Called by long operations: `stage` names the step, `done` of `total` units are finished
/// (total may be 0 when unknown). Called from the thread doing the work.
using ProgressFn = std::function<void(std::string_view stage, int64_t done, int64_t total)>;

/// Shared flag that asks a long operation to stop. Cheap to copy; all copies share the flag.
class CancelToken {
 public:
  CancelToken() : flag_(std::make_shared<std::atomic<bool>>(false)) {}
  void cancel() const { flag_->store(true, std::memory_order_relaxed); }
  bool cancelled() const { return flag_->load(std::memory_order_relaxed); }
  /// Throws latmix::Cancelled if cancel() was called.
  void check() const {
    if (cancelled()) throw Cancelled();
  }

 private:
  std::shared_ptr<std::atomic<bool>> flag_;
};

/// Progress + cancel passed together into long calls.
struct JobControl {
  ProgressFn progress;
  CancelToken cancel;
  void report(std::string_view stage, int64_t done, int64_t total) const {
    if (progress) progress(stage, done, total);
  }
};

}  // namespace latmix
