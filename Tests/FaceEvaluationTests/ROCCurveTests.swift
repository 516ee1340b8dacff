import Testing
import _TestSupport
@testable import FaceEvaluation

private func roc(genuine: [Float], impostor: [Float]) -> ROCCurve {
    rocCurve(scores: genuine + impostor,
             isSame: Array(repeating: true, count: genuine.count) + Array(repeating: false, count: impostor.count))
}

@Test func rocPointsWithOneThresholdPerDistinctScore() {
    // Genuine {0.8, 0.4}, impostor {0.6, 0.2}; thresholds from +∞ down:
    // +∞ (0,0); 0.8 (0,½); 0.6 (½,½); 0.4 (½,1); 0.2 (1,1).
    let curve = roc(genuine: [0.8, 0.4], impostor: [0.6, 0.2])
    #expect(curve.falseAcceptRates == [0, 0, 0.5, 0.5, 1])
    #expect(curve.trueAcceptRates == [0, 0.5, 0.5, 1, 1])
    #expect(curve.thresholds == [.infinity, 0.8, 0.6, 0.4, 0.2])
    // AUC: 3 of 4 genuine–impostor combinations are ordered correctly (0.4 < 0.6 is not).
    #expect(areaUnderCurve(curve) == 0.75)
}

@Test func aucOfSeparatedReversedAndTiedScores() {
    #expect(areaUnderCurve(roc(genuine: [0.9, 0.8], impostor: [0.1, 0.2])) == 1)
    #expect(areaUnderCurve(roc(genuine: [0.1, 0.2], impostor: [0.9, 0.8])) == 0)
    // Every score tied: one diagonal step from (0,0) to (1,1).
    let tied = roc(genuine: [0.5, 0.5, 0.5], impostor: [0.5, 0.5])
    #expect(tied.falseAcceptRates == [0, 1] && tied.trueAcceptRates == [0, 1])
    #expect(areaUnderCurve(tied) == 0.5)
    // One genuine–impostor tie out of 2·2: AUC = (3 + ½)/4 = 0.875 (genuine {0.9, 0.5},
    // impostor {0.5, 0.1}).
    #expect(areaUnderCurve(roc(genuine: [0.9, 0.5], impostor: [0.5, 0.1])) == 0.875)
}

@Test func aucEqualsBruteForceMannWhitneyStatistic() {
    // Random scores rounded to a 0.25 grid (many ties): the trapezoid AUC must equal
    // P(g > i) + ½P(g = i) over all genuine × impostor combinations, counted directly.
    let genuine = randomArray(37, seed: 11).map { ($0 * 4 + 2).rounded() / 4 }
    let impostor = randomArray(53, seed: 12).map { ($0 * 4).rounded() / 4 }
    var wins = 0.0
    for g in genuine {
        for i in impostor { wins += g > i ? 1 : (g == i ? 0.5 : 0) }
    }
    let expected = wins / Double(genuine.count * impostor.count)
    let auc = areaUnderCurve(roc(genuine: genuine, impostor: impostor))
    #expect(abs(auc - expected) < 1e-12, "AUC \(auc) vs Mann–Whitney \(expected)")
    #expect(expected > 0.6 && expected < 1)   // a non-trivial case
}

@Test func nanScoresRankBelowEverything() {
    // Genuine {NaN, 0.9}, impostor {0.5}: NaN counts as −∞, so AUC = ½ (0.9 > 0.5, NaN < 0.5),
    // and the NaN pair is accepted only at the final point.
    let curve = roc(genuine: [.nan, 0.9], impostor: [0.5])
    #expect(areaUnderCurve(curve) == 0.5)
    #expect(curve.trueAcceptRates == [0, 0.5, 0.5, 1])
    #expect(curve.thresholds.last == -.infinity)
}

@Test func trueAcceptRateOnAHandBuiltCurveWithRepeatedFARs() {
    let curve = ROCCurve(falseAcceptRates: [0, 0, 0.01, 0.01, 0.01, 0.5, 1],
                         trueAcceptRates: [0, 0.3, 0.4, 0.6, 0.7, 0.9, 1],
                         thresholds: [.infinity, 0.9, 0.8, 0.7, 0.6, 0.3, 0.1])
    #expect(trueAcceptRate(atFalseAcceptRate: 0, in: curve) == 0.3)
    #expect(trueAcceptRate(atFalseAcceptRate: 1e-3, in: curve) == 0.3)
    #expect(trueAcceptRate(atFalseAcceptRate: 1e-2, in: curve) == 0.7)   // the largest of three at FAR 0.01
    #expect(trueAcceptRate(atFalseAcceptRate: 0.6, in: curve) == 0.9)
    #expect(trueAcceptRate(atFalseAcceptRate: 1, in: curve) == 1)
}

@Test func trueAcceptRateIsOneForPerfectSeparation() {
    let curve = roc(genuine: [0.9, 0.8, 0.7], impostor: [0.3, 0.2, 0.1, 0.0])
    #expect(trueAcceptRate(atFalseAcceptRate: 0, in: curve) == 1)
    #expect(trueAcceptRate(atFalseAcceptRate: 1e-3, in: curve) == 1)
    // FAR counts impostors: with 4 impostors, FAR ≤ 0.25 allows one of them.
    let mixed = roc(genuine: [0.9, 0.5, 0.4], impostor: [0.6, 0.2, 0.1, 0.0])
    #expect(trueAcceptRate(atFalseAcceptRate: 0.2, in: mixed) == 1.0 / 3)
    #expect(trueAcceptRate(atFalseAcceptRate: 0.25, in: mixed) == 1)
}

@Test func equalErrorRateAtAPointAndInterpolated() {
    // Symmetric: genuine {0.8, 0.4}, impostor {0.6, 0.2}; at threshold 0.6 FAR = FRR = ½.
    #expect(equalErrorRate(roc(genuine: [0.8, 0.4], impostor: [0.6, 0.2])) == 0.5)
    // Perfect separation: EER 0.
    #expect(equalErrorRate(roc(genuine: [0.9, 0.8], impostor: [0.2, 0.1])) == 0)
    // Genuine {0.9, 0.8, 0.3}, impostor {0.5, 0.1}: points (0,⅔) [FAR−FRR = −⅓] and (½,⅔)
    // [+⅙]; the sign change is ⅔ of the way, so EER = ⅔·½ = ⅓ (and FRR = ⅓ there too).
    let eer = equalErrorRate(roc(genuine: [0.9, 0.8, 0.3], impostor: [0.5, 0.1]))
    #expect(abs(eer - 1.0 / 3) < 1e-15, "\(eer)")
}
