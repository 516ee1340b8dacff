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

    /// - Parameter margin: `m ≥ 0`, finite (CosFace uses 0.35).
    public init(margin: Double) {
        precondition(Self.isValid(margin: margin), "CosFaceMargin: margin must be finite and ≥ 0: \(margin)")
        self.margin = margin
    }

    /// Whether `margin` is a valid `m`: finite and `≥ 0`.
    private static func isValid(margin: Double) -> Bool { margin.isFinite && margin >= 0 }

    public func target(cosine: Double) -> (value: Double, derivative: Double) {
        precondition(!cosine.isNaN, "CosFaceMargin: cosine is NaN")
        return (clampedCosine(cosine) - margin, 1)
    }

    /// `CosFaceMargin(margin: m·fraction)`.
    public func scaled(by fraction: Double) -> CosFaceMargin {
        CosFaceMargin(margin: margin * fraction)
    }

    private enum CodingKeys: String, CodingKey { case margin }

    /// Decodes `margin` through `init(margin:)`; a negative margin is a
    /// `DecodingError.dataCorrupted` at the key `margin` (not the initializer's trap).
    public init(from decoder: any Decoder) throws {
        let container = try decoder.container(keyedBy: CodingKeys.self)
        let margin = try container.decode(Double.self, forKey: .margin)
        guard Self.isValid(margin: margin) else {   // input, not a programmer error: no trap
            throw DecodingError.dataCorrupted(.init(codingPath: container.codingPath + [CodingKeys.margin],
                                                    debugDescription: "margin must be finite and ≥ 0: \(margin)"))
        }
        self.init(margin: margin)
    }
}
