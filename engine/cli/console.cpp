#include "console.h"

#include <unistd.h>

#include <cstdio>

namespace latmix::cli {

ProgressPrinter::ProgressPrinter(bool quiet) : quiet_(quiet), tty_(::isatty(STDERR_FILENO) == 1) {}

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

void ProgressPrinter::update(std::string_view stage, int64_t done, int64_t total) {
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

}  // namespace latmix::cli
