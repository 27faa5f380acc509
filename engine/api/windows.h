#pragma once
// The calibration windows of a request's --samples, --seqlen, --sampling, --seed and --bos (engine/api,
// private): the statistics and explain-a-block tasks read their text the same way.

#include <cstdint>
#include <string>

#include "latmix/calib_data.h"
#include "latmix/error.h"
#include "latmix/model.h"
#include "latmix/tokenizer.h"

namespace latmix::api::detail {

/// --bos takes the tokenizer's BOS id, else the model config's. \throws latmix::UsageError for a bad
/// --sampling, or --bos without a BOS token.
inline CalibrationOptions window_options(int64_t samples, int64_t seqlen, const std::string& sampling, uint64_t seed,
                                         bool bos, const Model& model, const Tokenizer& tokenizer) {
  CalibrationOptions o;
  o.samples = samples;
  o.seqlen = seqlen;
  o.sampling = parse_window_sampling(sampling);
  o.seed = seed;
  if (bos) {
    const auto id = tokenizer.bos_id() ? tokenizer.bos_id() : model.config().bos_token_id;
    if (!id) throw UsageError("--bos: the model's tokenizer has no BOS token");
    o.bos_id = *id;
  }
  return o;
}

}  // namespace latmix::api::detail
