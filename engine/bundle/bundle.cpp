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

// The manifest of a bundle is a few kB; a bigger entry is refused before it is read.
constexpr uint64_t kMaxManifestBytes = 16ull << 20;

// What the central directory says about one entry, read before any entry is decompressed.
struct EntryInfo {
  std::string name;
  uint64_t bytes = 0;       // uncompressed size the zip declares
  uint64_t compressed = 0;  // size in the archive
  uint16_t method = 0;      // 0 stored, 8 deflate
};

// A plain relative file name: what an export folder holds (issue 20, item 17). No folders, no
// "..", no absolute paths, no backslashes or control characters.
std::string name_problem(const std::string& name) {
  if (name.empty()) return "an empty name";
  if (name == "." || name == ".." || name.rfind("../", 0) == 0 || name.find("/../") != std::string::npos ||
      (name.size() >= 3 && name.compare(name.size() - 3, 3, "/..") == 0)) {
    return "'..' in the name (a path outside the export)";
  }
  if (name.front() == '/') return "an absolute path";
  if (name.find('/') != std::string::npos) return "a path with a folder (an export holds plain files)";
  if (name.find('\\') != std::string::npos) return "a backslash in the name";
  for (unsigned char c : name) {
    if (c < 0x20 || c == 0x7f) return "a control character in the name";
  }
  return {};
}

std::vector<EntryInfo> list_entries(QuaZip& zip, const std::string& zip_path) {
  std::vector<EntryInfo> out;
  for (bool more = zip.goToFirstFile(); more; more = zip.goToNextFile()) {
    QuaZipFileInfo64 info;
    if (!zip.getCurrentFileInfo(&info)) fail(zip_path, "cannot read the zip's central directory");
    out.push_back({info.name.toStdString(), info.uncompressedSize, info.compressedSize, info.method});
  }
  if (zip.getZipError() != 0)
    fail(zip_path, "cannot read the zip's central directory", "", "QuaZip error " + std::to_string(zip.getZipError()));
  return out;
}

// Reads the current entry, at most `declared` bytes (the size both the manifest and the zip
// state): SHA-256 and size. An entry that inflates past its declared size is cut there and
// reported, so a bomb costs no more than what the manifest lists. QuaZip checks the CRC-32 on
// close and reports a mismatch as an error.
ExportedFile read_entry(QuaZip& zip, const EntryInfo& e, const std::string& zip_path, const JobControl& job,
                        uint64_t& done, uint64_t total) {
  QuaZipFile f(&zip);
  if (!f.open(QIODevice::ReadOnly)) fail(zip_path, "cannot read entry " + e.name);
  Sha256 h;
  uint64_t bytes = 0;
  bool longer = false;
  for (;;) {
    job.cancel.check();
    const qint64 want = static_cast<qint64>(std::min<uint64_t>(kChunk, e.bytes - bytes + 1));
    const QByteArray buf = f.read(want);
    if (buf.isEmpty()) break;
    const auto n = static_cast<uint64_t>(buf.size());
    if (bytes + n > e.bytes) {
      longer = true;
      break;
    }
    h.update(buf.constData(), static_cast<size_t>(n));
    bytes += n;
    done += n;
    job.report("hash", static_cast<int64_t>(done), static_cast<int64_t>(total));
  }
  f.close();
  ExportedFile out{e.name, bytes, h.hex()};
  if (longer) {
    out.sha256 = "not hashed (the entry holds more than the " + std::to_string(e.bytes) + " bytes it declares)";
  } else if (f.getZipError() != 0) {
    out.sha256 = "unreadable (QuaZip error " + std::to_string(f.getZipError()) + ", CRC mismatch?)";
  }
  return out;
}

void open_for_reading(QuaZip& zip, const std::string& zip_path) {
  std::error_code ec;
  if (!fs::is_regular_file(zip_path, ec)) fail(zip_path, "cannot open file: no such file");
  if (!zip.open(QuaZip::mdUnzip))
    fail(zip_path, "not a readable zip", "", "QuaZip error " + std::to_string(zip.getZipError()));
}

// Writes the current entry to `to` (an entry verify_bundle() has already matched with the
// manifest: a plain name, its size), at most its declared size.
void extract_entry(QuaZip& zip, const EntryInfo& e, const std::string& zip_path, const std::string& to,
                   const JobControl& job, uint64_t& done, uint64_t total) {
  QuaZipFile f(&zip);
  if (!f.open(QIODevice::ReadOnly)) fail(zip_path, "cannot read entry " + e.name);
  const int fd = ::open(to.c_str(), O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0600);
  if (fd < 0) fail(to, std::string("cannot create the file: ") + std::strerror(errno));
  uint64_t bytes = 0;
  try {
    while (bytes < e.bytes) {
      job.cancel.check();
      const QByteArray buf = f.read(std::min<qint64>(kChunk, static_cast<qint64>(e.bytes - bytes)));
      if (buf.isEmpty()) break;
      const char* p = buf.constData();
      for (qint64 left = buf.size(); left > 0;) {
        const ssize_t n = ::write(fd, p, static_cast<size_t>(left));
        if (n < 0 && errno == EINTR) continue;
        if (n <= 0) fail(to, std::string("write failed: ") + std::strerror(errno));
        p += n;
        left -= n;
      }
      bytes += static_cast<uint64_t>(buf.size());
      done += static_cast<uint64_t>(buf.size());
      job.report("unzip", static_cast<int64_t>(done), static_cast<int64_t>(total));
    }
  } catch (...) {
    ::close(fd);
    f.close();
    throw;
  }
  ::close(fd);
  f.close();
  if (bytes != e.bytes) fail(zip_path, "entry " + e.name + " ended before its declared size while unzipping");
}

// A private folder under the system's temp folder, removed with everything in it.
class PrivateTempFolder {
 public:
  PrivateTempFolder() {
    std::string pattern = (fs::temp_directory_path() / "latmix-verify-XXXXXX").string();
    std::vector<char> buf(pattern.begin(), pattern.end());
    buf.push_back('\0');
    if (::mkdtemp(buf.data()) == nullptr)
      fail(pattern, std::string("cannot create a temp folder: ") + std::strerror(errno));
    path_ = buf.data();
  }
  ~PrivateTempFolder() {
    std::error_code ec;
    fs::remove_all(path_, ec);
  }
  PrivateTempFolder(const PrivateTempFolder&) = delete;
  PrivateTempFolder& operator=(const PrivateTempFolder&) = delete;
  const std::string& path() const { return path_; }

 private:
  std::string path_;
};

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
  AtomicFile temp(zip_path);  // QuaZip writes it by name; its descriptor is fsync'ed on commit
  {
    QuaZip zip(q(temp.temp_path()));
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
  // A file that appeared at the target while the zip was written is replaced only with `overwrite`.
  temp.commit(overwrite ? AtomicFile::Existing::kReplace : AtomicFile::Existing::kRefuse);
}

nlohmann::json read_bundle_manifest(const std::string& zip_path) {
  QuaZip zip(q(zip_path));
  open_for_reading(zip, zip_path);
  if (!zip.setCurrentFile("manifest.json")) fail(zip_path, "not an export bundle", "a manifest.json entry", "none");
  QuaZipFileInfo64 info;
  zip.getCurrentFileInfo(&info);
  const std::string file = zip_path + ":manifest.json";
  if (info.uncompressedSize > kMaxManifestBytes) {
    fail(file, "entry too large to be a manifest (not read)", "at most " + std::to_string(kMaxManifestBytes) + " bytes",
         std::to_string(info.uncompressedSize) + " bytes declared");
  }
  QuaZipFile f(&zip);
  if (!f.open(QIODevice::ReadOnly)) fail(zip_path, "cannot read manifest.json");
  // Read to the declared size and one byte more: a stream that inflates further is refused.
  const QByteArray bytes = f.read(static_cast<qint64>(info.uncompressedSize) + 1);
  f.close();
  if (static_cast<uint64_t>(bytes.size()) > info.uncompressedSize) {
    fail(file, "the entry holds more than it declares (not read further)",
         std::to_string(info.uncompressedSize) + " bytes", "more");
  }
  nlohmann::json j = parse_json_file(file, std::string_view(bytes.constData(), static_cast<size_t>(bytes.size())));
  const JsonObject m(j, file);
  if (m.string_or("format", "") != "latmix-export")
    fail(file, "format", "\"latmix-export\"", m.string_or("format", "none"));
  return j;
}

ExportVerification verify_bundle(const std::string& zip_path, const JobControl& job) {
  const nlohmann::json manifest = read_bundle_manifest(zip_path);
  const std::string manifest_file = zip_path + ":manifest.json";
  const JsonObject m(manifest, manifest_file);
  // What the manifest lists, with sizes: entries are judged against it before any is read.
  std::map<std::string, uint64_t> listed;
  const size_t count = m.has("files") ? m.array("files").size() : 0;
  for (size_t i = 0; i < count; ++i) {
    const JsonObject f = m.element("files", i);
    listed[f.string_or("name", "")] = static_cast<uint64_t>(f.integer_in("bytes", 0, INT64_MAX));
  }
  QuaZip zip(q(zip_path));
  open_for_reading(zip, zip_path);
  const std::vector<EntryInfo> entries = list_entries(zip, zip_path);
  std::error_code ec;
  const uint64_t archive_bytes = fs::file_size(zip_path, ec);
  ExportVerification out;
  std::map<std::string, int> seen;
  uint64_t total = 0, stored = 0;
  std::vector<bool> readable(entries.size(), false);
  for (size_t i = 0; i < entries.size(); ++i) {
    const EntryInfo& e = entries[i];
    const std::string problem = name_problem(e.name);
    if (!problem.empty()) {
      out.add("entry " + json_excerpt(nlohmann::json(e.name)), false, problem + " (not read)");
      continue;
    }
    if (++seen[e.name] > 1) {
      out.add("entry " + e.name, false, "appears more than once in the zip (not read)");
      continue;
    }
    if (e.name == "manifest.json") continue;
    const auto it = listed.find(e.name);
    if (it == listed.end()) continue;  // reported by check_manifest_files, never read
    if (e.bytes != it->second) continue;  // check_manifest_files reports the sizes; never read
    if (e.method != 0 && e.method != 8) {
      out.add("entry " + e.name, false,
              "compression method " + std::to_string(e.method) + " (expected stored or deflate; not read)");
      continue;
    }
    readable[i] = true;
    total += e.bytes;
    stored += e.compressed;
  }
  if (stored > archive_bytes) {
    out.add("zip sizes", false,
            "the entries declare " + std::to_string(stored) + " compressed bytes, the file has " +
                std::to_string(archive_bytes) + " (not read)");
    std::fill(readable.begin(), readable.end(), false);
  }
  std::map<std::string, ExportedFile> found;
  uint64_t done = 0;
  size_t i = 0;
  for (bool more = zip.goToFirstFile(); more && i < entries.size(); more = zip.goToNextFile(), ++i) {
    const EntryInfo& e = entries[i];
    if (readable[i]) {
      found[e.name] = read_entry(zip, e, zip_path, job, done, total);
    } else if (name_problem(e.name).empty() && seen[e.name] == 1 && !found.count(e.name)) {
      // Not read (unlisted, or a size that does not match): what check_manifest_files needs to
      // report it, with a digest that matches nothing.
      found[e.name] = {e.name, e.bytes, "not read"};
    }
  }
  check_manifest_files(manifest, manifest_file, found, out);
  out.figures["kind"] = m.string_or("kind", "");
  out.figures["entries"] = entries.size();
  return out;
}

}  // namespace latmix

namespace latmix {

ExportVerification verify_bundle_contents(const std::string& zip_path, const std::string& text, bool no_ppl,
                                          const JobControl& job) {
  ExportVerification out = verify_bundle(zip_path, job);
  if (!out.ok()) return out;  // entries that do not match the manifest are never unzipped
  QuaZip zip(q(zip_path));
  open_for_reading(zip, zip_path);
  const std::vector<EntryInfo> entries = list_entries(zip, zip_path);
  uint64_t total = 0;
  for (const auto& e : entries) total += e.bytes;
  const std::string what = "folder checks (load, decode, perplexity)";
  std::error_code ec;
  const fs::space_info room = fs::space(fs::temp_directory_path(ec), ec);
  if (!ec && room.available < total + (uint64_t{64} << 20)) {
    out.add_not_run(what, "unzipping needs " + std::to_string(total) + " bytes in " +
                              fs::temp_directory_path(ec).string() + ", " + std::to_string(room.available) +
                              " available (set TMPDIR to a folder with room, or unzip and verify the folder)");
    return out;
  }
  PrivateTempFolder dir;
  uint64_t done = 0;
  size_t i = 0;
  for (bool more = zip.goToFirstFile(); more && i < entries.size(); more = zip.goToNextFile(), ++i) {
    if (!name_problem(entries[i].name).empty()) fail(zip_path, "entry " + entries[i].name + ": " + name_problem(entries[i].name));
    extract_entry(zip, entries[i], zip_path, (fs::path(dir.path()) / entries[i].name).string(), job, done, total);
  }
  const ExportVerification folder = verify_export_with_text(dir.path(), text, no_ppl, job);
  // The files' sizes and digests were checked in the zip; the folder adds what only it can check.
  for (const auto& c : folder.checks) {
    if (c.what.rfind("file ", 0) == 0 || c.what.rfind("entry ", 0) == 0) continue;
    out.checks.push_back(c);
  }
  for (auto it = folder.figures.begin(); it != folder.figures.end(); ++it) out.figures[it.key()] = it.value();
  return out;
}

}  // namespace latmix
