#pragma once
// Fixed-size accumulators of one view of one capture (internal to engine/calib).

#include <ATen/ATen.h>

#include <cstdint>

#include "latmix/calib.h"
#include "latmix/mx.h"

namespace latmix::calib_detail {

/// Where each row of a batch came from: token id, sequence and position, int64 [N] each.
struct TokenIndex {
  at::Tensor ids, sequence, position;
};

/// The scale of every block: x_blocks [N, nb, block] -> (scale values fp32 [N, nb], histogram bin
/// int64 [N, nb]), exactly as fake_quantize() chooses them. Works on any device.
std::pair<at::Tensor, at::Tensor> block_scales(const at::Tensor& amax, const at::Tensor& x2d, const MxFormat& f);

class ViewAccumulator {
 public:
  ViewAccumulator(int64_t features, const MxFormat& format, int64_t tokens_per_channel, at::Device device);

  /// Folds x [N, F] (any floating dtype) into the accumulators.
  void add(const at::Tensor& x, const TokenIndex& tokens);
  /// The figures so far (CPU values).
  ViewStats finish(int64_t top_channels) const;
  int64_t bytes() const;
  int64_t count() const { return n_; }

 private:
  void add_moments(const at::Tensor& xd);
  void add_top_tokens(const at::Tensor& x, const TokenIndex& tokens);
  void add_blocks(const at::Tensor& x);

  int64_t features_, blocks_, width_, k_;
  MxFormat format_;
  int64_t n_ = 0;
  // per channel (fp64 moments; fp32 max)
  at::Tensor mean_, m2_, m3_, m4_, max_abs_;
  // per channel top-|x| heap [F, k]
  at::Tensor top_abs_, top_value_, top_id_, top_seq_, top_pos_;
  // per block (fp64 sums) and per layer histogram
  at::Tensor block_energy_, block_crest_, block_error_, block_clipped_, block_max_, histogram_;
};

}  // namespace latmix::calib_detail
