// Guards of a run's output folder: an advisory lock against two runs in one folder, and the
// fingerprint of the training images that a resume checks.
import Foundation
#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif
import FaceData

/// An exclusive advisory lock (`flock`) on `<folder>/.lock`, held until `release()` or deinit,
/// so that two `Experiment.run`s (e.g. two `--resume`s) never write one output folder at once.
/// The lock dies with the process, so a crashed run never leaves the folder locked.
final class RunLock {
    private var descriptor: Int32

    /// Creates `folder` if needed and takes the lock without waiting.
    ///
    /// - Throws: `TrainingError.outputInUse` when another process holds it, `.checkpoint(.writeFailed)`
    ///   when the folder or lock file cannot be created.
    init(folder: String) throws(TrainingError) {
        do { try FileManager.default.createDirectory(atPath: folder, withIntermediateDirectories: true) }
        catch { throw .checkpoint(.writeFailed(path: folder, reason: DurableFileWriter.reason(error))) }
        let path = folder + "/.lock"
        descriptor = open(path, O_RDWR | O_CREAT | O_CLOEXEC, 0o644)
        guard descriptor >= 0 else {
            throw .checkpoint(.writeFailed(path: path, reason: String(cString: strerror(errno))))
        }
        guard flock(descriptor, LOCK_EX | LOCK_NB) == 0 else {
            close(descriptor)
            descriptor = -1
            throw .outputInUse(directory: folder)
        }
    }

    func release() {
        if descriptor >= 0 { close(descriptor) }
        descriptor = -1
    }

    deinit { release() }
}

/// What a resume checks about the training images: their number, per identity, and a CRC-32
/// of the sorted `identity/file name<TAB>byte size` lines. Stored as JSON in the checkpoint
/// metadata key `trainingSet`; checkpoints without it are resumed unchecked.
struct TrainingSetFingerprint: Codable, Equatable {
    static let metadataKey = "trainingSet"
    var images: Int
    var imagesPerIdentity: [String: Int]
    var digest: String

    init(_ dataset: FaceDataset) {
        images = dataset.images.count
        var counts: [String: Int] = [:]
        var lines: [String] = []
        for (label, path) in zip(dataset.labels, dataset.paths) {
            let identity = dataset.identities[label]
            counts[identity, default: 0] += 1
            let resolved = (path as NSString).resolvingSymlinksInPath
            let size = ((try? FileManager.default.attributesOfItem(atPath: resolved))?[.size] as? NSNumber)?.intValue ?? -1
            lines.append(identity + "/" + (path as NSString).lastPathComponent + "\t" + String(size) + "\n")
        }
        imagesPerIdentity = counts
        digest = Safetensors.hex(CRC32.checksum(Array(lines.sorted().joined().utf8)))
    }

    var json: String {
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.sortedKeys]
        return (try? encoder.encode(self)).map { String(decoding: $0, as: UTF8.self) } ?? "{}"
    }

    init?(json: String) {
        guard let decoded = try? JSONDecoder().decode(Self.self, from: Data(json.utf8)) else { return nil }
        self = decoded
    }

    /// What changed from `stored` (the checkpoint's) to `self` (the data now), or nil when nothing did.
    func changes(since stored: TrainingSetFingerprint) -> String? {
        guard self != stored else { return nil }
        var parts: [String] = []
        if images != stored.images { parts.append("\(stored.images) → \(images) images") }
        for identity in Set(stored.imagesPerIdentity.keys).union(imagesPerIdentity.keys).sorted() {
            let before = stored.imagesPerIdentity[identity] ?? 0, now = imagesPerIdentity[identity] ?? 0
            if before != now { parts.append("\(identity): \(before) → \(now) images") }
        }
        if parts.isEmpty {
            parts.append("the same \(images) images by count, but files were replaced, renamed or resized (fingerprint \(stored.digest) → \(digest))")
        }
        return parts.joined(separator: "; ")
    }
}
