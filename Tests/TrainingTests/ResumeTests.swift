import Foundation
import Testing
import _TestSupport
@testable import Training
import ArcFace

/// Exact resume: a run stopped at step k and continued from its checkpoint ends bit-identical
/// to an uninterrupted run (one OpenBLAS thread: `tinyConfiguration().threads == 1`).
@Suite(.serialized) struct ResumeTests {
    /// 3 identities × 10 images, batch 10 → 3 steps per epoch; 3 epochs = 9 steps; dropout 0.5 on.
    static func configuration() -> TrainingConfiguration {
        var c = tinyConfiguration()
        c.epochs = 3
        c.warmupEpochs = 1
        c.backbone.dropout = 0.5
        return c
    }

    static func state(_ trainer: Trainer) -> [Tensor] {
        trainer.model.namedTensors.map(\.tensor) + trainer.optimizer.momentumBuffers
    }

    /// `validation` > 0: that many more identities, held out of the fit as a validation split
    /// (the fitted set stays 3 × 10 images); `best.safetensors` then follows the validation AUC.
    @Test("stopped at step k and resumed = uninterrupted, bit for bit",
          arguments: [(stopStep: 4, validation: 0), (3, 0), (4, 2), (3, 2)])
    func exactResume(stopStep: Int, validation: Int) throws {
        BLAS.threadCount = 1
        let train = try attSlice(identityCount: 3 + validation)
        var configuration = Self.configuration()
        configuration.validationIdentities = validation
        let referenceDirectory = TemporaryDirectory()
        let reference = try Trainer(configuration: configuration, trainingSet: train)
        reference.checkpointDirectory = referenceDirectory.path
        #expect(try reference.run() == .completed)
        #expect(reference.step == 9)

        let directory = TemporaryDirectory()
        let first = try Trainer(configuration: configuration, trainingSet: train)
        first.checkpointDirectory = directory.path
        first.stopAfterStep = stopStep
        let outcome = try first.run()
        let expectedPath = TrainingCheckpoint.path(in: directory.path, step: stopStep)
        #expect(outcome == .stopped(step: stopStep, checkpoint: expectedPath))
        #expect(TrainingCheckpoint.latest(in: directory.path) == expectedPath)

        let second = try Trainer(configuration: configuration, trainingSet: train)
        second.checkpointDirectory = directory.path
        try second.restore(from: expectedPath)
        #expect(second.step == stopStep)
        #expect(try second.run() == .completed)
        #expect(second.step == 9)
        #expect(Self.state(second) == Self.state(reference))
        #expect(second.model.backbone.dropoutGenerator == reference.model.backbone.dropoutGenerator)
        #expect(second.history.map(\.loss) == reference.history.map(\.loss))
        #expect(second.history.map(\.accuracy) == reference.history.map(\.accuracy))
        #expect(second.history.map(\.learningRate) == reference.history.map(\.learningRate))
        #expect(second.history.map(\.validationAUC) == reference.history.map(\.validationAUC))
        #expect(second.history.allSatisfy { ($0.validationAUC != nil) == (validation > 0) })
        #expect(second.validationIdentities == reference.validationIdentities)
        // The same epoch is best in both runs, by the same criterion.
        let best = try TrainingCheckpoint.read(path: directory.path + "/" + TrainingCheckpoint.bestName).progress
        let referenceBest = try TrainingCheckpoint.read(path: referenceDirectory.path + "/" + TrainingCheckpoint.bestName).progress
        #expect(best.history.map(\.epoch) == referenceBest.history.map(\.epoch))
        #expect(best.history.map(\.loss) == referenceBest.history.map(\.loss))
        #expect(best.history.map(\.validationAUC) == referenceBest.history.map(\.validationAUC))
        #expect(best.bestValidationAUC == referenceBest.bestValidationAUC && best.bestLoss == referenceBest.bestLoss)
    }

    @Test("stopped in the middle of the margin warm-up and resumed = uninterrupted, bit for bit")
    func resumeDuringMarginWarmup() throws {
        BLAS.threadCount = 1
        let train = try attSlice(identityCount: 3)
        var configuration = Self.configuration()
        configuration.marginWarmupEpochs = 3   // 9 steps of ramp: the whole run is warm-up
        let reference = try Trainer(configuration: configuration, trainingSet: train)
        #expect(try reference.run() == .completed)
        let directory = TemporaryDirectory()
        let first = try Trainer(configuration: configuration, trainingSet: train)
        first.checkpointDirectory = directory.path
        first.stopAfterStep = 4   // inside epoch 2, margin 4/9 of m for the next step
        _ = try first.run()
        let second = try Trainer(configuration: configuration, trainingSet: train)
        try second.restore(from: TrainingCheckpoint.path(in: directory.path, step: 4))
        #expect(try second.run() == .completed)
        #expect(Self.state(second) == Self.state(reference))
        #expect(second.history.map(\.loss) == reference.history.map(\.loss))
        let head = try #require(second.model.head as? MarginHead), referenceHead = try #require(reference.model.head as? MarginHead)
        #expect((head.margin as? ArcFaceMargin) == (referenceHead.margin as? ArcFaceMargin))
        // And the warm-up mattered: without it the run differs.
        var constant = configuration
        constant.marginWarmupEpochs = 0
        let unramped = try Trainer(configuration: constant, trainingSet: train)
        try unramped.run()
        #expect(unramped.history.map(\.loss) != reference.history.map(\.loss))
    }

    @Test("checkpoints: newest N kept, best by training loss, all loadable")
    func keepAndBest() throws {
        let train = try attSlice(identityCount: 3)
        var configuration = Self.configuration()
        configuration.keepCheckpoints = 2
        configuration.checkpointEverySteps = 2
        let directory = TemporaryDirectory()
        let trainer = try Trainer(configuration: configuration, trainingSet: train)
        trainer.checkpointDirectory = directory.path
        try trainer.run()
        let names = TrainingCheckpoint.stepCheckpoints(in: directory.path)
        #expect(names == ["step-00000008.safetensors", "step-00000009.safetensors"])
        let files = try FileManager.default.contentsOfDirectory(atPath: directory.path).sorted()
        #expect(files == ["best.safetensors"] + names, "no temporary or probe file is left behind")
        let best = try TrainingCheckpoint.read(path: directory.path + "/best.safetensors")
        let bestLoss = trainer.history.map(\.loss).min()!
        #expect(best.progress.history.last?.loss == bestLoss)
        #expect(best.progress.bestLoss == bestLoss, "the best checkpoint records itself as the best so far")
        #expect(best.progress.epoch.batch == 0, "best is an epoch-end checkpoint")
    }

    @Test("a checkpoint of another shape, version, configuration, kind or a truncated one is refused, saying which")
    func refusals() throws {
        let train = try attSlice(identityCount: 3)
        let directory = TemporaryDirectory()
        let trainer = try Trainer(configuration: Self.configuration(), trainingSet: train)
        trainer.checkpointDirectory = directory.path
        trainer.stopAfterStep = 2
        try trainer.run()
        let path = TrainingCheckpoint.path(in: directory.path, step: 2)
        let (tensors, metadata) = try Safetensors.read(path: path)

        func refusal(_ mutate: (inout [String: Tensor], inout [String: String]) -> Void,
                     configuration: TrainingConfiguration = Self.configuration(),
                     bytes: ((Data) -> Data)? = nil) throws -> CheckpointError? {
            var t = tensors, m = metadata
            mutate(&t, &m)
            let file = directory.path + "/variant.safetensors"
            m[Safetensors.checksumKey] = nil  // a fresh checksum of the variant's tensors
            let data = Safetensors.encode(t.sorted { $0.key < $1.key }.map { ($0.key, $0.value) }, metadata: m, checksum: true)
            try (bytes?(data) ?? data).write(to: URL(fileURLWithPath: file))
            let fresh = try Trainer(configuration: configuration, trainingSet: train)
            let before = Self.state(fresh)
            do { try fresh.restore(from: file) } catch {
                #expect(Self.state(fresh) == before, "a refused checkpoint changes nothing")
                guard case let .checkpoint(inner) = error else { Issue.record("\(error)"); return nil }
                #expect(inner.description.contains(file))
                return inner
            }
            return nil
        }
        #expect(try refusal({ _, _ in }) == nil, "the unchanged file is accepted")
        if case .incompatibleVersion(_, let found, _)? = try refusal({ $1["version"] = "0" }) { #expect(found == "0") }
        else { Issue.record("version") }
        if case .notATrainingState? = try refusal({ $1["kind"] = nil }) {} else { Issue.record("kind") }
        var wider = Self.configuration()
        wider.backbone.embeddingDimension = 8
        if case .configurationMismatch(_, let keys)? = try refusal({ _, _ in }, configuration: wider) {
            #expect(keys == ["backbone.embeddingDimension"])
        } else { Issue.record("configuration") }
        let head = "head.centers"
        if case .shapeMismatch(_, let name, _, _)? = try refusal({ t, _ in t[head] = Tensor(shape: [3, 8]) }) {
            #expect(name == head)
        } else { Issue.record("shape") }
        // A momentum buffer of the wrong shape, or a tensor of another dtype: typed errors naming them.
        if case let .shapeMismatch(_, name, expected, found)? = try refusal({ t, _ in t["momentum." + head] = Tensor(shape: [3, 8]) }) {
            #expect(name == "momentum." + head && expected == tensors[head]?.shape && found == [3, 8])
        } else { Issue.record("momentum shape") }
        let firstName = tensors.keys.min() ?? ""
        if case let .malformed(_, reason)? = try refusal({ _, _ in }, bytes: { data in
            var data = data
            if let range = data.range(of: Data(#""dtype":"F32""#.utf8)) { data.replaceSubrange(range, with: Data(#""dtype":"I32""#.utf8)) }
            return data
        }) {
            #expect(reason.contains("'\(firstName)'") && reason.contains("I32") && reason.contains("F32"), "\(reason)")
        } else { Issue.record("dtype") }
        if case .missingTensor(_, let name)? = try refusal({ t, _ in t["momentum." + head] = nil }) {
            #expect(name == "momentum." + head)
        } else { Issue.record("momentum") }
        if case .malformed? = try refusal({ _, _ in }, bytes: { $0.prefix($0.count - 100) }) {} else { Issue.record("truncated") }
        // A final model.safetensors is not a training state.
        try Experiment.save(trainer.model, metrics: nil, identities: train.identities, to: directory.path)
        #expect(throws: TrainingError.checkpoint(.notATrainingState(path: directory.path + "/model.safetensors"))) {
            try Trainer(configuration: Self.configuration(), trainingSet: train).restore(from: directory.path + "/model.safetensors")
        }
    }
}
