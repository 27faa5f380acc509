#pragma once
// Pieces of engine/learn shared between its files (not public API).
#include <ATen/ATen.h>

#include <string>

#include "latmix/learn.h"

namespace latmix {

/// The transforms a preset starts from (fixed presets: their final transforms).
TransformPlan initial_plan(const ModelConfig& config, const LearnSettings& settings);

/// A deep copy of a plan with detached tensors (rebuilt through describe() + state()).
TransformPlan clone_plan(const TransformPlan& plan);

/// FNV-1a 64 over the calibration sequences' token ids, as hex: a checkpoint made with other
/// calibration text, --samples or --seqlen is refused on resume.
std::string calibration_hash(const CalibrationSet& calib);

}  // namespace latmix
