import Foundation
import Testing
import _TestSupport
import ArcFace

/// `arcface train --init-from`, `--backbone-lr-scale`, `--freeze-batchnorm`.
@Suite(.serialized) struct InitFromCLITests {
    @Test("--init-from a wrong-shape file exits 1 naming the tensor and both shapes; a good one trains and records it; --backbone-lr-scale 2 exits 64",
          .enabled(if: ArcFaceBinary.path != nil))
    func initFrom() throws {
        let binary = try #require(ArcFaceBinary.path)
        let directory = TemporaryDirectory()
        let configFile = directory.path + "/config.json"
        try RunFolderGuardTests.configuration().jsonData().write(to: URL(fileURLWithPath: configFile))
        var wide = RunFolderGuardTests.configuration()
        wide.backbone.embeddingDimension = 8
        let source = FaceRecognitionModel(configuration: wide, classCount: 3)
        try Experiment.save(source, metrics: nil, identities: ["a", "b", "c"], to: directory.path + "/source8")
        try Experiment.save(FaceRecognitionModel(configuration: RunFolderGuardTests.configuration(), classCount: 4), metrics: nil,
                            identities: ["a", "b", "c", "d"], to: directory.path + "/source16")
        let train = ["train", "--data", attFacesDirectory, "--config", configFile]

        let wrong = try RunFolderCLITests.run(binary, train + ["--output", directory.path + "/wrong", "--init-from", directory.path + "/source8"])
        #expect(wrong.status == 1, "\(wrong.text)")
        let fc = try #require(source.backbone.parameters.first { $0.name == "backbone.fc.weight" }).value.shape
        #expect(wrong.text.contains("tensor 'backbone.fc.weight' has shape \(fc) in the file, the backbone's is [16, \(fc[1])]"), "\(wrong.text)")
        #expect(!wrong.text.contains("epoch   1/1 |"))

        let usage = try RunFolderCLITests.run(binary, train + ["--output", directory.path + "/usage", "--backbone-lr-scale", "2"])
        #expect(usage.status == 64 && usage.text.contains("--backbone-lr-scale must be in 0…1"), "\(usage.text)")

        let output = directory.path + "/good"
        let good = try RunFolderCLITests.run(binary, train + ["--output", output, "--init-from", directory.path + "/source16",
                                                              "--backbone-lr-scale", "0.1", "--freeze-batchnorm"])
        #expect(good.status == 0, "\(good.text)")
        let saved = try Experiment.loadModel(path: output)
        #expect(saved.configuration.backboneLearningRateScale == 0.1 && saved.configuration.freezeBatchNorm)
        let metadata = try Safetensors.read(path: output + "/model.safetensors").metadata
        let recorded = try #require(metadata[BackboneInitialization.metadataKey].flatMap(BackboneInitialization.init(json:)))
        #expect(recorded.path == directory.path + "/source16/model.safetensors")
    }
}
