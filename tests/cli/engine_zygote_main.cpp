// latmix_engine_zygote: latmix-engine for the CLI tests. Run as usual it is latmix-engine; run as
// `latmix_engine_zygote --latmix-zygote=SOCKET` it pays LibTorch's start (about 0.75 s of CPU,
// docs/benchmarks.md) once and runs each command line of a test in a fork of itself, through
// latmix_test_launch (tests/support/zygote_protocol.h). The tests reach it as `latmix-engine`
// beside a copy of the launcher (tests/CMakeLists.txt, LATMIX_CLI_UNDER_TEST), so that every
// `latmix` of a test script goes the same way as an installed one, minus the start.
#include "engine_main.h"
#include "zygote_server.h"

int main(int argc, char** argv) { return latmix::zygote::main_or_serve(argc, argv, latmix::cli::engine_main); }
