import Testing
import TensorCore
@testable import FaceEvaluation

/// `balancedPairsInFoldOrder`: the balanced list of `evaluateVerification`, ordered so that
/// contiguous folds are its shuffled folds (what `arcface make-pairs` writes into a `.bin`).
@Test func balancedPairsInFoldOrderHaveTheShuffledFolds() {
    let labels = (0..<40).map { $0 / 8 }  // 5 identities × 8 images
    var seeds = SeededGenerator(seed: 3)
    let pairSeed = seeds.next(), foldSeed = seeds.next()
    let balanced = balancedPairs(labels: labels, seed: pairSeed)
    let ordered = balancedPairsInFoldOrder(labels: labels, seed: 3)
    #expect(Set(ordered) == Set(balanced) && ordered.count == balanced.count)
    #expect(ordered != balanced)
    // A score per pair (any function of the pair): both fold assignments give the same accuracies.
    func score(_ p: VerificationPair) -> Float { Float((p.first * 7919 + p.second * 104_729) % 1000) / 1000 + (p.isSame ? 0.3 : 0) }
    let shuffled = kFoldVerificationAccuracy(scores: balanced.map(score), isSame: balanced.map(\.isSame), folds: 10,
                                             assignment: .shuffled(seed: foldSeed))
    let contiguous = kFoldVerificationAccuracy(scores: ordered.map(score), isSame: ordered.map(\.isSame), folds: 10,
                                               assignment: .contiguous)
    #expect(contiguous.foldAccuracies == shuffled.foldAccuracies)
    #expect(contiguous.thresholds == shuffled.thresholds)
}
