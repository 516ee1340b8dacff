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
/// What happens where `θ + m` would pass π is `fallback` (`MarginFallback`):
/// - `.hard` (default) is arcface_torch's `th = cos(π − m)`, `mm = sin(π − m)·m`: beyond
///   `θ + m = π`, `cos(θ + m)` would turn back up and reward a larger angle, so the logit continues
///   as the cosine minus a constant. ψ stays non-decreasing in `c`, but it is not continuous at
///   `c = cos(π − m)`: it steps from −1 down to `−cos m − m·sin m` (−1.117 for `m = 0.5`).
/// - `.easy` (arcface_torch `easy_margin`): the margin applies only where `c > 0`; elsewhere
///   `ψ(c) = c`. This too steps at `c = 0`, from 0 to `−sin m`.
/// - `.plain` (configuration `"none"`): `ψ(c) = cos(θ + m)` everywhere (continuous). Past `θ = π − m` (`c < −cos m`) it
///   turns back up, from its minimum −1 to `−cos m` at `c = −1`, and `dψ/dc` is negative there:
///   for a sample whose target angle is already beyond `π − m` the gradient pushes the embedding
///   further away from its center. The form of the paper's Eq. 3 taken literally; for study and
///   comparison, not for training.
/// - The derivative's `1/sin θ` diverges as `c → 1`; it is evaluated with `c` clamped to
///   `±(1 − 2⁻²⁴)` (the fp32 cosines nearest ±1), so it is exact for every fp32 cosine inside
///   `(−1, 1)` and finite (≈ 1389 for `m = 0.5`) at `c = 1`; never NaN or Inf.
public struct ArcFaceMargin: Margin, Equatable, Codable {
    /// The valid margins `m`, radians.
    public static let marginRange: ClosedRange<Double> = 0...(.pi / 2)

    /// The angular margin `m`, radians, in `marginRange` (0.5 rad ≈ 28.6°).
    public let margin: Double
    /// What ψ does where `θ + m` would pass π (see the type's documentation).
    public let fallback: MarginFallback
    /// `fallback == .easy` (arcface_torch `easy_margin`); kept for source compatibility.
    public var easyMargin: Bool { fallback == .easy }
    /// `cos m` and `sin m`, computed once.
    private let cosM: Double, sinM: Double

    /// - Parameters:
    ///   - margin: `m` in radians, in `marginRange`, `0 ≤ m ≤ π/2` (ArcFace uses 0.5).
    ///   - fallback: `.hard` (default, arcface_torch), `.easy` or `.plain`.
    public init(margin: Double, fallback: MarginFallback = .hard) {
        precondition(Self.marginRange.contains(margin), "ArcFaceMargin: margin must be in [0, π/2] radians: \(margin)")
        self.margin = margin
        self.fallback = fallback
        self.cosM = cos(margin)
        self.sinM = sin(margin)
    }

    /// `init(margin:fallback:)` with `.easy` for `true`, `.hard` for `false`.
    public init(margin: Double, easyMargin: Bool) {
        self.init(margin: margin, fallback: easyMargin ? .easy : .hard)
    }

    public func target(cosine: Double) -> (value: Double, derivative: Double) {
        precondition(!cosine.isNaN, "ArcFaceMargin: cosine is NaN")
        let c = clampedCosine(cosine)
        switch fallback {
        case .easy: if !(c > 0) { return (c, 1) }
        case .hard: if !(c > -cosM) { return (c - margin * sinM, 1) }  // cos(π − m) = −cos m: θ + m ≥ π
        case .plain: break
        }
        let value = c * cosM - sineOfAngle(c) * sinM
        let (cd, sd) = derivativeAngle(ofCosine: c)
        return (value, cosM + cd * sinM / sd)
    }

    /// `ArcFaceMargin(margin: m·fraction, fallback: fallback)`.
    public func scaled(by fraction: Double) -> ArcFaceMargin {
        ArcFaceMargin(margin: margin * fraction, fallback: fallback)
    }

    private enum CodingKeys: String, CodingKey { case margin, fallback, easyMargin }

    /// Decodes `margin` and `fallback` through `init(margin:fallback:)`; a margin outside
    /// `marginRange` is a `DecodingError.dataCorrupted` (not the initializer's trap). The
    /// `easyMargin` Bool of earlier versions is read too (`true` → `.easy`, `false` → `.hard`);
    /// given together with a `fallback` that disagrees, it is a `DecodingError.dataCorrupted`
    /// naming both keys.
    public init(from decoder: any Decoder) throws {
        let container = try decoder.container(keyedBy: CodingKeys.self)
        let margin = try container.decode(Double.self, forKey: .margin)
        guard Self.marginRange.contains(margin) else {   // input, not a programmer error: no trap
            throw DecodingError.dataCorrupted(.init(codingPath: container.codingPath + [CodingKeys.margin],
                                                    debugDescription: "margin must be in [0, π/2] radians: \(margin)"))
        }
        let fallback = try container.decodeIfPresent(MarginFallback.self, forKey: .fallback)
        let legacy = try container.decodeIfPresent(Bool.self, forKey: .easyMargin).map { $0 ? MarginFallback.easy : .hard }
        if let fallback, let legacy, fallback != legacy {
            throw DecodingError.dataCorrupted(.init(
                codingPath: container.codingPath + [CodingKeys.easyMargin],
                debugDescription: "easyMargin \(legacy == .easy) conflicts with fallback \"\(fallback.rawValue)\"; give only fallback"))
        }
        self.init(margin: margin, fallback: fallback ?? legacy ?? .hard)
    }

    public func encode(to encoder: any Encoder) throws {
        var container = encoder.container(keyedBy: CodingKeys.self)
        try container.encode(margin, forKey: .margin)
        try container.encode(fallback, forKey: .fallback)
    }
}

/// What `ArcFaceMargin`'s ψ does where `θ + m` would pass π (arcface_torch's `th`/`mm` and
/// `easy_margin`; Deng et al., CVPR 2019, arXiv:1801.07698, Eq. 3 has no fallback).
public enum MarginFallback: String, Codable, Sendable, CaseIterable {
    /// arcface_torch's default: `ψ(c) = c − m·sin m` once `θ + m ≥ π` (non-decreasing; a step at
    /// `c = −cos m`).
    case hard
    /// arcface_torch's `easy_margin`: the margin only where `c > 0`, `ψ(c) = c` elsewhere.
    case easy
    /// No fallback (configuration string `"none"`): `cos(θ + m)` everywhere, non-monotone past
    /// `θ = π − m` (its gradient there pushes a sample away from its center). Not named `.none`,
    /// which an optional `MarginFallback?` would read as `Optional.none`.
    case plain = "none"
}
