#pragma once
/// \file png.h
/// Room: engine/report/ (latmix_core, no LibTorch).
/// A small RGBA raster (Image) with anti-aliased drawing and a built-in bitmap font, and a PNG
/// writer (libpng). Qt-free and LibTorch-free (latmix_core); plot.h draws the comparison report's
/// charts with it.
///
/// Coordinates: pixel (x, y) covers the square [x, x+1) x [y, y+1), y grows downwards, so the
/// centre of pixel (x, y) is (x + 0.5, y + 0.5). A 1-px line through y = 10.5 covers row 10 alone
/// (crisp); through y = 10 it covers rows 9 and 10 half each. Drawing is clipped to the image and
/// to the clip rectangle (set_clip); at() is not clipped.
///
/// PNG output (ISO/IEC 15948) through libpng's simplified write API: 8 bits per channel, colour
/// type 2 (RGB) when every pixel is opaque, else 6 (RGBA, straight alpha); no interlace; an sRGB
/// chunk; libpng's adaptive row filters and zlib's default compression.

#include <cstddef>
#include <cstdint>
#include <string>
#include <vector>

namespace latmix {

/// One straight (not premultiplied) sRGB colour with alpha; a = 255 is opaque.
struct Rgba {
  uint8_t r = 0, g = 0, b = 0, a = 255;
};

inline bool operator==(const Rgba& p, const Rgba& q) {
  return p.r == q.r && p.g == q.g && p.b == q.b && p.a == q.a;
}
inline bool operator!=(const Rgba& p, const Rgba& q) {
  return !(p == q);
}

/// A point in pixel coordinates (see the file comment).
struct PointF {
  double x = 0, y = 0;
};

/// Marker shapes for scatter points and legend swatches.
enum class Marker { kCircle, kSquare, kDiamond };

/// The built-in font: ASCII 32..126 drawn as 5x9 bitmaps (7 rows above the baseline, 2 below) in
/// 6-px cells. Other bytes are drawn as '?'. `scale` multiplies every pixel (2 for titles).
struct FontMetrics {
  static constexpr int kCellWidth = 6;    ///< advance per character at scale 1
  static constexpr int kGlyphHeight = 9;  ///< ascent 7 + descent 2 at scale 1
  static constexpr int kAscent = 7;
};

/// Width in pixels of `text` in the built-in font (the trailing 1-px cell gap not counted).
int text_width(const std::string& text, int scale = 1);
/// Height in pixels of one line of text in the built-in font.
inline int text_height(int scale = 1) {
  return FontMetrics::kGlyphHeight * scale;
}

/// An RGBA raster. Sizes are 1..16384 per side (UsageError otherwise).
class Image {
 public:
  static constexpr int kMaxSide = 16384;

  Image(int width, int height, Rgba fill = Rgba{255, 255, 255, 255});

  int width() const { return width_; }
  int height() const { return height_; }
  /// The pixel at (x, y); throws std::out_of_range outside the image.
  Rgba& at(int x, int y);
  const Rgba& at(int x, int y) const;
  /// All pixels, row-major, top row first.
  const std::vector<Rgba>& pixels() const { return pixels_; }

  /// Restricts drawing to [x0, x1) x [y0, y1) (intersected with the image); reset_clip() undoes it.
  void set_clip(int x0, int y0, int x1, int y1);
  void reset_clip();

  /// Composites `color` over pixel (x, y) with its alpha times `coverage` (0..1); clipped.
  void blend(int x, int y, Rgba color, double coverage = 1.0);
  /// Fills [x0, x1) x [y0, y1) (no anti-aliasing).
  void fill_rect(int x0, int y0, int x1, int y1, Rgba color);
  /// A 1-px outline just inside [x0, x1) x [y0, y1).
  void draw_rect(int x0, int y0, int x1, int y1, Rgba color);

  /// Shapes with a non-finite coordinate are not drawn.
  /// Anti-aliased line of the given width with round caps.
  void draw_line(PointF a, PointF b, Rgba color, double width = 1.0);
  /// Dashed line: `dash` px drawn, `gap` px skipped, repeating from `a`.
  void draw_dashed_line(PointF a, PointF b, Rgba color, double width, double dash, double gap);
  /// Anti-aliased polyline with round joins, composited once (joins are not darker than the
  /// segments). dash > 0 draws it dashed, the pattern running on across vertices.
  void draw_polyline(const std::vector<PointF>& points, Rgba color, double width, double dash = 0, double gap = 0);
  /// Anti-aliased filled disc.
  void fill_circle(PointF centre, double radius, Rgba color);
  /// Anti-aliased filled marker whose bounding box is about `size` px across.
  void draw_marker(PointF centre, Marker shape, double size, Rgba color);

  /// Draws `text` with its top-left corner at (x, y).
  void draw_text(int x, int y, const std::string& text, Rgba color, int scale = 1);
  /// Draws `text` rotated 90 degrees counter-clockwise (reading bottom to top): its box is
  /// text_height(scale) wide and text_width(text, scale) tall, with the bottom-left at (x, y).
  void draw_text_up(int x, int y, const std::string& text, Rgba color, int scale = 1);

 private:
  // The pixel range [xs, xe) x [ys, ye) of a box in pixel coordinates, clipped.
  void clip_box(double x0, double y0, double x1, double y1, int& xs, int& ys, int& xe, int& ye) const;

  int width_ = 0, height_ = 0;
  int clip_x0_ = 0, clip_y0_ = 0, clip_x1_ = 0, clip_y1_ = 0;
  std::vector<Rgba> pixels_;
};

/// The image as a PNG file's bytes. \throws latmix::Error with libpng's message when it fails.
std::vector<uint8_t> encode_png(const Image& image);
/// Writes encode_png(image) to `path` atomically (latmix::AtomicFile); Error on failure.
void write_png(const std::string& path, const Image& image);

}  // namespace latmix
