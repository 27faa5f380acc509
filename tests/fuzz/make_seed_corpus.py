#!/usr/bin/env python3
"""Writes the seed corpus of fuzz_safetensors_header into tests/fuzz/corpus/safetensors_header/.

Each file is a small safetensors file (8-byte little-endian header length, JSON header, data),
valid or broken in one named way. Run from anywhere; the output folder is rewritten.
Only the Python standard library is used.
"""
import json
import os
import struct

OUT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "corpus", "safetensors_header")


def raw(header: bytes, data: bytes = b"", length=None) -> bytes:
    n = len(header) if length is None else length
    return struct.pack("<Q", n) + header + data


def padded(header: bytes) -> bytes:
    return header + b" " * ((8 - len(header) % 8) % 8)


def entry(dtype, shape, begin, end):
    return {"dtype": dtype, "shape": shape, "data_offsets": [begin, end]}


def st(tensors: dict, data_len: int, metadata=None, pad=True) -> bytes:
    obj = {}
    if metadata is not None:
        obj["__metadata__"] = metadata
    obj.update(tensors)
    header = json.dumps(obj, separators=(",", ":")).encode()
    if pad:
        header = padded(header)
    return raw(header, bytes(range(256)) * (data_len // 256) + bytes(data_len % 256))


def j(text: str) -> bytes:
    return text.encode()


CASES = {
    # valid files
    "valid_empty_header": raw(b"{}"),
    "valid_empty_padded": raw(b"{}      "),
    "valid_one_f32": st({"w": entry("F32", [2, 2], 0, 16)}, 16, {"format": "pt"}),
    "valid_scalar_and_zero_size": st({"s": entry("F64", [], 0, 8), "z": entry("BF16", [0, 4], 8, 8)}, 8),
    "valid_every_dtype": st(
        {name: entry(name, [8], 8 * i, 8 * i + 8) for i, name in enumerate(["BOOL", "U8", "I8", "F8_E5M2", "F8_E4M3", "F8_E8M0", "F8_E4M3FNUZ", "F8_E5M2FNUZ"])}
        | {"f4": entry("F4", [16], 64, 72), "f6a": entry("F6_E2M3", [4], 72, 75), "f6b": entry("F6_E3M2", [4], 75, 78),
           "c64": entry("C64", [1], 78, 86), "u64": entry("U64", [1], 86, 94), "i16": entry("I16", [1], 94, 96)},
        96),
    "valid_unsorted_offsets": st({"b": entry("U8", [4], 4, 8), "a": entry("U8", [4], 0, 4)}, 8),
    "valid_unaligned_f32": st({"a": entry("U8", [3], 0, 3), "b": entry("F32", [2], 3, 11)}, 11),
    "valid_unicode_names": st({"é\u0001名": entry("U8", [1], 0, 1)}, 1, {"k\u00e9": "v\u4e2d"}),
    # length field
    "truncated_length_field": b"\x02\x00\x00",
    "empty_file": b"",
    "header_len_zero": raw(b"", length=0),
    "header_len_one": raw(b"{", length=1),
    "header_len_huge": raw(b"{}", length=(1 << 64) - 1),
    "header_len_over_cap": raw(b"{}", length=(100 << 20) + 1),
    "header_len_past_eof": raw(b"{}", length=4096),
    "truncated_header": raw(b'{"a":{"dtype":"U8","shape":[1],"data_offsets":[0,1]}}')[:30],
    # JSON
    "bad_json_unclosed": raw(b'{"a":'),
    "bad_json_trailing_garbage": raw(b"{}x"),
    "bad_json_nul_padding": raw(b"{}\x00\x00\x00\x00\x00\x00"),
    "bad_utf8_key": raw(b'{"\xff\xfe":{}}'),
    "bad_utf8_truncated_sequence": raw(b'{"\xc3":{}}'),
    "bad_json_lone_surrogate": raw(j('{"\\ud800":{"dtype":"U8","shape":[0],"data_offsets":[0,0]}}')),
    "not_object_array": raw(b"[]"),
    "not_object_string": raw(b'"x"'),
    "not_object_number": raw(b"12"),
    "depth_bomb_arrays": raw(b"[" * 20000),
    "depth_bomb_objects": raw(b'{"a":' * 5000),
    "depth_bomb_in_shape": raw(b'{"a":{"dtype":"U8","shape":' + b"[" * 20000),
    # duplicates
    "duplicate_tensor_key": raw(padded(j('{"a":{"dtype":"U8","shape":[1],"data_offsets":[0,1]},"a":{"dtype":"U8","shape":[1],"data_offsets":[1,2]}}')), b"\0\0"),
    "duplicate_field": raw(j('{"a":{"dtype":"U8","dtype":"I8","shape":[1],"data_offsets":[0,1]}}'), b"\0"),
    "duplicate_metadata_key": raw(j('{"__metadata__":{"k":"1","k":"2"}}')),
    "duplicate_metadata_object": raw(j('{"__metadata__":{},"__metadata__":{}}')),
    # metadata
    "metadata_number_value": raw(j('{"__metadata__":{"k":1}}')),
    "metadata_nested_object": raw(j('{"__metadata__":{"k":{"x":"y"}}}')),
    "metadata_is_array": raw(j('{"__metadata__":["pt"]}')),
    "metadata_null": raw(j('{"__metadata__":null}')),
    # entries
    "entry_is_string": raw(j('{"a":"x"}')),
    "bad_dtype_name": st({"a": entry("F33", [1], 0, 4)}, 4),
    "bad_dtype_lowercase": st({"a": entry("f32", [1], 0, 4)}, 4),
    "dtype_not_string": raw(j('{"a":{"dtype":7,"shape":[1],"data_offsets":[0,1]}}'), b"\0"),
    "unknown_field": raw(j('{"a":{"dtype":"U8","shape":[1],"data_offsets":[0,1],"x":0}}'), b"\0"),
    "missing_shape": raw(j('{"a":{"dtype":"U8","data_offsets":[0,1]}}'), b"\0"),
    "missing_data_offsets": raw(j('{"a":{"dtype":"U8","shape":[1]}}'), b"\0"),
    "negative_shape": raw(j('{"a":{"dtype":"U8","shape":[-1],"data_offsets":[0,0]}}')),
    "float_shape": raw(j('{"a":{"dtype":"U8","shape":[2.0],"data_offsets":[0,2]}}'), b"\0\0"),
    "exponent_shape": raw(j('{"a":{"dtype":"U8","shape":[1e1],"data_offsets":[0,10]}}'), bytes(10)),
    "string_shape": raw(j('{"a":{"dtype":"U8","shape":["2"],"data_offsets":[0,2]}}'), b"\0\0"),
    "shape_too_big_for_int64": raw(j('{"a":{"dtype":"U8","shape":[9223372036854775808],"data_offsets":[0,0]}}')),
    "shape_bigger_than_uint64": raw(j('{"a":{"dtype":"U8","shape":[99999999999999999999],"data_offsets":[0,0]}}')),
    "shape_product_overflow": raw(j('{"a":{"dtype":"U8","shape":[4611686018427387904,4],"data_offsets":[0,0]}}')),
    "shape_overflow_with_zero_dim": raw(j('{"a":{"dtype":"U8","shape":[4294967296,4294967296,0],"data_offsets":[0,0]}}')),
    "byte_size_overflow": raw(j('{"a":{"dtype":"F64","shape":[4611686018427387904],"data_offsets":[0,0]}}')),
    "subbyte_not_whole_bytes": st({"a": entry("F4", [3], 0, 2)}, 2),
    "offsets_three_numbers": raw(j('{"a":{"dtype":"U8","shape":[1],"data_offsets":[0,1,2]}}'), b"\0"),
    "offsets_one_number": raw(j('{"a":{"dtype":"U8","shape":[1],"data_offsets":[1]}}'), b"\0"),
    "offsets_negative": raw(j('{"a":{"dtype":"U8","shape":[1],"data_offsets":[-1,0]}}'), b"\0"),
    "offsets_end_before_begin": st({"a": entry("U8", [1], 4, 3)}, 4),
    "offsets_size_mismatch": st({"a": entry("F32", [2], 0, 4)}, 4),
    "offsets_past_eof": st({"a": entry("U8", [8], 0, 8)}, 4),
    "offsets_near_uint64_max": st({"a": entry("U8", [1], (1 << 64) - 2, (1 << 64) - 1)}, 1),
    # layout
    "overlapping_tensors": st({"a": entry("U8", [8], 0, 8), "b": entry("U8", [4], 4, 8)}, 8),
    "same_offsets_twice": st({"a": entry("U8", [4], 0, 4), "b": entry("U8", [4], 0, 4)}, 4),
    "hole_between_tensors": st({"a": entry("U8", [4], 0, 4), "b": entry("U8", [4], 8, 12)}, 12),
    "hole_at_start": st({"a": entry("U8", [4], 2, 6)}, 6),
    "trailing_bytes_after_last": st({"a": entry("U8", [4], 0, 4)}, 7),
    "data_but_no_tensors": st({}, 5),
    "zero_size_inside_other": st({"z": entry("U8", [0], 2, 2), "a": entry("U8", [4], 0, 4)}, 4),
}


def main():
    os.makedirs(OUT, exist_ok=True)
    for name in os.listdir(OUT):
        if not name.startswith("crash_"):  # inputs found by fuzzing are kept
            os.remove(os.path.join(OUT, name))
    for name, data in sorted(CASES.items()):
        with open(os.path.join(OUT, name), "wb") as f:
            f.write(data)
    print(f"wrote {len(CASES)} files to {OUT}")


if __name__ == "__main__":
    main()
