#include "zygote_server.h"

#include <dirent.h>
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <sys/file.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cerrno>
#include <chrono>
#include <cstdarg>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <vector>

#include "zygote_protocol.h"

namespace latmix::zygote {
namespace {

using Clock = std::chrono::steady_clock;
constexpr auto kIdleLimit = std::chrono::seconds(60);
constexpr int kTickMs = 1000;

// The zygote's stderr is its log file (the launcher that started it chose it).
void log_line(const char* format, ...) __attribute__((format(printf, 1, 2)));
void log_line(const char* format, ...) {
  char text[1024];
  va_list args;
  va_start(args, format);
  std::vsnprintf(text, sizeof text, format, args);
  va_end(args);
  dprintf(STDERR_FILENO, "latmix zygote %d: %s\n", static_cast<int>(::getpid()), text);
}

int thread_count() {
  DIR* dir = ::opendir("/proc/self/task");
  if (dir == nullptr) return -1;
  int count = 0;
  while (const dirent* entry = ::readdir(dir)) count += entry->d_name[0] != '.';
  ::closedir(dir);
  return count;
}

// Libraries that keep threads from load time stop them before a fork and start them again on first
// use (OpenBLAS's pthreads build starts its pool in a constructor and registers blas_thread_shutdown
// with pthread_atfork). One fork that does nothing runs those handlers; whatever thread remains
// after it would be lost in every child. 1 when that leaves the process single-threaded.
int threads_after_a_fork() {
  pid_t pid = ::fork();
  if (pid == 0) std::_Exit(0);
  if (pid > 0) ::waitpid(pid, nullptr, 0);
  int threads = thread_count();
  for (int i = 0; i < 50 && threads > 1; ++i) {  // a joined thread leaves /proc a moment later
    ::usleep(2000);
    threads = thread_count();
  }
  return threads;
}

int pidfd_open(pid_t pid) {
  return static_cast<int>(::syscall(SYS_pidfd_open, pid, 0));
}

std::vector<std::string> current_environment() {
  std::vector<std::string> env;
  for (char** e = environ; *e != nullptr; ++e) env.emplace_back(*e);
  return env;
}

std::string lock_path_of(const std::string& socket_path) {
  const std::string suffix = ".sock";
  if (socket_path.size() > suffix.size() &&
      socket_path.compare(socket_path.size() - suffix.size(), suffix.size(), suffix) == 0) {
    return socket_path.substr(0, socket_path.size() - suffix.size()) + ".lock";
  }
  return socket_path + ".lock";
}

// Registered in a child before its case runs, so exit() calls it after the handlers the case
// registered (newest first) and before those registered while the zygote initialised: the
// destructors of LibTorch's static registries, which in a fork write to every page they touch
// (0.6 s of copy-on-write faults for an empty case of latmix_unit_tests), never ran in a
// short-lived process to any purpose. stdio is flushed here since exit() would do it after.
void leave_before_static_destructors(int status, void* /*unused*/) {
  std::fflush(nullptr);
  std::_Exit(status);
}

// Whether a child can take the launcher's limits: a hard limit can be lowered, never raised.
bool limits_reachable(const std::vector<Limit>& limits) {
  for (const Limit& l : limits) {
    rlimit own{};
    if (::getrlimit(l.resource, &own) != 0) return false;
    if (own.rlim_max != RLIM_INFINITY && (l.hard == RLIM_INFINITY || l.hard > own.rlim_max)) return false;
  }
  return true;
}

// One running case: the launcher's connection and the forked child.
struct Session {
  int conn = -1;  // -1 once the launcher went away (the child is killed then)
  pid_t pid = -1;
  int pidfd = -1;
};

class Zygote {
 public:
  Zygote(ServeOptions options, RunCases run_cases) : options_(std::move(options)), run_cases_(run_cases) {}
  bool listen_on_socket();
  int run();

 private:
  void accept_one();
  void start_case(int conn, const Request& request, const int fds[3]);
  [[noreturn]] void become_child(int conn, const Request& request, const int fds[3]);
  bool serve_session(Session& s, short pidfd_events, short conn_events);
  void check_still_wanted();
  void stop_listening(const char* why);
  bool socket_is_ours() const;

  ServeOptions options_;
  RunCases run_cases_;
  int listen_fd_ = -1;
  struct stat socket_stat_ {};
  std::string binary_path_;
  BinaryIdentity identity_;
  std::vector<std::string> load_env_;
  std::vector<Session> sessions_;
  Clock::time_point last_activity_ = Clock::now();
};

bool Zygote::listen_on_socket() {
  char exe[4096];
  ssize_t n = ::readlink("/proc/self/exe", exe, sizeof exe - 1);
  auto id = identity_of("/proc/self/exe");
  if (n <= 0 || !id) return false;
  binary_path_.assign(exe, static_cast<size_t>(n));
  identity_ = *id;
  load_env_ = load_time_entries(current_environment());

  sockaddr_un addr{};
  addr.sun_family = AF_UNIX;
  if (options_.socket_path.size() >= sizeof addr.sun_path) return false;
  std::memcpy(addr.sun_path, options_.socket_path.c_str(), options_.socket_path.size() + 1);
  listen_fd_ = ::socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
  if (listen_fd_ < 0 || ::bind(listen_fd_, reinterpret_cast<sockaddr*>(&addr), sizeof addr) != 0 ||
      ::listen(listen_fd_, 128) != 0 || ::stat(options_.socket_path.c_str(), &socket_stat_) != 0) {
    log_line("cannot listen on %s: %s", options_.socket_path.c_str(), std::strerror(errno));
    return false;
  }
  return true;
}

bool Zygote::socket_is_ours() const {
  struct stat st {};
  return ::stat(options_.socket_path.c_str(), &st) == 0 && st.st_ino == socket_stat_.st_ino &&
         st.st_dev == socket_stat_.st_dev;
}

// Under the launchers' lock, so that a launcher starting the next zygote never sees its socket removed.
void Zygote::stop_listening(const char* why) {
  if (listen_fd_ < 0) return;
  log_line("stops listening: %s", why);
  int lock = ::open(lock_path_of(options_.socket_path).c_str(), O_RDWR | O_CREAT | O_CLOEXEC, 0600);
  if (lock >= 0) ::flock(lock, LOCK_EX);
  if (socket_is_ours()) ::unlink(options_.socket_path.c_str());
  if (lock >= 0) ::close(lock);
  ::close(listen_fd_);
  listen_fd_ = -1;
}

void Zygote::check_still_wanted() {
  if (listen_fd_ < 0) return;
  auto id = identity_of(binary_path_);
  if (!id || !(*id == identity_)) {
    stop_listening("the binary was rebuilt or removed");
  } else if (!socket_is_ours()) {
    stop_listening("the socket was removed or replaced");
  } else if (sessions_.empty() && Clock::now() - last_activity_ > kIdleLimit) {
    stop_listening("idle");
  }
}

void Zygote::accept_one() {
  int conn = ::accept4(listen_fd_, nullptr, nullptr, SOCK_CLOEXEC);
  if (conn < 0) return;
  last_activity_ = Clock::now();
  timeval timeout{10, 0};  // a launcher sends its request at once; never let one stall the others
  ::setsockopt(conn, SOL_SOCKET, SO_RCVTIMEO, &timeout, sizeof timeout);
  Request request;
  int fds[3];
  Refusal refusal = Refusal::bad_request;
  bool ok = receive_request(conn, &request, fds);
  if (ok && !(request.binary == identity_)) {
    stop_listening("a launcher saw a rebuilt binary");
    refusal = Refusal::stale_binary;
    ok = false;
  } else if (ok && load_time_entries(request.env) != load_env_) {
    refusal = Refusal::environment;
    ok = false;
  } else if (ok && !limits_reachable(request.limits)) {
    refusal = Refusal::limits;
    ok = false;
  }
  if (ok) {
    start_case(conn, request, fds);
    return;
  }
  for (int fd : fds) {
    if (fd >= 0) ::close(fd);
  }
  send_reply(conn, {ReplyKind::refused, static_cast<std::int32_t>(refusal)});
  ::close(conn);
}

void Zygote::start_case(int conn, const Request& request, const int fds[3]) {
  std::fflush(nullptr);
  pid_t pid = ::fork();
  if (pid == 0) become_child(conn, request, fds);
  for (int i = 0; i < 3; ++i) ::close(fds[i]);  // the launcher's pipes must close when the child exits
  int pidfd = pid > 0 ? pidfd_open(pid) : -1;
  if (pid > 0 && pidfd < 0) {
    ::kill(pid, SIGKILL);
    ::waitpid(pid, nullptr, 0);
  }
  if (pidfd < 0) {
    log_line("cannot start a case: %s", std::strerror(errno));
    send_reply(conn, {ReplyKind::refused, static_cast<std::int32_t>(Refusal::fork_failed)});
    ::close(conn);
    return;
  }
  ::setpgid(pid, pid);  // also in the child: whichever runs first, the group exists before a kill
  send_reply(conn, {ReplyKind::started, static_cast<std::int32_t>(pid)});
  sessions_.push_back({conn, pid, pidfd});
}

void Zygote::become_child(int conn, const Request& request, const int fds[3]) {
  ::setpgid(0, 0);
  ::close(conn);
  if (listen_fd_ >= 0) ::close(listen_fd_);
  for (const Session& s : sessions_) {
    if (s.conn >= 0) ::close(s.conn);
    ::close(s.pidfd);
  }
  struct sigaction dfl {};
  dfl.sa_handler = SIG_DFL;
  ::sigaction(SIGPIPE, &dfl, nullptr);
  ::sigaction(SIGCHLD, &dfl, nullptr);
  // What an exec'd binary inherits from its launcher: the signals it ignores and its limits.
  struct sigaction ign {};
  ign.sa_handler = SIG_IGN;
  for (int sig = 1; sig <= 64; ++sig) {
    if ((request.ignored_signals >> (sig - 1)) & 1u) ::sigaction(sig, &ign, nullptr);
  }
  for (const Limit& l : request.limits) {
    const rlimit rl{static_cast<rlim_t>(l.soft), static_cast<rlim_t>(l.hard)};
    if (::setrlimit(l.resource, &rl) != 0) {
      dprintf(STDERR_FILENO, "latmix zygote: cannot take the launcher's limit %d: %s\n", l.resource, std::strerror(errno));
      std::_Exit(127);
    }
  }
  sigset_t none;
  sigemptyset(&none);
  ::sigprocmask(SIG_SETMASK, &none, nullptr);
  for (int i = 0; i < 3; ++i) ::dup2(fds[i], i);  // the received fds are all above 2: 0-2 were open
  for (int i = 0; i < 3; ++i) ::close(fds[i]);
  ::umask(static_cast<mode_t>(request.umask));
  if (::chdir(request.cwd.c_str()) != 0) {
    dprintf(STDERR_FILENO, "latmix zygote: cannot enter %s: %s\n", request.cwd.c_str(), std::strerror(errno));
    std::_Exit(127);
  }
  ::clearenv();
  for (const std::string& entry : request.env) ::putenv(::strdup(entry.c_str()));
  std::vector<char*> argv;
  for (const std::string& arg : request.argv) argv.push_back(::strdup(arg.c_str()));
  argv.push_back(nullptr);
  ::on_exit(leave_before_static_destructors, nullptr);
  std::exit(run_cases_(static_cast<int>(request.argv.size()), argv.data()));
}

// Returns true once the session is over (its child reaped).
bool Zygote::serve_session(Session& s, short pidfd_events, short conn_events) {
  if (pidfd_events != 0) {
    int status = 0;
    ::waitpid(s.pid, &status, 0);
    if (s.conn >= 0) {
      send_reply(s.conn, {ReplyKind::exited, status});
      ::close(s.conn);
    }
    ::close(s.pidfd);
    last_activity_ = Clock::now();
    return true;
  }
  if (conn_events != 0 && s.conn >= 0) {  // a launcher sends nothing more: this is it going away
    log_line("the launcher of case %d went away (ctest's timeout?): killing it", static_cast<int>(s.pid));
    ::kill(-s.pid, SIGKILL);
    ::kill(s.pid, SIGKILL);
    ::close(s.conn);
    s.conn = -1;
  }
  return false;
}

int Zygote::run() {
  while (listen_fd_ >= 0 || !sessions_.empty()) {
    std::vector<pollfd> polled;
    for (const Session& s : sessions_) {
      polled.push_back({s.pidfd, POLLIN, 0});
      polled.push_back({s.conn, POLLIN, 0});  // poll ignores -1
    }
    if (listen_fd_ >= 0) polled.push_back({listen_fd_, POLLIN, 0});
    if (::poll(polled.data(), polled.size(), kTickMs) < 0 && errno != EINTR) {
      log_line("poll: %s", std::strerror(errno));
      return 1;
    }
    std::vector<Session> running;
    for (size_t i = 0; i < sessions_.size(); ++i) {
      if (!serve_session(sessions_[i], polled[2 * i].revents, polled[2 * i + 1].revents)) {
        running.push_back(sessions_[i]);
      }
    }
    sessions_ = std::move(running);
    if (listen_fd_ >= 0 && (polled.back().revents & POLLIN) != 0) accept_one();
    check_still_wanted();
  }
  return 0;
}

}  // namespace

std::optional<ServeOptions> zygote_mode(int argc, char** argv) {
  if (argc < 2 || std::string_view(argv[1]).substr(0, kZygoteOption.size()) != kZygoteOption) return std::nullopt;
  ServeOptions options;
  options.socket_path = std::string(argv[1] + kZygoteOption.size());
  if (argc > 2 && std::string_view(argv[2]).substr(0, kReadyFdOption.size()) == kReadyFdOption) {
    options.ready_fd = std::atoi(argv[2] + kReadyFdOption.size());
  }
  return options;
}

int serve(const ServeOptions& options, RunCases run_cases) {
  if (int threads = threads_after_a_fork(); threads != 1) {
    log_line("refuses to serve: the process keeps %d threads across a fork after static initialisation", threads);
    return 3;
  }
  int self = pidfd_open(::getpid());
  if (self < 0) {
    log_line("refuses to serve: no pidfd_open (%s)", std::strerror(errno));
    return 3;
  }
  ::close(self);
  struct sigaction dfl {};
  dfl.sa_handler = SIG_DFL;
  ::sigaction(SIGCHLD, &dfl, nullptr);  // an ignored SIGCHLD would let the children reap themselves
  if (::chdir("/") != 0) return 3;  // every child enters its launcher's; hold no directory meanwhile
  Zygote zygote(options, run_cases);
  if (!zygote.listen_on_socket()) return 3;
  log_line("listening on %s", options.socket_path.c_str());
  if (options.ready_fd >= 0) {
    (void)!::write(options.ready_fd, "1", 1);
    ::close(options.ready_fd);
  }
  return zygote.run();
}

int main_or_serve(int argc, char** argv, RunCases run_cases) {
  if (auto options = zygote_mode(argc, argv)) return serve(*options, run_cases);
  return run_cases(argc, argv);
}

}  // namespace latmix::zygote
