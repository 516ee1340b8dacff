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

/// A linear margin warm-up: the margin grows from 0 at the first training step to its full
/// value after `epochs` epochs, a little at every step.
///
/// Concretely, global step `t` (0-based, counting every batch of the run) trains with
/// ```
/// margin.scaled(by: min(1, t / (epochs · stepsPerEpoch)))
/// ```
/// so step 0 has no margin at all (NormFace for ArcFace/CosFace) and step `epochs·stepsPerEpoch`
/// on has the full margin. The factor depends on the step only, so a resumed run gets the same
/// margins as an uninterrupted one. (Before issue 10 the ramp was per epoch and began at
/// `1/epochs` of the margin; configuration files with `marginWarmupEpochs` keep loading and now
/// ramp from 0.) `MarginHead` owns one (`marginWarmup`) and applies it in `beginStep(_:stepsPerEpoch:)`.
/// A ramp is the usual advice for ArcFace that does not take off (insightface issues); with the
/// exact gradient it only postpones the stray term (see `MarginGradient`).
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

    /// The fraction `min(1, step / (epochs · stepsPerEpoch))` of the margin at global step
    /// `step ≥ 0` (0-based) of a run with `stepsPerEpoch ≥ 1` steps per epoch.
    public func fraction(atStep step: Int, stepsPerEpoch: Int) -> Double {
        precondition(stepsPerEpoch >= 1, "MarginWarmup: stepsPerEpoch must be ≥ 1: \(stepsPerEpoch)")
        return min(1, Double(max(step, 0)) / (Double(epochs) * Double(stepsPerEpoch)))
    }

    /// The margin of global training step `step` (0-based).
    public func margin(atStep step: Int, stepsPerEpoch: Int) -> any Margin {
        margin.scaled(by: fraction(atStep: step, stepsPerEpoch: stepsPerEpoch))
    }

    /// The margin at the first step of training epoch `epoch` (0-based): `margin` scaled by
    /// `min(1, epoch/epochs)`.
    public func margin(atEpoch epoch: Int) -> any Margin {
        margin.scaled(by: min(1, Double(max(epoch, 0)) / Double(epochs)))
    }
}

/// How the backward pass treats the margin on the target column.
///
/// The default is `.straightThrough` (arcface_torch's choice since 2022). The exact gradient is
/// the true gradient of the loss, but for margins whose slope `f = ψ'(cos θ_y)` differs from 1
/// (ArcFace, the combined margin, SphereFace) each sample's cosine-row gradient then sums to
/// `Σ_k ∂ℓ/∂cos θ_k = s·(1 − p_y)·(1 − f)` instead of 0: an identity-free force that moves
/// *every* center toward (f > 1) or away from (f < 1) every embedding. At initialization
/// (θ_y ≈ 90°, f ≈ 0.88 for m = 0.5) it pushes all centers away; on data that give no early
/// identity signal (att_faces_relit at 24 × 24) it drives the run into the hard fallback with
/// every center merged (a degenerate minimum at `ln(K − 1) + s·m·sin m`, 7.20 for K = 30, s = 16)
/// and training accuracy stays at chance. Straight-through has `f ≡ 1`, so rows sum to 0 as
/// for CosFace and NormFace (softmax shift invariance). See "Choosing a margin and scale" in
/// the ArcFace documentation for the measurements. CosFace and NormFace have `f = 1`: both
/// modes give the same gradient.
public enum MarginGradient: String, Codable, Sendable {
    /// The chain rule through ψ: `∂L/∂cos θ_y = s · (p_y − 1) · ψ'(cos θ_y)`. The true gradient;
    /// available as a named option (`"marginGradient": "exact"`), tested against finite
    /// differences.
    case exact
    /// The margin changes the forward value only; the backward treats `dψ/dc = 1`, so
    /// `∂L/∂cos θ_y = s · (p_y − 1)`. This is arcface_torch's behaviour since 2022 (its margin
    /// is computed under `torch.no_grad()`) and the default here.
    case straightThrough

    /// The default mode of `MarginHead` and `TrainingConfiguration.marginGradient`.
    public static let `default`: MarginGradient = .straightThrough
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
