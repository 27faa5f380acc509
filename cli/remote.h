#pragma once
// `latmix --engine URL COMMAND ...`: the use-case commands run on a `latmix serve` engine (issue 19).
// The command parses its options into the same request as in-process, the engine runs it, and the
// command prints the result it gets back exactly as it prints its own.

#include <nlohmann/json.hpp>

#include <functional>
#include <memory>
#include <string>
#include <vector>

#include "latmix/progress.h"
#include "latmix/serve/client.h"

namespace latmix::cli {

/// The engine the commands run on, when `--engine URL` was given (nullptr: this process).
const serve::RemoteEngine* remote_engine();

/// Takes the global options `--engine URL` and `--token-file FILE` from the front of `args` (before
/// the command) and connects remote_engine() to them. The token: --token-file, else the
/// LATMIX_ENGINE_TOKEN environment variable, else default_token_file(). \throws latmix::UsageError
/// for a missing value, a bad URL, no token, or --token-file without --engine.
void take_engine_options(std::vector<std::string>& args);

/// $XDG_CONFIG_HOME/latmix/engine.token (~/.config/latmix/engine.token): where `latmix serve` keeps
/// the token it generates, and where `latmix --engine` looks for it.
std::string default_token_file();

/// What a remote run reports on this side, as in-process: the progress bar, the notes and learning
/// steps (the JSON of a LearnEvent).
struct RemoteHooks {
  RemoteHooks() = default;
  RemoteHooks(ProgressFn progress_fn, std::function<void(const std::string&)> note_fn = {},
              std::function<void(const nlohmann::json&)> step_fn = {})
      : progress(std::move(progress_fn)), on_note(std::move(note_fn)), on_step(std::move(step_fn)) {}
  ProgressFn progress;
  std::function<void(const std::string&)> on_note;
  std::function<void(const nlohmann::json&)> on_step;
};

/// Runs `task` on remote_engine(): submits the request, relays its events to `hooks`, cancels the
/// remote job on Ctrl-C (then throws latmix::Cancelled), and returns the result's JSON.
nlohmann::json run_remote(const std::string& task, const nlohmann::json& request, const RemoteHooks& hooks);

}  // namespace latmix::cli
