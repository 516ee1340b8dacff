// PGM (portable graymap) decoding and encoding, following the netpbm specification
// (https://netpbm.sourceforge.net/doc/pgm.html).
#if canImport(FoundationEssentials)
import FoundationEssentials
#else
import Foundation
#endif
import Foundation  // FileHandle (readFileBytes)

/// The largest width or height `decodePGM` accepts (2²⁴ pixels), which keeps
/// `width · height · 2` far from overflow.
public let pgmMaximumDimension = 1 << 24

/// Decodes a PGM image: binary `P5` (8-bit samples, or 16-bit big-endian samples when
/// maxval > 255) or plain `P2` (ASCII decimal samples).
///
/// Header rules (netpbm): the magic number, then width, height and maxval as decimal integers
/// separated by any whitespace (space, tab, CR, LF, VT, FF); a `#` anywhere in the header starts a
/// comment that runs to the next CR or LF. In `P5` exactly one whitespace byte follows maxval
/// (a comment there ends with the newline that serves as that byte), then the raster starts. Bytes
/// after the raster are ignored (netpbm allows several images per file; the first one is decoded).
/// In `P2` the samples are whitespace-separated decimal integers (comments allowed between them).
///
/// Each sample becomes `Float(value) / Float(maxval)` (correctly rounded), so pixels lie in [0, 1].
///
/// - Parameters:
///   - bytes: the whole file.
///   - path: the file's path, used only in error descriptions.
/// - Returns: the image, `pixels` `[H, W]` row-major.
/// - Throws: `ImageDecodingError`: `.emptyFile`, `.wrongMagic`, `.badHeaderToken`,
///   `.maxValueOutOfRange`, `.truncatedPixelData` (P5), `.truncatedSamples` and `.badSampleToken`
///   (P2), `.sampleExceedsMaxValue`.
public func decodePGM(_ bytes: [UInt8], path: String) throws(ImageDecodingError) -> FaceImage {
    guard !bytes.isEmpty else { throw .emptyFile(path: path) }
    guard bytes.count >= 2, bytes[0] == UInt8(ascii: "P"),
          bytes[1] == UInt8(ascii: "5") || bytes[1] == UInt8(ascii: "2") else {
        throw .wrongMagic(path: path, found: Array(bytes.prefix(2)))
    }
    let isPlain = bytes[1] == UInt8(ascii: "2")
    var reader = PGMTokenReader(bytes: bytes, position: 2)

    func headerInteger(_ field: String, in range: ClosedRange<Int>) throws(ImageDecodingError) -> Int {
        let token = reader.nextToken()
        guard let value = decimalValue(bytes, token), range.contains(value) else {
            throw .badHeaderToken(path: path, field: field, found: tokenText(bytes, token))
        }
        return value
    }
    let width = try headerInteger("width", in: 1...pgmMaximumDimension)
    let height = try headerInteger("height", in: 1...pgmMaximumDimension)
    let maxToken = reader.nextToken()
    guard let maxValue = decimalValue(bytes, maxToken) else {
        throw .badHeaderToken(path: path, field: "maxval", found: tokenText(bytes, maxToken))
    }
    guard (1...65_535).contains(maxValue) else { throw .maxValueOutOfRange(path: path, found: maxValue) }

    let count = width * height  // ≤ 2⁴⁸: no overflow
    let denominator = Float(maxValue)
    // Check the file can hold `count` samples before allocating them: a corrupt header must not
    // ask for terabytes. P2 needs at least 2 bytes per sample (digit + separator); P5 is checked
    // exactly below, before its allocation.
    if isPlain && count > bytes.count / 2 + 1 {
        var probe = reader
        var found = 0
        while !probe.nextToken().isEmpty { found += 1 }
        throw .truncatedSamples(path: path, expected: count, found: found)
    }
    var pixels = [Float](repeating: 0, count: isPlain ? count : 0)

    if isPlain {
        for index in 0..<count {
            let token = reader.nextToken()
            guard !token.isEmpty else { throw .truncatedSamples(path: path, expected: count, found: index) }
            guard let value = decimalValue(bytes, token) else {
                throw .badSampleToken(path: path, sampleIndex: index, found: tokenText(bytes, token))
            }
            guard value <= maxValue else {
                throw .sampleExceedsMaxValue(path: path, sampleIndex: index, value: value, maxValue: maxValue)
            }
            pixels[index] = Float(value) / denominator
        }
        return FaceImage(width: width, height: height, pixels: pixels)
    }

    // P5: exactly one whitespace byte after maxval. The token reader stopped at a whitespace
    // byte, at a `#`, or at the end of the file.
    let rasterStart = reader.positionAfterRasterDelimiter()
    let bytesPerSample = maxValue > 255 ? 2 : 1
    let expectedBytes = count * bytesPerSample
    let availableBytes = max(bytes.count - rasterStart, 0)
    guard availableBytes >= expectedBytes else {
        throw .truncatedPixelData(path: path, expectedBytes: expectedBytes, availableBytes: availableBytes)
    }
    pixels = [Float](repeating: 0, count: count)
    let raster = bytes.span.extracting(rasterStart..<(rasterStart + expectedBytes))
    if bytesPerSample == 1 {
        if maxValue < 255 {
            for index in 0..<count where Int(raster[index]) > maxValue {
                throw .sampleExceedsMaxValue(path: path, sampleIndex: index, value: Int(raster[index]),
                                             maxValue: maxValue)
            }
        }
        for index in 0..<count { pixels[index] = Float(raster[index]) / denominator }
    } else {
        for index in 0..<count {
            let value = Int(raster[2 * index]) << 8 | Int(raster[2 * index + 1])  // big-endian
            guard value <= maxValue else {
                throw .sampleExceedsMaxValue(path: path, sampleIndex: index, value: value, maxValue: maxValue)
            }
            pixels[index] = Float(value) / denominator
        }
    }
    return FaceImage(width: width, height: height, pixels: pixels)
}

/// Reads and decodes the PGM file at `path` (see `decodePGM(_:path:)`).
///
/// - Throws: `ImageDecodingError.unreadableFile` when the file is missing, a directory or cannot
///   be read, and any error of `decodePGM(_:path:)`.
public func loadPGM(path: String) throws(ImageDecodingError) -> FaceImage {
    try decodePGM(readFileBytes(path: path), path: path)
}

/// Encodes `image` as a binary PGM (`P5`): header `P5\n<W> <H>\n<maxval>\n`, then each pixel as
/// `round(clamp(x, 0, 1) · maxValue)`, one byte per sample when `maxValue ≤ 255`, otherwise two
/// bytes big-endian.
///
/// - Parameter maxValue: the maximum sample value, 1...65535.
/// - Precondition: `maxValue` in 1...65535 and every pixel is finite.
public func encodePGM(_ image: FaceImage, maxValue: Int = 255) -> [UInt8] {
    precondition((1...65_535).contains(maxValue), "encodePGM: maxValue must be in 1...65535, got \(maxValue)")
    var bytes = Array("P5\n\(image.width) \(image.height)\n\(maxValue)\n".utf8)
    let bytesPerSample = maxValue > 255 ? 2 : 1
    bytes.reserveCapacity(bytes.count + image.pixels.count * bytesPerSample)
    let scale = Float(maxValue)
    for (index, pixel) in image.pixels.enumerated() {
        precondition(pixel.isFinite, "encodePGM: pixel \(index) is \(pixel)")
        let value = Int((min(max(pixel, 0), 1) * scale).rounded())
        if bytesPerSample == 2 { bytes.append(UInt8(value >> 8)) }
        bytes.append(UInt8(value & 0xFF))
    }
    return bytes
}

/// The contents of the file at `path`, which must be a regular file once symbolic links are
/// resolved: a FIFO would block the read forever (and a device could be endless), so anything
/// else is refused before it is opened.
///
/// - Throws: `ImageDecodingError.unreadableFile` with the reason (`"not a regular file (a FIFO)"`,
///   `"no such file"`, `"permission denied"`, …).
func readFileBytes(path: String) throws(ImageDecodingError) -> [UInt8] {
    let fileManager = FileManager.default
    guard fileManager.fileExists(atPath: path) else {
        throw .unreadableFile(path: path, reason: "no such file")
    }
    let resolved = URL(fileURLWithPath: path).resolvingSymlinksInPath().path
    let type = (try? fileManager.attributesOfItem(atPath: resolved))?[.type] as? FileAttributeType
    guard type == .typeRegular else {
        let kind = switch type {
        case .typeDirectory?: "a directory"
        case .typeCharacterSpecial?: "a character device"
        case .typeBlockSpecial?: "a block device"
        case .typeSocket?: "a socket"
        case .typeSymbolicLink?: "a symbolic link that cannot be resolved"
        case nil: "of unknown type"
        default: "a FIFO or another special file"
        }
        throw .unreadableFile(path: path, reason: "not a regular file (\(kind))")
    }
    guard fileManager.isReadableFile(atPath: path) else {
        throw .unreadableFile(path: path, reason: "permission denied")
    }
    do {
        // FoundationEssentials (Swift 6.3, Linux) leaks a 4 KiB buffer in `Data(contentsOf:)` for
        // a file whose size reads as 0 (found by the RecordIO fuzzer with an empty `.idx`): such
        // files (empty, or /proc-like) are read through a FileHandle instead.
        let size = (try? fileManager.attributesOfItem(atPath: path)[.size] as? Int) ?? nil
        if size == 0 {
            guard let handle = FileHandle(forReadingAtPath: path) else {
                throw ImageDecodingError.unreadableFile(path: path, reason: "cannot open")
            }
            defer { try? handle.close() }
            return [UInt8](try handle.readToEnd() ?? Data())
        }
        return [UInt8](try Data(contentsOf: URL(fileURLWithPath: path)))
    } catch let error as ImageDecodingError {
        throw error
    } catch {
        throw .unreadableFile(path: path, reason: "\(error)")
    }
}

// MARK: - Tokens

/// Splits a netpbm header (and a plain raster) into tokens: runs of bytes that are neither
/// whitespace nor `#`, skipping whitespace and `#` comments (to the next CR or LF) between them.
struct PGMTokenReader {
    let bytes: [UInt8]
    var position: Int

    /// The next token's byte range (empty at the end of the file); `position` ends on the byte
    /// after the token (a whitespace byte, a `#`, or the end).
    mutating func nextToken() -> Range<Int> {
        while position < bytes.count {
            let byte = bytes[position]
            if isPGMWhitespace(byte) {
                position += 1
            } else if byte == UInt8(ascii: "#") {
                skipComment()
            } else {
                break
            }
        }
        let start = position
        while position < bytes.count, !isPGMWhitespace(bytes[position]), bytes[position] != UInt8(ascii: "#") {
            position += 1
        }
        return start..<position
    }

    /// Where the P5 raster starts, given that `position` is just after the maxval token: one byte
    /// past the single whitespace byte, or, when a comment follows maxval, one byte past the CR/LF
    /// that ends it (netpbm's `pm_getc` returns that newline as the delimiter).
    mutating func positionAfterRasterDelimiter() -> Int {
        if position < bytes.count, bytes[position] == UInt8(ascii: "#") { skipComment() }
        return position + 1
    }

    /// Advances from a `#` to the CR or LF that ends the comment (or the end of the file).
    private mutating func skipComment() {
        while position < bytes.count, bytes[position] != UInt8(ascii: "\n"), bytes[position] != UInt8(ascii: "\r") {
            position += 1
        }
    }
}

/// Whitespace as netpbm (C `isspace`) defines it: space, TAB, LF, VT, FF, CR.
@inline(__always)
func isPGMWhitespace(_ byte: UInt8) -> Bool {
    byte == 0x20 || (0x09...0x0D).contains(byte)
}

/// The value of a token of 1 to 9 decimal digits, or nil (empty, non-digits, too long).
func decimalValue(_ bytes: [UInt8], _ token: Range<Int>) -> Int? {
    guard !token.isEmpty, token.count <= 9 else { return nil }
    var value = 0
    for index in token {
        let digit = Int(bytes[index]) - 0x30
        guard digit >= 0 && digit <= 9 else { return nil }
        value = value * 10 + digit
    }
    return value
}

/// A token for an error message: at most 24 bytes, non-printable bytes escaped.
func tokenText(_ bytes: [UInt8], _ token: Range<Int>) -> String {
    let shown = token.prefix(24)
    return printable(bytes[shown]) + (token.count > shown.count ? "…" : "")
}
