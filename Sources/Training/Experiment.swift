import Foundation
import TensorCore
import FaceData
import FaceEvaluation

/// The metrics a run writes to `metrics.json`: the verification report on held-out identities
/// plus training throughput and its split. Throughput, timing and seconds cover **every session**
/// of the run (a run resumed with `--resume` included); `session` holds the last session's own
/// numbers when the run was resumed.
public struct RunMetrics: Codable, Sendable, Equatable {
    public var verification: VerificationReport
    /// Training images per second over all sessions.
    public var trainImagesPerSecond: Double
    /// Where training time went over all sessions.
    public var timing: TimingBreakdown
    public var finalTrainingLoss: Double
    /// Wall-clock seconds of training over all sessions.
    public var trainingSeconds: Double
    /// Training steps skipped for non-finite values (`NonFinitePolicy.skip`).
    public var skippedSteps: Int
    /// The last session's own numbers when the run was resumed (nil: one session, the totals).
    public var session: SessionMetrics?

    enum CodingKeys: String, CodingKey {
        case trainImagesPerSecond, timing, finalTrainingLoss, trainingSeconds, skippedSteps, session
    }

    public init(verification: VerificationReport, trainImagesPerSecond: Double, timing: TimingBreakdown,
                finalTrainingLoss: Double, trainingSeconds: Double, skippedSteps: Int = 0, session: SessionMetrics? = nil) {
        self.skippedSteps = skippedSteps
        self.session = session
        self.verification = verification
        self.trainImagesPerSecond = trainImagesPerSecond
        self.timing = timing
        self.finalTrainingLoss = finalTrainingLoss
        self.trainingSeconds = trainingSeconds
    }

    // The verification keys sit at the top level of metrics.json, beside the throughput keys.
    public init(from decoder: any Decoder) throws {
        verification = try VerificationReport(from: decoder)
        let container = try decoder.container(keyedBy: CodingKeys.self)
        trainImagesPerSecond = try container.decode(Double.self, forKey: .trainImagesPerSecond)
        timing = try container.decode(TimingBreakdown.self, forKey: .timing)
        finalTrainingLoss = try container.decode(Double.self, forKey: .finalTrainingLoss)
        trainingSeconds = try container.decode(Double.self, forKey: .trainingSeconds)
        skippedSteps = try container.decodeIfPresent(Int.self, forKey: .skippedSteps) ?? 0
        session = try container.decodeIfPresent(SessionMetrics.self, forKey: .session)
    }

    public func encode(to encoder: any Encoder) throws {
        try verification.encode(to: encoder)
        var container = encoder.container(keyedBy: CodingKeys.self)
        try container.encode(trainImagesPerSecond, forKey: .trainImagesPerSecond)
        try container.encode(timing, forKey: .timing)
        try container.encode(finalTrainingLoss, forKey: .finalTrainingLoss)
        try container.encode(trainingSeconds, forKey: .trainingSeconds)
        try container.encode(skippedSteps, forKey: .skippedSteps)
        try container.encodeIfPresent(session, forKey: .session)
    }
}

/// The open-set protocol on one folder-per-identity dataset: a seeded split by identity,
/// training on one part, verification on the held-out identities.
public enum Experiment {
    /// The format tag and version written into checkpoint metadata.
    public static let checkpointFormat = "swift-arcface"
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
        } catch { throw .dataset(error) }
        try checkCompatible(parts.train, with: configuration)
        // Verification needs genuine pairs, and the balanced list at least one pair per fold.
        let genuine = Dictionary(grouping: parts.heldOut.labels, by: { $0 }).values.reduce(0) { $0 + $1.count * ($1.count - 1) / 2 }
        guard genuine > 0 else {
            throw .heldOutSetTooSmall(reason: "no held-out identity has two images, so there are no genuine pairs")
        }
        guard 2 * genuine >= configuration.folds else {
            throw .heldOutSetTooSmall(reason: "\(2 * genuine) balanced pairs cannot fill \(configuration.folds) folds")
        }
        return (parts.train, parts.heldOut, report)
    }

    /// Checks that `dataset`'s images fit the backbone's input.
    static func checkCompatible(_ dataset: FaceDataset, with configuration: TrainingConfiguration) throws(TrainingError) {
        let size = dataset.imageSize, b = configuration.backbone
        guard size.width == b.inputWidth, size.height == b.inputHeight, dataset.channelCount == b.inputChannels else {
            throw .imageSizeMismatch(expected: "\(b.inputChannels)×\(b.inputHeight)×\(b.inputWidth) (channels×height×width)",
                                     found: "\(dataset.channelCount)×\(size.height)×\(size.width)")
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

    /// Writes `model.safetensors` (weights, running statistics, configuration in the metadata),
    /// `config.json` and, when given, `metrics.json` into `directory`, each atomically.
    public static func save(_ model: FaceRecognitionModel, metrics: RunMetrics?, identities: [String],
                            to directory: String) throws(CheckpointError) {
        do { try FileManager.default.createDirectory(atPath: directory, withIntermediateDirectories: true) }
        catch { throw .writeFailed(path: directory, reason: error.localizedDescription) }
        let configurationJSON = String(decoding: model.configuration.jsonData(), as: UTF8.self)
        let identitiesJSON = identitiesJSON(identities)
        if let bad = model.namedTensors.first(where: { !$0.tensor.isFinite }) {
            throw .nonFiniteWrite(path: directory + "/model.safetensors", name: bad.name)
        }
        try Safetensors.write(model.namedTensors, metadata: [
            "format": checkpointFormat, "version": checkpointVersion,
            "configuration": configurationJSON, "classCount": String(model.classCount),
            "identities": identitiesJSON,
        ], checksum: true, to: directory + "/model.safetensors")
        try writeAtomically(model.configuration.jsonData(), to: directory + "/config.json")
        if let metrics {
            let encoder = JSONEncoder()
            encoder.outputFormatting = [.prettyPrinted, .sortedKeys]
            guard let data = try? encoder.encode(metrics) else {
                throw .writeFailed(path: directory + "/metrics.json", reason: "metrics are not encodable (non-finite value?)")
            }
            try writeAtomically(data, to: directory + "/metrics.json")
        }
    }

    /// Loads a model saved by `save`: `path` is the `model.safetensors` file or its folder.
    public static func loadModel(path: String) throws(CheckpointError) -> FaceRecognitionModel {
        try loadCheckpoint(path: path).model
    }

    /// Loads a model saved by `save` and the training identities it was trained on.
    public static func loadCheckpoint(path: String) throws(CheckpointError) -> (model: FaceRecognitionModel, identities: [String]) {
        var isDirectory: ObjCBool = false
        let file = FileManager.default.fileExists(atPath: path, isDirectory: &isDirectory) && isDirectory.boolValue
            ? path + "/model.safetensors" : path
        var (tensors, metadata) = try Safetensors.read(path: file)
        if metadata["kind"] == TrainingCheckpoint.kind {
            // A training-state checkpoint (e.g. best.safetensors): the model is its non-momentum tensors.
            tensors = tensors.filter { !$0.key.hasPrefix("momentum.") }
        }
        guard metadata["format"] == checkpointFormat else {
            throw .malformed(path: file, reason: "no swift-arcface metadata (format = \(metadata["format"] ?? "none"))")
        }
        guard metadata["version"] == checkpointVersion else {
            throw .incompatibleVersion(path: file, found: metadata["version"] ?? "none", expected: checkpointVersion)
        }
        guard let json = metadata["configuration"], let classCount = metadata["classCount"].flatMap({ Int($0) }), classCount >= 2 else {
            throw .malformed(path: file, reason: "metadata lacks configuration or classCount")
        }
        let configuration: TrainingConfiguration
        do { configuration = try TrainingConfiguration.decode(json: Data(json.utf8), source: file) }
        catch { throw .invalidConfiguration(path: file, reason: error.description) }
        // Refuse sizes the file cannot hold before allocating the model (a corrupted classCount or
        // configuration could otherwise ask for terabytes).
        let storedFloats = tensors.values.reduce(0) { $0 + $1.count }
        let (headFloats, overflow) = classCount.multipliedReportingOverflow(by: configuration.backbone.embeddingDimension)
        guard !overflow, headFloats <= storedFloats else {
            throw .malformed(path: file, reason: "metadata claims \(classCount) classes × \(configuration.backbone.embeddingDimension) dimensions, more than the \(storedFloats) stored values")
        }
        // Inference needs the parameters and one batch of 50 images (`embeddings(of:)`, `embedImages`).
        do { try configuration.backbone.checkMemory(batchSize: 50, training: false) }
        catch { throw .invalidConfiguration(path: file, reason: error.description) }
        let model = FaceRecognitionModel(configuration: configuration, classCount: classCount)
        try model.load(tensors, path: file)
        let identities = metadata["identities"].flatMap { try? JSONSerialization.jsonObject(with: Data($0.utf8)) as? [String] } ?? []
        return (model, identities)
    }

    /// Checks that every row of `embeddings` (`[N, D]`) is finite.
    ///
    /// - Throws: `TrainingError.nonFiniteEmbeddings` counting the rows with a NaN or ±∞.
    static func checkFinite(embeddings: Tensor) throws(TrainingError) {
        let rows = embeddings.shape[0], rowLength = embeddings.count / max(1, rows)
        let nonFinite = (0..<rows).filter { row in
            embeddings.storage[(row * rowLength)..<((row + 1) * rowLength)].contains { !$0.isFinite }
        }.count
        guard nonFinite == 0 else { throw .nonFiniteEmbeddings(count: nonFinite, total: rows) }
    }

    static func identitiesJSON(_ identities: [String]) -> String {
        (try? JSONSerialization.data(withJSONObject: identities)).map { String(decoding: $0, as: UTF8.self) } ?? "[]"
    }

    static func writeAtomically(_ data: Data, to path: String) throws(CheckpointError) {
        try DurableFileWriter().write(data, to: path)
    }
}

/// The result of one training run.
public struct RunResult: Sendable {
    public var metrics: RunMetrics
    public var history: [EpochSummary]
    public var parameterCount: Int
    /// The final evaluation with its ROC, score histograms and threshold.
    public var evaluation: VerificationEvaluation
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
    ///     training checkpoints is refused (`TrainingError.outputHoldsCheckpoints`) before anything
    ///     is loaded or written, unless `replacingCheckpoints`. Either way the folder is locked
    ///     (`<output>/.lock`, `flock`) for the run: a second run in it is `TrainingError.outputInUse`.
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
    ///   - onEpoch: called after each epoch (for progress lines).
    public static func run(configuration: TrainingConfiguration, dataDirectory: String, outputDirectory: String?,
                           resume: Bool = false, replacingCheckpoints: Bool = false, stopRequest: StopRequest? = nil,
                           onDataset: (DatasetLoadReport) -> Void = { _ in },
                           onCheckpointSkipped: (_ path: String, _ error: CheckpointError) -> Void = { _, _ in },
                           onEpoch: (EpochSummary) -> Void = { _ in }) throws(TrainingError) -> RunResult {
        // One run per output folder at a time; a fresh run never adopts another run's checkpoints.
        let lock = try outputDirectory.map { folder throws(TrainingError) in try RunLock(folder: folder) }
        defer { lock?.release() }
        if let outputDirectory, !resume {
            let checkpoints = outputDirectory + "/checkpoints"
            if replacingCheckpoints, FileManager.default.fileExists(atPath: checkpoints) {
                do { try FileManager.default.removeItem(atPath: checkpoints) }
                catch { throw .checkpoint(.writeFailed(path: checkpoints, reason: "cannot delete the earlier run's checkpoints: \(error.localizedDescription)")) }
            }
            if !TrainingCheckpoint.stepCheckpoints(in: checkpoints).isEmpty
                || FileManager.default.fileExists(atPath: checkpoints + "/" + TrainingCheckpoint.bestName) {
                throw .outputHoldsCheckpoints(directory: outputDirectory)
            }
        }
        let (train, heldOut, loadReport) = try loadSplit(directory: dataDirectory, configuration: configuration)
        onDataset(loadReport)
        if let outputDirectory, configuration.onBadImage == .skip {
            do { try FileManager.default.createDirectory(atPath: outputDirectory, withIntermediateDirectories: true) }
            catch { throw .checkpoint(.writeFailed(path: outputDirectory, reason: DurableFileWriter.reason(error))) }
            do { try writeAtomically(Data(loadReport.skippedImagesText.utf8), to: outputDirectory + "/skipped-images.txt") }
            catch { throw .checkpoint(error) }
        }
        let trainer = try Trainer(configuration: configuration, trainingSet: train)
        if let stopRequest { trainer.stopRequest = stopRequest }
        if let outputDirectory {
            let checkpoints = outputDirectory + "/checkpoints"
            trainer.checkpointDirectory = checkpoints
            let fingerprint = TrainingSetFingerprint(train)
            trainer.checkpointMetadata = ["dataDirectory": dataDirectory, "identities": identitiesJSON(train.identities),
                                          TrainingSetFingerprint.metadataKey: fingerprint.json]
            if resume {
                let latest: String
                do {
                    let found = try TrainingCheckpoint.newestLoadable(in: checkpoints)
                    latest = found.path
                    for (path, error) in found.skipped {
                        TrainingCheckpoint.setAside(path)
                        onCheckpointSkipped(path, error)
                    }
                } catch { throw .checkpoint(error) }
                // The same identities, in the same order, as the run being resumed (labels index them).
                let metadata: [String: String]
                do { metadata = try Safetensors.read(path: latest).metadata } catch { throw .checkpoint(error) }
                let stored = metadata["identities"]
                    .flatMap { try? JSONSerialization.jsonObject(with: Data($0.utf8)) as? [String] }
                if let stored, stored != train.identities {
                    throw .checkpoint(.identityMismatch(path: latest, reason: "the data's training identities differ from the run being resumed"))
                }
                // The same images too (checkpoints written before the fingerprint existed: unchecked).
                if let stored = metadata[TrainingSetFingerprint.metadataKey].flatMap(TrainingSetFingerprint.init(json:)),
                   let changes = fingerprint.changes(since: stored) {
                    throw .checkpoint(.trainingSetChanged(path: latest, reason: changes))
                }
                try trainer.restore(from: latest)
            }
        }
        if case let .stopped(step, checkpoint) = try trainer.run(onEpoch: onEpoch) {
            throw .interrupted(step: step, signal: trainer.stopRequest.signal, checkpoint: checkpoint)
        }
        let session = trainer.session > 1
            ? SessionMetrics(number: trainer.session, trainingSeconds: trainer.sessionSeconds,
                             imagesPerSecond: trainer.sessionTiming.imagesPerSecond, timing: trainer.sessionTiming)
            : nil
        // Save the trained model before evaluating, so that nothing can lose the run.
        if let outputDirectory {
            do { try save(trainer.model, metrics: nil, identities: train.identities, to: outputDirectory) }
            catch { throw .checkpoint(error) }
        }
        // Metrics encoding must never be the first place a NaN shows: check the embeddings.
        let embedded = embeddings(of: heldOut, backbone: trainer.model.backbone, flipSum: configuration.flipEmbeddings)
        try checkFinite(embeddings: embedded)
        let evaluation = evaluateVerificationInDetail(embeddings: embedded, labels: heldOut.labels,
                                                      folds: configuration.folds, seed: configuration.seed)
        let report = evaluation.report
        let metrics = RunMetrics(verification: report, trainImagesPerSecond: trainer.timing.imagesPerSecond,
                                 timing: trainer.timing, finalTrainingLoss: trainer.history.last?.loss ?? .nan,
                                 trainingSeconds: trainer.totalSeconds, skippedSteps: trainer.skippedSteps, session: session)
        if let outputDirectory {
            do {
                try save(trainer.model, metrics: metrics, identities: train.identities, to: outputDirectory)
                try TrainingReport(title: configuration.runName, configuration: configuration, history: trainer.history,
                                   evaluations: [EvaluationRecord(epoch: trainer.history.count, report: report)],
                                   finalEvaluation: evaluation, metrics: metrics).write(to: outputDirectory + "/report.html")
            } catch { throw .checkpoint(error) }
        }
        return RunResult(metrics: metrics, history: trainer.history, parameterCount: trainer.model.parameterCount,
                         evaluation: evaluation)
    }
}
