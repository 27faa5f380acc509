// Memory available against memory needed, before a job starts (latmix/memory.h).
#include "latmix/memory.h"

#include <cctype>
#include <cstdio>
#include <cstdlib>
#include <fstream>
#include <sstream>
#include <string>

#if defined(LATMIX_WITH_CUDA)
#include <c10/cuda/CUDACachingAllocator.h>
#include <cuda_runtime_api.h>
#endif

#include "latmix/error.h"

namespace latmix {

namespace {

// The first line of a small file, or "" when it cannot be read.
std::string first_line(const char* path) {
  std::ifstream in(path);
  std::string line;
  if (in) std::getline(in, line);
  return line;
}

bool parse_u64(const std::string& s, uint64_t& out) {
  if (s.empty() || s.find_first_not_of("0123456789") != std::string::npos) return false;
  try {
    out = std::stoull(s);
  } catch (const std::exception&) {
    return false;
  }
  return true;
}

// The cgroup (v2) of this process, as "/sys/fs/cgroup<path>", from /proc/self/cgroup ("0::<path>").
std::string cgroup_dir() {
  std::ifstream in("/proc/self/cgroup");
  std::string line;
  while (std::getline(in, line)) {
    if (line.rfind("0::", 0) == 0) return "/sys/fs/cgroup" + line.substr(3);
  }
  return "";
}

// LATMIX_MEMORY_AVAILABLE: bytes, or a number with a K, M or G suffix (powers of 1024); 0 when unset or bad.
uint64_t simulated_limit() {
  const char* v = std::getenv("LATMIX_MEMORY_AVAILABLE");
  if (v == nullptr) return 0;
  std::string s(v);
  uint64_t scale = 1;
  if (!s.empty()) {
    const char unit = static_cast<char>(std::toupper(static_cast<unsigned char>(s.back())));
    const uint64_t shift = unit == 'K' ? 10 : unit == 'M' ? 20 : unit == 'G' ? 30 : 0;
    if (shift != 0) {
      scale = uint64_t(1) << shift;
      s.pop_back();
    }
  }
  uint64_t n = 0;
  return parse_u64(s, n) ? n * scale : 0;
}

}  // namespace

uint64_t host_memory_available() {
  if (const uint64_t simulated = simulated_limit(); simulated > 0) return simulated;
  uint64_t available = 0;
  std::ifstream in("/proc/meminfo");
  std::string key;
  uint64_t kb = 0;
  std::string unit;
  while (in >> key >> kb) {
    std::getline(in, unit);
    if (key == "MemAvailable:") {
      available = kb * 1024;
      break;
    }
  }
  const std::string dir = cgroup_dir();
  uint64_t limit = 0, current = 0;
  if (!dir.empty() && parse_u64(first_line((dir + "/memory.max").c_str()), limit) &&
      parse_u64(first_line((dir + "/memory.current").c_str()), current)) {
    const uint64_t left = limit > current ? limit - current : 0;
    if (available == 0 || left < available) available = left;
  }
  return available;
}

DeviceMemory device_memory(at::Device device) {
  DeviceMemory m;
#if defined(LATMIX_WITH_CUDA)
  if (device.is_cuda()) {
    c10::cuda::CUDACachingAllocator::emptyCache();
    size_t free = 0, total = 0;
    if (cudaMemGetInfo(&free, &total) == cudaSuccess) {
      m.free = free;
      m.total = total;
    }
  }
#else
  (void)device;
#endif
  return m;
}

uint64_t memory_available(at::Device device) {
  return device.is_cpu() ? host_memory_available() : device_memory(device).free;
}

uint64_t model_weight_bytes(const ModelConfig& config, at::ScalarType dtype) {
  return static_cast<uint64_t>(config.parameter_count()) * c10::elementSize(dtype);
}

std::string format_gib(uint64_t bytes) {
  char buf[32];
  const double mib = static_cast<double>(bytes) / (1024.0 * 1024);
  if (mib < 1024) {
    std::snprintf(buf, sizeof buf, "%.1f MiB", mib);
  } else {
    std::snprintf(buf, sizeof buf, "%.1f GiB", mib / 1024);
  }
  return buf;
}

bool memory_check_enabled() {
  const char* off = std::getenv("LATMIX_NO_MEMORY_CHECK");
  return !(off != nullptr && std::string(off) == "1");
}

std::string memory_shortfall(uint64_t needed, at::Device device) {
  if (!memory_check_enabled()) return "";
  const uint64_t available = memory_available(device);
  if (available == 0 || needed <= available) return "";
  const std::string where = !device.is_cpu()       ? "memory on " + device.str()
                            : simulated_limit() > 0 ? "host memory (LATMIX_MEMORY_AVAILABLE)"
                                                    : "host memory (MemAvailable)";
  return "needs about " + format_gib(needed) + " of " + where + ", " + format_gib(available) + " available";
}

void check_memory_fits(const std::string& what, uint64_t needed, at::Device device, const std::string& hint) {
  const std::string shortfall = memory_shortfall(needed, device);
  if (shortfall.empty()) return;
  throw Error(what + ": " + shortfall + "; nothing was started" + (hint.empty() ? "" : ". " + hint) +
              " (LATMIX_NO_MEMORY_CHECK=1 skips this check)");
}

}  // namespace latmix
