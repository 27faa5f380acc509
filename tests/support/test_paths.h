#pragma once
#include <gtest/gtest.h>

#include <functional>
#include <string>

namespace latmix::test {

/// The shared data folder: $LATMIX_DATA_DIR if set, else ../shared/data beside the checkout.
std::string data_dir();
/// A path inside the shared data folder.
std::string data_path(const std::string& relative);
/// True when the shared data folder holds `relative` (a bare clone has no ../shared/data).
bool have_data(const std::string& relative);
/// tests/fixtures inside the source tree.
std::string fixtures_path(const std::string& relative);
/// The source tree root.
std::string source_path(const std::string& relative);
/// A fresh, empty temporary directory, removed at process exit.
std::string temp_dir(const std::string& tag);

/// The Python interpreter for independent checks (its standard library only), quoted for a shell:
/// $LATMIX_TEST_PYTHON, else /usr/bin/python3 when it exists, else python3 from PATH (which may be a
/// version manager's shim, 0.3 s a start: tests/support/python.sh says the same for the shell tests).
std::string python();

/// The what() of the std::exception `f` throws, "" when it throws nothing.
std::string message_of(const std::function<void()>& f);

}  // namespace latmix::test

/// Skips the running test (in a TEST body, a fixture's SetUp or SetUpTestSuite) unless the shared
/// data holds `relative`, saying which path is missing and how to provide it.
#define LATMIX_REQUIRE_DATA(relative)                                              \
  do {                                                                             \
    if (!latmix::test::have_data(relative)) {                                      \
      GTEST_SKIP() << "shared data missing: " << latmix::test::data_path(relative) \
                   << " (set LATMIX_DATA_DIR or put the data at ../shared/data)";  \
    }                                                                              \
  } while (0)
