// Verification on a fixed list of pairs (LFW's pairs.txt, InsightFace's .bin sets): the pairs and
// their folds come with the protocol instead of being drawn from identity labels.
import TensorCore

/// The metrics of a fixed-pairs verification protocol.
///
/// All rates are fractions in [0, 1]; similarities are cosines of L2-normalized embeddings.
public struct PairProtocolReport: Codable, Sendable, Equatable {
    /// Mean k-fold accuracy over the protocol's folds (the number LFW and InsightFace report).
    public var accuracy: Double
    /// The standard error of `accuracy` over the folds.
    public var accuracyStdErr: Double
    /// The held-out accuracy of each fold, `[k]`.
    public var foldAccuracies: [Double]
    /// The cosine threshold applied to each fold (chosen on the other folds), `[k]`.
    public var thresholds: [Float]
    /// The area under the ROC curve over all pairs.
    public var auc: Double
    /// The equal error rate over all pairs.
    public var eer: Double
    /// The true accept rate at a false accept rate ≤ 10⁻².
    public var tarAtFar1e2: Double
    /// The true accept rate at a false accept rate ≤ 10⁻³.
    public var tarAtFar1e3: Double
    public var genuinePairCount: Int
    public var impostorPairCount: Int

    public init(accuracy: Double, accuracyStdErr: Double, foldAccuracies: [Double], thresholds: [Float], auc: Double,
                eer: Double, tarAtFar1e2: Double, tarAtFar1e3: Double, genuinePairCount: Int, impostorPairCount: Int) {
        self.accuracy = accuracy
        self.accuracyStdErr = accuracyStdErr
        self.foldAccuracies = foldAccuracies
        self.thresholds = thresholds
        self.auc = auc
        self.eer = eer
        self.tarAtFar1e2 = tarAtFar1e2
        self.tarAtFar1e3 = tarAtFar1e3
        self.genuinePairCount = genuinePairCount
        self.impostorPairCount = impostorPairCount
    }

    enum CodingKeys: String, CodingKey {
        case accuracy, accuracyStdErr, foldAccuracies, thresholds, auc, eer
        case tarAtFar1e2 = "tarAtFar1e-2"
        case tarAtFar1e3 = "tarAtFar1e-3"
        case genuinePairCount, impostorPairCount
    }
}

/// Evaluates embeddings on a fixed pair list with fixed folds.
///
/// - Parameters:
///   - embeddings: `[N, D]` (normalized inside).
///   - pairs: the protocol's pairs (indices into the rows), `[P]`.
///   - foldOfPair: each pair's fold, `[P]`, in `0..<k` (`contiguousFolds(pairCount:folds:)` gives
///     InsightFace's `KFold(n_splits=10, shuffle=False)` for `.bin` sets).
/// - Precondition: both genuine and impostor pairs occur; see
///   `kFoldVerificationAccuracy(scores:isSame:foldOfPair:)` for the folds.
public func evaluatePairs(embeddings: Tensor, pairs: [VerificationPair], foldOfPair: [Int]) -> PairProtocolReport {
    let scores = cosineSimilarities(embeddings: embeddings, pairs: pairs)
    let isSame = pairs.map(\.isSame)
    let genuine = isSame.count { $0 }
    precondition(genuine > 0 && genuine < pairs.count,
                 "evaluatePairs: needs genuine and impostor pairs, got \(genuine) of \(pairs.count) genuine")
    let accuracy = kFoldVerificationAccuracy(scores: scores, isSame: isSame, foldOfPair: foldOfPair)
    let roc = rocCurve(scores: scores, isSame: isSame)
    return PairProtocolReport(
        accuracy: accuracy.mean, accuracyStdErr: accuracy.standardError, foldAccuracies: accuracy.foldAccuracies,
        thresholds: accuracy.thresholds, auc: areaUnderCurve(roc), eer: equalErrorRate(roc),
        tarAtFar1e2: trueAcceptRate(atFalseAcceptRate: 1e-2, in: roc),
        tarAtFar1e3: trueAcceptRate(atFalseAcceptRate: 1e-3, in: roc),
        genuinePairCount: genuine, impostorPairCount: pairs.count - genuine)
}

/// The fold of each of `pairCount` pairs split in order into `folds` folds: fold `f` takes the
/// next `⌊P/k⌋` pairs, plus one for the first `P mod k` folds (`FoldAssignment.contiguous`).
///
/// - Precondition: `2 ≤ folds ≤ pairCount`.
public func contiguousFolds(pairCount: Int, folds: Int) -> [Int] {
    precondition(folds >= 2 && folds <= pairCount, "contiguousFolds: folds must be in 2...\(pairCount), got \(folds)")
    var result: [Int] = []
    result.reserveCapacity(pairCount)
    for fold in 0..<folds {
        let size = pairCount / folds + (fold < pairCount % folds ? 1 : 0)
        result += [Int](repeating: fold, count: size)
    }
    return result
}
