#pragma once
/// \file malloc_tuning.h
/// Room: engine/base/ (latmix_core).

namespace latmix {

/// Sets glibc's malloc for a process that computes with tensors; every process of ours calls it
/// first thing (the CLI, the studio, `latmix serve`'s Server, the test and bench binaries).
/// - One arena (M_ARENA_MAX 1): engine work on a thread other than the main one (serve's job
///   worker, the studio's EngineHost) reuses freed memory as the main thread does. A thread's own
///   arena is made of 64 MB heaps, so its large temporaries were mapped and unmapped each time.
/// - A fixed mmap threshold of 32 MB (glibc's largest dynamic one) and a trim threshold of 512 MB:
///   a freed activation stays in the heap for the next pass instead of being unmapped and faulted
///   in again. glibc's dynamic threshold starts at 128 KB, so a first pass mapped every tensor.
/// Measured on this 2-core machine, `latmix stats --model gutenberg-llama-22M --data
/// resources/calibration/pride_and_prejudice_ch1-6.txt --samples 16 --seqlen 256`: 5.5 s (4.5 s
/// of it in the kernel) before, 2.1 s (0.7 s) after, the same peak memory (271 MB against 273 MB).
/// Environment settings (MALLOC_ARENA_MAX, MALLOC_MMAP_THRESHOLD_, MALLOC_TRIM_THRESHOLD_) win;
/// LATMIX_MALLOC_DEFAULTS=1 leaves glibc's defaults (to measure against).
/// A no-op outside glibc.
void tune_malloc_for_tensors();

}  // namespace latmix
