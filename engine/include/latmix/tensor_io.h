#pragma once
/// \file tensor_io.h
/// Room: engine/formats/tensors/ (latmix_engine).
/// Reading and writing safetensors files with LibTorch tensors.
///
/// Reading maps the file (mmap) and hands out CPU tensors that point into the mapping:
///  - **Read-only.** The mapping is PROT_READ. A tensor from SafetensorsFile::tensor(),
///    TensorStore::get() or raw_bytes() must not be written in place: writing crashes the process
///    (SIGSEGV). Call `.clone()`, or `.to(...)` with a different dtype/device, before any in-place
///    operation. Tensors of size zero and tensors that had to be copied (see below) are ordinary
///    writable tensors, but do not rely on it.
///  - **Lifetime.** Each tensor keeps the mapping alive (its deleter holds a shared_ptr to it), so
///    tensors may outlive the SafetensorsFile / TensorStore they came from. Replacing the file
///    by rename (as write_safetensors() does) is safe: the old contents stay mapped. Truncating
///    it in place while mapped is not (reads past the new end raise SIGBUS).
///  - **Alignment.** The format does not align tensors: an offset may be odd. A tensor whose
///    address is not a multiple of its element size (up to 8) is copied into fresh memory
///    instead of being mapped. Files written by write_safetensors() (and by the reference writer
///    when it sorts by dtype) place every tensor at a suitable address: no copy.
///  - **Element types.** LibTorch 1.13 has no unsigned 16/32/64-bit, FP8, FP6, FP4 or E8M0 types;
///    tensor() throws for those (naming the file, the tensor and the dtype). raw_bytes() gives
///    the bytes of any tensor as a 1-D uint8 tensor.
///  - Little-endian hosts only (the file format is little-endian; a big-endian build fails).
///
/// Writing streams: write_safetensors() calls each source's produce() once, in order, writes the
/// result and drops it, so memory is bounded by the largest tensor. Files appear atomically
/// (latmix::AtomicFile): the data goes into a temp file `.NAME.tmp-XXXXXX` in the target folder,
/// which is fsync'ed and then renamed over the target (then the folder is fsync'ed). On any
/// error, or when the job is cancelled (latmix::Cancelled), the temp files are removed, an
/// existing target is untouched, and the exception is rethrown. New files get mode 0644 less the
/// umask.

#include <ATen/ATen.h>

#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "latmix/progress.h"
#include "latmix/safetensors.h"

namespace latmix {

/// The LibTorch scalar type of a safetensors dtype, or nullopt where LibTorch 1.13 has none
/// (U16, U32, U64, every F8_*, F6_*, F4). BOOL->kBool, U8->kByte, I8->kChar, I16->kShort,
/// I32->kInt, I64->kLong, F16->kHalf, BF16->kBFloat16, F32->kFloat, F64->kDouble,
/// C64->kComplexFloat.
std::optional<at::ScalarType> to_torch_dtype(DType dtype);

/// The safetensors dtype of a LibTorch scalar type, or nullopt (quantized types, complex half,
/// complex double, ...).
std::optional<DType> from_torch_dtype(at::ScalarType type);

/// "[4096, 14336]": shape_to_string() for LibTorch sizes.
inline std::string shape_to_string(at::IntArrayRef shape) { return shape_to_string(shape.vec()); }

/// One memory-mapped safetensors file. Open once, share the pointer; thread-safe after open().
class SafetensorsFile {
 public:
  /// Maps the file and validates its header (every rule of parse_safetensors_header()).
  /// \throws latmix::Error naming the file when it cannot be opened, mapped or parsed.
  static std::shared_ptr<SafetensorsFile> open(const std::string& path);

  const SafetensorsHeader& header() const { return header_; }
  const std::string& path() const { return path_; }
  uint64_t file_size() const;

  /// The tensor as a CPU tensor of its own dtype and shape, zero-copy over the mapping (see the
  /// file comment: read-only, keeps the mapping alive, copied when misaligned).
  /// \throws latmix::Error "FILE: tensor 'x' missing", or when the dtype has no LibTorch type.
  at::Tensor tensor(std::string_view name) const;

  /// The tensor's bytes as a 1-D uint8 CPU tensor (zero-copy, read-only), for any dtype.
  at::Tensor raw_bytes(std::string_view name) const;

  struct Mapping;  ///< the mmap'ed bytes (implementation detail)

 private:
  SafetensorsFile() = default;
  const TensorInfo& require(std::string_view name) const;

  std::string path_;
  std::shared_ptr<const Mapping> mapping_;
  SafetensorsHeader header_;
};

/// The tensors of a model: a folder with `model.safetensors`, a folder with shards listed in
/// `model.safetensors.index.json`, the index file itself, or a single `.safetensors` file.
/// A folder with both a single file and an index uses the single file (as transformers does).
/// Opening validates everything up front: the index is well-formed, every shard it names exists
/// and parses, every tensor it lists is in the named shard, no tensor appears in two shards, and
/// every tensor of a shard is listed in the index. A cheap value type (files are shared).
class TensorStore {
 public:
  /// \throws latmix::Error naming the folder/file and what is wrong.
  static TensorStore open(const std::string& path);

  /// The path given to open() (used in error messages).
  const std::string& path() const { return path_; }
  bool contains(std::string_view name) const;
  /// The tensor (zero-copy, read-only: see the file comment).
  /// \throws latmix::Error "<folder>: tensor 'x' missing", or for an unsupported dtype.
  at::Tensor get(std::string_view name) const;
  /// The tensor's bytes as a 1-D uint8 tensor, for any dtype (zero-copy, read-only).
  at::Tensor raw_bytes(std::string_view name) const;
  /// dtype, shape and offsets of a tensor. \throws latmix::Error when missing.
  const TensorInfo& info(std::string_view name) const;
  /// The file that holds a tensor. \throws latmix::Error when missing.
  const SafetensorsFile& file_of(std::string_view name) const;
  /// Every tensor name in storage order: file by file (as files() lists them), by offset.
  std::vector<std::string> names() const;
  /// The names that end with `suffix` (".weight_packed", "_input.weight"), in storage order.
  std::vector<std::string> names_ending_with(std::string_view suffix) const;
  /// Sum of the byte sizes of all tensors.
  uint64_t total_bytes() const;
  /// The safetensors files, in shard order.
  std::vector<std::string> files() const;
  /// Metadata ("__metadata__") of the first file.
  const std::map<std::string, std::string>& metadata() const;

 private:
  struct Entry {
    size_t file;
    const TensorInfo* info;
  };
  const Entry& require(std::string_view name) const;

  std::string path_;
  std::vector<std::shared_ptr<SafetensorsFile>> files_;
  std::map<std::string, Entry, std::less<>> entries_;
};

/// One tensor to write. produce() is called exactly once, in list order, during the write; it
/// must return a tensor of exactly `shape` and of the LibTorch type of `dtype` (any device,
/// any strides: it is made contiguous on the CPU). For a dtype LibTorch lacks (U16, F8_E4M3, F4,
/// F8_E8M0, ...) produce() returns a uint8 tensor holding the raw little-endian bytes instead,
/// of any shape whose element count equals the tensor's byte size (e.g. MXFP4 codes packed two
/// per byte). Mismatches throw latmix::Error naming the file and the tensor.
struct TensorSource {
  std::string name;
  DType dtype = DType::F32;
  std::vector<int64_t> shape;
  std::function<at::Tensor()> produce;
};

/// A TensorSource over an existing tensor (dtype and shape taken from it).
/// \throws latmix::Error if the tensor's type has no safetensors dtype.
TensorSource tensor_source(std::string name, at::Tensor tensor);

/// Writes one safetensors file, streaming and atomically (see the file comment).
/// Tensors are stored back to back in the given order (not sorted by name or dtype); the data
/// area starts 8-byte aligned, so a tensor is aligned when the sizes before it keep it so (list
/// tensors by decreasing element size to guarantee it; readers copy misaligned tensors).
/// Names must be unique and not "__metadata__". `metadata` becomes "__metadata__": transformers refuses checkpoints
/// without {"format": "pt"}, so model exports should pass it.
/// Progress: stage "write", done/total in bytes. Cancel is checked before each tensor.
void write_safetensors(const std::string& path, const std::vector<TensorSource>& tensors,
                       const std::map<std::string, std::string>& metadata = {}, const JobControl& job = {});

/// Convenience: writes in-memory tensors (in the given order).
void write_safetensors(const std::string& path, const std::vector<std::pair<std::string, at::Tensor>>& tensors,
                       const std::map<std::string, std::string>& metadata = {});

/// Writes a model's tensors into `dir` (created if missing), split into shards of at most
/// `max_shard_bytes` of tensor data each (a single larger tensor gets a shard of its own),
/// in the given order. One shard: `dir/model.safetensors`, no index. Several:
/// `model-00001-of-0000N.safetensors`... plus `model.safetensors.index.json` with
/// metadata.total_size and weight_map. Every shard carries `metadata`. All files are written as
/// temp files first and renamed into place only when every one is complete, the index last;
/// on error or cancel nothing new is left in `dir`. Files of an earlier export that the new one
/// does not overwrite (other shard counts) are left alone.
/// Progress: stage "write", done/total in bytes over all shards.
void write_safetensors_sharded(const std::string& dir, const std::vector<TensorSource>& tensors,
                               uint64_t max_shard_bytes, const std::map<std::string, std::string>& metadata = {},
                               const JobControl& job = {});

}  // namespace latmix
