// The starting plan of each preset, and applying a plan to a model (learn.h).
#include <c10/core/GradMode.h>
#include <ATen/ATen.h>

#include "latmix/error.h"
#include "learn/learn_internal.h"

namespace latmix {

namespace {

// Seeds: one stream per slot, so adding a slot never changes another slot's transform.
uint64_t slot_seed(uint64_t seed, uint64_t slot, int64_t layer) {
  return seed * 1000003ULL + slot * 10007ULL + static_cast<uint64_t>(layer + 1);
}

int64_t mx_block(const QuantSpec& spec) {
  if (spec.activations) return spec.activations->block;
  if (spec.weights) return spec.weights->block;
  return 32;
}

// The rotation a learned transform starts from (undefined: the identity).
at::Tensor start_rotation(TransformInit init, int64_t dim, uint64_t seed, int64_t block) {
  switch (init) {
    case TransformInit::Hadamard: return HadamardTransform(dim, seed).matrix();
    case TransformInit::BlockHadamard:
      if (dim % block != 0) {
        throw UsageError("--init block_hadamard: width " + std::to_string(dim) + " is not a multiple of the MX block " +
                         std::to_string(block));
      }
      return BlockHadamardTransform(dim, block, seed).matrix();
    case TransformInit::Random: return OrthogonalTransform::random(dim, seed)->q();
    case TransformInit::Identity: return {};
  }
  return {};
}

std::shared_ptr<BlockHadamardTransform> block_hadamard(int64_t dim, int64_t block, uint64_t seed, const char* where) {
  if (dim % block != 0) {
    throw UsageError(std::string("block Hadamard at ") + where + ": width " + std::to_string(dim) +
                     " is not a multiple of the MX block " + std::to_string(block));
  }
  return std::make_shared<BlockHadamardTransform>(dim, block, seed);
}

}  // namespace

TransformPlan initial_plan(const ModelConfig& c, const LearnSettings& s) {
  TransformPlan plan;
  const std::string& m = s.method;
  const size_t layers = static_cast<size_t>(c.num_layers);
  const uint64_t seed = s.seed;
  if (m == "rtn" || m == "gptq") return plan;
  if (m == "quarot") {
    plan.residual = std::make_shared<HadamardTransform>(c.hidden_size, slot_seed(seed, 1, -1));
    for (size_t l = 0; l < layers; ++l) {
      const auto li = static_cast<int64_t>(l);
      plan.value.push_back(std::make_shared<HadamardTransform>(c.head_dim, slot_seed(seed, 2, li)));
      plan.down_online.push_back(std::make_shared<HadamardTransform>(c.intermediate_size, slot_seed(seed, 3, li)));
    }
    return plan;
  }
  if (m == "mr-gptq") {
    const int64_t b = mx_block(s.quant);
    plan.residual = block_hadamard(c.hidden_size, b, slot_seed(seed, 1, -1), "the residual stream");
    for (size_t l = 0; l < layers; ++l) {
      const auto li = static_cast<int64_t>(l);
      // A head narrower than the block, or not a multiple of it, keeps its values as they are.
      if (c.head_dim % b == 0) plan.value.push_back(block_hadamard(c.head_dim, b, slot_seed(seed, 2, li), "values"));
      plan.down_online.push_back(block_hadamard(c.intermediate_size, b, slot_seed(seed, 3, li), "down_proj input"));
    }
    if (plan.value.size() != layers) plan.value.clear();
    return plan;
  }
  if (m == "spinquant") {
    plan.residual = std::make_shared<RotationTransform>(
        c.hidden_size, start_rotation(s.init, c.hidden_size, slot_seed(seed, 1, -1), mx_block(s.quant)), s.rotation_map);
    for (size_t l = 0; l < layers; ++l) {
      const auto li = static_cast<int64_t>(l);
      plan.value.push_back(std::make_shared<RotationTransform>(
          c.head_dim, start_rotation(s.init, c.head_dim, slot_seed(seed, 2, li), mx_block(s.quant)), s.rotation_map));
      plan.down_online.push_back(std::make_shared<HadamardTransform>(c.intermediate_size, slot_seed(seed, 3, li)));
    }
    return plan;
  }
  if (m == "flatquant") {
    for (size_t l = 0; l < layers; ++l) {
      plan.attn_online.push_back(KroneckerTransform::balanced(c.hidden_size));
      plan.mlp_online.push_back(KroneckerTransform::balanced(c.hidden_size));
      plan.value.push_back(KroneckerTransform::balanced(c.head_dim));
      plan.down_online.push_back(KroneckerTransform::balanced(c.intermediate_size));
    }
    return plan;
  }
  if (m == "latmix") {
    auto residual = std::make_shared<AffineTransform>(
        c.hidden_size, s.param, start_rotation(s.init, c.hidden_size, slot_seed(seed, 1, -1), mx_block(s.quant)));
    if (!s.affine_bias) residual->bias_param().requires_grad_(false);
    plan.residual = residual;
    const int64_t b = mx_block(s.quant);
    for (size_t l = 0; l < layers; ++l) {
      const auto li = static_cast<int64_t>(l);
      auto value = std::make_shared<AffineTransform>(c.head_dim, s.param,
                                                     start_rotation(s.init, c.head_dim, slot_seed(seed, 2, li), mx_block(s.quant)));
      // Llama has no v_proj/o_proj bias: the value bias cancels in o_proj (transform_fold.h), so
      // it has no gradient; it is not trained.
      value->bias_param().requires_grad_(false);
      plan.value.push_back(value);
      plan.down_online.push_back(block_hadamard(c.intermediate_size, b, slot_seed(seed, 3, li), "down_proj input"));
    }
    return plan;
  }
  throw UsageError("no plan for method '" + m + "'");
}

QuantizedModel apply_plan(const Model& fp, const TransformPlan& plan, const QuantSpec& spec,
                          const CalibrationSet* calib, const JobControl& job, dist::Group* group) {
  Model folded = fp.to(fp.device(), fp.dtype());
  if (!plan.empty()) {
    FoldOptions options;
    options.missing_bias = MissingBias::Drop;
    fold_transforms(folded, plan, options);
  }
  QuantizeOptions options;
  options.group = group;
  return quantize_model(folded, spec, calib, job, options);
}

}  // namespace latmix
