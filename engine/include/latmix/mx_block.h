#pragma once
/// \file mx_block.h
/// Room: engine/mx/ (latmix_engine).
/// One MX block taken apart, for teaching views (the studio's Block Microscope) and reports:
/// the input values, the shared scale and how it was chosen, the element grid, each value's code,
/// quantized value and error. Plain values, no tensors.

#include <ATen/ATen.h>

#include <cstdint>
#include <string>
#include <vector>

#include "latmix/mx.h"

namespace latmix {

struct MxBlockView {
  std::string format;            ///< MxFormat::name()
  std::string format_details;    ///< MxFormat::describe()
  std::vector<float> values;     ///< the block's input values (length <= block size)
  std::vector<float> quantized;  ///< dequantized values (what the matmul sees)
  std::vector<int> codes;        ///< element codes
  double amax = 0;               ///< max |value| of the block
  int scale_code = 0;            ///< E8M0 code (0..255) or E4M3 code for NVFP4
  double scale = 0;              ///< the decoded block scale (2^(code-127) for E8M0)
  std::string scale_rule;        ///< "floor", "rceil", ... (NVFP4: "amax/6 in E4M3")
  double element_max = 0;        ///< largest element magnitude of the format
  std::vector<double> grid;      ///< every non-negative representable value times the scale
  int clipped = 0;               ///< values whose magnitude exceeded element_max * scale
  double mse = 0;
  double sqnr_db = 0;            ///< +inf when exact
};

/// Quantizes one block (a 1-D tensor of at most format.block values) and explains it.
MxBlockView inspect_mx_block(const at::Tensor& block, const MxFormat& format);

}  // namespace latmix
