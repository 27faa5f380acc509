#pragma once
/// \file scoped_hook.h
/// Room: engine/model/ (latmix_engine).
/// A capture hook installed on a model for the lifetime of a scope (removed on exceptions too).

#include <memory>
#include <utility>

#include "latmix/model.h"

namespace latmix {

class ScopedHook {
 public:
  ScopedHook(Model& model, std::shared_ptr<CaptureHook> hook) : model_(model), hook_(std::move(hook)) {
    model_.add_hook(hook_);
  }
  ~ScopedHook() { model_.remove_hook(hook_); }
  ScopedHook(const ScopedHook&) = delete;
  ScopedHook& operator=(const ScopedHook&) = delete;

 private:
  Model& model_;
  std::shared_ptr<CaptureHook> hook_;
};

}  // namespace latmix
