import Foundation
import Testing
import _TestSupport
@testable import Training
import ArcFace

/// Training from a RecordIO pack (`--data x.rec`): the same identities, batches and metrics as
/// the folder it was packed from (bit for bit with PNG payloads), exact resume, a bounded number
/// of decoded images, typed errors for a pack damaged mid-run, and the CLI's `pack` + `train`.
@Suite(.serialized) struct RecordIOTrainingTests {
    /// A folder of links to the first `count` AT&T identities, and its lossless pack beside it.
    static func attFolderAndPack(identityCount count: Int, in directory: TemporaryDirectory) throws -> (folder: String, pack: String) {
        let folder = directory.path + "/faces"
        try FileManager.default.createDirectory(atPath: folder, withIntermediateDirectories: true)
        for identity in 1...count {
            try FileManager.default.createSymbolicLink(atPath: folder + "/s\(identity)", withDestinationPath: attFacesDirectory + "/s\(identity)")
        }
        let pack = try packFaceFolder(directory: folder, recordPath: directory.path + "/faces.rec", encoding: .png)
        return (folder, pack.recordPath)
    }

    static func configuration(validation: Int = 0) -> TrainingConfiguration {
        var c = tinyConfiguration()
        c.epochs = 2
        c.warmupEpochs = 1
        c.validationIdentities = validation
        return c
    }

    @Test("a PNG pack trains exactly as its folder: identities, history, metrics bit for bit", arguments: [0, 2])
    func packEqualsFolder(validation: Int) throws {
        let directory = TemporaryDirectory()
        let (folder, pack) = try Self.attFolderAndPack(identityCount: 9, in: directory)
        let configuration = Self.configuration(validation: validation)
        let fromFolder = try Experiment.run(configuration: configuration, dataDirectory: folder, outputDirectory: nil)
        let fromPack = try Experiment.run(configuration: configuration, dataDirectory: pack, outputDirectory: nil)
        #expect(fromPack.history.map(\.loss) == fromFolder.history.map(\.loss))
        #expect(fromPack.history.map(\.accuracy) == fromFolder.history.map(\.accuracy))
        #expect(fromPack.history.map(\.validationAUC) == fromFolder.history.map(\.validationAUC))
        #expect(fromPack.metrics.verification == fromFolder.metrics.verification)
        #expect(fromPack.metrics.timing.images == fromFolder.metrics.timing.images)
        #expect(fromPack.history.allSatisfy { ($0.dataSeconds ?? -1) >= 0 })
        let folderSplit = try Experiment.split(directory: folder, configuration: configuration)
        let packSplit = try Experiment.splitPack(recordPath: pack, configuration: configuration)
        #expect(packSplit.train.identities == folderSplit.train.identities)
        #expect(packSplit.heldOut.identities == folderSplit.heldOut.identities)
        #expect(packSplit.train.labels == folderSplit.train.labels)
    }

    /// 40 identities × 10 noise images: 400 images, 40 batches of 10.
    static func largePack(in directory: TemporaryDirectory) throws -> String {
        let writer = try FacePackWriter(recordPath: directory.path + "/large.rec", encoding: .jpeg(quality: 90))
        var generator = SeededGenerator(seed: 11)
        for identity in 0..<40 {
            writer.beginIdentity("person\(identity)")
            for _ in 0..<10 {
                try writer.append(FaceImage(width: 23, height: 28, channels: 1,
                                            pixels: (0..<(23 * 28)).map { _ in Float(generator.next() % 256) / 255 }))
            }
        }
        return try writer.finish().recordPath
    }

    static func packSet(_ path: String) throws -> RecordIOFaceSet {
        try RecordIOFaceSet.open(recordPath: path, imageSize: ImageSize(width: 92, height: 112), colorMode: .grayscale)
    }

    @Test("a few steps from a pack 40× the batch decode only those batches (plus prefetch), never more than 2 batches held")
    func boundedDecodedImages() throws {
        let directory = TemporaryDirectory()
        let trainer = try Trainer(configuration: Self.configuration(), trainingImages: .pack(try Self.packSet(try Self.largePack(in: directory))))
        trainer.stopAfterStep = 5
        #expect(try trainer.run() == .stopped(step: 5, checkpoint: nil))
        let statistics = try #require(trainer.streamingStatistics)
        #expect(statistics.peakDecodedImagesHeld >= 10 && statistics.peakDecodedImagesHeld <= 2 * 10)
        #expect(statistics.imagesDecoded >= 5 * 10 && statistics.imagesDecoded <= (5 + 2) * 10)
    }

    @Test("stopped at step k and resumed from a pack = uninterrupted, bit for bit", arguments: [3, 6])
    func exactResume(stopStep: Int) throws {
        BLAS.threadCount = 1
        let directory = TemporaryDirectory()
        let (_, pack) = try Self.attFolderAndPack(identityCount: 4, in: directory)
        let set = try Self.packSet(pack)
        var configuration = Self.configuration()
        configuration.epochs = 3
        let reference = try Trainer(configuration: configuration, trainingImages: .pack(set))
        #expect(try reference.run() == .completed)
        let checkpoints = TemporaryDirectory()
        let first = try Trainer(configuration: configuration, trainingImages: .pack(set))
        first.checkpointDirectory = checkpoints.path
        first.stopAfterStep = stopStep
        _ = try first.run()
        let second = try Trainer(configuration: configuration, trainingImages: .pack(set))
        second.checkpointDirectory = checkpoints.path
        try second.restore(from: TrainingCheckpoint.path(in: checkpoints.path, step: stopStep))
        #expect(try second.run() == .completed)
        #expect(second.step == reference.step)
        #expect(second.model.namedTensors.map(\.tensor) == reference.model.namedTensors.map(\.tensor))
        #expect(second.history.map(\.loss) == reference.history.map(\.loss))
    }

    @Test("a pack truncated during training stops with a typed error naming the file and byte offset")
    func truncatedMidRun() throws {
        let directory = TemporaryDirectory()
        let path = try Self.largePack(in: directory)
        let trainer = try Trainer(configuration: Self.configuration(), trainingImages: .pack(try Self.packSet(path)))
        let handle = try FileHandle(forUpdating: URL(fileURLWithPath: path))
        try handle.truncate(atOffset: 20_000)
        try handle.close()
        do {
            try trainer.run()
            Issue.record("training on a truncated pack succeeded")
        } catch {
            guard case .data(.records(let recordError)) = error else { Issue.record("unexpected \(error)"); return }
            #expect(recordError.description.contains(path) && recordError.description.contains("byte"), "\(recordError)")
        }
    }

    @Test("the pack fingerprint comes from the .idx: equal for the same pack, changed when the payloads change")
    func fingerprint() throws {
        let directory = TemporaryDirectory()
        let (folder, pack) = try Self.attFolderAndPack(identityCount: 4, in: directory)
        let png = TrainingSetFingerprint(try Self.packSet(pack))
        #expect(png == TrainingSetFingerprint(try Self.packSet(pack)))
        #expect(png.images == 40 && png.imagesPerIdentity == ["s1": 10, "s2": 10, "s3": 10, "s4": 10])
        _ = try packFaceFolder(directory: folder, recordPath: pack, encoding: .jpeg(quality: 90))
        let jpeg = TrainingSetFingerprint(try Self.packSet(pack))
        #expect(jpeg.images == png.images && jpeg.digest != png.digest)
        #expect(jpeg.changes(since: png) != nil)
    }

    @Test("arcface pack then arcface train --data x.rec trains, evaluates and saves; a bad --output is a usage error",
          .enabled(if: ArcFaceBinary.path != nil))
    func commandLine() throws {
        let binary = try #require(ArcFaceBinary.path)
        let directory = TemporaryDirectory()
        let folder = directory.path + "/faces"
        try FileManager.default.createDirectory(atPath: folder, withIntermediateDirectories: true)
        for identity in 1...6 {
            try FileManager.default.createSymbolicLink(atPath: folder + "/s\(identity)", withDestinationPath: attFacesDirectory + "/s\(identity)")
        }
        let bad = try RunFolderCLITests.run(binary, ["pack", "--data", folder, "--output", directory.path + "/x.bin"])
        #expect(bad.status == 64 && bad.text.contains("--output"), "\(bad.text)")
        let packed = try RunFolderCLITests.run(binary, ["pack", "--data", folder, "--output", directory.path + "/x.rec", "--quality", "90"])
        #expect(packed.status == 0 && packed.text.contains("packed 60 images of 6 identities"), "\(packed.text)")
        let configFile = directory.path + "/config.json"
        var configuration = Self.configuration()
        configuration.epochs = 1
        configuration.warmupEpochs = 0
        try configuration.jsonData().write(to: URL(fileURLWithPath: configFile))
        let trained = try RunFolderCLITests.run(binary, ["train", "--data", directory.path + "/x.rec", "--config", configFile,
                                                         "--output", directory.path + "/run"])
        #expect(trained.status == 0, "\(trained.text)")
        #expect(trained.text.contains("| data "), "\(trained.text)")
        #expect(FileManager.default.fileExists(atPath: directory.path + "/run/metrics.json"))
    }
}
