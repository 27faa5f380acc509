// latmix learn --nproc N: the worker processes of a data-parallel run on one host (data_parallel.h).
#include "data_parallel.h"

#include <fcntl.h>
#include <signal.h>
#include <sys/prctl.h>
#include <sys/wait.h>
#include <unistd.h>

#include <atomic>
#include <cerrno>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <mutex>
#include <thread>

#include "latmix/distributed.h"
#include "latmix/error.h"
#include "latmix/files.h"

extern char** environ;

namespace latmix::cli {

namespace {

std::vector<std::string>& saved_command_line() {
  static std::vector<std::string> args;
  return args;
}

const char* const kRankVar = "LATMIX_NPROC_RANK";
const char* const kWorldVar = "LATMIX_NPROC_WORLD";
const char* const kStoreVar = "LATMIX_NPROC_STORE";
const char* const kRequestVar = "LATMIX_NPROC_REQUEST";  // a server's learn job: the request's file

std::string describe_status(int status) {
  if (WIFEXITED(status)) return "exited with status " + std::to_string(WEXITSTATUS(status));
  if (WIFSIGNALED(status)) {
    const int sig = WTERMSIG(status);
    return "was killed by signal " + std::to_string(sig) + " (" + std::string(strsignal(sig)) + ")";
  }
  return "ended (status " + std::to_string(status) + ")";
}

bool failed(int status) { return !(WIFEXITED(status) && WEXITSTATUS(status) == 0); }

// The file a worker writes in the rendezvous folder once it runs (DataParallel::await_workers).
std::string start_mark(const std::string& folder, int rank) {
  return folder + "/started-" + std::to_string(rank);
}

// How long a process waits for the others: at the start, and in each collective (rank 0 may write a
// checkpoint while the others wait in the next step's). A process that stops is noticed at once.
constexpr std::chrono::minutes kTimeout{30};

}  // namespace

void set_command_line(std::vector<std::string> args) { saved_command_line() = std::move(args); }

OptionSpec nproc_option() {
  return {"nproc", "N",
          "processes that learn together on this host (data-parallel: each takes its share of every batch, the "
          "gradients are summed; with --device cuda one GPU each; rank 0 prints and writes). Given as 1, this one "
          "process runs the distributed path. Through --engine (learn only), the engine starts them on its host",
          "1", false};
}

DataParallel::DataParallel(const Args& args, bool learns) {
  const char* worker_rank = std::getenv(kRankVar);
  const int64_t nproc = args.integer("nproc");
  if (nproc < 1 || nproc > 1024) throw UsageError("--nproc: expected 1 to 1024, found " + std::to_string(nproc));
  dist::Rendezvous r;
  r.timeout = kTimeout;
  if (worker_rank != nullptr) {  // a worker of --nproc
    const char* world = std::getenv(kWorldVar);
    const char* store = std::getenv(kStoreVar);
    if (world == nullptr || store == nullptr) {
      throw UsageError(std::string(kRankVar) + " is set without " + kWorldVar + " and " + kStoreVar +
                       " (they are latmix --nproc's own variables)");
    }
    r.rank = std::atoi(worker_rank);
    r.world = std::atoi(world);
    r.folder = store;
    if (r.world != nproc) {
      throw UsageError(std::string(kWorldVar) + "=" + world + " differs from --nproc " + std::to_string(nproc));
    }
    // The start mark that a server's rank 0 waits for (await_workers) before it joins.
    const std::string mark = start_mark(store, r.rank);
    if (!std::ofstream(mark)) throw Error("--nproc: worker rank " + std::string(worker_rank) + " cannot write " + mark);
    local_rank_ = r.rank;
  } else if (auto env = dist::rendezvous_from_env()) {  // an external launcher (torchrun)
    if (args.has("nproc") && nproc != 1) {
      throw UsageError("--nproc " + std::to_string(nproc) + " beside WORLD_SIZE=" + std::to_string(env->world) +
                       ": an external launcher (torchrun) starts the processes; leave --nproc out");
    }
    r = *env;
    r.timeout = kTimeout;
    const char* local = std::getenv("LOCAL_RANK");
    local_rank_ = local != nullptr ? std::atoi(local) : r.rank;
  } else if (nproc > 1 && !learns) {
    if (!args.flag("quiet")) {
      std::fprintf(stderr, "note: --nproc %lld: nothing is learned, so one process does it all\n",
                   static_cast<long long>(nproc));
    }
    return;
  } else if (nproc > 1 || (args.has("nproc") && dist::available())) {  // --nproc 1 given: the distributed path
    if (!dist::available()) {
      throw UsageError("--nproc " + std::to_string(nproc) +
                       ": this build of latmix has no distributed engine (LibTorch's c10d with Gloo was not found "
                       "when it was built)");
    }
    r.world = static_cast<int>(nproc);
    make_store_folder();
    r.folder = store_folder_;
    world_ = r.world;
    if (world_ > 1) {
      std::vector<std::string> command = saved_command_line();
      if (command.empty()) throw Error("--nproc: the command line to run in the workers is unknown");
      if (!args.flag("quiet")) command.push_back("--quiet");  // rank 0 alone prints
      start_workers(command, {});
    }
  } else {
    return;  // one process
  }
  rank_ = r.rank;
  world_ = r.world;
  // Rank 0 of --nproc watches its workers while the group forms: one that cannot start (or fails
  // before it joins) ends the run at once instead of after the join's timeout.
  std::atomic<bool> joined{false};
  std::thread watch;
  if (!workers_.empty()) {
    watch = std::thread([this, &joined] {
      while (!joined.load()) {
        for (Worker& w : workers_) {
          if (poll(w)) {
            std::fprintf(stderr, "error: --nproc: %s before the processes met\n", describe(w).c_str());
            reap_all(true);
            if (!store_folder_.empty()) {
              std::error_code ec;
              std::filesystem::remove_all(store_folder_, ec);
            }
            std::_Exit(1);
          }
        }
        std::this_thread::sleep_for(std::chrono::milliseconds(50));
      }
    });
  }
  try {
    group_ = std::make_unique<dist::Group>(r);
  } catch (...) {
    joined = true;
    if (watch.joinable()) watch.join();
    throw;
  }
  joined = true;
  if (watch.joinable()) watch.join();
}

DataParallel::DataParallel(int nproc, const std::vector<std::string>& command, const std::string& request,
                           std::chrono::milliseconds join_timeout, const CancelToken& cancel) {
  if (!dist::available()) {
    throw UsageError("nproc " + std::to_string(nproc) +
                     ": this build of latmix has no distributed engine (LibTorch's c10d with Gloo was not found "
                     "when it was built)");
  }
  if (nproc < 2 || nproc > 1024) throw UsageError("nproc: expected 2 to 1024, found " + std::to_string(nproc));
  dist::Rendezvous r;
  r.timeout = kTimeout;
  r.join_timeout = join_timeout;
  r.world = nproc;
  world_ = nproc;
  make_store_folder();
  r.folder = store_folder_;
  try {
    const std::string request_file = store_folder_ + "/request.json";
    AtomicFile file(request_file);
    file.write(request);
    file.commit();
    start_workers(command, {std::string(kRequestVar) + "=" + request_file});
    await_workers(join_timeout, cancel);
    try {
      group_ = std::make_unique<dist::Group>(r);
    } catch (const Error& e) {
      throw Error(explain(e.what()));
    }
  } catch (...) {
    close();  // the destructor does not run for a constructor that throws
    throw;
  }
}

const char* DataParallel::worker_request() {
  return std::getenv(kRankVar) != nullptr ? std::getenv(kRequestVar) : nullptr;
}

void DataParallel::make_store_folder() {
  const std::string templ = (std::filesystem::temp_directory_path() / "latmix-nproc-XXXXXX").string();
  std::vector<char> buf(templ.begin(), templ.end());
  buf.push_back('\0');
  if (mkdtemp(buf.data()) == nullptr) {
    throw Error("--nproc: cannot make a folder for the processes' rendezvous in " + templ + ": " +
                std::strerror(errno));
  }
  store_folder_ = buf.data();
}

void DataParallel::start_workers(const std::vector<std::string>& args, const std::vector<std::string>& extra_env) {
  // Everything the children need, built before fork(): a child only calls async-signal-safe functions.
  std::vector<std::string> env_strings;
  for (char** e = environ; *e != nullptr; ++e) {
    const std::string v = *e;
    if (v.rfind(std::string(kRankVar) + "=", 0) == 0 || v.rfind(std::string(kWorldVar) + "=", 0) == 0 ||
        v.rfind(std::string(kStoreVar) + "=", 0) == 0 || v.rfind(std::string(kRequestVar) + "=", 0) == 0) {
      continue;
    }
    env_strings.push_back(v);
  }
  env_strings.push_back(std::string(kWorldVar) + "=" + std::to_string(world_));
  env_strings.push_back(std::string(kStoreVar) + "=" + store_folder_);
  env_strings.insert(env_strings.end(), extra_env.begin(), extra_env.end());
  std::vector<std::string> argv_strings = {"latmix-engine"};
  argv_strings.insert(argv_strings.end(), args.begin(), args.end());
  std::vector<char*> argv;
  for (auto& a : argv_strings) argv.push_back(a.data());
  argv.push_back(nullptr);
  const pid_t parent = getpid();
  for (int rank = 1; rank < world_; ++rank) {
    std::vector<std::string> env_rank = env_strings;
    env_rank.push_back(std::string(kRankVar) + "=" + std::to_string(rank));
    std::vector<char*> envp;
    for (auto& e : env_rank) envp.push_back(e.data());
    envp.push_back(nullptr);
    std::fflush(nullptr);
    const pid_t pid = fork();
    if (pid < 0) {
      const std::string why = std::strerror(errno);
      reap_all(true);
      throw Error("--nproc: cannot start worker rank " + std::to_string(rank) + ": " + why);
    }
    if (pid == 0) {
      setpgid(0, 0);  // a terminal's Ctrl-C goes to rank 0, which stops every rank at the same step
      prctl(PR_SET_PDEATHSIG, SIGKILL);
      if (getppid() != parent) _exit(1);  // rank 0 is already gone
      execve("/proc/self/exe", argv.data(), envp.data());
      const char msg[] = "error: --nproc: cannot run /proc/self/exe for a worker\n";
      ssize_t ignored = write(2, msg, sizeof msg - 1);
      (void)ignored;
      _exit(127);
    }
    workers_.push_back({rank, pid, 0, false});
  }
}

void DataParallel::await_workers(std::chrono::milliseconds timeout, const CancelToken& cancel) {
  const auto deadline = std::chrono::steady_clock::now() + timeout;
  for (;;) {
    std::string waiting;
    for (Worker& w : workers_) {
      if (poll(w)) throw Error("nproc " + std::to_string(world_) + ": " + describe(w) + " before the processes met");
      if (!std::filesystem::exists(start_mark(store_folder_, w.rank)))
        waiting += (waiting.empty() ? "" : ", ") + std::to_string(w.rank);
    }
    if (waiting.empty()) return;
    cancel.check();
    if (std::chrono::steady_clock::now() > deadline) {
      throw Error("nproc " + std::to_string(world_) + ": worker rank " + waiting + " did not start within " +
                  std::to_string(std::chrono::duration_cast<std::chrono::seconds>(timeout).count()) + " s");
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(20));
  }
}

std::string DataParallel::describe(const Worker& w) {
  return "worker rank " + std::to_string(w.rank) + " (pid " + std::to_string(w.pid) + ") " + describe_status(w.status);
}

bool DataParallel::poll(Worker& w) {
  int status = 0;
  if (w.reaped || waitpid(w.pid, &status, WNOHANG) != w.pid) return false;
  w.reaped = true;
  w.status = status;
  return true;
}

void DataParallel::reap_all(bool kill_first) {
  for (Worker& w : workers_) {
    if (w.reaped) continue;
    if (kill_first) kill(w.pid, SIGKILL);
    int status = 0;
    while (waitpid(w.pid, &status, 0) < 0 && errno == EINTR) {
    }
    w.reaped = true;
    w.status = status;
  }
}

std::string DataParallel::failures() const {
  std::string report;
  for (const Worker& w : workers_) {
    if (!w.reaped || !failed(w.status)) continue;
    if (!report.empty()) report += "; ";
    report += describe(w);
  }
  return report;
}

void DataParallel::finish() {
  if (workers_.empty()) return;
  reap_all(false);
  const std::string report = failures();
  if (!report.empty()) throw Error("--nproc " + std::to_string(world_) + ": " + report);
}

std::string DataParallel::explain(const std::string& error) {
  if (workers_.empty()) return error;
  // Ended workers first (the one that failed made this rank's collective fail), then the rest. A
  // process's sockets close a moment before it can be reaped: wait up to a second for one to end.
  for (int tries = 0; tries < 100; ++tries) {
    bool any = false;
    for (Worker& w : workers_) any = poll(w) || w.reaped || any;
    if (any) break;
    std::this_thread::sleep_for(std::chrono::milliseconds(10));
  }
  const std::string ended = failures();
  reap_all(true);
  return ended.empty() ? error : error + " [" + ended + "]";
}

void DataParallel::close() {
  reap_all(true);
  group_.reset();
  if (!store_folder_.empty()) {
    std::error_code ec;
    std::filesystem::remove_all(store_folder_, ec);
    store_folder_.clear();
  }
}

DataParallel::~DataParallel() {
  close();
}

at::Device DataParallel::device(at::Device requested) const {
  if (world_ > 1 && requested.is_cuda() && !requested.has_index()) {
    return at::Device(at::kCUDA, static_cast<c10::DeviceIndex>(local_rank_));
  }
  return requested;
}

}  // namespace latmix::cli
