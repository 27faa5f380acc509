#pragma once
/// \file serve/server.h
/// Room: engine/serve/ (latmix_serve). `latmix serve`: the engine's use cases over HTTP/1.1 with JSON
/// requests and results, jobs whose events stream as server-sent events, and results also as CBOR
/// (RFC 8949: 4-byte floats for the heatmaps' float32 values instead of decimal text). Built on
/// cpp-httplib (Debian's libcpp-httplib-dev); docs/remote.md says why and lists every endpoint.
///
/// Security by default: it listens on 127.0.0.1 unless told otherwise; every request carries the
/// token (`Authorization: Bearer TOKEN`, compared in constant time); every path in a request is
/// confined to the roots (serve/roots.h); a request is data only: JSON parsed strictly, no code, no
/// pickle, nothing loaded but model files, texts and transforms by the engine's own strict parsers.

#include <nlohmann/json.hpp>

#include <functional>
#include <memory>
#include <string>
#include <vector>

#include "latmix/serve/tasks.h"

namespace latmix::serve {

struct ServeOptions {
  std::string host = "127.0.0.1";  ///< --listen HOST[:PORT]
  int port = 8187;                 ///< 0: any free port (bind() says which)
  std::vector<std::string> roots;  ///< --root: the folders requests may name (at least one)
  std::string token;               ///< the token every request must carry (non-empty)
  std::string device = "cpu";      ///< --device: where every task runs
  std::string bundled_sample;      ///< the server's bundled calibration sample ("" when none)
  StartRanks start_ranks;          ///< starts a learn job's processes ("nproc" above 1; TaskEnvironment)
  size_t max_request_bytes = 1 << 20;  ///< a larger body is refused (413)
  /// What GET /v1/engine reports besides the device, roots and tasks (version, LibTorch, CUDA).
  nlohmann::json facts = nlohmann::json::object();
  /// Where the server logs one line per request and job (nullptr: nowhere).
  std::function<void(const std::string&)> log;
};

/// A random token: 32 bytes from the system's random source, as 64 hex digits.
std::string generate_token();
/// Writes `token` into `path` readable by the user alone (mode 0600, written atomically; the folder
/// is created with mode 0700 when missing). \throws latmix::Error naming the file.
void write_token_file(const std::string& path, const std::string& token);
/// The token in `path` (its first line, trimmed). \throws latmix::Error naming the file when it is
/// missing, empty, or readable by others (mode not 0600 or 0400).
std::string read_token_file(const std::string& path);

class Server {
 public:
  /// Checks the options (roots, device, token) and starts the job queue. Sets glibc's malloc as
  /// latmix/malloc_tuning.h's tune_malloc_for_tensors() says (one arena: the worker thread then reuses
  /// freed memory as the main thread does).
  /// \throws latmix::UsageError naming the option.
  explicit Server(ServeOptions options);
  ~Server();
  Server(const Server&) = delete;
  Server& operator=(const Server&) = delete;

  /// Binds the address; returns the port. \throws latmix::Error when it cannot (in use, no such address).
  int bind();
  /// Serves until stop() (from another thread or a signal handler's thread). Cancels the jobs at the end.
  void run();
  void stop();
  const ServeOptions& options() const;

 public:
  struct Impl;

 private:
  std::unique_ptr<Impl> impl_;
};

}  // namespace latmix::serve
