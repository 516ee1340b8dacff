// k-fold verification accuracy on folds fixed by the protocol (LFW's pairs.txt lists its 10 folds).
import TensorCore

/// k-fold verification accuracy on the folds a protocol prescribes, e.g. the 10 folds of LFW's
/// `pairs.txt` (View 2: each fold 300 matched + 300 mismatched pairs).
///
/// The thresholds and the per-fold evaluation are those of
/// `kFoldVerificationAccuracy(scores:isSame:folds:assignment:)`: for each fold the accuracy-best
/// threshold on the other folds (ties to the highest) is applied to the fold.
/// - Parameters:
///   - scores: similarity of each pair, `[P]`.
///   - isSame: `true` for genuine pairs, `[P]`.
///   - foldOfPair: the fold of each pair, `[P]`, values `0..<k`.
/// - Returns: mean and standard error of the k held-out accuracies, and per-fold values.
/// - Precondition: the counts match; `k ≥ 2`; every fold in `0..<k` holds at least one pair.
public func kFoldVerificationAccuracy(scores: [Float], isSame: [Bool], foldOfPair: [Int]) -> KFoldAccuracy {
    precondition(scores.count == isSame.count && scores.count == foldOfPair.count,
                 "kFoldVerificationAccuracy: \(scores.count) scores, \(isSame.count) labels, \(foldOfPair.count) folds")
    let folds = (foldOfPair.max() ?? -1) + 1
    precondition(folds >= 2 && foldOfPair.allSatisfy { $0 >= 0 },
                 "kFoldVerificationAccuracy: need folds 0..<k with k ≥ 2, got \(Set(foldOfPair).sorted())")
    var sizes = [Int](repeating: 0, count: folds)
    for fold in foldOfPair { sizes[fold] += 1 }
    precondition(!sizes.contains(0), "kFoldVerificationAccuracy: fold \(sizes.firstIndex(of: 0) ?? -1) has no pair")
    let ranked = scores.map { Double(min(rankingScore($0), .greatestFiniteMagnitude)) }
    return kFoldAccuracy(ranked: ranked, isSame: isSame, foldOf: foldOfPair, folds: folds)
}
