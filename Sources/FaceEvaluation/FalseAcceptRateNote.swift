// Whether a TAR@FAR figure is measurable from the impostor pairs it was computed on.

/// Why a true accept rate at the false accept rate `far` cannot be measured from
/// `impostorPairCount` impostor pairs, or nil when it can.
///
/// With `I` impostor pairs the smallest non-zero false accept rate a threshold can reach is
/// `1/I`. For a target below it, `trueAcceptRate(atFalseAcceptRate:in:)` can only return the TAR
/// at zero false accepts, which is not a measurement at `far` (300 impostor pairs cannot tell a
/// FAR of 10⁻³ from 0). A target of exactly `1/I` is measurable (one false accept allowed).
///
/// - Parameters:
///   - far: the target false accept rate, a fraction in (0, 1] (e.g. 1e-3).
///   - impostorPairCount: the number of impostor pairs the ROC was computed on.
/// - Returns: "below 1/I impostor pairs: not measurable" when `far < 1/I` (also for `I ≤ 0`),
///   else nil.
public func falseAcceptRateNote(target far: Double, impostorPairCount: Int) -> String? {
    guard impostorPairCount > 0 else { return "no impostor pairs: not measurable" }
    guard far < 1 / Double(impostorPairCount) else { return nil }
    return "below 1/\(impostorPairCount) impostor pairs: not measurable"
}

extension VerificationReport {
    /// `falseAcceptRateNote(target:impostorPairCount:)` for this report's impostor pairs: why its
    /// TAR at `far` (e.g. `tarAtFar1e3` at 1e-3) is not a measurement, or nil when it is.
    public func falseAcceptRateNote(target far: Double) -> String? {
        FaceEvaluation.falseAcceptRateNote(target: far, impostorPairCount: impostorPairCount)
    }
}

extension PairProtocolReport {
    /// `falseAcceptRateNote(target:impostorPairCount:)` for this protocol's impostor pairs.
    public func falseAcceptRateNote(target far: Double) -> String? {
        FaceEvaluation.falseAcceptRateNote(target: far, impostorPairCount: impostorPairCount)
    }
}
