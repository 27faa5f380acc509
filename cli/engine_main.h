#pragma once
// The whole of `latmix-engine` as a function: cli/main.cpp calls it, and so does the CLI tests'
// zygote (tests/cli/engine_zygote_main.cpp) in each fork.

namespace latmix::cli {

/// Runs one command line (argv[0] the program, then the command and its options); the process's
/// exit code. Call it first thing: it sets up malloc and the interrupt handlers.
int engine_main(int argc, char** argv);

}  // namespace latmix::cli
