import Foundation
import TensorCore

/// An InsightFace training set in RecordIO form (`train.rec` + `train.idx`), read lazily: only the
/// index, the first record's header and the identity records are read when it is opened; each
/// image is read and decoded when asked for.
///
/// Layout (insightface `recognition/arcface_torch/dataset.py` `MXFaceDataset`, `face2rec2.py`):
/// record 0's header has `flag > 0` and labels `(a, b)`: records `1..<a` are images, records
/// `a..<b` describe identities, identity `k` (record `a + k`) with labels `(start, end)`: its
/// images are records `start..<end`. An image record's header holds its label (scalar, or the
/// first of a label list). Sets without that header (record 0 `flag == 0`) use every index key as
/// an image, and their labels are read from each record's header when the set is opened.
public struct RecordIODataset: Sendable {
    /// The `.rec` reader.
    public let reader: RecordIOReader
    /// The `.idx` file.
    public let indexPath: String
    /// The byte offset of each record key.
    public let offsets: [Int: Int]
    /// The record key of each image, `[count]`.
    public let imageKeys: [Int]
    /// The label of each image, `[count]`, in `0..<identityCount`.
    public let labels: [Int]
    /// The number of identities `K`.
    public let identityCount: Int
    /// The identity names, `[K]`, when every identity record carries its name as UTF-8 after its
    /// header (as `packFaceFolder` writes them; InsightFace's tools leave that payload empty, and
    /// readers that only parse the header ignore it); nil otherwise.
    public let identityNames: [String]?

    /// The number of images.
    public var count: Int { imageKeys.count }

    /// Opens `recordPath` and `indexPath` (by default the `.rec` path with `.idx`).
    ///
    /// - Throws: `RecordIOError`: `.unreadableFile`, `.badIndexLine` (with line number),
    ///   `.indexOffsetOutOfRange`, `.missingKey`, `.badIdentityRange`, and any record error of the
    ///   records read (`.badMagic`, `.truncatedRecord`, `.shortHeader`, …, with byte offsets).
    public static func open(recordPath: String, indexPath: String? = nil) throws(RecordIOError) -> RecordIODataset {
        let indexPath = indexPath ?? (recordPath.hasSuffix(".rec") ? String(recordPath.dropLast(4)) + ".idx" : recordPath + ".idx")
        let reader = try RecordIOReader(path: recordPath)
        let (offsets, keys) = try readIndex(path: indexPath, fileSize: reader.fileSize)

        func record(key: Int) throws(RecordIOError) -> (header: ImageRecordHeader, image: ArraySlice<UInt8>) {
            guard let offset = offsets[key] else { throw .missingKey(path: indexPath, key: key) }
            return try parseImageRecord(reader.record(at: offset).data, path: recordPath, offset: offset)
        }
        func header(key: Int) throws(RecordIOError) -> ImageRecordHeader { try record(key: key).header }
        var names: [String]? = []
        var imageKeys: [Int] = []
        var labels: [Int] = []
        var identityCount = 0
        let first: ImageRecordHeader? = offsets[0] == nil ? nil : try header(key: 0)
        /// A record number stored as a float label: integral, in `0...(largest key + 1)`, the
        /// key capped at 2⁴⁰ so that neither `+ 1` nor the conversion from `Float` can overflow
        /// (key `Int.max` was an overflow trap, found while writing the RecordIO fuzz harness).
        let recordLimit = min(keys.max() ?? 0, 1 << 40) + 1
        func recordNumber(_ value: Float) -> Int? {
            guard value.isFinite, value >= 0, value <= Float(recordLimit), value == value.rounded() else { return nil }
            return Int(value)
        }
        if let first, first.flag > 0, first.labels.count >= 2 {
            guard let imageEnd = recordNumber(first.labels[0]), let identityEnd = recordNumber(first.labels[1]),
                  imageEnd >= 1, identityEnd >= imageEnd else {
                throw .badIdentityRange(path: recordPath, key: 0,
                                        reason: "header ranges (\(first.labels[0]), \(first.labels[1])) are not record numbers 1 ≤ a ≤ b ≤ \(recordLimit)")
            }
            // Records 0..<b must all be in the index: name the first missing one before
            // allocating per record (b = 10¹² with a two-line index allocated terabytes; found while
            // writing the RecordIO fuzz harness). Among keys.count + 1 numbers one is missing, so this is short.
            if identityEnd > keys.count, let missing = (0...keys.count).first(where: { offsets[$0] == nil }) {
                throw .missingKey(path: indexPath, key: missing)
            }
            imageKeys = Array(1..<imageEnd)
            labels = [Int](repeating: -1, count: imageKeys.count)
            for (identity, key) in (imageEnd..<identityEnd).enumerated() {
                let (range, payload) = try record(key: key)
                if let name = String(validating: payload, as: UTF8.self), !name.isEmpty { names?.append(name) } else { names = nil }
                guard range.labels.count >= 2 else {
                    throw .badIdentityRange(path: recordPath, key: key, reason: "identity record without a (start, end) label pair")
                }
                guard let start = recordNumber(range.labels[0]), let end = recordNumber(range.labels[1]),
                      start >= 1, start <= end, end <= imageEnd else {
                    throw .badIdentityRange(path: recordPath, key: key,
                                            reason: "image range (\(range.labels[0]), \(range.labels[1])) outside 1..<\(imageEnd)")
                }
                for imageKey in start..<end { labels[imageKey - 1] = identity }
            }
            identityCount = identityEnd - imageEnd
            if let unlabelled = labels.firstIndex(of: -1) {
                throw .badIdentityRange(path: recordPath, key: unlabelled + 1, reason: "image record belongs to no identity")
            }
        } else {
            // No identity header: every key is an image, labelled by its own header.
            imageKeys = keys
            for key in keys {
                let h = try header(key: key)
                let value = h.labels.first ?? h.label
                guard value.isFinite, value >= 0, value < Float(1 << 30), value == value.rounded() else {
                    throw .badLabel(path: recordPath, key: key, label: value)
                }
                labels.append(Int(value))
            }
            identityCount = (labels.max() ?? -1) + 1
            names = nil
        }
        guard !imageKeys.isEmpty else { throw .badIdentityRange(path: recordPath, key: 0, reason: "the set holds no image") }
        for key in imageKeys where offsets[key] == nil { throw .missingKey(path: indexPath, key: key) }
        return RecordIODataset(reader: reader, indexPath: indexPath, offsets: offsets, imageKeys: imageKeys,
                               labels: labels, identityCount: identityCount,
                               identityNames: names?.count == identityCount && identityCount > 0 ? names : nil)
    }

    /// The byte size of each image's record in the `.rec` file (from the `.idx` offsets: the
    /// distance to the next record, or to the end of the file), `[count]`; nothing is read.
    public var imageRecordByteCounts: [Int] {
        let starts = offsets.values.sorted()
        var next: [Int: Int] = [:]
        for (index, start) in starts.enumerated() { next[start] = index + 1 < starts.count ? starts[index + 1] : reader.fileSize }
        return imageKeys.map { key in
            let start = offsets[key] ?? 0
            return (next[start] ?? reader.fileSize) - start
        }
    }

    /// Reads and decodes image `index` and checks its header's label against `labels[index]`.
    ///
    /// - Returns: the image (`[C, H, W]`) and its header.
    /// - Throws: a record error, `.labelMismatch`, or `.image` (the decoder's error, naming the
    ///   record as `<file> record <key> at byte <offset>`).
    /// - Precondition: `index` in `0..<count`.
    public func sample(at index: Int) throws(RecordIOError) -> (image: FaceImage, header: ImageRecordHeader) {
        precondition(index >= 0 && index < count, "RecordIODataset: sample \(index) outside 0..<\(count)")
        let key = imageKeys[index]
        let offset = offsets[key] ?? 0
        let (header, payload) = try parseImageRecord(reader.record(at: offset).data, path: reader.path, offset: offset)
        let label = header.labels.first ?? header.label
        guard label == Float(labels[index]) else {
            throw .labelMismatch(path: reader.path, key: key, expected: labels[index], found: label)
        }
        do {
            return (try decodeImage(Array(payload), path: "\(reader.path) record \(key) at byte \(offset)"), header)
        } catch {
            throw .image(error)
        }
    }

    /// A batch of the given samples, decoded now (nothing else is kept in memory), each image
    /// converted to `colorMode`, resized and centre-cropped to `imageSize`, then transformed as
    /// `FaceDataset.makeBatch(indices:transforms:)` does.
    ///
    /// - Returns: `images` `[N, C, H, W]` with values `x·2 − 1`, labels `[N]`.
    public func makeBatch(indices: [Int], transforms: [SampleTransform], imageSize: ImageSize,
                          colorMode: ColorMode = .rgb) throws(RecordIOError) -> Batch {
        precondition(colorMode != .asStored, "RecordIODataset.makeBatch: choose .grayscale or .rgb")
        var images: [FaceImage] = []
        images.reserveCapacity(indices.count)
        for index in indices {
            images.append(try sample(at: index).image.converted(to: colorMode).resizedAndCropped(to: imageSize))
        }
        // The chunk names only the identities present (a header label may be up to 2³⁰: one
        // name per identity of the whole set was an out-of-memory, found while writing the RecordIO fuzz harness).
        let present = Array(Set(indices.map { labels[$0] })).sorted()
        let local = Dictionary(uniqueKeysWithValues: present.enumerated().map { ($1, $0) })
        let chunk = FaceDataset(identities: present.map { "\($0)" }, images: images,
                                labels: indices.map { local[labels[$0]] ?? 0 },
                                paths: indices.map { "\(reader.path) record \(imageKeys[$0])" })
        var batch = chunk.makeBatch(indices: Array(0..<indices.count), transforms: transforms)
        batch.labels = indices.map { labels[$0] }
        batch.indices = indices
        return batch
    }

    /// The images of the given samples as an in-memory `FaceDataset` (labels re-indexed to the
    /// identities present, in increasing order), for training on a slice of a large set.
    public func faceDataset(indices: [Int], imageSize: ImageSize, colorMode: ColorMode = .rgb) throws(RecordIOError) -> FaceDataset {
        let present = Array(Set(indices.map { labels[$0] })).sorted()
        var newLabel: [Int: Int] = [:]
        for (position, label) in present.enumerated() { newLabel[label] = position }
        var images: [FaceImage] = []
        for index in indices {
            images.append(try sample(at: index).image.converted(to: colorMode).resizedAndCropped(to: imageSize))
        }
        return FaceDataset(identities: present.map { "\($0)" }, images: images,
                           labels: indices.map { newLabel[labels[$0]] ?? 0 },
                           paths: indices.map { "\(reader.path) record \(imageKeys[$0])" })
    }
}

/// Parses a `.idx` file: one `key<TAB>offset` line per record (MXNet `MXIndexedRecordIO`).
///
/// - Returns: the offset of each key and the keys in file order.
func readIndex(path: String, fileSize: Int) throws(RecordIOError) -> (offsets: [Int: Int], keys: [Int]) {
    let bytes: [UInt8]
    do { bytes = try readFileBytes(path: path) } catch {
        if case .unreadableFile(_, let reason) = error { throw .unreadableFile(path: path, reason: reason) }
        throw .unreadableFile(path: path, reason: error.description)
    }
    var offsets: [Int: Int] = [:]
    var keys: [Int] = []
    var lineNumber = 0
    for line in bytes.split(separator: UInt8(ascii: "\n"), omittingEmptySubsequences: false) {
        lineNumber += 1
        let fields = line.split(whereSeparator: { $0 == UInt8(ascii: "\t") || $0 == UInt8(ascii: " ") || $0 == UInt8(ascii: "\r") })
        if fields.isEmpty { continue }
        guard fields.count == 2, let key = Int(String(decoding: fields[0], as: UTF8.self)),
              let offset = Int(String(decoding: fields[1], as: UTF8.self)), key >= 0, offset >= 0 else {
            throw .badIndexLine(path: path, line: lineNumber, text: String(decoding: line.prefix(60), as: UTF8.self))
        }
        guard offset < fileSize else {
            throw .indexOffsetOutOfRange(path: path, line: lineNumber, offset: offset, fileSize: fileSize)
        }
        guard offsets.updateValue(offset, forKey: key) == nil else {
            throw .badIndexLine(path: path, line: lineNumber, text: "key \(key) given twice")
        }
        keys.append(key)
    }
    return (offsets, keys)
}

/// Why a RecordIO set could not be read. Each case names the file and the byte offset, record
/// key or index line.
public enum RecordIOError: Error, CustomStringConvertible, Equatable, Sendable {
    case unreadableFile(path: String, reason: String)
    /// A record part does not start with the magic number 0xced7230a.
    case badMagic(path: String, offset: Int, found: UInt32)
    /// The file ends inside the record part at `offset`.
    case truncatedRecord(path: String, offset: Int, needed: Int, available: Int)
    /// A part's continuation flag does not fit its place (e.g. a middle part first).
    case badContinuation(path: String, offset: Int, flag: Int, partIndex: Int)
    /// A record is shorter than its image header (24 bytes plus 4 per label).
    case shortHeader(path: String, offset: Int, length: Int, needed: Int)
    /// A `.idx` line is not `key<TAB>offset`.
    case badIndexLine(path: String, line: Int, text: String)
    /// A `.idx` offset lies beyond the end of the `.rec` file.
    case indexOffsetOutOfRange(path: String, line: Int, offset: Int, fileSize: Int)
    /// A record key the set needs is not in the `.idx` file.
    case missingKey(path: String, key: Int)
    /// The identity ranges of record 0 or of an identity record are inconsistent.
    case badIdentityRange(path: String, key: Int, reason: String)
    /// An image header's label is not a non-negative integer.
    case badLabel(path: String, key: Int, label: Float)
    /// An image header's label differs from its identity range's.
    case labelMismatch(path: String, key: Int, expected: Int, found: Float)
    /// An image payload could not be decoded.
    case image(ImageDecodingError)

    public var description: String {
        switch self {
        case .unreadableFile(let path, let reason):
            return "\(path): cannot read file: \(reason)"
        case .badMagic(let path, let offset, let found):
            return "\(path): no RecordIO magic at byte \(offset): found 0x\(String(found, radix: 16)), expected 0xced7230a (wrong offset in the .idx, or not a .rec file)"
        case .truncatedRecord(let path, let offset, let needed, let available):
            return "\(path): truncated record at byte \(offset): needs \(needed) bytes, \(available) available"
        case .badContinuation(let path, let offset, let flag, let partIndex):
            return "\(path): record part at byte \(offset) has continuation flag \(flag), impossible as part \(partIndex + 1) of a record"
        case .shortHeader(let path, let offset, let length, let needed):
            return "\(path): record at byte \(offset) has \(length) bytes, fewer than its image header's \(needed)"
        case .badIndexLine(let path, let line, let text):
            return "\(path):\(line): bad index line \"\(text)\"; expected \"key<TAB>offset\""
        case .indexOffsetOutOfRange(let path, let line, let offset, let fileSize):
            return "\(path):\(line): offset \(offset) is beyond the end of the .rec file (\(fileSize) bytes)"
        case .missingKey(let path, let key):
            return "\(path): no index entry for record \(key)"
        case .badIdentityRange(let path, let key, let reason):
            return "\(path): record \(key): \(reason)"
        case .badLabel(let path, let key, let label):
            return "\(path): record \(key): label \(label) is not a non-negative integer"
        case .labelMismatch(let path, let key, let expected, let found):
            return "\(path): record \(key): header label \(found) but its identity range says \(expected)"
        case .image(let error):
            return error.description
        }
    }
}
