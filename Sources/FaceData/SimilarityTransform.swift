// A 2-D similarity transform (rotation, uniform scale, translation) and its least-squares
// estimate from point correspondences, in closed form (Umeyama 1991 without reflection).
//
// Coordinates are image pixels, x to the right, y down, the centre of pixel (column i, row j) at
// (i, j): OpenCV's convention, the one face detectors report landmarks in.
import Foundation  // cos, sin, atan2

/// A similarity transform of the plane: rotation by θ, uniform scale s > 0, then translation t.
///
/// As a 2 × 3 matrix (OpenCV's `warpAffine` layout, row-major):
/// ```
/// [ a  −b  tx ]      a = s·cos θ,  b = s·sin θ
/// [ b   a  ty ]      (x, y) ↦ (a·x − b·y + tx,  b·x + a·y + ty)
/// ```
public struct SimilarityTransform: Sendable, Equatable {
    /// s·cos θ.
    public var a: Double
    /// s·sin θ.
    public var b: Double
    /// The translation, pixels: `t = (tx, ty)`.
    public var translation: SIMD2<Double>

    /// The transform `[[a, −b, tx], [b, a, ty]]`.
    public init(a: Double, b: Double, translation: SIMD2<Double>) {
        self.a = a
        self.b = b
        self.translation = translation
    }

    /// Rotation by `rotation` radians (counter-clockwise for y up; clockwise on screen, where y
    /// points down), then scale by `scale`, then translation by `translation` pixels.
    public init(scale: Double, rotation: Double, translation: SIMD2<Double> = .zero) {
        self.init(a: scale * cos(rotation), b: scale * sin(rotation), translation: translation)
    }

    /// The identity.
    public static let identity = SimilarityTransform(a: 1, b: 0, translation: .zero)

    /// The uniform scale factor s = √(a² + b²).
    public var scale: Double { (a * a + b * b).squareRoot() }

    /// The rotation angle θ = atan2(b, a), radians in (−π, π].
    public var rotation: Double { atan2(b, a) }

    /// The 2 × 3 matrix `[[a, −b, tx], [b, a, ty]]`, as `cv2.warpAffine` and
    /// `skimage.transform.SimilarityTransform.params[0:2]` hold it.
    public var matrix: [[Double]] { [[a, -b, translation.x], [b, a, translation.y]] }

    /// The image of `point`.
    public func callAsFunction(_ point: SIMD2<Double>) -> SIMD2<Double> {
        SIMD2(a * point.x - b * point.y + translation.x, b * point.x + a * point.y + translation.y)
    }

    /// The inverse transform, nil when the scale is 0 (`a = b = 0`, every point maps to `t`).
    public var inverse: SimilarityTransform? {
        let determinant = a * a + b * b
        guard determinant > 0, determinant.isFinite else { return nil }
        let ia = a / determinant, ib = -b / determinant
        let t = translation
        return SimilarityTransform(a: ia, b: ib, translation: SIMD2(-(ia * t.x - ib * t.y), -(ib * t.x + ia * t.y)))
    }

    /// `self` after `other`: the transform `p ↦ self(other(p))`.
    public func concatenating(after other: SimilarityTransform) -> SimilarityTransform {
        SimilarityTransform(a: a * other.a - b * other.b, b: b * other.a + a * other.b,
                            translation: self(other.translation))
    }

    /// The similarity transform `T` minimizing `Σᵢ ‖targetᵢ − T(sourceᵢ)‖²` (no reflection), in
    /// `Double`; nil when no such transform maps the points apart.
    ///
    /// This is Umeyama's estimator (S. Umeyama, "Least-squares estimation of transformation
    /// parameters between two point patterns", IEEE TPAMI 13(4), 1991) with the reflection
    /// excluded, which is what `skimage.transform.SimilarityTransform.estimate` (and so
    /// insightface's `face_align.estimate_norm`) computes. In two dimensions the SVD of eq. (38)
    /// is not needed: with the means μ (eqs. 34, 35), the centred points x̃ᵢ = sourceᵢ − μₓ,
    /// ỹᵢ = targetᵢ − μ_y and the source variance σₓ² = (1/n)·Σ‖x̃ᵢ‖² (eq. 36), the optimal
    /// scaled rotation c·R of eqs. (39), (40), (42) is
    /// ```
    /// α = (1/n)·Σ (x̃ᵢ·ỹᵢ)            (the trace of Σxy, eq. 38)
    /// β = (1/n)·Σ (x̃ᵢ,x·ỹᵢ,y − x̃ᵢ,y·ỹᵢ,x)
    /// a = α/σₓ²,   b = β/σₓ²         (c = √(α² + β²)/σₓ², θ = atan2(β, α))
    /// t = μ_y − c·R·μₓ               (eq. 41)
    /// ```
    /// because max over rotations of tr(Rᵀ·Σxy) is √(α² + β²) = tr(D·S) of eq. (42) whichever
    /// sign det Σxy has.
    ///
    /// - Parameters:
    ///   - source: the points to move, pixels, `[n]` with n ≥ 2 (five face landmarks).
    ///   - target: where they should go, pixels, `[n]` (the alignment template).
    /// - Returns: nil when the source points have no spread (their root-mean-square distance from
    ///   their mean is at most `1e-9 · max(1, largest |coordinate|)`, e.g. all points equal) or
    ///   the fit has scale 0 (α = β = 0), or a value is not finite.
    /// - Precondition: `source.count == target.count` and `source.count ≥ 2`.
    public static func estimate(from source: [SIMD2<Double>], to target: [SIMD2<Double>]) -> SimilarityTransform? {
        precondition(source.count == target.count && source.count >= 2,
                     "SimilarityTransform.estimate: \(source.count) source and \(target.count) target points (need equal counts ≥ 2)")
        let n = Double(source.count)
        let sourceMean = source.reduce(SIMD2<Double>.zero, +) / n
        let targetMean = target.reduce(SIMD2<Double>.zero, +) / n
        var variance = 0.0, alpha = 0.0, beta = 0.0
        for (p, q) in zip(source, target) {
            let x = p - sourceMean, y = q - targetMean
            variance += x.x * x.x + x.y * x.y
            alpha += x.x * y.x + x.y * y.y
            beta += x.x * y.y - x.y * y.x
        }
        variance /= n
        alpha /= n
        beta /= n
        guard variance.isFinite, alpha.isFinite, beta.isFinite,
              !hasNoSpread(source, variance: variance), alpha != 0 || beta != 0 else { return nil }
        let a = alpha / variance, b = beta / variance
        let rotated = SIMD2(a * sourceMean.x - b * sourceMean.y, b * sourceMean.x + a * sourceMean.y)
        return SimilarityTransform(a: a, b: b, translation: targetMean - rotated)
    }

    /// Whether `points` are all (nearly) one point: the root-mean-square distance from their mean
    /// is at most `1e-9 · max(1, largest |coordinate|)` pixels (or a coordinate is not finite).
    public static func hasNoSpread(_ points: [SIMD2<Double>]) -> Bool {
        guard !points.isEmpty else { return true }
        let mean = points.reduce(SIMD2<Double>.zero, +) / Double(points.count)
        let variance = points.reduce(0.0) { sum, p in sum + ((p - mean) * (p - mean)).sum() } / Double(points.count)
        return hasNoSpread(points, variance: variance)
    }

    private static func hasNoSpread(_ points: [SIMD2<Double>], variance: Double) -> Bool {
        let magnitude = points.reduce(1.0) { max($0, abs($1.x), abs($1.y)) }
        guard variance.isFinite, magnitude.isFinite else { return true }
        return variance.squareRoot() <= 1e-9 * magnitude
    }
}
