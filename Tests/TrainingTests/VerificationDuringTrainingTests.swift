import Foundation
import Testing
import _TestSupport
@testable import Training
import ArcFace

/// Verification sets during training (`verificationSets`, `verifyEverySteps`, `bestBy`): the
/// schedule, training unchanged by them, `best.safetensors` by a set, resume, bad sets,
/// `metrics.json` and `report.html`.
@Suite(.serialized) struct VerificationDuringTrainingTests {
    /// 3 identities × 10 images, batch 10 → 3 steps per epoch; 3 epochs = 9 steps; dropout on.
    static func configuration(every: Int, sets: [String]) -> TrainingConfiguration {
        var c = tinyConfiguration()
        c.epochs = 3
        c.warmupEpochs = 1
        c.backbone.dropout = 0.5
        c.verificationSets = sets
        c.verifyEverySteps = every
        return c
    }

    /// A `.bin` of the first 4 images of AT&T identities `identities` (never those of
    /// `attSlice(identityCount: 3)`): their balanced pairs in fold order (2 identities: 12
    /// genuine, 12 impostor pairs), each image its PGM file's bytes.
    static func writeSet(named name: String, identities: [Int], in directory: String) throws -> String {
        let all = try FaceDataset.load(directory: attFacesDirectory).subset(identityIndices: identities)
        let kept = all.sampleIndicesByIdentity.flatMap { $0.prefix(4) }
        let faces = FaceDataset(identities: all.identities, images: kept.map { all.images[$0] }, labels: kept.map { all.labels[$0] },
                                paths: kept.map { all.paths[$0] })
        let pairs = balancedPairsInFoldOrder(labels: faces.labels, seed: 1)
        let images = try pairs.flatMap { [$0.first, $0.second] }.map { [UInt8](try Data(contentsOf: URL(fileURLWithPath: faces.paths[$0]))) }
        let path = directory + "/" + name + ".bin"
        try Experiment.write(VerificationBin(path: path, encodedImages: images, isSame: pairs.map(\.isSame)))
        return path
    }

    @Test("a set of images unlike the model's input (colour, another size) is warned about, naming its file")
    func mismatchedSetWarns() throws {
        let directory = TemporaryDirectory()
        let grey = try Self.writeSet(named: "grey", identities: [38, 39], in: directory.path)
        let bin = try VerificationBin.read(path: grey)
        let colour = try (0..<bin.encodedImages.count).map {
            try encodePNG(bin.image(at: $0).converted(to: .rgb).resizedAndCropped(to: ImageSize(width: 40, height: 50)))
        }
        let path = directory.path + "/colour.bin"
        try Experiment.write(VerificationBin(path: path, encodedImages: colour, isSame: bin.isSame))
        let configuration = Self.configuration(every: 0, sets: [grey, path])
        let sets = try Experiment.loadVerificationSets(configuration)
        #expect(sets[0].inputWarnings(against: configuration.preprocessing).isEmpty)
        let warnings = sets[1].inputWarnings(against: configuration.preprocessing)
        #expect(warnings.count == 2, "\(warnings)")
        #expect(warnings.allSatisfy { $0.hasPrefix(path + ": \(colour.count) of \(colour.count) images are ") }, "\(warnings)")
        #expect(warnings.first?.contains("colour but the model was trained on grey") == true, "\(warnings)")
        #expect(warnings.last?.contains("not 92×112 (40×50, width×height)") == true, "\(warnings)")
    }

    static func trainer(_ configuration: TrainingConfiguration) throws -> Trainer {
        let trainer = try Trainer(configuration: configuration, trainingSet: try attSlice(identityCount: 3))
        trainer.verificationSets = try Experiment.loadVerificationSets(configuration)
        return trainer
    }

    static func state(_ trainer: Trainer) -> [Tensor] {
        trainer.model.namedTensors.map(\.tensor) + trainer.optimizer.momentumBuffers
    }

    @Test("evaluated every N steps and after the last step", arguments: [(0, [9]), (2, [2, 4, 6, 8, 9]), (3, [3, 6, 9]), (4, [4, 8, 9])])
    func schedule(every: Int, steps: [Int]) throws {
        BLAS.threadCount = 1
        let directory = TemporaryDirectory()
        let set = try Self.writeSet(named: "held", identities: [38, 39], in: directory.path)
        let trainer = try Self.trainer(Self.configuration(every: every, sets: [set]))
        var called: [Int] = []
        trainer.onVerification = { called.append($0.step) }
        #expect(try trainer.run() == .completed)
        #expect(trainer.verifications.map(\.step) == steps)
        #expect(called == steps)
        #expect(trainer.verifications.map(\.epoch) == steps.map { ($0 - 1) / 3 + 1 })
        for record in trainer.verifications {
            #expect(record.sets.map(\.name) == ["held"])
            let score = record.sets[0]
            #expect((0.0...1.0).contains(score.withFlip.accuracy) && (0.0...1.0).contains(score.withoutFlip.accuracy))
            #expect(score.withFlip.standardDeviation >= 0 && score.withFlip.auc > 0)
        }
    }

    @Test("training with sets is bit-identical to training without; an evaluation changes no training state")
    func determinism() throws {
        BLAS.threadCount = 1
        let directory = TemporaryDirectory()
        let set = try Self.writeSet(named: "held", identities: [38, 39], in: directory.path)
        let without = try Self.trainer(Self.configuration(every: 0, sets: []))
        let with = try Self.trainer(Self.configuration(every: 1, sets: [set]))
        #expect(try without.run() == .completed)
        #expect(try with.run() == .completed)
        #expect(with.verifications.count == 9 && without.verifications.isEmpty)
        #expect(Self.state(with) == Self.state(without))
        #expect(with.model.backbone.dropoutGenerator == without.model.backbone.dropoutGenerator)
        #expect(with.history.map(\.loss) == without.history.map(\.loss))
        #expect(with.history.map(\.accuracy) == without.history.map(\.accuracy))
        // One evaluation: the same record twice, and the weights, BatchNorm statistics and dropout stream untouched.
        let before = Self.state(with), generator = with.model.backbone.dropoutGenerator
        let first = try with.verify(), second = try with.verify()
        #expect(first == second)
        #expect(first.sets[0] == with.verifications.last?.sets[0])
        #expect(Self.state(with) == before && with.model.backbone.dropoutGenerator == generator)
    }

    @Test("best.safetensors is the checkpoint of the bestBy set's highest accuracy (ties: the earliest)")
    func bestBy() throws {
        BLAS.threadCount = 1
        let directory = TemporaryDirectory()
        let set = try Self.writeSet(named: "held", identities: [38, 39], in: directory.path)
        var configuration = Self.configuration(every: 1, sets: [set])
        configuration.bestBy = "held"
        let trainer = try Self.trainer(configuration)
        trainer.checkpointDirectory = directory.path + "/checkpoints"
        #expect(try trainer.run() == .completed)
        let accuracies = trainer.verifications.map { $0.sets[0].withFlip.accuracy }
        let highest = try #require(accuracies.max())
        let expectedStep = trainer.verifications[try #require(accuracies.firstIndex(of: highest))].step
        let best = try TrainingCheckpoint.read(path: directory.path + "/checkpoints/" + TrainingCheckpoint.bestName)
        #expect(best.progress.step == expectedStep, "accuracies by step: \(accuracies)")
        #expect(best.progress.bestVerificationAccuracy == highest)
        // The best file holds the weights of that step: evaluating it gives the recorded accuracy.
        let model = try Experiment.loadModel(path: directory.path + "/checkpoints/" + TrainingCheckpoint.bestName)
        let sets = try Experiment.loadVerificationSets(configuration)
        let report = try PairProtocolEvaluation.evaluate(model.backbone, flipSum: true, set: sets[0].pairs)
        #expect(report.accuracy == highest)
    }

    @Test("a resumed run keeps the verification history: stopped at step 5 and resumed = uninterrupted")
    func resumeKeepsHistory() throws {
        BLAS.threadCount = 1
        let directory = TemporaryDirectory()
        let set = try Self.writeSet(named: "held", identities: [38, 39], in: directory.path)
        var configuration = Self.configuration(every: 2, sets: [set])
        configuration.bestBy = "held"
        let reference = try Self.trainer(configuration)
        reference.checkpointDirectory = directory.path + "/reference"
        #expect(try reference.run() == .completed)

        let first = try Self.trainer(configuration)
        first.checkpointDirectory = directory.path + "/run"
        first.stopAfterStep = 5
        let checkpoint = TrainingCheckpoint.path(in: directory.path + "/run", step: 5)
        #expect(try first.run() == .stopped(step: 5, checkpoint: checkpoint))
        let second = try Self.trainer(configuration)
        second.checkpointDirectory = directory.path + "/run"
        try second.restore(from: checkpoint)
        #expect(second.verifications.map(\.step) == [2, 4])
        #expect(try second.run() == .completed)
        #expect(second.verifications == reference.verifications)
        #expect(second.bestVerificationAccuracy == reference.bestVerificationAccuracy)
        let best = try TrainingCheckpoint.read(path: directory.path + "/run/" + TrainingCheckpoint.bestName).progress.step
        let referenceBest = try TrainingCheckpoint.read(path: directory.path + "/reference/" + TrainingCheckpoint.bestName).progress.step
        #expect(best == referenceBest)
    }

    @Test("a missing or malformed set fails before anything is loaded or written, naming the file")
    func badSets() throws {
        let directory = TemporaryDirectory()
        let junk = directory.path + "/junk.bin"
        try Data("not a pickle".utf8).write(to: URL(fileURLWithPath: junk))
        for path in [directory.path + "/missing.bin", junk, directory.path + "/pairs.txt:" + directory.path] {
            var configuration = Self.configuration(every: 0, sets: [path])
            configuration.epochs = 1
            var epochs = 0
            do {
                _ = try Experiment.run(configuration: configuration, dataDirectory: attFacesDirectory,
                                       outputDirectory: directory.path + "/run") { _ in epochs += 1 }
                Issue.record("expected an error for \(path)")
            } catch {
                guard case .verificationSet = error else { Issue.record("wrong error \(error)"); continue }
                let file = path.split(separator: ":").first.map(String.init) ?? path
                #expect(error.description.contains(file), "\(error)")
            }
            #expect(epochs == 0)
            #expect(!FileManager.default.fileExists(atPath: directory.path + "/run"))
        }
    }

    @Test("arcface train --verify of a missing or malformed file exits 1 (a data error, as evaluate-protocol's) naming it, before training; an unknown --best-by exits 64",
          .enabled(if: ArcFaceBinary.path != nil))
    func badSetCLI() throws {
        let binary = try #require(ArcFaceBinary.path)
        let directory = TemporaryDirectory()
        let missing = directory.path + "/nowhere/lfw.bin"
        let result = try RunFolderCLITests.run(binary, ["train", "--data", attFacesDirectory, "--output", directory.path + "/run",
                                                        "--epochs", "1", "--verify", missing])
        #expect(result.status == 1, "\(result.text)")
        #expect(result.text.contains(missing), "\(result.text)")
        #expect(!result.text.contains("epoch "), "\(result.text)")
        let garbage = directory.path + "/garbage.bin"
        try Data("garbage\n".utf8).write(to: URL(fileURLWithPath: garbage))
        let malformed = try RunFolderCLITests.run(binary, ["train", "--data", attFacesDirectory, "--output", directory.path + "/run",
                                                           "--epochs", "1", "--verify", garbage])
        #expect(malformed.status == 1 && malformed.text.contains("\(garbage): unsupported pickle opcode"), "\(malformed.text)")
        #expect(!FileManager.default.fileExists(atPath: directory.path + "/run"))
        let unnamed = try RunFolderCLITests.run(binary, ["train", "--data", attFacesDirectory, "--output", directory.path + "/run",
                                                         "--verify", missing, "--best-by", "cfp"])
        #expect(unnamed.status == 64 && unnamed.text.contains("bestBy 'cfp' names no verification set (sets: lfw)"), "\(unnamed.text)")
    }

    @Test("metrics.json and report.html: every set's history and final scores, one curve per set; the held-out .bin scores the run's balanced accuracy")
    func metricsAndReport() throws {
        BLAS.threadCount = 1
        let directory = TemporaryDirectory()
        // 7 AT&T identities: 3 held out, 4 × 10 images trained, batch 10 → 4 steps per epoch, 8 steps.
        let data = directory.path + "/faces"
        try FileManager.default.createDirectory(atPath: data, withIntermediateDirectories: true)
        for identity in try FaceDataset.load(directory: attFacesDirectory).identities.prefix(7) {
            try FileManager.default.copyItem(atPath: attFacesDirectory + "/" + identity, toPath: data + "/" + identity)
        }
        var configuration = tinyConfiguration()
        configuration.epochs = 2
        let heldOut = directory.path + "/heldout.bin"
        let (set, identities) = try Experiment.heldOutVerificationBin(directory: data, configuration: configuration, path: heldOut)
        try Experiment.write(set)
        let other = try Self.writeSet(named: "other", identities: [38, 39], in: directory.path)
        configuration.verificationSets = [heldOut, other]
        configuration.verifyEverySteps = 3
        configuration.bestBy = "other"
        let output = directory.path + "/run"
        let result = try Experiment.run(configuration: configuration, dataDirectory: data, outputDirectory: output)
        // The .bin holds exactly the run's held-out identities.
        let (_, heldOutSet) = try Experiment.split(directory: data, configuration: configuration)
        #expect(identities == heldOutSet.identities)
        let steps = [3, 6, 8]

        let json = try #require(try JSONSerialization.jsonObject(with: Data(contentsOf: URL(fileURLWithPath: output + "/metrics.json"))) as? [String: Any])
        let sets = try #require(json["verificationSets"] as? [[String: Any]])
        #expect(sets.map { $0["name"] as? String } == ["heldout", "other"])
        #expect(sets[0]["genuinePairCount"] as? Int == 135 && sets[0]["impostorPairCount"] as? Int == 135 && sets[0]["folds"] as? Int == 10)
        for entry in sets {
            let history = try #require(entry["history"] as? [[String: Any]])
            #expect(history.map { $0["step"] as? Int } == steps)
            let final = try #require(entry["final"] as? [String: Any])
            let withFlip = try #require(final["withFlip"] as? [String: Any]), withoutFlip = try #require(final["withoutFlip"] as? [String: Any])
            #expect(Set(withFlip.keys) == ["accuracy", "standardDeviation", "auc"] && Set(withoutFlip.keys) == Set(withFlip.keys))
            #expect(final["step"] as? Int == steps.last)
        }
        let bestBy = try #require(json["bestBy"] as? [String: Any])
        #expect(bestBy["set"] as? String == "other")
        #expect(result.metrics.bestBy?.step == result.metrics.verificationSets?[1].best.step)
        // Same pairs, same folds, same weights: the .bin's accuracy is the run's balanced accuracy
        // up to the fp32 rounding of a cosine near a threshold (one pair is 1/270).
        let final = try #require(result.metrics.verificationSets?[0].final.withFlip.accuracy)
        #expect(abs(final - result.metrics.verification.balancedAccuracy) <= 1.0 / 270 + 1e-9,
                "\(final) vs \(result.metrics.verification.balancedAccuracy)")

        let html = try String(contentsOfFile: output + "/report.html", encoding: .utf8)
        for name in ["heldout", "other"] {
            #expect(html.components(separatedBy: "data-series=\"verification-\(name)\"").count == 2)
            #expect(html.components(separatedBy: "data-series=\"verification-no-flip-\(name)\"").count == 2)
        }
        #expect(html.contains("data-chart=\"verification\""))
        #expect(html.contains("best.safetensors chosen by"))
        #expect(ElementCollector.parse(html) != nil)
    }
}
