#pragma once
/// \file gguf.h
/// Room: engine/formats/tensors/ (latmix_engine).
/// The GGUF v3 container of llama.cpp / ggml: writing a model file and reading one back.
///
/// Layout (little-endian): "GGUF", u32 version 3, u64 tensor count, u64 key/value count; the
/// key/value pairs (key as u64 length + bytes, u32 value type, value; an array is u32 element
/// type, u64 count, elements); the tensor infos (name, u32 dimension count, u64 ne[] with ne[0]
/// the contiguous dimension, u32 ggml type, u64 offset from the start of the data area); padding
/// to `general.alignment` (32); the data area, every tensor at an aligned offset.
///
/// A PyTorch weight [out, in] is ggml ne = {in, out}: the shapes here are ggml order.
/// Element types written: F32, F16, BF16 and MXFP4 (ggml block_mxfp4: 32 values in 17 bytes,
/// byte 0 the OCP E8M0 scale, byte 1 + j element j in the low nibble and element j + 16 in the
/// high nibble; see gguf_mxfp4_encode in mx.h).

#include <ATen/ATen.h>
#include <nlohmann/json.hpp>

#include <cstdint>
#include <functional>
#include <string>
#include <vector>

#include "latmix/progress.h"

namespace latmix {

/// GGUF metadata value types.
enum class GgufType : uint32_t {
  U8 = 0,
  I8 = 1,
  U16 = 2,
  I16 = 3,
  U32 = 4,
  I32 = 5,
  F32 = 6,
  BOOL = 7,
  STRING = 8,
  ARRAY = 9,
  U64 = 10,
  I64 = 11,
  F64 = 12
};

/// The ggml tensor types this module writes and reads (their ggml numbers).
enum class GgmlType : uint32_t { F32 = 0, F16 = 1, BF16 = 30, MXFP4 = 39 };

/// "F32", "F16", "BF16", "MXFP4".
std::string to_string(GgmlType type);
/// Bytes of `elements` values of `type` (MXFP4: elements must be a multiple of 32).
uint64_t ggml_byte_size(GgmlType type, uint64_t elements);

/// One key/value pair. `value` holds the number, bool or string; for an ARRAY, a JSON array
/// whose elements have `element_type`.
struct GgufKeyValue {
  std::string key;
  GgufType type = GgufType::STRING;
  nlohmann::json value;
  GgufType element_type = GgufType::STRING;  ///< arrays only
};

/// A tensor to write: produce() returns its bytes (any tensor; its bytes are written as they
/// are and must number ggml_byte_size(type, product of ne)). Called once, in order.
struct GgufTensorSource {
  std::string name;
  GgmlType type = GgmlType::F32;
  std::vector<int64_t> ne;  ///< ggml order: ne[0] contiguous
  std::function<at::Tensor()> produce;
};

/// Writes a GGUF v3 file at `path` through AtomicFile (files.h: it appears complete or not at all,
/// nothing is left behind on failure or cancel), streaming one tensor at a time. Progress: stage "write" in bytes;
/// cancel checked before each tensor. \throws latmix::Error naming the file and the tensor when a
/// produced tensor has the wrong size or a write fails.
void write_gguf(const std::string& path, const std::vector<GgufKeyValue>& metadata,
                const std::vector<GgufTensorSource>& tensors, const JobControl& job = {});

/// A tensor of a GGUF file as read back.
struct GgufTensorInfo {
  std::string name;
  GgmlType type = GgmlType::F32;
  std::vector<int64_t> ne;
  uint64_t offset = 0;  ///< absolute, in the file
  uint64_t bytes = 0;
};

/// What read_gguf() found.
struct GgufFile {
  std::string path;
  uint32_t version = 0;
  std::vector<GgufKeyValue> metadata;
  std::vector<GgufTensorInfo> tensors;
  uint64_t data_offset = 0;
  /// The pair with `key`, or null.
  const GgufKeyValue* find(const std::string& key) const;
  /// The tensor named `name`, or null.
  const GgufTensorInfo* tensor(const std::string& name) const;
};

/// Reads the header of a GGUF v3 file (key/values and tensor infos), checking that every tensor
/// lies inside the file at an aligned offset. \throws latmix::Error naming the file, the offset and
/// what was expected on anything malformed or of a type this module does not read.
GgufFile read_gguf(const std::string& path);

/// The bytes of one tensor (uint8, 1-D).
at::Tensor read_gguf_bytes(const GgufFile& file, const GgufTensorInfo& info);

/// One tensor's values as fp32, PyTorch shape (ne reversed); MXFP4 decoded.
at::Tensor read_gguf_tensor(const GgufFile& file, const GgufTensorInfo& info);

}  // namespace latmix
