/// The additive cosine margin (large margin cosine loss).
///
/// Concretely:
/// ```
/// ψ(c) = c − m,  dψ/dc = 1
/// ```
/// CosFace (Wang et al., "CosFace: Large Margin Cosine Loss for Deep Face Recognition",
/// CVPR 2018, arXiv:1801.09414, Eq. 4), there with `s = 64`, `m = 0.35`.
public struct CosFaceMargin: Margin, Equatable, Codable {
    /// The cosine margin `m` (dimensionless, a cosine difference), `m ≥ 0`, finite.
    public var margin: Double

    /// - Parameter margin: `m ≥ 0` (CosFace uses 0.35).
    public init(margin: Double) {
        precondition(margin.isFinite && margin >= 0, "CosFaceMargin: margin must be finite and ≥ 0: \(margin)")
        self.margin = margin
    }

    public func target(cosine: Double) -> (value: Double, derivative: Double) {
        precondition(!cosine.isNaN, "CosFaceMargin: cosine is NaN")
        precondition(margin.isFinite && margin >= 0, "CosFaceMargin: margin must be finite and ≥ 0: \(margin)")
        return (clampedCosine(cosine) - margin, 1)
    }
}
