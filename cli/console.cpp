#include "console.h"

#include <ATen/Context.h>
#include <torch/version.h>
#include <signal.h>
#include <unistd.h>

#include <cstdio>
#include <csignal>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <nlohmann/json.hpp>
#include <system_error>

#include "latmix/distributed.h"
#include "latmix/version.h"

namespace latmix::cli {

bool stderr_is_terminal() {
  if (::isatty(STDERR_FILENO) != 1) return false;
  // A terminal that cannot move the cursor back (Emacs shell, some CI log viewers) gets plain lines.
  const char* term = std::getenv("TERM");
  return term == nullptr || std::strcmp(term, "dumb") != 0;
}

ProgressPrinter::ProgressPrinter(bool quiet) : quiet_(quiet), tty_(stderr_is_terminal()) {}

ProgressPrinter::~ProgressPrinter() { finish(); }

ProgressFn ProgressPrinter::callback() {
  return [this](std::string_view stage, int64_t done, int64_t total) { update(stage, done, total); };
}

std::string format_duration(double seconds) {
  char buf[64];
  if (seconds < 60) {
    std::snprintf(buf, sizeof(buf), "%.1f s", seconds);
  } else {
    const int s = static_cast<int>(seconds);
    std::snprintf(buf, sizeof(buf), "%d min %02d s", s / 60, s % 60);
  }
  return buf;
}

namespace {
std::string g_last_stage;  // the CLI is one thread; progress comes from it
}  // namespace

const std::string& last_progress_stage() {
  return g_last_stage;
}

void ProgressPrinter::update(std::string_view stage, int64_t done, int64_t total) {
  if (stage != g_last_stage) g_last_stage = std::string(stage);
  if (quiet_) return;
  const auto now = std::chrono::steady_clock::now();
  if (stage != stage_) {
    finish();
    stage_ = std::string(stage);
    stage_start_ = now;
    last_decile_ = -1;
  }
  const double frac = total > 0 ? static_cast<double>(done) / static_cast<double>(total) : 0.0;
  const double elapsed = std::chrono::duration<double>(now - stage_start_).count();
  const std::string eta = (done > 0 && total > 0 && done < total)
                              ? " ETA " + format_duration(elapsed / frac - elapsed)
                              : (done >= total && total > 0 ? " " + format_duration(elapsed) : "");
  if (tty_) {
    if (done < total && now - last_draw_ < std::chrono::milliseconds(100)) return;
    last_draw_ = now;
    const int width = 30;
    const int fill = static_cast<int>(frac * width);
    std::fprintf(stderr, "\r%-12s [%s%s] %3d%% %lld/%lld%s   ", stage_.c_str(), std::string(fill, '#').c_str(),
                 std::string(width - fill, ' ').c_str(), static_cast<int>(frac * 100), static_cast<long long>(done),
                 static_cast<long long>(total), eta.c_str());
    open_line_ = true;
    if (total > 0 && done >= total) finish();
  } else {
    // Plain lines (not a terminal): only for stages that take a while, at most one per 10%.
    const int decile = static_cast<int>(frac * 10);
    if (decile == last_decile_ || elapsed < 2.0) return;
    last_decile_ = decile;
    std::fprintf(stderr, "%s: %lld/%lld (%d%%)%s\n", stage_.c_str(), static_cast<long long>(done),
                 static_cast<long long>(total), static_cast<int>(frac * 100), eta.c_str());
  }
  std::fflush(stderr);
}

void ProgressPrinter::finish() {
  if (open_line_) {
    std::fprintf(stderr, "\n");
    open_line_ = false;
  }
}

VersionFacts version_facts() {
  VersionFacts f;
  f.libtorch = TORCH_VERSION;
  // hasCUDART: this LibTorch has its CUDA part; hasCUDA: that, and the driver sees at least one GPU.
  f.cuda_built = at::globalContext().hasCUDART();
  f.cuda_available = f.cuda_built && at::hasCUDA();
  if (f.cuda_built) {
    const long v = at::globalContext().versionCUDART();  // 12080 for CUDA 12.8
    f.cuda_runtime_version = v;
    f.cuda_runtime = std::to_string(v / 1000) + "." + std::to_string((v % 1000) / 10);
  }
#ifdef LATMIX_WITH_CUDA
  f.mx_kernels = true;
#endif
  f.distributed = dist::available();
  return f;
}

std::string bundled_sample() {
  const std::string resources = bundled_resources_dir();
  return resources.empty() ? "" : resources + "/calibration/pride_and_prejudice_ch1-6.txt";
}

std::string version_report(bool json) {
  return version_text(version_facts(), json);
}

namespace {

volatile std::sig_atomic_t g_signal = 0;

const CancelToken& the_token() {
  static const CancelToken token;
  return token;
}

extern "C" void on_interrupt(int sig) {
  g_signal = sig;
  the_token().cancel();  // one relaxed atomic store (the token exists before the handler is set)
}

}  // namespace

const CancelToken& interrupt_token() { return the_token(); }

int interrupt_signal() { return static_cast<int>(g_signal); }

void install_interrupt_handlers() {
  the_token();
  struct sigaction sa {};
  sa.sa_handler = on_interrupt;
  sigemptyset(&sa.sa_mask);
  sa.sa_flags = SA_RESETHAND;  // the second signal takes the default action: the process ends
  for (int sig : {SIGINT, SIGTERM, SIGHUP}) ::sigaction(sig, &sa, nullptr);
}

}  // namespace latmix::cli
