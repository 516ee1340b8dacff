// The five-point landmark lists `arcface align` reads: a plain `path x1 y1 … x5 y5` list, and
// insightface's `.lst` layout with landmarks.
#if canImport(FoundationEssentials)
import FoundationEssentials
#else
import Foundation
#endif

/// The layout of a landmark file.
public enum LandmarkFileFormat: String, Sendable, Equatable, CaseIterable {
    /// One line per image: `path x1 y1 x2 y2 x3 y3 x4 y4 x5 y5` (11 fields). Fields are
    /// separated by tabs when the line has a tab (then the path may contain spaces), otherwise
    /// by runs of spaces.
    case plain
    /// insightface's `.lst` list (`face2rec2.py`, `face_preprocess.parse_lst_line`): 17
    /// tab-separated fields `aligned path label bx1 by1 bx2 by2 x1 x2 x3 x4 x5 y1 y2 y3 y4 y5`,
    /// the flag `aligned` (0 or 1) and the integer `label` first, then the bounding box (read,
    /// checked for numbers, not used), then the five x coordinates followed by the five y
    /// coordinates (insightface reshapes them as `(2, 5)` and transposes). Lines of 3 or 7
    /// fields (no landmarks) are an error.
    case insightfaceList = "lst"
}

/// One image of a landmark file and its five landmarks.
public struct LandmarkEntry: Sendable, Equatable {
    /// The image's path as written in the file (relative to the image folder, or absolute).
    public var path: String
    /// Left eye, right eye, nose tip, left and right mouth corner, pixels, `[5]`
    /// (see `ArcFaceTemplate`).
    public var landmarks: [SIMD2<Double>]
    /// The 1-based line of the file.
    public var line: Int

    public init(path: String, landmarks: [SIMD2<Double>], line: Int) {
        self.path = path
        self.landmarks = landmarks
        self.line = line
    }
}

/// Why a landmark file cannot be used. Each case names the file and, for a line, its 1-based
/// number.
public enum LandmarkFileError: Error, CustomStringConvertible, Equatable, Sendable {
    /// The file could not be read.
    case unreadableFile(path: String, reason: String)
    /// The file has no entry (only blank lines, or nothing).
    case noEntries(path: String)
    /// A line has the wrong number of fields for `format`.
    case wrongFieldCount(path: String, line: Int, format: LandmarkFileFormat, found: Int)
    /// An insightface `.lst` line without the ten landmark fields (3 or 7 fields).
    case missingLandmarks(path: String, line: Int, found: Int)
    /// A field that must be a finite number (a coordinate, a bounding-box value) or an integer
    /// (`aligned`, `label` of a `.lst` line) is not; `field` is 1-based.
    case badNumber(path: String, line: Int, field: Int, found: String)
    /// The five points are all (nearly) one point (or, in contrived layouts, the least-squares
    /// similarity onto the template has scale 0), so no transform maps them onto the template;
    /// `spread` is their root-mean-square distance from their mean, pixels.
    case degenerateLandmarks(path: String, line: Int, spread: Double)
    /// The image path is empty or has a `..` component (the aligned crop would be written
    /// outside the output folder).
    case badImagePath(path: String, line: Int, imagePath: String)
    /// The same image is listed twice.
    case duplicateImage(path: String, line: Int, firstLine: Int, imagePath: String)

    public var description: String {
        switch self {
        case .unreadableFile(let path, let reason):
            return "\(path): cannot read landmark file: \(reason)"
        case .noEntries(let path):
            return "\(path): no landmark lines (expected one line per image: path x1 y1 … x5 y5, or insightface .lst lines)"
        case .wrongFieldCount(let path, let line, let format, let found):
            let expected = switch format {
            case .plain: "11 fields: path x1 y1 x2 y2 x3 y3 x4 y4 x5 y5 (tab-separated if the path has spaces)"
            case .insightfaceList: "17 tab-separated fields: aligned path label bx1 by1 bx2 by2 x1…x5 y1…y5"
            }
            return "\(path):\(line): \(found) field\(found == 1 ? "" : "s"), expected \(expected)"
        case .missingLandmarks(let path, let line, let found):
            return "\(path):\(line): .lst line of \(found) fields has no landmarks (expected 17 fields: aligned path label bx1 by1 bx2 by2 x1…x5 y1…y5)"
        case .badNumber(let path, let line, let field, let found):
            return "\(path):\(line): field \(field) is not a finite number: \"\(found.prefix(40))\""
        case .degenerateLandmarks(let path, let line, let spread) where !spread.isFinite:
            return "\(path):\(line): the landmark coordinates are too large to align (their spread overflows a Double)"
        case .degenerateLandmarks(let path, let line, let spread):
            return "\(path):\(line): the five landmarks are all at one point (spread \(spread) pixels); no alignment is possible"
        case .badImagePath(let path, let line, let imagePath):
            return "\(path):\(line): image path \"\(imagePath)\" is empty or contains \"..\" (outputs must stay inside the output folder)"
        case .duplicateImage(let path, let line, let firstLine, let imagePath):
            return "\(path):\(line): \(imagePath) is already listed on line \(firstLine)"
        }
    }
}

/// A parsed landmark file: one entry per image, in file order.
public struct LandmarkFile: Sendable, Equatable {
    /// The file the entries were read from (used in error descriptions).
    public var path: String
    /// The layout the file was read as.
    public var format: LandmarkFileFormat
    /// The images and their landmarks, in file order, `[N]`.
    public var entries: [LandmarkEntry]

    /// Reads and parses the file at `path` (see `parse(_:path:format:)`).
    public static func read(path: String, format: LandmarkFileFormat? = nil) throws(LandmarkFileError) -> LandmarkFile {
        let bytes: [UInt8]
        do { bytes = try readFileBytes(path: path) } catch {
            if case .unreadableFile(_, let reason) = error { throw .unreadableFile(path: path, reason: reason) }
            throw .unreadableFile(path: path, reason: error.description)
        }
        return try parse(String(decoding: bytes, as: UTF8.self), path: path, format: format)
    }

    /// Parses landmark lines (ended by `\n` or `\r\n`; a leading UTF-8 byte-order mark, as
    /// Windows editors write, is dropped). Blank lines are skipped. Every line
    /// is checked: the field count, every number (finite), the path (not empty, no `..`), no
    /// image twice, and the five points (`SimilarityTransform.hasNoSpread` false, and a
    /// least-squares similarity onto the template exists).
    ///
    /// - Parameters:
    ///   - text: the file's contents.
    ///   - path: the file's path, used only in error descriptions.
    ///   - format: the layout, or nil to decide from the first non-blank line: 3, 7 or 17
    ///     tab-separated fields are `.insightfaceList`, anything else `.plain`.
    /// - Throws: `LandmarkFileError` naming the file and the line.
    public static func parse(_ text: String, path: String, format: LandmarkFileFormat? = nil)
        throws(LandmarkFileError) -> LandmarkFile
    {
        var entries: [LandmarkEntry] = []
        var firstLines: [String: Int] = [:]
        var resolvedFormat = format
        // A byte-order mark would otherwise become part of the first image path (invisible in
        // the "no such file" error that followed).
        let text = text.hasPrefix("\u{FEFF}") ? text.dropFirst() : Substring(text)
        for (index, rawLine) in text.split(omittingEmptySubsequences: false, whereSeparator: { $0 == "\n" || $0 == "\r\n" }).enumerated() {
            let line = rawLine.hasSuffix("\r") ? rawLine.dropLast() : rawLine
            guard line.contains(where: { !$0.isWhitespace }) else { continue }
            let number = index + 1
            let lineFormat = resolvedFormat ?? detectedFormat(of: line)
            resolvedFormat = lineFormat
            let entry = try parseLine(line, format: lineFormat, path: path, line: number)
            if let first = firstLines[entry.path] {
                throw .duplicateImage(path: path, line: number, firstLine: first, imagePath: entry.path)
            }
            firstLines[entry.path] = number
            entries.append(entry)
        }
        guard !entries.isEmpty else { throw .noEntries(path: path) }
        return LandmarkFile(path: path, format: resolvedFormat ?? .plain, entries: entries)
    }

    /// `text` without leading and trailing spaces and tabs.
    private static func trimmed(_ text: Substring) -> String {
        String(text.drop(while: { $0 == " " || $0 == "\t" }).reversed().drop(while: { $0 == " " || $0 == "\t" }).reversed())
    }

    private static func detectedFormat(of line: Substring) -> LandmarkFileFormat {
        let fields = line.split(separator: "\t", omittingEmptySubsequences: false)
        return [3, 7, 17].contains(fields.count) ? .insightfaceList : .plain
    }

    private static func parseLine(_ line: Substring, format: LandmarkFileFormat, path: String, line number: Int)
        throws(LandmarkFileError) -> LandmarkEntry
    {
        let fields: [Substring]
        let imagePath: String
        var coordinates: [Double] = []
        func value(_ field: Int) throws(LandmarkFileError) -> Double {
            let text = trimmed(fields[field])
            guard let value = Double(text), value.isFinite else {
                throw .badNumber(path: path, line: number, field: field + 1, found: String(fields[field]))
            }
            return value
        }
        switch format {
        case .plain:
            fields = line.contains("\t")
                ? line.split(separator: "\t", omittingEmptySubsequences: false)
                : line.split(separator: " ")
            guard fields.count == 11 else { throw .wrongFieldCount(path: path, line: number, format: format, found: fields.count) }
            imagePath = trimmed(fields[0])
            for field in 1...10 { coordinates.append(try value(field)) }
        case .insightfaceList:
            fields = line.split(separator: "\t", omittingEmptySubsequences: false)
            if fields.count == 3 || fields.count == 7 { throw .missingLandmarks(path: path, line: number, found: fields.count) }
            guard fields.count == 17 else { throw .wrongFieldCount(path: path, line: number, format: format, found: fields.count) }
            for field in [0, 2] where Int(trimmed(fields[field])) == nil {
                throw .badNumber(path: path, line: number, field: field + 1, found: String(fields[field]))
            }
            imagePath = trimmed(fields[1])
            for field in 3...6 { _ = try value(field) }
            // x1…x5 then y1…y5 → (x1, y1), …, (x5, y5).
            let xs = try (7...11).map { (field) throws(LandmarkFileError) in try value(field) }
            let ys = try (12...16).map { (field) throws(LandmarkFileError) in try value(field) }
            for (x, y) in zip(xs, ys) { coordinates += [x, y] }
        }
        let components = imagePath.split(separator: "/")
        guard !components.isEmpty, !components.contains("..") else {
            throw .badImagePath(path: path, line: number, imagePath: imagePath)
        }
        let points = (0..<5).map { SIMD2(coordinates[2 * $0], coordinates[2 * $0 + 1]) }
        if SimilarityTransform.hasNoSpread(points)
            || SimilarityTransform.estimate(from: points, to: ArcFaceTemplate.points112) == nil
        {
            let mean = points.reduce(SIMD2<Double>.zero, +) / 5
            let spread = (points.reduce(0.0) { $0 + (($1 - mean) * ($1 - mean)).sum() } / 5).squareRoot()
            throw .degenerateLandmarks(path: path, line: number, spread: spread)
        }
        return LandmarkEntry(path: imagePath, landmarks: points, line: number)
    }
}
