// CZlib: zlib (Debian: zlib1g-dev, already required by libpng-dev). No code lives here;
// Training/CRC32.swift is the one file that calls it (crc32 only, for checkpoint checksums).
#pragma once
#include <zlib.h>
