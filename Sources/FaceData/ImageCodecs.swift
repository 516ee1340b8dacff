// Format detection and the pixel layout conversions shared by the codec wrappers.
//
// Legend: C channels (1 or 3), H rows, W columns. Codecs deliver interleaved `[H, W, C]` samples;
// `FaceImage` stores planar `[C, H, W]` floats in [0, 1].

/// An image file format recognized by its first bytes.
public enum ImageFormat: String, Sendable, Equatable, CaseIterable {
    /// Binary or plain PGM (`P5`, `P2`).
    case pgm
    /// JPEG (starts with `FF D8 FF`).
    case jpeg
    /// PNG (the 8-byte signature `89 50 4E 47 0D 0A 1A 0A`).
    case png

    /// The format whose signature `bytes` starts with, or nil.
    public init?(signature bytes: some Collection<UInt8>) {
        let head = Array(bytes.prefix(8))
        if head.starts(with: [0xFF, 0xD8, 0xFF]) {
            self = .jpeg
        } else if head.starts(with: [0x89, 0x50, 0x4E, 0x47, 0x0D, 0x0A, 0x1A, 0x0A]) {
            self = .png
        } else if head.count >= 2, head[0] == UInt8(ascii: "P"), head[1] == UInt8(ascii: "5") || head[1] == UInt8(ascii: "2") {
            self = .pgm
        } else {
            return nil
        }
    }

    /// The file name extensions (lower case) the folder loader accepts for each format.
    public static let fileExtensions: Set<String> = ["pgm", "jpg", "jpeg", "png"]
}

/// Decodes a PGM, JPEG or PNG image, recognized by its content (not its name).
///
/// - Parameters:
///   - bytes: the whole file.
///   - path: the file's path, used only in error descriptions.
/// - Returns: 1 channel (PGM, grey JPEG/PNG) or 3 (colour JPEG/PNG), `pixels` `[C, H, W]` in [0, 1].
/// - Throws: `ImageDecodingError.emptyFile`, `.unsupportedFormat`, or an error of `decodePGM`,
///   `decodeJPEG` or `decodePNG`.
public func decodeImage(_ bytes: [UInt8], path: String) throws(ImageDecodingError) -> FaceImage {
    guard !bytes.isEmpty else { throw .emptyFile(path: path) }
    switch ImageFormat(signature: bytes) {
    case .pgm: return try decodePGM(bytes, path: path)
    case .jpeg: return try decodeJPEG(bytes, path: path)
    case .png: return try decodePNG(bytes, path: path)
    case nil: throw .unsupportedFormat(path: path, found: Array(bytes.prefix(8)))
    }
}

/// Reads and decodes the image file at `path` (see `decodeImage(_:path:)`).
///
/// The content decides the decoder. Content of no known format is handed to the decoder its
/// name's extension (`.pgm`, `.jpg`/`.jpeg`, `.png`) suggests, whose error then says what is
/// wrong (e.g. `.wrongMagic` for a `.pgm` file); other names give `.unsupportedFormat`.
///
/// - Throws: `ImageDecodingError.unreadableFile` and any error of `decodeImage(_:path:)`.
public func loadImage(path: String) throws(ImageDecodingError) -> FaceImage {
    let bytes = try readFileBytes(path: path)
    if !bytes.isEmpty && ImageFormat(signature: bytes) == nil {
        switch fileExtension(path) {
        case "pgm": return try decodePGM(bytes, path: path)
        case "jpg", "jpeg": return try decodeJPEG(bytes, path: path)
        case "png": return try decodePNG(bytes, path: path)
        default: break
        }
    }
    return try decodeImage(bytes, path: path)
}

/// The lower-cased extension of the last path component (`""` if none).
func fileExtension(_ path: String) -> String {
    let name = path.split(separator: "/").last.map(String.init) ?? path
    guard let dot = name.lastIndex(of: "."), dot != name.startIndex else { return "" }
    return name[name.index(after: dot)...].lowercased()
}

/// Why an image could not be encoded (the codec libraries fail only when out of memory).
public enum ImageEncodingError: Error, CustomStringConvertible, Equatable, Sendable {
    /// The codec library reported a failure; `message` is its text.
    case codecFailure(format: String, message: String)

    public var description: String {
        switch self {
        case .codecFailure(let format, let message): return "cannot encode \(format): \(message)"
        }
    }
}

/// Interleaved `[H, W, C]` samples → planar `[C, H, W]` floats `value / scale`.
func planarImage<Sample: BinaryInteger>(interleaved: [Sample], width: Int, height: Int, channels: Int,
                                        scale: Float) -> FaceImage {
    let plane = width * height
    var pixels = [Float](repeating: 0, count: plane * channels)
    for c in 0..<channels {
        for i in 0..<plane { pixels[c * plane + i] = Float(interleaved[i * channels + c]) / scale }
    }
    return FaceImage(width: width, height: height, channels: channels, pixels: pixels)
}

/// Planar `[C, H, W]` floats → interleaved `[H, W, C]` integers `round(clamp(x, 0, 1) · maxValue)`.
func interleavedBytes(_ image: FaceImage, maxValue: Int) -> [Int] {
    let plane = image.width * image.height, channels = image.channels
    var samples = [Int](repeating: 0, count: plane * channels)
    let scale = Float(maxValue)
    for c in 0..<channels {
        for i in 0..<plane {
            let x = image.pixels[c * plane + i]
            precondition(x.isFinite, "encode: sample \(c * plane + i) is \(x)")
            samples[i * channels + c] = Int((min(max(x, 0), 1) * scale).rounded())
        }
    }
    return samples
}
