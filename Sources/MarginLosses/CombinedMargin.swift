#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// The combined margin of InsightFace: a multiplicative angular margin `m1`, an additive
/// angular margin `m2` and an additive cosine margin `m3` in one target logit.
///
/// Concretely, with `θ = acos(clamp(c, −1, 1))`, `u = m1·θ + m2`, the threshold angle
/// `θ* = (π − m2)/m1` (where `u` reaches π) and `Δ = π − θ*`:
/// ```
/// ψ(c) = cos(m1·θ + m2) − m3                     if θ* ≥ π, or c > cos θ*     (u < π)
///      = c − m3 − Δ·sin Δ                        otherwise                    (fallback)
/// dψ/dc = m1·sin(m1·θ + m2) / sin θ              (margin branch)
///       = 1                                      (fallback)
/// ```
/// ArcFace (Deng et al., CVPR 2019, arXiv:1801.07698, Eq. 4). `(1, 0, 0)` is NormFace,
/// `(1, m, 0)` ArcFace, `(1, 0, m)` CosFace, `(m, 0, 0)` a SphereFace-style multiplicative
/// margin without SphereFace's piecewise extension (see `SphereFaceMargin` for that).
///
/// The fallback generalises arcface_torch's ArcFace rule (`c − m·sin m` once `θ + m > π`):
/// `Δ` is the additive angular margin the combined form effectively applies at the threshold
/// (`m1·θ* + m2 = θ* + Δ = π`), and the fallback is ArcFace's with `m` replaced by `Δ`. For
/// `m1 = 1` it is exactly ArcFace's (`Δ = m2`), so `CombinedMargin(1, m, 0)` equals
/// `ArcFaceMargin(margin: m)`. ψ is non-decreasing as long as `cos Δ + Δ·sin Δ ≥ 1`, which holds
/// for `Δ ≤ π/2`; the initializer requires that. Like ArcFace's, the fallback steps down at
/// the threshold. The `1/sin θ` of the derivative is handled as in `ArcFaceMargin`: it is
/// evaluated with the cosine clamped to `±(1 − 2⁻²⁴)`, which is finite everywhere and, for
/// `m2 = 0`, close to the true limit `m1·sin(m1·θ)/sin θ → m1²` at `c = 1`.
public struct CombinedMargin: Margin, Equatable, Codable {
    /// `m1`: multiplies the target angle, `> 0` (1 for none).
    public let angularMultiplier: Double
    /// `m2`: added to the target angle, radians, `≥ 0` (0 for none).
    public let angularMargin: Double
    /// `m3`: subtracted from the target cosine, `≥ 0` (0 for none).
    public let cosineMargin: Double
    /// `Δ = π − θ*`, the additive angular margin effectively applied at the threshold `θ*`;
    /// negative when the threshold lies beyond π (no fallback).
    public let thresholdMargin: Double
    /// `cos Δ` and `sin Δ`, computed once.
    private let cosDelta: Double, sinDelta: Double

    /// - Parameters:
    ///   - angularMultiplier: `m1 > 0`.
    ///   - angularMargin: `m2 ≥ 0`, radians.
    ///   - cosineMargin: `m3 ≥ 0`.
    /// - Precondition: the effective angular margin at the threshold, `Δ = π − (π − m2)/m1`,
    ///   is at most π/2 (keeps ψ monotone). InsightFace's `(1, 0.3, 0.2)` has `Δ = 0.3`.
    public init(angularMultiplier: Double = 1, angularMargin: Double = 0, cosineMargin: Double = 0) {
        if let problem = Self.rangeProblem(angularMultiplier: angularMultiplier, angularMargin: angularMargin,
                                           cosineMargin: cosineMargin) {
            preconditionFailure("CombinedMargin: \(problem.message)")
        }
        let delta = .pi - (.pi - angularMargin) / angularMultiplier
        self.angularMultiplier = angularMultiplier
        self.angularMargin = angularMargin
        self.cosineMargin = cosineMargin
        self.thresholdMargin = delta
        self.cosDelta = cos(delta)
        self.sinDelta = sin(delta)
    }

    public func target(cosine: Double) -> (value: Double, derivative: Double) {
        precondition(!cosine.isNaN, "CombinedMargin: cosine is NaN")
        let c = clampedCosine(cosine)
        let m1 = angularMultiplier, m2 = angularMargin, m3 = cosineMargin
        let delta = thresholdMargin
        if delta > 0 && !(c > -cosDelta) {  // cos θ* = cos(π − Δ) = −cos Δ
            return (c - m3 - delta * sinDelta, 1)
        }
        let value = cos(m1 * angle(ofCosine: c) + m2) - m3
        let (cd, sd) = derivativeAngle(ofCosine: c)
        let derivative = m1 * sin(m1 * angle(ofCosine: cd) + m2) / sd
        return (value, derivative)
    }

    /// `CombinedMargin(1 + (m1 − 1)·fraction, m2·fraction, m3·fraction)`: every term moves
    /// linearly from none (`(1, 0, 0)`) to this margin.
    public func scaled(by fraction: Double) -> CombinedMargin {
        CombinedMargin(angularMultiplier: 1 + (angularMultiplier - 1) * fraction, angularMargin: angularMargin * fraction,
                       cosineMargin: cosineMargin * fraction)
    }

    private enum CodingKeys: String, CodingKey { case angularMultiplier, angularMargin, cosineMargin }

    /// The first value outside its range, with the key it is stored under and a message
    /// stating the range and the value, or nil when all are valid. The threshold condition
    /// `π − (π − m2)/m1 ≤ π/2` involves both `m1` and `m2`; it is reported at `angularMargin`
    /// and its message names both.
    private static func rangeProblem(angularMultiplier m1: Double, angularMargin m2: Double,
                             cosineMargin m3: Double) -> (key: CodingKeys, message: String)? {
        if !(m1.isFinite && m1 > 0) {
            return (.angularMultiplier, "angularMultiplier m1 must be finite and > 0: \(m1)")
        }
        if !(m2 >= 0 && m2 < .pi) { return (.angularMargin, "angularMargin m2 must be in [0, π) radians: \(m2)") }
        if !(m3.isFinite && m3 >= 0) { return (.cosineMargin, "cosineMargin m3 must be finite and ≥ 0: \(m3)") }
        let delta = .pi - (.pi - m2) / m1
        if !(delta <= .pi / 2) {
            return (.angularMargin, "the effective margin at the threshold π − (π − m2)/m1 = \(delta) exceeds π/2 "
                        + "(angularMultiplier m1 = \(m1), angularMargin m2 = \(m2)); ψ would not be monotone")
        }
        return nil
    }

    /// Decodes `m1`, `m2` and `m3` through `init(angularMultiplier:angularMargin:cosineMargin:)`;
    /// a value outside its range is a `DecodingError.dataCorrupted` at that key, stating the
    /// range (not the initializer's trap). An effective threshold margin above π/2 is reported at
    /// `angularMargin`, naming `angularMultiplier` too.
    public init(from decoder: any Decoder) throws {
        let container = try decoder.container(keyedBy: CodingKeys.self)
        let m1 = try container.decode(Double.self, forKey: .angularMultiplier)
        let m2 = try container.decode(Double.self, forKey: .angularMargin)
        let m3 = try container.decode(Double.self, forKey: .cosineMargin)
        if let problem = Self.rangeProblem(angularMultiplier: m1, angularMargin: m2, cosineMargin: m3) {
            throw DecodingError.dataCorrupted(.init(codingPath: container.codingPath + [problem.key],
                                                    debugDescription: problem.message))
        }
        self.init(angularMultiplier: m1, angularMargin: m2, cosineMargin: m3)
    }
}
