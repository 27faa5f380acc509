// The CUDA driver asked directly (cuda_probe.h). The three entry points are declared here with
// the driver API's C types so that no CUDA header is needed to build the launcher.
#include "cuda_probe.h"

#include <dlfcn.h>

namespace latmix::launcher {

bool cuda_device_usable(long runtime_version) {
  void* lib = ::dlopen("libcuda.so.1", RTLD_LAZY | RTLD_LOCAL);
  if (!lib) return false;
  using InitFn = int (*)(unsigned int);
  using IntOutFn = int (*)(int*);
  const auto init = reinterpret_cast<InitFn>(::dlsym(lib, "cuInit"));
  const auto count_fn = reinterpret_cast<IntOutFn>(::dlsym(lib, "cuDeviceGetCount"));
  const auto driver_fn = reinterpret_cast<IntOutFn>(::dlsym(lib, "cuDriverGetVersion"));
  int count = 0, driver = 0;
  const bool ok = init && count_fn && driver_fn && init(0) == 0 && count_fn(&count) == 0 && count > 0 &&
                  driver_fn(&driver) == 0 && driver >= runtime_version;
  // The library stays loaded: unloading a driver that was initialized is not supported.
  return ok;
}

}  // namespace latmix::launcher
