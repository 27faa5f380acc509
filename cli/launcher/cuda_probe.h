#pragma once
// Whether a GPU can be used, asked of the CUDA driver (libcuda.so.1, loaded with dlopen) instead
// of LibTorch, so that `latmix --version` of a CUDA LibTorch build starts no engine (issue 20).

namespace latmix::launcher {

/// True when libcuda.so.1 loads, cuInit succeeds, it sees at least one device and the driver is
/// at least `runtime_version` (cudaRuntimeGetVersion's number, 12080 for 12.8: an older driver
/// cannot run that runtime, and LibTorch then reports no GPU either).
bool cuda_device_usable(long runtime_version);

}  // namespace latmix::launcher
