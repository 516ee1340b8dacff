import Foundation
import TensorCore
import RunConfiguration

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
///   `TrainingSetFingerprint` a resume checks, `heldOutSet`: the held-out images' one, which
///   `arcface evaluate` checks). No tensor may hold NaN or ±∞, on write or read.
///
/// Files are written by a `CheckpointFileWriter` (temporary file, fsync, rename), so a crash
/// or full disk never leaves a half-written checkpoint. The newest `keepCheckpoints` step files
/// are kept; `best.safetensors` is a hard link to the epoch-end checkpoint with the highest
/// validation AUC when the run has a validation split (`TrainingConfiguration.validationIdentities`,
/// identities taken from the training side), otherwise with the lowest mean **training** loss —
/// never a held-out metric: the held-out identities are the test set.
public enum TrainingCheckpoint {
    /// The metadata `format` of every safetensors file of ours (training states and final models).
    public static let format = "swift-arcface"
    /// The metadata `kind` of a training state (a final `model.safetensors` has none).
    public static let kind = "training-state"
    public static let version = "1"
    package static let momentumPrefix = "momentum."
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

    /// Writes `state` to `path(in: directory, step: state.progress.step)` through `writer` and
    /// returns the path. Tensors are written in `state`'s order (model tensors, then momentum).
    ///
    /// - Throws: `CheckpointError.nonFiniteWrite` (nothing written) or the writer's `.writeFailed`.
    package static func write(_ state: TrainingState, to directory: String,
                              writer: any CheckpointFileWriter) throws(CheckpointError) -> String {
        let path = path(in: directory, step: state.progress.step)
        let momentum = state.momentum.map { (name: momentumPrefix + $0.name, tensor: $0.tensor) }
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.sortedKeys]
        encoder.nonConformingFloatEncodingStrategy = .convertToString(positiveInfinity: "inf", negativeInfinity: "-inf", nan: "nan")
        guard let progress = try? encoder.encode(state.progress) else {
            throw .writeFailed(path: path, reason: "training progress is not encodable")
        }
        var metadata = state.metadata
        metadata["format"] = format
        metadata["kind"] = kind
        metadata["version"] = version
        metadata["configuration"] = String(decoding: state.configuration.jsonData(), as: UTF8.self)
        metadata["classCount"] = String(state.classCount)
        metadata["progress"] = String(decoding: progress, as: UTF8.self)
        if !state.validationIdentities.isEmpty {
            metadata[validationIdentitiesKey] = identitiesJSON(state.validationIdentities)
        }
        let tensors = state.modelTensors + momentum
        if let bad = tensors.first(where: { !$0.tensor.isFinite }) { throw .nonFiniteWrite(path: path, name: bad.name) }
        try writer.write(Safetensors.encode(tensors, metadata: metadata, checksum: true), to: path)
        return path
    }

    /// A JSON array of names, as stored in the `identities` and `validationIdentities` metadata.
    package static func identitiesJSON(_ identities: [String]) -> String {
        (try? JSONSerialization.data(withJSONObject: identities)).map { String(decoding: $0, as: UTF8.self) } ?? "[]"
    }

    /// The names of a JSON array stored by `identitiesJSON`, or nil when `json` is not one.
    package static func identities(fromJSON json: String) -> [String]? {
        try? JSONSerialization.jsonObject(with: Data(json.utf8)) as? [String]
    }

    /// Reads and checks the metadata of a training checkpoint.
    ///
    /// - Throws: `CheckpointError.unreadable`, `.malformed` (truncated or not safetensors, not
    ///   swift-arcface, bad progress, a CRC-32 that does not match), `.nonFiniteTensor` (a NaN or
    ///   ±∞ weight, statistic or momentum value), `.notATrainingState` (a final `model.safetensors`),
    ///   `.incompatibleVersion`, `.invalidConfiguration`.
    package static func read(path: String) throws(CheckpointError) -> TrainingState {
        let (tensors, metadata) = try Safetensors.read(path: path)
        guard metadata["format"] == format else {
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
        var model: [(name: String, tensor: Tensor)] = [], momentum: [(name: String, tensor: Tensor)] = []
        for name in tensors.keys.sorted() {
            if name.hasPrefix(momentumPrefix) { momentum.append((String(name.dropFirst(momentumPrefix.count)), tensors[name]!)) }
            else { model.append((name, tensors[name]!)) }
        }
        let validationIdentities = metadata[validationIdentitiesKey].flatMap(identities(fromJSON:)) ?? []
        return TrainingState(configuration: configuration, classCount: classCount, modelTensors: model, momentum: momentum,
                             progress: progress, validationIdentities: validationIdentities, metadata: metadata)
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
    package static func stepCheckpoints(in directory: String) -> [String] {
        let names = (try? FileManager.default.contentsOfDirectory(atPath: directory)) ?? []
        return names.filter { $0.hasPrefix("step-") && $0.hasSuffix(".safetensors") }.sorted()
    }

    /// Makes `path` the folder's `best.safetensors` atomically (a hard link renamed into place;
    /// a copy through `writer` where hard links are not supported).
    package static func markBest(_ path: String, in directory: String, writer: any CheckpointFileWriter) throws(CheckpointError) {
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
        do { try DurableFileWriter.replace(best, with: temporary) }
        catch { throw .writeFailed(path: error.path, reason: error.reason) }
    }

    /// Removes all but the newest `keep` step checkpoints (`best.safetensors` is kept apart).
    package static func prune(directory: String, keep: Int) {
        let names = stepCheckpoints(in: directory)
        for name in names.dropLast(keep) { try? FileManager.default.removeItem(atPath: directory + "/" + name) }
    }
}

extension TrainingState {
    /// Checks that this stored state (read from `path`) can continue the run whose current
    /// state is `current` with `batchesPerEpoch` batches per epoch, naming the first mismatch:
    /// settings, class count, momentum tensors, validation identities, progress, model tensors.
    package func validate(continuing current: TrainingState, batchesPerEpoch: Int, path: String) throws(CheckpointError) {
        let differences = TrainingConfiguration.differingKeys(configuration, current.configuration)
        guard differences.isEmpty else { throw .configurationMismatch(path: path, keys: differences) }
        guard classCount == current.classCount else {
            throw .classCountMismatch(path: path, checkpoint: classCount, model: current.classCount)
        }
        let storedMomentum = Dictionary(uniqueKeysWithValues: momentum.map { ($0.name, $0.tensor) })
        for (parameter, buffer) in current.momentum {
            let name = TrainingCheckpoint.momentumPrefix + parameter
            guard let tensor = storedMomentum[parameter] else { throw .missingTensor(path: path, name: name) }
            guard tensor.shape == buffer.shape else {
                throw .shapeMismatch(path: path, name: name, expected: buffer.shape, found: tensor.shape)
            }
        }
        let known = Set(current.momentum.map(\.name))
        if let extra = storedMomentum.keys.sorted().first(where: { !known.contains($0) }) {
            throw .unexpectedTensor(path: path, name: TrainingCheckpoint.momentumPrefix + extra)
        }
        guard validationIdentities == current.validationIdentities else {
            throw .identityMismatch(path: path, reason: "the checkpoint's validation identities [\(validationIdentities.joined(separator: ", "))] differ from this run's [\(current.validationIdentities.joined(separator: ", "))]")
        }
        let p = progress
        guard p.step >= 0, p.epoch.epoch == p.history.count, p.history.count <= configuration.epochs,
              p.epoch.batch >= 0, p.epoch.batch <= batchesPerEpoch else {
            throw .malformed(path: path, reason: "inconsistent progress (step \(p.step), epoch \(p.epoch.epoch), batch \(p.epoch.batch), \(p.history.count) finished epochs)")
        }
        // Tensor names and shapes of the model (values are checked when the model loads them).
        let storedModel = modelTensorsByName
        for (name, tensor) in current.modelTensors {
            guard let stored = storedModel[name] else { throw .missingTensor(path: path, name: name) }
            guard stored.shape == tensor.shape else { throw .shapeMismatch(path: path, name: name, expected: tensor.shape, found: stored.shape) }
        }
    }
}
