// main() of the test binaries that link LibTorch (in place of GTest::gtest_main). Run as usual it
// is gtest_main (without its "Running main() from" line, which is no test name for
// gtest_discover_tests). Run as `BINARY --latmix-zygote=SOCKET`, after static initialisation (the
// ~0.8 s LibTorch spends registering operators) it serves forks of itself to latmix_test_launch,
// one per ctest entry: see zygote_protocol.h.

#include <execinfo.h>
#include <gtest/gtest.h>
#include <signal.h>
#include <unistd.h>

#include <cstring>

#include "zygote_server.h"

namespace {

// A test binary that crashes (a case, or at exit) prints where before it dies of the same signal, so
// that a crash on a machine without a debugger (the GPU machine) still says where: frames as
// BINARY(+OFFSET), for addr2line -e BINARY OFFSET.
void report_fatal_signal(int signal) {
  const char* name = strsignal(signal);
  (void)!write(2, "\nfatal signal: ", 15);
  (void)!write(2, name, strlen(name));
  (void)!write(2, "; backtrace:\n", 13);
  void* frames[64];
  backtrace_symbols_fd(frames, backtrace(frames, 64), 2);
  ::signal(signal, SIG_DFL);
  raise(signal);
}

void install_fatal_signal_report() {
  void* warm[1];
  backtrace(warm, 1);  // loads libgcc's unwinder now, not inside the handler
  for (int s : {SIGSEGV, SIGBUS, SIGILL, SIGFPE}) ::signal(s, report_fatal_signal);
}

int run_cases(int argc, char** argv) {
  install_fatal_signal_report();
  testing::InitGoogleTest(&argc, argv);
  return RUN_ALL_TESTS();
}

}  // namespace

int main(int argc, char** argv) {
  if (auto options = latmix::zygote::zygote_mode(argc, argv)) return latmix::zygote::serve(*options, run_cases);
  return run_cases(argc, argv);
}
