#pragma once
// The built-in bitmap font (internal to latmix_core; png.h describes its metrics).

#include <array>
#include <cstdint>

namespace latmix::font {

/// Nine rows of five bits; bit 4 is the leftmost column. Rows 0..6 stand on the baseline, rows 7
/// and 8 are descenders.
using Glyph = std::array<uint8_t, 9>;

/// The glyph for an ASCII character 32..126; anything else gets '?'.
const Glyph& glyph(unsigned char c);

}  // namespace latmix::font
