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
    public let margin: Double

    /// - Parameter margin: `m ≥ 0` (CosFace uses 0.35).
    public init(margin: Double) {
        precondition(margin.isFinite && margin >= 0, "CosFaceMargin: margin must be finite and ≥ 0: \(margin)")
        self.margin = margin
    }

    public func target(cosine: Double) -> (value: Double, derivative: Double) {
        precondition(!cosine.isNaN, "CosFaceMargin: cosine is NaN")
        return (clampedCosine(cosine) - margin, 1)
    }

    /// `CosFaceMargin(margin: m·fraction)`.
    public func scaled(by fraction: Double) -> CosFaceMargin {
        CosFaceMargin(margin: margin * fraction)
    }

    private enum CodingKeys: String, CodingKey { case margin }

    /// Decodes `margin` through `init(margin:)` (and its check).
    public init(from decoder: any Decoder) throws {
        self.init(margin: try decoder.container(keyedBy: CodingKeys.self).decode(Double.self, forKey: .margin))
    }
}
