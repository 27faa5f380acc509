#!/usr/bin/env python3
"""Checks the studio's screenshots (tests/gui/screenshots.sh, remote_screenshots.sh).

  check_screenshots.py DIR NAME...   every DIR/NAME.png exists, is a PNG, and is not blank: more
                                     than 8 distinct byte patterns among about 20,000 samples of its
                                     inflated rows (filters left in place: enough to tell a drawn
                                     window from an empty one); prints each file's size and count.
Exits 1 naming the first file that fails.
"""
import pathlib
import struct
import sys
import zlib


def distinct_samples(path):
    data = path.read_bytes()
    if data[:8] != b"\x89PNG\r\n\x1a\n":
        raise SystemExit(f"{path}: not a PNG")
    pos, idat, w, h, ctype = 8, b"", 0, 0, 0
    while pos < len(data):
        n, kind = struct.unpack(">I4s", data[pos:pos + 8])
        body = data[pos + 8:pos + 8 + n]
        if kind == b"IHDR":
            w, h, _, ctype = struct.unpack(">IIBB", body[:10])
        if kind == b"IDAT":
            idat += body
        pos += 12 + n
    raw = zlib.decompress(idat)
    bpp = {2: 3, 6: 4}[ctype]
    return len({raw[i:i + bpp] for i in range(1, len(raw), max(1, len(raw) // 20000))}), w, h


def main():
    if len(sys.argv) < 3:
        raise SystemExit("usage: check_screenshots.py DIR NAME...")
    d = pathlib.Path(sys.argv[1])
    for name in sys.argv[2:]:
        path = d / f"{name}.png"
        if not path.exists():
            raise SystemExit(f"{name}.png not written")
        n, w, h = distinct_samples(path)
        print(f"{path.name}: {w}x{h}, {n} distinct samples")
        if n <= 8:
            raise SystemExit(f"{path}: looks blank")


if __name__ == "__main__":
    main()
