import Foundation
import Testing
import TensorCore
@testable import FaceEvaluation

/// 10 identities × 10 images in D = 8: each image is its identity's random centre plus
/// noise of standard deviation `noise`.
private func clusteredEmbeddings(noise: Float, seed: UInt64) -> (Tensor, [Int]) {
    var generator = SeededGenerator(seed: seed)
    let centres = Tensor.randomNormal([10, 8], standardDeviation: 1, using: &generator)
    var storage: [Float] = []
    var labels: [Int] = []
    for identity in 0..<10 {
        for _ in 0..<10 {
            for d in 0..<8 { storage.append(centres[identity, d] + noise * generator.nextNormal()) }
            labels.append(identity)
        }
    }
    return (Tensor(shape: [100, 8], storage: storage), labels)
}

@Test func wellSeparatedIdentitiesScorePerfectly() {
    let (embeddings, labels) = clusteredEmbeddings(noise: 0.01, seed: 1)
    let report = evaluateVerification(embeddings: embeddings, labels: labels, folds: 10, seed: 3)
    #expect(report.genuinePairCount == 450)
    #expect(report.impostorPairCount == 4500)
    #expect(report.balancedPairCount == 900)
    #expect(report.balancedAccuracy == 1 && report.balancedAccuracyStdErr == 0)
    #expect(report.accuracyAllPairs == 1)
    #expect(report.auc == 1 && report.eer == 0)
    #expect(report.tarAtFar1e2 == 1 && report.tarAtFar1e3 == 1)
    #expect(report.rank1 == 1)
}

@Test func noisyIdentitiesAgreeWithTheStandaloneMetrics() {
    let (embeddings, labels) = clusteredEmbeddings(noise: 1.2, seed: 5)
    let report = evaluateVerification(embeddings: embeddings, labels: labels, folds: 10, seed: 3)
    // Recompute each metric from the public building blocks.
    let pairs = allPairs(labels: labels)
    let scores = cosineSimilarities(embeddings: embeddings, pairs: pairs)
    let roc = rocCurve(scores: scores, isSame: pairs.map(\.isSame))
    #expect(abs(report.auc - areaUnderCurve(roc)) < 1e-4)
    #expect(abs(report.eer - equalErrorRate(roc)) < 1e-3)
    #expect(report.rank1 == rank1Accuracy(embeddings: embeddings, labels: labels))
    #expect(report.auc > 0.6 && report.auc < 1)
    #expect(report.balancedAccuracy > 0.55 && report.balancedAccuracy < 1)
    #expect(report.tarAtFar1e3 <= report.tarAtFar1e2)
    #expect(report == evaluateVerification(embeddings: embeddings, labels: labels, folds: 10, seed: 3))
}

@Test func nonFiniteEmbeddingsGiveAFiniteReport() throws {
    var (embeddings, labels) = clusteredEmbeddings(noise: 0.01, seed: 1)
    embeddings[3, 2] = .nan
    embeddings[40, 0] = .infinity
    let report = evaluateVerification(embeddings: embeddings, labels: labels, folds: 10, seed: 3)
    let values = [report.balancedAccuracy, report.balancedAccuracyStdErr, report.auc, report.eer,
                  report.tarAtFar1e2, report.tarAtFar1e3, report.rank1]
    #expect(values.allSatisfy { $0.isFinite })
    #expect(report.auc < 1)                    // the two broken images' genuine pairs rank last
    _ = try JSONEncoder().encode(report)       // encodable (JSON has no NaN)
}

@Test func reportJSONKeys() throws {
    let report = VerificationReport(balancedAccuracy: 0.9, balancedAccuracyStdErr: 0.01, accuracyAllPairs: 0.95,
                                    auc: 0.97, eer: 0.05, tarAtFar1e2: 0.8, tarAtFar1e3: 0.6, rank1: 0.9,
                                    genuinePairCount: 450, impostorPairCount: 4500, balancedPairCount: 900)
    let data = try JSONEncoder().encode(report)
    let object = try #require(try JSONSerialization.jsonObject(with: data) as? [String: Any])
    #expect(Set(object.keys) == ["balancedAccuracy", "balancedAccuracyStdErr", "accuracyAllPairs", "auc", "eer",
                                 "tarAtFar1e-2", "tarAtFar1e-3", "rank1", "genuinePairCount",
                                 "impostorPairCount", "balancedPairCount"])
    #expect(object["tarAtFar1e-3"] as? Double == 0.6)
    #expect(try JSONDecoder().decode(VerificationReport.self, from: data) == report)
    var withoutAllPairs = report
    withoutAllPairs.accuracyAllPairs = nil
    let reduced = try JSONEncoder().encode(withoutAllPairs)
    let reducedObject = try #require(try JSONSerialization.jsonObject(with: reduced) as? [String: Any])
    #expect(reducedObject["accuracyAllPairs"] == nil)
    #expect(try JSONDecoder().decode(VerificationReport.self, from: reduced) == withoutAllPairs)
}

@Test("a FAR target below 1/impostor pairs is noted as not measurable; 1/I itself and above are not")
func falseAcceptRateNotes() {
    #expect(falseAcceptRateNote(target: 1e-3, impostorPairCount: 300) == "below 1/300 impostor pairs: not measurable")
    #expect(falseAcceptRateNote(target: 1e-2, impostorPairCount: 300) == nil)
    #expect(falseAcceptRateNote(target: 1e-3, impostorPairCount: 1000) == nil, "FAR 1/I allows one false accept")
    #expect(falseAcceptRateNote(target: 1e-3, impostorPairCount: 999) == "below 1/999 impostor pairs: not measurable")
    #expect(falseAcceptRateNote(target: 1e-2, impostorPairCount: 0) == "no impostor pairs: not measurable")
    // On a report: 10 identities × 10 images give 4,500 impostor pairs, 6 × 5 give 375.
    let (embeddings, labels) = clusteredEmbeddings(noise: 1.2, seed: 5)
    let large = evaluateVerification(embeddings: embeddings, labels: labels, folds: 10, seed: 3)
    #expect(large.falseAcceptRateNote(target: 1e-3) == nil && large.falseAcceptRateNote(target: 1e-2) == nil)
    let subset = (0..<100).filter { labels[$0] < 6 && $0 % 10 < 5 }
    let small = evaluateVerification(
        embeddings: Tensor(shape: [subset.count, 8], storage: subset.flatMap { i in (0..<8).map { embeddings[i, $0] } }),
        labels: subset.map { labels[$0] }, folds: 5, seed: 3)
    #expect(small.impostorPairCount == 375)
    #expect(small.falseAcceptRateNote(target: 1e-3) == "below 1/375 impostor pairs: not measurable")
    #expect(small.falseAcceptRateNote(target: 1e-2) == nil)
}
