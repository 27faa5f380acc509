#pragma once
/// \file memory.h
/// Room: engine/model/ (latmix_engine).
/// What a job needs against what the machine has, checked before the job starts: a model that
/// cannot fit is refused with both numbers instead of being killed (or thrashing) half-way.

#include <ATen/ATen.h>

#include <cstdint>
#include <string>

#include "latmix/config.h"

namespace latmix {

/// Host memory this process can still take without swapping: MemAvailable of /proc/meminfo,
/// narrowed by the cgroup v2 limit of the process (memory.max - memory.current) when one is set.
/// 0 when neither can be read (then nothing is refused). LATMIX_MEMORY_AVAILABLE=N (bytes, or with a
/// K, M or G suffix) replaces the figure: a small machine simulated, for tests of the refusals.
uint64_t host_memory_available();

/// A CUDA device's memory as cudaMemGetInfo reports it, in bytes.
struct DeviceMemory {
  uint64_t free = 0;   ///< free now (after the caching allocator's unused blocks are released)
  uint64_t total = 0;  ///< the device's whole memory
};

/// Free and total memory of a CUDA device, after releasing the caching allocator's unused blocks
/// (so `free` counts them); {0, 0} for the CPU, when this build has no CUDA or the query fails.
DeviceMemory device_memory(at::Device device);

/// What `device` can still take: host_memory_available() for the CPU, device_memory().free else.
uint64_t memory_available(at::Device device);

/// Bytes of every weight of `config` in `dtype` (the model as load_model() holds it in memory).
uint64_t model_weight_bytes(const ModelConfig& config, at::ScalarType dtype);

/// "12.3 GiB" (below 1 GiB: "24.9 MiB")
std::string format_gib(uint64_t bytes);

/// False when LATMIX_NO_MEMORY_CHECK=1 (a machine whose swap or overcommit the estimates do not know).
bool memory_check_enabled();

/// "needs about N GiB of <memory>, M GiB available" when `needed` exceeds what `device` has, else
/// "" (also when availability is unknown or the check is off): check_memory_fits() without throwing,
/// for a step that is left out rather than refused.
std::string memory_shortfall(uint64_t needed, at::Device device);

/// Throws latmix::Error("<what>: needs about N GiB of <memory>, M GiB available ...; <hint>") when
/// `needed` exceeds what `device` has (unknown availability passes). LATMIX_NO_MEMORY_CHECK=1
/// turns the check off (a machine whose swap or overcommit the estimate does not know).
void check_memory_fits(const std::string& what, uint64_t needed, at::Device device, const std::string& hint);

}  // namespace latmix
