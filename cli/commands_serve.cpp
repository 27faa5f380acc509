// latmix serve: the engine's use cases over HTTP for remote clients (issue 19; docs/remote.md).
#include <ATen/Parallel.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <filesystem>
#include <thread>

#include "commands.h"
#include "console.h"
#include "data_parallel.h"
#include "latmix/error.h"
#include "latmix/files.h"
#include "latmix/serve/server.h"
#include "latmix/serve/tasks.h"
#include "remote.h"
#include "start.h"

namespace latmix::cli {

namespace {

// "HOST:PORT", "HOST" (port 8187), ":PORT" (127.0.0.1), "[::1]:PORT".
void parse_listen(const std::string& text, serve::ServeOptions& options) {
  std::string host = text, port;
  if (!text.empty() && text[0] == '[') {
    const size_t close = text.find(']');
    if (close == std::string::npos) throw UsageError("--listen: expected HOST:PORT, found '" + text + "'");
    host = text.substr(1, close - 1);
    if (close + 1 < text.size()) {
      if (text[close + 1] != ':') throw UsageError("--listen: expected HOST:PORT, found '" + text + "'");
      port = text.substr(close + 2);
    }
  } else if (const size_t colon = text.rfind(':'); colon != std::string::npos) {
    host = text.substr(0, colon);
    port = text.substr(colon + 1);
  }
  if (host.empty()) host = "127.0.0.1";
  options.host = host;
  if (!port.empty()) {
    size_t used = 0;
    int value = -1;
    try {
      value = std::stoi(port, &used);
    } catch (const std::exception&) {
      used = 0;
    }
    if (used != port.size() || value < 0 || value > 65535)
      throw UsageError("--listen: expected a port 0-65535 after ':', found '" + port + "'");
    options.port = value;
  }
}

std::vector<std::string> split_roots(const std::string& text) {
  std::vector<std::string> roots;
  size_t start = 0;
  while (start <= text.size()) {
    const size_t comma = std::min(text.find(',', start), text.size());
    if (comma > start) roots.push_back(text.substr(start, comma - start));
    start = comma + 1;
  }
  return roots;
}

// A learn job's other processes (serve::Ranks): this executable's `learn` run again in each, as a
// worker of --nproc with the job's request in a file; this process is rank 0. While they run, the
// cores are shared: rank 0 gets its share of this server's threads, restored after.
class ServeRanks : public serve::Ranks {
 public:
  ServeRanks(const nlohmann::json& request, int nproc, const std::string& device, const CancelToken& cancel)
      : threads_(at::get_num_threads()), share_(std::max(1, threads_ / nproc)) {
    std::vector<std::string> command = {"learn", "--model", request.at("model").get<std::string>(), "--method",
                                        request.at("method").get<std::string>()};
    const std::string tokenizer = request.value("tokenizer", std::string());
    if (!tokenizer.empty()) command.insert(command.end(), {"--tokenizer", tokenizer});
    command.insert(command.end(), {"--dtype", request.value("dtype", std::string("fp32")), "--device", device,
                                   "--threads", std::to_string(share_), "--nproc", std::to_string(nproc), "--quiet"});
    dp_ = std::make_unique<DataParallel>(nproc, command, request.dump(), std::chrono::seconds(60), cancel);
    at::set_num_threads(share_);
  }
  ~ServeRanks() override { at::set_num_threads(threads_); }
  dist::Group& group() override { return *dp_->group(); }
  void finish() override { dp_->finish(); }
  std::string explain(const std::string& error) override { return dp_->explain(error); }

 private:
  int threads_, share_;
  std::unique_ptr<DataParallel> dp_;
};

int run_serve(const Args& args) {
  apply_common_options(args);
  serve::ServeOptions options;
  parse_listen(args.get("listen"), options);
  options.roots = split_roots(args.get("root"));
  options.device = args.get("device");
  options.bundled_sample = bundled_sample();
  options.start_ranks = [device = options.device](const nlohmann::json& request, int nproc, const CancelToken& cancel) {
    return std::unique_ptr<serve::Ranks>(std::make_unique<ServeRanks>(request, nproc, device, cancel));
  };
  const VersionFacts facts = version_facts();
  options.facts = {{"version", version_line()},
                   {"libtorch", facts.libtorch},
                   {"cuda_built", facts.cuda_built},
                   {"cuda_available", facts.cuda_available},
                   {"mx_kernels", facts.mx_kernels}};
  const bool quiet = args.flag("quiet");
  if (!quiet) options.log = [](const std::string& line) { std::fprintf(stderr, "serve: %s\n", line.c_str()); };

  const std::string token_file = args.has("token-file") ? args.get("token-file") : default_token_file();
  std::error_code ec;
  if (std::filesystem::exists(token_file, ec)) {
    options.token = serve::read_token_file(token_file);
  } else {
    options.token = serve::generate_token();
    serve::write_token_file(token_file, options.token);
  }

  serve::Server server(options);
  const int port = server.bind();
  std::fprintf(stderr,
               "latmix serve: listening on http://%s:%d (device %s; %s)\n"
               "  token: %s (send it as 'Authorization: Bearer TOKEN'; latmix --engine http://%s:%d reads it from there)\n",
               options.host.c_str(), port, options.device.c_str(), options.facts["libtorch"].get<std::string>().c_str(),
               token_file.c_str(), options.host.c_str(), port);
  for (const auto& root : options.roots) std::fprintf(stderr, "  root: %s\n", root.c_str());
  if (args.has("port-file")) {
    // For scripts and tests that start it on port 0: the port it got, written atomically.
    AtomicFile file(args.get("port-file"));
    file.write(std::to_string(port) + "\n");
    file.commit();
  }
  std::thread stopper([&server] {
    while (!interrupt_token().cancelled()) std::this_thread::sleep_for(std::chrono::milliseconds(100));
    server.stop();
  });
  server.run();
  interrupt_token().cancel();  // the stopper ends too when run() returned on its own
  stopper.join();
  std::fprintf(stderr, "latmix serve: stopped\n");
  return 0;
}

}  // namespace

std::vector<Command> serve_commands() {
  return {
      {{"serve",
        "Serve the engine's tasks to remote clients (the studio, latmix --engine URL).",
        "Runs describe (info), statistics (stats), explain_block (mx block), analyze, evaluate (eval), compare,\n"
        "learn, export and verify for clients over HTTP with JSON (docs/remote.md). Jobs outlive connections: a\n"
        "client that reconnects lists them and re-attaches to a running one. One job runs at a time, on --device;\n"
        "the others wait in order. Every request carries the token (generated into --token-file at first start,\n"
        "mode 0600), and every path in a request must lie inside a --root folder. Listens on 127.0.0.1: reach a\n"
        "remote server through an SSH tunnel (ssh -L 8187:127.0.0.1:8187 HOST). Ctrl-C stops it.\n"
        "Any command above runs on a server with: latmix --engine http://HOST:PORT COMMAND ...",
        {{"root", "DIRS", "comma-separated folders that requests may name (models, data, outputs)", "", true},
         {"listen", "HOST:PORT", "address to listen on (0.0.0.0 exposes it to the network: use a tunnel instead)",
          "127.0.0.1:8187", false},
         {"token-file", "FILE", "the token: read when it exists (mode 0600), else generated into it",
          "~/.config/latmix/engine.token", false},
         {"port-file", "FILE", "write the port listened on into FILE (with --listen HOST:0)", "", false}}},
       run_serve},
  };
}

}  // namespace latmix::cli
