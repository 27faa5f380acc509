// Data-parallel process groups through c10d (latmix/distributed.h).
#include "latmix/distributed.h"

#include <cerrno>
#include <csignal>
#include <cstdlib>
#include <string>

#include "latmix/error.h"

#if LATMIX_WITH_DISTRIBUTED
#include <torch/csrc/distributed/c10d/FileStore.hpp>
#include <torch/csrc/distributed/c10d/ProcessGroupGloo.hpp>
#include <torch/csrc/distributed/c10d/PrefixStore.hpp>
#include <torch/csrc/distributed/c10d/TCPStore.hpp>
#endif
#if LATMIX_WITH_NCCL
#include <c10/cuda/CUDAGuard.h>
#include <torch/csrc/distributed/c10d/ProcessGroupNCCL.hpp>
#endif

namespace latmix::dist {

namespace {

std::optional<long long> env_number(const char* name, long long low, long long high, bool required) {
  const char* text = std::getenv(name);
  if (text == nullptr || *text == '\0') {
    if (required) throw UsageError(std::string(name) + " is not set (distributed runs need RANK and WORLD_SIZE)");
    return std::nullopt;
  }
  errno = 0;
  char* end = nullptr;
  const long long value = std::strtoll(text, &end, 10);
  if (errno != 0 || end == text || *end != '\0' || value < low || value > high) {
    throw UsageError(std::string(name) + "='" + text + "': expected a whole number from " + std::to_string(low) +
                     " to " + std::to_string(high));
  }
  return value;
}

std::string where(const Rendezvous& r) {
  return "rank " + std::to_string(r.rank) + " of " + std::to_string(r.world) + " (" +
         (r.folder.empty() ? "tcp://" + r.addr + ":" + std::to_string(r.port) : "store in " + r.folder) + ")";
}

void check(const Rendezvous& r) {
  if (r.world < 1) throw UsageError("distributed: the number of processes must be 1 or more, not " + std::to_string(r.world));
  if (r.rank < 0 || r.rank >= r.world)
    throw UsageError("distributed: rank " + std::to_string(r.rank) + " is outside 0.." + std::to_string(r.world - 1));
  if (r.folder.empty() && (r.port < 1 || r.port > 65535))
    throw UsageError("distributed: port " + std::to_string(r.port) + " is outside 1-65535");
}

}  // namespace

std::optional<Rendezvous> rendezvous_from_env() {
  const auto world = env_number("WORLD_SIZE", 1, 1 << 20, false);
  if (!world) return std::nullopt;
  Rendezvous r;
  r.world = static_cast<int>(*world);
  r.rank = static_cast<int>(*env_number("RANK", 0, *world - 1, true));
  if (const char* addr = std::getenv("MASTER_ADDR"); addr != nullptr && *addr != '\0') r.addr = addr;
  if (const auto port = env_number("MASTER_PORT", 1, 65535, false)) r.port = static_cast<int>(*port);
  if (const char* agent = std::getenv("TORCHELASTIC_USE_AGENT_STORE"); agent != nullptr) {
    r.store_served = std::string(agent) == "True";
  }
  return r;
}

#if LATMIX_WITH_DISTRIBUTED

bool available() { return true; }

struct Group::Impl {
  Rendezvous rendezvous;
  c10::intrusive_ptr<c10d::Store> store;
  c10::intrusive_ptr<c10d::ProcessGroupGloo> group;
#if LATMIX_WITH_NCCL
  // CUDA tensors go through NCCL (made at the first collective on a GPU, one per device index).
  c10::intrusive_ptr<c10d::ProcessGroupNCCL> nccl;
  c10::DeviceIndex nccl_device = -1;
#endif
  // Calls f with the backend for tensors on `device`: Gloo on the CPU; NCCL on CUDA where built
  // (else Gloo, which copies CUDA tensors through the host). A template: the backends' common base
  // is c10d::ProcessGroup in LibTorch 1.13 and c10d::Backend in 2.x.
  template <class F>
  c10::intrusive_ptr<c10d::Work> on(const at::Device& device, F f) {
#if LATMIX_WITH_NCCL
    if (device.is_cuda()) {
      if (!nccl) {
        auto options = c10d::ProcessGroupNCCL::Options::create();
        options->timeout = rendezvous.timeout;
        nccl_device = device.index();
        c10::cuda::CUDAGuard guard(device);
        nccl = c10::make_intrusive<c10d::ProcessGroupNCCL>(
            c10::make_intrusive<c10d::PrefixStore>("nccl", store), rendezvous.rank, rendezvous.world, options);
      } else if (device.index() != nccl_device) {
        throw Error("distributed: this process's collectives are on cuda:" + std::to_string(nccl_device) +
                    ", not " + device.str() + " (one GPU per process)");
      }
      return f(*nccl);
    }
#endif
    (void)device;
    return f(*group);
  }

  // Runs one collective to its end; a process that is gone (or a timeout) is an Error naming this one.
  void run(const char* what, const std::function<c10::intrusive_ptr<c10d::Work>()>& start) const {
    try {
      auto work = start();
      work->wait(rendezvous.timeout);
    } catch (const Error&) {
      throw;
    } catch (const std::exception& e) {
      throw Error("distributed " + std::string(what) + " failed at " + where(rendezvous) +
                  ": another process stopped, did not answer, or sent other shapes (" + e.what() + ")");
    }
  }
};

Group::Group(const Rendezvous& r) : impl_(std::make_unique<Impl>()) {
  check(r);
  impl_->rendezvous = r;
  const std::chrono::milliseconds join =
      r.join_timeout.count() > 0 && r.join_timeout < r.timeout ? r.join_timeout : r.timeout;
  // Gloo writes to its peers' sockets without MSG_NOSIGNAL: a write to a process that is gone would
  // kill this one with SIGPIPE instead of failing the collective with the error below.
  std::signal(SIGPIPE, SIG_IGN);
  try {
    if (!r.folder.empty()) {
      impl_->store = c10::make_intrusive<c10d::FileStore>(r.folder + "/latmix-rendezvous", r.world);
    } else {
      c10d::TCPStoreOptions o;
      o.port = static_cast<std::uint16_t>(r.port);
      o.isServer = r.rank == 0 && !r.store_served;
      o.numWorkers = static_cast<std::size_t>(r.world);
      o.waitWorkers = true;
      o.timeout = join;
      impl_->store = c10::make_intrusive<c10d::TCPStore>(r.addr, o);
    }
    impl_->store->setTimeout(join);
    auto options = c10d::ProcessGroupGloo::Options::create(r.timeout);
    options->devices.push_back(c10d::ProcessGroupGloo::createDeviceForHostname("127.0.0.1"));
    impl_->group = c10::make_intrusive<c10d::ProcessGroupGloo>(c10::make_intrusive<c10d::PrefixStore>("gloo", impl_->store),
                                                               r.rank, r.world, options);
    impl_->store->setTimeout(r.timeout);
  } catch (const Error&) {
    throw;
  } catch (const std::exception& e) {
    throw Error("distributed: " + where(r) + " could not join its group within " + std::to_string(join.count() / 1000) +
                " s: " + e.what());
  }
}

Group::~Group() {
#if LATMIX_WITH_NCCL
  // NCCL's communicators are released here, not at the process's exit (which warns of a leak).
  if (impl_ && impl_->nccl) {
    try {
      impl_->nccl->shutdown();
    } catch (const std::exception&) {
    }
  }
#endif
}

int Group::rank() const { return impl_->rendezvous.rank; }
int Group::world() const { return impl_->rendezvous.world; }
std::chrono::milliseconds Group::timeout() const { return impl_->rendezvous.timeout; }

namespace {

// c10d's vector of tensors is one tensor per device: the tensors of a step travel as one flat buffer.
at::Tensor flat(const std::vector<at::Tensor>& tensors) {
  std::vector<at::Tensor> parts;
  for (const at::Tensor& t : tensors) {
    if (t.scalar_type() != tensors.front().scalar_type() || t.device() != tensors.front().device())
      throw Error("distributed: the tensors of one collective must share their dtype and device");
    parts.push_back(t.reshape({-1}));
  }
  return at::cat(parts);
}

void unflat(const at::Tensor& buffer, std::vector<at::Tensor>& tensors) {
  int64_t at_ = 0;
  for (at::Tensor& t : tensors) {
    t.copy_(buffer.narrow(0, at_, t.numel()).view(t.sizes()));
    at_ += t.numel();
  }
}

}  // namespace

// A group of one process runs its collectives too (c10d's own copies): `--nproc 1` measures what
// the distributed path costs.
void Group::sum(std::vector<at::Tensor>& tensors) {
  if (tensors.empty()) return;
  std::vector<at::Tensor> buffer = {flat(tensors)};
  impl_->run("sum", [&] {
    c10d::AllreduceOptions o;
    o.reduceOp = c10d::ReduceOp::SUM;
    return impl_->on(buffer.front().device(), [&](auto& pg) { return pg.allreduce(buffer, o); });
  });
  unflat(buffer.front(), tensors);
}

void Group::average(std::vector<at::Tensor>& tensors) {
  sum(tensors);
  if (world() == 1) return;
  for (at::Tensor& t : tensors) t.div_(static_cast<double>(world()));
}

void Group::broadcast(std::vector<at::Tensor>& tensors, int root) {
  if (tensors.empty()) return;
  std::vector<at::Tensor> buffer = {flat(tensors)};
  impl_->run("broadcast", [&] {
    c10d::BroadcastOptions o;
    o.rootRank = root;
    return impl_->on(buffer.front().device(), [&](auto& pg) { return pg.broadcast(buffer, o); });
  });
  unflat(buffer.front(), tensors);
}

namespace {

// One message between this process and `peer` (Group::send, Group::recv): the tensors as one flat
// buffer, `op(backend, buffer)` starting it. Returns the buffer. (A template on the group's Impl,
// which is private to Group.)
template <class Impl, class Op>
at::Tensor message(Impl& impl, const char* what, const std::vector<at::Tensor>& tensors, int peer, Op op) {
  const Rendezvous& r = impl.rendezvous;
  if (peer < 0 || peer >= r.world || peer == r.rank) {
    throw Error("distributed: " + std::string(what) + " with rank " + std::to_string(peer) + " at " + where(r));
  }
  std::vector<at::Tensor> buffer = {flat(tensors)};
  impl.run(what, [&] { return impl.on(buffer.front().device(), [&](auto& pg) { return op(pg, buffer); }); });
  return buffer.front();
}

}  // namespace

void Group::send(const std::vector<at::Tensor>& tensors, int to) {
  if (tensors.empty()) return;
  message(*impl_, "send", tensors, to, [to](auto& pg, std::vector<at::Tensor>& b) { return pg.send(b, to, 0); });
}

void Group::recv(std::vector<at::Tensor>& tensors, int from) {
  if (tensors.empty()) return;
  const at::Tensor buffer =
      message(*impl_, "recv", tensors, from, [from](auto& pg, std::vector<at::Tensor>& b) { return pg.recv(b, from, 0); });
  unflat(buffer, tensors);
}

void Group::barrier() {
  if (world() == 1) return;
  impl_->run("barrier", [&] { return impl_->group->barrier(); });
}

#else  // a LibTorch without c10d's Gloo headers

bool available() { return false; }

struct Group::Impl {
  Rendezvous rendezvous;
};

Group::Group(const Rendezvous& r) {
  check(r);
  throw Error("distributed: this build of latmix has no c10d/Gloo (LibTorch's distributed headers and gloo were "
              "not found when it was built)");
}

Group::~Group() = default;
int Group::rank() const { return impl_->rendezvous.rank; }
int Group::world() const { return impl_->rendezvous.world; }
std::chrono::milliseconds Group::timeout() const { return impl_->rendezvous.timeout; }
void Group::sum(std::vector<at::Tensor>&) {}
void Group::average(std::vector<at::Tensor>&) {}
void Group::broadcast(std::vector<at::Tensor>&, int) {}
void Group::send(const std::vector<at::Tensor>&, int) {}
void Group::recv(std::vector<at::Tensor>&, int) {}
void Group::barrier() {}

#endif

}  // namespace latmix::dist
