#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// SphereFace's multiplicative angular margin (A-Softmax) with its monotone piecewise
/// extension, applied to normalized features (the head's scale `s` replaces SphereFace's
/// feature norm `‖x‖`).
///
/// Concretely, for an integer multiplier `m ≥ 1` and `θ = acos(clamp(c, −1, 1))` in
/// `[kπ/m, (k+1)π/m]`, `k ∈ 0..<m`:
/// ```
/// ψ(θ)  = (−1)ᵏ·cos(m·θ) − 2k = (−1)ᵏ·T_m(c) − 2k
/// dψ/dc = (−1)ᵏ·m·sin(m·θ)/sin θ = (−1)ᵏ·m·U_{m−1}(c)
/// ```
/// with `T_m`, `U_{m−1}` the Chebyshev polynomials of the first and second kind, so both are
/// polynomials in `c`: exact and finite up to `c = ±1` with no `1/sin θ` to clamp. ψ is
/// continuous and non-decreasing in `c`, from `1` at `c = 1` down to `1 − 2m` at `c = −1`.
/// SphereFace (Liu et al., "SphereFace: Deep Hypersphere Embedding for Face Recognition",
/// CVPR 2017, arXiv:1704.08063), there with `m = 4`.
///
/// `annealingWeight` λ blends in the plain cosine, as in the SphereFace authors' training
/// (λ decays towards a small value so that the margin is introduced gradually):
/// `ψ_λ = (λ·c + ψ)/(1 + λ)`, `dψ_λ/dc = (λ + ψ')/(1 + λ)`.
public struct SphereFaceMargin: Margin, Equatable, Codable {
    /// The integer angle multiplier `m ≥ 1` (1 is NormFace).
    public let multiplier: Int
    /// λ ≥ 0, the weight of the plain cosine blended into the target logit (0 for pure A-Softmax).
    public let annealingWeight: Double

    /// - Parameters:
    ///   - multiplier: `m ≥ 1` (SphereFace uses 4).
    ///   - annealingWeight: `λ ≥ 0`.
    public init(multiplier: Int, annealingWeight: Double = 0) {
        if let problem = Self.rangeProblem(multiplier: multiplier, annealingWeight: annealingWeight) {
            preconditionFailure("SphereFaceMargin: \(problem.message)")
        }
        self.multiplier = multiplier
        self.annealingWeight = annealingWeight
    }

    /// The first value outside its range, with the key it is stored under and a message
    /// stating the range and the value, or nil when both are valid.
    private static func rangeProblem(multiplier: Int, annealingWeight: Double) -> (key: CodingKeys, message: String)? {
        if multiplier < 1 { return (.multiplier, "multiplier must be ≥ 1: \(multiplier)") }
        if !(annealingWeight.isFinite && annealingWeight >= 0) {
            return (.annealingWeight, "annealingWeight must be finite and ≥ 0: \(annealingWeight)")
        }
        return nil
    }

    /// Decodes `multiplier` and `annealingWeight` through `init(multiplier:annealingWeight:)`;
    /// a value outside its range (`multiplier < 1`, `annealingWeight < 0`) is a
    /// `DecodingError.dataCorrupted` at that key, stating the range (not the initializer's trap).
    public init(from decoder: any Decoder) throws {
        let container = try decoder.container(keyedBy: CodingKeys.self)
        let multiplier = try container.decode(Int.self, forKey: .multiplier)
        let annealingWeight = try container.decode(Double.self, forKey: .annealingWeight)
        if let problem = Self.rangeProblem(multiplier: multiplier, annealingWeight: annealingWeight) {
            throw DecodingError.dataCorrupted(.init(codingPath: container.codingPath + [problem.key],
                                                    debugDescription: problem.message))
        }
        self.init(multiplier: multiplier, annealingWeight: annealingWeight)
    }

    private enum CodingKeys: String, CodingKey { case multiplier, annealingWeight }

    public func target(cosine: Double) -> (value: Double, derivative: Double) {
        precondition(!cosine.isNaN, "SphereFaceMargin: cosine is NaN")
        let c = clampedCosine(cosine)
        let m = multiplier
        let k = min(max(Int((Double(m) * angle(ofCosine: c) / .pi).rounded(.down)), 0), m - 1)
        // T₀ = 1, T₁ = c, Tₙ₊₁ = 2c·Tₙ − Tₙ₋₁;  U₀ = 1, U₁ = 2c, Uₙ₊₁ = 2c·Uₙ − Uₙ₋₁.
        var (tPrevious, t) = (1.0, c)          // T₀, T₁
        var (uPrevious, u) = (0.0, 1.0)        // U₋₁ = 0, U₀
        for _ in 1..<max(m, 1) {
            (tPrevious, t) = (t, 2 * c * t - tPrevious)
            (uPrevious, u) = (u, 2 * c * u - uPrevious)
        }
        // Now t = T_m, u = U_{m−1}.
        let sign: Double = k % 2 == 0 ? 1 : -1
        let psi = sign * t - 2 * Double(k)
        let psiDerivative = sign * Double(m) * u
        let lambda = annealingWeight
        return ((lambda * c + psi) / (1 + lambda), (lambda + psiDerivative) / (1 + lambda))
    }
}
