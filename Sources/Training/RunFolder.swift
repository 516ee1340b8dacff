// A run's output folder: the advisory lock against two runs in one folder, the policy of a fresh
// run towards an earlier run's checkpoints, the files a run writes there besides checkpoints, and
// the fingerprint of the training images that a resume checks.
import Foundation
#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif
import FaceData
import Checkpointing

/// An exclusive advisory lock (`flock`) on `<folder>/.lock`, held until `release()` or deinit,
/// so that two `Experiment.run`s (e.g. two `--resume`s) never write one output folder at once.
/// The lock dies with the process, so a crashed run never leaves the folder locked.
final class RunLock {
    private var descriptor: Int32
    /// Whether this lock created the folder, and its lock file (what `RunFolder.discard` removes).
    private(set) var createdFolder = false
    private(set) var createdLockFile = false

    /// Creates `folder` if needed and takes the lock without waiting.
    ///
    /// - Throws: `RunFolderError.inUse` when another process holds it, `.fileWriteFailed` when the
    ///   folder or lock file cannot be created.
    init(folder: String) throws(RunFolderError) {
        createdFolder = !FileManager.default.fileExists(atPath: folder)
        do { try FileManager.default.createDirectory(atPath: folder, withIntermediateDirectories: true) }
        catch { throw .fileWriteFailed(FileWriteError(path: folder, reason: DurableFileWriter.reason(error))) }
        let path = folder + "/.lock"
        createdLockFile = !FileManager.default.fileExists(atPath: path)
        descriptor = open(path, O_RDWR | O_CREAT | O_CLOEXEC, 0o644)
        guard descriptor >= 0 else {
            throw .fileWriteFailed(FileWriteError(path: path, reason: String(cString: strerror(errno))))
        }
        guard flock(descriptor, LOCK_EX | LOCK_NB) == 0 else {
            close(descriptor)
            descriptor = -1
            throw .inUse(directory: folder)
        }
    }

    /// Whether another process holds the lock of `folder` now (tried with a shared lock, not
    /// waiting; nothing is created: a folder without a lock file is not held).
    static func isHeld(folder: String) -> Bool {
        let descriptor = open(folder + "/.lock", O_RDONLY | O_CLOEXEC)
        guard descriptor >= 0 else { return false }
        defer { close(descriptor) }
        return flock(descriptor, LOCK_SH | LOCK_NB) != 0
    }

    func release() {
        if descriptor >= 0 { close(descriptor) }
        descriptor = -1
    }

    deinit { release() }
}

/// The output folder of one `Experiment.run`, locked (`RunLock`) from `init` to `release()`.
///
/// A fresh run (not a resume) never adopts another run's training checkpoints: it refuses a
/// folder holding `checkpoints/step-*.safetensors` or `checkpoints/best.safetensors`, or, when
/// `replacingCheckpoints`, deletes `checkpoints/` first (once the lock is held).
final class RunFolder {
    /// The folder.
    let path: String
    private let lock: RunLock

    /// Where training-state checkpoints go.
    var checkpoints: String { path + "/checkpoints" }

    /// Creates and locks `path`, then applies the fresh-run policy (nothing for a resume).
    ///
    /// - Throws: `TrainingError.runFolder`: `.inUse`, `.holdsCheckpoints`, or `.fileWriteFailed`
    ///   (the folder, its lock file, or deleting the earlier checkpoints).
    init(path: String, resume: Bool, replacingCheckpoints: Bool) throws(TrainingError) {
        self.path = path
        do { lock = try RunLock(folder: path) } catch { throw .runFolder(error) }
        guard !resume else { return }
        let checkpoints = self.checkpoints
        if replacingCheckpoints, FileManager.default.fileExists(atPath: checkpoints) {
            do { try FileManager.default.removeItem(atPath: checkpoints) } catch {
                throw .runFolder(.fileWriteFailed(FileWriteError(
                    path: checkpoints, reason: "cannot delete the earlier run's checkpoints: \(error.localizedDescription)")))
            }
        }
        if !TrainingCheckpoint.stepCheckpoints(in: checkpoints).isEmpty
            || FileManager.default.fileExists(atPath: checkpoints + "/" + TrainingCheckpoint.bestName) {
            throw .runFolder(.holdsCheckpoints(directory: path))
        }
        if replacingCheckpoints { try removeEarlierResults() }
    }

    /// The files of a finished run besides its checkpoints, which a new run in the folder writes
    /// again only at its end: left in place, an interrupted new run would sit beside the earlier
    /// run's model, and `evaluate DIR` would silently use that.
    static let resultFiles = ["model.safetensors", "config.json", "metrics.json", "report.html", "skipped-images.txt"]

    /// Deletes the earlier run's `resultFiles` (a fresh run with `replacingCheckpoints`).
    ///
    /// - Throws: `TrainingError.runFolder(.fileWriteFailed)` naming the file that cannot be deleted.
    private func removeEarlierResults() throws(TrainingError) {
        for name in Self.resultFiles where FileManager.default.fileExists(atPath: path + "/" + name) {
            do { try FileManager.default.removeItem(atPath: path + "/" + name) } catch {
                throw .runFolder(.fileWriteFailed(FileWriteError(
                    path: path + "/" + name, reason: "cannot delete the earlier run's file: \(error.localizedDescription)")))
            }
        }
    }

    /// Undoes what this run created in the folder when it fails before training (on its data,
    /// its configuration or the free space): the whole folder when the run created it, else the
    /// lock file when the run created that, and an empty `checkpoints/` left by the write probe.
    /// Then releases the lock.
    func discard() {
        let manager = FileManager.default
        if lock.createdFolder {
            try? manager.removeItem(atPath: path)
        } else {
            if (try? manager.contentsOfDirectory(atPath: checkpoints))?.isEmpty == true { try? manager.removeItem(atPath: checkpoints) }
            if lock.createdLockFile { try? manager.removeItem(atPath: path + "/.lock") }
        }
        release()
    }

    /// Releases the lock (also released when the value is freed, or the process ends).
    func release() { lock.release() }

    /// Writes `skipped-images.txt`: the files `BadImagePolicy.skip` left out, and why.
    ///
    /// - Throws: `TrainingError.runFolder(.fileWriteFailed)`.
    func writeSkippedImages(_ report: DatasetLoadReport) throws(TrainingError) {
        do { try FileManager.default.createDirectory(atPath: path, withIntermediateDirectories: true) }
        catch { throw .runFolder(.fileWriteFailed(FileWriteError(path: path, reason: DurableFileWriter.reason(error)))) }
        do { try DurableFileWriter().writeFile(Data(report.skippedImagesText.utf8), to: path + "/skipped-images.txt") }
        catch { throw .runFolder(.fileWriteFailed(error)) }
    }

    /// Points `trainer`'s checkpoints at `checkpoints` and stores with each the data folder, the
    /// training side's identities (validation identities included), the training images'
    /// `fingerprint` (what a resume checks) and the held-out images' `heldOutFingerprint` (what
    /// `evaluate` checks, `Experiment.dataChanges`).
    func attach(_ trainer: Trainer, dataDirectory: String, identities: [String], fingerprint: TrainingSetFingerprint,
                heldOutFingerprint: TrainingSetFingerprint) {
        trainer.checkpointDirectory = checkpoints
        trainer.checkpointMetadata = ["dataDirectory": dataDirectory,
                                      "identities": TrainingCheckpoint.identitiesJSON(identities),
                                      TrainingSetFingerprint.metadataKey: fingerprint.json,
                                      TrainingSetFingerprint.heldOutMetadataKey: heldOutFingerprint.json]
    }

    /// The newest step checkpoint that reads as a training state; newer unreadable ones are
    /// renamed to `<name>.unloadable` and reported to `onSkipped`, newest first.
    ///
    /// - Throws: `TrainingError.checkpoint` (`TrainingCheckpoint.newestLoadable`).
    func newestLoadableCheckpoint(onSkipped: (_ path: String, _ error: CheckpointError) -> Void) throws(TrainingError) -> String {
        do {
            let found = try TrainingCheckpoint.newestLoadable(in: checkpoints)
            for (path, error) in found.skipped {
                TrainingCheckpoint.setAside(path)
                onSkipped(path, error)
            }
            return found.path
        } catch { throw .checkpoint(error) }
    }
}

/// What a resume checks about the training images (and `evaluate` about the training and the
/// held-out images): their number, per identity, and a CRC-32 of the sorted
/// `identity/file name<TAB>byte size` lines. Stored as JSON in the checkpoint metadata keys
/// `trainingSet` (the training side) and `heldOutSet` (the held-out identities), and in
/// `model.safetensors`; files without them are used unchecked.
struct TrainingSetFingerprint: Codable, Equatable {
    static let metadataKey = "trainingSet"
    /// The metadata key of the held-out images' fingerprint.
    static let heldOutMetadataKey = "heldOutSet"
    /// The metadata keys of both fingerprints (copied into `model.safetensors`).
    static let metadataKeys = [metadataKey, heldOutMetadataKey]
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
