// PNG writer (libpng): files decoded by an independent decoder (python3's zlib +
// tests/support/png_decode.py) and by file(1), drawing primitives.
#include <gtest/gtest.h>

#include <cstdio>
#include <cstdlib>
#include <fstream>
#include <random>
#include <sstream>
#include <string>
#include <vector>

#include "latmix/error.h"
#include "latmix/png.h"
#include "test_paths.h"

using latmix::Image;
using latmix::Rgba;

namespace {

std::vector<uint8_t> bytes_of(const std::string& s) {
  return std::vector<uint8_t>(s.begin(), s.end());
}

std::vector<uint8_t> read_bytes(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  std::ostringstream ss;
  ss << in.rdbuf();
  return bytes_of(ss.str());
}

bool have_python() {
  return std::system((latmix::test::python() + " -c 'import zlib' >/dev/null 2>&1").c_str()) == 0;
}

// Runs the independent decoder on `args` (quoted IN OUT pairs); returns its stdout, or
// "FAILED ..." with the exit status and output.
std::string run_decoder(const std::string& mode, const std::string& args) {
  const std::string cmd =
      latmix::test::python() + " '" + latmix::test::source_path("tests/support/png_decode.py") + "' " + mode + args + " 2>&1";
  FILE* pipe = ::popen(cmd.c_str(), "r");
  if (pipe == nullptr) return "FAILED to start python3";
  std::string text;
  char buf[256];
  while (std::fgets(buf, sizeof(buf), pipe) != nullptr) text += buf;
  const int status = ::pclose(pipe);
  if (status != 0) return "FAILED (" + std::to_string(status) + "): " + text;
  return text;
}

std::string pair_args(const std::string& in, const std::string& out) {
  return " '" + in + "' '" + out + "'";
}

// A pattern for the row filters: gradients and noise.
Image test_pattern(int w, int h, bool with_alpha) {
  Image img(w, h);
  std::mt19937 rng(7);
  for (int y = 0; y < h; ++y) {
    for (int x = 0; x < w; ++x) {
      Rgba p{static_cast<uint8_t>(x * 7), static_cast<uint8_t>(y * 11), static_cast<uint8_t>((x * y) & 0xFF), 255};
      if (y % 5 == 3)
        p = Rgba{static_cast<uint8_t>(rng()), static_cast<uint8_t>(rng()), static_cast<uint8_t>(rng()), 255};
      if (with_alpha) p.a = static_cast<uint8_t>((x + 3 * y) * 5);
      img.at(x, y) = p;
    }
  }
  return img;
}

// Decodes `img`'s PNG with python and expects exactly its pixels back.
void expect_png_round_trip(const Image& img, const std::string& dir, const std::string& tag, int colour_type,
                           int* idat_chunks = nullptr) {
  const std::string png = dir + "/" + tag + ".png", raw = dir + "/" + tag + ".rgba";
  latmix::write_png(png, img);
  const std::string out = run_decoder("png", pair_args(png, raw));
  ASSERT_EQ(out.find("FAILED"), std::string::npos) << out;
  std::istringstream fields(out);
  int w = 0, h = 0, ct = 0, idat = 0;
  fields >> w >> h >> ct >> idat;
  if (idat_chunks != nullptr) *idat_chunks = idat;
  EXPECT_EQ(w, img.width());
  EXPECT_EQ(h, img.height());
  EXPECT_EQ(ct, colour_type);
  const auto rgba = read_bytes(raw);
  ASSERT_EQ(rgba.size(), static_cast<size_t>(img.width()) * img.height() * 4);
  size_t mismatches = 0;
  for (int y = 0; y < img.height(); ++y) {
    for (int x = 0; x < img.width(); ++x) {
      const size_t i = (static_cast<size_t>(y) * img.width() + x) * 4;
      const Rgba& p = img.at(x, y);
      if (rgba[i] != p.r || rgba[i + 1] != p.g || rgba[i + 2] != p.b || rgba[i + 3] != p.a) ++mismatches;
    }
  }
  EXPECT_EQ(mismatches, 0U) << tag;
}

}  // namespace

TEST(Png, PythonDecodesPixelsExactly) {
  if (!have_python()) GTEST_SKIP() << "python3 with zlib not found (scripts/setup.sh installs it)";
  const std::string dir = latmix::test::temp_dir("png");
  expect_png_round_trip(test_pattern(37, 23, false), dir, "rgb", 2);
  expect_png_round_trip(test_pattern(37, 23, true), dir, "rgba", 6);
  expect_png_round_trip(Image(1, 1, Rgba{10, 20, 30, 255}), dir, "one", 2);
  // Noise does not compress: enough of it needs several IDAT chunks.
  Image noise(300, 300);
  std::mt19937 rng(5);
  for (int y = 0; y < noise.height(); ++y) {
    for (int x = 0; x < noise.width(); ++x) {
      noise.at(x, y) = Rgba{static_cast<uint8_t>(rng()), static_cast<uint8_t>(rng()), static_cast<uint8_t>(rng()), 255};
    }
  }
  int idat = 0;
  expect_png_round_trip(noise, dir, "big", 2, &idat);
  EXPECT_GT(idat, 1);
}

TEST(Png, StructureAndFileCommand) {
  const Image img = test_pattern(5, 3, false);
  const auto png = latmix::encode_png(img);
  const std::vector<uint8_t> sig = {0x89, 'P', 'N', 'G', '\r', '\n', 0x1A, '\n'};
  ASSERT_GT(png.size(), 8U + 25U + 12U);
  EXPECT_TRUE(std::equal(sig.begin(), sig.end(), png.begin()));
  EXPECT_EQ(std::string(png.begin() + 12, png.begin() + 16), "IHDR");
  EXPECT_EQ(png[19], 5);  // width, big-endian
  EXPECT_EQ(png[23], 3);  // height
  EXPECT_EQ(png[24], 8);  // bit depth
  EXPECT_EQ(png[25], 2);  // colour type RGB: every pixel is opaque
  EXPECT_EQ(std::string(png.end() - 8, png.end() - 4), "IEND");

  const std::string dir = latmix::test::temp_dir("pngfile");
  const std::string path = dir + "/pattern.png";
  latmix::write_png(path, img);
  EXPECT_EQ(read_bytes(path), png);
  if (std::system("command -v file >/dev/null 2>&1") == 0) {
    FILE* pipe = ::popen(("file -b '" + path + "'").c_str(), "r");
    ASSERT_NE(pipe, nullptr);
    char buf[256] = {};
    const bool got = std::fgets(buf, sizeof(buf), pipe) != nullptr;
    ::pclose(pipe);
    ASSERT_TRUE(got);
    EXPECT_NE(std::string(buf).find("PNG image data, 5 x 3, 8-bit/color RGB"), std::string::npos) << buf;
  }
  EXPECT_THROW(latmix::write_png(dir + "/no/such/dir/x.png", img), latmix::Error);
}

TEST(Image, RejectsBadSizesAndOutOfRangeAccess) {
  EXPECT_THROW(Image(0, 10), latmix::UsageError);
  EXPECT_THROW(Image(10, -1), latmix::UsageError);
  EXPECT_THROW(Image(Image::kMaxSide + 1, 1), latmix::UsageError);
  Image img(4, 4);
  EXPECT_THROW(img.at(4, 0), std::out_of_range);
  EXPECT_THROW(img.at(0, -1), std::out_of_range);
}

TEST(Image, CrispLinesRectsAndClipping) {
  Image img(20, 10, Rgba{255, 255, 255, 255});
  const Rgba red{200, 0, 0, 255};
  img.draw_line({2, 4.5}, {17, 4.5}, red, 1.0);  // through pixel centres: one full row
  for (int x = 3; x <= 16; ++x) {
    EXPECT_EQ(img.at(x, 4), red) << x;
    EXPECT_EQ(img.at(x, 3), (Rgba{255, 255, 255, 255})) << x;
    EXPECT_EQ(img.at(x, 5), (Rgba{255, 255, 255, 255})) << x;
  }
  img.set_clip(0, 0, 10, 10);
  img.fill_rect(5, 6, 15, 8, red);
  img.reset_clip();
  EXPECT_EQ(img.at(9, 7), red);
  EXPECT_EQ(img.at(10, 7), (Rgba{255, 255, 255, 255}));  // clipped
  // Half coverage on white: the channel is halfway between.
  Image half(4, 4, Rgba{255, 255, 255, 255});
  half.blend(1, 1, Rgba{0, 0, 0, 255}, 0.5);
  EXPECT_NEAR(half.at(1, 1).r, 128, 1);
  // Shapes with non-finite coordinates are ignored, far-away ones are clipped without trouble.
  half.draw_line({0, 0}, {NAN, 3}, red, 2);
  half.fill_circle({1e300, -1e300}, 5, red);
  half.draw_line({-1e9, 2.5}, {1e9, 2.5}, red, 1);
  EXPECT_EQ(half.at(0, 2), red);
  EXPECT_EQ(half.at(3, 0), (Rgba{255, 255, 255, 255}));
}

TEST(Image, DashedLineHasGapsAndTextHasInk) {
  Image img(60, 20, Rgba{255, 255, 255, 255});
  const Rgba blue{0, 0, 200, 255};
  img.draw_dashed_line({0, 10.5}, {60, 10.5}, blue, 1.0, 6, 4);
  int on = 0;
  for (int x = 0; x < 60; ++x) on += img.at(x, 10) == blue;
  EXPECT_GT(on, 25);  // 6 of every 10 px, less the anti-aliased ends
  EXPECT_LT(on, 45);
  EXPECT_EQ(latmix::text_width("abc"), 17);
  EXPECT_EQ(latmix::text_width("abc", 2), 34);
  Image t(40, 12, Rgba{255, 255, 255, 255});
  t.draw_text(1, 1, "H", Rgba{0, 0, 0, 255});
  // 'H': two full columns of 7 rows plus the bar.
  EXPECT_EQ(t.at(1, 1), (Rgba{0, 0, 0, 255}));
  EXPECT_EQ(t.at(1, 7), (Rgba{0, 0, 0, 255}));
  EXPECT_EQ(t.at(3, 4), (Rgba{0, 0, 0, 255}));
  EXPECT_EQ(t.at(3, 1), (Rgba{255, 255, 255, 255}));
}
