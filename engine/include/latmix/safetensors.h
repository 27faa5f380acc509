#pragma once
/// \file safetensors.h
/// Room: engine/formats/ (latmix_core, no LibTorch).
/// The safetensors container, without LibTorch: element types, the strict header parser, the
/// header and shard-index builders used by the writer. Reading tensors and writing files lives in
/// tensor_io.h (LibTorch).
///
/// File layout (https://github.com/huggingface/safetensors, "Format"):
///   u64 little-endian N | N bytes of UTF-8 JSON (the header) | data area
/// The header is a JSON object: each key names a tensor and maps to
///   {"dtype": "F32", "shape": [2, 3], "data_offsets": [BEGIN, END]}
/// with offsets relative to the start of the data area (byte 8 + N); one optional key
/// "__metadata__" maps to an object of string values. Tensors are little-endian, row-major.
///
/// What parse_safetensors_header() enforces (each failure is a latmix::Error naming the file, the
/// tensor or key, and the expected versus the found value):
///  - the file holds at least 8 bytes; 2 <= N <= kMaxSafetensorsHeaderBytes; 8 + N <= file size;
///  - the header is valid UTF-8 JSON (trailing whitespace, the writer's padding, is allowed) and
///    its top level is an object; no key appears twice in any object (ordinary JSON libraries
///    silently keep the last one, which lets two readers disagree about one file);
///  - "__metadata__" is an object whose values are all strings;
///  - every other entry has exactly the keys dtype, shape and data_offsets: dtype one of the
///    names below, shape an array of non-negative integers, data_offsets two non-negative
///    integers BEGIN <= END;
///  - END - BEGIN equals the tensor's byte size (element count x bits / 8, computed without
///    overflow; the product of the non-zero dimensions must fit in int64; sub-byte types must
///    fill whole bytes);
///  - the tensors tile the data area exactly: sorted by offset they start at 0, each begins where
///    the previous one ends (no overlap, no hole) and the last one ends at the end of the file.
///    The format asks writers to index the whole byte buffer and the reference reader rejects
///    files that do not, so a hole (unreachable bytes) is an error here too.

#include <cstddef>
#include <cstdint>
#include <map>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace latmix {

/// Every element type of the safetensors format (reference implementation, 2025).
/// Sub-byte types (F4, F6_*) are packed: a tensor's size in bits must be a multiple of 8.
enum class DType : uint8_t {
  BOOL,         ///< 1 byte per element, 0 or 1
  U8,           ///< uint8
  I8,           ///< int8
  I16,          ///< int16
  U16,          ///< uint16
  I32,          ///< int32
  U32,          ///< uint32
  I64,          ///< int64
  U64,          ///< uint64
  F16,          ///< IEEE half
  BF16,         ///< bfloat16
  F32,          ///< IEEE single
  F64,          ///< IEEE double
  C64,          ///< complex of two F32 (real, imaginary)
  F8_E5M2,      ///< OCP FP8 E5M2 (with Inf/NaN)
  F8_E4M3,      ///< OCP FP8 E4M3 "fn" (no Inf, S.1111.111 is NaN)
  F8_E4M3FNUZ,  ///< FP8 E4M3, no negative zero (AMD)
  F8_E5M2FNUZ,  ///< FP8 E5M2, no negative zero (AMD)
  F8_E8M0,      ///< MX scale: 8-bit unsigned exponent, bias 127, 0xFF NaN
  F6_E2M3,      ///< MX FP6 E2M3, 6 bits per element, packed
  F6_E3M2,      ///< MX FP6 E3M2, 6 bits per element, packed
  F4,           ///< MX FP4 E2M1, 4 bits per element, packed
};

/// Number of DType values (the enumerators run from 0 to kDTypeCount - 1).
inline constexpr int kDTypeCount = static_cast<int>(DType::F4) + 1;

/// Every DType, in enumerator order.
const std::vector<DType>& all_dtypes();

/// The name the header uses ("BF16", "F8_E4M3", ...).
std::string_view dtype_name(DType dtype);

/// The DType a header name stands for (exact, case-sensitive match); nullopt if none.
std::optional<DType> parse_dtype(std::string_view name);

/// Bits per element: 4, 6, 8, 16, 32 or 64.
int dtype_bits(DType dtype);

/// Byte size of a tensor of this type and shape; nullopt when a dimension is negative, the
/// product of the non-zero dimensions overflows int64, or the bits do not fill whole bytes.
std::optional<uint64_t> tensor_byte_size(DType dtype, const std::vector<int64_t>& shape);

/// Shape as "[2, 3]" for messages.
std::string shape_to_string(const std::vector<int64_t>& shape);

/// One tensor entry of a header.
struct TensorInfo {
  std::string name;
  DType dtype = DType::F32;
  std::vector<int64_t> shape;  ///< empty for a scalar
  uint64_t begin = 0;          ///< byte offset relative to the data start
  uint64_t end = 0;            ///< one past the last byte, relative to the data start
  /// Product of the shape (1 for a scalar); fits int64 in a parsed header.
  int64_t numel() const;
  uint64_t byte_size() const { return end - begin; }
};

/// A parsed, validated header.
struct SafetensorsHeader {
  uint64_t header_len = 0;                      ///< N, the JSON length including padding
  uint64_t data_start = 0;                      ///< 8 + N: file offset of the data area
  uint64_t data_size = 0;                       ///< bytes in the data area (file size - data_start)
  std::vector<TensorInfo> tensors;              ///< sorted by begin (ties: zero-size first, then by name)
  std::map<std::string, std::string> metadata;  ///< "__metadata__" (empty if absent)

  /// The tensor of this name, or nullptr.
  const TensorInfo* find(std::string_view name) const;

 private:
  friend SafetensorsHeader parse_safetensors_header(const uint8_t*, size_t, uint64_t, const std::string&);
  std::map<std::string, size_t, std::less<>> index_;  // name -> position in tensors
};

/// Largest header accepted (the reference implementation's limit is 100 MB).
constexpr uint64_t kMaxSafetensorsHeaderBytes = 100ull << 20;

/// Parses and validates a header (see the file comment for every rule).
/// \param bytes      the file's first `available` bytes (at least 8 + N of them are needed)
/// \param available  how many bytes `bytes` holds
/// \param file_size  the whole file's size (to check offsets against the data area)
/// \param path_for_errors  the file name every error message starts with
/// \throws latmix::Error on any violation; never reads past bytes + available.
SafetensorsHeader parse_safetensors_header(const uint8_t* bytes, size_t available, uint64_t file_size,
                                           const std::string& path_for_errors);

/// Reads and parses the header of a file on disk (reads only the header, not the data).
SafetensorsHeader read_safetensors_header(const std::string& path);

/// Builds a complete header block for the writer: the 8-byte little-endian length followed by
/// the JSON, padded with spaces so that the data area starts at a multiple of 8 (as the reference
/// writer does). Tensors appear in the given order; "__metadata__" first when non-empty.
/// The caller supplies consistent offsets; names must be valid UTF-8, unique, and not
/// "__metadata__" (checked: latmix::Error naming path_for_errors).
std::string build_safetensors_header(const std::vector<TensorInfo>& tensors,
                                     const std::map<std::string, std::string>& metadata,
                                     const std::string& path_for_errors);

/// A shard index, `model.safetensors.index.json`.
struct SafetensorsIndex {
  std::optional<uint64_t> total_size;             ///< metadata.total_size, when present
  std::map<std::string, std::string> weight_map;  ///< tensor name -> shard file name
  /// The distinct shard file names, sorted.
  std::vector<std::string> shards() const;
};

/// Parses an index: a JSON object with an object "weight_map" of string values and an optional
/// object "metadata" (its "total_size", when present, a non-negative integer). Shard names must
/// be plain relative paths (no "..", not absolute). Duplicate keys are errors.
SafetensorsIndex parse_safetensors_index(std::string_view json_text, const std::string& path_for_errors);

/// Serializes an index as transformers writes it (2-space indent, sorted keys, trailing newline).
std::string build_safetensors_index(const SafetensorsIndex& index);

}  // namespace latmix
