#include <fcntl.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>

#include "latmix/error.h"
#include "latmix/tensor_io.h"

#if !defined(__BYTE_ORDER__) || __BYTE_ORDER__ != __ORDER_LITTLE_ENDIAN__
#error "safetensors data is little-endian; big-endian hosts are not supported"
#endif

namespace latmix {

struct SafetensorsFile::Mapping {
  const uint8_t* bytes = nullptr;
  size_t size = 0;
  Mapping() = default;
  Mapping(const Mapping&) = delete;
  Mapping& operator=(const Mapping&) = delete;
  ~Mapping() {
    if (bytes != nullptr) ::munmap(const_cast<uint8_t*>(bytes), size);
  }
};

namespace {

class FileDescriptor {
 public:
  explicit FileDescriptor(int fd) : fd_(fd) {}
  FileDescriptor(const FileDescriptor&) = delete;
  FileDescriptor& operator=(const FileDescriptor&) = delete;
  ~FileDescriptor() {
    if (fd_ >= 0) ::close(fd_);
  }
  int get() const { return fd_; }

 private:
  int fd_;
};

std::string errno_text() {
  return std::strerror(errno);
}

std::string label(std::string_view name) {
  return "tensor '" + std::string(name) + "'";
}

}  // namespace

std::shared_ptr<SafetensorsFile> SafetensorsFile::open(const std::string& path) {
  // O_NONBLOCK: a FIFO is refused below instead of blocking open() until a writer appears.
  FileDescriptor fd(::open(path.c_str(), O_RDONLY | O_NONBLOCK | O_CLOEXEC));
  if (fd.get() < 0) fail(path, "cannot open safetensors file", "a readable file", errno_text());
  struct stat st {};
  if (::fstat(fd.get(), &st) != 0) fail(path, "cannot stat safetensors file", "", errno_text());
  if (!S_ISREG(st.st_mode)) fail(path, "not a safetensors file", "a regular file", "not one");
  const auto size = static_cast<uint64_t>(st.st_size);

  auto file = std::shared_ptr<SafetensorsFile>(new SafetensorsFile());
  file->path_ = path;
  if (size < 8) {  // mmap cannot map an empty file; let the parser word the error
    uint8_t head[8] = {};
    const ssize_t got = ::pread(fd.get(), head, sizeof head, 0);
    parse_safetensors_header(head, got > 0 ? static_cast<size_t>(got) : 0, size, path);
  }
  void* addr = ::mmap(nullptr, size, PROT_READ, MAP_PRIVATE, fd.get(), 0);
  if (addr == MAP_FAILED) fail(path, "cannot map safetensors file", "", errno_text());
  auto mapping = std::make_shared<Mapping>();
  mapping->bytes = static_cast<const uint8_t*>(addr);
  mapping->size = size;
  file->header_ = parse_safetensors_header(mapping->bytes, mapping->size, size, path);
  file->mapping_ = std::move(mapping);
  return file;
}

uint64_t SafetensorsFile::file_size() const {
  return mapping_->size;
}

const TensorInfo& SafetensorsFile::require(std::string_view name) const {
  const TensorInfo* info = header_.find(name);
  if (info == nullptr) fail(path_, label(name) + " missing");
  return *info;
}

at::Tensor SafetensorsFile::tensor(std::string_view name) const {
  const TensorInfo& info = require(name);
  const auto type = to_torch_dtype(info.dtype);
  if (!type) {
    fail(path_, label(name) + ": dtype " + std::string(dtype_name(info.dtype)) + " not supported by this LibTorch",
         "BOOL, U8, I8, I16, I32, I64, F16, BF16, F32, F64 or C64",
         std::string(dtype_name(info.dtype)) + " (raw_bytes() reads it as uint8)");
  }
  const auto options = at::TensorOptions().dtype(*type);
  if (info.byte_size() == 0) return at::empty(info.shape, options);

  const uint8_t* data = mapping_->bytes + header_.data_start + info.begin;
  const auto align = std::min<size_t>(c10::elementSize(*type), 8);
  if (reinterpret_cast<uintptr_t>(data) % align != 0) {
    // Misaligned in the file (the format allows any offset): typed access would be undefined.
    at::Tensor copy = at::empty(info.shape, options);
    std::memcpy(copy.data_ptr(), data, info.byte_size());
    return copy;
  }
  auto keep = mapping_;
  return at::from_blob(
      const_cast<uint8_t*>(data), info.shape, [keep](void*) mutable { keep.reset(); }, options);
}

at::Tensor SafetensorsFile::raw_bytes(std::string_view name) const {
  const TensorInfo& info = require(name);
  const auto size = static_cast<int64_t>(info.byte_size());
  if (size == 0) return at::empty({0}, at::kByte);
  auto keep = mapping_;
  return at::from_blob(
      const_cast<uint8_t*>(mapping_->bytes + header_.data_start + info.begin), {size},
      [keep](void*) mutable { keep.reset(); }, at::kByte);
}

}  // namespace latmix
