// PNG writer through libpng's simplified API (png_image_write_to_memory: no setjmp in our code).
#include "latmix/png.h"

#include <png.h>

#include <algorithm>
#include <cstring>
#include <string>

#include "latmix/error.h"
#include "latmix/files.h"

namespace latmix {

std::vector<uint8_t> encode_png(const Image& image) {
  const auto& px = image.pixels();
  const bool opaque = std::all_of(px.begin(), px.end(), [](const Rgba& p) { return p.a == 255; });
  const size_t channels = opaque ? 3 : 4;
  std::vector<uint8_t> samples;
  samples.reserve(px.size() * channels);
  for (const Rgba& p : px) {
    samples.insert(samples.end(), {p.r, p.g, p.b});
    if (!opaque) samples.push_back(p.a);
  }

  png_image png;
  std::memset(&png, 0, sizeof png);
  png.version = PNG_IMAGE_VERSION;
  png.width = static_cast<png_uint_32>(image.width());
  png.height = static_cast<png_uint_32>(image.height());
  png.format = opaque ? PNG_FORMAT_RGB : PNG_FORMAT_RGBA;  // 8-bit sRGB, alpha not premultiplied
  const png_int_32 stride = static_cast<png_int_32>(image.width() * channels);
  auto failed = [&](const char* stage) {
    const std::string message = png.message;
    png_image_free(&png);
    fail("", std::string("PNG encoding (libpng, ") + stage + "): " + message);
  };
  png_alloc_size_t size = 0;
  if (png_image_write_to_memory(&png, nullptr, &size, 0, samples.data(), stride, nullptr) == 0) failed("size");
  std::vector<uint8_t> out(size);
  if (png_image_write_to_memory(&png, out.data(), &size, 0, samples.data(), stride, nullptr) == 0) failed("write");
  out.resize(size);
  return out;
}

void write_png(const std::string& path, const Image& image) {
  const std::vector<uint8_t> bytes = encode_png(image);
  AtomicFile f(path);
  f.write(bytes.data(), bytes.size());
  f.commit();
}

}  // namespace latmix
