// Shared fixtures for the MarginLosses tests: margin cases, tiny head problems with chosen
// target cosines, and an independent Double reference of the head objectives.
#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif
import MarginLosses
import TensorCore
import _TestSupport

/// A margin under test, with the cosines where its ψ is discontinuous (finite differences
/// must not straddle them).
struct MarginCase: Sendable, CustomStringConvertible {
    let name: String
    let margin: any Margin
    let discontinuities: [Double]
    var description: String { name }

    static let all: [MarginCase] = [
        MarginCase(name: "NormFace", margin: NormFaceMargin(), discontinuities: []),
        MarginCase(name: "CosFace m=0.35", margin: CosFaceMargin(margin: 0.35), discontinuities: []),
        // ArcFace steps at cos(π − m) = −cos m.
        MarginCase(name: "ArcFace m=0.5", margin: ArcFaceMargin(margin: 0.5), discontinuities: [-cos(0.5)]),
        MarginCase(name: "ArcFace m=0.5 easy", margin: ArcFaceMargin(margin: 0.5, fallback: .easy), discontinuities: [0]),
        // No fallback: continuous, but decreasing past θ = π − m (c < −cos m).
        MarginCase(name: "ArcFace m=0.5 none", margin: ArcFaceMargin(margin: 0.5, fallback: .plain), discontinuities: []),
        MarginCase(name: "ArcFace m=0", margin: ArcFaceMargin(margin: 0), discontinuities: []),
        // Combined steps at cos θ* = −cos Δ, Δ = π − (π − m2)/m1.
        MarginCase(name: "Combined (1, 0.3, 0.2)",
                   margin: CombinedMargin(angularMultiplier: 1, angularMargin: 0.3, cosineMargin: 0.2),
                   discontinuities: [-cos(0.3)]),
        MarginCase(name: "Combined (1.35, 0, 0)", margin: CombinedMargin(angularMultiplier: 1.35),
                   discontinuities: [-cos(Double.pi - Double.pi / 1.35)]),
        MarginCase(name: "Combined (1.2, 0.2, 0.1)",
                   margin: CombinedMargin(angularMultiplier: 1.2, angularMargin: 0.2, cosineMargin: 0.1),
                   discontinuities: [-cos(Double.pi - (Double.pi - 0.2) / 1.2)]),
        MarginCase(name: "Combined (0.9, 0, 0) no fallback", margin: CombinedMargin(angularMultiplier: 0.9),
                   discontinuities: []),
        MarginCase(name: "SphereFace m=4", margin: SphereFaceMargin(multiplier: 4), discontinuities: []),
        MarginCase(name: "SphereFace m=2 λ=5", margin: SphereFaceMargin(multiplier: 2, annealingWeight: 5),
                   discontinuities: []),
    ]
}

/// A tiny head problem: embeddings `[N, D]`, centers `[K, D]`, labels `[N]`.
struct HeadProblem {
    let n: Int, k: Int, d: Int
    var embeddings: [Float]
    var centers: [Float]
    var labels: [Int]

    /// Random centers (std 1) and embeddings; where `targetCosines[i]` is given, row i is built
    /// at exactly that cosine (up to fp32 rounding) to its own center, with norm 1.7.
    init(n: Int, k: Int, d: Int, targetCosines: [Double?], seed: UInt64) {
        precondition(targetCosines.count == n)
        self.n = n; self.k = k; self.d = d
        centers = randomArray(k * d, seed: seed)
        embeddings = randomArray(n * d, seed: seed &+ 1)
        labels = (0..<n).map { ($0 * 3 + 1) % k }
        var generator = SeededGenerator(seed: seed &+ 2)
        for i in 0..<n {
            guard let c = targetCosines[i] else { continue }
            let w = unit((0..<d).map { Double(centers[labels[i] * d + $0]) })
            var u = (0..<d).map { _ in Double(generator.nextNormal()) }
            let projection = zip(u, w).reduce(0) { $0 + $1.0 * $1.1 }
            u = unit(zip(u, w).map { $0 - projection * $1 })
            let s = ((1 - c) * (1 + c)).squareRoot()
            for j in 0..<d { embeddings[i * d + j] = Float(1.7 * (c * w[j] + s * u[j])) }
        }
    }
}

func unit(_ v: [Double]) -> [Double] {
    let norm = v.reduce(0) { $0 + $1 * $1 }.squareRoot()
    return v.map { $0 / norm }
}

/// The cosine matrix `[N][K]` of a problem in Double.
func referenceCosines(embeddings e: [Double], centers w: [Double], n: Int, k: Int, d: Int) -> [[Double]] {
    let rowsE = (0..<n).map { unit(Array(e[($0 * d)..<(($0 + 1) * d)])) }
    let rowsW = (0..<k).map { unit(Array(w[($0 * d)..<(($0 + 1) * d)])) }
    return rowsE.map { ei in rowsW.map { wj in zip(ei, wj).reduce(0) { $0 + $1.0 * $1.1 } } }
}

/// Cross-entropy of logit rows in Double: `log Σ exp(z) − z_y` (row max subtracted), reduced.
func referenceCrossEntropy(_ logits: [[Double]], labels: [Int], reduction: Reduction) -> Double {
    var total = 0.0
    for (row, label) in zip(logits, labels) {
        let m = row.max()!
        total += m + log(row.reduce(0) { $0 + exp($1 - m) }) - row[label]
    }
    return reduction == .mean ? total / Double(labels.count) : total
}

/// The margin head objective in Double: `ψ(sample, c)` gives the unscaled target logit.
func referenceMarginObjective(embeddings: [Double], centers: [Double], problem p: HeadProblem, scale: Double,
                              reduction: Reduction, psi: (Int, Double) -> Double) -> Double {
    let cosines = referenceCosines(embeddings: embeddings, centers: centers, n: p.n, k: p.k, d: p.d)
    let logits = cosines.enumerated().map { i, row in
        row.enumerated().map { j, c in scale * (j == p.labels[i] ? psi(i, min(max(c, -1), 1)) : c) }
    }
    return referenceCrossEntropy(logits, labels: p.labels, reduction: reduction)
}

/// Compares an analytic fp32 gradient with a Double finite-difference one:
/// `|a − n| ≤ atol + 1e-3·|n|` with `atol = 1e-4 + 1e-3·max|n|`.
func gradientComparison(_ analytic: [Float], _ numeric: [Double], label: String) -> Comparison {
    let largest = numeric.map(abs).max() ?? 0
    return compare(analytic, numeric, atol: 1e-4 + 1e-3 * largest, rtol: 1e-3, label: label)
}

extension Array where Element == Float {
    var asDouble: [Double] { map(Double.init) }
}
