// GGUF v3 files (latmix/gguf.h): the writer and the header reader.
#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>

#include "latmix/error.h"
#include "latmix/files.h"
#include "latmix/gguf.h"
#include "latmix/mx.h"
#include "latmix/tensor_io.h"

namespace latmix {

namespace {

constexpr uint32_t kVersion = 3;
constexpr uint64_t kAlignment = 32;
// A header larger than this is refused by the reader (a corrupt count would otherwise allocate
// without bound); llama.cpp vocabularies of 256k tokens stay far below it.
constexpr uint64_t kMaxCount = 1ull << 24;

uint64_t align_up(uint64_t x) {
  return (x + kAlignment - 1) / kAlignment * kAlignment;
}

// ---- header bytes ------------------------------------------------------------------------------

template <typename T>
void put(std::string& out, T v) {
  char b[sizeof(T)];
  std::memcpy(b, &v, sizeof(T));
  out.append(b, sizeof(T));
}

void put_string(std::string& out, const std::string& s) {
  put<uint64_t>(out, s.size());
  out += s;
}

void put_scalar(std::string& out, GgufType type, const nlohmann::json& v, const std::string& key) {
  switch (type) {
    case GgufType::U8:
      put<uint8_t>(out, v.get<uint8_t>());
      break;
    case GgufType::I8:
      put<int8_t>(out, v.get<int8_t>());
      break;
    case GgufType::U16:
      put<uint16_t>(out, v.get<uint16_t>());
      break;
    case GgufType::I16:
      put<int16_t>(out, v.get<int16_t>());
      break;
    case GgufType::U32:
      put<uint32_t>(out, v.get<uint32_t>());
      break;
    case GgufType::I32:
      put<int32_t>(out, v.get<int32_t>());
      break;
    case GgufType::F32:
      put<float>(out, v.get<float>());
      break;
    case GgufType::BOOL:
      put<uint8_t>(out, v.get<bool>() ? 1 : 0);
      break;
    case GgufType::STRING:
      put_string(out, v.get<std::string>());
      break;
    case GgufType::U64:
      put<uint64_t>(out, v.get<uint64_t>());
      break;
    case GgufType::I64:
      put<int64_t>(out, v.get<int64_t>());
      break;
    case GgufType::F64:
      put<double>(out, v.get<double>());
      break;
    case GgufType::ARRAY:
      fail("", "GGUF key " + key, "no nested arrays");
  }
}

std::string header_bytes(const std::vector<GgufKeyValue>& metadata, const std::vector<GgufTensorSource>& tensors,
                         const std::vector<uint64_t>& offsets) {
  std::string out = "GGUF";
  put<uint32_t>(out, kVersion);
  put<uint64_t>(out, tensors.size());
  put<uint64_t>(out, metadata.size() + 1);
  put_string(out, "general.alignment");
  put<uint32_t>(out, static_cast<uint32_t>(GgufType::U32));
  put<uint32_t>(out, static_cast<uint32_t>(kAlignment));
  for (const GgufKeyValue& kv : metadata) {
    put_string(out, kv.key);
    put<uint32_t>(out, static_cast<uint32_t>(kv.type));
    if (kv.type == GgufType::ARRAY) {
      put<uint32_t>(out, static_cast<uint32_t>(kv.element_type));
      put<uint64_t>(out, kv.value.size());
      for (const auto& e : kv.value) put_scalar(out, kv.element_type, e, kv.key);
    } else {
      put_scalar(out, kv.type, kv.value, kv.key);
    }
  }
  for (size_t i = 0; i < tensors.size(); ++i) {
    put_string(out, tensors[i].name);
    put<uint32_t>(out, static_cast<uint32_t>(tensors[i].ne.size()));
    for (int64_t n : tensors[i].ne) put<uint64_t>(out, static_cast<uint64_t>(n));
    put<uint32_t>(out, static_cast<uint32_t>(tensors[i].type));
    put<uint64_t>(out, offsets[i]);
  }
  out.resize(align_up(out.size()), '\0');
  return out;
}

uint64_t elements(const std::vector<int64_t>& ne) {
  uint64_t n = 1;
  for (int64_t d : ne) n *= static_cast<uint64_t>(d);
  return n;
}

// ---- reading -----------------------------------------------------------------------------------

class Reader {
 public:
  Reader(std::string path, int fd, uint64_t size) : path_(std::move(path)), fd_(fd), size_(size) {}
  uint64_t pos() const { return pos_; }
  void read(void* dst, uint64_t n, const char* what) {
    if (n > size_ - std::min(pos_, size_)) {
      fail(path_, std::string("truncated GGUF header at offset ") + std::to_string(pos_), what, "end of file");
    }
    auto* p = static_cast<char*>(dst);
    uint64_t left = n;
    while (left > 0) {
      const ssize_t got = ::pread(fd_, p, left, static_cast<off_t>(pos_));
      if (got < 0 && errno == EINTR) continue;
      if (got <= 0) fail(path_, std::string("read failed: ") + std::strerror(errno));
      p += got;
      pos_ += static_cast<uint64_t>(got);
      left -= static_cast<uint64_t>(got);
    }
  }
  template <typename T>
  T get(const char* what) {
    T v;
    read(&v, sizeof(T), what);
    return v;
  }
  std::string string(const char* what) {
    const uint64_t n = get<uint64_t>(what);
    if (n > size_)
      fail(path_, "GGUF string at offset " + std::to_string(pos_), "a length inside the file", std::to_string(n));
    std::string s(n, '\0');
    read(s.data(), n, what);
    return s;
  }
  nlohmann::json scalar(GgufType type, const std::string& key) {
    switch (type) {
      case GgufType::U8:
        return get<uint8_t>("u8");
      case GgufType::I8:
        return get<int8_t>("i8");
      case GgufType::U16:
        return get<uint16_t>("u16");
      case GgufType::I16:
        return get<int16_t>("i16");
      case GgufType::U32:
        return get<uint32_t>("u32");
      case GgufType::I32:
        return get<int32_t>("i32");
      case GgufType::F32:
        return get<float>("f32");
      case GgufType::BOOL:
        return get<uint8_t>("bool") != 0;
      case GgufType::STRING:
        return string("string");
      case GgufType::U64:
        return get<uint64_t>("u64");
      case GgufType::I64:
        return get<int64_t>("i64");
      case GgufType::F64:
        return get<double>("f64");
      case GgufType::ARRAY:
        break;
    }
    fail(path_, "GGUF key " + key + " at offset " + std::to_string(pos_), "a scalar value type (0-12, not 9)",
         std::to_string(static_cast<uint32_t>(type)));
  }
  uint64_t size() const { return size_; }
  const std::string& path() const { return path_; }

 private:
  std::string path_;
  int fd_;
  uint64_t size_;
  uint64_t pos_ = 0;
};

GgufType value_type(Reader& r, const std::string& key) {
  const uint32_t t = r.get<uint32_t>("value type");
  if (t > 12) fail(r.path(), "GGUF key " + key, "a value type 0-12", std::to_string(t));
  return static_cast<GgufType>(t);
}

GgmlType tensor_type(Reader& r, const std::string& name) {
  const uint32_t t = r.get<uint32_t>("tensor type");
  for (GgmlType k : {GgmlType::F32, GgmlType::F16, GgmlType::BF16, GgmlType::MXFP4}) {
    if (t == static_cast<uint32_t>(k)) return k;
  }
  fail(r.path(), "GGUF tensor " + name, "type F32 (0), F16 (1), BF16 (30) or MXFP4 (39)", std::to_string(t));
}

struct Fd {
  int fd;
  ~Fd() {
    if (fd >= 0) ::close(fd);
  }
};

}  // namespace

std::string to_string(GgmlType type) {
  switch (type) {
    case GgmlType::F32:
      return "F32";
    case GgmlType::F16:
      return "F16";
    case GgmlType::BF16:
      return "BF16";
    case GgmlType::MXFP4:
      return "MXFP4";
  }
  return "?";
}

uint64_t ggml_byte_size(GgmlType type, uint64_t n) {
  switch (type) {
    case GgmlType::F32:
      return n * 4;
    case GgmlType::F16:
    case GgmlType::BF16:
      return n * 2;
    case GgmlType::MXFP4:
      return n / 32 * 17;
  }
  return 0;
}

void write_gguf(const std::string& path, const std::vector<GgufKeyValue>& metadata,
                const std::vector<GgufTensorSource>& tensors, const JobControl& job) {
  std::vector<uint64_t> offsets;
  uint64_t data = 0;
  for (const GgufTensorSource& t : tensors) {
    if (t.type == GgmlType::MXFP4 && (t.ne.empty() || t.ne[0] % 32 != 0)) {
      fail(path, "GGUF tensor " + t.name, "ne[0] a multiple of 32 for MXFP4",
           std::to_string(t.ne.empty() ? 0 : t.ne[0]));
    }
    offsets.push_back(data);
    data = align_up(data + ggml_byte_size(t.type, elements(t.ne)));
  }
  const std::string header = header_bytes(metadata, tensors, offsets);
  AtomicFile file(path);  // complete or not at all; a failure or cancel leaves nothing behind
  file.write(header.data(), header.size());
  const int64_t total = static_cast<int64_t>(header.size() + data);
  uint64_t done = 0;
  job.report("write", static_cast<int64_t>(header.size()), total);
  static const char kZeros[kAlignment] = {};
  for (size_t i = 0; i < tensors.size(); ++i) {
    job.cancel.check();
    const GgufTensorSource& t = tensors[i];
    const at::Tensor bytes = t.produce().contiguous();
    const uint64_t want = ggml_byte_size(t.type, elements(t.ne));
    const uint64_t got = static_cast<uint64_t>(bytes.numel()) * bytes.element_size();
    if (got != want) {
      fail(path, "GGUF tensor " + t.name + " (" + to_string(t.type) + ")", std::to_string(want) + " bytes",
           std::to_string(got) + " bytes");
    }
    const at::Tensor cpu = bytes.to(at::kCPU);
    file.write(cpu.data_ptr(), got);
    done = offsets[i] + got;
    const uint64_t next = align_up(done);
    file.write(kZeros, next - done);
    done = next;
    job.report("write", static_cast<int64_t>(header.size() + done), total);
  }
  file.commit();
}

const GgufKeyValue* GgufFile::find(const std::string& key) const {
  for (const auto& kv : metadata) {
    if (kv.key == key) return &kv;
  }
  return nullptr;
}

const GgufTensorInfo* GgufFile::tensor(const std::string& name) const {
  for (const auto& t : tensors) {
    if (t.name == name) return &t;
  }
  return nullptr;
}

GgufFile read_gguf(const std::string& path) {
  Fd fd{open_regular_file(path)};
  struct stat st {};
  if (::fstat(fd.fd, &st) != 0) fail(path, std::string("cannot stat: ") + std::strerror(errno));
  Reader r(path, fd.fd, static_cast<uint64_t>(st.st_size));
  char magic[4];
  r.read(magic, 4, "the magic GGUF");
  if (std::memcmp(magic, "GGUF", 4) != 0) fail(path, "not a GGUF file", "magic GGUF", std::string(magic, 4));
  GgufFile f;
  f.path = path;
  f.version = r.get<uint32_t>("version");
  if (f.version != kVersion) fail(path, "GGUF version", "3", std::to_string(f.version));
  const uint64_t n_tensors = r.get<uint64_t>("tensor count");
  const uint64_t n_kv = r.get<uint64_t>("key/value count");
  if (n_tensors > kMaxCount || n_kv > kMaxCount) {
    fail(path, "GGUF counts", "at most " + std::to_string(kMaxCount),
         std::to_string(n_tensors) + " tensors, " + std::to_string(n_kv) + " keys");
  }
  uint64_t alignment = kAlignment;
  for (uint64_t i = 0; i < n_kv; ++i) {
    GgufKeyValue kv;
    kv.key = r.string("key");
    kv.type = value_type(r, kv.key);
    if (kv.type == GgufType::ARRAY) {
      kv.element_type = value_type(r, kv.key);
      const uint64_t n = r.get<uint64_t>("array length");
      if (n > r.size()) fail(path, "GGUF key " + kv.key, "an array length inside the file", std::to_string(n));
      kv.value = nlohmann::json::array();
      for (uint64_t j = 0; j < n; ++j) kv.value.push_back(r.scalar(kv.element_type, kv.key));
    } else {
      kv.value = r.scalar(kv.type, kv.key);
    }
    if (kv.key == "general.alignment") alignment = kv.value.get<uint64_t>();
    f.metadata.push_back(std::move(kv));
  }
  if (alignment == 0 || (alignment & (alignment - 1)) != 0)
    fail(path, "general.alignment", "a power of two", std::to_string(alignment));
  for (uint64_t i = 0; i < n_tensors; ++i) {
    GgufTensorInfo t;
    t.name = r.string("tensor name");
    const uint32_t dims = r.get<uint32_t>("dimension count");
    if (dims == 0 || dims > 4) fail(path, "GGUF tensor " + t.name, "1 to 4 dimensions", std::to_string(dims));
    uint64_t n = 1;
    for (uint32_t d = 0; d < dims; ++d) {
      const uint64_t v = r.get<uint64_t>("dimension");
      if (v == 0 || v > r.size() * 2 || n > r.size() * 2)
        fail(path, "GGUF tensor " + t.name, "a plausible dimension", std::to_string(v));
      t.ne.push_back(static_cast<int64_t>(v));
      n *= v;
    }
    t.type = tensor_type(r, t.name);
    if (t.type == GgmlType::MXFP4 && t.ne[0] % 32 != 0)
      fail(path, "GGUF tensor " + t.name, "ne[0] a multiple of 32", std::to_string(t.ne[0]));
    t.offset = r.get<uint64_t>("tensor offset");
    t.bytes = ggml_byte_size(t.type, n);
    f.tensors.push_back(std::move(t));
  }
  f.data_offset = (r.pos() + alignment - 1) / alignment * alignment;
  for (GgufTensorInfo& t : f.tensors) {
    if (t.offset % alignment != 0)
      fail(path, "GGUF tensor " + t.name, "an offset aligned to " + std::to_string(alignment),
           std::to_string(t.offset));
    t.offset += f.data_offset;
    if (t.offset > r.size() || t.bytes > r.size() - t.offset) {
      fail(path, "GGUF tensor " + t.name, "data inside the file (" + std::to_string(r.size()) + " bytes)",
           "bytes " + std::to_string(t.offset) + " + " + std::to_string(t.bytes));
    }
  }
  return f;
}

at::Tensor read_gguf_bytes(const GgufFile& file, const GgufTensorInfo& info) {
  Fd fd{open_regular_file(file.path)};
  at::Tensor out = at::empty({static_cast<int64_t>(info.bytes)}, at::kByte);
  auto* p = static_cast<char*>(out.data_ptr());
  uint64_t done = 0;
  while (done < info.bytes) {
    const ssize_t got = ::pread(fd.fd, p + done, info.bytes - done, static_cast<off_t>(info.offset + done));
    if (got < 0 && errno == EINTR) continue;
    if (got <= 0)
      fail(file.path, "GGUF tensor " + info.name, "its bytes", got == 0 ? "end of file" : std::strerror(errno));
    done += static_cast<uint64_t>(got);
  }
  return out;
}

at::Tensor read_gguf_tensor(const GgufFile& file, const GgufTensorInfo& info) {
  std::vector<int64_t> shape(info.ne.rbegin(), info.ne.rend());
  const at::Tensor bytes = read_gguf_bytes(file, info);
  switch (info.type) {
    case GgmlType::F32:
      return bytes.view(at::kFloat).reshape(shape).clone();
    case GgmlType::F16:
      return bytes.view(at::kHalf).reshape(shape).to(at::kFloat);
    case GgmlType::BF16:
      return bytes.view(at::kBFloat16).reshape(shape).to(at::kFloat);
    case GgmlType::MXFP4:
      return gguf_mxfp4_decode(bytes.reshape({-1, 17}), shape);
  }
  return {};
}

}  // namespace latmix
