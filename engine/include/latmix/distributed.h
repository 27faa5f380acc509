#pragma once
/// \file distributed.h
/// Room: engine/dist/ (issue 22). The processes of a data-parallel run on one host, through LibTorch's
/// own distributed engine (c10d): a rendezvous store (a file in a folder for `--nproc N`, or the TCP
/// store of an external launcher's RANK / WORLD_SIZE / MASTER_ADDR / MASTER_PORT) and a Gloo process
/// group on CPUs. Each process holds a Group; what every rank computed is averaged in place.
///
/// A process that stops (a crash, a kill) makes the others' next collective fail: Group turns that into
/// a latmix::Error naming the rank and the group, so that every worker ends with a message instead of
/// waiting forever. Built without c10d's Gloo headers (available() false), Group refuses to start.

#include <ATen/ATen.h>

#include <chrono>
#include <memory>
#include <optional>
#include <string>
#include <vector>

namespace latmix::dist {

/// Where the processes of a group meet.
struct Rendezvous {
  int rank = 0;   ///< 0 .. world - 1
  int world = 1;  ///< the number of processes
  /// A folder every process can write (`--nproc N` on one host): the store is a file in it. When
  /// empty, the TCP store at addr:port, which rank 0 serves (an external launcher's variables).
  std::string folder;
  std::string addr = "127.0.0.1";
  int port = 29500;
  /// The TCP store is already served (torchrun's agent, TORCHELASTIC_USE_AGENT_STORE=True): rank 0
  /// connects to it like the others instead of serving it.
  bool store_served = false;
  /// How long a process waits for the others, at the start and in each collective.
  std::chrono::milliseconds timeout{std::chrono::minutes(5)};
  /// How long the join waits for the others when shorter than `timeout` (0: `timeout`): a server
  /// that started the others itself need not wait long for one that failed to start.
  std::chrono::milliseconds join_timeout{0};
};

/// torchrun's variables: RANK, WORLD_SIZE, MASTER_ADDR (default 127.0.0.1), MASTER_PORT (default
/// 29500), TORCHELASTIC_USE_AGENT_STORE (Rendezvous::store_served). std::nullopt when WORLD_SIZE is unset. \throws latmix::UsageError naming the variable and
/// its value when one is malformed (not a number, RANK outside 0 .. WORLD_SIZE - 1, a port outside 1-65535).
std::optional<Rendezvous> rendezvous_from_env();

/// This build can run distributed (LibTorch's c10d with Gloo).
bool available();

class Group {
 public:
  /// Joins the group: blocks until every process has joined or the timeout passes. Sets SIGPIPE to
  /// be ignored in this process (Gloo's writes to a process that is gone would otherwise kill it).
  /// \throws latmix::UsageError for a bad rendezvous, latmix::Error when the others do not come.
  explicit Group(const Rendezvous& rendezvous);
  ~Group();
  Group(const Group&) = delete;
  Group& operator=(const Group&) = delete;

  int rank() const;
  int world() const;
  /// How long a collective waits for the others (Rendezvous::timeout).
  std::chrono::milliseconds timeout() const;
  /// Every tensor summed over the processes and divided by world(), in place (float tensors of the
  /// same shapes on every rank, in the same order). \throws latmix::Error when a process is gone.
  void average(std::vector<at::Tensor>& tensors);
  /// Every tensor summed over the processes, in place.
  void sum(std::vector<at::Tensor>& tensors);
  /// Every tensor becomes rank `root`'s, in place.
  void broadcast(std::vector<at::Tensor>& tensors, int root = 0);
  /// Sends the tensors to process `to`, which receives them with recv() (same shapes, dtype and
  /// device kind); returns when they are sent. Pipelines pass activations from rank to rank this way.
  void send(const std::vector<at::Tensor>& tensors, int to);
  /// Fills the tensors, in place, with what process `from` sent with send().
  void recv(std::vector<at::Tensor>& tensors, int from);
  /// Waits until every process is here.
  void barrier();

 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

}  // namespace latmix::dist
