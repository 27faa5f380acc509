// SHA-256 throughput of latmix::sha256_file (what every export and verification runs on every file)
// and of Sha256::update on a buffer in memory (never gates CI).
//
//   bench_sha256 FILE [PASSES]      defaults: 3 passes
//
// The file is read once before timing (so the page cache holds it: the figure is the hash, not the
// disk); each pass hashes it whole with sha256_file; the best pass is reported. Then the same number
// of bytes (at most 1 GiB) is hashed from memory in 1 MiB update() calls. Both figures are given
// per second of wall time and per second of this process's CPU time (user + system): on a machine
// that other jobs load, the second says what the code costs. Prints the digest so that two builds
// can be compared.
#include <sys/stat.h>
#include <time.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <string>
#include <vector>

#include "latmix/sha256.h"

namespace {

double cpu_seconds() {
  timespec t{};
  ::clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &t);
  return static_cast<double>(t.tv_sec) + 1e-9 * static_cast<double>(t.tv_nsec);
}

// Best wall and CPU seconds over `passes` runs of `f`.
template <typename F>
void time_best(int passes, F&& f, double& wall, double& cpu) {
  wall = cpu = 1e300;
  for (int i = 0; i < passes; ++i) {
    const auto t0 = std::chrono::steady_clock::now();
    const double c0 = cpu_seconds();
    f();
    cpu = std::min(cpu, cpu_seconds() - c0);
    wall = std::min(wall, std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count());
  }
}

void report(const char* what, double bytes, double wall, double cpu, int passes, const std::string& digest) {
  std::printf("%s: %.0f MiB, best of %d: %.3f s wall (%.2f GB/s), %.3f s CPU (%.2f GB/s)  %s\n", what,
              bytes / (1 << 20), passes, wall, bytes / wall / 1e9, cpu, bytes / cpu / 1e9, digest.c_str());
}

}  // namespace

int main(int argc, char** argv) {
  if (argc < 2) {
    std::fprintf(stderr, "usage: bench_sha256 FILE [PASSES]\n");
    return 2;
  }
  const std::string path = argv[1];
  const int passes = argc > 2 ? std::max(1, std::atoi(argv[2])) : 3;
  struct stat st {};
  if (::stat(path.c_str(), &st) != 0) {
    std::perror(path.c_str());
    return 1;
  }
  const double bytes = static_cast<double>(st.st_size);
  const std::string digest = latmix::sha256_file(path);  // warm the page cache
  bool same = true;
  double wall = 0, cpu = 0;
  time_best(passes, [&] { same = same && latmix::sha256_file(path) == digest; }, wall, cpu);
  if (!same) {
    std::fprintf(stderr, "digest changed between passes\n");
    return 1;
  }
  report("sha256_file", bytes, wall, cpu, passes, digest);

  const size_t chunk = 1 << 20;
  const size_t total = std::min<size_t>(static_cast<size_t>(st.st_size), size_t{1} << 30);
  std::vector<unsigned char> buf(chunk);
  for (size_t i = 0; i < chunk; ++i) buf[i] = static_cast<unsigned char>(i * 2654435761U >> 24);
  std::string memory_digest;
  time_best(
      passes,
      [&] {
        latmix::Sha256 h;
        for (size_t done = 0; done < total; done += chunk) h.update(buf.data(), std::min(chunk, total - done));
        memory_digest = h.hex();
      },
      wall, cpu);
  report("Sha256::update in memory", static_cast<double>(total), wall, cpu, passes, memory_digest);
  return 0;
}
