#!/usr/bin/env python3
"""Checks that a .bin written by `arcface make-pairs` loads as insightface's eval/verification.py
loads one: `pickle.load(f, encoding='bytes')` (and plain `pickle.load(f)`) give the 2-tuple
(bins, issame_list), a list of bytes and a list of bool, two images per flag.

usage: scripts/check_verification_bin.py FILE.bin [--images]
  --images: also decode every image with Pillow, if it is installed.
Standard-library Python 3 only (Pillow optional); not part of the Swift test suite.
"""
import pickle
import sys


def check(path, decode_images=False):
    for kwargs in ({"encoding": "bytes"}, {}):
        with open(path, "rb") as f:
            value = pickle.load(f, **kwargs)
        assert isinstance(value, tuple) and len(value) == 2, f"not a 2-tuple: {type(value)}"
        bins, issame = value
        assert isinstance(bins, list) and isinstance(issame, list), "not (list, list)"
        assert all(isinstance(b, bytes) for b in bins), "an image is not bytes"
        assert all(isinstance(x, bool) for x in issame), "a flag is not bool"
        assert len(bins) == 2 * len(issame), f"{len(bins)} images for {len(issame)} flags"
    if decode_images:
        import io
        try:
            from PIL import Image
        except ImportError:
            print("Pillow is not installed: the images were not decoded")
        else:
            for b in bins:
                Image.open(io.BytesIO(b)).load()
    genuine = sum(issame)
    print(f"{path}: {len(issame)} pairs ({genuine} genuine, {len(issame) - genuine} impostor), "
          f"{len(bins)} images, {sum(map(len, bins))} bytes of images: loads as insightface's load_bin does")


if __name__ == "__main__":
    if len(sys.argv) < 2:
        sys.exit(__doc__)
    check(sys.argv[1], "--images" in sys.argv[2:])
