#!/usr/bin/env python3
"""Writes the small FaceData test fixtures in this folder (standard library only).

    python3 Tests/FaceDataTests/Fixtures/make_fixtures.py

PNG files are written by a minimal PNG encoder below (zlib + CRC-32 from the standard library),
independent of libpng, so the tests check our libpng wrapper against another writer:
  gray16.png   3×2, 16-bit grey, no colour-space chunk; sample (y, x) = [[0, 1, 256], [4660, 65534, 65535]]
  palette.png  2×1, 8-bit palette (indices 0, 1 → (255, 0, 0), (0, 128, 255))
  rgba.png     2×1, 8-bit RGBA: (10, 20, 30, 255), (200, 100, 50, 0) (fully transparent)
  gray2.png    4×1, 2-bit grey: 0, 1, 2, 3 (scaled by libpng to 0, 85, 170, 255)

InsightFace verification sets (`lfw.bin` layout) are written with Python's pickle exactly as
insightface's `recognition/_datasets_/lfw2pack.py` does: `pickle.dump((bins, issame_list), f,
protocol=...)`, where `bins` is a list of encoded images (`bytes`) and `issame_list` a list of
`bool`, one per consecutive image pair:
  tiny_p2.bin / tiny_p3.bin / tiny_p4.bin / tiny_p5.bin   the same content at protocols 2, 3, 4, 5:
      4 images (PNG 2×2 grey, values (k, k+1, k+2, k+3)·10 for image k), issame = [True, False]
  tiny_py2.bin      the same content as Python 2's pickler writes it at protocol 2 (the
                    format of the published lfw.bin/cfp_fp.bin/agedb_30.bin): images as
                    SHORT_BINSTRING/BINSTRING `str`, memoized with BINPUT; assembled by hand here
                    and checked with `pickle.loads(..., encoding="bytes")`
  other_shape.bin   a pickle of a dict, not a tuple (must be refused)

An InsightFace RecordIO training set, framed as dmlc-core's RecordIOWriter does and with headers
packed as MXNet's `recordio.pack` (struct "IfQQ", then float32 labels when flag > 0):
  tiny.rec / tiny.idx   record 0: flag 2, labels (5, 7): images are records 1–4, identities 5–6;
                        records 1–4: PNG 2×2 grey images (value 50·k for image k), labels 0, 0, 1, 1
                        (record 4 stores its label as a 2-element list [1, 7], as some sets do);
                        record 5: identity 0 → images (1, 3); record 6: identity 1 → images (3, 5)
"""
import os
import pickle
import struct
import zlib

HERE = os.path.dirname(os.path.abspath(__file__))


def chunk(kind, data):
    body = kind + data
    return struct.pack(">I", len(data)) + body + struct.pack(">I", zlib.crc32(body) & 0xFFFFFFFF)


def png(width, height, bit_depth, color_type, rows, extra_chunks=()):
    """rows: list of bytes, each already packed for the bit depth (filter byte added here)."""
    header = struct.pack(">IIBBBBB", width, height, bit_depth, color_type, 0, 0, 0)
    raw = b"".join(b"\x00" + row for row in rows)
    out = b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header)
    for kind, data in extra_chunks:
        out += chunk(kind, data)
    return out + chunk(b"IDAT", zlib.compress(raw)) + chunk(b"IEND", b"")


def write(name, data):
    with open(os.path.join(HERE, name), "wb") as f:
        f.write(data)


def python2_pickle(images, issame):
    """Python 2 cPickle.dump((images, issame), f, protocol=2) for str images: the same opcodes."""
    memo = 0
    out = bytearray(b"\x80\x02")

    def put():
        nonlocal memo
        out.extend(b"q" + bytes([memo]))
        memo += 1

    out.extend(b"]"); put(); out.extend(b"(")
    for image in images:
        if len(image) < 256:
            out.extend(b"U" + bytes([len(image)]) + image)
        else:
            out.extend(b"T" + struct.pack("<i", len(image)) + image)
        put()
    out.extend(b"e]"); put(); out.extend(b"(")
    for flag in issame:
        out.extend(b"\x88" if flag else b"\x89")
    out.extend(b"e\x86"); put(); out.extend(b".")
    data = bytes(out)
    assert pickle.loads(data, encoding="bytes") == (images, issame)
    return data


MAGIC = 0xCED7230A


def ir_header(flag, label, labels=()):
    if labels:
        return struct.pack("<IfQQ", len(labels), 0.0, 0, 0) + struct.pack("<%df" % len(labels), *labels)
    return struct.pack("<IfQQ", flag, label, 0, 0)


def recordio(records):
    """records: list of (key, payload). Returns (rec bytes, idx text); no payload holds the magic."""
    rec, idx = bytearray(), []
    for key, payload in records:
        assert struct.pack("<I", MAGIC) not in payload
        idx.append("%d\t%d\n" % (key, len(rec)))
        rec += struct.pack("<II", MAGIC, len(payload)) + payload + b"\x00" * ((4 - len(payload) % 4) % 4)
    return bytes(rec), "".join(idx)


def main():
    gray16 = [[0, 1, 256], [4660, 65534, 65535]]
    write("gray16.png", png(3, 2, 16, 0, [b"".join(struct.pack(">H", v) for v in row) for row in gray16]))
    write("palette.png", png(2, 1, 8, 3, [bytes([0, 1])], [(b"PLTE", bytes([255, 0, 0, 0, 128, 255]))]))
    write("rgba.png", png(2, 1, 8, 6, [bytes([10, 20, 30, 255, 200, 100, 50, 0])]))
    write("gray2.png", png(4, 1, 2, 0, [bytes([0b00011011])]))

    images = [png(2, 2, 8, 0, [bytes([10 * k, 10 * (k + 1)]), bytes([10 * (k + 2), 10 * (k + 3)])])
              for k in range(4)]
    issame = [True, False]
    for protocol in (2, 3, 4, 5):
        with open(os.path.join(HERE, f"tiny_p{protocol}.bin"), "wb") as f:
            pickle.dump((images, issame), f, protocol=protocol)
    write("tiny_py2.bin", python2_pickle(images, issame))
    with open(os.path.join(HERE, "other_shape.bin"), "wb") as f:
        pickle.dump({"bins": images, "issame": issame}, f, protocol=4)

    faces = [png(2, 2, 8, 0, [bytes([50 * k] * 2), bytes([50 * k] * 2)]) for k in range(1, 5)]
    records = [(0, ir_header(0, 0.0, (5.0, 7.0)))]
    records += [(k, ir_header(0, float((k - 1) // 2)) + faces[k - 1]) for k in (1, 2, 3)]
    records += [(4, ir_header(0, 0.0, (1.0, 7.0)) + faces[3])]
    records += [(5, ir_header(0, 0.0, (1.0, 3.0))), (6, ir_header(0, 0.0, (3.0, 5.0)))]
    rec, idx = recordio(records)
    write("tiny.rec", rec)
    write("tiny.idx", idx.encode())


if __name__ == "__main__":
    main()
