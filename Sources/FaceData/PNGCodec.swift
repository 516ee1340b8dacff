// PNG through libpng 1.6's simplified API (http://www.libpng.org/pub/png/libpng.html; Debian's
// libpng-dev). The only file that calls `CPNG`: the simplified API recovers from libpng's
// longjmp errors inside the library and reports them in `png_image.message`, so no C shim is
// needed. Buffers are borrowed only for the length of each call.
internal import CPNG

/// Decodes a PNG (any colour type, bit depth 1–16, interlaced or not) into a grey (1 channel) or
/// RGB (3 channels) image.
///
/// Grey and grey+alpha files give one channel; RGB, RGBA and palette files give three. Files with
/// 8 or fewer bits per sample give `value / 255` (low bit depths are scaled up by libpng), 16-bit
/// files `value / 65535` — exactly, for files without colour-space chunks. libpng's simplified
/// API applies the file's colour space: an 8-bit file whose `gAMA` chunk is not sRGB is converted
/// to sRGB encoding, and a 16-bit file is read as linear light (the default when it has no
/// `gAMA`/`sRGB` chunk, so its values are unchanged). An alpha channel is removed by compositing
/// onto black.
///
/// - Parameters:
///   - bytes: the whole file.
///   - path: the file's path, used only in error descriptions.
/// - Returns: `pixels` `[C, H, W]`, C = 1 or 3.
/// - Throws: `ImageDecodingError.emptyFile`, `.invalidPNG` (libpng's message, e.g. a bad signature,
///   a CRC error, or truncated data), `.imageTooLarge`.
public func decodePNG(_ bytes: [UInt8], path: String) throws(ImageDecodingError) -> FaceImage {
    guard !bytes.isEmpty else { throw .emptyFile(path: path) }
    // libpng reads from `bytes` until png_image_finish_read returns, so both calls run inside
    // one borrow of the buffer.
    let result: Result<FaceImage, ImageDecodingError> = bytes.withUnsafeBufferPointer { buffer in
        var image = png_image()
        image.version = UInt32(PNG_IMAGE_VERSION)
        guard png_image_begin_read_from_memory(&image, buffer.baseAddress, buffer.count) != 0 else {
            return .failure(.invalidPNG(path: path, reason: message(of: &image)))
        }
        let width = Int(image.width), height = Int(image.height)
        guard width >= 1, height >= 1, width * height <= maximumImagePixelCount else {
            png_image_free(&image)
            return .failure(.imageTooLarge(path: path, width: width, height: height))
        }
        let linear = image.format & UInt32(PNG_FORMAT_FLAG_LINEAR) != 0  // a 16-bit file
        let color = image.format & UInt32(PNG_FORMAT_FLAG_COLOR) != 0
        let channels = color ? 3 : 1
        image.format = (linear ? UInt32(PNG_FORMAT_FLAG_LINEAR) : 0) | (color ? UInt32(PNG_FORMAT_FLAG_COLOR) : 0)
        let rowStride = Int32(width * channels)  // in components
        var background = png_color(red: 0, green: 0, blue: 0)
        if linear {
            var samples = [UInt16](repeating: 0, count: width * height * channels)  // [H, W, C]
            let finished = samples.withUnsafeMutableBytes { output in
                png_image_finish_read(&image, &background, output.baseAddress, rowStride, nil)
            }
            guard finished != 0 else { return .failure(.invalidPNG(path: path, reason: message(of: &image))) }
            return .success(planarImage(interleaved: samples, width: width, height: height, channels: channels, scale: 65_535))
        } else {
            var samples = [UInt8](repeating: 0, count: width * height * channels)  // [H, W, C]
            let finished = samples.withUnsafeMutableBytes { output in
                png_image_finish_read(&image, &background, output.baseAddress, rowStride, nil)
            }
            guard finished != 0 else { return .failure(.invalidPNG(path: path, reason: message(of: &image))) }
            return .success(planarImage(interleaved: samples, width: width, height: height, channels: channels, scale: 255))
        }
    }
    return try result.get()
}

/// Encodes a grey or RGB image as a PNG, each sample stored as `round(clamp(x, 0, 1) · maxval)`
/// with maxval = 255 (`bitDepth` 8) or 65535 (`bitDepth` 16; written as linear data with a
/// `gAMA` of 1, which `decodePNG` reads back unchanged).
///
/// - Throws: `ImageEncodingError.codecFailure` with libpng's message.
/// - Precondition: `bitDepth` is 8 or 16; every sample is finite.
public func encodePNG(_ image: FaceImage, bitDepth: Int = 8) throws(ImageEncodingError) -> [UInt8] {
    precondition(bitDepth == 8 || bitDepth == 16, "encodePNG: bitDepth must be 8 or 16, got \(bitDepth)")
    var info = png_image()
    info.version = UInt32(PNG_IMAGE_VERSION)
    info.width = UInt32(image.width)
    info.height = UInt32(image.height)
    info.format = (bitDepth == 16 ? UInt32(PNG_FORMAT_FLAG_LINEAR) : 0)
        | (image.channels == 3 ? UInt32(PNG_FORMAT_FLAG_COLOR) : 0)
    let rowStride = Int32(image.width * image.channels)
    let values = interleavedBytes(image, maxValue: bitDepth == 16 ? 65_535 : 255)  // [H, W, C]

    // Two passes: the first asks for the size, the second writes. `nil` output: success.
    func write(_ samples: UnsafeRawBufferPointer) -> [UInt8]? {
        var size = 0
        guard png_image_write_to_memory(&info, nil, &size, 0, samples.baseAddress, rowStride, nil) != 0 else {
            return nil
        }
        var output = [UInt8](repeating: 0, count: size)
        let written = output.withUnsafeMutableBytes { buffer in
            png_image_write_to_memory(&info, buffer.baseAddress, &size, 0, samples.baseAddress, rowStride, nil)
        }
        return written != 0 ? Array(output.prefix(size)) : nil
    }
    let encoded = bitDepth == 16
        ? values.map { UInt16($0) }.withUnsafeBytes(write)
        : values.map { UInt8($0) }.withUnsafeBytes(write)
    guard let encoded else { throw .codecFailure(format: "PNG", message: message(of: &info)) }
    return encoded
}

/// libpng's message in `image` (a NUL-terminated `char[64]`).
private func message(of image: inout png_image) -> String {
    let text = withUnsafeBytes(of: &image.message) { raw in
        String(decoding: raw.prefix { $0 != 0 }, as: UTF8.self)
    }
    return text.isEmpty ? "unknown libpng error" : text
}
