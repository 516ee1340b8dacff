#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif
import Testing
import MarginLosses
import TensorCore
import _TestSupport

/// A margin head over a problem's centers (std-1 centers rather than the 0.01 init, so that
/// ∂L/∂W is of order 1).
func makeMarginHead(_ p: HeadProblem, margin: any Margin, scale: Double,
                    gradientMode: MarginGradient = .exact) -> MarginHead {
    var generator = SeededGenerator(seed: 1)
    let head = MarginHead(classCount: p.k, embeddingDimension: p.d, scale: scale, margin: margin,
                          gradientMode: gradientMode, generator: &generator)
    head.centers.value = Tensor(shape: [p.k, p.d], storage: p.centers)
    return head
}

@Suite struct MarginHeadTests {
    /// Targets: near +1, near −1 (θ + m > π for ArcFace), θ + m > π away from −1, two mid-range.
    static let targetCosines: [Double?] = [0.9995, -0.9995, -0.93, 0.41, nil]

    @Test("∂L/∂embeddings and ∂L/∂centers match Double finite differences", arguments: MarginCase.all)
    func finiteDifferences(_ testCase: MarginCase) throws {
        for (shape, seed) in [((n: 5, k: 6, d: 7), UInt64(21)), ((n: 3, k: 4, d: 5), UInt64(33))] {
            let targets = Array(Self.targetCosines.prefix(shape.n - 1)) + [nil]
            let p = HeadProblem(n: shape.n, k: shape.k, d: shape.d, targetCosines: targets, seed: seed)
            let scale = 16.0
            // The constructed target cosines hold, and sit ≥ 0.01 from any step of ψ.
            let cosines = referenceCosines(embeddings: p.embeddings.asDouble, centers: p.centers.asDouble, n: p.n, k: p.k, d: p.d)
            for i in 0..<p.n {
                let c = cosines[i][p.labels[i]]
                if let wanted = targets[i] { #expect(abs(c - wanted) < 1e-6) }
                #expect(!testCase.discontinuities.contains { abs(c - $0) < 0.01 }, "sample \(i) cos \(c)")
            }
            for reduction in [Reduction.mean, .sum] {
                let head = makeMarginHead(p, margin: testCase.margin, scale: scale)
                let out = try head.loss(embeddings: Tensor(shape: [p.n, p.d], storage: p.embeddings), labels: p.labels,
                                        reduction: reduction, computeGradients: true)
                let psi: (Int, Double) -> Double = { _, c in testCase.margin.target(cosine: c).value }
                let e = p.embeddings.asDouble, w = p.centers.asDouble
                let reference = referenceMarginObjective(embeddings: e, centers: w, problem: p, scale: scale,
                                                         reduction: reduction, psi: psi)
                #expect(abs(out.loss - reference) < 1e-5 * max(1, abs(reference)), "loss \(out.loss) vs \(reference)")
                let numericE = numericalGradient(at: e) {
                    referenceMarginObjective(embeddings: $0, centers: w, problem: p, scale: scale, reduction: reduction, psi: psi)
                }
                let numericW = numericalGradient(at: w) {
                    referenceMarginObjective(embeddings: e, centers: $0, problem: p, scale: scale, reduction: reduction, psi: psi)
                }
                let resultE = gradientComparison(out.embeddingGradient.storage, numericE, label: "\(testCase) \(reduction) ∂L/∂e")
                let resultW = gradientComparison(head.centers.gradient.storage, numericW, label: "\(testCase) \(reduction) ∂L/∂W")
                #expect(resultE.passed, "\(resultE)")
                #expect(resultW.passed, "\(resultW)")
                #expect(out.embeddingGradient.shape == [p.n, p.d])
            }
        }
    }

    @Test("straight-through gradient = exact gradient of the objective with the margin offset frozen")
    func straightThrough() throws {
        // arcface_torch computes the margin under no_grad: the target logit is s·(c + δ) with
        // δ = ψ(c₀) − c₀ a constant. Its gradient is the finite difference of that objective.
        let p = HeadProblem(n: 4, k: 5, d: 6, targetCosines: [0.9995, -0.93, 0.41, nil], seed: 7)
        let margin = ArcFaceMargin(margin: 0.5), scale = 16.0
        let e = p.embeddings.asDouble, w = p.centers.asDouble
        let c0 = referenceCosines(embeddings: e, centers: w, n: p.n, k: p.k, d: p.d)
        let offsets = (0..<p.n).map { i in margin.target(cosine: c0[i][p.labels[i]]).value - c0[i][p.labels[i]] }
        let frozen: (Int, Double) -> Double = { i, c in c + offsets[i] }

        let straight = makeMarginHead(p, margin: margin, scale: scale, gradientMode: .straightThrough)
        let exact = makeMarginHead(p, margin: margin, scale: scale, gradientMode: .exact)
        let input = Tensor(shape: [p.n, p.d], storage: p.embeddings)
        let outS = try straight.loss(embeddings: input, labels: p.labels, reduction: .mean, computeGradients: true)
        let outE = try exact.loss(embeddings: input, labels: p.labels, reduction: .mean, computeGradients: true)
        #expect(outS.loss == outE.loss && outS.perSampleLoss == outE.perSampleLoss)

        let numericE = numericalGradient(at: e) {
            referenceMarginObjective(embeddings: $0, centers: w, problem: p, scale: scale, reduction: .mean, psi: frozen)
        }
        let numericW = numericalGradient(at: w) {
            referenceMarginObjective(embeddings: e, centers: $0, problem: p, scale: scale, reduction: .mean, psi: frozen)
        }
        let resultE = gradientComparison(outS.embeddingGradient.storage, numericE, label: "straight-through ∂L/∂e")
        let resultW = gradientComparison(straight.centers.gradient.storage, numericW, label: "straight-through ∂L/∂W")
        #expect(resultE.passed, "\(resultE)")
        #expect(resultW.passed, "\(resultW)")
        // And it really differs from the exact gradient (ψ'(0.9995) ≈ 16, ψ'(0.41) ≈ 1.4).
        let same = compare(outS.embeddingGradient.storage, outE.embeddingGradient.storage, atol: 1e-3, rtol: 1e-2)
        #expect(!same.passed)
    }

    @Test("embedding exactly on its center (cos = 1 in fp32) or opposite: finite loss and gradients")
    func alignedEmbedding() throws {
        var p = HeadProblem(n: 2, k: 4, d: 5, targetCosines: [nil, nil], seed: 5)
        for j in 0..<p.d {
            p.embeddings[j] = p.centers[p.labels[0] * p.d + j] * 3        // cos θ = 1 (up to rounding)
            p.embeddings[p.d + j] = -p.centers[p.labels[1] * p.d + j]     // cos θ = −1
        }
        for margin in MarginCase.all.map(\.margin) {
            let head = makeMarginHead(p, margin: margin, scale: 64)
            let out = try head.loss(embeddings: Tensor(shape: [p.n, p.d], storage: p.embeddings), labels: p.labels,
                                    reduction: .mean, computeGradients: true)
            #expect(out.loss.isFinite && out.embeddingGradient.isFinite && head.centers.gradient.isFinite, "\(margin)")
        }
    }

    @Test("reductions: perSample equal; sum = N·mean in loss and gradients; none = sum")
    func reductions() throws {
        let p = HeadProblem(n: 4, k: 5, d: 6, targetCosines: [nil, 0.5, nil, -0.95], seed: 12)
        var outputs: [Reduction: (HeadOutput, Tensor)] = [:]
        for reduction in [Reduction.mean, .sum, .none] {
            let head = makeMarginHead(p, margin: ArcFaceMargin(margin: 0.5), scale: 64)
            let out = try head.loss(embeddings: Tensor(shape: [p.n, p.d], storage: p.embeddings), labels: p.labels,
                                    reduction: reduction, computeGradients: true)
            outputs[reduction] = (out, head.centers.gradient)
        }
        let (mean, meanW) = outputs[.mean]!, (sum, sumW) = outputs[.sum]!, (none, noneW) = outputs[.none]!
        #expect(mean.perSampleLoss == sum.perSampleLoss && sum.perSampleLoss == none.perSampleLoss)
        #expect(abs(sum.loss - 4 * mean.loss) < 1e-12 * sum.loss)
        #expect(abs(mean.loss - mean.perSampleLoss.reduce(0, +) / 4) < 1e-12 * mean.loss)
        #expect(none.loss == sum.loss)
        #expect(none.embeddingGradient == sum.embeddingGradient && noneW == sumW)
        let e = compare(sum.embeddingGradient.storage, mean.embeddingGradient.storage.map { 4 * Double($0) }, atol: 1e-6, rtol: 1e-5)
        let w = compare(sumW.storage, meanW.storage.map { 4 * Double($0) }, atol: 1e-6, rtol: 1e-5)
        #expect(e.passed, "\(e)")
        #expect(w.passed, "\(w)")
    }

    @Test("two calls accumulate twice the centers gradient; computeGradients: false touches nothing")
    func accumulation() throws {
        let p = HeadProblem(n: 3, k: 4, d: 5, targetCosines: [0.3, nil, nil], seed: 8)
        let head = makeMarginHead(p, margin: ArcFaceMargin(margin: 0.5), scale: 64)
        let input = Tensor(shape: [p.n, p.d], storage: p.embeddings)
        let first = try head.loss(embeddings: input, labels: p.labels, reduction: .mean, computeGradients: true)
        let once = head.centers.gradient
        #expect(once.storage.contains { $0 != 0 })
        let second = try head.loss(embeddings: input, labels: p.labels, reduction: .mean, computeGradients: true)
        #expect(second.embeddingGradient == first.embeddingGradient)
        let twice = compare(head.centers.gradient.storage, once.storage.map { 2 * Double($0) }, atol: 0, rtol: 1e-6)
        #expect(twice.passed, "\(twice)")
        let before = head.centers.gradient
        let forwardOnly = try head.loss(embeddings: input, labels: p.labels, reduction: .mean, computeGradients: false)
        #expect(forwardOnly.loss == first.loss && forwardOnly.correctCount == first.correctCount)
        #expect(forwardOnly.embeddingGradient.shape == [0])
        #expect(head.centers.gradient == before)
        head.centers.zeroGradient()
        #expect(head.centers.gradient.storage.allSatisfy { $0 == 0 })
    }

    @Test("bad batches throw the typed error and leave the gradients untouched")
    func errors() {
        let p = HeadProblem(n: 3, k: 4, d: 5, targetCosines: [nil, nil, nil], seed: 4)
        let head = makeMarginHead(p, margin: ArcFaceMargin(margin: 0.5), scale: 64)
        let sentinel = Tensor(shape: [p.k, p.d], storage: randomArray(p.k * p.d, seed: 99))
        head.centers.gradient = sentinel
        func run(_ embeddings: [Float], rows: Int, _ labels: [Int]) -> MarginLossError? {
            do {
                _ = try head.loss(embeddings: Tensor(shape: [rows, p.d], storage: embeddings), labels: labels,
                                  reduction: .mean, computeGradients: true)
                return nil
            } catch { return error }
        }
        #expect(run(p.embeddings, rows: 3, [0, 4, 1]) == .labelOutOfRange(sample: 1, label: 4, classCount: 4))
        #expect(run(p.embeddings, rows: 3, [0, 1, -2]) == .labelOutOfRange(sample: 2, label: -2, classCount: 4))
        var nan = p.embeddings
        nan[2 * p.d + 3] = .nan
        #expect(run(nan, rows: 3, p.labels) == .nonFiniteEmbedding(sample: 2))
        var inf = p.embeddings
        inf[1] = .infinity
        #expect(run(inf, rows: 3, p.labels) == .nonFiniteEmbedding(sample: 0))
        #expect(run(p.embeddings, rows: 3, [0, 1]) == .batchSizeMismatch(embeddings: 3, labels: 2))
        #expect(run([], rows: 0, []) == .emptyBatch)
        #expect(head.centers.gradient == sentinel)
    }

    @Test("centers start as normal(0, 0.01) with the given name")
    func initialization() {
        var generator = SeededGenerator(seed: 2024)
        let head = MarginHead(classCount: 200, embeddingDimension: 64, scale: 64, margin: ArcFaceMargin(margin: 0.5),
                              generator: &generator, name: "arcface")
        let values = head.centers.value.storage.map(Double.init)
        let mean = values.reduce(0, +) / Double(values.count)
        let std = (values.reduce(0) { $0 + ($1 - mean) * ($1 - mean) } / Double(values.count)).squareRoot()
        #expect(head.centers.value.shape == [200, 64])
        #expect(abs(mean) < 5e-4 && abs(std - 0.01) < 5e-4)
        #expect(head.centers.name == "arcface.centers" && head.centers.appliesWeightDecay)
        #expect(head.parameters.count == 1 && head.parameters[0] === head.centers)
    }
}

@Suite struct SoftmaxHeadTests {
    /// The linear softmax objective in Double.
    static func objective(_ e: [Double], _ w: [Double], _ b: [Double], n: Int, k: Int, d: Int,
                          labels: [Int], reduction: Reduction) -> Double {
        let logits = (0..<n).map { i in
            (0..<k).map { j in b[j] + (0..<d).reduce(0) { $0 + e[i * d + $1] * w[j * d + $1] } }
        }
        return referenceCrossEntropy(logits, labels: labels, reduction: reduction)
    }

    @Test("∂L/∂embeddings, ∂L/∂weight, ∂L/∂bias match Double finite differences",
          arguments: [(3, 4, 5), (5, 7, 8)])
    func finiteDifferences(n: Int, k: Int, d: Int) throws {
        for reduction in [Reduction.mean, .sum] {
            var generator = SeededGenerator(seed: UInt64(n * 100 + k))
            let head = SoftmaxHead(classCount: k, embeddingDimension: d, generator: &generator)
            let embeddings = randomArray(n * d, seed: 5)
            let labels = (0..<n).map { ($0 * 2 + 1) % k }
            let out = try head.loss(embeddings: Tensor(shape: [n, d], storage: embeddings), labels: labels,
                                    reduction: reduction, computeGradients: true)
            let e = embeddings.asDouble, w = head.weight.value.storage.asDouble, b = head.bias.value.storage.asDouble
            let f = { (e: [Double], w: [Double], b: [Double]) in
                Self.objective(e, w, b, n: n, k: k, d: d, labels: labels, reduction: reduction)
            }
            #expect(abs(out.loss - f(e, w, b)) < 1e-5 * max(1, out.loss))
            for (analytic, numeric, label) in [
                (out.embeddingGradient.storage, numericalGradient(at: e) { f($0, w, b) }, "∂L/∂e"),
                (head.weight.gradient.storage, numericalGradient(at: w) { f(e, $0, b) }, "∂L/∂W"),
                (head.bias.gradient.storage, numericalGradient(at: b) { f(e, w, $0) }, "∂L/∂b"),
            ] {
                let result = gradientComparison(analytic, numeric, label: "\(label) \(reduction)")
                #expect(result.passed, "\(result)")
            }
        }
    }

    @Test("hand-set weights give softmaxCrossEntropy's loss; gradients accumulate; errors leave them untouched")
    func literalAndAccumulation() throws {
        var generator = SeededGenerator(seed: 3)
        let head = SoftmaxHead(classCount: 2, embeddingDimension: 2, generator: &generator, name: "baseline")
        #expect(head.weight.name == "baseline.weight" && head.bias.name == "baseline.bias" && !head.bias.appliesWeightDecay)
        // W = I, b = [0, ln 2], e = [0, 0]: logits [0, ln 2], label 1 → ℓ = −ln(2/3) = 0.4054651.
        head.weight.value = Tensor(shape: [2, 2], storage: [1, 0, 0, 1])
        head.bias.value = Tensor(shape: [2], storage: [0, Float(log(2.0))])
        let input = Tensor(shape: [1, 2], storage: [0, 0])
        let out = try head.loss(embeddings: input, labels: [1], reduction: .mean, computeGradients: true)
        #expect(abs(out.loss - 0.4054651081081644) < 1e-7)
        // ∂ℓ/∂b = softmax − onehot = [1/3, −1/3]; ∂ℓ/∂W = (∂ℓ/∂z)ᵀ·e = 0 at e = 0.
        #expect(compare(head.bias.gradient.storage, [1.0 / 3, -1.0 / 3], atol: 1e-7, rtol: 0).passed)
        _ = try head.loss(embeddings: input, labels: [1], reduction: .mean, computeGradients: true)
        #expect(compare(head.bias.gradient.storage, [2.0 / 3, -2.0 / 3], atol: 1e-7, rtol: 0).passed)
        let before = (head.weight.gradient, head.bias.gradient)
        #expect(throws: MarginLossError.labelOutOfRange(sample: 0, label: 2, classCount: 2)) {
            try head.loss(embeddings: input, labels: [2], reduction: .mean, computeGradients: true)
        }
        #expect(throws: MarginLossError.nonFiniteEmbedding(sample: 0)) {
            try head.loss(embeddings: Tensor(shape: [1, 2], storage: [.nan, 0]), labels: [0], reduction: .mean, computeGradients: true)
        }
        #expect(head.weight.gradient == before.0 && head.bias.gradient == before.1)
    }
}
