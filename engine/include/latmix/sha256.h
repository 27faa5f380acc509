#pragma once
/// \file sha256.h
/// SHA-256 (FIPS 180-4) without dependencies: file digests for export manifests, bundle
/// verification and model fingerprints. Incremental: update() any number of times, then hex().

#include <array>
#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>

#include "latmix/progress.h"

namespace latmix {

class Sha256 {
 public:
  /// `portable`: the plain C++ compression function even where the CPU has the x86 SHA
  /// extensions (used otherwise, several times faster; both give the same digests).
  explicit Sha256(bool portable = false);
  /// Whether this CPU's SHA extensions are used (unless `portable`).
  static bool accelerated();
  /// Feeds bytes. Any split of a message into update() calls gives the same digest.
  void update(const void* data, size_t size);
  void update(std::string_view text) { update(text.data(), text.size()); }
  /// Finishes and returns the 32-byte digest. The object is then reset to the empty message.
  std::array<uint8_t, 32> digest();
  /// digest() as 64 lower-case hexadecimal characters.
  std::string hex();

 private:
  void reset();
  void compress(const uint8_t* block);
  void compress_blocks(const uint8_t* p, size_t blocks);
  bool portable_ = false;
  std::array<uint32_t, 8> state_;
  std::array<uint8_t, 64> buffer_;
  size_t buffered_ = 0;
  uint64_t length_ = 0;  // message length in bytes
};

/// SHA-256 (hex) of a string.
std::string sha256_hex(std::string_view data);

/// SHA-256 (hex) of a file, read in 1 MiB chunks. `job` (optional) gets stage "hash" with
/// done/total in bytes of this file and is checked for cancel between chunks.
/// \throws latmix::Error naming the file when it cannot be read.
std::string sha256_file(const std::string& path, const JobControl& job = {});

}  // namespace latmix
