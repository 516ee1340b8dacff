import Foundation
import Testing
import _TestSupport
@testable import Training
import ArcFace

/// Verification with and without flip-summing from one embedding loop: each equals evaluating
/// that setting alone; both reach metrics.json, report.html and `arcface evaluate`.
@Suite struct FlipComparisonTests {
    static func setUp() throws -> (FaceRecognitionModel, FaceDataset) {
        let model = FaceRecognitionModel(configuration: tinyConfiguration(), classCount: 3)
        return (model, try attSlice(identityCount: 4))
    }

    @Test("one loop gives both embeddings, bit for bit those of flipSum true and false; they differ")
    func embeddingsBothWays() throws {
        let (model, data) = try Self.setUp()
        let both = embeddingsWithAndWithoutFlip(of: data, backbone: model.backbone, batchSize: 7)
        #expect(both.original == embeddings(of: data, backbone: model.backbone, flipSum: false, batchSize: 7))
        #expect(both.flipSummed == embeddings(of: data, backbone: model.backbone, flipSum: true, batchSize: 7))
        #expect(both.original.shape == [data.count, 16])
        #expect(both.original != both.flipSummed)
        // Flip-summed is not a multiple of the original (the mirror image embeds differently).
        let doubled = both.original.storage.map { 2 * $0 }
        #expect(doubled != both.flipSummed.storage)
    }

    @Test("both reports equal evaluating each setting separately, whichever is configured", arguments: [true, false])
    func reportsBothWays(flipConfigured: Bool) throws {
        let (model, data) = try Self.setUp()
        var configuration = model.configuration
        configuration.flipEmbeddings = flipConfigured
        let (evaluation, flips) = Experiment.evaluateInDetailWithAndWithoutFlip(model, on: data, configuration: configuration)
        #expect(evaluation == Experiment.evaluateInDetail(model, on: data, configuration: configuration))
        var withFlip = configuration, withoutFlip = configuration
        withFlip.flipEmbeddings = true
        withoutFlip.flipEmbeddings = false
        #expect(flips.withFlip == Experiment.evaluate(model, on: data, configuration: withFlip))
        #expect(flips.withoutFlip == Experiment.evaluate(model, on: data, configuration: withoutFlip))
        #expect(flips.withFlip != flips.withoutFlip)
        #expect(evaluation.report == (flipConfigured ? flips.withFlip : flips.withoutFlip))
    }

    @Test("metrics.json: withFlip and withoutFlip objects beside the configured top-level keys; earlier files decode")
    func metricsJSON() throws {
        let a = evaluateVerification(embeddings: Tensor(shape: [4, 2], storage: [1, 0, 1, 0.1, 0, 1, 0.1, 1]),
                                     labels: [0, 0, 1, 1], folds: 2, seed: 1)
        let b = evaluateVerification(embeddings: Tensor(shape: [4, 2], storage: [1, 0, 0.2, 1, 0, 1, 1, 0.3]),
                                     labels: [0, 0, 1, 1], folds: 2, seed: 1)
        #expect(a != b)
        var metrics = RunMetrics(verification: a, trainImagesPerSecond: 1, timing: TimingBreakdown(),
                                 finalTrainingLoss: 1, trainingSeconds: 1)
        let earlier = try JSONEncoder().encode(metrics)
        #expect(try JSONDecoder().decode(RunMetrics.self, from: earlier).flipComparison == nil)
        metrics.flipComparison = FlipComparison(withFlip: a, withoutFlip: b)
        let data = try JSONEncoder().encode(metrics)
        let object = try #require(JSONSerialization.jsonObject(with: data) as? [String: Any])
        let without = try #require(object["withoutFlip"] as? [String: Any])
        #expect(without["auc"] as? Double == b.auc && (object["withFlip"] as? [String: Any])?["auc"] as? Double == a.auc)
        #expect(object["auc"] as? Double == a.auc, "the top-level keys keep meaning the configured setting")
        #expect(try JSONDecoder().decode(RunMetrics.self, from: data) == metrics)
    }

    @Test("report.html shows both columns")
    func report() throws {
        let (model, data) = try Self.setUp()
        let (evaluation, flips) = Experiment.evaluateInDetailWithAndWithoutFlip(model, on: data, configuration: model.configuration)
        var metrics = RunMetrics(verification: evaluation.report, trainImagesPerSecond: 1, timing: TimingBreakdown(),
                                 finalTrainingLoss: 1, trainingSeconds: 1)
        metrics.flipComparison = flips
        let html = TrainingReport(title: "t", configuration: model.configuration, history: [], evaluations: [],
                                  finalEvaluation: evaluation, metrics: metrics).html
        #expect(html.contains("With and without flip-summing"))
        #expect(html.contains(String(format: "%.4f", flips.withoutFlip.auc)) && html.contains(String(format: "%.4f", flips.withFlip.auc)))
        let plain = TrainingReport(title: "t", configuration: model.configuration, history: [], evaluations: [],
                                   finalEvaluation: evaluation).html
        #expect(!plain.contains("With and without flip-summing"))
    }
}
