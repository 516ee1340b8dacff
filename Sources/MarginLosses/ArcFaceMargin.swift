#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// The additive angular margin: the target angle is increased by `m` radians.
///
/// Concretely, with `θ = acos(clamp(c, −1, 1))` and `sin θ = √((1 − c)(1 + c))`:
/// ```
/// ψ(c) = cos(θ + m) = c·cos m − sin θ·sin m          if c > cos(π − m)   (θ + m < π)
///      = c − m·sin m                                 otherwise           (fallback)
/// dψ/dc = cos m + c·sin m / sin θ                    (margin branch)
///       = 1                                          (fallback)
/// ```
/// ArcFace (Deng et al., "ArcFace: Additive Angular Margin Loss for Deep Face Recognition",
/// CVPR 2019, arXiv:1801.07698, Eq. 3), there with `s = 64`, `m = 0.5`.
///
/// - The fallback is arcface_torch's `th = cos(π − m)`, `mm = sin(π − m)·m`: beyond `θ + m = π`,
///   `cos(θ + m)` would turn back up and reward a larger angle, so the logit continues as the
///   cosine minus a constant. ψ stays non-decreasing in `c`, but it is not continuous at
///   `c = cos(π − m)`: it steps from −1 down to `−cos m − m·sin m` (−1.117 for `m = 0.5`).
/// - `easyMargin` (arcface_torch `easy_margin`): the margin applies only where `c > 0`;
///   elsewhere `ψ(c) = c`. This too steps at `c = 0`, from 0 to `−sin m`.
/// - The derivative's `1/sin θ` diverges as `c → 1`; it is evaluated with `c` clamped to
///   `±(1 − 2⁻²⁴)` (the fp32 cosines nearest ±1), so it is exact for every fp32 cosine inside
///   `(−1, 1)` and finite (≈ 1389 for `m = 0.5`) at `c = 1`; never NaN or Inf.
public struct ArcFaceMargin: Margin, Equatable, Codable {
    /// The valid margins `m`, radians.
    public static let marginRange: ClosedRange<Double> = 0...(.pi / 2)

    /// The angular margin `m`, radians, in `marginRange` (0.5 rad ≈ 28.6°).
    public let margin: Double
    /// Whether the margin applies only to positive target cosines (arcface_torch `easy_margin`).
    public let easyMargin: Bool
    /// `cos m` and `sin m`, computed once.
    private let cosM: Double, sinM: Double

    /// - Parameters:
    ///   - margin: `m` in radians, in `marginRange`, `0 ≤ m ≤ π/2` (ArcFace uses 0.5).
    ///   - easyMargin: apply the margin only where `cos θ > 0`.
    public init(margin: Double, easyMargin: Bool = false) {
        precondition(Self.marginRange.contains(margin), "ArcFaceMargin: margin must be in [0, π/2] radians: \(margin)")
        self.margin = margin
        self.easyMargin = easyMargin
        self.cosM = cos(margin)
        self.sinM = sin(margin)
    }

    public func target(cosine: Double) -> (value: Double, derivative: Double) {
        precondition(!cosine.isNaN, "ArcFaceMargin: cosine is NaN")
        let c = clampedCosine(cosine)
        if easyMargin {
            if !(c > 0) { return (c, 1) }
        } else if !(c > -cosM) {  // cos(π − m) = −cos m: θ + m ≥ π
            return (c - margin * sinM, 1)
        }
        let value = c * cosM - sineOfAngle(c) * sinM
        let (cd, sd) = derivativeAngle(ofCosine: c)
        return (value, cosM + cd * sinM / sd)
    }

    /// `ArcFaceMargin(margin: m·fraction, easyMargin: easyMargin)`.
    public func scaled(by fraction: Double) -> ArcFaceMargin {
        ArcFaceMargin(margin: margin * fraction, easyMargin: easyMargin)
    }

    private enum CodingKeys: String, CodingKey { case margin, easyMargin }

    /// Decodes `margin` and `easyMargin` through `init(margin:easyMargin:)` (and its check).
    public init(from decoder: any Decoder) throws {
        let container = try decoder.container(keyedBy: CodingKeys.self)
        self.init(margin: try container.decode(Double.self, forKey: .margin),
                  easyMargin: try container.decode(Bool.self, forKey: .easyMargin))
    }
}
