// main() of the test binaries that link LibTorch (in place of GTest::gtest_main). Run as usual it
// is gtest_main (without its "Running main() from" line, which is no test name for
// gtest_discover_tests). Run as `BINARY --latmix-zygote=SOCKET`, after static initialisation (the
// ~0.8 s LibTorch spends registering operators) it serves forks of itself to latmix_test_launch,
// one per ctest entry: see zygote_protocol.h.

#include <execinfo.h>
#include <fcntl.h>
#include <gtest/gtest.h>
#include <signal.h>
#include <ucontext.h>
#include <unistd.h>

#include <cstdint>
#include <cstring>

#include "latmix/malloc_tuning.h"
#include "zygote_server.h"

namespace {

// A test binary that crashes (a case, or at exit) prints where before it dies of the same signal, so
// that a crash on a machine without a debugger (the GPU machine) still says where: the faulting
// address and instruction, the frames as BINARY(+OFFSET) (for addr2line -e BINARY OFFSET), and the
// process's mappings (an instruction outside them is a call into a library already unloaded).
void write_text(const char* text) { (void)!write(2, text, strlen(text)); }

void write_hex(const char* label, uintptr_t value) {
  char buf[2 + 16 + 1];
  int n = sizeof(buf) - 1;
  buf[n] = '\0';
  do {
    buf[--n] = "0123456789abcdef"[value & 0xf];
    value >>= 4;
  } while (value != 0 && n > 2);
  buf[--n] = 'x';
  buf[--n] = '0';
  write_text(label);
  write_text(buf + n);
}

void report_fatal_signal(int signal, siginfo_t* info, void* context) {
  write_text("\nfatal signal: ");
  write_text(strsignal(signal));
  write_hex("; address ", reinterpret_cast<uintptr_t>(info->si_addr));
#if defined(__x86_64__) && defined(REG_RIP)
  const auto* uc = static_cast<const ucontext_t*>(context);
  write_hex(", instruction ", static_cast<uintptr_t>(uc->uc_mcontext.gregs[REG_RIP]));
  const auto* sp = reinterpret_cast<const uintptr_t*>(uc->uc_mcontext.gregs[REG_RSP]);
  if (sp != nullptr) write_hex(", return address at the stack pointer ", sp[0]);
#else
  (void)context;
#endif
  write_text("\nbacktrace:\n");
  void* frames[64];
  backtrace_symbols_fd(frames, backtrace(frames, 64), 2);
  write_text("mappings:\n");
  const int maps = open("/proc/self/maps", O_RDONLY);
  if (maps >= 0) {
    char buf[4096];
    for (ssize_t n; (n = read(maps, buf, sizeof(buf))) > 0;) (void)!write(2, buf, static_cast<size_t>(n));
    close(maps);
  }
  ::signal(signal, SIG_DFL);
  raise(signal);
}

void install_fatal_signal_report() {
  void* warm[1];
  backtrace(warm, 1);  // loads libgcc's unwinder now, not inside the handler
  struct sigaction action {};
  action.sa_sigaction = report_fatal_signal;
  action.sa_flags = SA_SIGINFO;
  sigemptyset(&action.sa_mask);
  for (int s : {SIGSEGV, SIGBUS, SIGILL, SIGFPE}) sigaction(s, &action, nullptr);
}

int run_cases(int argc, char** argv) {
  install_fatal_signal_report();
  testing::InitGoogleTest(&argc, argv);
  return RUN_ALL_TESTS();
}

}  // namespace

int main(int argc, char** argv) {
  latmix::tune_malloc_for_tensors();  // as every program of ours runs (latmix/malloc_tuning.h)
  return latmix::zygote::main_or_serve(argc, argv, run_cases);
}
