// SHA-256 against the FIPS 180-4 example vectors (NIST CSRC "Examples with Intermediate Values")
// and against Python's hashlib on pseudo-random messages of every length that matters to the
// padding (55/56/57 and 63/64/65 bytes straddle the one- and two-block cases).
#include <gtest/gtest.h>

#include <cstdio>
#include <fstream>
#include <string>
#include <utility>
#include <vector>

#include "latmix/error.h"
#include "latmix/sha256.h"
#include "test_paths.h"

namespace {

// x <- x * 6364136223846793005 + 1442695040888963407 (mod 2^64), byte = x >> 56, x0 = 12345.
// The digests below were computed by this generator in Python 3 and hashlib.sha256:
//   def lcg(n, seed=12345): ... out.append(x >> 56)
std::string lcg_bytes(size_t n) {
  std::string out;
  out.reserve(n);
  uint64_t x = 12345;
  for (size_t i = 0; i < n; ++i) {
    x = x * 6364136223846793005ULL + 1442695040888963407ULL;
    out.push_back(static_cast<char>(x >> 56));
  }
  return out;
}

struct Vector {
  size_t length;
  const char* digest;
};

const Vector kHashlib[] = {
    {0, "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"},
    {1, "bd4fc42a21f1f860a1030e6eba23d53ecab71bd19297ab6c074381d4ecee0018"},
    {3, "66bcf55b41b899723f034ee1cf76e69a92c4ae06d881752c1737a50fc99d8a0d"},
    {55, "a01edfa0bf400e776ba08930d30af9f7aac0b7382c6da48f5cc4626ede45a699"},
    {56, "0e637ef63b73a7b2c8ace03a8be84a8284688939e798b61df0c79d72540a3af9"},
    {57, "ae9bcb424d8f34c71c16fce3b38f85bb5d66e1b64dc70b4ad65a6d4ac6854418"},
    {63, "ead4afc9d950011ed0d90dfd6557a9a7347514ecc3afce108cc256ed077c6946"},
    {64, "ec179a2872cb7fb980f69cf2930fa41f820d3824e8247b1e81ad948ae27b79d5"},
    {65, "e9397f2e16400a6a1134476421794d8baa523855075bb0c78d10b6fa9a342374"},
    {119, "538982d5977efec6efe989cc09d102e0dbec88ca819f4bcf82750014583af5cd"},
    {120, "5e789c44b51c01e09efbc2599c0f4612455a339a431a6e8ff71429abafb16739"},
    {127, "be267fef04a32f3b9f2a8982a15037e424bc96e692abd20836cc26fd482ec8e1"},
    {128, "429f8b53c747b1d8b636a0ba6199f848a7139a12a125efbda11da66ad846327e"},
    {1000, "7c07818b13ef29631cb8afe7e4bda3bd82890b473588ad1f518de1ed8a000d18"},
    {65537, "ecdf9be62d550fe55fc60dd74da5e325fb0eb374c506c4882e85c3024e151aa9"},
    {1048582, "77fd7b5b80b1738eec531f6d4f56ce5c0209fa647fab0ea9287856d966671dd6"},
};

}  // namespace

TEST(Sha256, Fips180Examples) {
  using latmix::sha256_hex;
  EXPECT_EQ(sha256_hex(""), "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855");
  EXPECT_EQ(sha256_hex("abc"), "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad");
  EXPECT_EQ(sha256_hex("abcdbcdecdefdefgefghfghighijhijkijkljklmklmnlmnomnopnopq"),
            "248d6a61d20638b8e5c026930c3e6039a33ce45964ff2167f6ecedd419db06c1");
  EXPECT_EQ(sha256_hex("abcdefghbcdefghicdefghijdefghijkefghijklfghijklmghijklmnhijklmnoijklmnopjklmnopqklmnopqrlmnopq"
                       "rsmnopqrstnopqrstu"),
            "cf5b16a778af8380036ce59e7b0492370b249b11e8f07a51afac45037afee9d1");
  EXPECT_EQ(sha256_hex(std::string(1000000, 'a')), "cdc76e5c9914fb9281a1c7e284d73e67f1809a48a497200e046d39ccc7112cd0");
}

TEST(Sha256, MatchesPythonHashlib) {
  for (const Vector& v : kHashlib) EXPECT_EQ(latmix::sha256_hex(lcg_bytes(v.length)), v.digest) << v.length;
}

// Fed whole and in splits that leave partial blocks in OpenSSL's buffer; a moved object goes on.
TEST(Sha256, SplitsAndMovesMatchHashlib) {
  for (const Vector& v : kHashlib) {
    const std::string msg = lcg_bytes(v.length);
    latmix::Sha256 split;
    for (size_t i = 0; i < msg.size(); i += 200) split.update(msg.substr(i, 200));
    EXPECT_EQ(split.hex(), v.digest) << v.length << ", split";
    latmix::Sha256 first;
    first.update(msg.substr(0, msg.size() / 2));
    latmix::Sha256 moved(std::move(first));
    moved.update(msg.substr(msg.size() / 2));
    EXPECT_EQ(moved.hex(), v.digest) << v.length << ", moved";
  }
}

TEST(Sha256, AnySplitGivesTheSameDigest) {
  const std::string msg = lcg_bytes(1000);
  for (size_t step : {1, 7, 63, 64, 65, 333}) {
    latmix::Sha256 h;
    for (size_t i = 0; i < msg.size(); i += step) h.update(msg.substr(i, step));
    EXPECT_EQ(h.hex(), "7c07818b13ef29631cb8afe7e4bda3bd82890b473588ad1f518de1ed8a000d18") << step;
  }
  // digest() resets: the object then hashes a new message from scratch.
  latmix::Sha256 h;
  h.update("abc");
  h.hex();
  h.update("abc");
  EXPECT_EQ(h.hex(), "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad");
}

TEST(Sha256, FilesInChunksAndErrors) {
  const std::string dir = latmix::test::temp_dir("sha256");
  const std::string path = dir + "/msg.bin";
  {
    std::ofstream out(path, std::ios::binary);
    const std::string msg = lcg_bytes(1048582);  // more than one 1 MiB read
    out.write(msg.data(), static_cast<std::streamsize>(msg.size()));
  }
  int64_t last_done = 0, last_total = 0;
  latmix::JobControl job;
  job.progress = [&](std::string_view stage, int64_t done, int64_t total) {
    EXPECT_EQ(stage, "hash");
    last_done = done;
    last_total = total;
  };
  EXPECT_EQ(latmix::sha256_file(path, job), "77fd7b5b80b1738eec531f6d4f56ce5c0209fa647fab0ea9287856d966671dd6");
  EXPECT_EQ(last_done, 1048582);
  EXPECT_EQ(last_total, 1048582);
  try {
    latmix::sha256_file(dir + "/missing.bin");
    FAIL() << "no error";
  } catch (const latmix::Error& e) {
    EXPECT_NE(std::string(e.what()).find("missing.bin: cannot open file"), std::string::npos) << e.what();
  }
  latmix::JobControl cancelled;
  cancelled.cancel.cancel();
  EXPECT_THROW(latmix::sha256_file(path, cancelled), latmix::Cancelled);
}
