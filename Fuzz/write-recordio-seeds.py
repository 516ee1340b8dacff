#!/usr/bin/env python3
"""Writes the seed corpus of the RecordIO fuzzer into Fuzz/corpus/recordio/ (standard library only).

    python3 Fuzz/write-recordio-seeds.py

Each seed is one fuzzer input in the layout `Fuzz/Sources/FuzzRecordIO/main.swift` reads:
`<.idx text> 0x00 <.rec bytes>`, or `.rec` bytes alone when the input starts with the RecordIO
magic number (the harness then derives the index from a sequential scan). Records are framed as dmlc-core's
RecordIOWriter frames them and headers packed as MXNet's `recordio.pack` (struct "IfQQ", then
float32 labels when flag > 0). The images inside are tiny synthetic rasters (2×2 PGM and PNG
written here; no face data — faces are only read from ../shared/data):
  insightface.seed   record 0 with ranges (5, 7), 4 images of 2 identities, identity records 5–6
                     (the layout of Tests/FaceDataTests/Fixtures/tiny.rec, with PGM and PNG images)
  flat.seed          no identity header: 3 image records labelled by their own headers
  split.seed         one record whose data holds the magic number at an aligned offset, so the
                     writer splits it into parts with continuation flags 1, 2, 3
  label-list.seed    an image whose header carries a 2-element label list (flag 2)
  no-index.seed      the flat set's .rec bytes alone (index derived by the harness)
Regression seeds, inputs that crashed, exhausted memory or leaked in the harness (each also a test in
Tests/FaceDataTests/RecordIOFuzzRegressionTests.swift):
  regression-key-int-max.seed     index key 9223372036854775807 (an overflow trap)
  regression-huge-ranges.seed     record 0 claims 10^12 image records (a terabyte allocation)
  regression-huge-label.seed      an image labelled 10^9 (makeBatch named every identity: out of memory)
  regression-empty-index.seed     an empty .idx (Foundation leaked its read buffer)
"""
import os
import struct
import zlib

HERE = os.path.dirname(os.path.abspath(__file__))
OUT = os.path.join(HERE, "corpus", "recordio")
MAGIC = 0xCED7230A


def png_gray(width, height, values):
    def chunk(kind, data):
        body = kind + data
        return struct.pack(">I", len(data)) + body + struct.pack(">I", zlib.crc32(body) & 0xFFFFFFFF)
    raw = b"".join(b"\x00" + bytes(values[y * width:(y + 1) * width]) for y in range(height))
    return (b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", struct.pack(">IIBBBBB", width, height, 8, 0, 0, 0, 0))
            + chunk(b"IDAT", zlib.compress(raw)) + chunk(b"IEND", b""))


def pgm(width, height, values):
    return b"P5\n%d %d\n255\n" % (width, height) + bytes(values)


def ir_header(label=0.0, labels=()):
    if labels:
        return struct.pack("<IfQQ", len(labels), 0.0, 0, 0) + struct.pack("<%df" % len(labels), *labels)
    return struct.pack("<IfQQ", 0, label, 0, 0)


def frame(data):
    """dmlc RecordIOWriter::WriteRecord: split at aligned magic numbers, cflag 0 / 1, 2…, 3."""
    magic = struct.pack("<I", MAGIC)
    parts, start = [], 0
    for position in range(0, len(data) - 3, 4):
        if data[position:position + 4] == magic:
            parts.append(data[start:position])
            start = position + 4
    parts.append(data[start:])
    out = b""
    for index, part in enumerate(parts):
        flag = 0 if len(parts) == 1 else 1 if index == 0 else 3 if index == len(parts) - 1 else 2
        out += struct.pack("<II", MAGIC, flag << 29 | len(part)) + part + b"\x00" * ((4 - len(part) % 4) % 4)
    return out


def recordio(records):
    rec, idx = b"", ""
    for key, payload in records:
        idx += "%d\t%d\n" % (key, len(rec))
        rec += frame(payload)
    return rec, idx


def write(name, rec, idx=None):
    with open(os.path.join(OUT, name), "wb") as f:
        f.write((idx.encode() + b"\x00" if idx is not None else b"") + rec)


def main():
    os.makedirs(OUT, exist_ok=True)
    images = [pgm(2, 2, [40 * k] * 4) if k % 2 else png_gray(2, 2, [40 * k] * 4) for k in range(1, 5)]
    records = [(0, ir_header(labels=(5.0, 7.0)))]
    records += [(k, ir_header(float((k - 1) // 2)) + images[k - 1]) for k in (1, 2, 3, 4)]
    records += [(5, ir_header(labels=(1.0, 3.0))), (6, ir_header(labels=(3.0, 5.0)))]
    write("insightface.seed", *recordio(records))

    flat = [(key, ir_header(float(label)) + pgm(2, 2, [key, 1, 2, 3])) for key, label in ((0, 1), (1, 0), (2, 1))]
    rec, idx = recordio(flat)
    write("flat.seed", rec, idx)
    write("no-index.seed", rec)

    magic = struct.pack("<I", MAGIC)
    tricky = ir_header(0.0) + pgm(2, 2, [1, 2, 3, 4])  # 24 + 15 bytes
    tricky = tricky + b"\x00" * ((4 - len(tricky) % 4) % 4) + magic + b"tail" + magic + b"!"
    write("split.seed", *recordio([(0, tricky)]))

    write("label-list.seed", *recordio([(0, ir_header(labels=(0.0, 9.0)) + png_gray(2, 2, [9, 8, 7, 6]))]))

    one = frame(ir_header(0.0) + pgm(1, 1, [7]))
    write("regression-key-int-max.seed", one, "0\t0\n9223372036854775807\t0\n")
    write("regression-huge-ranges.seed", frame(ir_header(labels=(1e12, 1e12))), "0\t0\n1000000000000\t0\n")
    write("regression-huge-label.seed", frame(ir_header(1e9) + pgm(1, 1, [7])))
    write("regression-empty-index.seed", one, "")


if __name__ == "__main__":
    main()
