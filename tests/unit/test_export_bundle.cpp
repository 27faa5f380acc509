// The export bundle (engine/bundle, Qt builds only): a zip that Python's zipfile reads as stored
// entries, verification against the manifest, tampering, refusals, cancel.
#include <gtest/gtest.h>

#ifdef LATMIX_WITH_BUNDLE

#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>

#include "bundle.h"
#include "latmix/error.h"
#include "latmix/files.h"
#include "latmix/sha256.h"
#include "test_paths.h"

namespace fs = std::filesystem;

namespace {

// A folder that looks like an export: a manifest listing two files with their digests.
std::string make_export_folder(const std::string& dir) {
  fs::create_directories(dir);
  std::ofstream(dir + "/a.txt") << "alpha\n";
  std::string big(3 << 20, '\0');
  for (size_t i = 0; i < big.size(); ++i) big[i] = static_cast<char>((i * 2654435761u) >> 24);
  std::ofstream(dir + "/model.safetensors", std::ios::binary)
      .write(big.data(), static_cast<std::streamsize>(big.size()));
  nlohmann::json m = {
      {"format", "latmix-export"}, {"version", 1}, {"kind", "folded-bf16"}, {"files", nlohmann::json::array()}};
  for (const char* f : {"a.txt", "model.safetensors"}) {
    const std::string p = dir + "/" + f;
    m["files"].push_back({{"name", f}, {"bytes", fs::file_size(p)}, {"sha256", latmix::sha256_file(p)}});
  }
  latmix::write_file_atomic(dir + "/manifest.json", m.dump(2));
  return dir;
}

}  // namespace

TEST(ExportBundle, ZipRoundTripAndVerification) {
  const std::string root = latmix::test::temp_dir("bundle");
  const std::string folder = make_export_folder(root + "/export");
  const std::string zip = root + "/export.zip";
  latmix::write_bundle(folder, zip, false);
  const latmix::ExportVerification v = latmix::verify_bundle(zip);
  EXPECT_TRUE(v.ok()) << v.describe();
  EXPECT_EQ(v.figures["entries"], 3);
  EXPECT_EQ(latmix::read_bundle_manifest(zip)["kind"], "folded-bf16");
  // An independent reader: Python's zipfile sees stored (method 0) entries, manifest first.
  if (std::system((latmix::test::python() + " -c 'import zipfile' > /dev/null 2>&1").c_str()) == 0) {
    const std::string cmd =
        latmix::test::python() + " -c \"import zipfile,sys; z=zipfile.ZipFile(sys.argv[1]); i=z.infolist(); "
        "assert [x.compress_type for x in i]==[0,0,0]; assert i[0].filename=='manifest.json'; "
        "assert z.testzip() is None; assert z.read('a.txt')==b'alpha\\n'\" " +
        zip;
    EXPECT_EQ(std::system(cmd.c_str()), 0) << cmd;
  }
  // Refusals: an existing zip without overwrite, a folder without manifest.
  EXPECT_THROW(latmix::write_bundle(folder, zip, false), latmix::Error);
  latmix::write_bundle(folder, zip, true);
  fs::create_directories(root + "/plain");
  EXPECT_THROW(latmix::write_bundle(root + "/plain", root + "/plain.zip", false), latmix::Error);
  EXPECT_FALSE(fs::exists(root + "/plain.zip"));
  // Cancel midway leaves neither the zip nor a temp file.
  latmix::JobControl job;
  job.progress = [&job](std::string_view, int64_t done, int64_t) {
    if (done > 0) job.cancel.cancel();
  };
  EXPECT_THROW(latmix::write_bundle(folder, root + "/c.zip", false, job), latmix::Cancelled);
  for (const auto& e : fs::directory_iterator(root))
    EXPECT_EQ(e.path().filename().string().find(".c.zip.tmp"), std::string::npos);
  EXPECT_FALSE(fs::exists(root + "/c.zip"));
}

TEST(ExportBundle, TamperedEntryFails) {
  const std::string root = latmix::test::temp_dir("bundle-tamper");
  const std::string folder = make_export_folder(root + "/export");
  std::ofstream(folder + "/a.txt") << "beta\n";  // changed after the manifest was written
  const std::string zip = root + "/t.zip";
  latmix::write_bundle(folder, zip, false);
  const latmix::ExportVerification v = latmix::verify_bundle(zip);
  EXPECT_FALSE(v.ok());
  EXPECT_NE(v.describe().find("FAIL  file a.txt:"), std::string::npos) << v.describe();
  std::ofstream(root + "/junk.zip") << "not a zip";
  EXPECT_THROW(latmix::verify_bundle(root + "/junk.zip"), latmix::Error);
}

#else

TEST(ExportBundle, NotBuilt) {
  GTEST_SKIP() << "the bundle library needs Qt 6 Core and QuaZip";
}

#endif
