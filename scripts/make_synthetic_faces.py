#!/usr/bin/env python3
"""Writes a synthetic folder-per-identity face set of 8-bit RGB PNG images (standard library only),
for measuring `arcface pack` and streamed training on sets larger than memory would like:

    scripts/make_synthetic_faces.py OUT --identities 5000 --images 10 [--size 112] [--seed 1]
    arcface pack --data OUT --output synthetic.rec

Identity k is a smooth colour field with its own blob positions; each image adds a seeded shift and
noise, so images of one identity resemble each other and JPEG sizes are face-like (a few KB), not
noise-like. Nothing here is committed data: generate into a scratch folder.
"""
import argparse
import os
import random
import struct
import zlib


def png(width, height, rows):
    def chunk(kind, data):
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF)
    raw = b"".join(b"\x00" + bytes(row) for row in rows)
    return (b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0))
            + chunk(b"IDAT", zlib.compress(raw, 6)) + chunk(b"IEND", b""))


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("output")
    parser.add_argument("--identities", type=int, default=5000)
    parser.add_argument("--images", type=int, default=10, help="images per identity")
    parser.add_argument("--size", type=int, default=112)
    parser.add_argument("--seed", type=int, default=1)
    args = parser.parse_args()
    n = args.size
    # Row operations on bytes only (translate, slicing, big-integer XOR): C speed, ~1 ms an image.
    gradient = [bytes(min(255, (x + y) // 4) for x in range(n) for _ in range(3)) for y in range(n)]
    low_bits = int.from_bytes(b"\x07" * (3 * n), "little")
    for identity in range(args.identities):
        rng = random.Random(args.seed * 1_000_003 + identity)
        tint = [rng.randrange(40, 170) for _ in range(3)]
        template = []
        for y in range(n):
            row = bytearray(gradient[y])
            for c in range(3):
                row[c::3] = bytes(min(255, v + tint[c]) for v in row[c::3])
            template.append(row)
        for _ in range(4):
            bx, by, r = rng.randrange(n - 8), rng.randrange(n - 8), rng.randrange(8, 30)
            colour = bytes(rng.randrange(256) for _ in range(3))
            x0, x1 = bx, min(n, bx + r)
            for y in range(by, min(n, by + r)):
                template[y][3 * x0:3 * x1] = colour * (x1 - x0)
        folder = os.path.join(args.output, f"id{identity}")
        os.makedirs(folder, exist_ok=True)
        for image in range(args.images):
            dx, dy = rng.randrange(-4, 5), rng.randrange(-4, 5)
            rows = []
            for y in range(n):
                source = template[(y - dy) % n]
                shifted = source[3 * (-dx % n):] + source[:3 * (-dx % n)]
                noise = int.from_bytes(rng.randbytes(3 * n), "little") & low_bits
                rows.append((int.from_bytes(shifted, "little") ^ noise).to_bytes(3 * n, "little"))
            with open(os.path.join(folder, f"{image + 1}.png"), "wb") as f:
                f.write(png(n, n, rows))

if __name__ == "__main__":
    main()
