// PNG writer without zlib: CRC-32, Adler-32, a fixed-Huffman LZ77 deflate encoder, row filters.
#include "latmix/png.h"

#include <algorithm>
#include <array>
#include <cstdlib>
#include <string>

#include "latmix/files.h"

namespace latmix {

namespace {

const std::array<uint32_t, 256>& crc_table() {
  static const std::array<uint32_t, 256> table = [] {
    std::array<uint32_t, 256> t{};
    for (uint32_t n = 0; n < 256; ++n) {
      uint32_t c = n;
      for (int k = 0; k < 8; ++k) c = (c & 1U) ? 0xEDB88320U ^ (c >> 1) : c >> 1;
      t[n] = c;
    }
    return t;
  }();
  return table;
}

// Deflate's length and distance alphabets (RFC 1951 section 3.2.5).
constexpr std::array<uint16_t, 29> kLengthBase = {3,  4,  5,  6,  7,  8,  9,  10, 11,  13,  15,  17,  19,  23, 27,
                                                  31, 35, 43, 51, 59, 67, 83, 99, 115, 131, 163, 195, 227, 258};
constexpr std::array<uint8_t, 29> kLengthExtra = {0, 0, 0, 0, 0, 0, 0, 0, 1, 1, 1, 1, 2, 2, 2,
                                                  2, 3, 3, 3, 3, 4, 4, 4, 4, 5, 5, 5, 5, 0};
constexpr std::array<uint16_t, 30> kDistBase = {1,    2,    3,    4,    5,    7,    9,    13,    17,    25,
                                                33,   49,   65,   97,   129,  193,  257,  385,   513,   769,
                                                1025, 1537, 2049, 3073, 4097, 6145, 8193, 12289, 16385, 24577};
constexpr std::array<uint8_t, 30> kDistExtra = {0, 0, 0, 0, 1, 1, 2, 2,  3,  3,  4,  4,  5,  5,  6,
                                                6, 7, 7, 8, 8, 9, 9, 10, 10, 11, 11, 12, 12, 13, 13};

constexpr int kMinMatch = 3;
constexpr int kMaxMatch = 258;
constexpr int kWindow = 32768;  // positions are kept modulo this; distances stay below it
constexpr int kHashBits = 15;
constexpr int kMaxChain = 48;  // candidates tried per position: plenty for plots, bounded for noise

// Deflate packs bits starting at the least significant bit of each byte.
class BitWriter {
 public:
  explicit BitWriter(std::vector<uint8_t>& out) : out_(out) {}
  void put(uint32_t bits, int count) {
    acc_ |= static_cast<uint64_t>(bits) << used_;
    used_ += count;
    while (used_ >= 8) {
      out_.push_back(static_cast<uint8_t>(acc_));
      acc_ >>= 8;
      used_ -= 8;
    }
  }
  // Huffman codes are defined most significant bit first.
  void put_code(uint32_t code, int length) {
    uint32_t reversed = 0;
    for (int i = 0; i < length; ++i) reversed |= ((code >> i) & 1U) << (length - 1 - i);
    put(reversed, length);
  }
  void align() {
    if (used_ > 0) put(0, 8 - used_);
  }

 private:
  std::vector<uint8_t>& out_;
  uint64_t acc_ = 0;
  int used_ = 0;
};

void put_literal_or_length(BitWriter& bw, int symbol) {
  if (symbol < 144) {
    bw.put_code(0x30 + symbol, 8);
  } else if (symbol < 256) {
    bw.put_code(0x190 + (symbol - 144), 9);
  } else if (symbol < 280) {
    bw.put_code(symbol - 256, 7);
  } else {
    bw.put_code(0xC0 + (symbol - 280), 8);
  }
}

void put_match(BitWriter& bw, int length, int distance) {
  int li = static_cast<int>(std::upper_bound(kLengthBase.begin(), kLengthBase.end(), length) - kLengthBase.begin()) - 1;
  put_literal_or_length(bw, 257 + li);
  bw.put(static_cast<uint32_t>(length - kLengthBase[li]), kLengthExtra[li]);
  int di = static_cast<int>(std::upper_bound(kDistBase.begin(), kDistBase.end(), distance) - kDistBase.begin()) - 1;
  bw.put_code(static_cast<uint32_t>(di), 5);
  bw.put(static_cast<uint32_t>(distance - kDistBase[di]), kDistExtra[di]);
}

uint32_t hash3(const uint8_t* p) {
  uint32_t v = (static_cast<uint32_t>(p[0]) << 16) | (static_cast<uint32_t>(p[1]) << 8) | p[2];
  return (v * 2654435761U) >> (32 - kHashBits);
}

// Greedy LZ77 over hash chains, emitted as one final fixed-Huffman block.
void deflate_fixed(const uint8_t* data, size_t size, std::vector<uint8_t>& out) {
  BitWriter bw(out);
  bw.put(1, 1);  // BFINAL
  bw.put(1, 2);  // BTYPE = 01, fixed Huffman codes
  std::vector<int32_t> head(size_t{1} << kHashBits, -1);
  std::vector<int32_t> prev(kWindow, -1);
  const int64_t n = static_cast<int64_t>(size);
  auto insert = [&](int64_t pos) {
    if (pos + kMinMatch > n) return;
    uint32_t h = hash3(data + pos);
    prev[pos & (kWindow - 1)] = head[h];
    head[h] = static_cast<int32_t>(pos);
  };
  int64_t i = 0;
  while (i < n) {
    int best_len = 0;
    int64_t best_dist = 0;
    if (i + kMinMatch <= n) {
      const int64_t limit = std::min<int64_t>(kMaxMatch, n - i);
      int64_t cand = head[hash3(data + i)];
      for (int chain = 0; cand >= 0 && chain < kMaxChain; ++chain) {
        const int64_t dist = i - cand;
        if (dist >= kWindow) break;
        if (data[cand + best_len] == data[i + best_len]) {
          int len = 0;
          while (len < limit && data[cand + len] == data[i + len]) ++len;
          if (len > best_len) {
            best_len = len;
            best_dist = dist;
            if (len == limit) break;
          }
        }
        const int64_t next = prev[cand & (kWindow - 1)];
        if (next >= cand) break;  // the slot was reused by a newer position: the chain ends here
        cand = next;
      }
    }
    if (best_len >= kMinMatch) {
      put_match(bw, best_len, static_cast<int>(best_dist));
      for (int k = 0; k < best_len; ++k) insert(i + k);
      i += best_len;
    } else {
      put_literal_or_length(bw, data[i]);
      insert(i);
      ++i;
    }
  }
  put_literal_or_length(bw, 256);  // end of block
  bw.align();
}

void deflate_stored(const uint8_t* data, size_t size, std::vector<uint8_t>& out) {
  size_t pos = 0;
  do {
    const size_t chunk = std::min<size_t>(65535, size - pos);
    const bool last = pos + chunk == size;
    out.push_back(last ? 1 : 0);  // BFINAL, BTYPE = 00, then padding to the byte boundary
    out.push_back(static_cast<uint8_t>(chunk & 0xFF));
    out.push_back(static_cast<uint8_t>(chunk >> 8));
    out.push_back(static_cast<uint8_t>(~chunk & 0xFF));
    out.push_back(static_cast<uint8_t>((~chunk >> 8) & 0xFF));
    out.insert(out.end(), data + pos, data + pos + chunk);
    pos += chunk;
  } while (pos < size);
}

void put_u32_be(std::vector<uint8_t>& out, uint32_t v) {
  out.push_back(static_cast<uint8_t>(v >> 24));
  out.push_back(static_cast<uint8_t>(v >> 16));
  out.push_back(static_cast<uint8_t>(v >> 8));
  out.push_back(static_cast<uint8_t>(v));
}

void put_chunk(std::vector<uint8_t>& out, const char type[4], const uint8_t* data, size_t size) {
  put_u32_be(out, static_cast<uint32_t>(size));
  const size_t start = out.size();
  out.insert(out.end(), type, type + 4);
  if (size > 0) out.insert(out.end(), data, data + size);
  put_u32_be(out, crc32(out.data() + start, out.size() - start));
}

int paeth(int a, int b, int c) {
  const int p = a + b - c;
  const int pa = std::abs(p - a), pb = std::abs(p - b), pc = std::abs(p - c);
  if (pa <= pb && pa <= pc) return a;
  return pb <= pc ? b : c;
}

// Filters one row with each of the five PNG filters and appends the one whose bytes, read as
// signed, have the smallest absolute sum (the heuristic the PNG specification recommends).
void append_filtered_row(const uint8_t* row, const uint8_t* above, size_t len, int bpp, std::vector<uint8_t>& out) {
  std::array<std::vector<uint8_t>, 5> cand;
  std::array<uint64_t, 5> cost{};
  for (int f = 0; f < 5; ++f) {
    cand[f].resize(len);
    for (size_t i = 0; i < len; ++i) {
      const int a = i >= static_cast<size_t>(bpp) ? row[i - bpp] : 0;
      const int b = above != nullptr ? above[i] : 0;
      const int c = (above != nullptr && i >= static_cast<size_t>(bpp)) ? above[i - bpp] : 0;
      int pred = 0;
      if (f == 1) pred = a;
      if (f == 2) pred = b;
      if (f == 3) pred = (a + b) / 2;
      if (f == 4) pred = paeth(a, b, c);
      const auto v = static_cast<uint8_t>(row[i] - pred);
      cand[f][i] = v;
      cost[f] += v < 128 ? v : 256 - v;
    }
  }
  const int best = static_cast<int>(std::min_element(cost.begin(), cost.end()) - cost.begin());
  out.push_back(static_cast<uint8_t>(best));
  out.insert(out.end(), cand[best].begin(), cand[best].end());
}

}  // namespace

uint32_t crc32(const uint8_t* data, size_t size, uint32_t crc) {
  const auto& table = crc_table();
  uint32_t c = crc ^ 0xFFFFFFFFU;
  for (size_t i = 0; i < size; ++i) c = table[(c ^ data[i]) & 0xFFU] ^ (c >> 8);
  return c ^ 0xFFFFFFFFU;
}

uint32_t adler32(const uint8_t* data, size_t size, uint32_t adler) {
  constexpr uint32_t kMod = 65521;
  uint32_t a = adler & 0xFFFFU, b = adler >> 16;
  while (size > 0) {
    // 5552 is the longest run whose sums cannot overflow 32 bits before the reduction.
    const size_t run = std::min<size_t>(size, 5552);
    for (size_t i = 0; i < run; ++i) {
      a += data[i];
      b += a;
    }
    a %= kMod;
    b %= kMod;
    data += run;
    size -= run;
  }
  return (b << 16) | a;
}

std::vector<uint8_t> zlib_compress(const uint8_t* data, size_t size, DeflateMode mode) {
  std::vector<uint8_t> out = {0x78, 0x01};  // deflate, 32 KiB window; (0x7801 % 31) == 0
  if (mode == DeflateMode::kStored) {
    deflate_stored(data, size, out);
  } else {
    deflate_fixed(data, size, out);
    const size_t stored_size = size + 5 * std::max<size_t>(1, (size + 65534) / 65535);
    if (mode == DeflateMode::kSmallest && out.size() - 2 > stored_size) {
      out.resize(2);
      deflate_stored(data, size, out);
    }
  }
  put_u32_be(out, adler32(data, size));
  return out;
}

std::vector<uint8_t> encode_png(const Image& image) {
  const auto& px = image.pixels();
  const bool opaque = std::all_of(px.begin(), px.end(), [](const Rgba& p) { return p.a == 255; });
  const int bpp = opaque ? 3 : 4;
  const size_t w = static_cast<size_t>(image.width()), h = static_cast<size_t>(image.height());
  const size_t row_len = w * bpp;

  std::vector<uint8_t> raw;
  raw.reserve((row_len + 1) * h);
  std::vector<uint8_t> row(row_len), above(row_len);
  for (size_t y = 0; y < h; ++y) {
    for (size_t x = 0; x < w; ++x) {
      const Rgba& p = px[y * w + x];
      uint8_t* d = row.data() + x * bpp;
      d[0] = p.r;
      d[1] = p.g;
      d[2] = p.b;
      if (bpp == 4) d[3] = p.a;
    }
    append_filtered_row(row.data(), y > 0 ? above.data() : nullptr, row_len, bpp, raw);
    std::swap(row, above);
  }
  const std::vector<uint8_t> z = zlib_compress(raw.data(), raw.size());

  std::vector<uint8_t> out = {0x89, 'P', 'N', 'G', '\r', '\n', 0x1A, '\n'};
  std::vector<uint8_t> ihdr;
  put_u32_be(ihdr, static_cast<uint32_t>(w));
  put_u32_be(ihdr, static_cast<uint32_t>(h));
  ihdr.insert(ihdr.end(), {8, static_cast<uint8_t>(opaque ? 2 : 6), 0, 0, 0});  // depth, colour, methods
  put_chunk(out, "IHDR", ihdr.data(), ihdr.size());
  constexpr size_t kIdatChunk = 1 << 18;  // several IDAT chunks keep each one modest for readers
  for (size_t pos = 0; pos < z.size(); pos += kIdatChunk) {
    put_chunk(out, "IDAT", z.data() + pos, std::min(kIdatChunk, z.size() - pos));
  }
  put_chunk(out, "IEND", nullptr, 0);
  return out;
}

void write_png(const std::string& path, const Image& image) {
  const std::vector<uint8_t> bytes = encode_png(image);
  write_file_atomic(path, std::string(bytes.begin(), bytes.end()));
}

}  // namespace latmix
