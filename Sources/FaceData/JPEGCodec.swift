// JPEG through libjpeg-turbo's TurboJPEG API (https://libjpeg-turbo.org; Debian's
// libturbojpeg0-dev). The only file that calls `CTurboJPEG`: it borrows buffers for the length of
// each call and exposes safe Swift functions and typed errors.
internal import CTurboJPEG

/// The largest image (width · height, pixels) the codecs decode: 2²⁶ ≈ 67 M pixels, 805 MB as
/// three `Float` planes. Larger headers are rejected before anything is allocated.
public let maximumImagePixelCount = 1 << 26

/// Decodes a baseline or progressive JPEG into a grey (1 channel) or RGB (3 channels) image.
///
/// A JPEG whose colour space is greyscale gives one channel, YCbCr/RGB gives three (converted
/// by libjpeg-turbo with its accurate integer IDCT and fancy upsampling, the library defaults
/// that PIL and OpenCV use too, so pixels match theirs exactly). Each 8-bit sample becomes
/// `value / 255`. Warnings are errors (`TJFLAG_STOPONWARNING`): a truncated file ("Premature end
/// of JPEG file") or corrupt entropy data never becomes a silently grey-filled image.
///
/// - Parameters:
///   - bytes: the whole file.
///   - path: the file's path (or a description such as `train.rec record 7`), used only in errors.
/// - Returns: `pixels` `[C, H, W]`, C = 1 or 3.
/// - Throws: `ImageDecodingError.emptyFile`, `.invalidJPEG` (libjpeg's message),
///   `.unsupportedColorSpace` (CMYK/YCCK), `.imageTooLarge`.
public func decodeJPEG(_ bytes: [UInt8], path: String) throws(ImageDecodingError) -> FaceImage {
    guard !bytes.isEmpty else { throw .emptyFile(path: path) }
    guard let handle = tjInitDecompress() else {
        throw .invalidJPEG(path: path, reason: "cannot create a TurboJPEG decompressor")
    }
    defer { tjDestroy(handle) }
    var width: Int32 = 0, height: Int32 = 0, subsampling: Int32 = 0, colorSpace: Int32 = 0
    let headerStatus = bytes.withUnsafeBufferPointer { buffer in
        tjDecompressHeader3(handle, buffer.baseAddress, UInt(buffer.count), &width, &height, &subsampling, &colorSpace)
    }
    guard headerStatus == 0 else { throw .invalidJPEG(path: path, reason: errorMessage(handle)) }
    let w = Int(width), h = Int(height)
    // libjpeg reads a header cut short as ending early; the size then stays 0.
    guard w >= 1, h >= 1 else { throw .invalidJPEG(path: path, reason: "no frame header (truncated file?)") }
    guard w * h <= maximumImagePixelCount else {
        throw .imageTooLarge(path: path, width: w, height: h)
    }
    let channels: Int
    let pixelFormat: Int32
    switch colorSpace {
    case Int32(TJCS_GRAY.rawValue):
        (channels, pixelFormat) = (1, Int32(TJPF_GRAY.rawValue))
    case Int32(TJCS_YCbCr.rawValue), Int32(TJCS_RGB.rawValue):
        (channels, pixelFormat) = (3, Int32(TJPF_RGB.rawValue))
    default:
        throw .unsupportedColorSpace(path: path, colorSpace: colorSpace == Int32(TJCS_CMYK.rawValue) ? "CMYK" : "YCCK")
    }
    var interleaved = [UInt8](repeating: 0, count: w * h * channels)  // [H, W, C]
    let status = bytes.withUnsafeBufferPointer { source in
        interleaved.withUnsafeMutableBufferPointer { destination in
            tjDecompress2(handle, source.baseAddress, UInt(source.count), destination.baseAddress,
                          width, 0, height, pixelFormat, TJFLAG_ACCURATEDCT | TJFLAG_STOPONWARNING)
        }
    }
    guard status == 0 else { throw .invalidJPEG(path: path, reason: errorMessage(handle)) }
    return planarImage(interleaved: interleaved, width: w, height: h, channels: channels, scale: 255)
}

/// Encodes a grey or RGB image as a baseline JPEG (4:4:4 chroma for RGB, so that small test
/// images keep their colours; greyscale JPEG for one channel), each sample stored as
/// `round(clamp(x, 0, 1) · 255)` before the lossy compression.
///
/// - Parameters:
///   - image: 1 or 3 channels.
///   - quality: libjpeg quality, 1...100.
/// - Throws: `ImageEncodingError.codecFailure` with libjpeg's message (out of memory).
/// - Precondition: `quality` in 1...100; every sample is finite.
public func encodeJPEG(_ image: FaceImage, quality: Int = 95) throws(ImageEncodingError) -> [UInt8] {
    precondition((1...100).contains(quality), "encodeJPEG: quality must be in 1...100, got \(quality)")
    guard let handle = tjInitCompress() else {
        throw .codecFailure(format: "JPEG", message: "cannot create a TurboJPEG compressor")
    }
    defer { tjDestroy(handle) }
    let interleaved = interleavedBytes(image, maxValue: 255).map { UInt8($0) }  // [H, W, C]
    let gray = image.channels == 1
    var output: UnsafeMutablePointer<UInt8>? = nil
    var size: UInt = 0
    let status = interleaved.withUnsafeBufferPointer { source in
        tjCompress2(handle, source.baseAddress, Int32(image.width), 0, Int32(image.height),
                    Int32(gray ? TJPF_GRAY.rawValue : TJPF_RGB.rawValue), &output, &size,
                    Int32(gray ? TJSAMP_GRAY.rawValue : TJSAMP_444.rawValue), Int32(quality), TJFLAG_ACCURATEDCT)
    }
    defer { if let output { tjFree(output) } }
    guard status == 0, let output else { throw .codecFailure(format: "JPEG", message: errorMessage(handle)) }
    return Array(UnsafeBufferPointer(start: output, count: Int(size)))
}

/// TurboJPEG's message for the last error on `handle`.
private func errorMessage(_ handle: tjhandle) -> String {
    guard let message = tjGetErrorStr2(handle) else { return "unknown TurboJPEG error" }
    return String(cString: message)
}
