#pragma once
// `latmix completion`: shell completion generated from the command table, so that it completes
// exactly the commands and options this binary has (nothing to keep in step by hand).

#include <string>
#include <vector>

#include "commands.h"

namespace latmix::cli {

/// The bash completion script for these commands: command names (two-word commands such as
/// "mx quantize" complete in two steps), each command's options and the common ones, and option
/// values where the placeholder says what they are ("cpu|cuda": those words; FILE, PATH, PREFIX:
/// file names; DIR: folders; N, STR and the like: nothing).
std::string bash_completion_script(const std::vector<CommandSpec>& specs);

/// The `completion` command over `commands` (all the others; it adds itself). Prints the bash
/// script, or with --json the command table (names, summaries, options) for other tools.
Command completion_command(const std::vector<Command>& commands);

}  // namespace latmix::cli
