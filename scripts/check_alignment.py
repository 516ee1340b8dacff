#!/usr/bin/env python3
"""Compare `arcface align` crops with OpenCV's warp of the same images.

Usage: python3 scripts/check_alignment.py LANDMARKS IMAGES ALIGNED [--size 112]

For every line of a plain landmark file (`path x1 y1 ... x5 y5`), estimates the similarity
transform from the landmarks to the ArcFace template independently (Umeyama's SVD form, no
reflection, numpy float64), warps the image with cv2.warpAffine (INTER_LINEAR, border 0), and
compares it with the crop `arcface align` wrote under ALIGNED (PNG crops, or JPEG crops read
back; the comparison is meant for PNG). Prints the largest difference in 8-bit levels per image
and fails if any exceeds 1 (OpenCV quantizes sample positions to 1/32 pixel). Needs numpy and
opencv-python-headless. Not run by the test suite.
"""
import os
import sys

import cv2
import numpy as np

TEMPLATE = np.array([[38.2946, 51.6963], [73.5318, 51.5014], [56.0252, 71.7366],
                     [41.5493, 92.3655], [70.7299, 92.2041]], dtype=np.float64)


def template(size):
    if size % 112 == 0:
        return TEMPLATE * (size / 112)
    ratio = size / 128
    return TEMPLATE * ratio + np.array([8 * ratio, 0])


def umeyama(source, target):
    """2 x 3 similarity matrix mapping source onto target (Umeyama 1991, eqs. 34-42)."""
    mu_x, mu_y = source.mean(0), target.mean(0)
    x, y = source - mu_x, target - mu_y
    sigma = np.dot(y.T, x) / len(source)  # eq. 38
    u, d, vt = np.linalg.svd(sigma)
    s = np.eye(2)
    if np.linalg.det(u) * np.linalg.det(vt) < 0:
        s[1, 1] = -1  # eq. 39
    rotation = u @ s @ vt  # eq. 40
    scale = np.trace(np.diag(d) @ s) / (x ** 2).sum(1).mean()  # eq. 42
    translation = mu_y - scale * rotation @ mu_x  # eq. 41
    return np.hstack([scale * rotation, translation[:, None]])


def output_name(relative):
    stem, ext = os.path.splitext(relative)
    return relative if ext.lower() in (".jpg", ".jpeg", ".png") else stem + ".png"


def main(argv):
    if len(argv) < 4:
        print(__doc__)
        return 64
    landmarks, images, aligned = argv[1:4]
    size = int(argv[argv.index("--size") + 1]) if "--size" in argv else 112
    worst_overall = 0
    for line in open(landmarks):
        fields = line.split("\t") if "\t" in line else line.split()
        if not fields:
            continue
        path, points = fields[0].strip(), np.array([float(v) for v in fields[1:11]]).reshape(5, 2)
        image = cv2.imread(os.path.join(images, path), cv2.IMREAD_UNCHANGED)
        if image.ndim == 3:
            image = cv2.cvtColor(image, cv2.COLOR_BGR2RGB)
        matrix = umeyama(points, template(size))
        expected = cv2.warpAffine(image, matrix, (size, size), flags=cv2.INTER_LINEAR,
                                  borderMode=cv2.BORDER_CONSTANT, borderValue=0)
        crop = cv2.imread(os.path.join(aligned, output_name(path)), cv2.IMREAD_UNCHANGED)
        if crop.ndim == 3:
            crop = cv2.cvtColor(crop, cv2.COLOR_BGR2RGB)
        worst = int(np.abs(crop.astype(int) - expected.astype(int)).max())
        worst_overall = max(worst_overall, worst)
        print(f"{path}: largest difference {worst} level(s)")
    print(f"largest difference overall: {worst_overall} level(s)")
    return 0 if worst_overall <= 1 else 1


if __name__ == "__main__":
    sys.exit(main(sys.argv))
