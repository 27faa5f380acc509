#pragma once
#include <string>

namespace latmix::test {

/// The shared data folder: $LATMIX_DATA_DIR if set, else ../shared/data beside the checkout.
std::string data_dir();
/// A path inside the shared data folder.
std::string data_path(const std::string& relative);
/// tests/fixtures inside the source tree.
std::string fixtures_path(const std::string& relative);
/// The source tree root.
std::string source_path(const std::string& relative);
/// A fresh, empty temporary directory, removed at process exit.
std::string temp_dir(const std::string& tag);

}  // namespace latmix::test
