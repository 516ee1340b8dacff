// Whether the images a checkpoint is evaluated on are the images its run had: `arcface evaluate`
// recomputes the split from the stored seed, and a data folder edited since would otherwise give
// metrics on another held-out set without a word.
import Foundation
import FaceData
import Checkpointing

/// How the images of a data folder differ from those of the run that wrote a checkpoint
/// (`Experiment.dataChanges`), compared by `TrainingSetFingerprint`: the image count per identity
/// and a CRC-32 of the sorted `identity/file name<TAB>byte size` lines.
public struct DataChanges: Sendable, Equatable, CustomStringConvertible {
    /// The file whose stored fingerprints were compared (the checkpoint, or for a
    /// `model.safetensors` written before it stored them, the run's newest step checkpoint).
    public var checkpoint: String
    /// What changed in the training side's images (validation identities included), e.g.
    /// "20 → 19 images; s4: 5 → 4 images (fingerprint 1a2b3c4d → 5e6f7a8b)"; nil when nothing did.
    public var trainingImages: String?
    /// What changed in the held-out identities' images; nil when nothing did or when the
    /// checkpoint stores no held-out fingerprint (`heldOutChecked` false).
    public var heldOutImages: String?
    /// Whether the checkpoint stores a fingerprint of the held-out images (written since it exists).
    public var heldOutChecked: Bool

    /// "held-out images: …; training images: …", the parts that changed.
    public var description: String {
        [heldOutImages.map { "held-out images: " + $0 }, trainingImages.map { "training images: " + $0 }]
            .compactMap { $0 }.joined(separator: "; ")
    }
}

extension Experiment {
    /// How `trainingSet` and `heldOut`, the split of a data folder now (`split(directory:configuration:)`
    /// with the checkpoint's configuration), differ from the images of the run that wrote the
    /// checkpoint at `path`; nil when they are the same, or when there is nothing to compare with.
    ///
    /// The fingerprints are read from the file's metadata (`trainingSet` and `heldOutSet`, in
    /// training checkpoints, `best.safetensors` and `model.safetensors`). A `model.safetensors`
    /// written before it stored them is compared with the newest step checkpoint in
    /// `checkpoints/` beside it, when there is one. A checkpoint from before the held-out
    /// fingerprint is compared on the training images alone; one from before any fingerprint,
    /// or a file whose metadata cannot be read, gives nil. Pixel edits that keep a file's name
    /// and byte size are not noticed.
    ///
    /// - Parameter path: what `loadCheckpoint(path:)` takes: a model or checkpoint file, or a run folder.
    public static func dataChanges(sinceCheckpoint path: String, trainingSet: FaceDataset, heldOut: FaceDataset) -> DataChanges? {
        let file = modelFile(at: path)
        func storedFingerprints(_ file: String) -> (training: TrainingSetFingerprint, heldOut: TrainingSetFingerprint?)? {
            guard let metadata = try? Safetensors.read(path: file).metadata,
                  let training = metadata[TrainingSetFingerprint.metadataKey].flatMap(TrainingSetFingerprint.init(json:))
            else { return nil }
            return (training, metadata[TrainingSetFingerprint.heldOutMetadataKey].flatMap(TrainingSetFingerprint.init(json:)))
        }
        var source = file
        var stored = storedFingerprints(file)
        if stored == nil, (file as NSString).lastPathComponent == "model.safetensors",
           let newest = TrainingCheckpoint.latest(in: (file as NSString).deletingLastPathComponent + "/checkpoints") {
            source = newest
            stored = storedFingerprints(newest)
        }
        guard let stored else { return nil }
        func changes(_ now: TrainingSetFingerprint, since before: TrainingSetFingerprint) -> String? {
            guard let changes = now.changes(since: before) else { return nil }
            return changes.contains(before.digest) ? changes : changes + " (fingerprint \(before.digest) → \(now.digest))"
        }
        let result = DataChanges(checkpoint: source,
                                 trainingImages: changes(TrainingSetFingerprint(trainingSet), since: stored.training),
                                 heldOutImages: stored.heldOut.flatMap { changes(TrainingSetFingerprint(heldOut), since: $0) },
                                 heldOutChecked: stored.heldOut != nil)
        return result.trainingImages == nil && result.heldOutImages == nil ? nil : result
    }
}
