import Foundation
import TensorCore

/// What a training checkpoint stores besides tensors (JSON in the `progress` metadata key).
struct TrainingProgress: Codable, Sendable, Equatable {
    /// Batches consumed (the learning-rate schedule position).
    var step: Int
    /// The finished epochs.
    var history: [EpochSummary]
    /// The epoch in progress: its index, the batches already consumed and its running totals.
    var epoch: EpochProgress
    var lastFiniteLoss: Double?
    /// The lowest epoch training loss so far (the `best.safetensors` criterion without validation).
    var bestLoss: Double?
    /// The highest epoch validation AUC so far (the criterion with a validation split).
    var bestValidationAUC: Double?
    /// The backbone dropout's mask stream. The data loader's shuffles and augmentations are pure
    /// functions of `(seed, epoch)` and the head has no random stream after initialization, so
    /// this is the only generator state to save.
    var dropoutGenerator: SeededGenerator
    /// Where training time went over all sessions up to this checkpoint.
    var timing: TimingBreakdown
    /// Sessions so far (nil in checkpoints written before sessions were counted: 1).
    var sessions: Int?
    /// Wall-clock seconds of `Trainer.run` over all sessions up to this checkpoint (nil: 0).
    var seconds: Double?
}

/// Training-state checkpoints: one safetensors file per checkpoint holding everything needed to
/// continue a run bit-identically.
///
/// File `<directory>/step-XXXXXXXX.safetensors` (the step number, 8 digits) holds:
/// - every model tensor under the names of `model.safetensors` (parameters, BatchNorm statistics);
/// - `momentum.<parameter name>`: the SGD momentum buffer of each parameter, same shape;
/// - metadata `format` = `swift-arcface`, `kind` = `training-state`, `version` = `1`,
///   `configuration` (JSON), `classCount`, `progress` (JSON: step, history, epoch position and
///   totals, last finite loss, best loss and best validation AUC, dropout generator state,
///   timing), `validationIdentities` (JSON array, with a validation split; a resume with other
///   validation identities is refused), `dataCRC32` (CRC-32 of the tensor bytes, checked on
///   read), plus the caller's extra keys (`identities`, `dataDirectory`, `trainingSet`: the
///   `TrainingSetFingerprint` a resume checks). No tensor may hold NaN or ±∞, on write or read.
///
/// Files are written by a `CheckpointFileWriter` (temporary file, fsync, rename), so a crash
/// or full disk never leaves a half-written checkpoint. The newest `keepCheckpoints` step files
/// are kept; `best.safetensors` is a hard link to the epoch-end checkpoint with the highest
/// validation AUC when the run has a validation split (`TrainingConfiguration.validationIdentities`,
/// identities taken from the training side), otherwise with the lowest mean **training** loss —
/// never a held-out metric: the held-out identities are the test set.
public enum TrainingCheckpoint {
    public static let kind = "training-state"
    public static let version = "1"
    static let momentumPrefix = "momentum."
    /// The name of the best checkpoint in a checkpoint folder.
    public static let bestName = "best.safetensors"
    /// The metadata key holding the validation identities (JSON array of names), when the run
    /// has a validation split.
    public static let validationIdentitiesKey = "validationIdentities"

    /// The checkpoint path of `step` in `directory`.
    public static func path(in directory: String, step: Int) -> String {
        let digits = String(step)
        return directory + "/step-" + String(repeating: "0", count: max(0, 8 - digits.count)) + digits + ".safetensors"
    }

    /// Creates `directory` and writes (then removes) a probe file through `writer`, so that an
    /// unwritable folder or a full disk is reported before training starts.
    public static func prepare(directory: String, writer: any CheckpointFileWriter) throws(CheckpointError) {
        do { try FileManager.default.createDirectory(atPath: directory, withIntermediateDirectories: true) }
        catch { throw .writeFailed(path: directory, reason: DurableFileWriter.reason(error)) }
        let probe = directory + "/.write-probe"
        try writer.write(Data(count: 4096), to: probe)
        try? FileManager.default.removeItem(atPath: probe)
    }

    /// Writes `trainer`'s state to `path(in: directory, step: trainer.step)` and returns the path.
    static func write(_ trainer: Trainer, to directory: String) throws(CheckpointError) -> String {
        let path = path(in: directory, step: trainer.step)
        let momentum = zip(trainer.optimizer.parameters, trainer.optimizer.momentumBuffers).map {
            (name: momentumPrefix + $0.name, tensor: $1)
        }
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.sortedKeys]
        encoder.nonConformingFloatEncodingStrategy = .convertToString(positiveInfinity: "inf", negativeInfinity: "-inf", nan: "nan")
        guard let progress = try? encoder.encode(trainer.state) else {
            throw .writeFailed(path: path, reason: "training progress is not encodable")
        }
        var metadata = trainer.checkpointMetadata
        metadata["format"] = Experiment.checkpointFormat
        metadata["kind"] = kind
        metadata["version"] = version
        metadata["configuration"] = String(decoding: trainer.configuration.jsonData(), as: UTF8.self)
        metadata["classCount"] = String(trainer.model.classCount)
        metadata["progress"] = String(decoding: progress, as: UTF8.self)
        if !trainer.validationIdentities.isEmpty {
            metadata[validationIdentitiesKey] = Experiment.identitiesJSON(trainer.validationIdentities)
        }
        let tensors = trainer.model.namedTensors + momentum
        if let bad = tensors.first(where: { !$0.tensor.isFinite }) { throw .nonFiniteWrite(path: path, name: bad.name) }
        try trainer.fileWriter.write(Safetensors.encode(tensors, metadata: metadata, checksum: true), to: path)
        return path
    }

    /// A decoded training checkpoint.
    struct Contents {
        var path: String
        var metadata: [String: String]
        var configuration: TrainingConfiguration
        var classCount: Int
        var modelTensors: [String: Tensor]
        var momentum: [String: Tensor]
        var progress: TrainingProgress
    }

    /// Reads and checks the metadata of a training checkpoint.
    ///
    /// - Throws: `CheckpointError.unreadable`, `.malformed` (truncated or not safetensors, not
    ///   swift-arcface, bad progress, a CRC-32 that does not match), `.nonFiniteTensor` (a NaN or
    ///   ±∞ weight, statistic or momentum value), `.notATrainingState` (a final `model.safetensors`),
    ///   `.incompatibleVersion`, `.invalidConfiguration`.
    static func read(path: String) throws(CheckpointError) -> Contents {
        let (tensors, metadata) = try Safetensors.read(path: path)
        guard metadata["format"] == Experiment.checkpointFormat else {
            throw .malformed(path: path, reason: "no swift-arcface metadata (format = \(metadata["format"] ?? "none"))")
        }
        guard metadata["kind"] == kind else { throw .notATrainingState(path: path) }
        guard metadata["version"] == version else {
            throw .incompatibleVersion(path: path, found: metadata["version"] ?? "none", expected: version)
        }
        let configuration = try storedConfiguration(metadata, path: path)
        guard let classCount = metadata["classCount"].flatMap({ Int($0) }), classCount >= 2 else {
            throw .malformed(path: path, reason: "metadata lacks classCount")
        }
        let decoder = JSONDecoder()
        decoder.nonConformingFloatDecodingStrategy = .convertFromString(positiveInfinity: "inf", negativeInfinity: "-inf", nan: "nan")
        guard let json = metadata["progress"], let progress = try? decoder.decode(TrainingProgress.self, from: Data(json.utf8)) else {
            throw .malformed(path: path, reason: "metadata 'progress' is missing or invalid")
        }
        if let bad = tensors.keys.sorted().first(where: { !tensors[$0]!.isFinite }) {
            throw .nonFiniteTensor(path: path, name: bad)
        }
        var model: [String: Tensor] = [:], momentum: [String: Tensor] = [:]
        for (name, tensor) in tensors {
            if name.hasPrefix(momentumPrefix) { momentum[String(name.dropFirst(momentumPrefix.count))] = tensor }
            else { model[name] = tensor }
        }
        return Contents(path: path, metadata: metadata, configuration: configuration, classCount: classCount,
                        modelTensors: model, momentum: momentum, progress: progress)
    }

    /// The configuration and metadata stored in a training checkpoint (to resume with the run's
    /// own settings).
    public static func configuration(at path: String) throws(CheckpointError) -> (configuration: TrainingConfiguration, metadata: [String: String]) {
        let contents = try read(path: path)
        return (contents.configuration, contents.metadata)
    }

    /// The number of finished epochs stored in a training checkpoint (equal to the configuration's
    /// `epochs` for the last checkpoint of a finished run).
    public static func finishedEpochs(at path: String) throws(CheckpointError) -> Int {
        try read(path: path).progress.history.count
    }

    static func storedConfiguration(_ metadata: [String: String], path: String) throws(CheckpointError) -> TrainingConfiguration {
        guard let json = metadata["configuration"] else { throw .malformed(path: path, reason: "metadata lacks configuration") }
        do { return try TrainingConfiguration.decode(json: Data(json.utf8), source: path) }
        catch { throw .invalidConfiguration(path: path, reason: error.description) }
    }

    /// The newest step checkpoint in `directory` that reads as a training state, and the newer
    /// step checkpoints passed over because they cannot be read (truncated, corrupt, unreadable,
    /// NaN/∞ values: `CheckpointError.malformed`, `.unreadable` or `.nonFiniteTensor`), newest first. Other errors (a final model,
    /// another format version, an invalid stored configuration) are not corruption and are thrown.
    ///
    /// - Throws: `.unreadable(directory)` when there is no step checkpoint,
    ///   `.noLoadableCheckpoint` when none can be read, or the newest file's other error.
    public static func newestLoadable(in directory: String) throws(CheckpointError)
        -> (path: String, skipped: [(path: String, error: CheckpointError)]) {
        let names = stepCheckpoints(in: directory)
        guard !names.isEmpty else {
            throw .unreadable(path: directory, reason: "no step-*.safetensors checkpoint to resume from")
        }
        var skipped: [(path: String, error: CheckpointError)] = []
        for name in names.reversed() {
            let path = directory + "/" + name
            do {
                _ = try read(path: path)
                return (path, skipped)
            } catch {
                switch error {
                case .malformed, .unreadable, .nonFiniteTensor: skipped.append((path, error))
                default: throw error
                }
            }
        }
        throw .noLoadableCheckpoint(directory: directory, skipped: skipped.map { $0.error.description })
    }

    /// Renames an unloadable step checkpoint to `<name>.unloadable` (kept for inspection), so
    /// that it neither shadows newer checkpoints nor survives pruning in their place.
    ///
    /// - Returns: the new path, or nil when the rename failed (the file stays where it was).
    @discardableResult
    public static func setAside(_ path: String) -> String? {
        let target = path + ".unloadable"
        try? FileManager.default.removeItem(atPath: target)
        do { try FileManager.default.moveItem(atPath: path, toPath: target) } catch { return nil }
        return target
    }

    /// The newest step checkpoint in `directory` (highest step), if any.
    public static func latest(in directory: String) -> String? {
        stepCheckpoints(in: directory).last.map { directory + "/" + $0 }
    }

    /// The file names of `directory`'s step checkpoints, oldest first.
    static func stepCheckpoints(in directory: String) -> [String] {
        let names = (try? FileManager.default.contentsOfDirectory(atPath: directory)) ?? []
        return names.filter { $0.hasPrefix("step-") && $0.hasSuffix(".safetensors") }.sorted()
    }

    /// Makes `path` the folder's `best.safetensors` atomically (a hard link renamed into place;
    /// a copy through `writer` where hard links are not supported).
    static func markBest(_ path: String, in directory: String, writer: any CheckpointFileWriter) throws(CheckpointError) {
        let best = directory + "/" + bestName
        let temporary = directory + "/." + bestName + ".tmp-\(ProcessInfo.processInfo.processIdentifier)"
        try? FileManager.default.removeItem(atPath: temporary)
        do {
            try FileManager.default.linkItem(atPath: path, toPath: temporary)
        } catch {
            let data: Data
            do { data = try Data(contentsOf: URL(fileURLWithPath: path)) }
            catch { throw .unreadable(path: path, reason: DurableFileWriter.reason(error)) }
            try writer.write(data, to: best)
            return
        }
        try DurableFileWriter.replace(best, with: temporary)
    }

    /// Removes all but the newest `keep` step checkpoints (`best.safetensors` is kept apart).
    static func prune(directory: String, keep: Int) {
        let names = stepCheckpoints(in: directory)
        for name in names.dropLast(keep) { try? FileManager.default.removeItem(atPath: directory + "/" + name) }
    }
}

extension TrainingCheckpoint.Contents {
    /// Checks that this checkpoint can continue `trainer`'s run, naming the first mismatch.
    func validate(against trainer: Trainer) throws(CheckpointError) {
        let differences = TrainingConfiguration.differingKeys(configuration, trainer.configuration)
        guard differences.isEmpty else { throw .configurationMismatch(path: path, keys: differences) }
        guard classCount == trainer.model.classCount else {
            throw .classCountMismatch(path: path, checkpoint: classCount, model: trainer.model.classCount)
        }
        for parameter in trainer.optimizer.parameters {
            let name = TrainingCheckpoint.momentumPrefix + parameter.name
            guard let tensor = momentum[parameter.name] else { throw .missingTensor(path: path, name: name) }
            guard tensor.shape == parameter.value.shape else {
                throw .shapeMismatch(path: path, name: name, expected: parameter.value.shape, found: tensor.shape)
            }
        }
        let known = Set(trainer.optimizer.parameters.map(\.name))
        if let extra = momentum.keys.sorted().first(where: { !known.contains($0) }) {
            throw .unexpectedTensor(path: path, name: TrainingCheckpoint.momentumPrefix + extra)
        }
        let stored = metadata[TrainingCheckpoint.validationIdentitiesKey]
            .flatMap { try? JSONSerialization.jsonObject(with: Data($0.utf8)) as? [String] } ?? []
        guard stored == trainer.validationIdentities else {
            throw .identityMismatch(path: path, reason: "the checkpoint's validation identities [\(stored.joined(separator: ", "))] differ from this run's [\(trainer.validationIdentities.joined(separator: ", "))]")
        }
        let p = progress
        guard p.step >= 0, p.epoch.epoch == p.history.count, p.history.count <= configuration.epochs,
              p.epoch.batch >= 0, p.epoch.batch <= trainer.loader.batchesPerEpoch else {
            throw .malformed(path: path, reason: "inconsistent progress (step \(p.step), epoch \(p.epoch.epoch), batch \(p.epoch.batch), \(p.history.count) finished epochs)")
        }
        // Tensor names and shapes of the model are checked by `FaceRecognitionModel.load`
        // before it changes anything.
        let parameters = trainer.model.parameters.map { ($0.name, $0.value.shape) }
            + trainer.model.backbone.buffers.map { ($0.name, $0.value.shape) }
        for (name, shape) in parameters {
            guard let tensor = modelTensors[name] else { throw .missingTensor(path: path, name: name) }
            guard tensor.shape == shape else { throw .shapeMismatch(path: path, name: name, expected: shape, found: tensor.shape) }
        }
    }
}

extension TrainingConfiguration {
    /// The top-level keys (dotted for `backbone`) whose values differ between `a` and `b`.
    static func differingKeys(_ a: TrainingConfiguration, _ b: TrainingConfiguration) -> [String] {
        func flattened(_ c: TrainingConfiguration) -> [String: NSObject] {
            let object = (try? JSONSerialization.jsonObject(with: c.jsonData())) as? [String: Any] ?? [:]
            var result: [String: NSObject] = [:]
            for (key, value) in object {
                if let nested = value as? [String: Any] {
                    for (k, v) in nested { result[key + "." + k] = v as? NSObject }
                } else {
                    result[key] = value as? NSObject
                }
            }
            return result
        }
        // Settings that do not change the arithmetic of a step may differ on resume.
        let free: Set = ["onNonFinite", "onBadImage", "keepCheckpoints", "checkpointEverySteps"]
        let x = flattened(a).filter { !free.contains($0.key) }, y = flattened(b).filter { !free.contains($0.key) }
        let differing = Set(x.keys).union(y.keys).filter { x[$0] != y[$0] }.sorted()
        return differing
    }
}
