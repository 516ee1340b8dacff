import Foundation
import Testing
import _TestSupport
@testable import Training
import ArcFace

/// The opt-in validation split (`TrainingConfiguration.validationIdentities`): training identities
/// held out of the fit, verified at each epoch end, choosing `best.safetensors`.
@Suite(.serialized) struct ValidationSplitTests {
    /// 3 epochs of 3 fitted identities × 10 images (batch 10: 3 steps per epoch), `validation`
    /// more identities held out of the fit.
    static func configuration(validation: Int) -> TrainingConfiguration {
        var c = tinyConfiguration()
        c.epochs = 3
        c.validationIdentities = validation
        return c
    }

    /// The error `Trainer.init` throws, or nil.
    static func trainerError(_ configuration: TrainingConfiguration, _ set: FaceDataset) -> TrainingError? {
        do { _ = try Trainer(configuration: configuration, trainingSet: set); return nil } catch { return error }
    }

    @Test("default 0: no validation split, the model learns every training identity")
    func defaultIsOff() throws {
        #expect(TrainingConfiguration.base.validationIdentities == 0)
        let train = try attSlice(identityCount: 3)
        let trainer = try Trainer(configuration: Self.configuration(validation: 0), trainingSet: train)
        #expect(trainer.validationIdentities.isEmpty && trainer.fitIdentities == train.identities)
        #expect(trainer.model.classCount == 3 && trainer.validationAUC() == nil)
        let decoded = try TrainingConfiguration.decode(json: Data(#"{"validationIdentities": 4}"#.utf8))
        #expect(decoded.validationIdentities == 4)
    }

    @Test("a split leaving < 2 identities on either side, or no genuine validation pair, is a typed error")
    func refusals() throws {
        let train = try attSlice(identityCount: 5)
        #expect(throws: TrainingError.data(.validationSplitTooSmall(validationIdentities: 1, trainingIdentities: 5))) {
            try Trainer(configuration: Self.configuration(validation: 1), trainingSet: train)
        }
        #expect(throws: TrainingError.data(.validationSplitTooSmall(validationIdentities: 4, trainingIdentities: 5))) {
            try Trainer(configuration: Self.configuration(validation: 4), trainingSet: train)
        }
        let message = TrainingError.data(.validationSplitTooSmall(validationIdentities: 4, trainingIdentities: 5)).description
        #expect(message.contains("fewer than 2 to train on") && message.contains("2…3"))
        #expect(throws: TrainingError.self) { try Trainer(configuration: Self.configuration(validation: -1), trainingSet: train) }
        #expect(try Trainer(configuration: Self.configuration(validation: 3), trainingSet: train).fitIdentities.count == 2)
        // One image per identity: no genuine validation pair, so no AUC.
        let single = train.subset(identityIndices: 0..<5)
        let firsts = (0..<5).map { identity in single.labels.firstIndex(of: identity)! }
        let one = FaceDataset(identities: single.identities, images: firsts.map { single.images[$0] },
                              labels: Array(0..<5), paths: firsts.map { single.paths[$0] })
        guard case .data(.validationWithoutGenuinePairs(let identities))? = Self.trainerError(Self.configuration(validation: 2), one) else {
            Issue.record("a validation split without genuine pairs must be refused")
            return
        }
        #expect(identities.count == 2 && Set(identities).isSubset(of: one.identities))
    }

    @Test("the validation identities are seeded, deterministic and taken from the training side only")
    func deterministicAndDisjointFromTest() throws {
        var configuration = Self.configuration(validation: 4)
        let (train, heldOut, _) = try Experiment.loadSplit(directory: attFacesDirectory, configuration: configuration)
        let a = try Trainer(configuration: configuration, trainingSet: train)
        let b = try Trainer(configuration: configuration, trainingSet: train)
        #expect(a.validationIdentities.count == 4 && a.validationIdentities == b.validationIdentities)
        #expect(Set(a.validationIdentities).isSubset(of: train.identities))
        #expect(Set(a.validationIdentities).isDisjoint(with: heldOut.identities), "never the test identities")
        #expect(Set(a.fitIdentities).isDisjoint(with: a.validationIdentities))
        #expect(a.fitIdentities.count + 4 == train.identities.count && a.model.classCount == a.fitIdentities.count)
        configuration.seed = 2
        let (train2, _, _) = try Experiment.loadSplit(directory: attFacesDirectory, configuration: configuration)
        let c = try Trainer(configuration: configuration, trainingSet: train2)
        #expect(c.validationIdentities != a.validationIdentities, "another seed, another choice")
    }

    @Test("each epoch reports its validation AUC; best.safetensors is the epoch with the highest")
    func bestByValidationAUC() throws {
        BLAS.threadCount = 1
        let train = try attSlice(identityCount: 5)
        var configuration = Self.configuration(validation: 2)
        configuration.keepCheckpoints = 5
        let directory = TemporaryDirectory()
        let trainer = try Trainer(configuration: configuration, trainingSet: train)
        trainer.checkpointDirectory = directory.path
        #expect(try trainer.run() == .completed)
        let aucs = trainer.history.compactMap(\.validationAUC)
        #expect(aucs.count == 3 && aucs.allSatisfy { (0...1).contains($0) })
        #expect(trainer.validationAUC() == aucs.last, "the metric of the final weights, recomputed")
        let best = try TrainingCheckpoint.read(path: directory.path + "/" + TrainingCheckpoint.bestName)
        let bestEpoch = aucs.firstIndex(of: aucs.max()!)! + 1
        #expect(best.progress.history.count == bestEpoch && best.progress.epoch.batch == 0)
        #expect(best.progress.bestValidationAUC == aucs.max())
        #expect(best.metadata[TrainingCheckpoint.validationIdentitiesKey] == Experiment.identitiesJSON(trainer.validationIdentities))
        // The report shows the metric per epoch and the best.
        let html = TrainingReport(title: "t", configuration: configuration, history: trainer.history, evaluations: [],
                                      finalEvaluation: Experiment.evaluateInDetail(trainer.model, on: train, configuration: configuration),
                                      metrics: nil).html
        #expect(html.contains("data-chart=\"accuracy\"") && html.contains("validation-auc"))
        #expect(html.contains(String(format: "%.4f at epoch %d", aucs.max()!, bestEpoch)))
    }

    @Test("a checkpoint with other validation identities is refused")
    func mismatchRefused() throws {
        let train = try attSlice(identityCount: 5)
        let directory = TemporaryDirectory()
        let trainer = try Trainer(configuration: Self.configuration(validation: 2), trainingSet: train)
        trainer.checkpointDirectory = directory.path
        trainer.stopAfterStep = 1
        try trainer.run()
        var renamed = train
        renamed.identities = train.identities.map { $0 + "-other" }
        let other = try Trainer(configuration: Self.configuration(validation: 2), trainingSet: renamed)
        let refusal: TrainingError?
        do { try other.restore(from: TrainingCheckpoint.path(in: directory.path, step: 1)); refusal = nil } catch { refusal = error }
        guard case .checkpoint(.identityMismatch(_, let reason))? = refusal else {
            Issue.record("other validation identities must be refused, got \(String(describing: refusal))")
            return
        }
        #expect(reason.contains("validation identities"))
    }
}
