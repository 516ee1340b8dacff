// The whole open-set verification protocol on a held-out set of identities.
import TensorCore

/// The verification and identification metrics of one evaluation.
///
/// JSON keys: `balancedAccuracy`, `balancedAccuracyStdErr`, `accuracyAllPairs` (absent when
/// nil), `auc`, `eer`, `tarAtFar1e-2`, `tarAtFar1e-3`, `rank1`, `genuinePairCount`,
/// `impostorPairCount`, `balancedPairCount`. All rates are fractions in [0, 1].
public struct VerificationReport: Codable, Sendable, Equatable {
    /// k-fold accuracy on the balanced pair list (all genuine pairs + as many impostors).
    public var balancedAccuracy: Double
    /// The standard error of `balancedAccuracy` over the folds.
    public var balancedAccuracyStdErr: Double
    /// k-fold accuracy on all pairs (dominated by impostor pairs, so close to the impostor
    /// fraction even for a weak model); reported for reference.
    public var accuracyAllPairs: Double?
    /// The area under the ROC curve over all pairs.
    public var auc: Double
    /// The equal error rate over all pairs.
    public var eer: Double
    /// The true accept rate at a false accept rate ≤ 10⁻², over all pairs.
    public var tarAtFar1e2: Double
    /// The true accept rate at a false accept rate ≤ 10⁻³, over all pairs.
    public var tarAtFar1e3: Double
    /// Leave-one-out rank-1 identification accuracy.
    public var rank1: Double
    /// The number of genuine pairs among all pairs.
    public var genuinePairCount: Int
    /// The number of impostor pairs among all pairs.
    public var impostorPairCount: Int
    /// The number of pairs in the balanced list.
    public var balancedPairCount: Int

    public init(balancedAccuracy: Double, balancedAccuracyStdErr: Double, accuracyAllPairs: Double?,
                auc: Double, eer: Double, tarAtFar1e2: Double, tarAtFar1e3: Double, rank1: Double,
                genuinePairCount: Int, impostorPairCount: Int, balancedPairCount: Int) {
        self.balancedAccuracy = balancedAccuracy
        self.balancedAccuracyStdErr = balancedAccuracyStdErr
        self.accuracyAllPairs = accuracyAllPairs
        self.auc = auc
        self.eer = eer
        self.tarAtFar1e2 = tarAtFar1e2
        self.tarAtFar1e3 = tarAtFar1e3
        self.rank1 = rank1
        self.genuinePairCount = genuinePairCount
        self.impostorPairCount = impostorPairCount
        self.balancedPairCount = balancedPairCount
    }

    enum CodingKeys: String, CodingKey {
        case balancedAccuracy, balancedAccuracyStdErr, accuracyAllPairs, auc, eer
        case tarAtFar1e2 = "tarAtFar1e-2"
        case tarAtFar1e3 = "tarAtFar1e-3"
        case rank1, genuinePairCount, impostorPairCount, balancedPairCount
    }
}

/// Evaluates embeddings of a held-out set of identities with the open-set verification
/// protocol.
///
/// 1. Rows are L2-normalized; similarity is the cosine (`cosineSimilarities`).
/// 2. `balancedAccuracy`: k-fold accuracy (`kFoldVerificationAccuracy`, shuffled folds) on the
///    balanced list (`balancedPairs`), LFW-style.
/// 3. `auc`, `eer`, `tarAtFar1e2`, `tarAtFar1e3` and `accuracyAllPairs`: on **all** `N(N−1)/2`
///    pairs, whose scores come from a blocked `[N, N]` similarity GEMM.
/// 4. `rank1`: `rank1Accuracy`.
///
/// Seeds: a generator seeded with `seed` yields the pair-sampling seed, then the fold seed.
/// Non-finite embeddings give NaN scores, which every metric ranks as the lowest similarity
/// (no trap, and the report stays finite).
/// - Parameters:
///   - embeddings: `[N, D]` row-major (normalized inside).
///   - labels: identity of each sample, `[N]`.
///   - folds: k for the k-fold accuracies, `2 ≤ k ≤` the balanced pair count.
///   - seed: the seed of pair sampling and fold shuffling.
/// - Precondition: `labels.count == N`, at least one genuine and one impostor pair (two or
///   more identities, one of them with two or more images), and enough balanced pairs for `folds`.
public func evaluateVerification(embeddings: Tensor, labels: [Int], folds: Int = 10, seed: UInt64) -> VerificationReport {
    evaluateVerificationInDetail(embeddings: embeddings, labels: labels, folds: folds, seed: seed).report
}

/// `evaluateVerification` plus what a plot of it needs: the ROC over all pairs, the genuine and
/// impostor score histograms and the chosen threshold (see `VerificationEvaluation`).
public func evaluateVerificationInDetail(embeddings: Tensor, labels: [Int], folds: Int = 10,
                                         seed: UInt64) -> VerificationEvaluation {
    precondition(embeddings.rank == 2 && embeddings.shape[0] == labels.count,
                 "evaluateVerification: embeddings \(embeddings.shape) for \(labels.count) labels")
    let normalized = l2NormalizedRows(embeddings).normalized
    var seeds = SeededGenerator(seed: seed)
    let pairSeed = seeds.next(), foldSeed = seeds.next()

    // All pairs i < j, in `allPairs(labels:)` order.
    let n = labels.count
    var scores: [Float] = []
    var isSame: [Bool] = []
    scores.reserveCapacity(n * max(n - 1, 0) / 2)
    isSame.reserveCapacity(n * max(n - 1, 0) / 2)
    forEachSimilarityRow(normalized) { i, row in
        for j in (i + 1)..<n {
            scores.append(row[j])
            isSame.append(labels[i] == labels[j])
        }
    }
    let genuineCount = isSame.count { $0 }
    let impostorCount = isSame.count - genuineCount
    precondition(genuineCount > 0 && impostorCount > 0,
                 "evaluateVerification: needs genuine and impostor pairs, got \(genuineCount) genuine and \(impostorCount) impostor")

    let balanced = balancedPairs(labels: labels, seed: pairSeed)
    precondition(balanced.count >= folds,
                 "evaluateVerification: \(balanced.count) balanced pairs cannot fill \(folds) folds")
    let balancedAccuracy = kFoldVerificationAccuracy(
        scores: similaritiesOfNormalized(normalized, pairs: balanced), isSame: balanced.map(\.isSame),
        folds: folds, seed: foldSeed)
    let allAccuracy = kFoldVerificationAccuracy(scores: scores, isSame: isSame, folds: folds, seed: foldSeed)
    let roc = rocCurve(scores: scores, isSame: isSame)

    let report = VerificationReport(
        balancedAccuracy: balancedAccuracy.mean, balancedAccuracyStdErr: balancedAccuracy.standardError,
        accuracyAllPairs: allAccuracy.mean,
        auc: areaUnderCurve(roc), eer: equalErrorRate(roc),
        tarAtFar1e2: trueAcceptRate(atFalseAcceptRate: 1e-2, in: roc),
        tarAtFar1e3: trueAcceptRate(atFalseAcceptRate: 1e-3, in: roc),
        rank1: rank1Accuracy(normalized: normalized, labels: labels),
        genuinePairCount: genuineCount, impostorPairCount: impostorCount, balancedPairCount: balanced.count)
    return VerificationEvaluation(report: report, roc: roc, histogram: ScoreHistogram(scores: scores, isSame: isSame),
                                  threshold: meanFiniteThreshold(balancedAccuracy.thresholds))
}

/// The balanced pair list `evaluateVerificationInDetail(embeddings:labels:folds:seed:)` scores
/// for `balancedAccuracy` with these `labels` and `seed`, in the order whose contiguous folds
/// (`contiguousFolds(pairCount:folds:)`, InsightFace's unshuffled `KFold`) are exactly its `folds`
/// shuffled folds: evaluated as a fixed-pairs protocol with `folds` contiguous folds, the list
/// gives the balanced accuracy of the same embeddings (up to the fp32 rounding of the cosines).
///
/// - Returns: `G + min(G, I)` pairs (`balancedPairs`), reordered.
public func balancedPairsInFoldOrder(labels: [Int], seed: UInt64) -> [VerificationPair] {
    var seeds = SeededGenerator(seed: seed)
    let pairSeed = seeds.next(), foldSeed = seeds.next()
    let balanced = balancedPairs(labels: labels, seed: pairSeed)
    return shuffledOrder(count: balanced.count, seed: foldSeed).map { balanced[$0] }
}
