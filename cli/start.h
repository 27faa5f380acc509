#pragma once
// What `latmix` prints without running a command (usage, command help, version), in a form both
// binaries share: the engine (`latmix-engine`, every command, LibTorch) and the launcher (`latmix`,
// no LibTorch: cli/launcher/main.cpp). LibTorch-free.

#include <nlohmann/json.hpp>

#include <string>
#include <vector>

#include "args.h"

namespace latmix::cli {

/// Facts of the LibTorch and the build, for `latmix --version`.
struct VersionFacts {
  std::string libtorch;       ///< "1.13.0"
  bool cuda_built = false;    ///< this LibTorch has its CUDA part
  bool cuda_available = false;
  std::string cuda_runtime;   ///< "12.8" when cuda_built
  long cuda_runtime_version = 0;  ///< 12080 for 12.8 (cudaRuntimeGetVersion) when cuda_built
  bool mx_kernels = false;    ///< the fused CUDA MX kernels are compiled in
  bool distributed = false;   ///< data-parallel learning (--nproc) through c10d/Gloo is built in
};

/// `latmix --version` (text or JSON) from the facts and bundled_resources_dir().
std::string version_text(const VersionFacts& facts, bool json);

/// "latmix 0.4.0 (commit abc123)"
std::string version_line();

/// `latmix --help`: the version line, the commands with their summaries, the exit codes.
std::string usage_text(const std::vector<CommandSpec>& commands);

/// The command table and the build's facts as JSON (what the launcher is built with), and back.
nlohmann::json cli_table_json(const std::vector<CommandSpec>& commands, const VersionFacts& build);
std::vector<CommandSpec> commands_from_table(const nlohmann::json& table);

}  // namespace latmix::cli
