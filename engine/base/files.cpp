#include "latmix/files.h"

#include <fcntl.h>
#include <signal.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <random>
#include <vector>

#include "latmix/error.h"

namespace latmix {

namespace {

std::string file_kind(mode_t mode) {
  if (S_ISDIR(mode)) return "a folder";
  if (S_ISFIFO(mode)) return "a FIFO (named pipe)";
  if (S_ISCHR(mode)) return "a character device";
  if (S_ISBLK(mode)) return "a block device";
  if (S_ISSOCK(mode)) return "a socket";
  return "not a regular file";
}

std::string errno_text(int err) {
  return std::strerror(err);
}

// The folder a target lives in ("." for a bare name).
std::filesystem::path folder_of(const std::string& target) {
  const std::filesystem::path t(target);
  return t.has_parent_path() ? t.parent_path() : std::filesystem::path(".");
}

// Creates `.NAME.tmp-XXXXXX` beside `target` with O_EXCL and mode 0644, which the kernel narrows
// by the umask (mkstemp's 0600 would need a chmod that ignores it). Returns the descriptor.
int create_temp_beside(const std::string& target, std::string& temp) {
  const std::string base = (folder_of(target) / ("." + std::filesystem::path(target).filename().string() + ".tmp-")).string();
  static const char kChars[] = "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789";
  thread_local std::mt19937_64 rng{std::random_device{}() ^ (static_cast<uint64_t>(::getpid()) << 32)};
  for (int attempt = 0; attempt < 100; ++attempt) {
    std::string name = base;
    for (int i = 0; i < 6; ++i) name.push_back(kChars[rng() % (sizeof kChars - 1)]);
    const int fd = ::open(name.c_str(), O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0644);
    if (fd >= 0) {
      temp = std::move(name);
      return fd;
    }
    if (errno != EEXIST) fail(target, "cannot create a temp file beside the target", "", errno_text(errno));
  }
  fail(target, "cannot create a temp file beside the target", "", "100 names taken");
}

}  // namespace

size_t read_append(int fd, const std::string& path, std::string& buf, size_t max) {
  const size_t old = buf.size();
  buf.resize(old + max);
  for (;;) {
    const ssize_t n = ::read(fd, buf.data() + old, max);
    if (n < 0 && errno == EINTR) continue;
    if (n < 0) {
      const int err = errno;
      buf.resize(old);
      fail(path, std::string("read error: ") + std::strerror(err));
    }
    buf.resize(old + static_cast<size_t>(n));
    return static_cast<size_t>(n);
  }
}

int open_regular_file(const std::string& path) {
  // O_NONBLOCK: open() of a FIFO returns at once instead of waiting for a writer; the fstat below
  // then refuses it. The flag has no effect on reads of a regular file.
  const int fd = ::open(path.c_str(), O_RDONLY | O_NONBLOCK | O_CLOEXEC);
  if (fd < 0) fail(path, std::string("cannot open file: ") + std::strerror(errno));
  struct stat st {};
  if (::fstat(fd, &st) != 0) {
    const int err = errno;
    ::close(fd);
    fail(path, std::string("cannot stat file: ") + std::strerror(err));
  }
  if (!S_ISREG(st.st_mode)) {
    ::close(fd);
    fail(path, "cannot read this file", "a regular file", file_kind(st.st_mode));
  }
  return fd;
}

std::string read_text_file(const std::string& path) {
  const int fd = open_regular_file(path);
  std::string out;
  struct stat st {};
  if (::fstat(fd, &st) == 0) out.reserve(static_cast<size_t>(st.st_size));
  char chunk[1 << 16];
  for (;;) {
    const ssize_t n = ::read(fd, chunk, sizeof chunk);
    if (n == 0) break;
    if (n < 0) {
      if (errno == EINTR) continue;
      const int err = errno;
      ::close(fd);
      fail(path, std::string("read error: ") + std::strerror(err));
    }
    out.append(chunk, static_cast<size_t>(n));
  }
  ::close(fd);
  return out;
}

AtomicFile::AtomicFile(std::string target) : target_(std::move(target)) {
  fd_ = create_temp_beside(target_, temp_);
}

AtomicFile::~AtomicFile() {
  if (fd_ >= 0) ::close(fd_);
  if (!committed_) ::unlink(temp_.c_str());
}

void AtomicFile::write(const void* data, size_t size) {
  if (fd_ < 0) fail(target_, "write after the file was finished");
  const auto* p = static_cast<const char*>(data);
  while (size > 0) {
    const ssize_t n = ::write(fd_, p, size);
    if (n < 0 && errno == EINTR) continue;
    if (n < 0) fail(target_, "write failed", "", errno_text(errno));
    if (n == 0) fail(target_, "write failed", "", "no byte written");
    p += n;
    size -= static_cast<size_t>(n);
  }
}

void AtomicFile::finish() {
  if (fd_ < 0) return;
  const int fd = fd_;
  fd_ = -1;
  if (::fsync(fd) != 0) {
    const int err = errno;
    ::close(fd);
    fail(target_, "fsync failed", "", errno_text(err));
  }
  if (::close(fd) != 0) fail(target_, "close failed", "", errno_text(errno));
}

void AtomicFile::commit(Existing existing) {
  if (committed_) return;
  finish();
  const int rc = existing == Existing::kReplace ? ::rename(temp_.c_str(), target_.c_str())
                                                : rename_no_replace(temp_, target_);
  if (rc != 0 && errno == EEXIST) {
    fail(target_, "appeared while it was written; refusing to replace it (nothing was written)", "a new path",
         "an existing file");
  }
  if (rc != 0) fail(target_, "cannot rename the temp file onto the target", "", errno_text(errno));
  committed_ = true;
  fsync_folder(folder_of(target_).string());
}

void write_file_atomic(const std::string& path, std::string_view contents) {
  AtomicFile f(path);
  f.write(contents);
  f.commit();
}

void fsync_folder(const std::string& dir) {
  const std::string d = dir.empty() ? "." : dir;
  const int fd = ::open(d.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  if (fd < 0) fail(d, "cannot open the folder to fsync it", "", errno_text(errno));
  const int rc = ::fsync(fd);
  const int err = errno;
  ::close(fd);
  // Some file systems cannot fsync a folder (EINVAL): the rename is done, nothing more to do.
  if (rc != 0 && err != EINVAL) fail(d, "fsync of the folder failed", "", errno_text(err));
}

int rename_no_replace(const std::string& from, const std::string& to) {
  if (::renameat2(AT_FDCWD, from.c_str(), AT_FDCWD, to.c_str(), RENAME_NOREPLACE) == 0) return 0;
  if (errno != EINVAL && errno != ENOSYS) return -1;
  struct stat st {};
  if (::lstat(to.c_str(), &st) == 0) {
    errno = EEXIST;
    return -1;
  }
  return ::rename(from.c_str(), to.c_str());
}

int rename_exchange(const std::string& a, const std::string& b) {
  return ::renameat2(AT_FDCWD, a.c_str(), AT_FDCWD, b.c_str(), RENAME_EXCHANGE);
}

namespace {

// Removes `.NAME.latmix-tmp-PID-XXXXXX` folders in `parent` whose process is gone. Folders of a
// running process, and names we did not make, are left alone.
void remove_stale_temp_folders(const std::filesystem::path& parent, const std::string& name) {
  namespace fs = std::filesystem;
  const std::string prefix = "." + name + ".latmix-tmp-";
  std::error_code ec;
  for (const auto& entry : fs::directory_iterator(parent, ec)) {
    const std::string n = entry.path().filename().string();
    if (n.rfind(prefix, 0) != 0 || !entry.is_directory(ec) || entry.is_symlink(ec)) continue;
    const std::string rest = n.substr(prefix.size());
    const auto dash = rest.find('-');
    if (dash == std::string::npos || dash == 0 || rest.size() - dash - 1 != 6) continue;
    char* end = nullptr;
    const long pid = std::strtol(rest.c_str(), &end, 10);
    if (end != rest.c_str() + dash || pid <= 0) continue;
    if (::kill(static_cast<pid_t>(pid), 0) == 0 || errno != ESRCH) continue;  // alive, or not ours to judge
    fs::remove_all(entry.path(), ec);
  }
}

// fsync of a file, best effort (it was written and closed by its writer).
void fsync_file(const std::string& path) {
  const int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0) return;
  ::fsync(fd);
  ::close(fd);
}

}  // namespace

AtomicFolder::AtomicFolder(const std::string& target, const std::string& what)
    : target_(std::filesystem::path(target).lexically_normal().string()) {
  namespace fs = std::filesystem;
  if (target_.size() > 1 && target_.back() == '/') target_.pop_back();
  const fs::path parent = folder_of(target_);
  const std::string name = fs::path(target_).filename().string();
  remove_stale_temp_folders(parent, name);
  std::string pattern =
      (parent / ("." + name + ".latmix-tmp-" + std::to_string(::getpid()) + "-XXXXXX")).string();
  if (::mkdtemp(pattern.data()) == nullptr) {
    fail(parent.string(), "cannot create the " + what + "'s temp folder there (is the folder writable?)", "",
         errno_text(errno));
  }
  ::chmod(pattern.c_str(), 0755);
  path_ = pattern;
}

AtomicFolder::~AtomicFolder() {
  if (committed_) return;
  std::error_code ec;
  std::filesystem::remove_all(path_, ec);
}

void AtomicFolder::commit(const ReplaceCheck& may_replace) {
  namespace fs = std::filesystem;
  if (committed_) return;
  std::error_code ec;
  for (const auto& entry : fs::directory_iterator(path_, ec)) {
    if (entry.is_regular_file(ec)) fsync_file(entry.path().string());
  }
  fsync_folder(path_);
  // Whatever is at the target now is judged now: one that appeared meanwhile is never replaced
  // without may_replace's consent.
  if (rename_no_replace(path_, target_) != 0) {
    const int err = errno;
    if (err != EEXIST && err != ENOTEMPTY) fail(target_, "cannot rename the finished folder into place", "", errno_text(err));
    if (!may_replace) {
      fail(target_, "appeared while it was written; refusing to replace it (nothing was written)", "a new path",
           "an existing file or folder");
    }
    may_replace(target_);
    // One atomic swap: the target is never absent; the earlier one ends up at our temp path.
    if (rename_exchange(path_, target_) != 0) {
      fail(target_, "cannot replace the earlier folder atomically (rename exchange)", "", errno_text(errno));
    }
    committed_ = true;
    fs::remove_all(path_, ec);
  }
  committed_ = true;
  fsync_folder(folder_of(target_).string());
}

}  // namespace latmix
