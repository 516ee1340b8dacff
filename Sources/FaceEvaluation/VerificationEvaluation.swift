// What a picture of a verification evaluation needs beyond its summary numbers.

/// The result of `evaluateVerificationInDetail`: the report and the data behind it.
public struct VerificationEvaluation: Sendable, Equatable {
    /// The summary metrics, identical to `evaluateVerification`'s.
    public var report: VerificationReport
    /// The ROC over all `N(N−1)/2` pairs (the curve `auc`, `eer` and TAR@FAR come from).
    public var roc: ROCCurve
    /// Cosine-similarity histograms of the genuine and the impostor pairs among all pairs.
    public var histogram: ScoreHistogram
    /// The cosine-similarity threshold chosen by the balanced k-fold accuracy: the mean of the
    /// folds' thresholds (each chosen on the other folds; accept a pair when its similarity is
    /// above it). NaN when no fold chose a finite threshold.
    public var threshold: Float

    public init(report: VerificationReport, roc: ROCCurve, histogram: ScoreHistogram, threshold: Float) {
        self.report = report
        self.roc = roc
        self.histogram = histogram
        self.threshold = threshold
    }
}

/// Counts of genuine and impostor similarity scores in equal-width bins over
/// `[lowerBound, upperBound]` (cosine similarity: [−1, 1] by default).
///
/// Bin `b` holds scores `s` with `lowerBound + b·w ≤ s < lowerBound + (b+1)·w`,
/// `w = (upperBound − lowerBound) / binCount`; the last bin also holds `upperBound`. Scores
/// outside the range are clamped into the first or last bin; NaN scores are not counted.
public struct ScoreHistogram: Sendable, Equatable, Codable {
    /// The left edge of the first bin.
    public var lowerBound: Float
    /// The right edge of the last bin.
    public var upperBound: Float
    /// Genuine-pair counts per bin, `[B]`.
    public var genuineCounts: [Int]
    /// Impostor-pair counts per bin, `[B]`.
    public var impostorCounts: [Int]

    /// The histogram of `scores`, split by `isSame`.
    /// - Parameters:
    ///   - scores: one similarity per pair, `[P]`.
    ///   - isSame: `true` for genuine pairs, `[P]`.
    ///   - binCount: `B ≥ 1`.
    /// - Precondition: equal counts, `lowerBound < upperBound`.
    public init(scores: [Float], isSame: [Bool], binCount: Int = 40, lowerBound: Float = -1, upperBound: Float = 1) {
        precondition(scores.count == isSame.count, "ScoreHistogram: \(scores.count) scores for \(isSame.count) labels")
        precondition(binCount >= 1 && lowerBound < upperBound,
                     "ScoreHistogram: \(binCount) bins over [\(lowerBound), \(upperBound)]")
        self.lowerBound = lowerBound
        self.upperBound = upperBound
        var genuine = [Int](repeating: 0, count: binCount), impostor = genuine
        let scale = Double(binCount) / Double(upperBound - lowerBound)
        for (score, same) in zip(scores, isSame) where !score.isNaN {
            let position = ((Double(score) - Double(lowerBound)) * scale).rounded(.down)
            let bin = Int(min(Double(binCount - 1), max(0, position)))  // ±∞ clamp too
            if same { genuine[bin] += 1 } else { impostor[bin] += 1 }
        }
        genuineCounts = genuine
        impostorCounts = impostor
    }

    /// The number of bins `B`.
    public var binCount: Int { genuineCounts.count }

    /// The left edge of bin `b`.
    public func lowerEdge(ofBin b: Int) -> Double {
        Double(lowerBound) + Double(b) * Double(upperBound - lowerBound) / Double(binCount)
    }
}

/// The mean of the finite thresholds, NaN if there is none.
func meanFiniteThreshold(_ thresholds: [Float]) -> Float {
    let finite = thresholds.filter(\.isFinite)
    guard !finite.isEmpty else { return .nan }
    return Float(finite.reduce(0.0) { $0 + Double($1) } / Double(finite.count))
}
