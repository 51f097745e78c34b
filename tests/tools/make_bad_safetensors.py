#!/usr/bin/env python3
"""The malformed-safetensors corpus: one small file per rule the reader enforces.

Writes OUT_DIR/bad/<NN>_<rule>.safetensors (default OUT_DIR: tests/data/safetensors)
plus a few valid edge cases in OUT_DIR/good/. tests/io/test_safetensors_corpus.cpp
asserts the exact error message for every bad file; tests/fuzz/corpus/ seeds the
fuzzer from both directories. Plain Python, no dependencies; deterministic.

Usage: make_bad_safetensors.py [OUT_DIR]
"""

import json
import os
import struct
import sys

F32x4 = struct.pack("<4f", 1.0, 2.0, 3.0, 4.0)  # 16 bytes


def st(header, data=b"", length=None):
    """A file: 8-byte little-endian length, header bytes (str or bytes), data."""
    if isinstance(header, str):
        header = header.encode("utf-8")
    n = len(header) if length is None else length
    return struct.pack("<Q", n) + header + data


def one(entry, data=F32x4, name="a"):
    return st(json.dumps({name: entry}, separators=(",", ":")), data)


GOOD_ENTRY = {"dtype": "F32", "shape": [2, 2], "data_offsets": [0, 16]}

BAD = {
    "01_too_short": struct.pack("<I", 4) + b"{",
    "02_header_too_large": st("{}", length=100_000_001),
    "03_header_length_huge": st("{}", length=2**64 - 1),
    "04_header_past_end": st("{}", length=64),
    "05_not_utf8": st(b'{"\xff":1}'),
    "06_overlong_utf8": st(b'{"\xc0\xaf":{}}'),
    "07_utf8_surrogate": st(b'{"\xed\xa0\x80":{}}'),
    "08_not_json": st('{"a":'),
    "09_trailing_garbage": st(json.dumps({"a": GOOD_ENTRY}) + " x", F32x4),
    "10_not_an_object": st("[1,2]"),
    "11_entry_not_object": st('{"a":[1]}'),
    "12_missing_dtype": one({"shape": [2, 2], "data_offsets": [0, 16]}),
    "13_dtype_not_string": one({"dtype": 4, "shape": [2, 2], "data_offsets": [0, 16]}),
    "14_unsupported_dtype": one({"dtype": "Q7", "shape": [2, 2], "data_offsets": [0, 16]}),
    "15_missing_shape": one({"dtype": "F32", "data_offsets": [0, 16]}),
    "16_shape_not_array": one({"dtype": "F32", "shape": 4, "data_offsets": [0, 16]}),
    "17_negative_dim": one({"dtype": "F32", "shape": [2, -2], "data_offsets": [0, 16]}),
    "18_fractional_dim": one({"dtype": "F32", "shape": [2.5], "data_offsets": [0, 16]}),
    "19_missing_offsets": one({"dtype": "F32", "shape": [2, 2]}),
    "20_offsets_not_pair": one({"dtype": "F32", "shape": [2, 2], "data_offsets": [0, 8, 16]}),
    "21_negative_offset": one({"dtype": "F32", "shape": [2, 2], "data_offsets": [-16, 16]}),
    "22_end_before_begin": st(json.dumps({"a": {"dtype": "F32", "shape": [0], "data_offsets": [0, 0]},
                                          "b": {"dtype": "F32", "shape": [2, 2], "data_offsets": [16, 0]}}), F32x4),
    "23_gap_at_start": one({"dtype": "F32", "shape": [2], "data_offsets": [8, 16]}),
    "24_gap_between": st(json.dumps({"a": {"dtype": "F32", "shape": [1], "data_offsets": [0, 4]},
                                      "b": {"dtype": "F32", "shape": [2], "data_offsets": [8, 16]}}), F32x4),
    "25_overlap": st(json.dumps({"a": {"dtype": "F32", "shape": [3], "data_offsets": [0, 12]},
                                  "b": {"dtype": "F32", "shape": [2], "data_offsets": [8, 16]}}), F32x4),
    "26_size_mismatch": one({"dtype": "F32", "shape": [3], "data_offsets": [0, 16]}),
    "27_element_count_overflow": one({"dtype": "F32", "shape": [2**32, 2**32], "data_offsets": [0, 16]}),
    "28_byte_size_overflow": one({"dtype": "F32", "shape": [2**62], "data_offsets": [0, 16]}),
    "29_truncated_data": one(GOOD_ENTRY, data=F32x4[:12]),
    "30_stray_trailing_bytes": one(GOOD_ENTRY, data=F32x4 + b"\0\0\0\0"),
    "31_metadata_not_object": st('{"__metadata__":"x"}'),
    "32_metadata_value_not_string": st('{"__metadata__":{"k":1}}'),
    "33_duplicate_tensor": st('{"a":{"dtype":"F32","shape":[2],"data_offsets":[0,8]},'
                              '"a":{"dtype":"F32","shape":[2],"data_offsets":[8,16]}}', F32x4),
    "34_duplicate_field": st('{"a":{"dtype":"F32","dtype":"F16","shape":[2,2],"data_offsets":[0,16]}}', F32x4),
    "35_empty_name": one(GOOD_ENTRY, name=""),
    "36_nul_in_name": one(GOOD_ENTRY, name="a\u0000b"),
    "37_empty_header": st(""),
    "38_offset_not_integer": one({"dtype": "F32", "shape": [2, 2], "data_offsets": ["0", 16]}),
    "39_dim_too_large_for_u64": st('{"a":{"dtype":"F32","shape":[18446744073709551616],"data_offsets":[0,16]}}',
                                   F32x4),
    # Found by the fuzzer: a number beyond double's range (nlohmann reports it as out_of_range, not parse_error).
    "40_number_out_of_range": st('{"a":{"dtype":"F32","shape":[1e999],"data_offsets":[0,16]}}', F32x4),
    # nlohmann would skip a byte-order mark; the reference (serde_json) rejects it.
    "41_byte_order_mark": st(b"\xef\xbb\xbf" + json.dumps({"a": GOOD_ENTRY}).encode(), F32x4),
    # serde_json reads -0 as a float, so the reference refuses it where an integer is due.
    "42_negative_zero": one({"dtype": "F32", "shape": [2, 2], "data_offsets": [-0.0, 16]}).replace(b"-0.0", b"-0  "),
}

GOOD = {
    # No tensors at all: the header alone is a complete file.
    "empty": st("{}"),
    # Whitespace around the object, null metadata, unknown entry keys (ignored as the reference does).
    "whitespace_null_metadata": st(' \n{"__metadata__":null,"a":{"dtype":"F32","shape":[2,2],'
                                   '"data_offsets":[0,16],"note":"x"}}\t ', F32x4),
    # Header length 7 + 63 = not a multiple of 8: the data is misaligned in the file.
    "misaligned": st('{"b":{"dtype":"BF16","shape":[1],"data_offsets":[0,2]},'
                     '"a":{"dtype":"F32","shape":[2],"data_offsets":[2,10]}}',
                     struct.pack("<H", 0x3FC0) + struct.pack("<2f", 1.5, -2.0)),
    # Zero-sized tensors anywhere, shape [] scalars, all recognised dtypes.
    "zero_sized_and_scalar": st('{"z":{"dtype":"I64","shape":[0,3],"data_offsets":[0,0]},'
                                '"s":{"dtype":"F64","shape":[],"data_offsets":[0,8]},'
                                '"z2":{"dtype":"U8","shape":[5,0],"data_offsets":[8,8]}}',
                                struct.pack("<d", 0.25)),
}


def main():
    here = os.path.dirname(os.path.abspath(__file__))
    out = sys.argv[1] if len(sys.argv) > 1 else os.path.join(here, "..", "data", "safetensors")
    for sub, files in (("bad", BAD), ("good", GOOD)):
        os.makedirs(os.path.join(out, sub), exist_ok=True)
        for name, data in files.items():
            with open(os.path.join(out, sub, name + ".safetensors"), "wb") as f:
                f.write(data)


if __name__ == "__main__":
    main()
