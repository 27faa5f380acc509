#pragma once
// Data-parallel learning on one host (issue 22): `latmix learn --nproc N` runs the command in N
// processes that learn one plan together (LearnControl::group). This process is rank 0: it starts
// ranks 1..N-1 as workers, the same command line run again by this executable with the rendezvous
// in their environment (LATMIX_NPROC_RANK, LATMIX_NPROC_WORLD, LATMIX_NPROC_STORE: a fresh folder
// that holds the store file). An external launcher (torchrun) starts the processes itself and
// passes RANK, WORLD_SIZE, MASTER_ADDR and MASTER_PORT instead.
//
// Workers write nothing: rank 0 prints, and writes the events, checkpoints and outputs. A worker is
// in a process group of its own (a terminal's Ctrl-C reaches rank 0 alone, which stops every rank at
// the same step) and dies with rank 0 (PR_SET_PDEATHSIG). A worker that fails prints its message
// prefixed by its rank; rank 0's next collective then fails, and its error says which worker ended how.
#include <ATen/ATen.h>

#include <sys/types.h>
#include <chrono>
#include <memory>
#include <string>
#include <vector>

#include "args.h"
#include "latmix/progress.h"

namespace latmix::dist {
class Group;
}

namespace latmix::cli {

/// The command line that runs a command (engine_main keeps it for workers): the command's name
/// first, then its arguments.
void set_command_line(std::vector<std::string> args);

/// --nproc's option (learn and compare).
OptionSpec nproc_option();

class DataParallel {
 public:
  /// Reads --nproc (the command declares nproc_option()), a worker's environment, or an external
  /// launcher's.
  /// With more than one process: rank 0 starts the workers, then every process joins the group.
  /// An explicit --nproc 1 makes a group of this one process (the distributed path, measurable).
  /// \throws latmix::UsageError for a bad --nproc, --nproc beside an external launcher's variables,
  /// latmix::Error when the workers cannot be started or do not join.
  /// `learns`: false when nothing will be learned (fixed presets): `--nproc N` then runs this one
  /// process alone and says so (under an external launcher every process runs anyway).
  DataParallel(const Args& args, bool learns);
  /// Rank 0 of `nproc` (2 or more) processes in this process, for a server's learn job: the workers
  /// run `command` (this executable's arguments: a command and its options) with the worker's
  /// variables and LATMIX_NPROC_REQUEST naming a file that holds `request` in their environment
  /// (worker_request()). Until every worker has started (it leaves a mark in the rendezvous folder
  /// before it joins), a worker that ends fails the constructor at once, naming it, and `cancel`
  /// ends the wait (latmix::Cancelled); the start and then the join each wait at most `join_timeout`.
  /// \throws latmix::UsageError when this build has no distributed engine, latmix::Error when the
  /// workers cannot be started or do not join (naming the ones that ended), latmix::Cancelled.
  DataParallel(int nproc, const std::vector<std::string>& command, const std::string& request,
               std::chrono::milliseconds join_timeout, const CancelToken& cancel);
  /// In a worker started by the constructor above: the file of its request (else null).
  static const char* worker_request();
  /// Kills and reaps workers that are still running (rank 0 failed or was cancelled).
  ~DataParallel();
  DataParallel(const DataParallel&) = delete;
  DataParallel& operator=(const DataParallel&) = delete;

  /// The group; null for a run of one process.
  dist::Group* group() const { return group_.get(); }
  int rank() const { return rank_; }
  int world() const { return world_; }
  /// This rank's device: `requested` with cuda (no index) becoming cuda:RANK (cuda:LOCAL_RANK under
  /// an external launcher) when there is more than one process.
  at::Device device(at::Device requested) const;
  /// Rank 0 of --nproc: waits for every worker to exit. \throws latmix::Error naming each worker
  /// that failed (its exit status or signal).
  void finish();
  /// Rank 0's error with what happened to the workers (they are killed first when still running).
  std::string explain(const std::string& error);

 private:
  struct Worker {
    int rank = 0;
    pid_t pid = -1;
    int status = 0;
    bool reaped = false;
  };
  /// Kills and reaps the workers still running, leaves the group, removes the rendezvous folder.
  void close();
  /// Makes the rendezvous folder (store_folder_).
  void make_store_folder();
  /// Starts ranks 1..world_-1 running `args` with `extra_env` added to this process's environment.
  void start_workers(const std::vector<std::string>& args, const std::vector<std::string>& extra_env);
  /// Waits until every worker has left its start mark (a worker's first act in its constructor):
  /// throws latmix::Error naming a worker that ended first, or when `timeout` passes; latmix::Cancelled
  /// when `cancel` is.
  void await_workers(std::chrono::milliseconds timeout, const CancelToken& cancel);
  /// Reaps `w` if it has ended (without waiting); true when it was reaped now.
  static bool poll(Worker& w);
  /// Waits for every worker not yet reaped (killing it first when `kill_first`).
  void reap_all(bool kill_first);
  /// "worker rank 1 (pid 42) was killed by signal 9 (Killed)"
  static std::string describe(const Worker& w);
  /// The reaped workers that failed, described and joined by "; " ("" when none).
  std::string failures() const;

  int rank_ = 0;
  int world_ = 1;
  int local_rank_ = 0;
  std::string store_folder_;  // rank 0 of --nproc made it and removes it
  std::vector<Worker> workers_;
  std::unique_ptr<dist::Group> group_;
};

}  // namespace latmix::cli
