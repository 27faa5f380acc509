// `latmix --engine URL COMMAND ...` (remote.h).
#include "remote.h"

#include <cstdio>
#include <cstdlib>
#include <optional>

#include "console.h"
#include "latmix/error.h"
#include "latmix/serve/server.h"

namespace latmix::cli {

namespace {

std::unique_ptr<serve::RemoteEngine>& engine_slot() {
  static std::unique_ptr<serve::RemoteEngine> engine;
  return engine;
}

}  // namespace

const serve::RemoteEngine* remote_engine() { return engine_slot().get(); }

std::string default_token_file() {
  const char* config = std::getenv("XDG_CONFIG_HOME");
  if (config && *config) return std::string(config) + "/latmix/engine.token";
  const char* home = std::getenv("HOME");
  return std::string(home && *home ? home : ".") + "/.config/latmix/engine.token";
}

void take_engine_options(std::vector<std::string>& args) {
  std::optional<std::string> url, token_file;
  while (!args.empty() && (args[0] == "--engine" || args[0] == "--token-file")) {
    if (args.size() < 2) throw UsageError(args[0] + ": missing value");
    (args[0] == "--engine" ? url : token_file) = args[1];
    args.erase(args.begin(), args.begin() + 2);
  }
  if (!url) {
    if (token_file) throw UsageError("--token-file: only with --engine URL");
    return;
  }
  std::string token;
  if (token_file) {
    token = serve::read_token_file(*token_file);
  } else if (const char* env = std::getenv("LATMIX_ENGINE_TOKEN"); env && *env) {
    token = env;
  } else {
    token = serve::read_token_file(default_token_file());
  }
  engine_slot() = std::make_unique<serve::RemoteEngine>(*url, token);
}

nlohmann::json run_remote(const std::string& task, const nlohmann::json& request, const RemoteHooks& hooks) {
  const serve::RemoteEngine* engine = remote_engine();
  if (!engine) throw Error("run_remote: no --engine");
  serve::RemoteCallbacks callbacks;
  callbacks.cancel = interrupt_token();
  callbacks.on_event = [&](const serve::JobEvent& e) {
    if (e.type == "progress" && hooks.progress) {
      hooks.progress(e.data.at("stage").get<std::string>(), e.data.at("done").get<int64_t>(),
                     e.data.at("total").get<int64_t>());
    } else if (e.type == "note" && hooks.on_note) {
      hooks.on_note(e.data.at("text").get<std::string>());
    } else if (e.type == "step" && hooks.on_step) {
      hooks.on_step(e.data);
    } else if (e.type == "state" && e.data.value("state", "") == "queued" && e.data.value("position", 0) > 1) {
      std::fprintf(stderr, "queued on %s: position %lld (one job runs at a time)\n", engine->url().c_str(),
                   static_cast<long long>(e.data.value("position", 0)));
    }
  };
  return engine->run(task, request, callbacks);
}

}  // namespace latmix::cli
