#include "latmix/error.h"

namespace latmix {

std::string describe_error(const std::string& file, const std::string& what,
                           const std::string& expected, const std::string& found) {
  std::string msg;
  if (!file.empty()) msg += file + ": ";
  msg += what;
  if (!expected.empty() || !found.empty()) {
    msg += " (";
    if (!expected.empty()) msg += "expected " + expected;
    if (!expected.empty() && !found.empty()) msg += ", ";
    if (!found.empty()) msg += "found " + found;
    msg += ")";
  }
  return msg;
}

void fail(const std::string& file, const std::string& what, const std::string& expected,
          const std::string& found) {
  throw Error(describe_error(file, what, expected, found));
}

}  // namespace latmix
