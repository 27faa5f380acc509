// The cases latmix_zygote_tests runs through latmix_test_launch (test_zygote.cpp). Each says which
// process ran it, where and under which environment; alone they test nothing, so ctest lists none.
// Linked with latmix_gtest_main like the LibTorch test binaries, but without LibTorch: it starts
// in milliseconds, so each of those tests can start its own zygote.

#include <gtest/gtest.h>
#include <sys/resource.h>
#include <unistd.h>

#include <climits>
#include <csignal>
#include <cstdio>
#include <cstdlib>
#include <iostream>
#include <string>

namespace {

const char* env_or_unset(const char* name) {
  const char* value = std::getenv(name);
  return value != nullptr ? value : "(unset)";
}

void say_exit_handlers_ran() {
  std::printf("probe.atexit=ran\n");
}

// One line per fact, "probe.KEY=VALUE", for the driver to parse; the last comes from an exit
// handler that the case registers (the zygote's child must still run those).
void report() {
  std::atexit(say_exit_handlers_ran);
  char cwd[PATH_MAX];
  std::printf("probe.pid=%d\nprobe.ppid=%d\nprobe.cwd=%s\nprobe.value=%s\nprobe.first=%s\n", static_cast<int>(getpid()),
              static_cast<int>(getppid()), getcwd(cwd, sizeof cwd) != nullptr ? cwd : "?",
              env_or_unset("LATMIX_PROBE_VALUE"), env_or_unset("LATMIX_PROBE_FIRST"));
  std::fflush(stdout);
}

}  // namespace

TEST(ZygoteProbe, Report) {
  report();
}

TEST(ZygoteProbe, Crash) {
  report();
  rlimit no_core{0, 0};
  setrlimit(RLIMIT_CORE, &no_core);
  std::raise(SIGSEGV);
}

TEST(ZygoteProbe, Fail) {
  report();
  ADD_FAILURE() << "the probe fails on purpose";
}

TEST(ZygoteProbe, Sleep) {
  report();
  sleep(120);
}

TEST(ZygoteProbe, Stdin) {
  report();
  std::string line;
  std::getline(std::cin, line);
  std::printf("probe.stdin=%s\n", line.c_str());
}

namespace {
volatile sig_atomic_t g_handled = 0;
void on_signal(int sig) { g_handled = sig; }
}  // namespace

// Says how SIGXFSZ is set and the file size limit, installs handlers for SIGTERM and SIGINT (as
// latmix's interrupt handlers do, over an inherited SIG_IGN), says it is ready and waits up to 60 s
// for one of them (not at all with LATMIX_PROBE_NO_WAIT set), then says which came.
TEST(ZygoteProbe, Signals) {
  report();
  struct sigaction current {};
  sigaction(SIGXFSZ, nullptr, &current);
  rlimit fsize{};
  getrlimit(RLIMIT_FSIZE, &fsize);
  std::printf("probe.xfsz=%s\nprobe.fsize=%s\n", current.sa_handler == SIG_IGN ? "ignored" : "default",
              fsize.rlim_cur == RLIM_INFINITY ? "unlimited" : std::to_string(fsize.rlim_cur).c_str());
  struct sigaction sa {};
  sa.sa_handler = on_signal;
  sigemptyset(&sa.sa_mask);
  sigaction(SIGTERM, &sa, nullptr);
  sigaction(SIGINT, &sa, nullptr);
  std::printf("probe.ready=1\n");
  std::fflush(stdout);
  if (std::getenv("LATMIX_PROBE_NO_WAIT") == nullptr) {
    for (int i = 0; i < 600 && g_handled == 0; ++i) usleep(100000);
  }
  std::printf("probe.handled=%d\n", static_cast<int>(g_handled));
}
