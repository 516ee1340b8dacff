import Foundation
import Testing
import _TestSupport
@testable import Training
import ArcFace

/// The take-off watchdog (issue 10): fires on a run that cannot learn, stays quiet on one that
/// learns, reaches metrics.json, and `onNoProgress: stop` is a typed error after the checkpoint.
@Suite(.serialized) struct TakeOffTests {
    /// 8 identities × 10 images, batch 10: 8 steps per epoch; judged from epoch 2 on.
    static func configuration(learningRate: Double) -> TrainingConfiguration {
        var c = tinyConfiguration()
        c.epochs = 3
        c.warmupEpochs = 0
        c.learningRate = learningRate
        return c
    }

    @Test("a run that cannot learn (lr 1e-9) is flagged from epoch 2 with the evidence and a hint")
    func firesWithoutLearning() throws {
        let train = try attSlice(identityCount: 8)
        let trainer = try Trainer(configuration: Self.configuration(learningRate: 1e-9), trainingSet: train)
        var start: TakeOffStart?
        trainer.onStart = { start = $0 }
        try trainer.run()
        let watchdog = trainer.watchdog
        #expect(watchdog.firstCheckedEpoch == 2 && watchdog.chanceLevel == 1.0 / 8 && watchdog.accuracyThreshold == 0.25)
        // NormFace-free ArcFace s = 16, m = 0.5, all cosines 0: ln(1 + 7·exp(16·sin 0.5)).
        #expect(abs(watchdog.noLearningLoss - log(1 + 7 * exp(16 * sin(0.5)))) < 1e-9)
        #expect(trainer.history[0].noProgress == nil, "epoch 1 is inside the grace period")
        let flagged = try #require(trainer.history[2].noProgress, "\(trainer.history.map { ($0.loss, $0.accuracy) })")
        #expect(flagged.contains("no-learning level") && flagged.contains("--loss cosface"))
        let verdict = watchdog.verdict(history: trainer.history, heldOut: nil)
        #expect(!verdict.converged && verdict.evidence?.epoch == 3)
        let initial = try #require(start)
        #expect(initial.classCount == 8 && abs(initial.initialLoss - trainer.history[0].loss) < 0.5)
        #expect(initial.line.contains("ln C = 2.0794"))
    }

    @Test("a run that learns (3 identities, lr 0.05) is not flagged and converges")
    func quietWhenLearning() throws {
        let train = try attSlice(identityCount: 3)
        var configuration = tinyConfiguration()
        configuration.epochs = 4
        let trainer = try Trainer(configuration: configuration, trainingSet: train)
        try trainer.run()
        #expect(trainer.history.allSatisfy { $0.noProgress == nil }, "\(trainer.history.map { ($0.loss, $0.accuracy, $0.noProgress) })")
        let spread = CosineSpread(mean: 0.2, standardDeviation: 0.25, pairs: 100)
        #expect(trainer.watchdog.verdict(history: trainer.history, heldOut: spread) == TakeOffVerdict(converged: true, evidence: nil))
        // The same history with collapsed held-out cosines does not converge.
        let collapsed = trainer.watchdog.verdict(history: trainer.history,
                                                 heldOut: CosineSpread(cosines: [0.999, 0.998, 0.999, 1.0]))
        #expect(!collapsed.converged && collapsed.evidence?.collapsedSet == "held-out")
    }

    @Test("onNoProgress stop: TrainingError.noProgress after the flagged epoch's checkpoint")
    func stopPolicy() throws {
        let train = try attSlice(identityCount: 8)
        var configuration = Self.configuration(learningRate: 1e-9)
        configuration.onNoProgress = .stop
        let directory = TemporaryDirectory()
        let trainer = try Trainer(configuration: configuration, trainingSet: train)
        trainer.checkpointDirectory = directory.path
        do {
            try trainer.run()
            Issue.record("a run that cannot learn was not stopped")
        } catch {
            guard case let .noProgress(evidence) = error else { Issue.record("\(error)"); return }
            #expect(evidence.epoch == 2 && evidence.trainingAccuracy == trainer.history[1].accuracy)
            #expect(error.description.contains("--on-no-progress stop"))
        }
        #expect(trainer.history.count == 2)
        #expect(TrainingCheckpoint.latest(in: directory.path) == TrainingCheckpoint.path(in: directory.path, step: 16))
    }

    @Test("metrics.json carries converged and, when false, the evidence; older files decode")
    func metricsJSON() throws {
        let evidence = NoProgressEvidence(epoch: 10, trainingAccuracy: 0.037, chanceLevel: 1.0 / 30, accuracyThreshold: 2.0 / 30,
                                          loss: 7.13, noLearningLoss: 11.04, signs: ["near chance"], hint: "--loss cosface")
        for verdict in [TakeOffVerdict(converged: false, evidence: evidence), TakeOffVerdict(converged: true, evidence: nil)] {
            var metrics = RunMetrics(verification: VerificationReport(
                balancedAccuracy: 0.5, balancedAccuracyStdErr: 0, accuracyAllPairs: nil, auc: 0.5, eer: 0.5, tarAtFar1e2: 0,
                tarAtFar1e3: 0, rank1: 0, genuinePairCount: 1, impostorPairCount: 1, balancedPairCount: 2), trainImagesPerSecond: 1,
                                     timing: TimingBreakdown(), finalTrainingLoss: 7, trainingSeconds: 1)
            metrics.takeOff = verdict
            let data = try JSONEncoder().encode(metrics)
            let object = try #require(try JSONSerialization.jsonObject(with: data) as? [String: Any])
            #expect(object["converged"] as? Bool == verdict.converged)
            #expect((object["noProgress"] != nil) == !verdict.converged)
            #expect(try JSONDecoder().decode(RunMetrics.self, from: data).takeOff == verdict)
            var old = object
            old["converged"] = nil
            old["noProgress"] = nil
            #expect(try JSONDecoder().decode(RunMetrics.self, from: JSONSerialization.data(withJSONObject: old)).takeOff == nil)
        }
    }

    @Test("--scale auto is √2·ln(C − 1); the scale warning fires for s = 64 but not s = 16 with 30 classes")
    func automaticScale() {
        #expect(abs(TakeOffWatchdog.automaticScale(classCount: 40) - 2.0.squareRoot() * log(39.0)) < 1e-12)
        #expect(abs(TakeOffWatchdog.automaticScale(classCount: 40) - 5.18) < 0.005)
        #expect(abs(TakeOffWatchdog.automaticScale(classCount: 30) - 4.76) < 0.005)
        #expect(TakeOffWatchdog.automaticScale(classCount: 2) == 1)
        #expect(TakeOffWatchdog.scaleWarning(scale: 16, classCount: 30, loss: .arcface) == nil)
        #expect(TakeOffWatchdog.scaleWarning(scale: 64, classCount: 30, loss: .arcface) != nil)
        #expect(TakeOffWatchdog.scaleWarning(scale: 64, classCount: 85_000, loss: .arcface) == nil)
        #expect(TakeOffWatchdog.scaleWarning(scale: 64, classCount: 30, loss: .softmax) == nil)
    }
}
