import Foundation
import Testing
import _TestSupport
@testable import Training
import ArcFace

/// A nearly full disk fails before any work: training before its first step, `embed` before its
/// first image; with the bytes needed and available named.
@Suite(.serialized) struct DiskSpaceTests {
    @Test("300 KiB free: the run stops before step 1 naming the folder and the bytes; with room it trains")
    func trainingChecksFirst() throws {
        let train = try attSlice(identityCount: 3)
        let directory = TemporaryDirectory()
        let checkpoints = directory.path + "/checkpoints"
        let trainer = try Trainer(configuration: ResumeTests.configuration(), trainingSet: train)
        trainer.checkpointDirectory = checkpoints
        trainer.availableSpace = { _ in 300 * 1024 }
        do {
            try trainer.run()
            Issue.record("a run that cannot hold its checkpoints started")
        } catch {
            guard case .runFolder(.insufficientSpace(let space)) = error else { Issue.record("\(error)"); return }
            #expect(space.folder == checkpoints && space.available == 300 * 1024)
            #expect(space.needed == trainer.bytesNeeded(in: checkpoints) && space.needed > 300 * 1024)
            #expect(error.description.contains("not enough free space in \(checkpoints)"), "\(error)")
            #expect(error.description.contains("307200 bytes (300.0 KiB) available"), "\(error)")
        }
        #expect(trainer.step == 0 && trainer.history.isEmpty)
        #expect(try FileManager.default.contentsOfDirectory(atPath: checkpoints).isEmpty)

        // Exactly enough: it trains, and the estimate is an upper bound of what it wrote.
        let roomy = try Trainer(configuration: ResumeTests.configuration(), trainingSet: train)
        roomy.checkpointDirectory = checkpoints
        let needed = roomy.bytesNeeded(in: checkpoints)
        roomy.availableSpace = { _ in needed }
        try roomy.run()
        #expect(roomy.history.count == 3)
        let step = try #require(TrainingCheckpoint.latest(in: checkpoints))
        let size = try #require((try FileManager.default.attributesOfItem(atPath: step))[.size] as? NSNumber).int64Value
        #expect(roomy.checkpointBytesEstimate >= size)
        #expect(roomy.checkpointBytesEstimate <= size + 64 * 1024, "the estimate is close: \(roomy.checkpointBytesEstimate) vs \(size)")
        // A resume counts what the folder already holds.
        #expect(roomy.bytesNeeded(in: checkpoints) < needed)
    }

    @Test("a real 300 KiB tmpfs: the run fails before the first step (not after an epoch)",
          .enabled(if: TinyFilesystem.canMount))
    func realNearlyFullDisk() throws {
        let filesystem = try TinyFilesystem(kibibytes: 300)
        let trainer = try Trainer(configuration: ResumeTests.configuration(), trainingSet: try attSlice(identityCount: 3))
        trainer.checkpointDirectory = filesystem.path + "/checkpoints"
        do {
            try trainer.run()
            Issue.record("a run that cannot hold its checkpoints started")
        } catch {
            guard case .runFolder(.insufficientSpace) = error else { Issue.record("\(error)"); return }
        }
        #expect(trainer.step == 0)
    }

    @Test("embed: N × D × 4 bytes plus the index are checked before the first image")
    func embedChecksFirst() throws {
        let faces = try attSlice(identityCount: 2)
        let list = ImageList(paths: Array(faces.paths.prefix(5)), labels: Array(repeating: "s1", count: 5))
        var configuration = TrainingConfiguration.base
        configuration.backbone.stageChannels = [4, 8]
        configuration.backbone.embeddingDimension = 16
        let model = FaceRecognitionModel(configuration: configuration, classCount: 2)
        let directory = TemporaryDirectory()
        let output = directory.path + "/e.npy"
        let needed = Int64(5 * 16 * 4 + 128 + list.tabSeparatedValues.utf8.count)
        var embedded = 0
        #expect(throws: EmbeddingError.insufficientSpace(InsufficientSpaceError(
            folder: directory.path, what: "the 5 × 16 embeddings and their index", needed: needed, available: needed - 1))) {
            try Experiment.exportEmbeddings(list, model: model, output: output, flipSum: false,
                                            progress: { done, _ in embedded = done }, availableSpace: { _ in needed - 1 })
        }
        #expect(embedded == 0)
        #expect(try FileManager.default.contentsOfDirectory(atPath: directory.path).isEmpty)
        try Experiment.exportEmbeddings(list, model: model, output: output, flipSum: false, availableSpace: { _ in needed })
        #expect(FileManager.default.fileExists(atPath: output))
    }

    @Test("the real provider reports a positive size for an existing folder and for a path not yet created")
    func realProvider() throws {
        let directory = TemporaryDirectory()
        let here = try #require(DiskSpace.available(directory.path))
        #expect(here > 0)
        #expect(DiskSpace.available(directory.path + "/not/yet") != nil)
    }
}
