#!/usr/bin/env python3
"""Independent PNG decoder for the tests of engine/report/png.cpp (Python standard library only).

  png_decode.py png IN.png OUT.rgba   checks the signature, every chunk's CRC, IHDR and IEND,
                                      inflates the IDAT data with zlib, undoes the five row
                                      filters and writes the pixels as raw RGBA (8 bits, row-major);
                                      prints "WIDTH HEIGHT COLOUR_TYPE IDAT_CHUNKS"

Several IN OUT pairs may follow the mode (one interpreter start for many files).
Supports what the writer produces: bit depth 8, colour type 2 (RGB) or 6 (RGBA), no interlace.
Any deviation is an error (exit status 1, message on stderr).
"""
import struct
import sys
import zlib


def fail(message):
    sys.stderr.write("png_decode.py: " + message + "\n")
    sys.exit(1)


def inflate(data):
    """zlib.decompress, and also insists the stream ends exactly at the end of the data."""
    d = zlib.decompressobj()
    out = d.decompress(data)
    if not d.eof or d.unused_data:
        fail("zlib stream %s" % ("truncated" if not d.eof else "followed by %d extra bytes" % len(d.unused_data)))
    return out


def paeth(a, b, c):
    p = a + b - c
    pa, pb, pc = abs(p - a), abs(p - b), abs(p - c)
    if pa <= pb and pa <= pc:
        return a
    return b if pb <= pc else c


def unfilter(raw, width, height, bpp):
    stride = width * bpp
    if len(raw) != height * (stride + 1):
        fail("inflated size %d, expected %d" % (len(raw), height * (stride + 1)))
    out = bytearray()
    prev = bytearray(stride)
    for y in range(height):
        start = y * (stride + 1)
        ftype = raw[start]
        line = bytearray(raw[start + 1:start + 1 + stride])
        # One loop per filter type (not one branch per byte): plots are large, Python is slow.
        if ftype == 0:
            pass
        elif ftype == 1:
            for i in range(bpp, stride):
                line[i] = (line[i] + line[i - bpp]) & 0xFF
        elif ftype == 2:
            line = bytearray((x + b) & 0xFF for x, b in zip(line, prev))
        elif ftype == 3:
            for i in range(stride):
                a = line[i - bpp] if i >= bpp else 0
                line[i] = (line[i] + (a + prev[i]) // 2) & 0xFF
        elif ftype == 4:
            for i in range(stride):
                a = line[i - bpp] if i >= bpp else 0
                c = prev[i - bpp] if i >= bpp else 0
                line[i] = (line[i] + paeth(a, prev[i], c)) & 0xFF
        else:
            fail("row %d: unknown filter type %d" % (y, ftype))
        out += line
        prev = line
    return out


def decode_png(data):
    if data[:8] != b"\x89PNG\r\n\x1a\n":
        fail("bad signature")
    pos, chunks = 8, []
    while pos < len(data):
        if pos + 12 > len(data):
            fail("truncated chunk at byte %d" % pos)
        (length,) = struct.unpack(">I", data[pos:pos + 4])
        ctype = data[pos + 4:pos + 8]
        body = data[pos + 8:pos + 8 + length]
        (crc,) = struct.unpack(">I", data[pos + 8 + length:pos + 12 + length])
        if zlib.crc32(ctype + body) & 0xFFFFFFFF != crc:
            fail("CRC mismatch in chunk %r" % ctype)
        chunks.append((ctype, body))
        pos += 12 + length
    if not chunks or chunks[0][0] != b"IHDR" or chunks[-1][0] != b"IEND" or chunks[-1][1]:
        fail("chunks must start with IHDR and end with an empty IEND")
    width, height, depth, ctype, comp, filt, interlace = struct.unpack(">IIBBBBB", chunks[0][1])
    if depth != 8 or ctype not in (2, 6) or comp or filt or interlace:
        fail("unsupported IHDR %r" % ((depth, ctype, comp, filt, interlace),))
    idat = [body for kind, body in chunks if kind == b"IDAT"]
    raw = inflate(b"".join(idat))
    bpp = 3 if ctype == 2 else 4
    pixels = unfilter(raw, width, height, bpp)
    if bpp == 3:
        rgba = bytearray(width * height * 4)
        for channel in range(3):
            rgba[channel::4] = pixels[channel::3]
        rgba[3::4] = b"\xff" * (width * height)
        pixels = rgba
    return width, height, ctype, len(idat), bytes(pixels)


def main():
    args = sys.argv[1:]
    if len(args) < 3 or len(args) % 2 != 1 or args[0] != "png":
        fail("usage: png_decode.py png IN OUT [IN OUT]...")
    for src, dst in zip(args[1::2], args[2::2]):
        with open(src, "rb") as f:
            data = f.read()
        width, height, ctype, idat_count, out = decode_png(data)
        print(width, height, ctype, idat_count)
        with open(dst, "wb") as f:
            f.write(out)


if __name__ == "__main__":
    main()
