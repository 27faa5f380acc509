#pragma once
// Command-line parsing for `latmix`: declared options, generated help, strict checking.

#include <cstdint>
#include <map>
#include <optional>
#include <string>
#include <vector>

namespace latmix::cli {

struct OptionSpec {
  std::string name;      ///< without the leading "--"
  std::string value;     ///< value placeholder ("DIR", "N"); empty for a switch
  std::string help;
  std::string fallback;  ///< default shown in help and returned by get(); empty: none
  bool required = false;
};

struct CommandSpec {
  std::string name;     ///< "ppl"
  std::string summary;  ///< one line
  std::string details;  ///< paragraph after the usage line (may be empty)
  std::vector<OptionSpec> options;
};

/// The options every command accepts (--json, --device, --threads, --quiet, --help).
std::vector<OptionSpec> common_options();

/// Help text for a command.
std::string command_help(const CommandSpec& spec);

class Args {
 public:
  /// Parses argv after the subcommand name. Throws UsageError on unknown options, missing
  /// values or missing required options (not when --help was given).
  Args(const CommandSpec& spec, const std::vector<std::string>& argv);

  bool help() const { return flag("help"); }
  bool flag(const std::string& name) const;
  std::string get(const std::string& name) const;  ///< value or the option's default
  bool has(const std::string& name) const;          ///< given on the command line
  int64_t integer(const std::string& name) const;   ///< UsageError if not an integer
  double number(const std::string& name) const;
  /// Comma-separated integers ("1,2,3").
  std::vector<int64_t> integer_list(const std::string& name) const;

 private:
  const OptionSpec& spec_of(const std::string& name) const;
  std::vector<OptionSpec> options_;
  std::map<std::string, std::string> values_;
};

}  // namespace latmix::cli
