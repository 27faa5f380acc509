// Calibration text from several files, and the default gutenberg training books (calib_data.h).
#include <algorithm>
#include <filesystem>

#include "latmix/calib_data.h"
#include "latmix/error.h"
#include "latmix/files.h"
#include "latmix/text_stream.h"

namespace latmix {

namespace fs = std::filesystem;

std::vector<std::string> calibration_files(const std::string& source, const std::string& data_dir) {
  std::vector<std::string> out;
  if (source == "gutenberg") {
    const fs::path dir = fs::path(data_dir) / "corpus" / "gutenberg";
    std::error_code ec;
    if (!fs::is_directory(dir, ec)) {
      fail(dir.string(), "calibration books", "a folder of gutenberg .txt files", "no such folder");
    }
    for (const auto& entry : fs::directory_iterator(dir)) {
      const std::string name = entry.path().filename().string();
      if (entry.path().extension() != ".txt") continue;
      // Held out: the gutenberg models' in-domain evaluation text.
      if (name.rfind("pg84_", 0) == 0 || name.rfind("pg11_", 0) == 0) continue;
      out.push_back(entry.path().string());
    }
    std::sort(out.begin(), out.end());
    if (out.empty()) fail(dir.string(), "calibration books", "at least one .txt file", "none");
    return out;
  }
  size_t start = 0;
  while (start <= source.size()) {
    const size_t comma = source.find(',', start);
    const std::string path = source.substr(start, comma == std::string::npos ? std::string::npos : comma - start);
    if (!path.empty()) {
      std::error_code ec;
      if (!fs::is_regular_file(path, ec)) fail(path, "calibration text", "a readable file", "no such file");
      out.push_back(path);
    }
    if (comma == std::string::npos) break;
    start = comma + 1;
  }
  if (out.empty()) throw UsageError("calibration source: no file named in '" + source + "'");
  return out;
}

CalibrationSet load_calibration_files(const std::vector<std::string>& paths, const Tokenizer& tokenizer,
                                      const CalibrationOptions& options, int64_t token_budget) {
  // One file: its windows come from all of its tokens whatever the budget (the budget is checked
  // between files), and load_calibration_text reads a long file in bounded memory.
  if (paths.size() == 1) return load_calibration_text(paths.front(), tokenizer, options);
  std::vector<int32_t> ids;
  std::string names;
  for (const auto& path : paths) {
    // Every file whole, in pieces (the budget is checked between files, as it always was).
    const std::vector<int32_t> part = encode_text_file(tokenizer, path).ids;
    ids.insert(ids.end(), part.begin(), part.end());
    names += (names.empty() ? "" : ", ") + fs::path(path).filename().string();
    if (token_budget > 0 && static_cast<int64_t>(ids.size()) >= token_budget) break;
  }
  try {
    return sample_calibration(ids, options);
  } catch (const UsageError&) {
    throw;
  } catch (const Error& e) {
    throw Error(std::string(e.what()) + " (calibration text: " + names + ")");
  }
}

}  // namespace latmix
