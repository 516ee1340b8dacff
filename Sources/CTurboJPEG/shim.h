// CTurboJPEG: libjpeg-turbo's TurboJPEG API (Debian: libturbojpeg0-dev). No code lives here;
// FaceData/JPEGCodec.swift is the one file that calls it.
#pragma once
#include <turbojpeg.h>
