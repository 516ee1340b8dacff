#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif
import Testing
import MarginLosses
import TensorCore
import _TestSupport

/// The straight-through gradient (the default since issue 10) against its own reference: the
/// margin enters the forward pass only, so `∂ℓ/∂cos θ_y = s·(p_y − 1)`, `∂ℓ/∂cos θ_j = s·p_j`,
/// and every row of the cosine gradient sums to 0 (softmax shift invariance). The exact
/// gradient's row sum is `s·(1 − p_y)·(1 − ψ'(cos θ_y))`, the stray term that stalls ArcFace.
@Suite struct StraightThroughTests {
    static let n = 5, k = 6
    static let cosines: [Float] = [0.7, 0.1, -0.3, 0.2, 0.0, -0.6,
                                   0.05, 0.6, 0.5, -0.8, 0.3, 0.1,
                                   -0.2, 0.3, -0.95, 0.1, 0.4, 0.0,
                                   0.0, 0.02, -0.01, 0.03, 0.0, 0.1,
                                   0.1, -0.2, 0.3, 0.9, -0.4, 0.2]
    static let labels = [0, 2, 2, 3, 1]

    @Test("straight-through: ∂ℓ/∂cos θ_y = s(p_y − 1), ∂ℓ/∂cos θ_j = s·p_j, rows sum to 0", arguments: MarginCase.all)
    func ownReference(_ testCase: MarginCase) throws {
        let (n, k, s) = (Self.n, Self.k, 16.0)
        let out = try marginSoftmaxCrossEntropy(cosines: Tensor(shape: [n, k], storage: Self.cosines), labels: Self.labels,
                                                scale: s, margin: testCase.margin, gradientMode: .straightThrough,
                                                reduction: .sum)
        for i in 0..<n {
            let y = Self.labels[i]
            // Reference in Double: logits with the margin on the target, softmax, s·(p − onehot).
            let z = (0..<k).map { j in
                s * (j == y ? testCase.margin.target(cosine: Double(Self.cosines[i * k + j])).value : Double(Self.cosines[i * k + j]))
            }
            let top = z.max()!
            let total = z.reduce(0) { $0 + exp($1 - top) }
            var rowSum = 0.0
            for j in 0..<k {
                let p = exp(z[j] - top) / total
                let expected = s * (p - (j == y ? 1 : 0))
                let got = Double(out.cosineGradient.storage[i * k + j])
                #expect(abs(got - expected) <= 1e-6 + 1e-5 * abs(expected), "\(testCase) sample \(i) class \(j)")
                rowSum += got
            }
            #expect(abs(rowSum) <= 1e-5, "\(testCase) sample \(i): row sum \(rowSum)")
        }
    }

    @Test("exact ArcFace rows sum to s(1 − p_y)(1 − f), f = ψ'(cos θ_y): the stray common-mode term")
    func exactRowSum() throws {
        let (n, k, s) = (Self.n, Self.k, 16.0)
        let margin = ArcFaceMargin(margin: 0.5)
        let out = try marginSoftmaxCrossEntropy(cosines: Tensor(shape: [n, k], storage: Self.cosines), labels: Self.labels,
                                                scale: s, margin: margin, gradientMode: .exact, reduction: .sum)
        var sawNonZero = false
        for i in 0..<n {
            let y = Self.labels[i]
            let c = Double(Self.cosines[i * k + y])
            let (psi, f) = margin.target(cosine: c)
            let z = (0..<k).map { j in s * (j == y ? psi : Double(Self.cosines[i * k + j])) }
            let top = z.max()!
            let py = exp(z[y] - top) / z.reduce(0) { $0 + exp($1 - top) }
            let expected = s * (1 - py) * (1 - f)
            let rowSum = (0..<k).reduce(0.0) { $0 + Double(out.cosineGradient.storage[i * k + $1]) }
            #expect(abs(rowSum - expected) <= 1e-5 + 1e-5 * abs(expected), "sample \(i)")
            if abs(expected) > 0.1 { sawNonZero = true }
        }
        #expect(sawNonZero, "the cases must exercise f ≠ 1")
    }

    @Test("straight-through is the default of MarginHead and of the margin-gradient enum")
    func defaults() {
        var generator = SeededGenerator(seed: 1)
        let head = MarginHead(classCount: 3, embeddingDimension: 4, scale: 16, margin: ArcFaceMargin(margin: 0.5),
                              generator: &generator)
        #expect(head.gradientMode == .straightThrough)
        #expect(MarginGradient.default == .straightThrough)
    }
}
