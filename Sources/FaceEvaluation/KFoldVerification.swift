// k-fold verification accuracy (the LFW protocol): the threshold is chosen on k − 1 folds and
// applied to the held-out fold.
import TensorCore

/// How pairs are split into folds.
public enum FoldAssignment: Sendable, Equatable, Codable {
    /// The pairs are shuffled with a generator seeded by `seed`, then split as `contiguous`.
    case shuffled(seed: UInt64)
    /// The pairs are split in the order given: fold `f` holds the next `⌊P/k⌋` pairs, plus
    /// one for the first `P mod k` folds (scikit-learn's `KFold(shuffle=False)`, as insightface's
    /// LFW evaluation uses on the official list, which is stored fold by fold).
    case contiguous
}

/// The result of k-fold verification accuracy.
public struct KFoldAccuracy: Sendable, Equatable, Codable {
    /// The mean of the held-out fold accuracies, in [0, 1].
    public var mean: Double
    /// The standard error of that mean: the sample standard deviation of the fold accuracies
    /// (divisor k − 1) divided by √k.
    public var standardError: Double
    /// The accuracy on each held-out fold, `[k]`.
    public var foldAccuracies: [Double]
    /// The cosine-similarity threshold used on each held-out fold (chosen on the other folds;
    /// a pair is accepted when its score is `> threshold`), rounded to `Float`, `[k]`.
    /// `−∞` means "accept everything", `+∞` "reject everything".
    public var thresholds: [Float]

    public init(mean: Double, standardError: Double, foldAccuracies: [Double], thresholds: [Float]) {
        self.mean = mean
        self.standardError = standardError
        self.foldAccuracies = foldAccuracies
        self.thresholds = thresholds
    }
}

/// k-fold verification accuracy with seeded shuffled folds; see
/// `kFoldVerificationAccuracy(scores:isSame:folds:assignment:)`.
public func kFoldVerificationAccuracy(scores: [Float], isSame: [Bool], folds: Int = 10, seed: UInt64) -> KFoldAccuracy {
    kFoldVerificationAccuracy(scores: scores, isSame: isSame, folds: folds, assignment: .shuffled(seed: seed))
}

/// k-fold verification accuracy, as in the LFW protocol (Huang et al. 2007, View 2) and
/// insightface's `calculate_roc`.
///
/// For each fold `f`: over the pairs of the *other* folds, every candidate threshold τ is scored
/// by accuracy, the fraction of pairs with `(score > τ) == isSame`. The candidates are `−∞`
/// (accept all), the midpoints (computed in `Double`) between consecutive distinct scores, and
/// `+∞` (reject all). The best τ (ties go to the **highest** τ, the strictest, as insightface's
/// `argmax` over ascending distance thresholds) is applied to fold `f`. A NaN score counts as
/// −∞, below every threshold: such a pair is always rejected.
/// - Parameters:
///   - scores: similarity of each pair, `[P]`.
///   - isSame: `true` for genuine pairs, `[P]`.
///   - folds: the number of folds k, `2 ≤ k ≤ P`.
///   - assignment: how pairs are assigned to folds.
/// - Returns: mean and standard error of the k held-out accuracies, and per-fold values.
public func kFoldVerificationAccuracy(scores: [Float], isSame: [Bool], folds: Int,
                                      assignment: FoldAssignment) -> KFoldAccuracy {
    precondition(scores.count == isSame.count, "kFoldVerificationAccuracy: \(scores.count) scores for \(isSame.count) labels")
    precondition(folds >= 2 && folds <= scores.count,
                 "kFoldVerificationAccuracy: folds must be in 2...\(scores.count) (the pair count): \(folds)")
    // +∞ is clamped so that every midpoint lies strictly between its neighbours.
    let ranked = scores.map { Double(min(rankingScore($0), .greatestFiniteMagnitude)) }
    var order = Array(scores.indices)
    if case .shuffled(let seed) = assignment { order = shuffledOrder(count: scores.count, seed: seed) }
    var foldOf = [Int](repeating: 0, count: scores.count)
    var start = 0
    for fold in 0..<folds {
        let size = scores.count / folds + (fold < scores.count % folds ? 1 : 0)
        for position in start..<(start + size) { foldOf[order[position]] = fold }
        start += size
    }
    return kFoldAccuracy(ranked: ranked, isSame: isSame, foldOf: foldOf, folds: folds)
}

/// The k-fold loop over a given fold assignment: `foldOf[p]` in `0..<folds`, each fold non-empty.
func kFoldAccuracy(ranked: [Double], isSame: [Bool], foldOf: [Int], folds: Int) -> KFoldAccuracy {
    // All pairs sorted by score once; each fold's training set is this order minus the fold.
    let byScore = ranked.indices.sorted { ranked[$0] < ranked[$1] }
    var accuracies: [Double] = []
    var thresholds: [Float] = []
    for fold in 0..<folds {
        let training = byScore.filter { foldOf[$0] != fold }
        let threshold = bestThreshold(sortedIndices: training, ranked: ranked, isSame: isSame)
        var correct = 0, total = 0
        for index in ranked.indices where foldOf[index] == fold {
            total += 1
            if (ranked[index] > threshold) == isSame[index] { correct += 1 }
        }
        accuracies.append(Double(correct) / Double(total))
        thresholds.append(Float(threshold))
    }
    let mean = accuracies.reduce(0, +) / Double(folds)
    let variance = accuracies.reduce(0) { $0 + ($1 - mean) * ($1 - mean) } / Double(folds - 1)
    return KFoldAccuracy(mean: mean, standardError: (variance / Double(folds)).squareRoot(),
                         foldAccuracies: accuracies, thresholds: thresholds)
}

/// The accuracy-maximizing threshold over pairs given by `sortedIndices` (ascending score):
/// a sweep over the distinct scores, ties to the highest threshold.
private func bestThreshold(sortedIndices: [Int], ranked: [Double], isSame: [Bool]) -> Double {
    let genuineTotal = sortedIndices.count { isSame[$0] }
    // Rejecting nothing: every genuine pair correct, every impostor wrong — unless the lowest
    // score is −∞, which no threshold accepts; then that candidate is not reachable.
    var best = -Double.infinity
    var bestCorrect = -1
    if let first = sortedIndices.first, ranked[first] > -.infinity {
        bestCorrect = genuineTotal
    }
    var rejectedGenuine = 0, rejectedImpostor = 0
    var k = 0
    while k < sortedIndices.count {
        let value = ranked[sortedIndices[k]]
        while k < sortedIndices.count && ranked[sortedIndices[k]] == value {
            if isSame[sortedIndices[k]] { rejectedGenuine += 1 } else { rejectedImpostor += 1 }
            k += 1
        }
        // Threshold just above `value`: everything up to and including it is rejected.
        let correct = rejectedImpostor + genuineTotal - rejectedGenuine
        if correct >= bestCorrect {
            bestCorrect = correct
            best = k < sortedIndices.count ? (value + ranked[sortedIndices[k]]) / 2 : .infinity
        }
    }
    return best
}

/// `0..<count` shuffled (Fisher–Yates from the end, `uniformIndex`) by a generator seeded with
/// `seed`: the order `FoldAssignment.shuffled(seed:)` splits into contiguous folds.
func shuffledOrder(count: Int, seed: UInt64) -> [Int] {
    var order = Array(0..<count)
    var generator = SeededGenerator(seed: seed)
    for k in stride(from: count - 1, to: 0, by: -1) {
        order.swapAt(k, uniformIndex(below: k + 1, using: &generator))
    }
    return order
}
