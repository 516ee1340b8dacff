/// Why an image file could not be decoded. Every case carries the file's path, and the
/// `description` names the file, says what was expected and what was found.
public enum ImageDecodingError: Error, CustomStringConvertible, Equatable, Sendable {
    /// The file could not be read (missing, a directory, no permission, I/O error).
    case unreadableFile(path: String, reason: String)
    /// The file has zero bytes.
    case emptyFile(path: String)
    /// The file does not start with `P5` (binary PGM) or `P2` (plain PGM); `found` holds its
    /// first bytes (at most 2).
    case wrongMagic(path: String, found: [UInt8])
    /// A header field (`"width"`, `"height"` or `"maxval"`) is not a decimal integer (width and
    /// height: in 1...16_777_216), or the header ends early; `found` is the offending token
    /// (empty at end of file, at most 24 bytes shown).
    case badHeaderToken(path: String, field: String, found: String)
    /// The maximum sample value is outside 1...65535 (netpbm's range).
    case maxValueOutOfRange(path: String, found: Int)
    /// A binary (P5) raster has fewer bytes than `width · height · bytesPerSample`.
    case truncatedPixelData(path: String, expectedBytes: Int, availableBytes: Int)
    /// A plain (P2) raster has fewer sample tokens than `width · height`.
    case truncatedSamples(path: String, expected: Int, found: Int)
    /// A plain (P2) raster token is not a decimal integer; `sampleIndex` is row-major.
    case badSampleToken(path: String, sampleIndex: Int, found: String)
    /// A sample is larger than the header's maxval; `sampleIndex` is row-major.
    case sampleExceedsMaxValue(path: String, sampleIndex: Int, value: Int, maxValue: Int)
    /// The content is none of the supported formats (PGM, JPEG, PNG); `found` holds its first
    /// bytes (at most 8).
    case unsupportedFormat(path: String, found: [UInt8])
    /// libjpeg-turbo rejected the JPEG data (corrupt, truncated, not a JPEG); `reason` is its message.
    case invalidJPEG(path: String, reason: String)
    /// libpng rejected the PNG data (bad signature, CRC error, truncated); `reason` is its message.
    case invalidPNG(path: String, reason: String)
    /// A JPEG in a colour space other than grey, YCbCr or RGB (`"CMYK"`, `"YCCK"`).
    case unsupportedColorSpace(path: String, colorSpace: String)
    /// The header declares more than `maximumImagePixelCount` pixels (or a zero size).
    case imageTooLarge(path: String, width: Int, height: Int)

    /// The path of the file the error is about.
    public var path: String {
        switch self {
        case .unreadableFile(let path, _), .emptyFile(let path), .wrongMagic(let path, _),
             .badHeaderToken(let path, _, _), .maxValueOutOfRange(let path, _),
             .truncatedPixelData(let path, _, _),
             .truncatedSamples(let path, _, _), .badSampleToken(let path, _, _),
             .sampleExceedsMaxValue(let path, _, _, _), .unsupportedFormat(let path, _),
             .invalidJPEG(let path, _), .invalidPNG(let path, _), .unsupportedColorSpace(let path, _),
             .imageTooLarge(let path, _, _):
            return path
        }
    }

    /// What is wrong, without the path (`description` is `"<path>: <reason>"`), for lists
    /// that already name the file (e.g. `skipped-images.txt`).
    public var reason: String {
        let text = description, prefix = path + ": "
        return text.hasPrefix(prefix) ? String(text.dropFirst(prefix.count)) : text
    }

    public var description: String {
        switch self {
        case .unreadableFile(let path, let reason):
            return "\(path): cannot read file: \(reason)"
        case .emptyFile(let path):
            let expected = switch fileExtension(path) {
            case "pgm": "a PGM image"
            case "jpg", "jpeg": "a JPEG image"
            case "png": "a PNG image"
            default: "a PGM, JPEG or PNG image"
            }
            return "\(path): file is empty (0 bytes); expected \(expected)"
        case .wrongMagic(let path, let found):
            let hint: String
            switch found {
            case Array("P1".utf8), Array("P4".utf8): hint = " (a PBM bitmap; convert it to PGM)"
            case Array("P3".utf8), Array("P6".utf8): hint = " (a PPM colour image; convert it to grayscale PGM)"
            case [0xFF, 0xD8]: hint = " (looks like JPEG; only PGM is supported)"
            case [0x89, 0x50]: hint = " (looks like PNG; only PGM is supported)"
            default: hint = ""
            }
            return "\(path): not a PGM file: expected magic \"P5\" or \"P2\", found \(quoted(found))\(hint)"
        case .badHeaderToken(let path, let field, let found):
            let what = found.isEmpty ? "end of file" : "\"\(found)\""
            let range = field == "maxval" ? "1...65535" : "1...\(pgmMaximumDimension)"
            return "\(path): bad PGM header: \(field) must be a decimal integer in \(range), found \(what)"
        case .maxValueOutOfRange(let path, let found):
            return "\(path): bad PGM header: maxval must be in 1...65535, found \(found)"
        case .truncatedPixelData(let path, let expected, let available):
            return "\(path): truncated PGM raster: expected \(expected) bytes of pixel data, found \(available)"
        case .truncatedSamples(let path, let expected, let found):
            return "\(path): truncated plain PGM raster: expected \(expected) samples, found \(found)"
        case .badSampleToken(let path, let index, let found):
            return "\(path): bad plain PGM sample #\(index): expected a decimal integer, found \"\(found)\""
        case .sampleExceedsMaxValue(let path, let index, let value, let maxValue):
            return "\(path): PGM sample #\(index) is \(value), larger than maxval \(maxValue)"
        case .unsupportedFormat(let path, let found):
            return "\(path): not a PGM, JPEG or PNG image: the file starts with \(quoted(found))"
        case .invalidJPEG(let path, let reason):
            return "\(path): bad JPEG: \(reason)"
        case .invalidPNG(let path, let reason):
            return "\(path): bad PNG: \(reason)"
        case .unsupportedColorSpace(let path, let colorSpace):
            return "\(path): JPEG in the \(colorSpace) colour space; only grey and RGB (YCbCr) JPEGs are supported, convert it to RGB"
        case .imageTooLarge(let path, let width, let height):
            return "\(path): image of \(width)×\(height) pixels is empty or larger than \(maximumImagePixelCount) pixels"
        }
    }
}

/// Bytes shown as a quoted string, non-printable bytes as `\xNN` (e.g. `"\x89P"`).
func quoted(_ bytes: [UInt8]) -> String {
    "\"" + printable(bytes) + "\""
}

/// Bytes as text, printable ASCII kept and everything else as `\xNN`.
func printable(_ bytes: some Sequence<UInt8>) -> String {
    var text = ""
    for byte in bytes {
        if byte >= 0x20 && byte < 0x7F && byte != UInt8(ascii: "\\") && byte != UInt8(ascii: "\"") {
            text.unicodeScalars.append(Unicode.Scalar(byte))
        } else {
            let hex = String(byte, radix: 16, uppercase: true)
            text += "\\x" + (hex.count == 1 ? "0" + hex : hex)
        }
    }
    return text
}
