#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// The target-logit function of an angular-margin loss: ψ(cos θ_y), before scaling, with its
/// derivative dψ/dcos.
///
/// A margin sees only the (scalar) cosine between a sample's embedding and its own class
/// center; the head applies it to the target column of the `[N, K]` cosine matrix and
/// multiplies every logit by the scale `s`. Non-target columns keep `s·cos θ_j`.
///
/// Conformers must accept any cosine in `[−1, 1]` (values just outside, from fp32 rounding,
/// are clamped) and return a finite value and a finite derivative everywhere, including
/// `cos θ = ±1` where `1/sin θ` factors diverge (see `ArcFaceMargin`).
public protocol Margin: Sendable {
    /// ψ(c) and dψ/dc at the target cosine `c = cos θ_y`.
    ///
    /// - Parameter cosine: `cos θ_y`; clamped to `[−1, 1]` first.
    /// - Returns: `value` = ψ(c), the target logit before scaling; `derivative` = dψ/dc.
    func target(cosine: Double) -> (value: Double, derivative: Double)

    /// This margin with every margin term multiplied by `fraction` (0: no margin, 1: this
    /// margin): one step of a linear warm-up (`MarginWarmup`).
    func scaled(by fraction: Double) -> Self
}

extension Margin {
    /// `self`: a margin with no term to scale (`NormFaceMargin`), or one introduced gradually by
    /// other means (`SphereFaceMargin`'s `annealingWeight`). Margins with terms to scale
    /// implement their own (`ArcFaceMargin`, `CosFaceMargin`, `CombinedMargin`).
    public func scaled(by fraction: Double) -> Self { self }
}

/// A linear margin warm-up: the margin grows over the first `epochs` epochs, from `1/epochs`
/// of each of its terms to all of them.
///
/// Concretely, epoch `e` (0-based) trains with `margin.scaled(by: min(1, (e + 1)/epochs))`.
/// `MarginHead` owns one (`marginWarmup`) and applies it in `beginEpoch(_:)`.
public struct MarginWarmup: Sendable {
    /// The margin at full strength.
    public let margin: any Margin
    /// The warm-up length `≥ 1`, epochs.
    public let epochs: Int

    public init(margin: any Margin, epochs: Int) {
        precondition(epochs >= 1, "MarginWarmup: epochs must be ≥ 1: \(epochs)")
        self.margin = margin
        self.epochs = epochs
    }

    /// The margin of training epoch `epoch` (0-based; from epoch `epochs − 1` on, `margin`
    /// scaled by 1).
    public func margin(atEpoch epoch: Int) -> any Margin {
        margin.scaled(by: min(1, Double(epoch + 1) / Double(epochs)))
    }
}

/// How the backward pass treats the margin on the target column.
public enum MarginGradient: String, Codable, Sendable {
    /// The chain rule through ψ: `∂L/∂cos θ_y = s · (p_y − 1) · ψ'(cos θ_y)`.
    case exact
    /// The margin changes the forward value only; the backward treats `dψ/dc = 1`, so
    /// `∂L/∂cos θ_y = s · (p_y − 1)`. This is arcface_torch's behaviour since 2022 (its margin
    /// is computed under `torch.no_grad()`); available as a named option, never implicit.
    case straightThrough
}

// MARK: - Shared numerics

/// Clamps a cosine to `[−1, 1]` (an fp32 unit vector dotted with itself can give 1.0000002).
@inline(__always)
func clampedCosine(_ c: Double) -> Double { min(max(c, -1), 1) }

/// `sin θ` for `θ = acos c`, `c ∈ [−1, 1]`, as `√((1 − c)(1 + c))`, which stays accurate near
/// `c = ±1` where `√(1 − c²)` loses digits.
@inline(__always)
func sineOfAngle(_ c: Double) -> Double { ((1 - c) * (1 + c)).squareRoot() }

/// `θ = acos c ∈ [0, π]` computed as `atan2(sin θ, c)`, accurate over the whole range.
@inline(__always)
func angle(ofCosine c: Double) -> Double { atan2(sineOfAngle(c), c) }

/// The largest `Float` below 1, `1 − 2⁻²⁴`. Derivatives that carry a `1/sin θ` factor are
/// evaluated with the cosine clamped to `±derivativeCosineLimit`, i.e. with
/// `sin θ ≥ √(2·2⁻²⁴ − 2⁻⁴⁸) ≈ 3.45e-4`. Every fp32 cosine strictly inside `(−1, 1)` therefore
/// gets its exact derivative, and `c = ±1` (or a rounding excursion beyond) gets the derivative
/// at the nearest fp32 cosine inside: finite, never NaN/Inf. The true derivative of
/// `cos(θ + m)` diverges like `sin m / θ` as `θ → 0`; in the head that direction is projected
/// out by the normalization backward, so the clamp only bounds rounding noise.
let derivativeCosineLimit: Double = 1 - 0x1p-24

/// The cosine and sine at which a derivative with a `1/sin θ` factor is evaluated (see
/// `derivativeCosineLimit`).
@inline(__always)
func derivativeAngle(ofCosine c: Double) -> (cosine: Double, sine: Double) {
    let clamped = min(max(c, -derivativeCosineLimit), derivativeCosineLimit)
    return (clamped, sineOfAngle(clamped))
}
