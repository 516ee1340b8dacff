// Verification sets during training (`verificationSets`, `verifyEverySteps`, `bestBy`), as
// arcface_torch's `CallBackVerification`: fixed-pairs sets (InsightFace `.bin`, LFW `pairs.txt`)
// evaluated every N steps and after the last step, k-fold accuracy ± standard deviation with and
// without flip-summing, optionally choosing `best.safetensors`.
import Foundation
import FaceData
import FaceEvaluation
import RunConfiguration
import Checkpointing
import Inference
import Reporting

/// A verification set of a run: its entry in `verificationSets`, its name and its pairs.
public struct VerificationSet: Sendable {
    /// The configuration's entry, parsed.
    public var spec: VerificationSetSpec
    /// The pairs, their folds and images.
    public var pairs: PairProtocolSet

    /// The channels and sizes of its images as decoded (`PairProtocolSet.checkImages`).
    public var sources: InputSourceTally

    /// The set's name (`VerificationSetSpec.name`).
    public var name: String { spec.name }

    public init(spec: VerificationSetSpec, pairs: PairProtocolSet, sources: InputSourceTally = InputSourceTally()) {
        self.spec = spec
        self.pairs = pairs
        self.sources = sources
    }

    /// One line per way the set's images differ from the model's input (grey for colour, another
    /// size: they are converted, as `evaluate-protocol` warns), each starting with the set's file.
    public func inputWarnings(against preprocessing: InputPreprocessing) -> [String] {
        sources.mismatchWarnings(against: preprocessing).map { spec.path + ": " + $0 }
    }
}

extension Experiment {
    /// Reads every set of `configuration.verificationSets` and checks it can be evaluated: the
    /// file parses, its pairs and folds give a k-fold accuracy (`.bin`: `configuration.folds`
    /// contiguous folds; `pairs.txt`: its own), every image exists and decodes. Run before
    /// anything else of a run, so a bad set fails before training starts.
    ///
    /// - Throws: `TrainingError.verificationSet` naming the file.
    public static func loadVerificationSets(_ configuration: TrainingConfiguration) throws(TrainingError) -> [VerificationSet] {
        var sets: [VerificationSet] = []
        for spec in configuration.verificationSetSpecs {
            let pairs: PairProtocolSet
            let sources: InputSourceTally
            do throws(PairProtocolError) {
                if let root = spec.root {
                    let lfw: LFWPairs
                    do { lfw = try LFWPairs.read(path: spec.path) } catch { throw PairProtocolError.pairs(error) }
                    var isDirectory: ObjCBool = false
                    guard FileManager.default.fileExists(atPath: root, isDirectory: &isDirectory), isDirectory.boolValue else {
                        throw PairProtocolError.unusablePairs(path: spec.path, reason: "the image folder \(root) does not exist or is not a folder")
                    }
                    pairs = try PairProtocolSet(lfwPairs: lfw, root: root)
                } else {
                    let bin: VerificationBin
                    do { bin = try VerificationBin.read(path: spec.path) } catch { throw PairProtocolError.pairs(error) }
                    pairs = try PairProtocolSet(bin: bin, folds: configuration.folds)
                }
                sources = try pairs.checkImages()
            } catch { throw .verificationSet(error) }
            sets.append(VerificationSet(spec: spec, pairs: pairs, sources: sources))
        }
        return sets
    }
}

extension VerificationScore {
    /// The mean fold accuracy, the standard deviation of the fold accuracies (divisor k, as
    /// insightface's `np.std`) and the AUC of `report`.
    init(_ report: PairProtocolReport) {
        let k = Double(max(report.foldAccuracies.count, 1))
        let mean = report.foldAccuracies.reduce(0, +) / k
        let variance = report.foldAccuracies.reduce(0) { $0 + ($1 - mean) * ($1 - mean) } / k
        self.init(accuracy: report.accuracy, standardDeviation: variance.squareRoot(), auc: report.auc)
    }
}

extension Trainer {
    /// Total steps of the run (`epochs` × batches per epoch): the step after which the last
    /// verification runs.
    var totalSteps: Int { configuration.epochs * loader.batchesPerEpoch }

    /// Whether `step` is a verification step: every `verifyEverySteps` steps and the last one.
    func isVerificationStep(_ step: Int) -> Bool {
        step == totalSteps || configuration.verifyEverySteps > 0 && step % configuration.verifyEverySteps == 0
    }

    /// After a step: evaluates the verification sets when `step` is due (`isVerificationStep`),
    /// appends the record to `verifications`, calls `onVerification`, and updates the `bestBy`
    /// set's highest accuracy. On `P > 1` ranks only rank 0 evaluates (`verify`); the others
    /// wait for its record (broadcast), so every rank holds the same records and best accuracy
    /// and agrees on writing `best.safetensors`.
    ///
    /// - Returns: whether the `bestBy` set reached a new highest accuracy (the checkpoint of this
    ///   step becomes `best.safetensors`; ties keep the earlier one).
    /// - Throws: `TrainingError.verificationSet` (an image stopped decoding since the run began); on
    ///   `P > 1` ranks the other ranks `.distributed(.rankFailed(rank: 0, …))` then.
    func verifyIfDue() throws(TrainingError) -> Bool {
        guard !verificationSets.isEmpty, isVerificationStep(step) else { return false }
        let record: VerificationRecord
        if isDistributed {
            let local = try onRoot("evaluating the verification sets") { () throws(TrainingError) in try verify() }
            record = try Self.broadcastFromRoot(local, communicator: communicator, step: step,
                                                what: "broadcasting the verification record")
        } else {
            record = try verify()
        }
        verifications.append(record)
        onVerification?(record)
        guard let accuracy = record.set(named: configuration.bestBy)?.score(flipEmbeddings: configuration.flipEmbeddings).accuracy,
              accuracy.isFinite, accuracy > (bestVerificationAccuracy ?? -.infinity) else { return false }
        bestVerificationAccuracy = accuracy
        return true
    }

    /// Evaluates every verification set on the current weights, with and without flip-summing.
    ///
    /// The backbone runs in inference mode (BatchNorm's running statistics, no dropout): every
    /// forward pass takes its mode as an argument and the training step passes `.training`, so
    /// there is no mode to restore, and nothing of the training state changes (no BatchNorm
    /// update, no random draw): training continues bit-identically to a run without sets.
    ///
    /// - Throws: `TrainingError.verificationSet` (an image fails to decode).
    public func verify() throws(TrainingError) -> VerificationRecord {
        var scores: [VerificationSetScore] = []
        for set in verificationSets {
            let reports: (withFlip: PairProtocolReport, withoutFlip: PairProtocolReport)
            do { reports = try PairProtocolEvaluation.evaluateWithAndWithoutFlip(model.backbone, set: set.pairs) }
            catch { throw .verificationSet(error) }
            scores.append(VerificationSetScore(name: set.name, withFlip: VerificationScore(reports.withFlip),
                                               withoutFlip: VerificationScore(reports.withoutFlip)))
        }
        return VerificationRecord(step: step, epoch: history.count + 1, sets: scores)
    }
}

extension Experiment {
    /// `metrics.json`'s `verificationSets` and `bestBy` for `trainer`'s run (nil, nil without sets).
    static func verificationMetrics(of trainer: Trainer) -> ([VerificationSetMetrics]?, BestByVerification?) {
        guard !trainer.verificationSets.isEmpty else { return (nil, nil) }
        let configuration = trainer.configuration
        let sets = trainer.verificationSets.compactMap { set in
            let genuine = set.pairs.pairs.count { $0.isSame }
            let folds = (set.pairs.foldOfPair.max() ?? -1) + 1
            let source = set.spec.root.map { set.spec.path + ":" + $0 } ?? set.spec.path
            return VerificationSetMetrics(name: set.name, source: source, genuinePairCount: genuine,
                                          impostorPairCount: set.pairs.pairs.count - genuine, folds: folds,
                                          records: trainer.verifications, flipEmbeddings: configuration.flipEmbeddings)
        }
        let best = sets.first { $0.name == configuration.bestBy }.map {
            BestByVerification(set: $0.name, step: $0.best.step,
                               accuracy: (configuration.flipEmbeddings ? $0.best.withFlip : $0.best.withoutFlip).accuracy)
        }
        return (sets.isEmpty ? nil : sets, best)
    }
}
