// A run's held-out identities as an InsightFace `.bin` verification set (`arcface make-pairs`),
// to watch them during training with `--verify` or to score them with insightface's tools.
import Foundation
import FaceData
import FaceEvaluation
import RunConfiguration
import Checkpointing

extension Experiment {
    /// The held-out identities of the run `configuration` describes on `directory` (the split of
    /// `loadSplit`: `heldOutIdentities` identities chosen with `seed`) as a `.bin` verification
    /// set: the balanced pairs of the run's final evaluation (`balancedPairsInFoldOrder`: every
    /// genuine pair and as many seeded impostor pairs) in the order whose `folds` contiguous
    /// folds are its folds, so the set's k-fold accuracy with `configuration.folds` folds is the
    /// run's balanced accuracy. Each image is stored as its file's bytes (PGM, JPEG or PNG, as in
    /// `directory`; insightface's `lfw2pack.py` also stores the files as they are).
    ///
    /// - Returns: the set (`path` is `path`) and the held-out identities' names.
    /// - Throws: `TrainingError.data` (the data cannot be loaded or split, the held-out set is too
    ///   small) or `.verificationSet` (an image file cannot be read again).
    public static func heldOutVerificationBin(directory: String, configuration: TrainingConfiguration,
                                              path: String) throws(TrainingError) -> (set: VerificationBin, identities: [String]) {
        let (_, heldOut) = try split(directory: directory, configuration: configuration)
        let pairs = balancedPairsInFoldOrder(labels: heldOut.labels, seed: configuration.seed)
        var bytes: [[UInt8]] = []
        var files: [Int: [UInt8]] = [:]
        for pair in pairs {
            for index in [pair.first, pair.second] {
                if files[index] == nil {
                    guard let data = FileManager.default.contents(atPath: heldOut.paths[index]) else {
                        throw .verificationSet(.image(.unreadableFile(path: heldOut.paths[index], reason: "cannot read the file again")))
                    }
                    files[index] = [UInt8](data)
                }
                bytes.append(files[index]!)
            }
        }
        return (VerificationBin(path: path, encodedImages: bytes, isSame: pairs.map(\.isSame)), heldOut.identities)
    }

    /// Writes `set` to `set.path` durably (`VerificationBin.pickled()`, temporary file, fsync,
    /// rename).
    ///
    /// - Throws: `TrainingError.runFolder(.fileWriteFailed)` naming the file.
    public static func write(_ set: VerificationBin) throws(TrainingError) {
        do { try DurableFileWriter().writeFile(Data(set.pickled()), to: set.path) }
        catch { throw .runFolder(.fileWriteFailed(error)) }
    }
}
