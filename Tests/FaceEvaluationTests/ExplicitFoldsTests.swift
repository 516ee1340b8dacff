import Testing
import _TestSupport
import TensorCore
@testable import FaceEvaluation

@Test func explicitFoldsReproduceTheHandExample() {
    // threeContiguousFoldsByHand's pairs, shuffled, with their folds given explicitly:
    // the same fold accuracies 2/3, 1/2, 1 and thresholds 0.7, 0.525, 0.7.
    let scores: [Float] = [0.5, 0.9, 0.6, 0.4, 0.3, 0.55, 0.8]
    let isSame = [false, true, false, false, false, true, true]
    let folds = [2, 0, 1, 0, 2, 0, 1]
    let result = kFoldVerificationAccuracy(scores: scores, isSame: isSame, foldOfPair: folds)
    #expect(compare(result.foldAccuracies, [2.0 / 3, 0.5, 1], atol: 1e-15, rtol: 0).passed)
    #expect(abs(result.standardError - 7.0.squareRoot() / 18) < 1e-15)
    #expect(compare(result.thresholds, [0.7, 0.525, 0.7], atol: 1e-6, rtol: 0).passed)
}

@Test func explicitFoldsInFileOrderEqualContiguous() {
    // LFW's pairs.txt stores its folds one after another, so explicit folds in file order equal
    // the contiguous assignment.
    var generator = SeededGenerator(seed: 11)
    let scores = (0..<60).map { _ in Float(generator.next() >> 40) / Float(1 << 24) }
    let isSame = (0..<60).map { ($0 / 3) % 2 == 0 }
    let explicit = kFoldVerificationAccuracy(scores: scores, isSame: isSame, foldOfPair: (0..<60).map { $0 / 6 })
    let contiguous = kFoldVerificationAccuracy(scores: scores, isSame: isSame, folds: 10, assignment: .contiguous)
    #expect(explicit == contiguous)
}
