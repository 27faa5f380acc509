#pragma once
/// \file files.h
/// Room: engine/base/ (latmix_core, no LibTorch).
/// Small file helpers shared by the engine's readers and writers.

#include <cstddef>
#include <functional>
#include <string>
#include <string_view>

namespace latmix {

/// Opens a regular file for reading and returns its descriptor (the caller closes it). A FIFO,
/// device, socket or folder is refused with a latmix::Error naming the file and what it is,
/// without blocking: opening a FIFO for reading would otherwise wait for a writer forever.
int open_regular_file(const std::string& path);

/// Reads a whole regular file (see open_regular_file); throws latmix::Error naming the file when
/// it cannot be read.
std::string read_text_file(const std::string& path);

/// Appends up to `max` bytes read from `fd` to `buf` (one read(2), retried on EINTR) and returns
/// how many (0 at the end of the file); a read error fails naming `path`. The streaming readers'
/// one read step (text_stream.h, line_reader.h).
size_t read_append(int fd, const std::string& path, std::string& buf, size_t max);

/// A file that appears under its name complete or not at all: the engine's one way to write a
/// file in place (text, safetensors, PNG, the zip bundle; the studio's files through
/// write_file_atomic).
///
/// The constructor creates `.NAME.tmp-XXXXXX` beside the target (same folder, so the rename stays
/// on one file system) with mode 0644 less the process umask. Write through write() or fd(), or
/// let a library write the file by temp_path() (QuaZip); commit() then fsyncs the file, renames
/// it onto the target and fsyncs the folder. Until commit() the target is untouched; a temp file
/// that was not committed (an error, a cancel, an exception) is removed by the destructor.
/// Errors throw latmix::Error naming the target and what failed.
class AtomicFile {
 public:
  /// What commit() does when the target exists by then.
  enum class Existing { kReplace, kRefuse };

  explicit AtomicFile(std::string target);
  ~AtomicFile();
  AtomicFile(const AtomicFile&) = delete;
  AtomicFile& operator=(const AtomicFile&) = delete;

  const std::string& target() const { return target_; }
  /// The temp file's path (for a writer that opens the file by name).
  const std::string& temp_path() const { return temp_; }
  /// The temp file's descriptor, open for writing until finish(); -1 after it.
  int fd() const { return fd_; }

  /// Appends all of `data` (retries short writes and EINTR).
  void write(const void* data, size_t size);
  void write(std::string_view text) { write(text.data(), text.size()); }

  /// fsync and close: the data is on disk but not yet visible under the target name. commit()
  /// calls it when it was not called; call it first to finish several files before renaming any.
  void finish();

  /// finish(), then renames the temp file onto the target (kRefuse: an existing target, one that
  /// appeared meanwhile included, is an Error saying so and is left as it is) and fsyncs the
  /// folder (a file system that cannot fsync folders, EINVAL, is accepted).
  void commit(Existing existing = Existing::kReplace);

 private:
  std::string target_;
  std::string temp_;
  int fd_ = -1;
  bool committed_ = false;
};

/// A folder that appears under its name complete or not at all: the engine's one way to write a
/// folder in place (exports, learning checkpoints), AtomicFile's counterpart.
///
/// The constructor removes the temp folders of processes that no longer run (a kill -9 or a power
/// cut during an earlier write to the same target) and creates `.NAME.latmix-tmp-PID-XXXXXX` beside
/// the target (mode 0755; the pid tells a dead run's folder from a running one's). Write into
/// path(); commit() fsyncs every file in it and the folder, renames it onto the target without
/// replacing anything, and fsyncs the parent. Until commit() the target is untouched; a folder that
/// was not committed is removed with everything in it by the destructor. Errors throw
/// latmix::Error naming the target and what failed.
class AtomicFolder {
 public:
  /// `what` names the folder in errors ("export": "cannot create the export's temp folder there").
  /// \throws latmix::Error when the temp folder cannot be made (the parent missing or not writable).
  explicit AtomicFolder(const std::string& target, const std::string& what = "folder");
  ~AtomicFolder();
  AtomicFolder(const AtomicFolder&) = delete;
  AtomicFolder& operator=(const AtomicFolder&) = delete;

  const std::string& target() const { return target_; }
  const std::string& path() const { return path_; }

  /// Called by commit() when the target exists at that moment: returns to let the folder replace
  /// it, throws (its own message) to refuse. Without one, an existing target is refused.
  using ReplaceCheck = std::function<void(const std::string& target)>;
  /// The files and the folder fsynced, then renamed onto the target; a target that exists by then
  /// (one that appeared meanwhile included) goes through `may_replace`: when allowed, the two are
  /// swapped in one step (the target is never absent) and the earlier one removed. Then the parent
  /// is fsynced.
  void commit(const ReplaceCheck& may_replace = {});

 private:
  std::string target_, path_;
  bool committed_ = false;
};

/// Writes `contents` to `path` through AtomicFile: complete or not at all, the old file untouched
/// on failure, nothing left behind.
void write_file_atomic(const std::string& path, std::string_view contents);

/// fsync of a folder, what a rename inside it needs to be durable. Throws latmix::Error when the
/// folder cannot be opened or the fsync fails, except EINVAL (file systems that cannot fsync a
/// folder).
void fsync_folder(const std::string& dir);

/// rename(2) that never replaces anything: renameat2 RENAME_NOREPLACE, or where the file system
/// lacks it (EINVAL/ENOSYS) a check then rename. Returns 0, or -1 with errno (EEXIST when `to`
/// exists).
int rename_no_replace(const std::string& from, const std::string& to);

/// Swaps two existing paths in one step (renameat2 RENAME_EXCHANGE). Returns 0, or -1 with errno.
int rename_exchange(const std::string& a, const std::string& b);

}  // namespace latmix
