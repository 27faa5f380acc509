// latmix-engine's main (latmix::cli::engine_main): every command of the command line. A function
// of latmix_cli, so that a test zygote (tests/cli) can run it in a fork as the binary would.
#include <c10/util/Exception.h>

#include <csignal>
#include <cstdio>
#include <fstream>
#include <iostream>
#include <new>
#include <string>
#include <vector>

#include "commands.h"
#include "engine_main.h"
#include "data_parallel.h"
#include "completion.h"
#include "console.h"
#include "latmix/error.h"
#include "latmix/malloc_tuning.h"
#include "latmix/serve/tasks.h"
#include "latmix/version.h"
#include "remote.h"

namespace {

using latmix::cli::Command;

std::vector<Command> all_commands() {
  std::vector<Command> cmds = latmix::cli::model_commands();
  for (auto& c : latmix::cli::eval_commands()) cmds.push_back(std::move(c));
  for (auto& c : latmix::cli::mx_commands()) cmds.push_back(std::move(c));
  for (auto& c : latmix::cli::stats_commands()) cmds.push_back(std::move(c));
  for (auto& c : latmix::cli::analyze_commands()) cmds.push_back(std::move(c));
  for (auto& c : latmix::cli::evaluate_commands()) cmds.push_back(std::move(c));
  for (auto& c : latmix::cli::export_commands()) cmds.push_back(std::move(c));
  for (auto& c : latmix::cli::learn_commands()) cmds.push_back(std::move(c));
  for (auto& c : latmix::cli::compare_commands()) cmds.push_back(std::move(c));
  for (auto& c : latmix::cli::serve_commands()) cmds.push_back(std::move(c));
  for (auto& c : latmix::cli::remote_commands()) cmds.push_back(std::move(c));
  cmds.push_back(latmix::cli::completion_command(cmds));  // last: it completes every command above
  return cmds;
}

// Out of memory: what ran, at which stage, on which inputs, instead of a bare "std::bad_alloc"
// (issue 20, item 21). Each argument is shortened: a value may be huge.
std::string out_of_memory(const std::string& command, const std::vector<std::string>& args, const std::string& what) {
  std::string inputs;
  for (size_t i = 1; i < args.size(); ++i) {
    const std::string& a = args[i];
    inputs += " " + (a.size() > 80 ? a.substr(0, 60) + "...(" + std::to_string(a.size()) + " characters)" : a);
  }
  const std::string& stage = latmix::cli::last_progress_stage();
  return "out of memory in 'latmix " + command + "'" + (stage.empty() ? "" : " during '" + stage + "'") +
         " with" + inputs + " (" + what +
         "): the inputs ask for more memory than this machine gives; lower the sizes asked for (--samples, "
         "--seqlen, --batch, --max-windows) or check that the input files are what they should be";
}

}  // namespace

int latmix::cli::engine_main(int argc, char** argv) {
  latmix::tune_malloc_for_tensors();  // before any thread or tensor (latmix/malloc_tuning.h)
  latmix::cli::install_interrupt_handlers();
  const std::vector<Command> cmds = all_commands();
  std::vector<std::string> args(argv + 1, argv + argc);
  if (args.empty() || args[0] == "--help" || args[0] == "-h" || args[0] == "help") {
    if (args.size() >= 2) args = {args[1], "--help"};
    else {
      std::vector<latmix::cli::CommandSpec> specs;
      for (const auto& c : cmds) specs.push_back(c.spec);
      std::fputs(latmix::cli::usage_text(specs).c_str(), stdout);
      return args.empty() ? 2 : 0;
    }
  }
  // For the build: the launcher's command table (cli/launcher/main.cpp), as a C++ file.
  if (args[0] == "--cli-table-cpp" && args.size() == 2) {
    std::vector<latmix::cli::CommandSpec> specs;
    for (const auto& c : cmds) specs.push_back(c.spec);
    const std::string table = latmix::cli::cli_table_json(specs, latmix::cli::version_facts()).dump();
    std::ofstream out(args[1], std::ios::trunc);
    out << "// Written by `latmix-engine --cli-table-cpp` when it was built: its command table.\n"
        << "extern const char* const kLatmixCliTable;\n"
        << "const char* const kLatmixCliTable = R\"latmix(" << table << ")latmix\";\n";
    out.close();
    return out ? 0 : 1;
  }
  if (args[0] == "--version") {
    const bool json = args.size() == 2 && args[1] == "--json";
    if (args.size() > 1 && !json) {
      std::fprintf(stderr, "error: latmix --version takes only --json\n");
      return 2;
    }
    std::fputs(latmix::cli::version_report(json).c_str(), stdout);
    return 0;
  }
  // `latmix --engine URL [--token-file FILE] COMMAND ...`: the command runs on that engine.
  try {
    latmix::cli::take_engine_options(args);
  } catch (const latmix::Error& e) {
    std::fprintf(stderr, "error: %s\n", e.what());
    return 2;
  }
  if (args.empty()) {
    std::fprintf(stderr, "error: --engine: which command? (latmix --engine URL COMMAND ...)\n");
    return 2;
  }
  // `latmix verify PATH`: the path may come without --path.
  if (args[0] == "verify" && args.size() >= 2 && args[1].rfind("--", 0) != 0) args.insert(args.begin() + 1, "--path");
  // `latmix jobs attach ID`: the id may come without --id.
  if (args[0] == "jobs" && args.size() >= 3 && args[2].rfind("--", 0) != 0) args.insert(args.begin() + 2, "--id");
  // Two-word commands ("mx quantize"): join the verb and its subverb.
  if (args.size() >= 2) {
    const std::string joined = args[0] + " " + args[1];
    for (const auto& cmd : cmds) {
      if (cmd.spec.name == joined) {
        args.erase(args.begin() + 1);
        args[0] = joined;
        break;
      }
    }
  }
  for (const auto& cmd : cmds) {
    if (cmd.spec.name != args[0]) continue;
    if (latmix::cli::remote_engine() && latmix::serve::command_task(cmd.spec.name).empty() &&
        !latmix::cli::remote_only_command(cmd.spec.name)) {
      std::fprintf(stderr,
                   "error: latmix --engine: '%s' runs only in this process (on an engine: info, stats, mx block, "
                   "analyze, eval, compare, learn, export, verify; and jobs, files, download)\n",
                   cmd.spec.name.c_str());
      return 2;
    }
    latmix::cli::set_command_line(args);  // what the workers of --nproc run again
    try {
      latmix::cli::Args parsed(cmd.spec, std::vector<std::string>(args.begin() + 1, args.end()));
      if (parsed.help()) {
        std::cout << latmix::cli::command_help(cmd.spec);
        return 0;
      }
      return cmd.run(parsed);
    } catch (const latmix::UsageError& e) {
      std::fprintf(stderr, "error: %s\n", e.what());
      return 2;
    } catch (const latmix::Cancelled&) {
      const int sig = latmix::cli::interrupt_signal();
      std::fprintf(stderr, "\ncancelled%s\n",
                   sig == SIGINT ? " (SIGINT)" : sig == SIGTERM ? " (SIGTERM)" : sig == SIGHUP ? " (SIGHUP)" : "");
      return sig > 0 ? 128 + sig : 1;
    } catch (const latmix::Error& e) {
      std::fprintf(stderr, "error: %s\n", e.what());
      return 1;
    } catch (const c10::Error& e) {
      const std::string what = e.what_without_backtrace();
      if (what.find("can't allocate memory") != std::string::npos) {
        std::fprintf(stderr, "error: %s\n", out_of_memory(cmd.spec.name, args, "LibTorch: " + what).c_str());
      } else {
        std::fprintf(stderr, "error: LibTorch: %s\n", what.c_str());
      }
      return 1;
    } catch (const std::bad_alloc& e) {
      std::fprintf(stderr, "error: %s\n", out_of_memory(cmd.spec.name, args, "std::bad_alloc").c_str());
      return 1;
    } catch (const std::exception& e) {
      std::fprintf(stderr, "error: %s\n", e.what());
      return 1;
    }
  }
  std::string group;
  for (const auto& cmd : cmds) {
    if (cmd.spec.name.rfind(args[0] + " ", 0) == 0) group += "\n  latmix " + cmd.spec.name + "  " + cmd.spec.summary;
  }
  if (!group.empty()) {
    std::fprintf(stderr, "error: 'latmix %s' needs a subcommand:%s\n", args[0].c_str(), group.c_str());
    return 2;
  }
  std::fprintf(stderr, "error: unknown command '%s' (see latmix --help)\n", args[0].c_str());
  return 2;
}
