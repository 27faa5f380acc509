#pragma once
// The zygote side of a LibTorch test binary (see zygote_protocol.h for why and how).

#include <optional>
#include <string>

namespace latmix::zygote {

/// What `BINARY --latmix-zygote=SOCKET [--latmix-zygote-ready-fd=N]` asks for.
struct ServeOptions {
  std::string socket_path;
  int ready_fd = -1;  ///< gets one byte once the socket listens, then is closed
};

/// The options when argv asks for zygote mode (argv[1] is --latmix-zygote=...), else nullopt.
std::optional<ServeOptions> zygote_mode(int argc, char** argv);

/// How a forked child runs its case: the binary's ordinary main (InitGoogleTest, RUN_ALL_TESTS).
using RunCases = int (*)(int argc, char** argv);

/// Listens on options.socket_path and forks one child per request, which takes the request's fds,
/// environment, working directory and umask and exits with run_cases(argv). Returns (the process
/// exit code) once it has stopped listening and its children are done: after 60 s without a
/// request, when the binary's file changes or the socket file is removed. Refuses to start (returns
/// 3, writing nothing to ready_fd) when the process keeps a thread across a fork: a child would
/// lose it with whatever it held (OpenMP's and at::parallel's pools are the dangers; the zygote runs
/// no tensor code, so static initialisation must start none). Threads that their library stops for
/// a fork (pthread_atfork: OpenBLAS's pool) are stopped by one empty fork first.
int serve(const ServeOptions& options, RunCases run_cases);

/// A test binary's main() that can be its own zygote: serve() with run_cases when argv asks for
/// zygote mode (zygote_mode), else run_cases(argc, argv) as an ordinary run.
int main_or_serve(int argc, char** argv, RunCases run_cases);

}  // namespace latmix::zygote
