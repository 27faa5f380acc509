// Image: an RGBA raster with anti-aliased lines, discs, markers and bitmap text.
#include <algorithm>
#include <cmath>
#include <stdexcept>
#include <string>

#include "latmix/error.h"
#include "latmix/png.h"
#include "plot_font.h"

namespace latmix {

namespace {

double clamp01(double v) {
  return v < 0 ? 0 : (v > 1 ? 1 : v);
}

double distance_to_segment(double px, double py, PointF a, PointF b) {
  const double dx = b.x - a.x, dy = b.y - a.y;
  const double len2 = dx * dx + dy * dy;
  double t = len2 > 0 ? ((px - a.x) * dx + (py - a.y) * dy) / len2 : 0;
  t = t < 0 ? 0 : (t > 1 ? 1 : t);
  const double ex = a.x + t * dx - px, ey = a.y + t * dy - py;
  return std::sqrt(ex * ex + ey * ey);
}

// Coverage of a shape accumulated with max() over its pieces, then composited once, so that the
// overlapping ends of a polyline's segments do not show as darker dots.
class CoverageMask {
 public:
  CoverageMask(int x0, int y0, int x1, int y1)
      : x0_(x0), y0_(y0), w_(std::max(0, x1 - x0)), h_(std::max(0, y1 - y0)), cov_(size_t(w_) * size_t(h_), 0.0F) {}

  // A capsule of half-width `half` around the segment; pixel coverage is the distance-based ramp
  // over one pixel at the edge, a standard approximation of the exact area.
  void add_segment(PointF a, PointF b, double half) {
    const double reach = half + 1.0;
    const int xs = std::max(x0_, static_cast<int>(std::floor(std::min(a.x, b.x) - reach)));
    const int xe = std::min(x0_ + w_, static_cast<int>(std::ceil(std::max(a.x, b.x) + reach)));
    const int ys = std::max(y0_, static_cast<int>(std::floor(std::min(a.y, b.y) - reach)));
    const int ye = std::min(y0_ + h_, static_cast<int>(std::ceil(std::max(a.y, b.y) + reach)));
    for (int y = ys; y < ye; ++y) {
      for (int x = xs; x < xe; ++x) {
        const double c = clamp01(half + 0.5 - distance_to_segment(x + 0.5, y + 0.5, a, b));
        float& slot = cov_[size_t(y - y0_) * size_t(w_) + size_t(x - x0_)];
        slot = std::max(slot, static_cast<float>(c));
      }
    }
  }

  void apply(Image& image, Rgba color) const {
    for (int y = 0; y < h_; ++y) {
      for (int x = 0; x < w_; ++x) {
        const float c = cov_[size_t(y) * size_t(w_) + size_t(x)];
        if (c > 0) image.blend(x0_ + x, y0_ + y, color, c);
      }
    }
  }

 private:
  int x0_, y0_, w_, h_;
  std::vector<float> cov_;
};

// Splits a polyline into the "on" pieces of a dash pattern that continues across vertices.
std::vector<std::pair<PointF, PointF>> dash_pieces(const std::vector<PointF>& pts, double dash, double gap) {
  std::vector<std::pair<PointF, PointF>> pieces;
  bool on = true;
  double left = dash;  // length remaining in the current dash or gap
  for (size_t i = 0; i + 1 < pts.size(); ++i) {
    const PointF a = pts[i], b = pts[i + 1];
    const double len = std::hypot(b.x - a.x, b.y - a.y);
    double t = 0;
    while (t < len) {
      const double step = std::min(left, len - t);
      if (on) {
        const double t0 = t / len, t1 = (t + step) / len;
        pieces.push_back(
            {{a.x + (b.x - a.x) * t0, a.y + (b.y - a.y) * t0}, {a.x + (b.x - a.x) * t1, a.y + (b.y - a.y) * t1}});
      }
      t += step;
      left -= step;
      if (left <= 1e-9) {
        on = !on;
        left = on ? dash : gap;
      }
    }
  }
  return pieces;
}

}  // namespace

int text_width(const std::string& text, int scale) {
  if (text.empty()) return 0;
  return (static_cast<int>(text.size()) * FontMetrics::kCellWidth - 1) * scale;
}

Image::Image(int width, int height, Rgba fill) : width_(width), height_(height) {
  if (width < 1 || height < 1 || width > kMaxSide || height > kMaxSide) {
    throw UsageError(describe_error("", "image size", "1.." + std::to_string(kMaxSide) + " per side",
                                    std::to_string(width) + " x " + std::to_string(height)));
  }
  pixels_.assign(size_t(width) * size_t(height), fill);
  reset_clip();
}

Rgba& Image::at(int x, int y) {
  if (x < 0 || y < 0 || x >= width_ || y >= height_) throw std::out_of_range("Image::at outside the image");
  return pixels_[size_t(y) * size_t(width_) + size_t(x)];
}

const Rgba& Image::at(int x, int y) const {
  return const_cast<Image*>(this)->at(x, y);
}

void Image::set_clip(int x0, int y0, int x1, int y1) {
  clip_x0_ = std::clamp(x0, 0, width_);
  clip_y0_ = std::clamp(y0, 0, height_);
  clip_x1_ = std::clamp(x1, clip_x0_, width_);
  clip_y1_ = std::clamp(y1, clip_y0_, height_);
}

void Image::reset_clip() {
  set_clip(0, 0, width_, height_);
}

void Image::clip_box(double x0, double y0, double x1, double y1, int& xs, int& ys, int& xe, int& ye) const {
  // Clamped in double first: coordinates far outside the image must not overflow int.
  auto cx = [&](double v) { return static_cast<int>(std::clamp(v, double(clip_x0_), double(clip_x1_))); };
  auto cy = [&](double v) { return static_cast<int>(std::clamp(v, double(clip_y0_), double(clip_y1_))); };
  xs = cx(std::floor(x0)), ys = cy(std::floor(y0)), xe = cx(std::ceil(x1)), ye = cy(std::ceil(y1));
}

void Image::blend(int x, int y, Rgba color, double coverage) {
  if (x < clip_x0_ || y < clip_y0_ || x >= clip_x1_ || y >= clip_y1_) return;
  const double sa = clamp01(coverage) * color.a / 255.0;
  if (sa <= 0) return;
  Rgba& d = pixels_[size_t(y) * size_t(width_) + size_t(x)];
  const double da = d.a / 255.0;
  const double oa = sa + da * (1 - sa);
  auto mix = [&](uint8_t s, uint8_t dst) {
    return static_cast<uint8_t>(std::lround((s * sa + dst * da * (1 - sa)) / oa));
  };
  d = Rgba{mix(color.r, d.r), mix(color.g, d.g), mix(color.b, d.b), static_cast<uint8_t>(std::lround(oa * 255))};
}

void Image::fill_rect(int x0, int y0, int x1, int y1, Rgba color) {
  x0 = std::max(x0, clip_x0_);
  y0 = std::max(y0, clip_y0_);
  x1 = std::min(x1, clip_x1_);
  y1 = std::min(y1, clip_y1_);
  for (int y = y0; y < y1; ++y) {
    for (int x = x0; x < x1; ++x) blend(x, y, color);
  }
}

void Image::draw_rect(int x0, int y0, int x1, int y1, Rgba color) {
  if (x1 <= x0 || y1 <= y0) return;
  fill_rect(x0, y0, x1, y0 + 1, color);
  if (y1 - 1 > y0) fill_rect(x0, y1 - 1, x1, y1, color);
  fill_rect(x0, y0 + 1, x0 + 1, y1 - 1, color);
  if (x1 - 1 > x0) fill_rect(x1 - 1, y0 + 1, x1, y1 - 1, color);
}

void Image::draw_line(PointF a, PointF b, Rgba color, double width) {
  draw_polyline({a, b}, color, width);
}

void Image::draw_dashed_line(PointF a, PointF b, Rgba color, double width, double dash, double gap) {
  draw_polyline({a, b}, color, width, dash, gap);
}

void Image::draw_polyline(const std::vector<PointF>& points, Rgba color, double width, double dash, double gap) {
  if (points.empty() || width <= 0) return;
  // Lines thinner than a pixel are drawn 1 px wide and fainter, which reads better than a gap.
  const double half = std::max(width, 1.0) / 2;
  if (width < 1) color.a = static_cast<uint8_t>(std::lround(color.a * width));
  double bx0 = points[0].x, by0 = points[0].y, bx1 = bx0, by1 = by0;
  for (const PointF& p : points) {
    if (!std::isfinite(p.x) || !std::isfinite(p.y)) return;
    bx0 = std::min(bx0, p.x), by0 = std::min(by0, p.y), bx1 = std::max(bx1, p.x), by1 = std::max(by1, p.y);
  }
  // The mask spans only the shape's bounding box, clipped.
  int xs, xe, ys, ye;
  clip_box(bx0 - half - 1, by0 - half - 1, bx1 + half + 1, by1 + half + 1, xs, ys, xe, ye);
  CoverageMask mask(xs, ys, xe, ye);
  if (points.size() == 1) {
    mask.add_segment(points[0], points[0], half);
  } else if (dash > 0 && gap > 0) {
    for (const auto& [a, b] : dash_pieces(points, dash, gap)) mask.add_segment(a, b, half);
  } else {
    for (size_t i = 0; i + 1 < points.size(); ++i) mask.add_segment(points[i], points[i + 1], half);
  }
  mask.apply(*this, color);
}

void Image::fill_circle(PointF c, double radius, Rgba color) {
  if (!std::isfinite(c.x) || !std::isfinite(c.y) || !(radius > 0)) return;
  int xs, xe, ys, ye;
  clip_box(c.x - radius - 1, c.y - radius - 1, c.x + radius + 1, c.y + radius + 1, xs, ys, xe, ye);
  for (int y = ys; y < ye; ++y) {
    for (int x = xs; x < xe; ++x) {
      const double d = std::hypot(x + 0.5 - c.x, y + 0.5 - c.y);
      blend(x, y, color, clamp01(radius + 0.5 - d));
    }
  }
}

void Image::draw_marker(PointF c, Marker shape, double size, Rgba color) {
  const double r = size / 2;
  if (shape == Marker::kCircle) {
    fill_circle(c, r, color);
    return;
  }
  if (!std::isfinite(c.x) || !std::isfinite(c.y) || !(r > 0)) return;
  int xs, xe, ys, ye;
  clip_box(c.x - r - 1, c.y - r - 1, c.x + r + 1, c.y + r + 1, xs, ys, xe, ye);
  for (int y = ys; y < ye; ++y) {
    for (int x = xs; x < xe; ++x) {
      const double dx = std::abs(x + 0.5 - c.x), dy = std::abs(y + 0.5 - c.y);
      // Signed distance to the edge: Chebyshev for the square, L1 / sqrt(2) for the diamond.
      const double d = shape == Marker::kSquare ? std::max(dx, dy) - r * 0.85 : (dx + dy - r * 1.2) / std::sqrt(2.0);
      blend(x, y, color, clamp01(0.5 - d));
    }
  }
}

void Image::draw_text(int x, int y, const std::string& text, Rgba color, int scale) {
  scale = std::max(scale, 1);
  int pen = x;
  for (char ch : text) {
    const font::Glyph& g = font::glyph(static_cast<unsigned char>(ch));
    for (int row = 0; row < FontMetrics::kGlyphHeight; ++row) {
      for (int col = 0; col < 5; ++col) {
        if ((g[size_t(row)] >> (4 - col)) & 1U) {
          fill_rect(pen + col * scale, y + row * scale, pen + (col + 1) * scale, y + (row + 1) * scale, color);
        }
      }
    }
    pen += FontMetrics::kCellWidth * scale;
  }
}

void Image::draw_text_up(int x, int y, const std::string& text, Rgba color, int scale) {
  scale = std::max(scale, 1);
  int pen = y;  // runs upwards
  for (char ch : text) {
    const font::Glyph& g = font::glyph(static_cast<unsigned char>(ch));
    for (int row = 0; row < FontMetrics::kGlyphHeight; ++row) {
      for (int col = 0; col < 5; ++col) {
        if ((g[size_t(row)] >> (4 - col)) & 1U) {
          // The glyph's top faces left: its row becomes the x offset, its column runs up.
          const int sx = x + row * scale, sy = pen - (col + 1) * scale;
          fill_rect(sx, sy, sx + scale, sy + scale, color);
        }
      }
    }
    pen -= FontMetrics::kCellWidth * scale;
  }
}

}  // namespace latmix
