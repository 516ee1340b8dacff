// Non-finite class centers (and SoftmaxHead weights) are a typed error naming the parameter and
// the row, never a trap in the margin (a NaN target cosine) nor a silent loss of 0 with NaN
// gradients; nothing is accumulated when it is thrown.
import Testing
import MarginLosses
import TensorCore
import _TestSupport

@Suite struct NonFiniteParameterTests {
    static let poisons: [Float] = [.nan, .infinity, -.infinity]
    static let (n, k, d) = (4, 7, 6)
    /// Row 2 is the target of sample 1; row 5 is nobody's target.
    static let labels = [0, 2, 3, 0]

    static func embeddings() -> Tensor { Tensor(shape: [n, d], storage: randomArray(n * d, seed: 91)) }

    /// A head whose center row `row` holds `poison` in one element (the others stay finite).
    static func head(poison: Float, row: Int, subcenters: Int = 1, sampleRate: Double = 1, chunkSize: Int? = nil,
                     margin: any Margin = ArcFaceMargin(margin: 0.5)) -> MarginHead {
        var centers = randomArray(k * subcenters * d, seed: 92)
        centers[row * d + 3] = poison
        return makeHead(k: k, d: d, centers: centers, margin: margin, scale: 16, subcenters: subcenters,
                        sampleRate: sampleRate, chunkSize: chunkSize)
    }

    static func expectError(_ head: MarginHead, row: Int, computeGradients: Bool, labels: [Int] = labels) {
        head.centers.zeroGradient()
        do {
            let out = try head.loss(embeddings: embeddings(), labels: labels, reduction: .mean,
                                    computeGradients: computeGradients)
            Issue.record("no error; loss \(out.loss)")
        } catch {
            #expect(error == .nonFiniteParameter(parameter: "head.centers", row: row))
            #expect(error.description.contains("row \(row) of head.centers"))
        }
        #expect(head.centers.gradient.storage.allSatisfy { $0 == 0 }, "nothing accumulated")
    }

    @Test("a NaN/±Inf in a target row or a non-target row, with and without gradients, chunked or not",
          arguments: poisons, [2, 5])
    func plainHead(poison: Float, row: Int) {
        for computeGradients in [true, false] {
            for chunk in [nil, 2] as [Int?] {
                Self.expectError(Self.head(poison: poison, row: row, chunkSize: chunk), row: row,
                                 computeGradients: computeGradients)
            }
        }
        // Every margin, not only ArcFace's (whose target used to trap on the NaN cosine).
        for margin in [CosFaceMargin(margin: 0.35), CombinedMargin(angularMultiplier: 1, angularMargin: 0.3, cosineMargin: 0.2)] as [any Margin] {
            Self.expectError(Self.head(poison: poison, row: row, margin: margin), row: row, computeGradients: true)
        }
    }

    @Test("sub-centers: the storage row c·k + s is named", arguments: poisons)
    func subcenters(poison: Float) {
        // Class 2 (sample 1's target) sub-center 1 → row 7; class 5 sub-center 2 → row 17.
        for row in [7, 17] {
            for computeGradients in [true, false] {
                Self.expectError(Self.head(poison: poison, row: row, subcenters: 3), row: row,
                                 computeGradients: computeGradients)
            }
        }
    }

    @Test("Partial FC: a sampled row is found (global row named); an unsampled row is not used", arguments: poisons)
    func partialFC(poison: Float) throws {
        // Target row 2 is always sampled.
        Self.expectError(Self.head(poison: poison, row: 2, sampleRate: 0.5), row: 2, computeGradients: true)
        // A non-target row: either sampled (then the error), or not (then the step is finite and
        // the row is not among the updated rows).
        var sawError = false, sawSkip = false
        for seed in 0..<12 {
            let head = Self.head(poison: poison, row: 5, sampleRate: 0.6)
            head.samplingGenerator = SeededGenerator(seed: UInt64(seed))
            head.centers.zeroGradient()
            do {
                let out = try head.loss(embeddings: Self.embeddings(), labels: Self.labels, reduction: .mean,
                                        computeGradients: true)
                #expect(out.loss.isFinite && out.embeddingGradient.isFinite && head.centers.gradient.isFinite)
                #expect(!(head.lastSampledClasses ?? []).contains(5))
                sawSkip = true
            } catch {
                #expect(error == .nonFiniteParameter(parameter: "head.centers", row: 5))
                sawError = true
            }
        }
        #expect(sawError && sawSkip, "both cases occur over 12 seeds")
        // Without gradients every class is in play, so the row is found.
        Self.expectError(Self.head(poison: poison, row: 5, sampleRate: 0.6), row: 5, computeGradients: false)
    }

    @Test("finite centers (including a zero row) are not an error")
    func finite() throws {
        var centers = randomArray(Self.k * Self.d, seed: 92)
        for j in 0..<Self.d { centers[5 * Self.d + j] = 0 }
        let head = makeHead(k: Self.k, d: Self.d, centers: centers, margin: ArcFaceMargin(margin: 0.5), scale: 16)
        let out = try head.loss(embeddings: Self.embeddings(), labels: Self.labels, reduction: .mean, computeGradients: true)
        #expect(out.loss.isFinite && out.loss > 0)
    }

    // MARK: SoftmaxHead

    static func softmaxHead() -> SoftmaxHead {
        var generator = SeededGenerator(seed: 93)
        return SoftmaxHead(classCount: k, embeddingDimension: d, generator: &generator)
    }

    static func expectSoftmaxError(_ head: SoftmaxHead, parameter: String, row: Int, computeGradients: Bool) {
        head.weight.zeroGradient()
        head.bias.zeroGradient()
        do {
            let out = try head.loss(embeddings: embeddings(), labels: labels, reduction: .mean,
                                    computeGradients: computeGradients)
            Issue.record("no error; loss \(out.loss)")
        } catch {
            #expect(error == .nonFiniteParameter(parameter: parameter, row: row))
        }
        #expect(head.weight.gradient.storage.allSatisfy { $0 == 0 } && head.bias.gradient.storage.allSatisfy { $0 == 0 })
    }

    @Test("SoftmaxHead: NaN/±Inf in a weight row or a bias element (target or not), with and without gradients",
          arguments: poisons, [2, 5])
    func softmax(poison: Float, row: Int) {
        for computeGradients in [true, false] {
            let weighted = Self.softmaxHead()
            weighted.weight.value.storage[row * Self.d + 3] = poison
            Self.expectSoftmaxError(weighted, parameter: "head.weight", row: row, computeGradients: computeGradients)
            // A whole row of −∞ gives logits ±∞ or NaN depending on the embedding's signs.
            let wholeRow = Self.softmaxHead()
            for j in 0..<Self.d { wholeRow.weight.value.storage[row * Self.d + j] = poison }
            Self.expectSoftmaxError(wholeRow, parameter: "head.weight", row: row, computeGradients: computeGradients)
            let biased = Self.softmaxHead()
            biased.bias.value.storage[row] = poison
            Self.expectSoftmaxError(biased, parameter: "head.bias", row: row, computeGradients: computeGradients)
        }
    }
}
