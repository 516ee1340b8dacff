#!/usr/bin/env python3
"""Check that numpy reads an `arcface embed` output unchanged.

Usage: python3 scripts/check_npy.py embeddings.npy [embeddings.tsv]

Checks, for the .npy file: numpy.load returns a C-ordered little-endian float32 [N, D] array of
finite values; numpy.save of that array reproduces the file byte for byte (so the header is
exactly numpy's: format 1.0, padded to a multiple of 64 bytes); and, when the .tsv index is given
(default: beside the .npy), that it has the header `index<TAB>path<TAB>label` and one row per
embedding, numbered 0..N-1. Needs only numpy. Not run by the test suite.
"""
import io
import os
import sys

import numpy as np


def check(npy_path, tsv_path=None):
    with open(npy_path, "rb") as f:
        raw = f.read()
    array = np.load(npy_path, allow_pickle=False)
    assert array.dtype == np.dtype("<f4"), f"dtype {array.dtype}, expected <f4"
    assert array.ndim == 2, f"shape {array.shape}, expected [N, D]"
    assert array.flags["C_CONTIGUOUS"], "array is not C-ordered"
    assert np.isfinite(array).all(), "array holds NaN or infinite values"
    major, minor = raw[6], raw[7]
    header_length = int.from_bytes(raw[8:10], "little")
    assert (major, minor) == (1, 0), f"format version {major}.{minor}, expected 1.0"
    assert (10 + header_length) % 64 == 0, f"preamble + header is {10 + header_length} bytes, not a multiple of 64"
    buffer = io.BytesIO()
    np.save(buffer, array)
    assert buffer.getvalue() == raw, "numpy.save of the loaded array differs from the file"
    print(f"{npy_path}: {array.shape[0]} x {array.shape[1]} float32, identical to numpy.save's bytes")

    if tsv_path is None:
        candidate = os.path.splitext(npy_path)[0] + ".tsv"
        tsv_path = candidate if os.path.exists(candidate) else None
    if tsv_path is not None:
        with open(tsv_path, encoding="utf-8") as f:
            lines = f.read().splitlines()
        assert lines[0] == "index\tpath\tlabel", f"unexpected header {lines[0]!r}"
        rows = [line.split("\t") for line in lines[1:]]
        assert len(rows) == array.shape[0], f"{len(rows)} index rows for {array.shape[0]} embeddings"
        for i, row in enumerate(rows):
            assert len(row) == 3 and row[0] == str(i), f"row {i} is {row!r}"
        print(f"{tsv_path}: {len(rows)} rows, one per embedding")


if __name__ == "__main__":
    if len(sys.argv) not in (2, 3):
        sys.exit(__doc__)
    check(sys.argv[1], sys.argv[2] if len(sys.argv) == 3 else None)
