// The final model's files: `model.safetensors` (weights, BatchNorm statistics, configuration and
// identities in the metadata), `config.json` and `metrics.json`, and loading them back.
import Foundation
import TensorCore
import RunConfiguration
import Checkpointing
import Reporting
import FaceData

extension Experiment {
    /// Writes `model.safetensors` (weights, running statistics, configuration in the metadata),
    /// `config.json` and, when given, `metrics.json` into `directory`, each atomically.
    ///
    /// - Parameter additionalMetadata: more string metadata for `model.safetensors` (a run stores
    ///   its data fingerprints, `trainingSet` and `heldOutSet`); it cannot replace the keys
    ///   written here (`format`, `version`, `configuration`, `classCount`, `identities`,
    ///   `preprocessing`: the model's `InputPreprocessing` as JSON).
    public static func save(_ model: FaceRecognitionModel, metrics: RunMetrics?, identities: [String],
                            additionalMetadata: [String: String] = [:], to directory: String) throws(CheckpointError) {
        do { try FileManager.default.createDirectory(atPath: directory, withIntermediateDirectories: true) }
        catch { throw .writeFailed(path: directory, reason: error.localizedDescription) }
        let configurationJSON = String(decoding: model.configuration.jsonData(), as: UTF8.self)
        let identitiesJSON = identitiesJSON(identities)
        if let bad = model.namedTensors.first(where: { !$0.tensor.isFinite }) {
            throw .nonFiniteWrite(path: directory + "/model.safetensors", name: bad.name)
        }
        let metadata = additionalMetadata.merging([
            "format": checkpointFormat, "version": checkpointVersion,
            "configuration": configurationJSON, "classCount": String(model.classCount),
            "identities": identitiesJSON, InputPreprocessing.metadataKey: model.configuration.preprocessing.json,
        ]) { _, own in own }
        try Safetensors.write(model.namedTensors, metadata: metadata, checksum: true, to: directory + "/model.safetensors")
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
        let file = modelFile(at: path)
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
        try checkPreprocessing(metadata, configuration: configuration, path: file)
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

    /// Checks the `preprocessing` metadata of a model file (absent in files written before it
    /// existed: the configuration's, RGB, `(x − 127.5)/127.5`): it must be valid JSON, agree with
    /// the configuration's input channels and size, and be one this package can feed.
    ///
    /// - Throws: `CheckpointError.unsupportedPreprocessing` naming what differs, or `.malformed`.
    static func checkPreprocessing(_ metadata: [String: String], configuration: TrainingConfiguration,
                                   path: String) throws(CheckpointError) {
        guard let json = metadata[InputPreprocessing.metadataKey] else { return }
        guard let stored = InputPreprocessing(json: json) else {
            throw .malformed(path: path, reason: "metadata 'preprocessing' is not valid preprocessing JSON: \(json.prefix(200))")
        }
        if let reason = stored.unsupportedReason { throw .unsupportedPreprocessing(path: path, reason: reason) }
        let configured = configuration.preprocessing
        guard stored.channels == configured.channels, stored.height == configured.height, stored.width == configured.width else {
            throw .unsupportedPreprocessing(path: path, reason: "the recorded input \(stored) contradicts the configuration's \(configured)")
        }
    }

    /// The file `loadCheckpoint(path:)` reads: `path`, or `path/model.safetensors` for a folder.
    static func modelFile(at path: String) -> String {
        var isDirectory: ObjCBool = false
        return FileManager.default.fileExists(atPath: path, isDirectory: &isDirectory) && isDirectory.boolValue
            ? path + "/model.safetensors" : path
    }

    /// The JSON array of names stored in the `identities` metadata.
    static func identitiesJSON(_ identities: [String]) -> String { TrainingCheckpoint.identitiesJSON(identities) }

    static func writeAtomically(_ data: Data, to path: String) throws(CheckpointError) {
        try DurableFileWriter().write(data, to: path)
    }
}
