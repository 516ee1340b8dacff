import Foundation
import Testing
import _TestSupport
@testable import Training
import ArcFace

/// Resume when the newest step checkpoint is truncated: continue from the newest loadable one,
/// saying which file was skipped and why; a typed error when none loads.
@Suite(.serialized) struct ResumeFallbackTests {
    /// 5 training identities of AT&T (35 held out), 50 images, batch 10: 5 steps per epoch,
    /// 2 epochs, a checkpoint every step (the newest 3 kept).
    static func configuration() -> TrainingConfiguration {
        var c = tinyConfiguration()
        c.epochs = 2
        c.heldOutIdentities = 35
        c.checkpointEverySteps = 1
        return c
    }

    /// Cuts `path` to half its size.
    static func truncate(_ path: String) throws {
        let data = try Data(contentsOf: URL(fileURLWithPath: path))
        try data.prefix(data.count / 2).write(to: URL(fileURLWithPath: path))
    }

    @Test("newestLoadable passes over truncated files, newest first; none loadable is a typed error")
    func newestLoadable() throws {
        let train = try attSlice(identityCount: 3)
        let directory = TemporaryDirectory()
        let trainer = try Trainer(configuration: ResumeTests.configuration(), trainingSet: train)
        trainer.checkpointDirectory = directory.path
        trainer.stopAfterStep = 4
        try trainer.run()  // epoch end at step 3, stop at step 4
        let three = TrainingCheckpoint.path(in: directory.path, step: 3), four = TrainingCheckpoint.path(in: directory.path, step: 4)
        #expect(try TrainingCheckpoint.newestLoadable(in: directory.path).path == four)
        try Self.truncate(four)
        let found = try TrainingCheckpoint.newestLoadable(in: directory.path)
        #expect(found.path == three && found.skipped.map(\.path) == [four])
        guard case .malformed(four, let reason)? = found.skipped.first?.error else {
            Issue.record("a truncated file is .malformed, got \(found.skipped)")
            return
        }
        #expect(!reason.isEmpty)
        try Self.truncate(three)
        do {
            _ = try TrainingCheckpoint.newestLoadable(in: directory.path)
            Issue.record("no loadable checkpoint must be an error")
        } catch {
            guard case .noLoadableCheckpoint(directory.path, let skipped) = error else {
                Issue.record("expected .noLoadableCheckpoint, got \(error)")
                return
            }
            #expect(skipped.count == 2 && skipped[0].contains(four) && skipped[1].contains(three))
        }
        let empty = TemporaryDirectory()
        #expect(throws: CheckpointError.unreadable(path: empty.path, reason: "no step-*.safetensors checkpoint to resume from")) {
            try TrainingCheckpoint.newestLoadable(in: empty.path)
        }
    }

    @Test("Experiment.run --resume with a truncated newest checkpoint continues from the previous one, bit-identically")
    func experimentFallsBack() throws {
        BLAS.threadCount = 1
        let directory = TemporaryDirectory()
        let output = directory.path + "/run"
        let reference = try Experiment.run(configuration: Self.configuration(), dataDirectory: attFacesDirectory, outputDirectory: output)
        let checkpoints = output + "/checkpoints"
        let finished = try Safetensors.read(path: output + "/model.safetensors").tensors
        let newest = TrainingCheckpoint.path(in: checkpoints, step: 10)
        #expect(TrainingCheckpoint.latest(in: checkpoints) == newest)
        try Self.truncate(newest)

        var skipped: [(String, CheckpointError)] = []
        let resumed = try Experiment.run(configuration: Self.configuration(), dataDirectory: attFacesDirectory,
                                         outputDirectory: output, resume: true,
                                         onCheckpointSkipped: { skipped.append(($0, $1)) })
        #expect(skipped.count == 1 && skipped.first?.0 == newest)
        if case .malformed(newest, _)? = skipped.first?.1 {} else { Issue.record("why: \(skipped)") }
        #expect(FileManager.default.fileExists(atPath: newest + ".unloadable"), "the corrupt file is set aside")
        // Step 10 was trained again from step 9: the same weights as the uninterrupted run.
        #expect(try Safetensors.read(path: output + "/model.safetensors").tensors == finished)
        #expect(try TrainingCheckpoint.newestLoadable(in: checkpoints).path == newest, "step 10 is written anew")
        #expect(resumed.metrics.finalTrainingLoss == reference.metrics.finalTrainingLoss)

        // Nothing loadable: a typed error, nothing trained.
        for name in TrainingCheckpoint.stepCheckpoints(in: checkpoints) { try Self.truncate(checkpoints + "/" + name) }
        #expect(throws: TrainingError.self) {
            try Experiment.run(configuration: Self.configuration(), dataDirectory: attFacesDirectory, outputDirectory: output, resume: true)
        }
        do {
            _ = try Experiment.run(configuration: Self.configuration(), dataDirectory: attFacesDirectory, outputDirectory: output, resume: true)
        } catch {
            guard case .checkpoint(.noLoadableCheckpoint(checkpoints, let reasons)) = error else {
                Issue.record("expected .noLoadableCheckpoint, got \(error)")
                return
            }
            #expect(reasons.count == 3)
        }
    }

    @Test("arcface train --resume: the skipped file and why on standard error", .enabled(if: ArcFaceBinary.path != nil))
    func binary() throws {
        let binary = try #require(ArcFaceBinary.path)
        let directory = TemporaryDirectory()
        let output = directory.path + "/run"
        _ = try Experiment.run(configuration: Self.configuration(), dataDirectory: attFacesDirectory, outputDirectory: output)
        let checkpoints = output + "/checkpoints"
        let newest = TrainingCheckpoint.path(in: checkpoints, step: 10)
        try Self.truncate(newest)
        let run = try ArcFaceBinary.start(binary, ["train", "--resume", output])
        run.waitUntilExit()
        #expect(run.process.terminationStatus == 0, "\(run.text)")
        #expect(run.text.contains("resuming from \(TrainingCheckpoint.path(in: checkpoints, step: 9))"))
        #expect(run.text.contains("warning: \(newest) is not a valid safetensors checkpoint"))
        #expect(run.text.contains("skipping it (renamed to step-00000010.safetensors.unloadable)"))
    }
}
