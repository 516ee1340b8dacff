#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif
import Testing
import MarginLosses
import TensorCore
import _TestSupport

@Suite struct MarginSoftmaxCrossEntropyTests {
    @Test("ArcFace s = 64, m = 0.5 on cos = [0.8, 0.3, −0.2]: loss and ∂L/∂cos")
    func threeClassLiteral() throws {
        // By hand (verified with python3 math):
        //   z = [64·cos(acos 0.8 + 0.5), 64·0.3, 64·(−0.2)] = [26.5222865, 19.2, −12.8]
        //   ℓ = log(1 + e^(19.2 − 26.5222865) + e^(−12.8 − 26.5222865)) = 6.604317828227124e-4
        //   p_y − 1 = −(e^(−7.3222865) + …)/Z = −6.602137457550e-4
        //   exact:    ∂ℓ/∂c_y = 64·(p_y − 1)·ψ'(0.8) = 64·(−6.6021e-4)·1.5168166 = −0.06409108338761803
        //   straight: ∂ℓ/∂c_y = 64·(p_y − 1)                              = −0.042253679728318616
        //   ∂ℓ/∂c_1 = 64·p_1 = 0.04225367972836915,  ∂ℓ/∂c_2 = 64·p_2 = 5.351075951384716e-16
        // The cosines are stored in fp32 (0.8 → 0.800000011920929), which moves ℓ by ~1e-9.
        let cosines = Tensor(shape: [1, 3], storage: [0.8, 0.3, -0.2])
        let exact = try marginSoftmaxCrossEntropy(cosines: cosines, labels: [0], scale: 64,
                                                  margin: ArcFaceMargin(margin: 0.5), gradientMode: .exact, reduction: .mean)
        #expect(abs(exact.loss - 6.604317828227124e-4) < 1e-5 * 6.6e-4)
        #expect(exact.perSample.count == 1 && exact.perSample[0] == exact.loss)
        let expected = [-0.06409108338761803, 0.04225367972836915, 5.351075951384716e-16]
        let result = compare(exact.cosineGradient.storage, expected, atol: 1e-18, rtol: 1e-5, label: "∂ℓ/∂cos exact")
        #expect(result.passed, "\(result)")
        #expect(exact.correctCount == 1)

        let straight = try marginSoftmaxCrossEntropy(cosines: cosines, labels: [0], scale: 64,
                                                     margin: ArcFaceMargin(margin: 0.5), gradientMode: .straightThrough,
                                                     reduction: .mean)
        #expect(straight.loss == exact.loss)
        #expect(abs(Double(straight.cosineGradient.storage[0]) - -0.042253679728318616) < 1e-5 * 0.0423)
        #expect(straight.cosineGradient.storage[1] == exact.cosineGradient.storage[1])
        #expect(straight.cosineGradient.storage[2] == exact.cosineGradient.storage[2])
    }

    @Test("NormFace, 1000 classes, all cosines 1 at s = 64: loss ln 1000 without overflow")
    func thousandEqualClasses() throws {
        // All logits are 64: softmax is uniform, ℓ = log(1000·e⁶⁴) − 64 = ln 1000 = 6.907755278982137.
        // e⁶⁴·1000 would be fine in Double but not in Float; the row maximum keeps it at 1000.
        // ∂ℓ/∂c_j = 64/1000 for j ≠ y, 64·(1/1000 − 1) = −63.936 for the target.
        for value: Float in [1, 1.0000002] {
            let cosines = Tensor(shape: [1, 1000], repeating: value)
            let out = try marginSoftmaxCrossEntropy(cosines: cosines, labels: [17], scale: 64, margin: NormFaceMargin(),
                                                    gradientMode: .exact, reduction: .mean)
            #expect(abs(out.loss - 6.907755278982137) < 1e-9)
            #expect(out.cosineGradient.isFinite)
            #expect(abs(out.cosineGradient.storage[0] - 0.064) < 1e-7)
            #expect(abs(out.cosineGradient.storage[17] - -63.936) < 1e-4)
            // Ties go to the lowest index: class 0 is predicted, not 17.
            #expect(out.correctCount == 0)
        }
    }

    @Test("∂L/∂cos matches Double finite differences for every margin", arguments: MarginCase.all)
    func cosineGradient(_ testCase: MarginCase) throws {
        // 4 samples × 5 classes; target cosines chosen near +1, near −1, in θ + m > π, and mid-range,
        // kept ≥ 0.01 from any step of ψ.
        let n = 4, k = 5, scale = 16.0
        var cosines = randomArray(n * k, seed: 3, standardDeviation: 0.4).map { Swift.min(Swift.max($0, -0.95), 0.95) }
        let labels = [2, 0, 4, 1]
        let targets: [Float] = [0.9995, -0.9995, -0.93, 0.41]
        for i in 0..<n { cosines[i * k + labels[i]] = targets[i] }
        for t in targets { #expect(!testCase.discontinuities.contains { abs(Double(t) - $0) < 0.01 }) }
        for reduction in [Reduction.mean, .sum] {
            let out = try marginSoftmaxCrossEntropy(cosines: Tensor(shape: [n, k], storage: cosines), labels: labels,
                                                    scale: scale, margin: testCase.margin, gradientMode: .exact,
                                                    reduction: reduction)
            let objective: ([Double]) -> Double = { c in
                let rows = (0..<n).map { i in
                    (0..<k).map { j in scale * (j == labels[i] ? testCase.margin.target(cosine: c[i * k + j]).value : c[i * k + j]) }
                }
                return referenceCrossEntropy(rows, labels: labels, reduction: reduction)
            }
            let numeric = numericalGradient(at: cosines.asDouble, step: 1e-7, objective)
            #expect(abs(out.loss - objective(cosines.asDouble)) < 1e-6 * max(1, out.loss))
            let result = compare(out.cosineGradient.storage, numeric, atol: 1e-6, rtol: 1e-4, label: "\(testCase) \(reduction)")
            #expect(result.passed, "\(result)")
        }
    }

    @Test("straight-through: same forward, target gradient divided by ψ'(c), others equal")
    func straightThroughPrediction() throws {
        let n = 3, k = 4
        let cosines: [Float] = [0.7, 0.1, -0.3, 0.2,
                                0.05, 0.6, 0.5, -0.8,
                                -0.2, 0.3, -0.95, 0.1]
        let labels = [0, 2, 2]
        for margin in [ArcFaceMargin(margin: 0.5) as any Margin, CombinedMargin(angularMultiplier: 1.2, angularMargin: 0.2, cosineMargin: 0.1),
                       SphereFaceMargin(multiplier: 3)] {
            let input = Tensor(shape: [n, k], storage: cosines)
            let exact = try marginSoftmaxCrossEntropy(cosines: input, labels: labels, scale: 30, margin: margin,
                                                      gradientMode: .exact, reduction: .mean)
            let straight = try marginSoftmaxCrossEntropy(cosines: input, labels: labels, scale: 30, margin: margin,
                                                         gradientMode: .straightThrough, reduction: .mean)
            #expect(exact.loss == straight.loss && exact.perSample == straight.perSample)
            for i in 0..<n {
                let slope = margin.target(cosine: Double(cosines[i * k + labels[i]])).derivative
                for j in 0..<k {
                    let e = Double(exact.cosineGradient.storage[i * k + j]), s = Double(straight.cosineGradient.storage[i * k + j])
                    if j == labels[i] {
                        #expect(abs(e - s * slope) <= 1e-6 * abs(e) + 1e-9, "\(margin) sample \(i)")
                        #expect(abs(slope - 1) < 1e-3 || abs(e - s) > 1e-6, "gradients should differ")
                    } else {
                        #expect(e == s)
                    }
                }
            }
        }
    }

    @Test("reductions: sum = N·mean; none has sum's gradient and per-sample losses")
    func reductions() throws {
        let n = 3, k = 4
        let input = Tensor(shape: [n, k], storage: randomArray(n * k, seed: 9, standardDeviation: 0.4))
        let labels = [3, 1, 0]
        func run(_ reduction: Reduction) throws -> (loss: Double, perSample: [Double], cosineGradient: Tensor, correctCount: Int) {
            try marginSoftmaxCrossEntropy(cosines: input, labels: labels, scale: 64, margin: CosFaceMargin(margin: 0.35),
                                          gradientMode: .exact, reduction: reduction)
        }
        let mean = try run(.mean), sum = try run(.sum), none = try run(.none)
        #expect(mean.perSample == sum.perSample && sum.perSample == none.perSample)
        #expect(abs(sum.loss - 3 * mean.loss) < 1e-12 * sum.loss)
        #expect(abs(sum.loss - sum.perSample.reduce(0, +)) < 1e-12 * sum.loss)
        #expect(none.loss == sum.loss)
        #expect(none.cosineGradient == sum.cosineGradient)
        let scaled = compare(sum.cosineGradient.storage, mean.cosineGradient.storage.map { 3 * Double($0) },
                             atol: 1e-7, rtol: 1e-6, label: "sum vs 3·mean")
        #expect(scaled.passed, "\(scaled)")
    }

    @Test("correctCount: argmax of the margin-free cosines equals the label")
    func accuracy() throws {
        // Row 0: largest cosine 0.5 at class 1 = label → correct (even though the margin makes
        // its logit 64·(0.5 − 0.35) smaller than 64·0.4). Row 1: largest at class 0, label 2 → wrong.
        let input = Tensor(shape: [2, 3], storage: [0.4, 0.5, 0.1, 0.9, 0.2, 0.3])
        let out = try marginSoftmaxCrossEntropy(cosines: input, labels: [1, 2], scale: 64, margin: CosFaceMargin(margin: 0.35),
                                                gradientMode: .exact, reduction: .mean)
        #expect(out.correctCount == 1)
    }

    @Test("plain softmax cross-entropy: logits [0, ln 2]")
    func plainSoftmax() throws {
        // softmax([0, ln 2]) = [1/3, 2/3]; ℓ = −ln(2/3) = 0.4054651081081644; ∂ℓ/∂z = [1/3, −1/3].
        let out = try softmaxCrossEntropy(logits: Tensor(shape: [1, 2], storage: [0, Float(log(2.0))]), labels: [1], reduction: .sum)
        #expect(abs(out.loss - 0.4054651081081644) < 1e-7)
        let result = compare(out.logitGradient.storage, [1.0 / 3, -1.0 / 3], atol: 1e-7, rtol: 0, label: "∂ℓ/∂z")
        #expect(result.passed, "\(result)")
        #expect(out.correctCount == 1)
        // A target far below the others: ℓ ≈ 1000 − 0 with no overflow.
        let far = try softmaxCrossEntropy(logits: Tensor(shape: [1, 2], storage: [1000, 0]), labels: [1], reduction: .mean)
        #expect(abs(far.loss - 1000) < 1e-9)
        #expect(far.logitGradient.storage == [1, -1])
    }

    @Test("typed errors for bad batches")
    func errors() {
        let input = Tensor(shape: [2, 3], storage: [0.1, 0.2, 0.3, 0.4, 0.5, 0.6])
        func run(_ cosines: Tensor, _ labels: [Int]) -> MarginLossError? {
            do {
                _ = try marginSoftmaxCrossEntropy(cosines: cosines, labels: labels, scale: 64, margin: ArcFaceMargin(margin: 0.5),
                                                  gradientMode: .exact, reduction: .mean)
                return nil
            } catch { return error }
        }
        #expect(run(input, [0, 3]) == .labelOutOfRange(sample: 1, label: 3, classCount: 3))
        #expect(run(input, [-1, 0]) == .labelOutOfRange(sample: 0, label: -1, classCount: 3))
        #expect(run(input, [0]) == .batchSizeMismatch(embeddings: 2, labels: 1))
        #expect(run(Tensor(shape: [0, 3]), []) == .emptyBatch)
        var bad = input
        bad.storage[4] = .nan
        #expect(run(bad, [0, 1]) == .nonFiniteEmbedding(sample: 1))
        bad.storage[4] = -.infinity
        #expect(run(bad, [0, 1]) == .nonFiniteEmbedding(sample: 1))
        #expect(MarginLossError.labelOutOfRange(sample: 1, label: 3, classCount: 3).description.contains("0..<3"))
    }
}
