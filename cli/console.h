#pragma once
// Console output for `latmix`: progress on stderr (a redrawn bar on a terminal, plain lines
// otherwise, nothing with --quiet), what `latmix --version` prints, and small formatting helpers.

#include <chrono>
#include <cstdint>
#include <string>
#include <string_view>

#include "latmix/progress.h"
#include "start.h"

namespace latmix::cli {

class ProgressPrinter {
 public:
  explicit ProgressPrinter(bool quiet);
  ~ProgressPrinter();
  ProgressPrinter(const ProgressPrinter&) = delete;
  ProgressPrinter& operator=(const ProgressPrinter&) = delete;

  /// A ProgressFn bound to this printer.
  ProgressFn callback();
  void update(std::string_view stage, int64_t done, int64_t total);
  /// Ends the current bar line (if any).
  void finish();

 private:
  bool quiet_;
  bool tty_;
  bool open_line_ = false;
  std::string stage_;
  std::chrono::steady_clock::time_point stage_start_, last_draw_;
  int last_decile_ = -1;
};

/// The stage of the last progress report any ProgressPrinter got, quiet or not ("" before the
/// first): what an out-of-memory message says the command was doing.
const std::string& last_progress_stage();

/// "12.3 s", "2 min 05 s"
std::string format_duration(double seconds);

/// Whether progress on stderr is drawn as a redrawn bar: stderr is a terminal and TERM is not "dumb".
bool stderr_is_terminal();

/// The bundled resources (models/gutenberg-llama-6M, calibration/): $LATMIX_RESOURCES, else
/// <executable's folder>/../share/latmix/resources (the installed package: /usr/share/latmix/resources),
/// else the source tree's resources/ this binary was built from. Empty when none has a models/ folder.
std::string bundled_resources_dir();
/// The bundled calibration sample in bundled_resources_dir() ("" when there is none): the default
/// text of GPTQ, the export's perplexity check and `mx block`.
std::string bundled_sample();

/// The process's cancel token. After install_interrupt_handlers(), SIGINT, SIGTERM and SIGHUP
/// cancel it: the running job stops at its next check and removes what it was writing (an export's
/// temp folder; learning writes its checkpoint first), and the command exits with 128 + the signal.
/// A second signal ends the process at once (the default action).
const CancelToken& interrupt_token();
void install_interrupt_handlers();
/// The signal that cancelled interrupt_token(), 0 when none did.
int interrupt_signal();

/// `latmix --version`: version, git commit, LibTorch version, CUDA (built with / available), the fused
/// MX kernels and the bundled resources folder; as text or (json) one JSON object.
std::string version_report(bool json);
/// What version_report() reports about LibTorch, probed now (CUDA: is a GPU there).
VersionFacts version_facts();

}  // namespace latmix::cli
