#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif
import Testing
import MarginLosses
import TensorCore
import _TestSupport

/// Sub-center objective in Double: cos for class c = max over its k sub-centers.
func referenceSubcenterObjective(embeddings e: [Double], centers w: [Double], labels: [Int], n: Int, classes: Int,
                                 subcenters k: Int, d: Int, scale: Double, margin: any Margin) -> Double {
    let cosines = referenceCosines(embeddings: e, centers: w, n: n, k: classes * k, d: d)
    let logits = (0..<n).map { i in
        (0..<classes).map { c -> Double in
            let cos = (0..<k).map { cosines[i][c * k + $0] }.max()!
            return scale * (c == labels[i] ? margin.target(cosine: min(max(cos, -1), 1)).value : cos)
        }
    }
    return referenceCrossEntropy(logits, labels: labels, reduction: .mean)
}

@Suite struct SubcenterTests {
    @Test("sub-center ArcFace (k = 3): loss and gradients match Double finite differences; chunked = unchunked")
    func finiteDifferences() throws {
        let n = 4, classes = 5, k = 3, d = 6, scale = 8.0
        let margin = ArcFaceMargin(margin: 0.5)
        let centers = randomArray(classes * k * d, seed: 70)
        let embeddings = randomArray(n * d, seed: 71)
        let labels = [1, 4, 0, 1]
        let head = makeHead(k: classes, d: d, centers: centers, margin: margin, scale: scale, subcenters: k)
        #expect(head.centers.value.shape == [classes * k, d])
        let (out, gradient) = try run(head, embeddings, labels, d: d)
        let e = embeddings.asDouble, w = centers.asDouble
        let objective = { (e: [Double], w: [Double]) in
            referenceSubcenterObjective(embeddings: e, centers: w, labels: labels, n: n, classes: classes,
                                        subcenters: k, d: d, scale: scale, margin: margin)
        }
        let reference = objective(e, w)
        #expect(abs(out.loss - reference) < 1e-5 * max(1, reference), "\(out.loss) vs \(reference)")
        let numericE = numericalGradient(at: e) { objective($0, w) }
        let numericW = numericalGradient(at: w) { objective(e, $0) }
        let resultE = gradientComparison(out.embeddingGradient.storage, numericE, label: "sub-center ∂L/∂e")
        let resultW = gradientComparison(gradient, numericW, label: "sub-center ∂L/∂W")
        #expect(resultE.passed, "\(resultE)")
        #expect(resultW.passed, "\(resultW)")
        // Only each class's arg-max sub-center per sample receives gradient: some rows stay zero.
        let zeroRows = (0..<(classes * k)).filter { r in (0..<d).allSatisfy { gradient[r * d + $0] == 0 } }
        #expect(!zeroRows.isEmpty)
        for (chunk, tile, pass) in [(1, nil, nil), (2, nil, nil), (4, nil, nil), (4, 3, nil), (nil, 2, nil), (2, 1, nil),
                                    (nil, 1, 3), (4, 1, 2)] as [(Int?, Int?, Int?)] {
            let chunked = makeHead(k: classes, d: d, centers: centers, margin: margin, scale: scale, subcenters: k,
                                   chunkSize: chunk)
            chunked.tileSize = tile
            chunked.passTileSize = pass
            let (c, cg) = try run(chunked, embeddings, labels, d: d)
            #expect(abs(c.loss - out.loss) < 1e-5)
            let ce = roundOff(c.embeddingGradient.storage, out.embeddingGradient.storage, "C=\(chunk ?? 0) T=\(tile ?? 0) ∂e")
            let cw = roundOff(cg, gradient, "C=\(chunk ?? 0) T=\(tile ?? 0) ∂W")
            #expect(ce.passed, "\(ce)")
            #expect(cw.passed, "\(cw)")
        }
    }
}

@Suite struct PartialFCTests {
    static let n = 6, k = 40, d = 8

    @Test("sample rate 1.0 is the full head, bit for bit")
    func fullRate() throws {
        let centers = randomArray(Self.k * Self.d, seed: 80), embeddings = randomArray(Self.n * Self.d, seed: 81)
        let labels = [3, 3, 17, 39, 0, 22]
        let a = makeHead(k: Self.k, d: Self.d, centers: centers, margin: CosFaceMargin(margin: 0.35))
        let b = makeHead(k: Self.k, d: Self.d, centers: centers, margin: CosFaceMargin(margin: 0.35), sampleRate: 1)
        let (oa, ga) = try run(a, embeddings, labels, d: Self.d)
        let (ob, gb) = try run(b, embeddings, labels, d: Self.d)
        #expect(oa.loss == ob.loss && oa.embeddingGradient == ob.embeddingGradient && ga == gb)
        #expect(ob.updatedRows.isEmpty && b.lastSampledClasses == nil)
    }

    @Test("sampled step = the full head over the sampled classes; positives always kept; seeded; any chunk and tile",
          arguments: [(1, 5, nil), (2, 5, nil), (2, 5, 2), (1, nil, 3), (2, 7, 1)] as [(Int, Int?, Int?)])
    func sampled(subcenters: Int, chunk: Int?, tile: Int?) throws {
        let centers = randomArray(Self.k * subcenters * Self.d, seed: 82)
        let embeddings = randomArray(Self.n * Self.d, seed: 83)
        let labels = [3, 3, 17, 39, 0, 22]
        let margin = ArcFaceMargin(margin: 0.5)
        let head = makeHead(k: Self.k, d: Self.d, centers: centers, margin: margin, subcenters: subcenters,
                            sampleRate: 0.3, chunkSize: chunk)
        head.tileSize = tile
        head.passTileSize = 4   // ignored with sampling (gathered rows are processed one tile at a time)
        let (out, gradient) = try run(head, embeddings, labels, d: Self.d)
        let sampled = try #require(head.lastSampledClasses)
        #expect(sampled.count == 12 && Set(labels).isSubset(of: sampled) && sampled == sampled.sorted())
        #expect(out.updatedRows.count == 1 && out.updatedRows.first?.parameter === head.centers)
        #expect(out.updatedRows.first?.rows == sampled.flatMap { c in (0..<subcenters).map { c * subcenters + $0 } })
        // The same seed draws the same classes.
        let again = makeHead(k: Self.k, d: Self.d, centers: centers, margin: margin, subcenters: subcenters, sampleRate: 0.3)
        _ = try run(again, embeddings, labels, d: Self.d)
        #expect(again.lastSampledClasses == sampled)
        // Reference: a full head over the gathered centers, labels renumbered.
        let rowSize = subcenters * Self.d
        let gathered = sampled.flatMap { centers[($0 * rowSize)..<(($0 + 1) * rowSize)] }
        let restricted = makeHead(k: sampled.count, d: Self.d, centers: gathered, margin: margin, subcenters: subcenters)
        let (ref, refGradient) = try run(restricted, embeddings, labels.map { sampled.firstIndex(of: $0)! }, d: Self.d)
        #expect(abs(out.loss - ref.loss) < 1e-5)
        let e = roundOff(out.embeddingGradient.storage, ref.embeddingGradient.storage, "Partial FC ∂e")
        #expect(e.passed, "\(e)")
        var expected = [Float](repeating: 0, count: Self.k * rowSize)
        for (local, c) in sampled.enumerated() {
            for j in 0..<rowSize { expected[c * rowSize + j] = refGradient[local * rowSize + j] }
        }
        let w = roundOff(gradient, expected, "Partial FC ∂W (unsampled rows zero)")
        #expect(w.passed, "\(w)")
        // Evaluation (no gradients) uses every class and updates no rows.
        let eval = try head.loss(embeddings: Tensor(shape: [Self.n, Self.d], storage: embeddings), labels: labels,
                                 reduction: .mean, computeGradients: false)
        #expect(eval.loss >= out.loss - 1e-6)   // more negatives: a larger log-sum-exp
        #expect(eval.updatedRows.isEmpty && head.lastSampledClasses == sampled)
    }
}
