#pragma once
/// \file files.h
/// Small file helpers shared by the engine's readers and writers.

#include <string>

namespace latmix {

/// Reads a whole file; throws latmix::Error naming the file when it cannot be read.
std::string read_text_file(const std::string& path);

/// Writes `contents` to `path` atomically: a temp file in the same folder, fsync, rename,
/// fsync of the folder. On failure nothing is left behind and the old file is untouched.
void write_file_atomic(const std::string& path, const std::string& contents);

}  // namespace latmix
