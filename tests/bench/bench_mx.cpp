// Fake-quantization throughput against a plain tensor copy (never gates CI).
//
//   bench_mx [ROWS COLS [ITERS [DEVICE]]]      defaults: 4096 14336 3 cpu
//
// Times a bf16 ROWS x COLS tensor: clone() (the memory-bandwidth yardstick), then
// fake_quantize with each kernel (Aten: unfused tensor ops; CpuLoop: one pass per block) for
// a few formats. GB/s counts the bytes read plus written (2 bytes each way per bf16 value);
// "x copy" is the time relative to the copy. Median of ITERS runs after one warm-up.
#include <ATen/ATen.h>
#include <ATen/Parallel.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <functional>
#include <string>
#include <vector>

#include "latmix/mx.h"

namespace {

double median_seconds(const std::function<void()>& fn, int iters, bool cuda) {
  fn();
  if (cuda) at::zeros({1}, at::kCUDA).cpu();  // synchronizes the stream
  std::vector<double> times;
  for (int i = 0; i < iters; ++i) {
    const auto t0 = std::chrono::steady_clock::now();
    fn();
    if (cuda) at::zeros({1}, at::kCUDA).cpu();
    times.push_back(std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count());
  }
  std::sort(times.begin(), times.end());
  return times[times.size() / 2];
}

void report(const char* what, double seconds, double bytes, double copy_seconds) {
  std::printf("%-34s %9.1f ms %8.2f GB/s %8.2f x copy\n", what, seconds * 1e3, bytes / seconds / 1e9,
              seconds / copy_seconds);
}

}  // namespace

int main(int argc, char** argv) {
  const int64_t rows = argc > 1 ? std::atoll(argv[1]) : 4096;
  const int64_t cols = argc > 2 ? std::atoll(argv[2]) : 14336;
  const int iters = argc > 3 ? std::atoi(argv[3]) : 3;
  const std::string device = argc > 4 ? argv[4] : "cpu";
  const bool cuda = device == "cuda";
  if (cuda && !at::hasCUDA()) {
    std::fprintf(stderr, "bench_mx: no CUDA device\n");
    return 1;
  }
  const at::Tensor x = (at::randn({rows, cols}) * 0.02).to(at::kBFloat16).to(cuda ? at::kCUDA : at::kCPU);
  const double bytes = 2.0 * 2.0 * static_cast<double>(x.numel());
  std::printf("bench_mx: bf16 %lld x %lld on %s, %d threads, median of %d\n", static_cast<long long>(rows),
              static_cast<long long>(cols), device.c_str(), at::get_num_threads(), iters);
  const double copy = median_seconds([&] { (void)x.clone(); }, iters, cuda);
  report("copy (clone)", copy, bytes, copy);
  for (const char* name : {"mxfp4", "mxfp8_e4m3", "mxint8", "nvfp4"}) {
    const latmix::MxFormat f = latmix::MxFormat::parse(name);
    for (latmix::MxKernel k : {latmix::MxKernel::Aten, latmix::MxKernel::CpuLoop}) {
      if (cuda && k == latmix::MxKernel::CpuLoop) continue;
      const double t = median_seconds([&] { (void)latmix::fake_quantize(x, f, -1, k); }, iters, cuda);
      const std::string label = std::string(name) + (k == latmix::MxKernel::Aten ? "  aten" : "  cpu-loop");
      report(label.c_str(), t, bytes, copy);
    }
  }
  return 0;
}
