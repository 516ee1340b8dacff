import Foundation
import TensorCore
import FaceData
import FaceEvaluation
import RunConfiguration
import Checkpointing
import Inference
import Reporting
import Collectives

/// The open-set protocol on one folder-per-identity dataset: a seeded split by identity,
/// training on one part, verification on the held-out identities.
public enum Experiment {
    /// The format tag and version written into the metadata of `model.safetensors`.
    public static let checkpointFormat = TrainingCheckpoint.format
    public static let checkpointVersion = "1"

    /// Loads `directory` and splits it by identity: `loadSplit` without the load report.
    public static func split(directory: String, configuration: TrainingConfiguration) throws(TrainingError)
        -> (train: FaceDataset, heldOut: FaceDataset) {
        let (train, heldOut, _) = try loadSplit(directory: directory, configuration: configuration)
        return (train, heldOut)
    }

    /// Loads `directory` with `configuration.onBadImage` (images converted to the backbone's input
    /// channels and resized and centre-cropped to its input size), splits it by identity with
    /// `configuration.seed`, checks that the held-out identities support the verification
    /// protocol, and returns what loading left out or found questionable.
    public static func loadSplit(directory: String, configuration: TrainingConfiguration) throws(TrainingError)
        -> (train: FaceDataset, heldOut: FaceDataset, report: DatasetLoadReport) {
        let parts: (train: FaceDataset, heldOut: FaceDataset)
        let report: DatasetLoadReport
        do {
            let input = configuration.backbone
            let loaded = try FaceDataset.load(directory: directory,
                                              imageSize: ImageSize(width: input.inputWidth, height: input.inputHeight),
                                              colorMode: input.inputChannels == 3 ? .rgb : .grayscale,
                                              onBadImage: configuration.onBadImage)
            report = loaded.report
            parts = try loaded.dataset.splitByIdentity(heldOutIdentityCount: configuration.heldOutIdentities, seed: configuration.seed)
        } catch { throw .data(.dataset(error)) }
        try checkCompatible(parts.train, with: configuration)
        // Verification needs genuine pairs, and the balanced list at least one pair per fold.
        try checkHeldOutPairs(labels: parts.heldOut.labels, configuration: configuration)
        return (parts.train, parts.heldOut, report)
    }

    /// Checks that `dataset`'s images fit the backbone's input.
    static func checkCompatible(_ dataset: FaceDataset, with configuration: TrainingConfiguration) throws(TrainingError) {
        let size = dataset.imageSize, b = configuration.backbone
        guard size.width == b.inputWidth, size.height == b.inputHeight, dataset.channelCount == b.inputChannels else {
            throw .data(.imageSizeMismatch(expected: "\(b.inputChannels)×\(b.inputHeight)×\(b.inputWidth) (channels×height×width)",
                                           found: "\(dataset.channelCount)×\(size.height)×\(size.width)"))
        }
    }

    /// The verification report of `model` on `heldOut`.
    public static func evaluate(_ model: FaceRecognitionModel, on heldOut: FaceDataset,
                                configuration: TrainingConfiguration) -> VerificationReport {
        let embedded = embeddings(of: heldOut, backbone: model.backbone, flipSum: configuration.flipEmbeddings)
        return evaluateVerification(embeddings: embedded, labels: heldOut.labels, folds: configuration.folds,
                                    seed: configuration.seed)
    }

    /// The raw-pixel baseline's report on `heldOut`.
    public static func evaluateRawPixels(on heldOut: FaceDataset, configuration: TrainingConfiguration) -> VerificationReport {
        evaluateVerification(embeddings: rawPixelEmbeddings(of: heldOut), labels: heldOut.labels,
                             folds: configuration.folds, seed: configuration.seed)
    }

    /// Checks that every row of `embeddings` (`[N, D]`) is finite.
    ///
    /// - Throws: `TrainingError.numerics(.nonFiniteEmbeddings)` counting the rows with a NaN or ±∞.
    static func checkFinite(embeddings: Tensor) throws(TrainingError) {
        let rows = embeddings.shape[0], rowLength = embeddings.count / max(1, rows)
        let nonFinite = (0..<rows).filter { row in
            embeddings.storage[(row * rowLength)..<((row + 1) * rowLength)].contains { !$0.isFinite }
        }.count
        guard nonFinite == 0 else { throw .numerics(.nonFiniteEmbeddings(count: nonFinite, total: rows)) }
    }
}

/// The result of one training run.
public struct RunResult: Sendable {
    public var metrics: RunMetrics
    public var history: [EpochSummary]
    public var parameterCount: Int
    /// The final evaluation with its ROC, score histograms and threshold; nil on ranks other
    /// than 0 of a run on `P > 1` ranks (only rank 0 evaluates; `metrics` is rank 0's there too).
    public var evaluation: VerificationEvaluation?
}

extension Experiment {
    /// Trains on the training identities of `directory`, evaluates on the held-out ones and,
    /// when `outputDirectory` is given, saves the checkpoint, configuration, metrics and
    /// `report.html` (`TrainingReport`) there.
    ///
    /// With an `outputDirectory`, training-state checkpoints go to `<output>/checkpoints/` (see
    /// `TrainingCheckpoint`).
    ///
    /// - Parameters:
    ///   - resume: continue from the newest checkpoint in `<output>/checkpoints/` (the
    ///     configuration must be the checkpoint's: `TrainingCheckpoint.configuration(at:)`; the
    ///     training images must be the run's: count per identity, names and sizes, else
    ///     `CheckpointError.trainingSetChanged`). Without it, an output folder that already holds
    ///     training checkpoints is refused (`RunFolderError.holdsCheckpoints`) before anything
    ///     is loaded or written, unless `replacingCheckpoints`. Either way the folder is locked
    ///     (`<output>/.lock`, `flock`) for the run: a second run in it is `RunFolderError.inUse`
    ///     (`RunFolder`).
    ///   - replacingCheckpoints: for a fresh run (not `resume`), delete `<output>/checkpoints/`
    ///     (an earlier run's training states) once the lock is held, instead of refusing the
    ///     folder; the earlier run's other files are overwritten as the new run saves.
    ///   - stopRequest: polled between steps; when set, a checkpoint is written and the run
    ///     throws `TrainingError.interrupted`.
    ///   - onDataset: called once the data set is loaded, with what was skipped or is sparse
    ///     (with `BadImagePolicy.skip`, also written to `<output>/skipped-images.txt`).
    ///   - onCheckpointSkipped: with `resume`, called for each newer step checkpoint that cannot be
    ///     read (truncated or corrupt), with why, before continuing from the newest loadable one
    ///     (`TrainingCheckpoint.newestLoadable`); the skipped file is renamed to `<name>.unloadable`.
    ///   - onStart: called after the first step of a fresh run (`Trainer.onStart`).
    ///   - onVerification: called after each evaluation of `configuration.verificationSets`
    ///     (`Trainer.onVerification`); the sets are read and checked first of all
    ///     (`loadVerificationSets`), before the folder or the data are touched.
    ///   - onVerificationSets: called once the verification sets are read and checked (before
    ///     the data), e.g. for `VerificationSet.inputWarnings(against:)`.
    ///   - onEpoch: called after each epoch (for progress lines); `EpochSummary.noProgress`
    ///     carries the take-off watchdog's warning.
    ///   - initFrom: a fresh run's backbone starts from this file's weights and BatchNorm
    ///     statistics (`Trainer.initializeBackbone(from:)`), with a new head; its fingerprint goes
    ///     into every checkpoint and `model.safetensors` (`BackboneInitialization`). A resumed run
    ///     keeps its recorded fingerprint; given with `resume`, the file must have the recorded
    ///     contents (`BackboneInitializationError.differentInitialization`).
    public static func run(configuration: TrainingConfiguration, dataDirectory: String, outputDirectory: String?,
                           resume: Bool = false, replacingCheckpoints: Bool = false, stopRequest: StopRequest? = nil,
                           initFrom: String? = nil,
                           onDataset: (DatasetLoadReport) -> Void = { _ in },
                           onCheckpointSkipped: (_ path: String, _ error: CheckpointError) -> Void = { _, _ in },
                           onStart: @escaping (TakeOffStart) -> Void = { _ in },
                           onVerification: @escaping (VerificationRecord) -> Void = { _ in },
                           onVerificationSets: ([VerificationSet]) -> Void = { _ in },
                           communicator: any Communicator = SingleProcessCommunicator(),
                           onEpoch: (EpochSummary) -> Void = { _ in }) throws(TrainingError) -> RunResult {
        let verificationSets = try loadVerificationSets(configuration)
        onVerificationSets(verificationSets)
        // One run per output folder at a time; a fresh run never adopts another run's checkpoints.
        // On P > 1 ranks only rank 0 holds the folder (its lock, its files); the others wait for it.
        let isRoot = communicator.rank == 0
        var folderFailure: TrainingError?
        var folder: RunFolder?
        if isRoot {
            do throws(TrainingError) {
                folder = try outputDirectory.map { path throws(TrainingError) in
                    try RunFolder(path: path, resume: resume, replacingCheckpoints: replacingCheckpoints)
                }
            } catch { folderFailure = error }
        }
        try agreeWithRoot(communicator, failure: folderFailure, what: "opening the run folder")
        defer { folder?.release() }
        // A failure before this run has a checkpoint (on the data, the configuration, the free
        // space, an early non-finite step) leaves the folder as it was: what the run created in
        // it is removed (`RunFolder.discard`).
        var keepFolder = false
        defer { if !keepFolder { folder?.discard() } }
        // A folder is decoded into memory; a RecordIO pack (`.rec`) is streamed (held-out images decoded).
        let (train, heldOut, fingerprint, heldOutFingerprint, loadReport) = try loadTrainingSplit(data: dataDirectory, configuration: configuration)
        onDataset(loadReport)
        if configuration.onBadImage == .skip, !isRecordIOPack(dataDirectory) { try folder?.writeSkippedImages(loadReport) }
        let trainer = try Trainer(configuration: configuration, trainingImages: train, communicator: communicator)
        if let stopRequest { trainer.stopRequest = stopRequest }
        trainer.onStart = onStart
        trainer.verificationSets = verificationSets
        trainer.onVerification = onVerification
        if let folder {
            folder.attach(trainer, dataDirectory: dataDirectory, identities: train.identities, fingerprint: fingerprint,
                          heldOutFingerprint: heldOutFingerprint)
        } else if let outputDirectory, !isRoot {
            // The other ranks take part in every checkpoint (the head's slices are gathered) but
            // write nothing; with resume they read the checkpoint rank 0 chose (a shared folder).
            trainer.checkpointDirectory = outputDirectory + "/checkpoints"
        }
        if resume, outputDirectory != nil {
            var chosen: String?
            var resumeFailure: TrainingError?
            if let folder {
                do throws(TrainingError) {
                    let latest = try folder.newestLoadableCheckpoint(onSkipped: onCheckpointSkipped)
                    try checkResumable(latest, identities: train.identities, fingerprint: fingerprint)
                    chosen = latest
                } catch { resumeFailure = error }
            }
            try agreeWithRoot(communicator, failure: resumeFailure, what: "choosing the checkpoint to resume")
            if communicator.size == 1, let chosen {
                try trainer.restore(from: chosen)
            } else {
                // The step of rank 0's choice (`step-XXXXXXXX.safetensors`), for the other ranks.
                let name = chosen.map { ($0 as NSString).lastPathComponent } ?? ""
                var step = [Int(name.dropFirst("step-".count).prefix { $0.isNumber }) ?? -1]
                do { try communicator.broadcast(&step, root: 0) }
                catch { throw .distributed(.communication(error, step: 0, what: "broadcasting the checkpoint to resume")) }
                try trainer.restore(from: chosen ?? TrainingCheckpoint.path(in: trainer.checkpointDirectory!, step: step[0]))
            }
            if let chosen { try carryInitialization(from: chosen, to: trainer, given: initFrom) }
        }
        if let initFrom, !(resume && outputDirectory != nil) {
            do { try trainer.initializeBackbone(from: initFrom) } catch { throw .initialization(error) }
        }
        let outcome: TrainingOutcome
        do { outcome = try trainer.run(onEpoch: onEpoch) } catch {
            keepFolder = trainer.lastCheckpoint != nil
            throw error
        }
        keepFolder = true
        if case let .stopped(step, checkpoint) = outcome {
            throw .interrupted(step: step, signal: trainer.stopRequest.signal, checkpoint: checkpoint)
        }
        // On P > 1 ranks the head is gathered (every rank takes part) so that model.safetensors holds
        // all classes and loads with any P; the head is not used for a step again.
        if let (centers, _) = try trainer.gatheredHead() { trainer.model.head.parameters[0].value = centers }
        // Rank 0 alone evaluates and writes; the other ranks wait at the agreement that follows
        // (a failure of rank 0 ends them too), then receive rank 0's metrics.
        var result: RunResult?
        var rootFailure: TrainingError?
        if isRoot {
            do throws(TrainingError) {
                result = try evaluateAndSave(trainer, heldOut: heldOut, identities: train.identities, folder: folder)
            } catch { rootFailure = error }
        }
        try agreeWithRoot(communicator, failure: rootFailure, what: "evaluating and saving the results")
        guard communicator.size > 1 else { return result! }
        let metrics = try Trainer.broadcastFromRoot(result?.metrics, communicator: communicator, step: trainer.step,
                                                    what: "broadcasting the metrics")
        return result ?? RunResult(metrics: metrics, history: trainer.history, parameterCount: trainer.model.parameterCount,
                                   evaluation: nil)
    }

    /// After training (rank 0 only on `P > 1` ranks): saves the model (before evaluating, so that
    /// nothing can lose the run), evaluates it on `heldOut` and saves the metrics and report into `folder`.
    ///
    /// - Throws: `TrainingError.checkpoint`, `.runFolder(.fileWriteFailed)`, `.numerics(.nonFiniteEmbeddings)`.
    static func evaluateAndSave(_ trainer: Trainer, heldOut: FaceDataset, identities: [String],
                                folder: RunFolder?) throws(TrainingError) -> RunResult {
        let configuration = trainer.configuration, communicator = trainer.communicator
        if let folder {
            do {
                try save(trainer.model, metrics: nil, identities: identities,
                         additionalMetadata: fingerprintMetadata(of: trainer), to: folder.path)
            }
            catch { throw .checkpoint(error) }
        }
        let (evaluation, flips) = try evaluateTrainedWithAndWithoutFlip(trainer.model, on: heldOut, configuration: configuration)
        var metrics = RunMetrics(trainer, verification: evaluation.report)
        metrics.flipComparison = flips
        metrics.preprocessing = configuration.preprocessing
        (metrics.verificationSets, metrics.bestBy) = verificationMetrics(of: trainer)
        if communicator.size > 1 {
            metrics.distributed = DistributedMetrics(ranks: communicator.size, communicationSeconds: trainer.communicationSeconds)
        }
        metrics.takeOff = trainer.watchdog.verdict(history: trainer.history,
                                                   heldOut: heldOutSpread(trainer.model, on: heldOut, configuration: configuration))
        if let folder {
            try saveResults(of: trainer, metrics: metrics, evaluation: evaluation, identities: identities, in: folder)
        }
        return RunResult(metrics: metrics, history: trainer.history, parameterCount: trainer.model.parameterCount,
                         evaluation: evaluation)
    }

    /// Checks that the newest checkpoint `latest` belongs to a run on these training images:
    /// the same identities in the same order (labels index them) and, when the checkpoint
    /// stores a `TrainingSetFingerprint` (written since it exists), the same images.
    ///
    /// - Throws: `TrainingError.checkpoint(.identityMismatch)` or `.checkpoint(.trainingSetChanged)`.
    static func checkResumable(_ latest: String, identities: [String],
                               fingerprint: TrainingSetFingerprint) throws(TrainingError) {
        let metadata: [String: String]
        do { metadata = try Safetensors.read(path: latest).metadata } catch { throw .checkpoint(error) }
        if let stored = metadata["identities"].flatMap(TrainingCheckpoint.identities(fromJSON:)), stored != identities {
            throw .checkpoint(.identityMismatch(path: latest, reason: "the data's training identities differ from the run being resumed"))
        }
        if let stored = metadata[TrainingSetFingerprint.metadataKey].flatMap(TrainingSetFingerprint.init(json:)),
           let changes = fingerprint.changes(since: stored) {
            throw .checkpoint(.trainingSetChanged(path: latest, reason: changes))
        }
    }

    /// The data fingerprints and the backbone's initialization among `trainer`'s checkpoint
    /// metadata, for `model.safetensors`.
    static func fingerprintMetadata(of trainer: Trainer) -> [String: String] {
        trainer.checkpointMetadata.filter {
            TrainingSetFingerprint.metadataKeys.contains($0.key) || $0.key == BackboneInitialization.metadataKey
        }
    }

    /// Keeps the `BackboneInitialization` recorded in the checkpoint `latest` in the resumed
    /// run's metadata; with `given` (`--init-from` on a resume), that file must have the recorded contents.
    ///
    /// - Throws: `TrainingError.initialization(.differentInitialization)` (or `.file` when `given`
    ///   cannot be read), `.checkpoint` when `latest` cannot be read.
    static func carryInitialization(from latest: String, to trainer: Trainer, given: String?) throws(TrainingError) {
        let metadata: [String: String]
        do { metadata = try Safetensors.read(path: latest).metadata } catch { throw .checkpoint(error) }
        let stored = metadata[BackboneInitialization.metadataKey].flatMap(BackboneInitialization.init(json:))
        if let given {
            let file = modelFile(at: given)
            let data: Data
            do { data = try Data(contentsOf: URL(fileURLWithPath: file)) }
            catch { throw .initialization(.file(.unreadable(path: file, reason: error.localizedDescription))) }
            let current = BackboneInitialization(fingerprinting: data, path: file)
            guard let stored, stored.sameContents(as: current) else {
                throw .initialization(.differentInitialization(
                    given: current, stored: stored ?? BackboneInitialization(path: "none (a run from random weights)", byteCount: 0, crc32: 0)))
            }
        }
        if let stored { trainer.checkpointMetadata[BackboneInitialization.metadataKey] = stored.json }
    }

    /// The detailed verification of a trained `model` on `heldOut`, after checking its embeddings
    /// are finite (metrics encoding must never be the first place a NaN shows).
    ///
    /// - Throws: `TrainingError.numerics(.nonFiniteEmbeddings)`.
    static func evaluateTrained(_ model: FaceRecognitionModel, on heldOut: FaceDataset,
                                configuration: TrainingConfiguration) throws(TrainingError) -> VerificationEvaluation {
        let embedded = embeddings(of: heldOut, backbone: model.backbone, flipSum: configuration.flipEmbeddings)
        try checkFinite(embeddings: embedded)
        return evaluateVerificationInDetail(embeddings: embedded, labels: heldOut.labels,
                                            folds: configuration.folds, seed: configuration.seed)
    }

    /// `evaluateTrained` plus the other flip setting's report (`FlipComparison`), from one
    /// embedding loop; both embeddings are checked finite.
    ///
    /// - Throws: `TrainingError.numerics(.nonFiniteEmbeddings)`.
    static func evaluateTrainedWithAndWithoutFlip(_ model: FaceRecognitionModel, on heldOut: FaceDataset,
                                                  configuration: TrainingConfiguration) throws(TrainingError)
        -> (evaluation: VerificationEvaluation, flips: FlipComparison)
    {
        let both = embeddingsWithAndWithoutFlip(of: heldOut, backbone: model.backbone)
        try checkFinite(embeddings: configuration.flipEmbeddings ? both.flipSummed : both.original)
        try checkFinite(embeddings: configuration.flipEmbeddings ? both.original : both.flipSummed)
        return evaluateBoth(both, labels: heldOut.labels, configuration: configuration)
    }

    /// Saves the model with its metrics (`save`) and writes `report.html` into `folder`.
    ///
    /// - Throws: `TrainingError.checkpoint` (the model files) or `.runFolder(.fileWriteFailed)`
    ///   (the report).
    static func saveResults(of trainer: Trainer, metrics: RunMetrics, evaluation: VerificationEvaluation,
                            identities: [String], in folder: RunFolder) throws(TrainingError) {
        do {
            try save(trainer.model, metrics: metrics, identities: identities,
                     additionalMetadata: fingerprintMetadata(of: trainer), to: folder.path)
        } catch { throw .checkpoint(error) }
        let configuration = trainer.configuration
        do {
            try TrainingReport(title: configuration.runName, configuration: configuration, history: trainer.history,
                               evaluations: [EvaluationRecord(epoch: trainer.history.count, report: evaluation.report)],
                               finalEvaluation: evaluation, metrics: metrics).write(to: folder.path + "/report.html")
        } catch { throw .runFolder(.fileWriteFailed(error)) }
    }
}

extension RunMetrics {
    /// The metrics of `trainer`'s run with its final `verification`: throughput, timing and
    /// seconds of all sessions, and the last session's own numbers when the run was resumed
    /// and that session trained (a resume of a run trained to its end but not yet saved only
    /// evaluates: no session of zero images at zero images per second is reported).
    init(_ trainer: Trainer, verification: VerificationReport) {
        let session = trainer.session > 1 && trainer.sessionTiming.images > 0
            ? SessionMetrics(number: trainer.session, trainingSeconds: trainer.sessionSeconds,
                             imagesPerSecond: trainer.sessionTiming.imagesPerSecond, timing: trainer.sessionTiming)
            : nil
        self.init(verification: verification, trainImagesPerSecond: trainer.timing.imagesPerSecond,
                  timing: trainer.timing, finalTrainingLoss: trainer.history.last?.loss ?? .nan,
                  trainingSeconds: trainer.totalSeconds, skippedSteps: trainer.skippedSteps, session: session)
    }
}

extension Experiment {
    /// On `P > 1` ranks: every rank learns whether rank 0's `failure` happened (an all-reduce MAX
    /// of a flag, which is also the point where the other ranks wait for rank 0); rank 0 throws
    /// its own error, the others `.distributed(.rankFailed(rank: 0, …))`. One rank: throws `failure`.
    static func agreeWithRoot(_ communicator: any Communicator, failure: TrainingError?, what: String) throws(TrainingError) {
        guard communicator.size > 1 else {
            if let failure { throw failure }
            return
        }
        var flag = [failure == nil ? 0 : 1]
        do { try communicator.allReduce(&flag, .max) }
        catch { throw .distributed(.communication(error, step: 0, what: what)) }
        if let failure { throw failure }
        if flag[0] != 0 { throw .distributed(.rankFailed(rank: 0, step: 0, what: what)) }
    }
}
