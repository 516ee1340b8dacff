// Writing InsightFace RecordIO training sets (`train.rec` + `train.idx`) as insightface's
// `face2rec2.py` / MXNet's `im2rec.py` lay them out:
//   record 0                 header, flag 2, labels (a, b)
//   records 1 ..< a          one image each: header (flag 0, label = identity, id = record key) + encoded image
//   records a ..< b          one identity each: header (flag 2, labels (start, end)) + its name as UTF-8
// (insightface leaves the identity payload empty; readers that parse only the header ignore it).
// The files are written to temporary files beside the target and renamed over it at the end, so
// a failed or interrupted pack never leaves a partial `train.rec`.
import Foundation
#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// How a pack stores its images.
public enum PackedImageEncoding: Sendable, Equatable {
    /// Baseline JPEG at libjpeg quality 1...100 (what InsightFace's sets hold; lossy).
    case jpeg(quality: Int)
    /// PNG: 8-bit when every sample of the image is `k/255` (PGM with maxval 255, 8-bit JPEG or
    /// PNG sources), so that decoding gives the source's pixels bit for bit; 16-bit otherwise.
    case png
}

/// Why a pack could not be written. Each case names the file or folder.
public enum PackError: Error, CustomStringConvertible, Equatable, Sendable {
    /// The source folder could not be listed or read, or holds too few identities or images
    /// (`DatasetError.noImages`, `.emptyIdentity`, `.tooFewIdentities`, `.image` under
    /// `BadImagePolicy.error`, …).
    case dataset(DatasetError)
    /// The output path does not end in `.rec` (the `.idx` goes beside it with the same stem).
    case invalidOutputPath(path: String)
    /// A file could not be created, written or renamed (no such folder, read-only file system,
    /// "No space left on device", …). No partial pack is left at the target paths.
    case writeFailed(path: String, reason: String)
    /// An image could not be encoded (the codec failed; out of memory).
    case encoding(path: String, ImageEncodingError)

    public var description: String {
        switch self {
        case .dataset(let error): return error.description
        case .invalidOutputPath(let path): return "\(path): a pack's path must end in .rec (its index is written beside it as .idx)"
        case .writeFailed(let path, let reason): return "cannot write \(path): \(reason)"
        case .encoding(let path, let error): return "\(path): \(error)"
        }
    }
}

/// What a finished pack holds.
public struct PackSummary: Sendable, Equatable {
    /// The `.rec` and `.idx` files written.
    public var recordPath: String
    public var indexPath: String
    /// The identities written, in label order, `[K]`.
    public var identities: [String]
    /// The number of image records.
    public var imageCount: Int
    /// The size of the `.rec` file in bytes.
    public var byteCount: Int
    /// What the folder packer left out or found sparse (empty for `FacePackWriter` used directly).
    public var report: DatasetLoadReport
}

/// Writes a RecordIO training set one identity at a time, streaming each record to disk (memory
/// does not grow with the set): `beginIdentity(_:)`, `append(_:)` its images, …, `finish()`.
/// Until `finish()` succeeds everything goes to hidden temporary files beside the target
/// (`.<name>.tmp-<pid>`), removed by `cancel()` or when the writer is freed unfinished.
///
/// ```swift
/// let writer = try FacePackWriter(recordPath: "train.rec", encoding: .jpeg(quality: 95))
/// writer.beginIdentity("s1"); try writer.append(image)   // FaceImage, 1 or 3 channels
/// let summary = try writer.finish()
/// ```
public final class FacePackWriter {
    public let recordPath: String
    public let indexPath: String
    public let encoding: PackedImageEncoding
    private let temporaryRecordPath: String
    private let temporaryIndexPath: String
    private var record: FileHandle?
    private var buffer: [UInt8] = []
    private var indexText = ""
    private var offset = 0
    private var nextKey = 1
    /// Kept identities: name and first image key (end = next one's start).
    private var identities: [(name: String, start: Int)] = []
    private var pendingIdentity: String?
    private var finished = false

    /// Creates the temporary files and writes a placeholder header record 0 (rewritten by `finish`).
    ///
    /// - Throws: `PackError.invalidOutputPath` (not `.rec`), `.writeFailed` (the folder is
    ///   missing or not writable, or a folder stands where the `.rec` or `.idx` would go).
    public init(recordPath: String, encoding: PackedImageEncoding = .jpeg(quality: 95)) throws(PackError) {
        guard recordPath.hasSuffix(".rec"), recordPath.count > 4, !recordPath.hasSuffix("/.rec") else {
            throw .invalidOutputPath(path: recordPath)
        }
        if case .jpeg(let quality) = encoding { precondition((1...100).contains(quality), "FacePackWriter: JPEG quality must be in 1...100, got \(quality)") }
        self.recordPath = recordPath
        self.indexPath = String(recordPath.dropLast(4)) + ".idx"
        self.encoding = encoding
        func temporary(_ path: String) -> String {
            let url = URL(fileURLWithPath: path)
            return url.deletingLastPathComponent().path + "/." + url.lastPathComponent + ".tmp-\(ProcessInfo.processInfo.processIdentifier)"
        }
        temporaryRecordPath = temporary(recordPath)
        temporaryIndexPath = temporary(indexPath)
        // Refused before any image is encoded (the rename at the end would fail).
        try Self.refuseFolder(at: recordPath)
        try Self.refuseFolder(at: indexPath)
        guard FileManager.default.createFile(atPath: temporaryRecordPath, contents: nil),
              let handle = FileHandle(forWritingAtPath: temporaryRecordPath) else {
            let folder = URL(fileURLWithPath: recordPath).deletingLastPathComponent().path
            var isFolder: ObjCBool = false
            let exists = FileManager.default.fileExists(atPath: folder, isDirectory: &isFolder)
            throw .writeFailed(path: recordPath, reason: !exists ? "no such folder \(folder)" : !isFolder.boolValue ? "\(folder) is not a folder" : "cannot create a file in \(folder)")
        }
        record = handle
        try write(Self.headerRecord(imageEnd: 0, identityEnd: 0), key: 0)
    }

    deinit { if !finished { cancel() } }

    /// Starts identity `name`; its label is the number of identities before it that received
    /// at least one image (an identity without images is left out).
    public func beginIdentity(_ name: String) {
        pendingIdentity = name
    }

    /// Encodes `image` and appends it to the current identity.
    ///
    /// - Throws: `PackError.encoding`, `.writeFailed`.
    /// - Precondition: `beginIdentity` was called; the writer is not finished.
    public func append(_ image: FaceImage, source: String = "") throws(PackError) {
        precondition(!finished, "FacePackWriter: append after finish")
        if let name = pendingIdentity {
            identities.append((name, nextKey))
            pendingIdentity = nil
        }
        precondition(!identities.isEmpty, "FacePackWriter: append before beginIdentity")
        let payload: [UInt8]
        do {
            switch encoding {
            case .jpeg(let quality): payload = try encodeJPEG(image, quality: quality)
            case .png: payload = try encodePNG(image, bitDepth: Self.isEightBit(image) ? 8 : 16)
            }
        } catch { throw .encoding(path: source.isEmpty ? "image \(nextKey)" : source, error) }
        let header = ImageRecordHeader(flag: 0, label: Float(identities.count - 1), id: UInt64(nextKey))
        try write(header.encoded + payload, key: nextKey)
        nextKey += 1
    }

    /// Writes the identity records, rewrites record 0 with the ranges, flushes both files to disk
    /// and renames them over `recordPath` and `indexPath` (the `.idx` first, then the `.rec`).
    ///
    /// - Throws: `PackError.dataset(.tooFewIdentities)` when fewer than two identities received
    ///   images, `.writeFailed`. On error the temporary files are removed and the targets are
    ///   unchanged.
    public func finish() throws(PackError) -> PackSummary {
        precondition(!finished, "FacePackWriter: finish called twice")
        do {
            guard identities.count >= 2 else {
                throw PackError.dataset(.tooFewIdentities(found: identities.count, path: recordPath))
            }
            let imageEnd = nextKey
            for (index, identity) in identities.enumerated() {
                let end = index + 1 < identities.count ? identities[index + 1].start : imageEnd
                let header = ImageRecordHeader(flag: 2, labels: [Float(identity.start), Float(end)])
                try write(header.encoded + Array(identity.name.utf8), key: imageEnd + index)
            }
            try flush()
            guard let record else { throw PackError.writeFailed(path: recordPath, reason: "writer closed") }
            let header = Self.headerRecord(imageEnd: imageEnd, identityEnd: imageEnd + identities.count)
            try perform(recordPath) {
                try record.seek(toOffset: 0)
                try record.write(contentsOf: header)
                try record.synchronize()
                try record.close()
            }
            self.record = nil
            try perform(indexPath) {
                try Data(indexText.utf8).write(to: URL(fileURLWithPath: temporaryIndexPath))
                let index = try FileHandle(forUpdating: URL(fileURLWithPath: temporaryIndexPath))
                try index.synchronize()
                try index.close()
            }
            // Checked again before the first rename: a `.idx` renamed into place next to a `.rec`
            // that then cannot be (a folder of that name: EISDIR) was left behind, or replaced
            // the index of an earlier pack whose `.rec` stayed.
            try Self.refuseFolder(at: recordPath)
            try Self.refuseFolder(at: indexPath)
            try Self.move(temporaryIndexPath, over: indexPath)
            try Self.move(temporaryRecordPath, over: recordPath)
        } catch let error as PackError {
            cancel()
            throw error
        } catch {
            cancel()
            throw .writeFailed(path: recordPath, reason: "\(error)")
        }
        finished = true
        return PackSummary(recordPath: recordPath, indexPath: indexPath, identities: identities.map(\.name),
                           imageCount: nextKey - 1, byteCount: offset, report: DatasetLoadReport())
    }

    /// Abandons the pack: closes and removes the temporary files (the targets are untouched).
    public func cancel() {
        try? record?.close()
        record = nil
        finished = true
        try? FileManager.default.removeItem(atPath: temporaryRecordPath)
        try? FileManager.default.removeItem(atPath: temporaryIndexPath)
    }

    // MARK: - Private

    /// Record 0: flag 2, labels (a, b); always 40 bytes on disk (a label is a non-negative float,
    /// never the magic number), so the placeholder can be rewritten in place.
    private static func headerRecord(imageEnd: Int, identityEnd: Int) -> [UInt8] {
        RecordIOWriter.encodedRecord(ImageRecordHeader(flag: 2, labels: [Float(imageEnd), Float(identityEnd)]).encoded)
    }

    /// Whether every sample of `image` is exactly `k/255`, as decoding an 8-bit PNG gives it.
    static func isEightBit(_ image: FaceImage) -> Bool {
        image.pixels.allSatisfy { x in
            let k = (x * 255).rounded()
            return k >= 0 && k <= 255 && Float(k) / 255 == x
        }
    }

    private func write(_ data: [UInt8], key: Int) throws(PackError) {
        let bytes = key == 0 ? data : RecordIOWriter.encodedRecord(data)
        indexText += "\(key)\t\(offset)\n"
        offset += bytes.count
        buffer += bytes
        if buffer.count >= 1 << 20 { try flush() }
    }

    private func flush() throws(PackError) {
        guard !buffer.isEmpty else { return }
        guard let record else { throw .writeFailed(path: recordPath, reason: "writer closed") }
        let bytes = buffer
        try perform(recordPath) { try record.write(contentsOf: bytes) }
        buffer.removeAll(keepingCapacity: true)
    }

    /// Runs `body`, turning a Foundation error into `PackError.writeFailed(path:)` with the
    /// system's reason ("No space left on device").
    private func perform(_ path: String, _ body: () throws -> Void) throws(PackError) {
        do { try body() } catch { throw .writeFailed(path: path, reason: Self.reason(error)) }
    }

    private static func reason(_ error: any Error) -> String {
        let nsError = error as NSError
        if let underlying = nsError.userInfo[NSUnderlyingErrorKey] as? NSError, underlying.domain == NSPOSIXErrorDomain {
            return String(cString: strerror(Int32(underlying.code)))
        }
        if nsError.domain == NSPOSIXErrorDomain { return String(cString: strerror(Int32(nsError.code))) }
        return error.localizedDescription
    }

    /// Throws `.writeFailed` when `path` is a folder (a file cannot be renamed over it).
    private static func refuseFolder(at path: String) throws(PackError) {
        var isFolder: ObjCBool = false
        if FileManager.default.fileExists(atPath: path, isDirectory: &isFolder), isFolder.boolValue {
            throw .writeFailed(path: path, reason: "a folder of that name exists")
        }
    }

    private static func move(_ temporary: String, over path: String) throws(PackError) {
        guard rename(temporary, path) == 0 else {
            throw .writeFailed(path: path, reason: String(cString: strerror(errno)))
        }
        let folder = URL(fileURLWithPath: path).deletingLastPathComponent().path
        if let handle = FileHandle(forReadingAtPath: folder) {
            try? handle.synchronize()
            try? handle.close()
        }
    }
}

/// Packs a folder-per-identity data set into `recordPath` (+ `.idx` beside it): identities and
/// their images in the order `FaceDataset.load` reads them (natural order), each image stored
/// as decoded (its own size and channels; the trainer converts and resizes when it reads it, as
/// it does for folders), one identity decoded at a time.
///
/// Bad files follow `onBadImage` as in `FaceDataset.load(directory:onBadImage:)`: `.error`
/// stops at the first (naming it), `.skip` leaves it out and lists it in `summary.report`; an
/// identity without usable images is left out; identities with fewer than two are listed as sparse.
///
/// - Throws: `PackError.dataset` (the folder: missing, empty, an empty identity, one identity,
///   a bad image under `.error`), `.invalidOutputPath`, `.writeFailed` (unwritable output, a
///   full disk), `.encoding`. On error nothing is left at `recordPath` or its `.idx`.
public func packFaceFolder(directory: String, recordPath: String, encoding: PackedImageEncoding = .jpeg(quality: 95),
                           onBadImage: BadImagePolicy = .error,
                           progress: (_ done: Int, _ total: Int) -> Void = { _, _ in }) throws(PackError) -> PackSummary {
    let folders: [IdentityFolder]
    do { folders = try listIdentityFolders(directory: directory) } catch { throw .dataset(error) }
    let writer = try FacePackWriter(recordPath: recordPath, encoding: encoding)
    var report = DatasetLoadReport()
    let total = folders.reduce(0) { $0 + $1.files.count }
    var done = 0
    for folder in folders {
        writer.beginIdentity(folder.name)
        var count = 0
        for path in folder.files {
            defer { done += 1; progress(done, total) }
            let image: FaceImage
            do { image = try loadImage(path: path) } catch {
                guard onBadImage == .skip else {
                    writer.cancel()
                    throw .dataset(.image(error))
                }
                report.skippedImages.append(.init(path: path, reason: error.reason))
                continue
            }
            try writer.append(image, source: path)
            count += 1
        }
        if count < 2 { report.sparseIdentities.append(.init(name: folder.name, imageCount: count)) }
    }
    var summary: PackSummary
    do { summary = try writer.finish() } catch {
        if case .dataset(.tooFewIdentities(let found, _)) = error { throw .dataset(.tooFewIdentities(found: found, path: directory)) }
        throw error
    }
    summary.report = report
    return summary
}
