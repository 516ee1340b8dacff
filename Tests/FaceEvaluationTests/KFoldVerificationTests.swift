import Testing
import _TestSupport
@testable import FaceEvaluation

@Test func perfectlySeparableScoresGiveAccuracyOne() {
    let genuine: [Float] = (0..<10).map { 0.6 + 0.03 * Float($0) }
    let impostor: [Float] = (0..<10).map { 0.4 - 0.04 * Float($0) }
    let result = kFoldVerificationAccuracy(scores: genuine + impostor,
                                           isSame: Array(repeating: true, count: 10) + Array(repeating: false, count: 10),
                                           folds: 10, seed: 7)
    #expect(result.mean == 1)
    #expect(result.standardError == 0)
    #expect(result.foldAccuracies == Array(repeating: 1, count: 10))
    #expect(result.thresholds.allSatisfy { $0 > 0.4 && $0 < 0.6 })
}

@Test func threeContiguousFoldsByHand() {
    // 7 pairs → fold sizes 3, 2, 2 (contiguous):
    //   fold 0: (0.9 G) (0.4 I) (0.55 G)   fold 1: (0.6 I) (0.8 G)   fold 2: (0.3 I) (0.5 I)
    // Fold 0 held out: train {0.3 I, 0.5 I, 0.6 I, 0.8 G}; τ = 0.7 is perfect (4/4).
    //   Test: 0.9 G ✓, 0.4 I ✓, 0.55 G ✗ → 2/3.
    // Fold 1 held out: train {0.3 I, 0.4 I, 0.5 I, 0.55 G, 0.9 G}; τ = 0.525 is perfect.
    //   Test: 0.6 I ✗, 0.8 G ✓ → 1/2.
    // Fold 2 held out: train {0.4 I, 0.55 G, 0.6 I, 0.8 G, 0.9 G}; τ = 0.475 and τ = 0.7 both
    //   give 4/5; the tie goes to the higher, 0.7. Test: 0.3 I ✓, 0.5 I ✓ → 1.
    // Mean 13/18; deviations −1/18, −4/18, 5/18 → sample variance (1+16+25)/324/2 = 7/108;
    // standard error √(7/108/3) = √7/18.
    let scores: [Float] = [0.9, 0.4, 0.55, 0.6, 0.8, 0.3, 0.5]
    let isSame = [true, false, true, false, true, false, false]
    let result = kFoldVerificationAccuracy(scores: scores, isSame: isSame, folds: 3, assignment: .contiguous)
    #expect(compare(result.foldAccuracies, [2.0 / 3, 0.5, 1], atol: 1e-15, rtol: 0).passed)
    #expect(abs(result.mean - 13.0 / 18) < 1e-15)
    #expect(abs(result.standardError - 7.0.squareRoot() / 18) < 1e-15)
    let thresholds = compare(result.thresholds, [0.7, 0.525, 0.7], atol: 1e-6, rtol: 0, label: "thresholds")
    #expect(thresholds.passed, "\(thresholds)")
}

@Test func tiedThresholdsResolveToTheStrictest() {
    // Fold 0: (0.9 G) (0.7 G) (0.6 I) (0.2 I); fold 1: (0.8 G) (0.4 G) (0.5 I) (0.3 I).
    // Trained on fold 1, τ = 0.35 and τ = 0.65 both give 3/4; choosing 0.65 makes fold 0
    // perfect (choosing 0.35 would accept 0.6 I: 3/4). Trained on fold 0, τ = 0.65 (4/4);
    // fold 1 at 0.65 rejects 0.4 G: 3/4.
    let scores: [Float] = [0.9, 0.7, 0.6, 0.2, 0.8, 0.4, 0.5, 0.3]
    let isSame = [true, true, false, false, true, true, false, false]
    let result = kFoldVerificationAccuracy(scores: scores, isSame: isSame, folds: 2, assignment: .contiguous)
    #expect(result.foldAccuracies == [1, 0.75])
    #expect(compare(result.thresholds, [0.65, 0.65], atol: 1e-6, rtol: 0).passed)
    #expect(result.mean == 0.875)
    #expect(abs(result.standardError - 0.125) < 1e-15)   // √(2·0.125²/1)/√2
}

@Test func leaveOneOutDoesNotDependOnTheShuffle() {
    // With k = P every fold holds one pair, so shuffling only reorders the folds: the mean
    // must equal the contiguous one whatever the seed.
    let scores = randomArray(24, seed: 4)
    let isSame = (0..<24).map { scores[$0] + Float($0 % 3) * 0.5 > 0.6 }
    let contiguous = kFoldVerificationAccuracy(scores: scores, isSame: isSame, folds: 24, assignment: .contiguous)
    for seed: UInt64 in [1, 2, 3] {
        let shuffled = kFoldVerificationAccuracy(scores: scores, isSame: isSame, folds: 24, seed: seed)
        #expect(abs(shuffled.mean - contiguous.mean) < 1e-12)
        #expect(shuffled.foldAccuracies.sorted() == contiguous.foldAccuracies.sorted())
    }
    #expect(contiguous.mean > 0.5 && contiguous.mean < 1)
}

@Test func shuffledFoldsAreReproducible() {
    let scores = randomArray(50, seed: 8)
    let isSame = (0..<50).map { scores[$0] + Float($0 % 2) > 0.5 }
    let a = kFoldVerificationAccuracy(scores: scores, isSame: isSame, folds: 5, seed: 21)
    #expect(a == kFoldVerificationAccuracy(scores: scores, isSame: isSame, folds: 5, seed: 21))
    #expect(a.foldAccuracies.count == 5 && a.thresholds.count == 5)
}

@Test func nanScoresActAsTheLowestSimilarity() {
    // Replacing NaN by a value below every other score must not change any fold accuracy.
    let scores: [Float] = [.nan, 0.9, 0.7, 0.6, 0.2, 0.8, .nan, 0.5, 0.3, 0.1]
    let isSame = [true, true, true, false, false, true, false, false, false, true]
    let lowered = scores.map { $0.isNaN ? -5 : $0 }
    let withNaN = kFoldVerificationAccuracy(scores: scores, isSame: isSame, folds: 5, assignment: .contiguous)
    let reference = kFoldVerificationAccuracy(scores: lowered, isSame: isSame, folds: 5, assignment: .contiguous)
    #expect(withNaN.foldAccuracies == reference.foldAccuracies)
    #expect(withNaN.mean.isFinite && withNaN.standardError.isFinite)
}
