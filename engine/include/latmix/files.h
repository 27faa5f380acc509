#pragma once
/// \file files.h
/// Small file helpers shared by the engine's readers and writers.

#include <string>

namespace latmix {

/// Opens a regular file for reading and returns its descriptor (the caller closes it). A FIFO,
/// device, socket or folder is refused with a latmix::Error naming the file and what it is,
/// without blocking: opening a FIFO for reading would otherwise wait for a writer forever.
int open_regular_file(const std::string& path);

/// Reads a whole regular file (see open_regular_file); throws latmix::Error naming the file when
/// it cannot be read.
std::string read_text_file(const std::string& path);

/// Writes `contents` to `path` atomically: a temp file in the same folder, fsync, rename,
/// fsync of the folder. On failure nothing is left behind and the old file is untouched.
void write_file_atomic(const std::string& path, const std::string& contents);

}  // namespace latmix
