#include "test_paths.h"

#include <cstdlib>
#include <exception>
#include <filesystem>
#include <mutex>
#include <vector>

namespace fs = std::filesystem;

namespace latmix::test {

std::string data_dir() {
  if (const char* env = std::getenv("LATMIX_DATA_DIR"); env != nullptr && *env != '\0') {
    return env;
  }
  return LATMIX_TEST_DATA_DIR;
}

std::string data_path(const std::string& relative) {
  return data_dir() + "/" + relative;
}

bool have_data(const std::string& relative) {
  std::error_code ec;
  return fs::exists(data_path(relative), ec);
}

std::string fixtures_path(const std::string& relative) {
  return std::string(LATMIX_FIXTURES_DIR) + "/" + relative;
}

std::string source_path(const std::string& relative) {
  return std::string(LATMIX_SOURCE_DIR) + "/" + relative;
}

std::string python() {
  if (const char* env = std::getenv("LATMIX_TEST_PYTHON"); env != nullptr && *env != '\0') {
    return "'" + std::string(env) + "'";
  }
  std::error_code ec;
  return fs::exists("/usr/bin/python3", ec) ? "/usr/bin/python3" : "python3";
}

namespace {
std::vector<fs::path>& temp_dirs() {
  static std::vector<fs::path> dirs;
  return dirs;
}
void remove_temp_dirs() {
  std::error_code ec;
  for (const auto& d : temp_dirs()) fs::remove_all(d, ec);
}
}  // namespace

std::string temp_dir(const std::string& tag) {
  static std::once_flag once;
  // Construct the list before registering the handler: exit handlers and static destructors run
  // in reverse order of registration, so the list must outlive remove_temp_dirs().
  std::call_once(once, [] {
    temp_dirs();
    std::atexit(remove_temp_dirs);
  });
  std::string pattern = (fs::temp_directory_path() / ("latmix-" + tag + "-XXXXXX")).string();
  std::vector<char> buf(pattern.begin(), pattern.end());
  buf.push_back('\0');
  if (mkdtemp(buf.data()) == nullptr) throw std::runtime_error("mkdtemp failed for " + pattern);
  temp_dirs().emplace_back(buf.data());
  return buf.data();
}

std::string message_of(const std::function<void()>& f) {
  try {
    f();
  } catch (const std::exception& e) {
    return e.what();
  }
  return "";
}

}  // namespace latmix::test
