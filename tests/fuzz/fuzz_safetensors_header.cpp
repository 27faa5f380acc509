// Fuzz target: the safetensors header parser must reject any input with a latmix::Error and
// never crash, hang or read out of bounds. Two views of each input: as a whole file, and (when
// the input is long enough) as a file that claims to be larger than the bytes available, to
// exercise the offset checks against a data area that was not read.
#include <cstddef>
#include <cstdint>
#include <cstring>

#include "latmix/error.h"
#include "latmix/safetensors.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  try {
    const latmix::SafetensorsHeader header = latmix::parse_safetensors_header(data, size, size, "fuzz.safetensors");
    // A valid header must describe itself consistently.
    uint64_t covered = 0;
    for (const auto& t : header.tensors) {
      if (header.find(t.name) == nullptr || t.begin != covered || t.end < t.begin) __builtin_trap();
      covered = t.end;
      (void)t.numel();
    }
    if (covered != header.data_size || header.data_start + header.data_size != size) __builtin_trap();
    // Rebuilding the header from what was parsed must give a header that parses the same way.
    std::string rebuilt;
    try {
      rebuilt = latmix::build_safetensors_header(header.tensors, header.metadata, "fuzz");
    } catch (const latmix::Error&) {
      return 0;  // e.g. the compact form exceeds the size cap: not a parser bug
    }
    try {
      const auto* bytes = reinterpret_cast<const uint8_t*>(rebuilt.data());
      const auto again =
          latmix::parse_safetensors_header(bytes, rebuilt.size(), rebuilt.size() + header.data_size, "fuzz");
      if (again.tensors.size() != header.tensors.size() || again.metadata != header.metadata) {
        __builtin_trap();
      }
    } catch (const latmix::Error&) {
      __builtin_trap();
    }
  } catch (const latmix::Error&) {
  }
  if (size >= 16) {
    // The last 8 bytes give a claimed file size; the rest is the header prefix that was read.
    uint64_t claimed = 0;
    std::memcpy(&claimed, data + size - 8, 8);
    try {
      latmix::parse_safetensors_header(data, size - 8, claimed, "fuzz.safetensors");
    } catch (const latmix::Error&) {
    }
  }
  return 0;
}
