// The texts of start.h and the bundled resources' folder (console.h).
#include "start.h"

#include <cstdio>
#include <cstdlib>
#include <filesystem>

#include "console.h"
#include "latmix/version.h"

namespace latmix::cli {

namespace {

bool has_models(const std::filesystem::path& dir) {
  std::error_code ec;
  return !dir.empty() && std::filesystem::is_directory(dir / "models", ec);
}

}  // namespace

std::string bundled_resources_dir() {
  namespace fs = std::filesystem;
  std::error_code ec;
  if (const char* env = std::getenv("LATMIX_RESOURCES"); env != nullptr && has_models(env)) {
    return fs::absolute(env, ec).lexically_normal().string();
  }
  // Beside the executable: /usr/bin/latmix -> /usr/share/latmix/resources, which is where the .deb
  // puts them (and where an unpacked package, dpkg -x DIR, has them under DIR too).
  const fs::path exe = fs::read_symlink("/proc/self/exe", ec);
  if (!ec) {
    const fs::path installed = exe.parent_path() / ".." / "share" / "latmix" / "resources";
    if (has_models(installed)) return installed.lexically_normal().string();
  }
#ifdef LATMIX_RESOURCES_DIR
  if (has_models(LATMIX_RESOURCES_DIR)) return fs::path(LATMIX_RESOURCES_DIR).lexically_normal().string();
#endif
  return {};
}

std::string version_line() {
  return std::string("latmix ") + latmix::version() + " (commit " + latmix::git_commit() + ")";
}

std::string version_text(const VersionFacts& f, bool json) {
  const std::string resources = bundled_resources_dir();
  if (json) {
    nlohmann::json j = {{"version", latmix::version()},
                        {"commit", latmix::git_commit()},
                        {"libtorch", f.libtorch},
                        {"cuda", {{"built", f.cuda_built}, {"available", f.cuda_available}}},
                        {"cuda_mx_kernels", f.mx_kernels},
                        {"distributed", f.distributed},
                        {"resources", resources.empty() ? nlohmann::json(nullptr) : nlohmann::json(resources)}};
    if (f.cuda_built) j["cuda"]["runtime"] = f.cuda_runtime;
    return j.dump(2) + "\n";
  }
  std::string out = version_line() + "\n";
  out += "LibTorch " + f.libtorch + ", CUDA: ";
  if (!f.cuda_built) out += "no (this LibTorch is built without CUDA)\n";
  else out += "yes (runtime " + f.cuda_runtime + (f.cuda_available ? ", a GPU is available)\n" : ", no GPU found)\n");
  out += std::string("fused CUDA MX kernels: ") + (f.mx_kernels ? "yes" : "no") + "\n";
  out += std::string("learning in several processes (--nproc): ") +
         (f.distributed ? "yes (c10d/Gloo)" : "no (built without c10d/Gloo)") + "\n";
  out += "bundled demo model and calibration text: " + (resources.empty() ? "not found" : resources) + "\n";
  return out;
}

std::string usage_text(const std::vector<CommandSpec>& commands) {
  std::string out = version_line() + "\nInspect and quantize LLMs to the OCP microscaling (MX) formats.\n\n";
  out += "Usage: latmix COMMAND [options]     (latmix COMMAND --help for its options)\n\nCommands:\n";
  for (const auto& c : commands) {
    char name[64];
    std::snprintf(name, sizeof name, "  %-14s ", c.name.c_str());
    out += name + c.summary + "\n";
  }
  out += "\nOn an engine (latmix serve): latmix --engine URL [--token-file FILE] COMMAND [options]\n"
         "  info, stats, mx block, analyze, eval, compare, learn, export and verify run there (docs/remote.md).\n";
  out += "\nExit codes: 0 ok, 1 runtime error (bad file, failed computation), 2 usage error.\n";
  return out;
}

nlohmann::json cli_table_json(const std::vector<CommandSpec>& commands, const VersionFacts& build) {
  nlohmann::json cmds = nlohmann::json::array();
  for (const auto& c : commands) {
    nlohmann::json opts = nlohmann::json::array();
    for (const auto& o : c.options) opts.push_back({o.name, o.value, o.help, o.fallback, o.required});
    cmds.push_back({{"name", c.name}, {"summary", c.summary}, {"details", c.details}, {"options", opts}});
  }
  return {{"commands", cmds},
          {"libtorch", build.libtorch},
          {"cuda_built", build.cuda_built},
          {"cuda_runtime_version", build.cuda_runtime_version},
          {"mx_kernels", build.mx_kernels},
          {"distributed", build.distributed}};
}

std::vector<CommandSpec> commands_from_table(const nlohmann::json& table) {
  std::vector<CommandSpec> out;
  for (const auto& c : table.at("commands")) {
    CommandSpec s{c.at("name").get<std::string>(), c.at("summary").get<std::string>(),
                  c.at("details").get<std::string>(), {}};
    for (const auto& o : c.at("options")) {
      s.options.push_back({o.at(0).get<std::string>(), o.at(1).get<std::string>(), o.at(2).get<std::string>(),
                           o.at(3).get<std::string>(), o.at(4).get<bool>()});
    }
    out.push_back(std::move(s));
  }
  return out;
}

}  // namespace latmix::cli
