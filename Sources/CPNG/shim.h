// CPNG: libpng 1.6 (Debian: libpng-dev). No code lives here; FaceData/PNGCodec.swift is the one
// file that calls it, through the simplified API (png_image_*), which handles libpng's longjmp
// error recovery inside the library.
#pragma once
#include <png.h>
