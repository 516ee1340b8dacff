// MXNet/dmlc RecordIO, the container of InsightFace's training sets (`train.rec` + `train.idx`:
// MS1M-ArcFace, Glint360K, WebFace, …). Format: dmlc-core `include/dmlc/recordio.h` and
// `src/recordio.cc`; image header: MXNet `python/mxnet/recordio.py` (`IRHeader`, `pack`, `unpack`).
//
// A record on disk is a sequence of parts, each
//   uint32 magic 0xced7230a | uint32 lrecord = cflag << 29 | length | data[length] | 0–3 zero bytes
// (little-endian; padding to a multiple of 4). cflag 0 is a whole record; 1, 2…, 3 are the first,
// middle and last parts of a record that the writer split wherever the magic number occurred at a
// 4-byte-aligned position of the data: the reader joins the parts with the magic number between them.
import Foundation  // FileHandle
import Synchronization

/// The RecordIO magic number (dmlc `RecordIOWriter::kMagic`).
public let recordIOMagic: UInt32 = 0xCED7_230A

/// MXNet's image record header (`IRHeader`, struct format `IfQQ`, 24 bytes little-endian),
/// followed in the record by `flag` float32 labels when `flag > 0`, then the encoded image.
public struct ImageRecordHeader: Sendable, Equatable {
    /// 0 for a scalar label; otherwise the number of float32 labels that follow the header.
    public var flag: UInt32
    /// The scalar label (when `flag == 0`).
    public var label: Float
    /// The label list (when `flag > 0`), `[flag]`.
    public var labels: [Float]
    /// Record ids (InsightFace leaves them 0 or uses `id` as the record key).
    public var id: UInt64
    public var id2: UInt64

    public init(flag: UInt32 = 0, label: Float = 0, labels: [Float] = [], id: UInt64 = 0, id2: UInt64 = 0) {
        self.flag = flag
        self.label = label
        self.labels = labels
        self.id = id
        self.id2 = id2
    }

    /// The header's byte size: 24 plus 4 per label.
    public var byteCount: Int { 24 + 4 * labels.count }

    /// The header as MXNet's `recordio.pack` writes it (for a label list, `flag` = its count and
    /// the scalar label 0).
    public var encoded: [UInt8] {
        var bytes: [UInt8] = []
        appendLittleEndian(&bytes, UInt64(labels.isEmpty ? flag : UInt32(labels.count)), byteCount: 4)
        appendLittleEndian(&bytes, UInt64((labels.isEmpty ? label : 0).bitPattern), byteCount: 4)
        appendLittleEndian(&bytes, id, byteCount: 8)
        appendLittleEndian(&bytes, id2, byteCount: 8)
        for value in labels { appendLittleEndian(&bytes, UInt64(value.bitPattern), byteCount: 4) }
        return bytes
    }
}

/// Random and sequential access to the records of a `.rec` file. Reads through one file handle
/// under a lock, so one reader may be shared by threads.
public final class RecordIOReader: Sendable {
    /// The `.rec` file.
    public let path: String
    /// The file's size in bytes.
    public let fileSize: Int
    private let handle: Mutex<FileHandle>

    /// Opens `path` for reading.
    ///
    /// - Throws: `RecordIOError.unreadableFile`.
    public init(path: String) throws(RecordIOError) {
        guard let handle = FileHandle(forReadingAtPath: path) else {
            throw .unreadableFile(path: path, reason: FileManager.default.fileExists(atPath: path) ? "cannot open" : "no such file")
        }
        do { fileSize = Int(try handle.seekToEnd()) } catch {
            throw .unreadableFile(path: path, reason: "\(error)")
        }
        self.path = path
        self.handle = Mutex(handle)
    }

    /// The record that starts at byte `offset`, its parts joined, and the offset after it.
    ///
    /// - Throws: `RecordIOError.badMagic`, `.truncatedRecord`, `.badContinuation`, each naming
    ///   the file and the byte offset of the offending part.
    public func record(at offset: Int) throws(RecordIOError) -> (data: [UInt8], nextOffset: Int) {
        var data: [UInt8] = []
        var position = offset
        var partIndex = 0
        while true {
            let head = try read(at: position, count: 8)
            guard head.count == 8 else {
                throw .truncatedRecord(path: path, offset: position, needed: 8, available: head.count)
            }
            let magic = UInt32(littleEndian: head, at: 0)
            guard magic == recordIOMagic else { throw .badMagic(path: path, offset: position, found: magic) }
            let word = UInt32(littleEndian: head, at: 4)
            let flag = Int(word >> 29), length = Int(word & ((1 << 29) - 1))
            // cflag 0: whole; 1: first part; 2: middle; 3: last.
            let expected = partIndex == 0 ? [0, 1] : [2, 3]
            guard expected.contains(flag) else {
                throw .badContinuation(path: path, offset: position, flag: flag, partIndex: partIndex)
            }
            let body = try read(at: position + 8, count: length)
            guard body.count == length else {
                throw .truncatedRecord(path: path, offset: position, needed: 8 + length, available: 8 + body.count)
            }
            if partIndex > 0 { appendLittleEndian(&data, UInt64(recordIOMagic), byteCount: 4) }
            data += body
            position += 8 + (length + 3) / 4 * 4
            partIndex += 1
            if flag == 0 || flag == 3 { return (data, position) }
        }
    }

    /// Every record in file order, read one at a time (the file is never loaded whole).
    public func records() -> RecordSequence { RecordSequence(reader: self) }

    /// Up to `count` bytes at `offset` (fewer at the end of the file).
    func read(at offset: Int, count: Int) throws(RecordIOError) -> [UInt8] {
        guard offset >= 0, offset <= fileSize else {
            throw .truncatedRecord(path: path, offset: offset, needed: count, available: 0)
        }
        if count == 0 { return [] }
        let result: Result<[UInt8], any Error> = handle.withLock { handle in
            Result {
                try handle.seek(toOffset: UInt64(offset))
                return [UInt8](try handle.read(upToCount: count) ?? Data())
            }
        }
        switch result {
        case .success(let bytes): return bytes
        case .failure(let error): throw .unreadableFile(path: path, reason: "\(error)")
        }
    }
}

/// The records of a `.rec` file in order: `(offset, data)` per record; iteration ends at the end
/// of the file, or at the first broken record, whose error is kept in `error`.
public struct RecordSequence: Sequence, IteratorProtocol {
    let reader: RecordIOReader
    var offset = 0
    /// The error that ended the iteration early, if any.
    public private(set) var error: RecordIOError?

    init(reader: RecordIOReader) { self.reader = reader }

    public mutating func next() -> (offset: Int, data: [UInt8])? {
        guard error == nil, offset < reader.fileSize else { return nil }
        do {
            let (data, next) = try reader.record(at: offset)
            defer { offset = next }
            return (offset, data)
        } catch {
            self.error = error
            return nil
        }
    }
}

/// Splits a record payload into its image header and the encoded image.
///
/// - Parameter location: names the record in errors (e.g. `train.rec record 7 at byte 1234`).
/// - Throws: `RecordIOError.shortHeader` when the payload is shorter than the header and its labels.
public func parseImageRecord(_ data: [UInt8], path: String, offset: Int) throws(RecordIOError)
    -> (header: ImageRecordHeader, image: ArraySlice<UInt8>)
{
    guard data.count >= 24 else { throw .shortHeader(path: path, offset: offset, length: data.count, needed: 24) }
    let flag = UInt32(littleEndian: data, at: 0)
    var header = ImageRecordHeader(flag: flag, label: Float(bitPattern: UInt32(littleEndian: data, at: 4)),
                                   id: UInt64(littleEndian: data, at: 8), id2: UInt64(littleEndian: data, at: 16))
    var start = 24
    if flag > 0 {
        let needed = 24 + 4 * Int(flag)
        guard data.count >= needed else { throw .shortHeader(path: path, offset: offset, length: data.count, needed: needed) }
        header.labels = (0..<Int(flag)).map { Float(bitPattern: UInt32(littleEndian: data, at: 24 + 4 * $0)) }
        start = needed
    }
    return (header, data[start...])
}

/// Writes a `.rec` file and its `.idx` in MXNet's format (`MXIndexedRecordIO`): records split
/// at aligned occurrences of the magic number like dmlc's writer, index lines `key\toffset`.
public struct RecordIOWriter {
    /// The `.rec` bytes so far.
    public private(set) var recordBytes: [UInt8] = []
    /// The `.idx` text so far.
    public private(set) var indexText = ""

    public init() {}

    /// Appends one record under `key`.
    public mutating func append(_ data: [UInt8], key: Int) {
        indexText += "\(key)\t\(recordBytes.count)\n"
        recordBytes += Self.encodedRecord(data)
    }

    /// The bytes of one record as it lies in a `.rec` file: split wherever the magic number sits
    /// at an aligned offset of `data`, each part `magic | cflag << 29 | length | part | padding`.
    static func encodedRecord(_ data: [UInt8]) -> [UInt8] {
        var bytes: [UInt8] = []
        bytes.reserveCapacity(data.count + 12)
        var parts: [ArraySlice<UInt8>] = []
        var start = 0
        var position = 0
        while position + 4 <= data.count {
            if UInt32(littleEndian: data, at: position) == recordIOMagic {
                parts.append(data[start..<position])
                start = position + 4
            }
            position += 4
        }
        parts.append(data[start...])
        for (index, part) in parts.enumerated() {
            let flag: UInt32 = parts.count == 1 ? 0 : index == 0 ? 1 : index == parts.count - 1 ? 3 : 2
            appendLittleEndian(&bytes, UInt64(recordIOMagic), byteCount: 4)
            appendLittleEndian(&bytes, UInt64(flag << 29 | UInt32(part.count)), byteCount: 4)
            bytes += part
            bytes += [UInt8](repeating: 0, count: (4 - part.count % 4) % 4)
        }
        return bytes
    }

    /// Appends an image record: `header.encoded` followed by the encoded image.
    public mutating func append(header: ImageRecordHeader, image: [UInt8], key: Int) {
        append(header.encoded + image, key: key)
    }
}

// MARK: - Little-endian helpers

func appendLittleEndian(_ bytes: inout [UInt8], _ value: UInt64, byteCount: Int) {
    for shift in 0..<byteCount { bytes.append(UInt8(truncatingIfNeeded: value >> (8 * UInt64(shift)))) }
}

extension UInt32 {
    init(littleEndian bytes: [UInt8], at offset: Int) {
        self = UInt32(bytes[offset]) | UInt32(bytes[offset + 1]) << 8 | UInt32(bytes[offset + 2]) << 16
            | UInt32(bytes[offset + 3]) << 24
    }
}

extension UInt64 {
    init(littleEndian bytes: [UInt8], at offset: Int) {
        self = UInt64(UInt32(littleEndian: bytes, at: offset)) | UInt64(UInt32(littleEndian: bytes, at: offset + 4)) << 32
    }
}
