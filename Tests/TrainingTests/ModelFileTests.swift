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
}
