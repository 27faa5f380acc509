// The export bundle through QuaZip (bundle.h).
#include "bundle.h"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <QFile>
#include <QString>
#include <algorithm>
#include <cerrno>
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <map>
#include <vector>

#include <quazip/quazip.h>
#include <quazip/quazipfile.h>
#include <quazip/quazipfileinfo.h>
#include <quazip/quazipnewinfo.h>

#include "latmix/error.h"
#include "latmix/files.h"
#include "latmix/json.h"
#include "latmix/sha256.h"

namespace latmix {

namespace fs = std::filesystem;

namespace {

constexpr qint64 kChunk = 1 << 20;

QString q(const std::string& s) {
  return QString::fromStdString(s);
}

// A temp zip beside the target, removed unless committed.
class TempZip {
 public:
  explicit TempZip(const std::string& target) {
    const fs::path t(target);
    const fs::path dir = t.has_parent_path() ? t.parent_path() : fs::path(".");
    std::string pattern = (dir / ("." + t.filename().string() + ".tmp-XXXXXX")).string();
    const int fd = ::mkstemp(pattern.data());
    if (fd < 0) fail(target, "cannot create a temp file beside the target", "", std::strerror(errno));
    ::close(fd);
    ::chmod(pattern.c_str(), 0644);
    path_ = pattern;
  }
  ~TempZip() {
    if (!committed_) ::unlink(path_.c_str());
  }
  const std::string& path() const { return path_; }
  // A file that appeared at the target while the zip was written is replaced only with
  // `overwrite` (renameat2 RENAME_NOREPLACE; plain rename where the file system lacks it).
  void commit(const std::string& target, bool overwrite) {
    const int fd = ::open(path_.c_str(), O_RDONLY | O_CLOEXEC);
    if (fd >= 0) {
      ::fsync(fd);
      ::close(fd);
    }
    const int rc = overwrite ? ::rename(path_.c_str(), target.c_str()) : rename_no_replace(path_, target);
    if (rc != 0 && errno == EEXIST) {
      fail(target, "appeared while the bundle was written; refusing to replace it (nothing was written)",
           "a new path, or --overwrite", "an existing file");
    }
    if (rc != 0) fail(target, "rename failed", "", std::strerror(errno));
    committed_ = true;
    const fs::path dir = fs::path(target).has_parent_path() ? fs::path(target).parent_path() : fs::path(".");
    const int dfd = ::open(dir.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (dfd >= 0) {
      ::fsync(dfd);
      ::close(dfd);
    }
  }

 private:
  std::string path_;
  bool committed_ = false;
};

// The files to zip: manifest.json first, then the rest by name.
std::vector<fs::path> bundle_files(const std::string& folder) {
  std::error_code ec;
  if (!fs::is_regular_file(fs::path(folder) / "manifest.json", ec)) {
    fail(folder, "not an export folder", "a manifest.json", "none");
  }
  std::vector<fs::path> files;
  for (const auto& e : fs::directory_iterator(folder)) {
    if (e.is_regular_file() && e.path().filename() != "manifest.json") files.push_back(e.path());
  }
  std::sort(files.begin(), files.end());
  files.insert(files.begin(), fs::path(folder) / "manifest.json");
  return files;
}

void add_entry(QuaZip& zip, const fs::path& file, const std::string& zip_path, uint64_t& done, uint64_t total,
               const JobControl& job) {
  QFile in(q(file.string()));
  if (!in.open(QIODevice::ReadOnly)) fail(file.string(), "cannot open file: " + in.errorString().toStdString());
  QuaZipNewInfo info(q(file.filename().string()), q(file.string()));
  QuaZipFile out(&zip);
  // method 0: stored (no compression); the weights do not compress and readers can map them.
  if (!out.open(QIODevice::WriteOnly, info, nullptr, 0, 0, 0)) {
    fail(zip_path, "cannot add " + file.filename().string(), "", "QuaZip error " + std::to_string(out.getZipError()));
  }
  QByteArray buf;
  for (;;) {
    job.cancel.check();
    buf = in.read(kChunk);
    if (buf.isEmpty()) break;
    if (out.write(buf) != buf.size()) {
      fail(zip_path, "write failed while adding " + file.filename().string(), "",
           "QuaZip error " + std::to_string(out.getZipError()) + " (is the disk full?)");
    }
    done += static_cast<uint64_t>(buf.size());
    job.report("zip", static_cast<int64_t>(done), static_cast<int64_t>(total));
  }
  if (in.error() != QFileDevice::NoError) fail(file.string(), "read error: " + in.errorString().toStdString());
  out.close();
  if (out.getZipError() != 0) {
    fail(zip_path, "cannot finish " + file.filename().string(), "",
         "QuaZip error " + std::to_string(out.getZipError()));
  }
}

// Reads the current entry of an open zip to its end: SHA-256 and size (QuaZip checks the CRC-32
// on close and reports a mismatch as an error).
ExportedFile read_entry(QuaZip& zip, const std::string& zip_path, const JobControl& job, uint64_t& done,
                        uint64_t total) {
  QuaZipFileInfo64 info;
  zip.getCurrentFileInfo(&info);
  QuaZipFile f(&zip);
  if (!f.open(QIODevice::ReadOnly)) fail(zip_path, "cannot read entry " + info.name.toStdString());
  Sha256 h;
  uint64_t bytes = 0;
  for (;;) {
    job.cancel.check();
    const QByteArray buf = f.read(kChunk);
    if (buf.isEmpty()) break;
    h.update(buf.constData(), static_cast<size_t>(buf.size()));
    bytes += static_cast<uint64_t>(buf.size());
    done += static_cast<uint64_t>(buf.size());
    job.report("hash", static_cast<int64_t>(done), static_cast<int64_t>(total));
  }
  f.close();
  ExportedFile out{info.name.toStdString(), bytes, h.hex()};
  if (f.getZipError() != 0)
    out.sha256 = "unreadable (QuaZip error " + std::to_string(f.getZipError()) + ", CRC mismatch?)";
  return out;
}

void open_for_reading(QuaZip& zip, const std::string& zip_path) {
  std::error_code ec;
  if (!fs::is_regular_file(zip_path, ec)) fail(zip_path, "cannot open file: no such file");
  if (!zip.open(QuaZip::mdUnzip))
    fail(zip_path, "not a readable zip", "", "QuaZip error " + std::to_string(zip.getZipError()));
}

}  // namespace

void write_bundle(const std::string& folder, const std::string& zip_path, bool overwrite, const JobControl& job) {
  std::error_code ec;
  if (fs::exists(zip_path, ec) && !overwrite) {
    fail(zip_path, "already exists", "a new path, or --overwrite", "an existing file");
  }
  if (fs::is_directory(zip_path, ec)) fail(zip_path, "is a folder", "a .zip file path", "a folder");
  const std::vector<fs::path> files = bundle_files(folder);
  uint64_t total = 0, done = 0;
  for (const auto& f : files) total += static_cast<uint64_t>(fs::file_size(f));
  TempZip temp(zip_path);
  {
    QuaZip zip(q(temp.path()));
    zip.setZip64Enabled(true);
    zip.setUtf8Enabled(true);
    if (!zip.open(QuaZip::mdCreate)) {
      fail(zip_path, "cannot create the zip", "", "QuaZip error " + std::to_string(zip.getZipError()));
    }
    for (const auto& f : files) add_entry(zip, f, zip_path, done, total, job);
    zip.close();
    if (zip.getZipError() != 0) {
      fail(zip_path, "cannot finish the zip", "",
           "QuaZip error " + std::to_string(zip.getZipError()) + " (is the disk full?)");
    }
  }
  job.cancel.check();
  temp.commit(zip_path, overwrite);
}

nlohmann::json read_bundle_manifest(const std::string& zip_path) {
  QuaZip zip(q(zip_path));
  open_for_reading(zip, zip_path);
  if (!zip.setCurrentFile("manifest.json")) fail(zip_path, "not an export bundle", "a manifest.json entry", "none");
  QuaZipFile f(&zip);
  if (!f.open(QIODevice::ReadOnly)) fail(zip_path, "cannot read manifest.json");
  const QByteArray bytes = f.readAll();
  f.close();
  const std::string file = zip_path + ":manifest.json";
  nlohmann::json j = parse_json_file(file, std::string_view(bytes.constData(), static_cast<size_t>(bytes.size())));
  const JsonObject m(j, file);
  if (m.string_or("format", "") != "latmix-export")
    fail(file, "format", "\"latmix-export\"", m.string_or("format", "none"));
  return j;
}

ExportVerification verify_bundle(const std::string& zip_path, const JobControl& job) {
  const nlohmann::json manifest = read_bundle_manifest(zip_path);
  QuaZip zip(q(zip_path));
  open_for_reading(zip, zip_path);
  uint64_t total = 0, done = 0;
  for (bool more = zip.goToFirstFile(); more; more = zip.goToNextFile()) {
    QuaZipFileInfo64 info;
    if (zip.getCurrentFileInfo(&info)) total += info.uncompressedSize;
  }
  std::map<std::string, ExportedFile> found;
  ExportVerification out;
  for (bool more = zip.goToFirstFile(); more; more = zip.goToNextFile()) {
    ExportedFile f = read_entry(zip, zip_path, job, done, total);
    if (found.count(f.name)) out.add("entry " + f.name, false, "appears twice in the zip");
    found[f.name] = f;
  }
  check_manifest_files(manifest, zip_path + ":manifest.json", found, out);
  out.figures["kind"] = JsonObject(manifest, zip_path + ":manifest.json").string_or("kind", "");
  out.figures["entries"] = found.size();
  return out;
}

}  // namespace latmix
