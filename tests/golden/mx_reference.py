#!/usr/bin/env python3
"""Independent reference for the MX formats (OCP Microscaling v1.0) and NVFP4.

Pure Python, standard library only, written from the spec and sharing nothing with the C++
engine: element values come from the bit layouts, rounding is a nearest-point search over the
decoded grid (ties broken by the code's last bit, or away from zero), scales follow the rule
definitions in docs/mx-formats.md with exact arithmetic.

Writes tests/fixtures/mx/mx_reference.json: an fp32 input matrix (rows of 72 values: with
block 32 two full blocks and a tail of 8), and for every format x scale rule x rounding the
element codes, the scale codes and the dequantized fp32 values; plus every element format's code
table. tests/unit/test_mx_golden.cpp compares the engine bit for bit.

    python3 tests/golden/mx_reference.py [OUT.json]
"""

import json
import math
import os
import random
import struct
import sys

NAN = float("nan")
INF = float("inf")


def f32(x):
    """Rounds a Python float (fp64) to the nearest fp32 (ties to even)."""
    return struct.unpack("<f", struct.pack("<f", x))[0]


def f32_bits(x):
    return struct.unpack("<I", struct.pack("<f", x))[0]


def bits_f32(b):
    return struct.unpack("<f", struct.pack("<I", b))[0]


# ---- element formats, from their bit layouts -------------------------------------------------

class FloatElement:
    """A sign / exponent / mantissa element format (OCP FP8, FP6, FP4 layouts)."""

    def __init__(self, name, ebits, mbits, bias, special):
        self.name, self.ebits, self.mbits, self.bias, self.special = name, ebits, mbits, bias, special
        self.bits = 1 + ebits + mbits

    def decode(self, code):
        sign = -1.0 if (code >> (self.ebits + self.mbits)) & 1 else 1.0
        exp = (code >> self.mbits) & ((1 << self.ebits) - 1)
        man = code & ((1 << self.mbits) - 1)
        top = (1 << self.ebits) - 1
        if self.special == "e4m3" and exp == top and man == (1 << self.mbits) - 1:
            return NAN  # S.1111.111 only
        if self.special == "ieee" and exp == top:
            return sign * INF if man == 0 else NAN
        if exp == 0:  # subnormal: 0.m x 2^(1 - bias)
            return sign * (man / (1 << self.mbits)) * 2.0 ** (1 - self.bias)
        return sign * (1 + man / (1 << self.mbits)) * 2.0 ** (exp - self.bias)

    def sign_code(self, negative):
        return (1 << (self.ebits + self.mbits)) if negative else 0


class IntElement:
    """MXINT8 (two's complement, 2^-6 units) or microxcaling's int4 (sign-magnitude, 2^-2)."""

    def __init__(self, name, bits, frac, twos):
        self.name, self.bits, self.frac, self.twos = name, bits, frac, twos

    def decode(self, code):
        if self.twos:
            k = code - 256 if code >= 128 else code
            return k / float(1 << self.frac)
        v = (code & 0x7) / float(1 << self.frac)
        return -v if code & 0x8 else v  # sign-magnitude: 0x8 is -0


ELEMENTS = {
    "E2M1": FloatElement("E2M1", 2, 1, 1, None),
    "E3M2": FloatElement("E3M2", 3, 2, 3, None),
    "E2M3": FloatElement("E2M3", 2, 3, 1, None),
    "E4M3": FloatElement("E4M3", 4, 3, 7, "e4m3"),
    "E5M2": FloatElement("E5M2", 5, 2, 15, "ieee"),
    "INT8": IntElement("INT8", 8, 6, True),
    "INT4": IntElement("INT4", 4, 2, False),
}


class Grid:
    """The non-negative values of an element format, with their codes, for rounding."""

    def __init__(self, el):
        self.el = el
        pos = {}
        for code in range(1 << el.bits):
            v = el.decode(code)
            if math.isnan(v) or math.isinf(v) or v < 0 or math.copysign(1.0, v) < 0:
                continue
            if isinstance(el, IntElement) and el.twos and code >= 128:
                continue
            pos.setdefault(v, code)
        self.points = sorted(pos.items())  # (value, code)
        self.max = self.points[-1][0]
        if isinstance(el, IntElement) and el.twos:
            self.max = 127 / 64.0  # MX quantization is symmetric (microxcaling); -2 is never produced
        self.emax = math.floor(math.log2(self.max))
        self.mbits = el.mbits if isinstance(el, FloatElement) else el.frac

    def nearest(self, a, away):
        """(value, code) of the grid point nearest the magnitude a, saturating at max."""
        if a >= self.max:
            return next(p for p in self.points if p[0] == self.max)
        lo = max(p for p in self.points if p[0] <= a)
        hi = min(p for p in self.points if p[0] >= a)
        if lo[0] == hi[0]:
            return lo
        dl, dh = a - lo[0], hi[0] - a
        if dl < dh:
            return lo
        if dh < dl:
            return hi
        if away:
            return hi
        return lo if lo[1] % 2 == 0 else hi  # ties to the even code

    def code(self, value_code, negative):
        value, code = value_code
        el = self.el
        if isinstance(el, IntElement):
            if el.twos:
                k = int(round(value * 64))
                return (256 - k) % 256 if negative else k
            return code | (0x8 if negative else 0)
        return code | el.sign_code(negative)


GRIDS = {name: Grid(el) for name, el in ELEMENTS.items()}

FORMATS = {
    "mxfp4": "E2M1", "mxfp6_e3m2": "E3M2", "mxfp6_e2m3": "E2M3", "mxfp8_e4m3": "E4M3",
    "mxfp8_e5m2": "E5M2", "mxint8": "INT8", "mxint4": "INT4",
}


# ---- scales ----------------------------------------------------------------------------------

def floor_log2(a):
    m, e = math.frexp(a)  # a = m 2^e, 0.5 <= m < 1; exact for every fp32
    return e - 1


def e8m0_exponent(amax, rule, grid):
    if amax == 0:
        return -127
    fl = floor_log2(amax)
    if rule == "floor":
        e = fl - grid.emax
    elif rule == "ceil":
        e = (fl if amax == 2.0 ** fl else fl + 1) - grid.emax
    elif rule == "rceil":  # the smallest e with amax <= max 2^e
        e = fl - grid.emax - 2
        while grid.max * 2.0 ** e < amax:
            e += 1
    elif rule == "even":  # amax rounded half-up to mbits mantissa bits, then floor
        m = amax / 2.0 ** fl
        rounded = math.floor(m * 2 ** grid.mbits + 0.5) / 2 ** grid.mbits
        e = (fl + 1 if rounded >= 2 else fl) - grid.emax
    else:
        raise ValueError(rule)
    return min(max(e, -127), 127)


def quantize_mx_block(xs, grid, rule, away):
    """codes, scale code, dequantized values of one block (a list of fp32 values)."""
    if any(math.isnan(x) or math.isinf(x) for x in xs):
        return [0] * len(xs), 0xFF, [NAN] * len(xs)
    e = e8m0_exponent(max(abs(x) for x in xs), rule, grid)
    codes, out = [], []
    for x in xs:
        v = x / 2.0 ** e  # exact in fp64
        vc = grid.nearest(abs(v), away)
        negative = math.copysign(1.0, x) < 0
        codes.append(grid.code(vc, negative))
        q = vc[0]
        if negative and not (grid.el.name == "INT8" and q == 0):
            q = -q
        y = q * 2.0 ** e
        if abs(y) >= 2.0 ** 128:  # rounded up past the fp32 range: IEEE overflow
            y = math.copysign(INF, y)
        assert f32(y) == y, "dequantized MX values are exact in fp32"
        out.append(y)
    return codes, e + 127, out


def quantize_nvfp4_block(xs, s2, use_ts, away):
    if any(math.isnan(x) or math.isinf(x) for x in xs):
        return [0] * len(xs), 0x7F, [NAN] * len(xs)
    e4, e2 = GRIDS["E4M3"], GRIDS["E2M1"]
    t = f32(max(abs(x) for x in xs) / 6.0)
    if use_ts:
        t = f32(t / s2)
    sb = e4.nearest(t, False)
    S = f32(sb[0] * s2) if use_ts else sb[0]
    codes, out = [], []
    for x in xs:
        negative = math.copysign(1.0, x) < 0
        vc = (0.0, 0) if S == 0 else e2.nearest(abs(f32(x / S)), away)
        codes.append(e2.code(vc, negative))
        q = -vc[0] if negative else vc[0]
        out.append(f32(q * S))
    return codes, sb[1], out


def quantize_rows(rows, fmt, rule, away, use_ts):
    block = 16 if fmt == "nvfp4" else 32
    s2 = 1.0
    if fmt == "nvfp4" and use_ts:
        finite = [abs(x) for r in rows for x in r if not (math.isnan(x) or math.isinf(x))]
        amax = max(finite) if finite else 0.0
        s2 = f32(amax / 2688.0) if amax > 0 else 1.0
    codes, scales, out = [], [], []
    for r in rows:
        for b in range(0, len(r), block):
            xs = r[b:b + block]
            if fmt == "nvfp4":
                c, s, y = quantize_nvfp4_block(xs, s2, use_ts, away)
            else:
                c, s, y = quantize_mx_block(xs, GRIDS[FORMATS[fmt]], rule, away)
            codes += c
            scales.append(s)
            out += y
    return codes, scales, out, s2


# ---- inputs ----------------------------------------------------------------------------------

COLS = 72


def make_rows(rng):
    def rnd(scale):
        return [f32(rng.gauss(0, scale)) for _ in range(COLS)]

    def pad(vals, fill):
        return [f32(v) for v in vals] + fill[len(vals):]

    rows = []
    rows.append(pad([5.0, 1.25, -0.75, 0.25, 2.5, -3.5], [0.0] * 32 + rnd(1.0)[32:]))
    rows.append(pad([7.9, 1.0, -2.2, 0.3], [0.0] * 32 + rnd(3.0)[32:]))
    rows.append([0.0] * 32 + [-0.0] * 32 + [0.0] * 8)
    nan_row = rnd(1.0)
    nan_row[3], nan_row[40], nan_row[70] = NAN, INF, -INF
    rows.append(nan_row)
    # fp32 subnormals and the bottom of the E8M0 range
    tiny = [bits_f32(rng.randrange(1, 0x800000)) * rng.choice([1, -1]) for _ in range(32)]
    tiny += [f32(rng.gauss(0, 1) * 2.0 ** -126) for _ in range(32)]
    tiny += [2.0 ** -149, -(2.0 ** -149), 2.0 ** -127, 1.5 * 2.0 ** -127, 0.0, 2.0 ** -130, 3 * 2.0 ** -140, -0.0]
    rows.append([f32(v) for v in tiny])
    # the top of the fp32 range
    huge = [f32(rng.uniform(-1, 1) * 3.4e38) for _ in range(32)]
    huge += [f32(rng.gauss(0, 1) * 2.0 ** 120) for _ in range(32)]
    huge += [bits_f32(0x7F7FFFFF), 2.0 ** 127, -(2.0 ** 126), 1e30, -1e35, 3.0e38, 1.0, 0.0]
    rows.append(huge)
    # ties everywhere: odd multiples of powers of two
    rows.append([f32((2 * rng.randrange(0, 64) + 1) * 2.0 ** rng.randrange(-12, 4) * rng.choice([1, -1]))
                 for _ in range(COLS)])
    rows.append([f32((2 * rng.randrange(0, 8) + 1) * 2.0 ** rng.randrange(-4, 0) * rng.choice([1, -1]))
                 for _ in range(COLS)])
    # outliers: a gaussian block with one value 100x larger
    out = rnd(1.0)
    out[7], out[45], out[66] = 100.0 * out[7], -250.0, 60.0
    rows.append([f32(v) for v in out])
    rows.append(rnd(1e-3))
    rows.append(rnd(1e3))
    # block maxima that stress the scale rules: at and around element maxima, mantissa carries
    edge = [6.0, 7.0, 7.5, 7.75, 28.0, 30.0, 448.0, 464.0, 480.0, 57344.0, 61440.0, 127 / 64, 1.75, 1.875,
            1.9921875, 3.75, 0.9375, 0.96875, 1.0, 2.0, 4.0, 8.0, 12.0, 5.99, 6.01, 0.5, 0.25, 0.125, 1.5,
            3.0, 2.75, 0.0]
    blocks = []
    for i in range(32):
        m = edge[i]
        blk = [m] + [f32(rng.uniform(-m, m)) for _ in range(31)]
        blocks.append(blk)
    rows.append([f32(v) for v in blocks[0] + blocks[1] + blocks[2][:8]])
    for k in range(1, 5):  # each row: two edge blocks and a tail, so every edge value leads a block
        rows.append([f32(v) for v in blocks[(2 * k) % 32] + blocks[(2 * k + 1) % 32] + blocks[(2 * k + 16) % 32][:8]])
    rows.append([f32(v * rng.choice([1, -1])) for v in edge] + [f32(v * 2.0 ** 20) for v in edge] + edge[:8])
    for r in rows:
        assert len(r) == COLS
    return rows


def hexs(values, width):
    return "".join(format(v, "0%dx" % width) for v in values)


def main():
    out_path = sys.argv[1] if len(sys.argv) > 1 else os.path.join(
        os.path.dirname(os.path.abspath(__file__)), "..", "fixtures", "mx", "mx_reference.json")
    rng = random.Random(20240917)
    rows = make_rows(rng)
    cases = []
    for fmt in list(FORMATS) + ["nvfp4"]:
        rules = ["floor", "ceil", "rceil", "even"] if fmt != "nvfp4" else ["none"]
        for rule in rules:
            for rounding in ["even", "away"]:
                for use_ts in ([False, True] if fmt == "nvfp4" else [False]):
                    codes, scales, y, s2 = quantize_rows(rows, fmt, rule, rounding == "away", use_ts)
                    cases.append({
                        "format": fmt, "scale": rule, "rounding": rounding, "tensor_scale": use_ts,
                        "block": 16 if fmt == "nvfp4" else 32, "tensor_scale_bits": format(f32_bits(s2), "08x"),
                        "codes": hexs(codes, 2), "scales": hexs(scales, 2),
                        "dequant": hexs([0x7FC00000 if math.isnan(v) else f32_bits(v) for v in y], 8),
                    })
    tables = {name: [float.hex(el.decode(c)) if not math.isnan(el.decode(c)) else "nan"
                     for c in range(1 << el.bits)] for name, el in ELEMENTS.items()}
    doc = {
        "generator": "tests/golden/mx_reference.py",
        "rows": len(rows), "cols": COLS,
        "input": hexs([f32_bits(v) for r in rows for v in r], 8),
        "element_tables": tables,
        "cases": cases,
    }
    os.makedirs(os.path.dirname(out_path), exist_ok=True)
    with open(out_path, "w") as f:
        json.dump(doc, f, indent=0, sort_keys=True)
        f.write("\n")
    print("wrote %s: %d cases, %d values each" % (out_path, len(cases), len(rows) * COLS))


if __name__ == "__main__":
    main()
