#pragma once
/// \file sha256.h
/// Room: engine/base/ (latmix_core, no LibTorch).
/// SHA-256 (FIPS 180-4) through OpenSSL's libcrypto (EVP): file digests for export manifests, bundle
/// verification and model fingerprints. Incremental: update() any number of times, then hex().
/// OpenSSL picks the CPU's fastest path (the x86 SHA extensions, AVX2, ARMv8 crypto) at run time.

#include <array>
#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>

#include "latmix/progress.h"

struct evp_md_ctx_st;  // OpenSSL's EVP_MD_CTX, kept out of this header

namespace latmix {

class Sha256 {
 public:
  /// \throws latmix::Error when OpenSSL cannot set up a SHA-256 context (out of memory).
  Sha256();
  ~Sha256();
  Sha256(Sha256&& other) noexcept;
  Sha256& operator=(Sha256&& other) noexcept;
  Sha256(const Sha256&) = delete;
  Sha256& operator=(const Sha256&) = delete;

  /// Feeds bytes. Any split of a message into update() calls gives the same digest.
  void update(const void* data, size_t size);
  void update(std::string_view text) { update(text.data(), text.size()); }
  /// Finishes and returns the 32-byte digest. The object is then reset to the empty message.
  std::array<uint8_t, 32> digest();
  /// digest() as 64 lower-case hexadecimal characters.
  std::string hex();

 private:
  evp_md_ctx_st* ctx_ = nullptr;
};

/// SHA-256 (hex) of a string.
std::string sha256_hex(std::string_view data);

/// SHA-256 (hex) of a file, read in 1 MiB chunks. `job` (optional) gets stage "hash" with
/// done/total in bytes of this file and is checked for cancel between chunks.
/// \throws latmix::Error naming the file when it cannot be read.
std::string sha256_file(const std::string& path, const JobControl& job = {});

}  // namespace latmix
