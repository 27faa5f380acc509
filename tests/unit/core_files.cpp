// latmix::AtomicFile, write_file_atomic and AtomicFolder (files.h): a file or folder appears complete or not at all, the
// temp file never outlives a failure, the old target survives every failure, permissions follow
// 0644 less the umask.
#include <gtest/gtest.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <csignal>
#include <filesystem>
#include <fstream>
#include <sstream>
#include <string>
#include <vector>

#include "latmix/error.h"
#include "latmix/files.h"
#include "test_paths.h"

namespace fs = std::filesystem;

namespace {

std::string read(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  std::ostringstream s;
  s << in.rdbuf();
  return s.str();
}

// The names in `dir`, sorted.
std::vector<std::string> entries(const std::string& dir) {
  std::vector<std::string> out;
  for (const auto& e : fs::directory_iterator(dir)) out.push_back(e.path().filename().string());
  std::sort(out.begin(), out.end());
  return out;
}

mode_t mode_of(const std::string& path) {
  struct stat st {};
  EXPECT_EQ(::stat(path.c_str(), &st), 0) << path;
  return st.st_mode & 07777;
}

// Sets RLIMIT_FSIZE for the scope (writes past it fail with EFBIG; SIGXFSZ ignored).
class FileSizeLimit {
 public:
  explicit FileSizeLimit(rlim_t bytes) {
    ::getrlimit(RLIMIT_FSIZE, &old_);
    old_handler_ = std::signal(SIGXFSZ, SIG_IGN);
    rlimit lim = old_;
    lim.rlim_cur = bytes;
    ::setrlimit(RLIMIT_FSIZE, &lim);
  }
  ~FileSizeLimit() {
    ::setrlimit(RLIMIT_FSIZE, &old_);
    std::signal(SIGXFSZ, old_handler_);
  }

 private:
  rlimit old_{};
  void (*old_handler_)(int) = nullptr;
};

}  // namespace

TEST(AtomicFile, WritesTheWholeFileAndLeavesNoTemp) {
  const std::string dir = latmix::test::temp_dir("atomic_ok");
  const std::string path = dir + "/out.json";
  latmix::write_file_atomic(path, "first");
  EXPECT_EQ(read(path), "first");
  latmix::write_file_atomic(path, std::string(3 << 20, 'x'));  // replaces, several MiB
  EXPECT_EQ(read(path), std::string(3 << 20, 'x'));
  EXPECT_EQ(entries(dir), std::vector<std::string>{"out.json"});
  const mode_t mask = ::umask(0);
  ::umask(mask);
  EXPECT_EQ(mode_of(path), 0644 & ~mask);
}

TEST(AtomicFile, PermissionsFollowTheUmask) {
  const std::string dir = latmix::test::temp_dir("atomic_umask");
  const mode_t old = ::umask(077);
  latmix::write_file_atomic(dir + "/private.txt", "secret");
  ::umask(old);
  EXPECT_EQ(mode_of(dir + "/private.txt"), 0600U);  // never wider than the umask allows
}

TEST(AtomicFile, NotCommittedLeavesTheOldFileAndNoTemp) {
  const std::string dir = latmix::test::temp_dir("atomic_abandon");
  const std::string path = dir + "/data.bin";
  latmix::write_file_atomic(path, "old");
  {
    latmix::AtomicFile f(path);
    f.write("new contents, never committed");
    EXPECT_TRUE(fs::exists(f.temp_path()));
    EXPECT_EQ(fs::path(f.temp_path()).parent_path(), fs::path(dir));
    EXPECT_EQ(read(path), "old");  // not visible before commit()
  }
  EXPECT_EQ(read(path), "old");
  EXPECT_EQ(entries(dir), std::vector<std::string>{"data.bin"});
}

TEST(AtomicFile, AFailedWriteLeavesTheOldFileAndNoTemp) {
  const std::string dir = latmix::test::temp_dir("atomic_efbig");
  const std::string path = dir + "/big.bin";
  latmix::write_file_atomic(path, "old");
  std::string message;
  {
    FileSizeLimit limit(64 * 1024);
    message = latmix::test::message_of([&] { latmix::write_file_atomic(path, std::string(1 << 20, 'y')); });
  }
  EXPECT_NE(message.find(path), std::string::npos) << message;
  EXPECT_NE(message.find("write failed"), std::string::npos) << message;
  EXPECT_NE(message.find("File too large"), std::string::npos) << message;
  EXPECT_EQ(read(path), "old");
  EXPECT_EQ(entries(dir), std::vector<std::string>{"big.bin"});
}

TEST(AtomicFile, AFailedRenameRemovesTheTemp) {
  const std::string dir = latmix::test::temp_dir("atomic_rename");
  const std::string target = dir + "/occupied";
  fs::create_directories(target + "/child");  // rename(2) cannot put a file over a non-empty folder
  const std::string message = latmix::test::message_of([&] { latmix::write_file_atomic(target, "x"); });
  EXPECT_NE(message.find("cannot rename the temp file onto the target"), std::string::npos) << message;
  EXPECT_TRUE(fs::is_directory(target + "/child"));
  EXPECT_EQ(entries(dir), std::vector<std::string>{"occupied"});
}

TEST(AtomicFile, RefuseKeepsAnExistingTarget) {
  const std::string dir = latmix::test::temp_dir("atomic_refuse");
  const std::string path = dir + "/bundle.zip";
  std::string temp;
  {
    latmix::AtomicFile f(path);
    temp = f.temp_path();
    f.write("new");
    latmix::write_file_atomic(path, "appeared meanwhile");
    const std::string message =
        latmix::test::message_of([&] { f.commit(latmix::AtomicFile::Existing::kRefuse); });
    EXPECT_NE(message.find("refusing to replace it"), std::string::npos) << message;
    EXPECT_EQ(read(path), "appeared meanwhile");
  }
  EXPECT_FALSE(fs::exists(temp));
  EXPECT_EQ(entries(dir), std::vector<std::string>{"bundle.zip"});
}

TEST(AtomicFile, ByNameWritersAndSeveralFilesCommittedTogether) {
  const std::string dir = latmix::test::temp_dir("atomic_byname");
  latmix::AtomicFile a(dir + "/a.txt"), b(dir + "/b.txt");
  {  // a library that opens the file by name (QuaZip does), while the descriptor stays open
    std::ofstream out(a.temp_path(), std::ios::binary | std::ios::trunc);
    out << "by name";
  }
  b.write("by fd");
  a.finish();
  b.finish();
  EXPECT_EQ(a.fd(), -1);
  EXPECT_FALSE(fs::exists(dir + "/a.txt"));
  a.commit();
  b.commit(latmix::AtomicFile::Existing::kRefuse);
  EXPECT_EQ(read(dir + "/a.txt"), "by name");
  EXPECT_EQ(read(dir + "/b.txt"), "by fd");
  EXPECT_EQ(entries(dir), (std::vector<std::string>{"a.txt", "b.txt"}));
}

TEST(AtomicFile, AMissingFolderIsAnErrorNamingTheTarget) {
  const std::string dir = latmix::test::temp_dir("atomic_missing");
  const std::string path = dir + "/no/such/folder/x.txt";
  const std::string message = latmix::test::message_of([&] { latmix::write_file_atomic(path, "x"); });
  EXPECT_NE(message.find(path), std::string::npos) << message;
  EXPECT_NE(message.find("cannot create a temp file beside the target"), std::string::npos) << message;
  EXPECT_THROW(latmix::fsync_folder(dir + "/no/such/folder"), latmix::Error);
  EXPECT_NO_THROW(latmix::fsync_folder(dir));
}

namespace {

void put(const std::string& path, const std::string& text) {
  std::ofstream(path, std::ios::binary) << text;
}

}  // namespace

// AtomicFolder: the folder appears complete or not at all; an existing target is replaced only
// with the caller's consent and in one step; what was not committed, and the temp folders of dead
// processes, are removed.
TEST(AtomicFolder, AppearsCompleteAndLeavesNoTemp) {
  const std::string dir = latmix::test::temp_dir("atomic-folder-new");
  const std::string target = dir + "/out";
  {
    latmix::AtomicFolder f(target, "export");
    EXPECT_EQ(f.path().rfind(dir + "/.out.latmix-tmp-" + std::to_string(::getpid()) + "-", 0), 0u) << f.path();
    put(f.path() + "/a.txt", "a");
    EXPECT_FALSE(fs::exists(target));  // nothing under the name before commit
    f.commit();
  }
  EXPECT_EQ(read(target + "/a.txt"), "a");
  EXPECT_EQ(entries(dir), std::vector<std::string>{"out"});
  {
    latmix::AtomicFolder dropped(dir + "/other");
    put(dropped.path() + "/b.txt", "b");
  }  // not committed: removed with its file
  EXPECT_EQ(entries(dir), std::vector<std::string>{"out"});
}

TEST(AtomicFolder, AnExistingTargetIsReplacedOnlyWithConsent) {
  const std::string dir = latmix::test::temp_dir("atomic-folder-replace");
  const std::string target = dir + "/out";
  fs::create_directory(target);
  put(target + "/old.txt", "old");
  {
    latmix::AtomicFolder f(target);
    put(f.path() + "/new.txt", "new");
    try {
      f.commit();  // no check: refused
      ADD_FAILURE() << "an existing target was replaced without consent";
    } catch (const latmix::Error& e) {
      EXPECT_NE(std::string(e.what()).find("refusing to replace it"), std::string::npos) << e.what();
    }
  }
  EXPECT_EQ(entries(target), std::vector<std::string>{"old.txt"});
  EXPECT_EQ(entries(dir), std::vector<std::string>{"out"});
  {
    latmix::AtomicFolder f(target);
    put(f.path() + "/new.txt", "new");
    EXPECT_THROW(f.commit([](const std::string& t) { latmix::fail(t, "not this one"); }), latmix::Error);
  }
  EXPECT_EQ(entries(target), std::vector<std::string>{"old.txt"});
  std::string asked;
  {
    latmix::AtomicFolder f(target);
    put(f.path() + "/new.txt", "new");
    f.commit([&asked](const std::string& t) { asked = t; });
  }
  EXPECT_EQ(asked, target);
  EXPECT_EQ(entries(target), std::vector<std::string>{"new.txt"});
  EXPECT_EQ(entries(dir), std::vector<std::string>{"out"});  // the earlier folder is gone
}

TEST(AtomicFolder, TempFoldersOfDeadProcessesAreRemovedOthersKept) {
  const std::string dir = latmix::test::temp_dir("atomic-folder-stale");
  const std::string dead = dir + "/.out.latmix-tmp-4194305-abcdef";  // above the kernel's pid_max
  const std::string live = dir + "/.out.latmix-tmp-" + std::to_string(::getpid()) + "-ghijkl";
  const std::string foreign = dir + "/.out.latmix-tmp-notapid";
  for (const std::string& d : {dead, live, foreign}) fs::create_directory(d);
  { latmix::AtomicFolder f(dir + "/out"); }
  EXPECT_FALSE(fs::exists(dead));
  EXPECT_TRUE(fs::exists(live));
  EXPECT_TRUE(fs::exists(foreign));
  try {
    latmix::AtomicFolder f("/proc/latmix-atomic-folder-test", "checkpoint");
    ADD_FAILURE() << "a temp folder was made in /proc";
  } catch (const latmix::Error& e) {
    EXPECT_NE(std::string(e.what()).find("cannot create the checkpoint's temp folder"), std::string::npos) << e.what();
  }
}
