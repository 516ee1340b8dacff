#!/usr/bin/env bash
# Writes the PGM seed inputs of the PGM and image fuzzers into folder $1. They are generated
# rather than committed so that no image files are tracked in the repository: tiny synthetic
# rasters (4×3 and 2×2), no face data (faces are only ever read from ../shared/data).
set -euo pipefail
mkdir -p "$1"
printf 'P2\n# a comment\n3 2\n# another\n15\n0 1 2\n13 14 15\n' > "$1/p2-comments.pgm"
printf 'P5 2 2 65535\n\x00\x00\x03\xe8\x9c\x40\xff\xff' > "$1/p5-16bit.pgm"
printf 'P5\n4 3\n255\n\x00\x14\x28\x3c\x50\x64\x78\x8c\xa0\xb4\xc8\xdc' > "$1/p5-4x3.pgm"
printf 'P5\n4 3\n255\n\x01\x02' > "$1/p5-truncated.pgm"
