// latmix: the start path without LibTorch (issue 20). Loading LibTorch and the 294 libraries it
// pulls in costs about 0.75 s of CPU before main (docs/benchmarks.md), so this small binary
// answers what needs no engine (usage, `COMMAND --help`, `--version`) from the command table
// `latmix-engine` printed when it was built (cli_table.cpp, generated: the commands, the LibTorch
// and CUDA runtime versions), asking the CUDA driver itself whether a GPU is there on a CUDA
// build, and runs everything else by exec'ing `latmix-engine` beside it with the same arguments.
#include <unistd.h>

#include <cerrno>
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <string>
#include <vector>

#include "cuda_probe.h"
#include "start.h"

extern const char* const kLatmixCliTable;  // cli_table.cpp, written by `latmix-engine --cli-table-cpp`

namespace {

int run_engine(char** argv) {
  std::error_code ec;
  const std::filesystem::path self = std::filesystem::read_symlink("/proc/self/exe", ec);
  const std::string engine = (ec ? std::filesystem::path(".") : self.parent_path()) / "latmix-engine";
  argv[0] = const_cast<char*>(engine.c_str());
  ::execv(engine.c_str(), argv);
  std::fprintf(stderr, "error: cannot run %s: %s (it is installed beside latmix)\n", engine.c_str(),
               std::strerror(errno));
  return 1;
}

}  // namespace

int main(int argc, char** argv) {
  using namespace latmix::cli;
  const std::vector<std::string> args(argv + 1, argv + argc);
  const nlohmann::json table = nlohmann::json::parse(kLatmixCliTable);
  const std::vector<CommandSpec> commands = commands_from_table(table);
  auto find = [&](const std::string& name) -> const CommandSpec* {
    for (const auto& c : commands) {
      if (c.name == name) return &c;
    }
    return nullptr;
  };
  // The same rules as the engine's main: bare `latmix` (exit 2), --help, -h, help [COMMAND].
  if (args.empty() || ((args[0] == "--help" || args[0] == "-h" || args[0] == "help") && args.size() == 1)) {
    std::fputs(usage_text(commands).c_str(), stdout);
    return args.empty() ? 2 : 0;
  }
  std::vector<std::string> words = args;
  if (words[0] == "--help" || words[0] == "-h" || words[0] == "help") words = {words[1], "--help"};
  if (words.size() >= 3 && find(words[0] + " " + words[1])) words = {words[0] + " " + words[1], words[2]};
  if (words.size() == 2 && words[1] == "--help") {
    if (const CommandSpec* c = find(words[0])) {
      std::fputs(command_help(*c).c_str(), stdout);
      return 0;
    }
  }
  // --version: the build's facts from the table; on a CUDA build the driver says whether a GPU
  // is usable (LibTorch's at::hasCUDA() asks the same of the runtime).
  if (args[0] == "--version" && args.size() <= 2) {
    const bool json = args.size() == 2 && args[1] == "--json";
    if (json || args.size() == 1) {
      VersionFacts f;
      f.libtorch = table.at("libtorch").get<std::string>();
      f.cuda_built = table.at("cuda_built").get<bool>();
      f.mx_kernels = table.at("mx_kernels").get<bool>();
      f.distributed = table.at("distributed").get<bool>();
      if (f.cuda_built) {
        const long runtime = table.at("cuda_runtime_version").get<long>();
        f.cuda_runtime = std::to_string(runtime / 1000) + "." + std::to_string((runtime % 1000) / 10);
        f.cuda_available = latmix::launcher::cuda_device_usable(runtime);
      }
      std::fputs(version_text(f, json).c_str(), stdout);
      return 0;
    }
  }
  return run_engine(argv);
}
