// glibc's malloc set for tensors (latmix/malloc_tuning.h).
#include "latmix/malloc_tuning.h"

#include <cstdlib>

#if defined(__GLIBC__)
#include <malloc.h>
#endif

namespace latmix {

void tune_malloc_for_tensors() {
#if defined(__GLIBC__)
  if (std::getenv("LATMIX_MALLOC_DEFAULTS") != nullptr) return;  // glibc's own, for comparison
  const auto unless_set = [](const char* variable, int option, int value) {
    if (std::getenv(variable) == nullptr) ::mallopt(option, value);
  };
  unless_set("MALLOC_ARENA_MAX", M_ARENA_MAX, 1);
  unless_set("MALLOC_MMAP_THRESHOLD_", M_MMAP_THRESHOLD, 32 << 20);
  unless_set("MALLOC_TRIM_THRESHOLD_", M_TRIM_THRESHOLD, 512 << 20);
#endif
}

}  // namespace latmix
