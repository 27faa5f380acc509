// SHA-256 through OpenSSL's EVP interface (libcrypto), which selects the CPU's fastest
// implementation; ours (portable C++ plus an x86 SHA-extension path) hashed about 6x slower
// (docs/benchmarks.md).
#include "latmix/sha256.h"

#include <openssl/evp.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <utility>
#include <vector>

#include "latmix/error.h"
#include "latmix/files.h"

namespace latmix {

namespace {

[[noreturn]] void openssl_failed(const char* call) {
  fail("", std::string("SHA-256: OpenSSL ") + call + " failed");
}

void init(EVP_MD_CTX* ctx) {
  if (EVP_DigestInit_ex(ctx, EVP_sha256(), nullptr) != 1) openssl_failed("EVP_DigestInit_ex");
}

}  // namespace

Sha256::Sha256() : ctx_(EVP_MD_CTX_new()) {
  if (ctx_ == nullptr) openssl_failed("EVP_MD_CTX_new");
  try {
    init(ctx_);
  } catch (...) {
    EVP_MD_CTX_free(ctx_);
    throw;
  }
}

Sha256::~Sha256() {
  EVP_MD_CTX_free(ctx_);  // accepts nullptr (a moved-from object)
}

Sha256::Sha256(Sha256&& other) noexcept : ctx_(std::exchange(other.ctx_, nullptr)) {}

Sha256& Sha256::operator=(Sha256&& other) noexcept {
  if (this != &other) {
    EVP_MD_CTX_free(ctx_);
    ctx_ = std::exchange(other.ctx_, nullptr);
  }
  return *this;
}

void Sha256::update(const void* data, size_t size) {
  if (size == 0) return;
  if (EVP_DigestUpdate(ctx_, data, size) != 1) openssl_failed("EVP_DigestUpdate");
}

std::array<uint8_t, 32> Sha256::digest() {
  std::array<uint8_t, 32> out{};
  unsigned int n = 0;
  if (EVP_DigestFinal_ex(ctx_, out.data(), &n) != 1 || n != out.size()) openssl_failed("EVP_DigestFinal_ex");
  init(ctx_);
  return out;
}

std::string Sha256::hex() {
  static const char* digits = "0123456789abcdef";
  std::string s;
  s.reserve(64);
  for (uint8_t b : digest()) {
    s.push_back(digits[b >> 4]);
    s.push_back(digits[b & 15]);
  }
  return s;
}

std::string sha256_hex(std::string_view data) {
  Sha256 h;
  h.update(data);
  return h.hex();
}

std::string sha256_file(const std::string& path, const JobControl& job) {
  const int fd = open_regular_file(path);  // a FIFO would block forever
  struct stat st {};
  const int64_t total = ::fstat(fd, &st) == 0 ? static_cast<int64_t>(st.st_size) : 0;
  Sha256 h;
  std::vector<char> chunk(1 << 20);
  int64_t done = 0;
  try {
    for (;;) {
      job.cancel.check();
      const ssize_t n = ::read(fd, chunk.data(), chunk.size());
      if (n < 0) {
        if (errno == EINTR) continue;
        fail(path, std::string("read error: ") + std::strerror(errno));
      }
      if (n == 0) break;
      h.update(chunk.data(), static_cast<size_t>(n));
      done += n;
      job.report("hash", done, total);
    }
  } catch (...) {
    ::close(fd);
    throw;
  }
  ::close(fd);
  return h.hex();
}

}  // namespace latmix
