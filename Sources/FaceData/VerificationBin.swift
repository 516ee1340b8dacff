#if canImport(FoundationEssentials)
import FoundationEssentials
#else
import Foundation
#endif

/// An InsightFace verification set (`lfw.bin`, `cfp_fp.bin`, `agedb_30.bin`, …): `2P` encoded
/// images and `P` same-person flags; pair `i` is images `2i` and `2i + 1`.
///
/// The file is a Python pickle of the 2-tuple `(bins, issame_list)` written by insightface's
/// `lfw2pack.py` / `dataset2bin` scripts: `bins` a list of encoded images (`bytes`, or `str` when
/// written by Python 2), `issame_list` a list of `bool`. `read(path:)` accepts exactly that
/// structure (see `readPickle`), never executes pickle content, and keeps the images encoded;
/// `image(at:)` decodes one on demand (JPEG, PNG or PGM).
public struct VerificationBin: Sendable {
    /// The file the set was read from (used in error descriptions).
    public var path: String
    /// The encoded images, `[2P]`.
    public var encodedImages: [[UInt8]]
    /// Whether pair `i` (images `2i`, `2i + 1`) shows one person, `[P]`.
    public var isSame: [Bool]

    public init(path: String, encodedImages: [[UInt8]], isSame: [Bool]) {
        precondition(encodedImages.count == 2 * isSame.count,
                     "VerificationBin: \(encodedImages.count) images for \(isSame.count) pairs")
        self.path = path
        self.encodedImages = encodedImages
        self.isSame = isSame
    }

    /// The number of pairs `P`.
    public var pairCount: Int { isSame.count }

    /// Pair `i`'s image indices and flag: `(2i, 2i + 1, isSame[i])`, `[P]`.
    public var pairs: [(first: Int, second: Int, isSame: Bool)] {
        isSame.enumerated().map { (2 * $0.offset, 2 * $0.offset + 1, $0.element) }
    }

    /// Reads and parses the file at `path` (see `parse(_:path:)`).
    ///
    /// - Throws: `VerificationSetError.unreadableFile` and any error of `parse(_:path:)`.
    public static func read(path: String) throws(VerificationSetError) -> VerificationBin {
        let bytes: [UInt8]
        do { bytes = try readFileBytes(path: path) } catch {
            if case .unreadableFile(_, let reason) = error { throw .unreadableFile(path: path, reason: reason) }
            throw .unreadableFile(path: path, reason: error.description)
        }
        return try parse(bytes, path: path)
    }

    /// Parses the pickled `(list of bytes, list of bool)` in `bytes`.
    ///
    /// - Throws: `VerificationSetError`: `.truncated`, `.unsupportedOpcode`, `.unsupportedProtocol`,
    ///   `.unexpectedStructure` (a pickle of another shape; each with the byte offset), or
    ///   `.pairCountMismatch` (the image count is not twice the flag count).
    public static func parse(_ bytes: [UInt8], path: String) throws(VerificationSetError) -> VerificationBin {
        guard !bytes.isEmpty else { throw .truncated(path: path, offset: 0, needed: 1, available: 0) }
        let value = try readPickle(bytes, path: path)
        let end = bytes.count - 1  // the STOP opcode
        guard case .tuple(let parts) = value, parts.count == 2 else {
            throw .unexpectedStructure(path: path, offset: end, reason: "the pickle holds a \(value.kind), not a (images, issame) 2-tuple")
        }
        guard case .list(let imageValues) = parts[0], case .list(let flagValues) = parts[1] else {
            throw .unexpectedStructure(path: path, offset: end,
                                       reason: "the tuple holds (\(parts[0].kind), \(parts[1].kind)), not (list, list)")
        }
        var images: [[UInt8]] = []
        images.reserveCapacity(imageValues.count)
        for (index, item) in imageValues.enumerated() {
            guard case .bytes(let data) = item else {
                throw .unexpectedStructure(path: path, offset: end, reason: "image \(index) is a \(item.kind), not bytes")
            }
            images.append(data)
        }
        var flags: [Bool] = []
        flags.reserveCapacity(flagValues.count)
        for (index, item) in flagValues.enumerated() {
            guard case .bool(let flag) = item else {
                throw .unexpectedStructure(path: path, offset: end, reason: "issame \(index) is a \(item.kind), not bool")
            }
            flags.append(flag)
        }
        guard images.count == 2 * flags.count else {
            throw .pairCountMismatch(path: path, imageCount: images.count, pairCount: flags.count)
        }
        return VerificationBin(path: path, encodedImages: images, isSame: flags)
    }

    /// Decodes image `index` (`decodeImage`), named `<path>[index]` in errors.
    ///
    /// - Precondition: `index` in `0..<2P`.
    public func image(at index: Int) throws(ImageDecodingError) -> FaceImage {
        precondition(index >= 0 && index < encodedImages.count,
                     "VerificationBin: image \(index) outside 0..<\(encodedImages.count)")
        return try decodeImage(encodedImages[index], path: "\(path)[\(index)]")
    }
}

/// Why a verification set (`.bin`) or an LFW pairs list could not be read.
public enum VerificationSetError: Error, CustomStringConvertible, Equatable, Sendable {
    /// The file could not be read.
    case unreadableFile(path: String, reason: String)
    /// The data ends inside the opcode at `offset`: it needs `needed` more bytes, `available` remain.
    case truncated(path: String, offset: Int, needed: Int, available: Int)
    /// An opcode outside the accepted list (see `readPickle`) at byte `offset`.
    case unsupportedOpcode(path: String, offset: Int, opcode: UInt8)
    /// A pickle protocol other than 2–5.
    case unsupportedProtocol(path: String, offset: Int, version: Int)
    /// The opcodes are valid but build something other than `(list of bytes, list of bool)`.
    case unexpectedStructure(path: String, offset: Int, reason: String)
    /// The image list does not hold two images per flag.
    case pairCountMismatch(path: String, imageCount: Int, pairCount: Int)
    /// A line of an LFW `pairs.txt` is malformed (1-based `line`).
    case badPairsLine(path: String, line: Int, reason: String)
    /// An image a pair refers to is missing.
    case missingImage(path: String, line: Int, imagePath: String)

    public var description: String {
        let hint = " (expected a pickle of (list of encoded images, list of bools), as insightface's lfw2pack.py writes)"
        switch self {
        case .unreadableFile(let path, let reason):
            return "\(path): cannot read file: \(reason)"
        case .truncated(let path, let offset, let needed, let available):
            return "\(path): truncated pickle at byte \(offset): needs \(needed) more byte\(needed == 1 ? "" : "s"), \(available) left"
        case .unsupportedOpcode(let path, let offset, let opcode):
            let shown = opcode >= 0x20 && opcode < 0x7F ? " '\(Character(Unicode.Scalar(opcode)))'" : ""
            return "\(path): unsupported pickle opcode 0x\(String(opcode, radix: 16, uppercase: true))\(shown) at byte \(offset)" + hint
        case .unsupportedProtocol(let path, let offset, let version):
            return "\(path): pickle protocol \(version) at byte \(offset); only protocols 2–5 are read"
        case .unexpectedStructure(let path, let offset, let reason):
            return "\(path): unexpected pickle content at byte \(offset): \(reason)" + hint
        case .pairCountMismatch(let path, let imageCount, let pairCount):
            return "\(path): \(imageCount) images for \(pairCount) same-person flags; expected 2 images per flag"
        case .badPairsLine(let path, let line, let reason):
            return "\(path):\(line): \(reason)"
        case .missingImage(let path, let line, let imagePath):
            return "\(path):\(line): image \(imagePath) does not exist"
        }
    }
}
