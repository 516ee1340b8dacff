import Foundation
import Testing
import _TestSupport
@_spi(FaultInjection) @testable import Training
import ArcFace

@Suite(.serialized) struct NonFiniteTests {
    static func configuration(_ policy: NonFinitePolicy) -> TrainingConfiguration {
        var c = ResumeTests.configuration()
        c.onNonFinite = policy
        return c
    }

    /// Model tensors (weights and BatchNorm statistics) and momentum after `steps` clean steps.
    static func stateAfter(steps: Int, _ train: FaceDataset) throws -> [Tensor] {
        let trainer = try Trainer(configuration: configuration(.stop), trainingSet: train)
        trainer.stopAfterStep = steps
        try trainer.run()
        return ResumeTests.state(trainer)
    }

    static func poison(at steps: Set<Int>) -> (Int, FaceRecognitionModel) -> Void {
        { step, model in
            if steps.contains(step) { model.parameters[1].gradient.storage[0] = .nan }
        }
    }

    @Test("stop: a NaN gradient is a typed error with the step and last finite loss; nothing is updated")
    func stopOnGradient() throws {
        let train = try attSlice(identityCount: 3)
        let trainer = try Trainer(configuration: Self.configuration(.stop), trainingSet: train)
        trainer.afterBackward = Self.poison(at: [2])
        do {
            try trainer.run()
            Issue.record("a NaN gradient went unnoticed")
        } catch {
            guard case let .numerics(.nonFiniteGradient(step, parameter, last)) = error else { Issue.record("\(error)"); return }
            #expect(step == 2)
            #expect(parameter == trainer.model.parameters[1].name)
            #expect(last != nil && last!.isFinite)
        }
        #expect(ResumeTests.state(trainer) == (try Self.stateAfter(steps: 2, train)),
                "weights, BatchNorm statistics and momentum are those before the bad step")
    }

    @Test("skip: a NaN gradient skips the step (no update, BatchNorm statistics restored) and counts it")
    func skipGradient() throws {
        let train = try attSlice(identityCount: 3)
        let trainer = try Trainer(configuration: Self.configuration(.skip), trainingSet: train)
        trainer.afterBackward = Self.poison(at: [2])
        trainer.stopAfterStep = 3
        try trainer.run()
        #expect(ResumeTests.state(trainer) == (try Self.stateAfter(steps: 2, train)))
        #expect(trainer.skippedSteps == 1)

        let full = try Trainer(configuration: Self.configuration(.skip), trainingSet: train)
        full.afterBackward = Self.poison(at: [2, 4, 5])
        try full.run()
        #expect(full.history.map(\.skippedSteps) == [1, 2, 0])
        #expect(full.skippedSteps == 3)
        #expect(full.model.namedTensors.allSatisfy { $0.tensor.isFinite })
        #expect(full.history.allSatisfy { $0.loss.isFinite })
    }

    @Test("skip: a batch holding a NaN image is skipped every epoch; the weights stay finite")
    func skipBatch() throws {
        var train = try attSlice(identityCount: 3)
        train.images[7].pixels[56 * 92 + 46] = .nan  // the centre: no translation moves it out
        let trainer = try Trainer(configuration: Self.configuration(.skip), trainingSet: train)
        try trainer.run()
        #expect(trainer.history.map(\.skippedSteps) == [1, 1, 1])
        #expect(trainer.model.namedTensors.allSatisfy { $0.tensor.isFinite })

        let stopping = try Trainer(configuration: Self.configuration(.stop), trainingSet: train)
        #expect(throws: TrainingError.self) { try stopping.run() }
        #expect(stopping.model.namedTensors.allSatisfy { $0.tensor.isFinite })
    }

    @Test("skipped steps reach metrics.json")
    func metrics() throws {
        let report = evaluateVerification(embeddings: Tensor(shape: [4, 2], storage: [1, 0, 1, 0.1, 0, 1, 0.1, 1]),
                                          labels: [0, 0, 1, 1], folds: 2, seed: 1)
        let metrics = RunMetrics(verification: report, trainImagesPerSecond: 1, timing: TimingBreakdown(),
                                 finalTrainingLoss: 1, trainingSeconds: 1, skippedSteps: 4)
        let data = try JSONEncoder().encode(metrics)
        #expect(String(decoding: data, as: UTF8.self).contains("\"skippedSteps\":4"))
        #expect(try JSONDecoder().decode(RunMetrics.self, from: data).skippedSteps == 4)
    }
}

@Suite struct BadImageRunTests {
    @Test("--on-bad-image skip: the run trains and lists the skipped files in skipped-images.txt")
    func skippedImagesFile() throws {
        let data = TemporaryDirectory(), output = TemporaryDirectory()
        let fileManager = FileManager.default
        for identity in 1...6 {
            try fileManager.createDirectory(atPath: data.path + "/s\(identity)", withIntermediateDirectories: true)
            for image in 1...5 {
                try fileManager.createSymbolicLink(atPath: data.path + "/s\(identity)/\(image).pgm",
                                                   withDestinationPath: attFacesDirectory + "/s\(identity)/\(image).pgm")
            }
        }
        let corrupt = data.path + "/s1/6.pgm"
        try Data("P5\n92 112\n255\n".utf8).write(to: URL(fileURLWithPath: corrupt))
        var configuration = tinyConfiguration()
        configuration.epochs = 1
        configuration.warmupEpochs = 0
        configuration.heldOutIdentities = 2
        configuration.folds = 2
        #expect(throws: TrainingError.self) {
            try Experiment.run(configuration: configuration, dataDirectory: data.path, outputDirectory: nil)
        }
        configuration.onBadImage = .skip
        var warnings: [String] = []
        _ = try Experiment.run(configuration: configuration, dataDirectory: data.path, outputDirectory: output.path,
                               onDataset: { warnings = $0.warnings })
        let listed = try String(contentsOfFile: output.path + "/skipped-images.txt", encoding: .utf8)
        #expect(listed.hasPrefix(corrupt + "\t"))
        #expect(listed.split(separator: "\n").count == 1)
        #expect(warnings.count == 1 && warnings[0].contains(corrupt))
    }
}
