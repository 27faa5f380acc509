// Files and folders of an export: the temp folder and its atomic rename, target and space checks.
#include <fcntl.h>
#include <signal.h>
#include <sys/stat.h>
#include <sys/statvfs.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <cerrno>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <mutex>
#include <thread>
#include <vector>

#include "export/export_internal.h"
#include "latmix/error.h"
#include "latmix/files.h"
#include "latmix/json.h"
#include "latmix/sha256.h"

namespace latmix::export_detail {

namespace fs = std::filesystem;

namespace {

std::string errno_text() {
  return std::strerror(errno);
}

fs::path canonical_or_lexical(const std::string& p) {
  std::error_code ec;
  fs::path c = fs::weakly_canonical(fs::absolute(p, ec), ec);
  if (ec) return fs::absolute(p).lexically_normal();
  return c;
}

// Whether `inner` is `outer` or lies inside it (both canonical).
bool is_within(const fs::path& inner, const fs::path& outer) {
  auto i = inner.begin();
  for (auto o = outer.begin(); o != outer.end(); ++o, ++i) {
    if (o->empty()) continue;  // trailing separator
    if (i == inner.end() || *i != *o) return false;
  }
  return true;
}

bool is_earlier_export(const fs::path& dir) {
  std::error_code ec;
  if (fs::is_empty(dir, ec) && !ec) return true;
  const fs::path manifest = dir / "manifest.json";
  if (!fs::is_regular_file(manifest, ec)) return false;
  try {
    const auto j = read_json_file(manifest.string());
    return JsonObject(j, manifest.string()).string_or("format", "") == "latmix-export";
  } catch (const std::exception&) {
    return false;
  }
}

}  // namespace

std::string parent_of(const std::string& path) {
  fs::path p = fs::path(path).lexically_normal();
  if (p.has_filename() == false) p = p.parent_path();  // "dir/" -> "dir"
  const fs::path parent = p.parent_path();
  return parent.empty() ? "." : parent.string();
}

AtomicFolder::ReplaceCheck replace_earlier_export(bool overwrite) {
  return [overwrite](const std::string& target) {
    if (!overwrite) {
      fail(target, "appeared while the export ran; refusing to replace it (nothing was written)",
           "a new path, or --overwrite to replace an earlier export", "an existing file or folder");
    }
    std::error_code ec;
    if (!fs::is_directory(fs::symlink_status(target, ec)) || !is_earlier_export(target)) {
      fail(target, "refusing to replace it (nothing was written)",
           "an earlier export (a folder with a latmix manifest.json) or an empty folder", "something else");
    }
  };
}

void check_target(const std::string& out, const std::string& source, bool overwrite) {
  if (out.empty()) throw UsageError("export: no output path");
  const fs::path target = canonical_or_lexical(out);
  const fs::path src = canonical_or_lexical(source);
  if (is_within(src, target)) {
    fail(out, "refusing to write the export there: it would overwrite the source model",
         "a path outside " + src.string(), target.string());
  }
  std::error_code ec;
  const fs::path parent = parent_of(target.string());
  if (!fs::is_directory(parent, ec)) {
    fail(out, "the parent folder does not exist or is not a folder", "an existing folder", parent.string());
  }
  if (fs::exists(fs::symlink_status(target, ec))) {
    if (!overwrite)
      fail(out, "already exists", "a new path, or --overwrite to replace an earlier export",
           "an existing file or folder");
    if (!fs::is_directory(target, ec) || !is_earlier_export(target)) {
      fail(out, "refusing to replace it", "an earlier export (a folder with a latmix manifest.json) or an empty folder",
           "something else");
    }
  }
}

uint64_t free_bytes(const std::string& dir) {
  struct statvfs st {};
  if (::statvfs(dir.c_str(), &st) != 0) fail(dir, "cannot read the file system's free space", "", errno_text());
  return static_cast<uint64_t>(st.f_bavail) * static_cast<uint64_t>(st.f_frsize);
}

void check_space(const std::string& dir, uint64_t needed) {
  const uint64_t free = free_bytes(dir);
  // A margin for file system overhead: 1% and 1 MB.
  const uint64_t want = needed + needed / 100 + (1u << 20);
  if (free < want) {
    fail(dir, "not enough free space for the export", "about " + format_bytes(want) + " free",
         format_bytes(free) + " free");
  }
}

void copy_file(const std::string& from, const std::string& to) {
  std::ifstream in(from, std::ios::binary);
  if (!in) fail(from, "cannot open file: " + errno_text());
  std::ofstream out(to, std::ios::binary | std::ios::trunc);
  if (!out) fail(to, "cannot create file: " + errno_text());
  std::vector<char> buf(1 << 20);
  while (in) {
    in.read(buf.data(), static_cast<std::streamsize>(buf.size()));
    const std::streamsize n = in.gcount();
    if (n > 0) out.write(buf.data(), n);
    if (!out) fail(to, "write failed: " + errno_text());
  }
  if (in.bad()) fail(from, "read error");
  out.close();
  if (!out) fail(to, "write failed: " + errno_text());
}

void write_text(const std::string& path, const std::string& text) {
  std::ofstream out(path, std::ios::binary | std::ios::trunc);
  if (!out) fail(path, "cannot create file: " + errno_text());
  out.write(text.data(), static_cast<std::streamsize>(text.size()));
  out.close();
  if (!out) fail(path, "write failed: " + errno_text());
}

std::vector<ExportedFile> hash_folder(const std::string& dir, const JobControl& job) {
  std::vector<ExportedFile> files;
  for (const auto& entry : fs::directory_iterator(dir)) {
    if (!fs::is_regular_file(entry.symlink_status())) continue;  // a symlink is not followed (odd_entries)
    const std::string name = entry.path().filename().string();
    if (name == "manifest.json") continue;
    files.push_back({name, static_cast<uint64_t>(entry.file_size()), {}});
  }
  std::sort(files.begin(), files.end(), [](const ExportedFile& a, const ExportedFile& b) { return a.name < b.name; });
  uint64_t total = 0;
  for (const auto& f : files) total += f.bytes;
  // The files of a sharded export are hashed in parallel (one thread a file, at most the cores);
  // progress is the bytes of all of them, reported under one lock.
  std::mutex lock;
  uint64_t done = 0;
  std::atomic<size_t> next{0};
  std::exception_ptr error;
  std::atomic<bool> failed{false};
  auto work = [&] {
    for (size_t i = next++; i < files.size() && !failed; i = next++) {
      JobControl per_file;
      per_file.cancel = job.cancel;
      uint64_t mine = 0;
      per_file.progress = [&](std::string_view, int64_t d, int64_t) {
        if (failed) throw Cancelled();  // another file failed: this one stops at its next chunk
        const std::lock_guard<std::mutex> g(lock);
        done += static_cast<uint64_t>(d) - mine;
        mine = static_cast<uint64_t>(d);
        job.report("hash", static_cast<int64_t>(done), static_cast<int64_t>(total));
      };
      try {
        files[i].sha256 = sha256_file((fs::path(dir) / files[i].name).string(), per_file);
      } catch (...) {
        const std::lock_guard<std::mutex> g(lock);
        if (!error) error = std::current_exception();
        failed = true;
        return;
      }
    }
  };
  const size_t threads = std::min<size_t>({files.size(), size_t{8}, std::max(1u, std::thread::hardware_concurrency())});
  std::vector<std::thread> pool;
  for (size_t t = 1; t < threads; ++t) pool.emplace_back(work);
  work();
  for (auto& t : pool) t.join();
  if (error) std::rethrow_exception(error);
  return files;
}

std::vector<std::string> odd_entries(const std::string& dir) {
  std::vector<std::string> out;
  for (const auto& entry : fs::directory_iterator(dir)) {
    const fs::file_status st = entry.symlink_status();
    if (fs::is_regular_file(st)) continue;
    const std::string what = fs::is_symlink(st)     ? "a symbolic link"
                             : fs::is_directory(st) ? "a folder"
                             : fs::is_fifo(st)      ? "a FIFO"
                                                    : "not a regular file";
    out.push_back(entry.path().filename().string() + ": " + what);
  }
  std::sort(out.begin(), out.end());
  return out;
}

std::string format_bytes(uint64_t bytes) {
  char buf[32];
  const double b = static_cast<double>(bytes);
  if (bytes < 1000)
    std::snprintf(buf, sizeof(buf), "%llu B", static_cast<unsigned long long>(bytes));
  else if (bytes < 1000000)
    std::snprintf(buf, sizeof(buf), "%.1f kB", b / 1e3);
  else if (bytes < 1000000000)
    std::snprintf(buf, sizeof(buf), "%.1f MB", b / 1e6);
  else
    std::snprintf(buf, sizeof(buf), "%.2f GB", b / 1e9);
  return buf;
}

}  // namespace latmix::export_detail
