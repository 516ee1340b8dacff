// Receiver operating characteristic of a verification score: ROC points, AUC, TAR@FAR, EER.

/// A receiver operating characteristic: operating points ordered from the strictest threshold
/// (accept nothing) to the loosest (accept everything).
///
/// Point `k` accepts a pair when its score is `≥ thresholds[k]`; `falseAcceptRates[k]` is the
/// fraction of impostor pairs accepted (FAR, false match rate) and `trueAcceptRates[k]` the
/// fraction of genuine pairs accepted (TAR = 1 − FRR). The first point of a curve built by
/// `rocCurve(scores:isSame:)` is `(0, 0)` with threshold `+∞`, meaning "reject everything".
public struct ROCCurve: Sendable, Equatable, Codable {
    /// FAR at each point, in [0, 1], non-decreasing.
    public var falseAcceptRates: [Double]
    /// TAR at each point, in [0, 1], non-decreasing.
    public var trueAcceptRates: [Double]
    /// The similarity threshold of each point (accept when score ≥ threshold).
    public var thresholds: [Float]

    /// A curve from its points (e.g. a hand-built one).
    /// - Precondition: the three arrays have the same, non-zero count.
    public init(falseAcceptRates: [Double], trueAcceptRates: [Double], thresholds: [Float]) {
        precondition(!falseAcceptRates.isEmpty && falseAcceptRates.count == trueAcceptRates.count
                     && thresholds.count == falseAcceptRates.count,
                     "ROCCurve: \(falseAcceptRates.count) FARs, \(trueAcceptRates.count) TARs, \(thresholds.count) thresholds")
        self.falseAcceptRates = falseAcceptRates
        self.trueAcceptRates = trueAcceptRates
        self.thresholds = thresholds
    }
}

/// The ROC curve of similarity scores (higher = more similar) for genuine and impostor pairs.
///
/// One point per distinct score, from the highest down, plus the initial `(0, 0)` point: tied
/// scores form one threshold step, so a tie between a genuine and an impostor pair becomes a
/// diagonal segment (worth ½ in the AUC). A NaN score is treated as −∞, the lowest possible
/// similarity: it is accepted only at the final, accept-everything point.
/// - Parameters:
///   - scores: one similarity per pair, `[P]`.
///   - isSame: `true` for genuine pairs, `[P]`.
/// - Returns: a curve with `1 + (number of distinct scores)` points, ending at `(1, 1)`.
/// - Precondition: equal counts, and at least one genuine and one impostor pair.
public func rocCurve(scores: [Float], isSame: [Bool]) -> ROCCurve {
    precondition(scores.count == isSame.count, "rocCurve: \(scores.count) scores for \(isSame.count) labels")
    let positives = isSame.count { $0 }
    let negatives = isSame.count - positives
    precondition(positives > 0 && negatives > 0,
                 "rocCurve: needs genuine and impostor pairs, got \(positives) genuine and \(negatives) impostor")
    let ranked = scores.map(rankingScore)
    let order = ranked.indices.sorted { ranked[$0] > ranked[$1] }
    var falseAcceptRates = [0.0], trueAcceptRates = [0.0]
    var thresholds: [Float] = [.infinity]
    var truePositives = 0, falsePositives = 0
    var k = 0
    while k < order.count {
        let threshold = ranked[order[k]]
        while k < order.count && ranked[order[k]] == threshold {
            if isSame[order[k]] { truePositives += 1 } else { falsePositives += 1 }
            k += 1
        }
        falseAcceptRates.append(Double(falsePositives) / Double(negatives))
        trueAcceptRates.append(Double(truePositives) / Double(positives))
        thresholds.append(threshold)
    }
    return ROCCurve(falseAcceptRates: falseAcceptRates, trueAcceptRates: trueAcceptRates, thresholds: thresholds)
}

/// The area under the ROC curve by the trapezoid rule over its points.
///
/// For a curve from `rocCurve(scores:isSame:)` this equals the Mann–Whitney statistic
/// `P(s_genuine > s_impostor) + ½·P(s_genuine = s_impostor)` over all genuine × impostor
/// combinations (Hanley & McNeil, Radiology 1982). 1 for perfect separation, 0 for perfectly
/// reversed scores, ½ when every score is tied.
public func areaUnderCurve(_ roc: ROCCurve) -> Double {
    var area = 0.0
    for k in 1..<max(roc.falseAcceptRates.count, 1) {
        let width = roc.falseAcceptRates[k] - roc.falseAcceptRates[k - 1]
        area += width * (roc.trueAcceptRates[k] + roc.trueAcceptRates[k - 1]) / 2
    }
    return area
}

/// The highest TAR among the curve's points whose FAR is ≤ `far` (no interpolation: a point
/// the threshold can actually reach). Repeated FAR values are fine (the largest TAR wins);
/// with perfectly separated scores the result is 1 for every `far ≥ 0`. Returns 0 when no point
/// has FAR ≤ `far`.
/// - Parameters:
///   - far: the false accept rate bound, in [0, 1] (e.g. 1e-3).
///   - roc: the curve.
public func trueAcceptRate(atFalseAcceptRate far: Double, in roc: ROCCurve) -> Double {
    precondition(far >= 0 && far <= 1, "trueAcceptRate: FAR must be in [0, 1]: \(far)")
    var best = 0.0
    for (falseAccept, trueAccept) in zip(roc.falseAcceptRates, roc.trueAcceptRates) where falseAccept <= far {
        best = max(best, trueAccept)
    }
    return best
}

/// The equal error rate: the FAR at which FAR = FRR (= 1 − TAR), linearly interpolated between
/// the two consecutive points where `FAR − FRR` changes sign (Bolle et al., "Guide to
/// Biometrics", 2004, §5.3).
///
/// For a curve from `rocCurve(scores:isSame:)` (which starts at FRR = 1 and ends at FAR = 1) a
/// crossing always exists. For a hand-built curve that never crosses, returns `(FAR + FRR)/2`
/// at the point where `|FAR − FRR|` is smallest.
public func equalErrorRate(_ roc: ROCCurve) -> Double {
    let far = roc.falseAcceptRates
    let frr = roc.trueAcceptRates.map { 1 - $0 }
    for k in far.indices where far[k] - frr[k] >= 0 {
        if k == 0 { return (far[0] + frr[0]) / 2 }
        let before = far[k - 1] - frr[k - 1], after = far[k] - frr[k]
        let fraction = after == before ? 0 : -before / (after - before)
        return far[k - 1] + fraction * (far[k] - far[k - 1])
    }
    let closest = far.indices.min { abs(far[$0] - frr[$0]) < abs(far[$1] - frr[$1]) } ?? 0
    return (far[closest] + frr[closest]) / 2
}
