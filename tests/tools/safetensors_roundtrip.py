#!/usr/bin/env python3
"""Cross-check of ropescope's safetensors writer and reader with the official package.

    safetensors_roundtrip.py IN_FILE OUT_FILE

Checks that IN_FILE (written by ropescope) loads in the official `safetensors`
package with exactly the tensors and metadata of `expected()`, then writes
OUT_FILE with the same tensors through the official writer for ropescope to read
back. Exit status 0 on success; a message on stderr otherwise.
"""

import sys

import numpy as np
import safetensors


def expected():
    """name -> (safetensors dtype, shape, float64 values); all exact in their dtype."""
    return {
        "f32": ("F32", [3, 5], np.arange(15) * 0.25 - 1.0),
        "f16": ("F16", [2, 3, 4], (np.arange(24) - 12) * 0.5),
        "bf16": ("BF16", [7], np.arange(7) * 1.5 - 3.0),
        "u8": ("U8", [5], np.arange(5)),
        "scalar": ("F32", [], np.array([42.0])),
    }


METADATA = {"format": "pt", "writer": "ropescope-test"}


def as_array(dtype, shape, values):
    if dtype == "F32":
        return values.astype("<f4").reshape(shape)
    if dtype == "F16":
        return values.astype("<f2").reshape(shape)
    if dtype == "U8":
        return values.astype("u1").reshape(shape)
    if dtype == "BF16":  # exact values: the upper half of the float32 bits
        return (values.astype("<f4").view("<u4") >> 16).astype("<u2").reshape(shape)
    raise ValueError(dtype)


def check(path):
    raw = open(path, "rb").read()
    got = dict(safetensors.deserialize(raw))
    want = expected()
    if set(got) != set(want):
        sys.exit(f"{path}: tensors {sorted(got)}, expected {sorted(want)}")
    for name, (dtype, shape, values) in want.items():
        info = got[name]
        if info["dtype"] != dtype or list(info["shape"]) != shape:
            sys.exit(f"{path}: {name} is {info['dtype']} {info['shape']}, expected {dtype} {shape}")
        if bytes(info["data"]) != as_array(dtype, shape, values).tobytes():
            sys.exit(f"{path}: {name}: data differs")
    with safetensors.safe_open(path, framework="np") as f:
        if f.metadata() != METADATA:
            sys.exit(f"{path}: metadata {f.metadata()}, expected {METADATA}")
    # The numpy front end (everything but BF16, which numpy lacks).
    with safetensors.safe_open(path, framework="np") as f:
        for name in ("f32", "f16", "u8", "scalar"):
            dtype, shape, values = want[name]
            if not np.array_equal(f.get_tensor(name), as_array(dtype, shape, values)):
                sys.exit(f"{path}: {name}: numpy values differ")


def write(path):
    keep = []
    specs = {}
    names = {"F32": "float32", "F16": "float16", "BF16": "bfloat16", "U8": "uint8"}
    for name, (dtype, shape, values) in expected().items():
        array = np.ascontiguousarray(as_array(dtype, shape, values))
        keep.append(array)
        specs[name] = safetensors.TensorSpec(dtype=names[dtype], shape=shape, data_ptr=array.ctypes.data,
                                             data_len=array.nbytes)
    safetensors.serialize_file(specs, path, metadata=METADATA)


if __name__ == "__main__":
    check(sys.argv[1])
    write(sys.argv[2])
