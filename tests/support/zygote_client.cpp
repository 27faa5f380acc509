// latmix_test_launch BINARY [ARGS...]: runs `BINARY ARGS...` as a fork of BINARY's zygote (started
// on first use, see zygote_protocol.h) and exits as that child did; ctest runs it per case in front
// of the LibTorch test binaries (tests/CMakeLists.txt, latmix_add_gtests), and the CLI tests run
// every `latmix-engine` through it (tests/cli/CMakeLists.txt). It stands for the child as a process
// would: the signals a test sends it (kill -TERM, timeout, Ctrl-C) go on to the child, the signals
// it ignores and its resource limits (ulimit) are the child's, and when it is killed outright the
// zygote kills the child. When the zygote cannot
// be had (no private socket directory, it will not start, it refuses), it execs BINARY itself: a
// case never fails because of the launcher. LATMIX_TEST_ZYGOTE=0 in the environment always execs.

#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <sys/file.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <unistd.h>

#include <strings.h>
#include <cerrno>
#include <climits>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <string>

#include "zygote_protocol.h"

namespace {

using namespace latmix::zygote;

// A cold start of a LibTorch binary on a loaded 2-core machine takes seconds; ctest's own timeout
// (minutes) is the real bound.
constexpr int kStartTimeoutMs = 120000;

int connect_to(const std::string& path) {
  int sock = ::socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
  sockaddr_un addr{};
  addr.sun_family = AF_UNIX;
  std::memcpy(addr.sun_path, path.c_str(), path.size() + 1);  // zygote_paths checked the length
  if (sock >= 0 && ::connect(sock, reinterpret_cast<sockaddr*>(&addr), sizeof addr) == 0) return sock;
  if (sock >= 0) ::close(sock);
  return -1;
}

// In the zygote-to-be (a grandchild in its own session, so that ctest neither waits for it nor
// kills it with the case): fds 0-1 on /dev/null (ctest reads the case's output until every copy of
// its pipes is closed), 2 on the log, 3 the ready pipe, nothing else.
[[noreturn]] void exec_zygote(const std::string& binary, const ZygotePaths& paths, int ready_fd) {
  int null_fd = ::open("/dev/null", O_RDWR);
  int log_fd = ::open(paths.log.c_str(), O_WRONLY | O_CREAT | O_APPEND, 0600);
  ::dup2(null_fd, STDIN_FILENO);
  ::dup2(null_fd, STDOUT_FILENO);
  ::dup2(log_fd >= 0 ? log_fd : null_fd, STDERR_FILENO);
  if (ready_fd == 3) {
    ::fcntl(3, F_SETFD, 0);
  } else {
    ::dup2(ready_fd, 3);
  }
  ::close_range(4, ~0u, 0);
  std::string socket_arg = std::string(kZygoteOption) + paths.socket;
  std::string ready_arg = std::string(kReadyFdOption) + "3";
  char* args[] = {const_cast<char*>(binary.c_str()), socket_arg.data(), ready_arg.data(), nullptr};
  ::execv(binary.c_str(), args);
  std::_Exit(127);
}

bool start_zygote(const std::string& binary, const ZygotePaths& paths, std::string* why) {
  int ready[2];
  if (::pipe2(ready, O_CLOEXEC) != 0) {
    *why = std::string("pipe: ") + std::strerror(errno);
    return false;
  }
  pid_t pid = ::fork();
  if (pid == 0) {
    ::close(ready[0]);
    ::setsid();
    if (::fork() != 0) std::_Exit(0);
    exec_zygote(binary, paths, ready[1]);
  }
  ::close(ready[1]);
  if (pid > 0) ::waitpid(pid, nullptr, 0);
  pollfd p{ready[0], POLLIN, 0};
  char byte = 0;
  bool ok = pid > 0 && ::poll(&p, 1, kStartTimeoutMs) == 1 && ::read(ready[0], &byte, 1) == 1;
  ::close(ready[0]);
  if (!ok) *why = "the zygote did not start (its log: " + paths.log + ")";
  return ok;
}

// Connects to the binary's zygote, starting it when none listens: one per binary, whatever the
// number of launchers starting at once (the lock). -1 (and why) when there is none to be had.
int connect_or_start(const std::string& binary, const ZygotePaths& paths, std::string* why) {
  int sock = connect_to(paths.socket);
  if (sock >= 0) return sock;
  int lock = ::open(paths.lock.c_str(), O_RDWR | O_CREAT | O_CLOEXEC, 0600);
  if (lock < 0 || ::flock(lock, LOCK_EX) != 0) {
    *why = paths.lock + ": " + std::strerror(errno);
    if (lock >= 0) ::close(lock);
    return -1;
  }
  sock = connect_to(paths.socket);  // another launcher may have started it while this one waited
  if (sock < 0) {
    ::unlink(paths.socket.c_str());  // a zygote that died without removing it
    if (start_zygote(binary, paths, why)) sock = connect_to(paths.socket);
    if (sock < 0 && why->empty()) *why = "cannot connect to " + paths.socket + ": " + std::strerror(errno);
  }
  ::close(lock);
  return sock;
}

const char* refusal_text(std::int32_t refusal) {
  switch (static_cast<Refusal>(refusal)) {
    case Refusal::stale_binary:
      return "the zygote kept serving another build of the binary";
    case Refusal::environment:
      return "the zygote was started under other load-time variables (LD_*, OMP_*, GTEST_*, ...)";
    case Refusal::bad_request:
      return "the zygote did not understand the request";
    case Refusal::fork_failed:
      return "the zygote could not fork";
    case Refusal::limits:
      return "the launcher's resource limits are above the zygote's";
  }
  return "the zygote refused";
}

enum class Outcome { not_run, finished, lost };
struct Result {
  Outcome outcome = Outcome::not_run;
  int status = 0;
  std::string why;
};

// The signals passed on to the running child: those a test or a terminal sends to end or poke a
// process. Even one the launcher ignores (bash starts `cmd &` with SIGINT ignored): the child
// ignores it too (request.ignored_signals) unless it installs a handler, as after an exec.
constexpr int kForwarded[] = {SIGINT, SIGTERM, SIGHUP, SIGQUIT, SIGUSR1, SIGUSR2, SIGALRM};
constexpr int kForwardedCount = sizeof kForwarded / sizeof kForwarded[0];
volatile sig_atomic_t g_child = 0;

void forward_signal(int sig) {
  if (g_child > 0) ::kill(static_cast<pid_t>(g_child), sig);
}

bool ignored(int sig) {
  struct sigaction current {};
  return ::sigaction(sig, nullptr, &current) == 0 && current.sa_handler == SIG_IGN;
}

// The launcher's own dispositions and mask before it forwarded anything.
struct Forwarding {
  struct sigaction before[kForwardedCount];
  sigset_t blocked;
  sigset_t mask_before;
};

// Installs the forwarding handlers with the forwarded signals blocked, so that one sent before the
// child runs waits for it (unblocked once g_child is set).
void install_forwarding(Forwarding* f) {
  sigemptyset(&f->blocked);
  for (int sig : kForwarded) sigaddset(&f->blocked, sig);
  ::sigprocmask(SIG_BLOCK, &f->blocked, &f->mask_before);
  struct sigaction sa {};
  sa.sa_handler = forward_signal;
  sigemptyset(&sa.sa_mask);
  sa.sa_flags = SA_RESTART;
  for (int i = 0; i < kForwardedCount; ++i) ::sigaction(kForwarded[i], &sa, &f->before[i]);
}

// Back to what the launcher had, for an exec of the binary itself.
void remove_forwarding(const Forwarding& f) {
  for (int i = 0; i < kForwardedCount; ++i) ::sigaction(kForwarded[i], &f.before[i], nullptr);
  ::sigprocmask(SIG_SETMASK, &f.mask_before, nullptr);
}

Request request_for(const BinaryIdentity& id, int argc, char** argv) {
  Request request;
  request.binary = id;
  request.argv.assign(argv, argv + argc);
  for (char** e = environ; *e != nullptr; ++e) request.env.emplace_back(*e);
  char cwd[PATH_MAX];
  request.cwd = ::getcwd(cwd, sizeof cwd) != nullptr ? cwd : "/";
  mode_t mask = ::umask(0);
  ::umask(mask);
  request.umask = mask;
  for (int sig = 1; sig < 64; ++sig) {
    if (sig != SIGKILL && sig != SIGSTOP && ignored(sig)) request.ignored_signals |= std::uint64_t{1} << (sig - 1);
  }
  request.limits = current_limits();
  return request;
}

// argv[0] is the binary. "not_run" means no child ran: the caller may exec the binary itself.
Result run_via_zygote(int argc, char** argv) {
  char real[PATH_MAX];
  std::string why;
  if (::realpath(argv[0], real) == nullptr)
    return {Outcome::not_run, 0, std::string(argv[0]) + ": " + std::strerror(errno)};
  auto id = identity_of(real);
  if (!id) return {Outcome::not_run, 0, std::string(real) + ": " + std::strerror(errno)};
  const Request request = request_for(*id, argc, argv);
  auto paths = zygote_paths(real, load_time_entries(request.env), &why);
  if (!paths) return {Outcome::not_run, 0, why};
  const int fds[3] = {STDIN_FILENO, STDOUT_FILENO, STDERR_FILENO};
  for (int attempt = 0; attempt < 2; ++attempt) {
    int sock = connect_or_start(real, *paths, &why);
    if (sock < 0) return {Outcome::not_run, 0, why};
    Forwarding forwarding;
    install_forwarding(&forwarding);
    Reply reply;
    bool answered = send_request(sock, request, fds) && receive_reply(sock, &reply);
    if (!answered || reply.kind != ReplyKind::started) {  // the zygote forks before it says "started"
      ::close(sock);
      remove_forwarding(forwarding);  // a signal that came meanwhile acts now, as on the binary run by exec
      if (!answered) return {Outcome::not_run, 0, "the zygote closed the connection before starting the case"};
      if (reply.value == static_cast<int>(Refusal::stale_binary) && attempt == 0) continue;  // it stopped listening
      return {Outcome::not_run, 0, refusal_text(reply.value)};
    }
    g_child = reply.value;
    ::sigprocmask(SIG_SETMASK, &forwarding.mask_before, nullptr);
    bool got = receive_reply(sock, &reply);
    ::close(sock);
    if (!got || reply.kind != ReplyKind::exited) return {Outcome::lost, 0, "the zygote went away while the case ran"};
    return {Outcome::finished, reply.value, ""};
  }
  return {Outcome::not_run, 0, refusal_text(static_cast<int>(Refusal::stale_binary))};
}

// Exits as the child did; a child killed by a signal kills the launcher with it, so that ctest
// reports the crash (e.g. "SegFault") as it would for the binary run directly.
int relay(int status, const char* binary) {
  if (WIFEXITED(status)) return WEXITSTATUS(status);
  if (!WIFSIGNALED(status)) return 1;
  int sig = WTERMSIG(status);
  const char* abbrev = sigabbrev_np(sig);
  std::fprintf(stderr, "latmix_test_launch: %s was killed by signal %d (SIG%s: %s)\n", binary, sig,
               abbrev != nullptr ? abbrev : "?", strsignal(sig));
  std::fflush(stderr);
  rlimit no_core{0, 0};  // the child dumped its core already, where the system wanted it
  ::setrlimit(RLIMIT_CORE, &no_core);
  ::signal(sig, SIG_DFL);
  sigset_t just;
  sigemptyset(&just);
  sigaddset(&just, sig);
  ::sigprocmask(SIG_UNBLOCK, &just, nullptr);
  ::raise(sig);
  return 128 + sig;
}

// With fd 0, 1 or 2 closed, the next socket or pipe would take its number and be sent as stdio.
void keep_standard_fds_open() {
  int fd;
  while ((fd = ::open("/dev/null", O_RDWR)) >= 0 && fd <= STDERR_FILENO) {
  }
  if (fd > STDERR_FILENO) ::close(fd);
}

bool zygote_disabled() {
  const char* value = std::getenv("LATMIX_TEST_ZYGOTE");
  return value != nullptr && (std::strcmp(value, "0") == 0 || ::strcasecmp(value, "off") == 0);
}

}  // namespace

int main(int argc, char** argv) {
  if (argc < 2) {
    std::fprintf(stderr, "usage: latmix_test_launch BINARY [ARGS...]\n");
    return 2;
  }
  keep_standard_fds_open();
  if (!zygote_disabled()) {
    Result result = run_via_zygote(argc - 1, argv + 1);
    if (result.outcome == Outcome::finished) return relay(result.status, argv[1]);
    std::fprintf(stderr, "latmix_test_launch: %s%s: %s\n", argv[1],
                 result.outcome == Outcome::lost ? "" : " runs without its zygote", result.why.c_str());
    if (result.outcome == Outcome::lost) return 1;
  }
  ::execv(argv[1], argv + 1);
  std::fprintf(stderr, "latmix_test_launch: cannot run %s: %s\n", argv[1], std::strerror(errno));
  return 127;
}
