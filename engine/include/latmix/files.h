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

/// fsync of a folder (best effort: what a rename inside it needs to be durable).
void fsync_folder(const std::string& dir);

/// rename(2) that never replaces anything: renameat2 RENAME_NOREPLACE, or where the file system
/// lacks it (EINVAL/ENOSYS) a check then rename. Returns 0, or -1 with errno (EEXIST when `to`
/// exists).
int rename_no_replace(const std::string& from, const std::string& to);

/// Swaps two existing paths in one step (renameat2 RENAME_EXCHANGE). Returns 0, or -1 with errno.
int rename_exchange(const std::string& a, const std::string& b);

}  // namespace latmix
