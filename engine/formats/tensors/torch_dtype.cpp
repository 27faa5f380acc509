#include "latmix/tensor_io.h"

namespace latmix {

std::optional<at::ScalarType> to_torch_dtype(DType dtype) {
  switch (dtype) {
    case DType::BOOL:
      return at::kBool;
    case DType::U8:
      return at::kByte;
    case DType::I8:
      return at::kChar;
    case DType::I16:
      return at::kShort;
    case DType::I32:
      return at::kInt;
    case DType::I64:
      return at::kLong;
    case DType::F16:
      return at::kHalf;
    case DType::BF16:
      return at::kBFloat16;
    case DType::F32:
      return at::kFloat;
    case DType::F64:
      return at::kDouble;
    case DType::C64:
      return at::kComplexFloat;
    default:
      return std::nullopt;  // no LibTorch 1.13 type: unsigned 16-64 bit, FP8, FP6, FP4
  }
}

std::optional<DType> from_torch_dtype(at::ScalarType type) {
  for (DType d : all_dtypes()) {
    if (to_torch_dtype(d) == type) return d;
  }
  return std::nullopt;
}

}  // namespace latmix
