#pragma once
// The test zygote's wire protocol, shared by the server inside a test binary (zygote_server.cpp,
// linked through latmix_gtest_main) and the launcher that ctest runs per case (zygote_client.cpp).
//
// A test binary that links LibTorch spends ~0.8 s of CPU in static initialisation before main().
// Run as `BINARY --latmix-zygote=SOCKET`, it pays that once and then forks one child per request;
// the launcher sends its argv, environment, working directory, umask and its fds 0-2 (SCM_RIGHTS),
// gets back "started" (the child's pid) and then "exited" (the child's wait status).
// Nothing here links LibTorch or GoogleTest: the launcher must start in milliseconds.

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace latmix::zygote {

/// Where one binary's zygote lives: <dir>/<name>-<hash of its real path>.sock, .lock and .log beside.
struct ZygotePaths {
  std::string dir;
  std::string socket;
  std::string lock;
  std::string log;
};

/// The paths for the binary at `binary_realpath` started under the load-time variables `load_env`
/// (load_time_entries: one zygote per binary and such environment, so that a test run under
/// OMP_NUM_THREADS=1 and another without each have theirs), in $LATMIX_ZYGOTE_DIR when set, else in
/// $XDG_RUNTIME_DIR/latmix-zygote-UID or /tmp/latmix-zygote-UID. The directory is created 0700 and
/// must belong to this user and be writable by no one else; nullopt (and `why`) when it cannot be
/// had or the socket path would not fit in sockaddr_un.
std::optional<ZygotePaths> zygote_paths(const std::string& binary_realpath, const std::vector<std::string>& load_env,
                                        std::string* why);

/// What tells one build of a binary from the next: a relink gives a new inode or mtime.
struct BinaryIdentity {
  std::uint64_t device = 0;
  std::uint64_t inode = 0;
  std::uint64_t size = 0;
  std::int64_t mtime_ns = 0;
  bool operator==(const BinaryIdentity& other) const;
};
std::optional<BinaryIdentity> identity_of(const std::string& path);

/// A resource limit of the launcher, which an exec'd binary would inherit (`ulimit -f` in a test).
struct Limit {
  std::int32_t resource = 0;  ///< RLIMIT_*
  std::uint64_t soft = 0;
  std::uint64_t hard = 0;
};

/// The limits the child takes from its launcher: the ones a shell's ulimit sets that a run of the
/// engine can meet (file size, address space, data, open files, CPU time, core size).
std::vector<Limit> current_limits();

/// One case to run: what the child's process must look like.
struct Request {
  BinaryIdentity binary;          ///< as the launcher saw the file; a zygote of another build refuses
  std::vector<std::string> argv;  ///< argv[0] is the binary's path
  std::vector<std::string> env;   ///< "NAME=value" entries, the child's whole environment
  std::string cwd;
  std::uint32_t umask = 022;
  std::uint64_t ignored_signals = 0;  ///< bit N-1: signal N is ignored (SIG_IGN survives an exec)
  std::vector<Limit> limits;
};

enum class ReplyKind : std::uint32_t {
  started = 1,  ///< value: the child's pid; the case is running
  exited = 2,   ///< value: the child's wait status (waitpid)
  refused = 3,  ///< value: a Refusal; nothing ran, the launcher runs the binary itself
};
enum class Refusal : std::int32_t {
  stale_binary = 1,  ///< the file was rebuilt since the zygote started; it stops listening
  environment = 2,   ///< a variable read while loading differs (see read_at_load)
  bad_request = 3,
  fork_failed = 4,
  limits = 5,  ///< the launcher's hard limits are above the zygote's: a child could not take them
};
struct Reply {
  ReplyKind kind = ReplyKind::refused;
  std::int32_t value = 0;
};

/// The option that turns a test binary into a zygote, and the one naming the fd it writes one byte
/// to once it listens.
inline constexpr std::string_view kZygoteOption = "--latmix-zygote=";
inline constexpr std::string_view kReadyFdOption = "--latmix-zygote-ready-fd=";

/// True for environment entries that a binary reads while it loads, before main(), so that a fork
/// of a zygote started under another value would not see this one: OpenMP's, the allocator's, the
/// dynamic loader's, the sanitizers' and GoogleTest's GTEST_* flag defaults.
bool read_at_load(std::string_view env_entry);
/// The entries of `env` for which read_at_load holds, sorted.
std::vector<std::string> load_time_entries(const std::vector<std::string>& env);

/// Sends `request` with `fds` (stdin, stdout, stderr) attached; false on a socket error.
bool send_request(int sock, const Request& request, const int fds[3]);
/// Receives a request and its three fds (set to -1 unless all three came); false when malformed.
bool receive_request(int sock, Request* request, int fds[3]);
bool send_reply(int sock, const Reply& reply);
/// False on end of file or a socket error.
bool receive_reply(int sock, Reply* reply);

}  // namespace latmix::zygote
