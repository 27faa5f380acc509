// main() of the test binaries that link LibTorch (in place of GTest::gtest_main). Run as usual it
// is gtest_main (without its "Running main() from" line, which is no test name for
// gtest_discover_tests). Run as `BINARY --latmix-zygote=SOCKET`, after static initialisation (the
// ~0.8 s LibTorch spends registering operators) it serves forks of itself to latmix_test_launch,
// one per ctest entry: see zygote_protocol.h.

#include <gtest/gtest.h>

#include "zygote_server.h"

namespace {

int run_cases(int argc, char** argv) {
  testing::InitGoogleTest(&argc, argv);
  return RUN_ALL_TESTS();
}

}  // namespace

int main(int argc, char** argv) {
  if (auto options = latmix::zygote::zygote_mode(argc, argv)) return latmix::zygote::serve(*options, run_cases);
  return run_cases(argc, argv);
}
