import Foundation
import Testing
import ArcFace
import _TestSupport

/// `Experiment.save` / `loadCheckpoint`: the final model's files.
@Suite struct ModelFileTests {
    @Test("a checkpoint whose metadata claims more classes than it stores is refused before allocating")
    func hugeClassCount() throws {
        let directory = TemporaryDirectory()
        let model = FaceRecognitionModel(configuration: tinyConfiguration(), classCount: 3)
        try Experiment.save(model, metrics: nil, identities: [], to: directory.path)
        let path = directory.path + "/model.safetensors"
        var metadata = try Safetensors.read(path: path).metadata
        metadata["classCount"] = "1000000000000"
        try Safetensors.write(model.namedTensors, metadata: metadata, to: path)
        #expect(throws: CheckpointError.self) { try Experiment.loadModel(path: directory.path) }
    }

    /// A saved tiny model's `model.safetensors`, its tensors and metadata.
    static func savedModel(in directory: TemporaryDirectory) throws -> (path: String, model: FaceRecognitionModel, metadata: [String: String]) {
        let model = FaceRecognitionModel(configuration: tinyConfiguration(), classCount: 3)
        try Experiment.save(model, metrics: nil, identities: [], to: directory.path)
        let path = directory.path + "/model.safetensors"
        return (path, model, try Safetensors.read(path: path).metadata)
    }

    @Test("a model.safetensors with a wrong-shaped tensor is CheckpointError.shapeMismatch naming the tensor and both shapes")
    func wrongShape() throws {
        let directory = TemporaryDirectory()
        let (path, model, metadata) = try Self.savedModel(in: directory)
        let name = "backbone.fc.weight"
        let original = try #require(model.namedTensors.first { $0.name == name }).tensor
        let transposed = [original.shape[1], original.shape[0]]
        var metadataWithoutChecksum = metadata
        metadataWithoutChecksum[Safetensors.checksumKey] = nil
        try Safetensors.write(model.namedTensors.map { ($0.name, $0.name == name ? Tensor(shape: transposed) : $0.tensor) },
                              metadata: metadataWithoutChecksum, checksum: true, to: path)
        do {
            _ = try Experiment.loadModel(path: directory.path)
            Issue.record("a wrong-shaped tensor loaded")
        } catch let error {
            #expect(error == .shapeMismatch(path: path, name: name, expected: original.shape, found: transposed))
            #expect(error.description.contains(name) && error.description.contains("\(original.shape)")
                    && error.description.contains("\(transposed)"))
        }
    }

    @Test("a model.safetensors with a tensor of another dtype is CheckpointError.malformed naming the tensor and both dtypes")
    func wrongDType() throws {
        let directory = TemporaryDirectory()
        let (path, model, _) = try Self.savedModel(in: directory)
        // The header is JSON with sorted keys: the first "dtype":"F32" is the first tensor's by name.
        var bytes = try Data(contentsOf: URL(fileURLWithPath: path))
        let range = try #require(bytes.range(of: Data(#""dtype":"F32""#.utf8)))
        bytes.replaceSubrange(range, with: Data(#""dtype":"F16""#.utf8))
        try bytes.write(to: URL(fileURLWithPath: path))
        let first = try #require(model.namedTensors.map(\.name).sorted().first)
        do {
            _ = try Experiment.loadModel(path: directory.path)
            Issue.record("an F16 tensor loaded as F32")
        } catch let error {
            guard case let .malformed(errorPath, reason) = error else { Issue.record("\(error)"); return }
            #expect(errorPath == path)
            #expect(reason.contains("'\(first)'") && reason.contains("F16") && reason.contains("F32"), "\(reason)")
        }
    }
}
