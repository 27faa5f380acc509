// Fake-quantization and packing throughput against a plain tensor copy (never gates CI).
//
//   bench_mx [ROWS COLS [ITERS [DEVICE]]]      defaults: 4096 14336 3 cpu   (DEVICE: cpu or cuda)
//
// Times a bf16 ROWS x COLS tensor: clone() (the memory-bandwidth yardstick), then
// fake_quantize with each kernel (Aten: unfused tensor ops; CpuLoop: one pass per block on the
// CPU; Cuda: the fused CUDA kernel, in builds with CUDA) for a few formats, then packing:
// mx_encode (codes, 4-bit ones two per byte, + scales; on CUDA one fused kernel, compared with the
// fused encoder followed by ATen's pack_nibbles) and mx_decode back to bf16 (on CUDA one fused
// kernel). GB/s counts the bytes read plus written (fake quantization: 2 bytes each way per bf16
// value; packing: the bf16 values, the codes and the scales); "x copy" is the time relative to the
// copy, "% copy" the copy's time over the operation's, "% GB/s" the bandwidth relative to the
// copy's (the same as "% copy" when the bytes are). Median of ITERS samples after one warm-up; on
// CUDA a sample is 20 back-to-back calls between two device synchronizations.
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

#if defined(LATMIX_WITH_CUDA)
#include <cuda_runtime_api.h>
#endif

namespace {

void synchronize(bool cuda) {
  if (!cuda) return;
#if defined(LATMIX_WITH_CUDA)
  cudaDeviceSynchronize();
#else
  (void)at::zeros({1}, at::kCUDA).cpu();  // synchronizes the stream
#endif
}

double median_seconds(const std::function<void()>& fn, int iters, bool cuda) {
  const int reps = cuda ? 20 : 1;
  fn();
  synchronize(cuda);
  std::vector<double> times;
  for (int i = 0; i < iters; ++i) {
    const auto t0 = std::chrono::steady_clock::now();
    for (int r = 0; r < reps; ++r) fn();
    synchronize(cuda);
    times.push_back(std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count() / reps);
  }
  std::sort(times.begin(), times.end());
  return times[times.size() / 2];
}

void report(const char* what, double seconds, double bytes, double copy_seconds, double copy_bytes) {
  std::printf("%-44s %9.3f ms %9.2f GB/s %7.2f x copy %7.1f %% copy %7.1f %% GB/s\n", what, seconds * 1e3,
              bytes / seconds / 1e9, seconds / copy_seconds, 100.0 * copy_seconds / seconds,
              100.0 * (bytes / seconds) / (copy_bytes / copy_seconds));
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
  report("copy (clone)", copy, bytes, copy, bytes);
  const std::vector<std::string> compared{"mxfp4", "mxfp8_e4m3", "mxint8", "nvfp4"};
  for (const std::string& name : latmix::mx_format_names()) {
    const bool all_kernels = std::find(compared.begin(), compared.end(), name) != compared.end();
    if (!all_kernels && !(cuda && latmix::mx_cuda_kernel_built())) continue;
    const latmix::MxFormat f = latmix::MxFormat::parse(name);
    for (latmix::MxKernel k : {latmix::MxKernel::Aten, latmix::MxKernel::CpuLoop, latmix::MxKernel::Cuda}) {
      if (k == latmix::MxKernel::CpuLoop && cuda) continue;
      if (k == latmix::MxKernel::Cuda && !(cuda && latmix::mx_cuda_kernel_built())) continue;
      if (k != latmix::MxKernel::Cuda && !all_kernels) continue;
      const double t = median_seconds([&] { (void)latmix::fake_quantize(x, f, -1, k); }, iters, cuda);
      const char* kname = k == latmix::MxKernel::Aten ? "  aten" : (k == latmix::MxKernel::CpuLoop ? "  cpu-loop" : "  cuda-fused");
      report((name + kname).c_str(), t, bytes, copy, bytes);
    }
  }
  // Packing: encode to uint8 codes (4-bit formats two per byte) and scales, and decode back.
  const bool fused = cuda && latmix::mx_cuda_kernel_built();
  const std::vector<std::string> packing =
      fused ? latmix::mx_format_names() : std::vector<std::string>{"mxfp4", "mxfp8_e4m3"};
  const char* where = fused ? " (fused)" : (cuda ? " (aten)" : " (cpu)");
  for (const std::string& name : packing) {
    const latmix::MxFormat f = latmix::MxFormat::parse(name);
    const double n = static_cast<double>(x.numel());
    const double code_bytes = f.is_4bit() ? n / 2 : n;
    const double io = 2 * n + code_bytes + n / static_cast<double>(f.block);
    const double enc = median_seconds([&] { (void)latmix::mx_encode(x, f, -1, true); }, iters, cuda);
    report((name + "  encode+pack" + where).c_str(), enc, io, copy, bytes);
    if (f.is_4bit() && fused) {  // the previous path, for comparison
      const double two = median_seconds(
          [&] { (void)latmix::pack_nibbles(latmix::mx_encode(x, f, -1, false).codes); }, iters, cuda);
      report((name + "  encode (fused), then pack_nibbles (aten)").c_str(), two, io, copy, bytes);
    }
    const latmix::MxPacked packed = latmix::mx_encode(x, f, -1, true);
    const double dec = median_seconds([&] { (void)latmix::mx_decode(packed, at::kBFloat16); }, iters, cuda);
    report((name + "  unpack+decode" + (fused ? " (fused)" : " (aten)")).c_str(), dec, io, copy, bytes);
  }
  return 0;
}
