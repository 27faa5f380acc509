#pragma once
/// \file calib_transforms.h
/// Room: engine/calib/ (latmix_engine).
/// Transforms as the statistics collector applies them ("after" views): the built-in choices
/// and learned plans, each turned into an ActivationTransform. At the normalized capture points
/// (attn_in, mlp_in, lm_head_in) a residual transform is applied to x / norm gain: that is what
/// the quantizer sees once the gains are fused into the next weights.

#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "latmix/calib_collector.h"
#include "latmix/model.h"
#include "latmix/mx.h"

namespace latmix {

/// "none", "hadamard", "block-hadamard", "random-orthogonal".
std::vector<std::string> builtin_transform_names();
/// The same, comma-separated, for help and error texts.
std::string builtin_transform_list();

/// A built-in transform (not "none") for every width the model shows, created on first use with
/// seeded random signs; block Hadamard uses the format's block size. Throws UsageError for an
/// unknown name and Error for an unsupported Hadamard width. Keeps a pointer to `model`.
ActivationTransform make_builtin_activation_transform(const std::string& name, const Model& model,
                                                      const MxFormat& format, uint64_t seed);

/// Learned transforms saved by save_transforms (PREFIX.json + PREFIX.safetensors): residual on
/// the hidden-width points, value per head at o_in, online at down_in; identity elsewhere.
ActivationTransform make_plan_activation_transform(const std::string& prefix, const Model& model);
struct TransformPlan;
/// The same for a plan held in memory (e.g. a learning run's snapshot): no file is read.
ActivationTransform make_plan_activation_transform(std::shared_ptr<const TransformPlan> plan, const Model& model);

}  // namespace latmix
