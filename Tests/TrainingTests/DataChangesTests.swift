import Foundation
import Testing
import _TestSupport
@testable import Training
import ArcFace

/// `evaluate` on a data folder whose images changed since the run: `Experiment.dataChanges` and
/// the warning of `arcface evaluate`.
@Suite(.serialized) struct DataChangesTests {
    /// 6 identities × 5 images (`RunFolderGuardTests.linkedDataset`), 2 held out, 1 epoch, 24×24
    /// inputs through four stages (so that the input warnings show too).
    static func configuration() -> TrainingConfiguration {
        var c = RunFolderGuardTests.configuration()
        c.heldOutIdentities = 2
        c.folds = 2
        c.backbone.inputHeight = 24
        c.backbone.inputWidth = 24
        c.backbone.stageChannels = [4, 4, 4, 4]
        return c
    }

    /// The training and held-out identities of `data` under `configuration()`.
    static func split(_ data: String) throws -> (train: FaceDataset, heldOut: FaceDataset) {
        try Experiment.split(directory: data, configuration: configuration())
    }

    @Test("changed held-out or training images are reported with both fingerprints; unchanged data is quiet")
    func changes() throws {
        BLAS.threadCount = 1
        let data = try RunFolderGuardTests.linkedDataset()
        let directory = TemporaryDirectory()
        let output = directory.path + "/run"
        _ = try Experiment.run(configuration: Self.configuration(), dataDirectory: data.path, outputDirectory: output)
        let step = try #require(TrainingCheckpoint.latest(in: output + "/checkpoints"))
        let metadata = try Safetensors.read(path: output + "/model.safetensors").metadata
        #expect(metadata["trainingSet"] != nil && metadata["heldOutSet"] != nil, "model.safetensors stores both fingerprints")

        var (train, heldOut) = try Self.split(data.path)
        for path in [output, output + "/model.safetensors", step] {
            #expect(Experiment.dataChanges(sinceCheckpoint: path, trainingSet: train, heldOut: heldOut) == nil, "\(path)")
        }
        let storedHeldOutJSON = try #require(metadata["heldOutSet"])
        let storedHeldOut = try #require(TrainingSetFingerprint(json: storedHeldOutJSON))

        // One held-out image removed: the held-out set changed, the training set did not.
        let heldOutIdentity = heldOut.identities[0]
        let removed = data.path + "/\(heldOutIdentity)/5.pgm"
        try FileManager.default.removeItem(atPath: removed)
        (train, heldOut) = try Self.split(data.path)
        let changed = try #require(Experiment.dataChanges(sinceCheckpoint: output, trainingSet: train, heldOut: heldOut))
        #expect(changed.checkpoint == output + "/model.safetensors")
        #expect(changed.trainingImages == nil && changed.heldOutChecked)
        let now = TrainingSetFingerprint(heldOut)
        #expect(now.digest != storedHeldOut.digest)
        #expect(changed.heldOutImages == "10 → 9 images; \(heldOutIdentity): 5 → 4 images (fingerprint \(storedHeldOut.digest) → \(now.digest))")
        #expect(changed.description == "held-out images: " + (changed.heldOutImages ?? ""))
        try FileManager.default.createSymbolicLink(atPath: removed, withDestinationPath: attFacesDirectory + "/\(heldOutIdentity)/5.pgm")

        // A training image renamed (same counts): the training set changed, the held-out did not.
        let trainingIdentity = train.identities[0]
        try FileManager.default.moveItem(atPath: data.path + "/\(trainingIdentity)/1.pgm", toPath: data.path + "/\(trainingIdentity)/9.pgm")
        (train, heldOut) = try Self.split(data.path)
        let renamed = try #require(Experiment.dataChanges(sinceCheckpoint: step, trainingSet: train, heldOut: heldOut))
        #expect(renamed.checkpoint == step && renamed.heldOutImages == nil)
        #expect(renamed.trainingImages?.contains("files were replaced, renamed or resized (fingerprint ") == true, "\(renamed)")

        // A model file without fingerprints (written before they existed) is compared with the
        // newest step checkpoint beside it.
        var (tensors, old) = try Safetensors.read(path: output + "/model.safetensors")
        old["trainingSet"] = nil
        old["heldOutSet"] = nil
        old[Safetensors.checksumKey] = nil
        try Safetensors.write(tensors.sorted { $0.key < $1.key }.map { ($0.key, $0.value) }, metadata: old, checksum: true,
                              to: output + "/model.safetensors")
        let fallback = try #require(Experiment.dataChanges(sinceCheckpoint: output, trainingSet: train, heldOut: heldOut))
        #expect(fallback.checkpoint == step && fallback.trainingImages != nil)
        // Without checkpoints either, nothing to compare with.
        try FileManager.default.removeItem(atPath: output + "/checkpoints")
        #expect(Experiment.dataChanges(sinceCheckpoint: output, trainingSet: train, heldOut: heldOut) == nil)
    }

    @Test("arcface train warns about a 24×24 input; evaluate warns about changed held-out images and unmeasurable TAR@FAR",
          .enabled(if: ArcFaceBinary.path != nil))
    func commandLine() throws {
        let binary = try #require(ArcFaceBinary.path)
        let data = try RunFolderGuardTests.linkedDataset()
        let directory = TemporaryDirectory()
        let configFile = directory.path + "/config.json"
        try Self.configuration().jsonData().write(to: URL(fileURLWithPath: configFile))
        let output = directory.path + "/run"
        let train = try RunFolderCLITests.run(binary, ["train", "--data", data.path, "--config", configFile, "--output", output])
        #expect(train.status == 0, "\(train.text)")
        #expect(train.text.contains("warning: backbone.stage4 max-pool floors 3×3 to 1×1: its last row (1 of 3) and last column (1 of 3) are dropped"),
                "\(train.text)")
        #expect(train.text.contains("warning: maxTranslation 4 shifts images by up to ±4 px, 17 % of the smaller input side (24 px)"))
        // 2 held-out identities × 5 images: 20 genuine, 25 impostor pairs, below both 1/100 and 1/1000.
        #expect(train.text.contains("(below 1/25 impostor pairs: not measurable)"), "\(train.text)")

        let same = try RunFolderCLITests.run(binary, ["evaluate", "--checkpoint", output, "--data", data.path])
        #expect(same.status == 0 && !same.text.contains("warning:"), "\(same.text)")

        let heldOut = try Self.split(data.path).heldOut.identities[0]
        try FileManager.default.removeItem(atPath: data.path + "/\(heldOut)/5.pgm")
        let changed = try RunFolderCLITests.run(binary, ["evaluate", "--checkpoint", output, "--data", data.path])
        #expect(changed.status == 0, "\(changed.text)")
        #expect(changed.text.contains("warning: the images in \(data.path) are not those of the run that wrote \(output)/model.safetensors: "
                                      + "held-out images: 10 → 9 images; \(heldOut): 5 → 4 images (fingerprint "), "\(changed.text)")
        #expect(changed.text.contains("the metrics below are on another held-out set than the run's"))
        // 4 + 5 images: 16 genuine, 20 impostor pairs.
        #expect(changed.text.contains("16 genuine, 20 impostor pairs"))
        #expect(changed.text.contains("TAR@FAR=1e-3                 ") && changed.text.contains("(below 1/20 impostor pairs: not measurable)"))
    }
}
