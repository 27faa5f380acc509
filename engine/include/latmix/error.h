#pragma once
/// \file error.h
/// Room: engine/base/ (latmix_core, no LibTorch).
/// Errors thrown by the engine. Every error a user can cause (a malformed file, a missing tensor,
/// an unsupported option) is a latmix::Error whose message names the file, the object (tensor,
/// key, line) and what was expected versus what was found. Bugs are asserts, not Errors.

#include <stdexcept>
#include <string>

namespace latmix {

/// A runtime error caused by input (files, options, data). Exit code 1 in the CLI.
class Error : public std::runtime_error {
 public:
  explicit Error(const std::string& message) : std::runtime_error(message) {}
};

/// A usage error: bad command-line arguments or option values. Exit code 2 in the CLI.
class UsageError : public Error {
 public:
  explicit UsageError(const std::string& message) : Error(message) {}
};

/// `parse()`'s value; its UsageError comes back with the option named first ("--format: ..."), so
/// the user sees which value is wrong. The CLI and the studio's forms word it the same way.
template <typename F>
auto parse_option(const char* option, F&& parse) {
  try {
    return parse();
  } catch (const UsageError& e) {
    throw UsageError(std::string("--") + option + ": " + e.what());
  }
}

/// Thrown by long operations when their CancelToken was triggered.
class Cancelled : public Error {
 public:
  Cancelled() : Error("cancelled") {}
};

/// Builds "FILE: WHAT: expected EXPECTED, found FOUND" (parts left empty are omitted).
std::string describe_error(const std::string& file, const std::string& what,
                           const std::string& expected = {}, const std::string& found = {});

/// Throws Error(describe_error(...)).
[[noreturn]] void fail(const std::string& file, const std::string& what,
                       const std::string& expected = {}, const std::string& found = {});

}  // namespace latmix
