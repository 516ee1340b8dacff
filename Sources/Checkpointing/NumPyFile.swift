import Foundation
import TensorCore

/// Reading and writing NumPy's `.npy` format for little-endian float32 arrays, the format
/// `numpy.save` writes and `numpy.load` reads
/// (https://numpy.org/doc/stable/reference/generated/numpy.lib.format.html).
///
/// Layout of a version 1.0 file, as written here:
/// ```
/// bytes 0–5   magic "\x93NUMPY"
/// bytes 6–7   version 1, 0
/// bytes 8–9   header length L, little-endian UInt16
/// bytes 10…   header: the ASCII Python dict literal
///             {'descr': '<f4', 'fortran_order': False, 'shape': (N, D), }
///             padded with spaces and ended by '\n' so that 10 + L is a multiple of 64
/// then        the elements, row-major (C order), 4 bytes each, little-endian
/// ```
/// `read`/`decode` accept versions 1.0, 2.0 and 3.0 (4-byte header length) and any key order
/// and spacing in the header, but only `'<f4'` data in C order; anything else is a typed
/// `NumPyFileError`, never a silent reinterpretation.
public enum NumPyFile {
    /// The 6 magic bytes every `.npy` file starts with.
    package static let magic: [UInt8] = [0x93] + Array("NUMPY".utf8)

    /// The version 1.0 file bytes of `tensor` (any rank, including 0), `'<f4'`, C order.
    public static func encode(_ tensor: Tensor) -> Data {
        let shape: String
        switch tensor.shape.count {
        case 0: shape = "()"
        case 1: shape = "(\(tensor.shape[0]),)"
        default: shape = "(" + tensor.shape.map(String.init).joined(separator: ", ") + ")"
        }
        var header = Array("{'descr': '<f4', 'fortran_order': False, 'shape': \(shape), }".utf8)
        // Pad with spaces so that preamble (10 bytes) + header + '\n' is a multiple of 64.
        let unpadded = 10 + header.count + 1
        header += [UInt8](repeating: 0x20, count: (64 - unpadded % 64) % 64)
        header.append(0x0A)
        precondition(header.count <= Int(UInt16.max), "NumPyFile: header of \(header.count) bytes for shape \(tensor.shape)")
        var data = Data(magic + [1, 0, UInt8(header.count & 0xFF), UInt8(header.count >> 8)])
        data.append(contentsOf: header)
        data.append(contentsOf: littleEndianBytes(of: tensor.storage))
        return data
    }

    /// Writes `tensor` atomically (a temporary file in the same folder, renamed over `path`),
    /// so a failure leaves any previous file intact.
    public static func write(_ tensor: Tensor, to path: String) throws(NumPyFileError) {
        do { try encode(tensor).write(to: URL(fileURLWithPath: path), options: .atomic) }
        catch { throw .writeFailed(path: path, reason: error.localizedDescription) }
    }

    /// The array stored in `.npy` bytes.
    ///
    /// - Parameter path: the file's path, used only in error descriptions.
    /// - Returns: a tensor of the file's shape (`[]` for a 0-d array).
    /// - Throws: `NumPyFileError`: `.notNumPy` (wrong magic or shorter than the preamble),
    ///   `.unsupportedVersion`, `.malformedHeader`, `.unsupportedDataType`, `.fortranOrder`,
    ///   `.sizeMismatch` (truncated data or trailing bytes).
    public static func decode(_ data: Data, path: String) throws(NumPyFileError) -> Tensor {
        let bytes = [UInt8](data)
        guard bytes.count >= 10, Array(bytes[0..<6]) == magic else {
            throw .notNumPy(path: path, firstBytes: Array(bytes.prefix(6)))
        }
        let (major, minor) = (Int(bytes[6]), Int(bytes[7]))
        let headerStart: Int, headerLength: Int
        switch (major, minor) {
        case (1, 0):
            headerStart = 10
            headerLength = Int(bytes[8]) | Int(bytes[9]) << 8
        case (2, 0), (3, 0):
            guard bytes.count >= 12 else { throw .malformedHeader(path: path, reason: "file ends inside the header length") }
            headerStart = 12
            headerLength = (8..<12).reduce(0) { $0 | Int(bytes[$1]) << (8 * ($1 - 8)) }
        default:
            throw .unsupportedVersion(path: path, major: major, minor: minor)
        }
        guard headerStart + headerLength <= bytes.count else {
            throw .malformedHeader(path: path, reason: "header length \(headerLength) runs past the end of the \(bytes.count)-byte file")
        }
        guard let text = String(bytes: bytes[headerStart..<(headerStart + headerLength)], encoding: .utf8) else {
            throw .malformedHeader(path: path, reason: "header is not UTF-8 text")
        }
        let fields: [String: HeaderValue]
        var parser = HeaderParser(text: text)
        do { fields = try parser.dictionary() }
        catch { throw .malformedHeader(path: path, reason: error.reason) }
        guard case .string(let descr)? = fields["descr"] else {
            throw .malformedHeader(path: path, reason: "'descr' is missing or not a string")
        }
        guard case .boolean(let fortranOrder)? = fields["fortran_order"] else {
            throw .malformedHeader(path: path, reason: "'fortran_order' is missing or not True/False")
        }
        guard case .integers(let shape)? = fields["shape"], shape.allSatisfy({ $0 >= 0 }) else {
            throw .malformedHeader(path: path, reason: "'shape' is missing or not a tuple of non-negative integers")
        }
        if let extra = fields.keys.sorted().first(where: { !["descr", "fortran_order", "shape"].contains($0) }) {
            throw .malformedHeader(path: path, reason: "unexpected key '\(extra)'")
        }
        guard descr == "<f4" else { throw .unsupportedDataType(path: path, descr: descr) }
        let dataStart = headerStart + headerLength
        let available = bytes.count - dataStart
        let (count, overflow) = shape.reduce((1, false)) { acc, d in
            let (p, o) = acc.0.multipliedReportingOverflow(by: d); return (p, acc.1 || o)
        }
        guard !overflow, count <= Int.max / 4, count * 4 == available else {
            throw .sizeMismatch(path: path, shape: shape, expectedBytes: overflow ? Int.max : count * 4, foundBytes: available)
        }
        if fortranOrder && shape.filter({ $0 > 1 }).count > 1 { throw .fortranOrder(path: path) }
        return Tensor(shape: shape, storage: floats(fromLittleEndian: bytes, range: dataStart..<bytes.count))
    }

    /// Reads and decodes a `.npy` file.
    public static func read(path: String) throws(NumPyFileError) -> Tensor {
        let data: Data
        do { data = try Data(contentsOf: URL(fileURLWithPath: path)) }
        catch { throw .unreadable(path: path, reason: error.localizedDescription) }
        return try decode(data, path: path)
    }
}

/// A problem reading or writing a `.npy` file. Each case names the file.
public enum NumPyFileError: Error, CustomStringConvertible, Equatable, Sendable {
    /// The file could not be read (missing, a directory, no permission).
    case unreadable(path: String, reason: String)
    /// The file could not be written; any previous file is unchanged.
    case writeFailed(path: String, reason: String)
    /// The file does not start with `\x93NUMPY` (or is shorter than the 10-byte preamble).
    case notNumPy(path: String, firstBytes: [UInt8])
    /// A format version other than 1.0, 2.0 or 3.0.
    case unsupportedVersion(path: String, major: Int, minor: Int)
    /// The header dict is not the `{'descr': …, 'fortran_order': …, 'shape': (…)}` literal.
    case malformedHeader(path: String, reason: String)
    /// The element type is not little-endian float32 (`'<f4'`); e.g. `'<f8'` (float64).
    case unsupportedDataType(path: String, descr: String)
    /// The array is stored in Fortran (column-major) order.
    case fortranOrder(path: String)
    /// The data section's length does not match the shape (truncated file or trailing bytes).
    case sizeMismatch(path: String, shape: [Int], expectedBytes: Int, foundBytes: Int)

    public var description: String {
        switch self {
        case let .unreadable(path, reason): "cannot read \(path): \(reason)"
        case let .writeFailed(path, reason): "cannot write \(path): \(reason) (any previous file there is unchanged)"
        case let .notNumPy(path, firstBytes):
            "\(path) is not a .npy file: it starts with \(firstBytes.map { String(format: "%02x", $0) }.joined(separator: " ")), expected 93 4e 55 4d 50 59 (\\x93NUMPY)"
        case let .unsupportedVersion(path, major, minor): "\(path): .npy format version \(major).\(minor); versions 1.0, 2.0 and 3.0 are read"
        case let .malformedHeader(path, reason): "\(path): malformed .npy header: \(reason)"
        case let .unsupportedDataType(path, descr):
            "\(path): element type '\(descr)'; only little-endian float32 ('<f4') is read (hint: numpy.save(path, a.astype('<f4')))"
        case let .fortranOrder(path): "\(path): array is in Fortran order; save it with numpy.ascontiguousarray first"
        case let .sizeMismatch(path, shape, expected, found):
            "\(path): shape \(shape) needs \(expected) data bytes, the file has \(found) (truncated or trailing data)"
        }
    }
}

// MARK: - Header parsing

/// A value in a `.npy` header dict.
enum HeaderValue: Equatable {
    case string(String)
    case boolean(Bool)
    case integers([Int])
}

struct HeaderParseError: Error {
    var reason: String
}

/// A parser for the one Python literal a `.npy` header holds: a dict from string keys to
/// strings, `True`/`False` or tuples of integers. Nothing is evaluated.
struct HeaderParser {
    private let characters: [Character]
    private var position = 0

    init(text: String) { characters = Array(text) }

    mutating func dictionary() throws(HeaderParseError) -> [String: HeaderValue] {
        try expect("{")
        var result: [String: HeaderValue] = [:]
        while true {
            skipSpace()
            if peek() == "}" { position += 1; break }
            let key = try string()
            try expect(":")
            let value = try value()
            guard result[key] == nil else { throw HeaderParseError(reason: "key '\(key)' appears twice") }
            result[key] = value
            skipSpace()
            if peek() == "," { position += 1; continue }
            try expect("}")
            break
        }
        skipSpace()
        guard position == characters.count else {
            throw HeaderParseError(reason: "unexpected text after the dict at character \(position)")
        }
        return result
    }

    private mutating func value() throws(HeaderParseError) -> HeaderValue {
        skipSpace()
        switch peek() {
        case "'", "\"": return .string(try string())
        case "(": return .integers(try tuple())
        default:
            let word = identifier()
            switch word {
            case "True": return .boolean(true)
            case "False": return .boolean(false)
            default: throw HeaderParseError(reason: "unexpected value '\(word)' at character \(position)")
            }
        }
    }

    private mutating func tuple() throws(HeaderParseError) -> [Int] {
        try expect("(")
        var result: [Int] = []
        while true {
            skipSpace()
            if peek() == ")" { position += 1; return result }
            var digits = ""
            while let c = peek(), c.isASCII, c.isNumber { digits.append(c); position += 1 }
            if peek() == "L" { position += 1 }  // Python 2 long suffix
            guard let number = Int(digits) else {
                throw HeaderParseError(reason: "shape entry at character \(position) is not a non-negative integer")
            }
            result.append(number)
            skipSpace()
            if peek() == "," { position += 1; continue }
            try expect(")")
            return result
        }
    }

    private mutating func string() throws(HeaderParseError) -> String {
        skipSpace()
        guard let quote = peek(), quote == "'" || quote == "\"" else {
            throw HeaderParseError(reason: "expected a quoted string at character \(position)")
        }
        position += 1
        var result = ""
        while let c = peek(), c != quote {
            result.append(c)
            position += 1
        }
        try expect(quote)
        return result
    }

    private mutating func identifier() -> String {
        var result = ""
        while let c = peek(), c.isLetter || c == "_" { result.append(c); position += 1 }
        return result
    }

    private mutating func expect(_ character: Character) throws(HeaderParseError) {
        skipSpace()
        guard peek() == character else {
            throw HeaderParseError(reason: "expected '\(character)' at character \(position), found \(peek().map { "'\($0)'" } ?? "the end")")
        }
        position += 1
    }

    private mutating func skipSpace() {
        while let c = peek(), c.isWhitespace { position += 1 }
    }

    private func peek() -> Character? { position < characters.count ? characters[position] : nil }
}
