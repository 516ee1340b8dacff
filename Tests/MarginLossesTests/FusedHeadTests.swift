#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif
import Testing
import MarginLosses
import TensorCore
import _TestSupport

/// A head over given centers, with engine options.
func makeHead(k: Int, d: Int, centers: [Float], margin: any Margin, scale: Double = 32, subcenters: Int = 1,
              sampleRate: Double = 1, chunkSize: Int? = nil, memoryBudgetBytes: Int = MarginHead.defaultMemoryBudgetBytes,
              gradientMode: MarginGradient = .exact) -> MarginHead {
    var generator = SeededGenerator(seed: 5)
    let head = MarginHead(classCount: k, embeddingDimension: d, scale: scale, margin: margin, gradientMode: gradientMode,
                          subcenters: subcenters, sampleRate: sampleRate, memoryBudgetBytes: memoryBudgetBytes,
                          chunkSize: chunkSize, generator: &generator)
    head.centers.value = Tensor(shape: [k * subcenters, d], storage: centers)
    return head
}

/// Runs a head with gradients and returns the output and the center gradient.
func run(_ head: MarginHead, _ embeddings: [Float], _ labels: [Int], d: Int,
         reduction: Reduction = .mean) throws -> (HeadOutput, [Float]) {
    head.centers.zeroGradient()
    let out = try head.loss(embeddings: Tensor(shape: [labels.count, d], storage: embeddings), labels: labels,
                            reduction: reduction, computeGradients: true)
    return (out, head.centers.gradient.storage)
}

/// fp32 round-off: values of order 1 agree to a few ulp of the largest element.
func roundOff<T: BinaryFloatingPoint, U: BinaryFloatingPoint>(_ a: [T], _ b: [U], _ label: String) -> Comparison {
    let largest = b.map { abs(Double($0)) }.max() ?? 0
    return compare(a, b, atol: 2e-6 * max(largest, 1e-3), rtol: 1e-4, label: label)
}

@Suite struct FusedHeadTests {
    static let n = 9, k = 37, d = 24

    /// Embeddings of which some lie close to their class center (so that the margin matters).
    static func problem(seed: UInt64) -> (embeddings: [Float], centers: [Float], labels: [Int]) {
        let centers = randomArray(k * d, seed: seed)
        var embeddings = randomArray(n * d, seed: seed + 1)
        let labels = (0..<n).map { ($0 * 7 + 3) % k }
        for i in 0..<n where i % 2 == 0 {
            for j in 0..<d { embeddings[i * d + j] = 0.3 * embeddings[i * d + j] + centers[labels[i] * d + j] }
        }
        return (embeddings, centers, labels)
    }

    @Test("fused path = reference path (fp32 round-off), every margin, mean and sum", arguments: MarginCase.all)
    func fusedEqualsReference(_ testCase: MarginCase) throws {
        let p = Self.problem(seed: 40)
        for reduction in [Reduction.mean, .sum] {
            let fused = makeHead(k: Self.k, d: Self.d, centers: p.centers, margin: testCase.margin)
            let (out, gradient) = try run(fused, p.embeddings, p.labels, d: Self.d, reduction: reduction)
            #expect(fused.lastPlan?.chunkCount == 1)
            let reference = makeHead(k: Self.k, d: Self.d, centers: p.centers, margin: testCase.margin)
            let ref = try reference.referenceLoss(embeddings: Tensor(shape: [Self.n, Self.d], storage: p.embeddings),
                                                  labels: p.labels, reduction: reduction, computeGradients: true)
            #expect(abs(out.loss - ref.loss) <= 1e-5 * max(1, abs(ref.loss)), "\(testCase) loss \(out.loss) vs \(ref.loss)")
            #expect(out.correctCount == ref.correctCount)
            let perSample = roundOff(out.perSampleLoss, ref.perSampleLoss, "\(testCase) per-sample")
            let e = roundOff(out.embeddingGradient.storage, ref.embeddingGradient.storage, "\(testCase) ∂e")
            let w = roundOff(gradient, reference.centers.gradient.storage, "\(testCase) ∂W")
            #expect(perSample.passed, "\(perSample)")
            #expect(e.passed, "\(e)")
            #expect(w.passed, "\(w)")
        }
    }

    @Test("chunked = unchunked (fp32 round-off) for chunk sizes 1, 5, 10, 36, every margin", arguments: MarginCase.all)
    func chunkedEqualsUnchunked(_ testCase: MarginCase) throws {
        let p = Self.problem(seed: 41)
        let whole = makeHead(k: Self.k, d: Self.d, centers: p.centers, margin: testCase.margin)
        let (expected, expectedW) = try run(whole, p.embeddings, p.labels, d: Self.d)
        for chunk in [1, 5, 10, 36] {
            let head = makeHead(k: Self.k, d: Self.d, centers: p.centers, margin: testCase.margin, chunkSize: chunk)
            let (out, gradient) = try run(head, p.embeddings, p.labels, d: Self.d)
            #expect(head.lastPlan?.chunkCount == (Self.k + chunk - 1) / chunk)
            #expect(abs(out.loss - expected.loss) <= 1e-5 * max(1, abs(expected.loss)), "chunk \(chunk) loss")
            #expect(out.correctCount == expected.correctCount)
            let e = roundOff(out.embeddingGradient.storage, expected.embeddingGradient.storage, "\(testCase) C=\(chunk) ∂e")
            let w = roundOff(gradient, expectedW, "\(testCase) C=\(chunk) ∂W")
            #expect(e.passed, "\(e)")
            #expect(w.passed, "\(w)")
        }
    }

    @Test("cache tiles, passes and chunks that do not divide K (tiles 1, 4, 7; passes 3, 5, 9, 23; chunks 10, 36, K) = reference, every margin",
          arguments: MarginCase.all)
    func tiledEqualsReference(_ testCase: MarginCase) throws {
        let p = Self.problem(seed: 43)
        let reference = makeHead(k: Self.k, d: Self.d, centers: p.centers, margin: testCase.margin)
        let ref = try reference.referenceLoss(embeddings: Tensor(shape: [Self.n, Self.d], storage: p.embeddings),
                                              labels: p.labels, reduction: .mean, computeGradients: true)
        let cases: [(Int?, Int, Int?)] = [(nil, 1, nil), (nil, 4, nil), (10, 4, nil), (36, 7, nil), (10, 10, nil),
                                          (1, 1, nil), (nil, 4, 9), (nil, 1, 5), (36, 7, 23), (10, 4, 9), (nil, 7, 3)]
        for (chunk, tile, pass) in cases {
            let head = makeHead(k: Self.k, d: Self.d, centers: p.centers, margin: testCase.margin, chunkSize: chunk)
            head.tileSize = tile
            head.passTileSize = pass
            let (out, gradient) = try run(head, p.embeddings, p.labels, d: Self.d)
            let c = chunk ?? Self.k
            #expect(head.lastPlan?.tileSize == min(tile, c))
            if let pass { #expect(head.lastPlan?.passTileSize == min(max(pass, min(tile, c)), c)) }
            #expect(abs(out.loss - ref.loss) <= 1e-5 * max(1, abs(ref.loss)), "C=\(chunk ?? 0) T=\(tile) loss")
            #expect(out.correctCount == ref.correctCount)
            let e = roundOff(out.embeddingGradient.storage, ref.embeddingGradient.storage, "\(testCase) C=\(chunk ?? 0) T=\(tile) P=\(pass ?? 0) ∂e")
            let w = roundOff(gradient, reference.centers.gradient.storage, "\(testCase) C=\(chunk ?? 0) T=\(tile) P=\(pass ?? 0) ∂W")
            #expect(e.passed, "\(e)")
            #expect(w.passed, "\(w)")
        }
    }

    @Test("K = 1: the only class is every sample's target; no negatives, zero gradient, loss 0")
    func singleClass() throws {
        let d = 5
        let centers = randomArray(d, seed: 44), embeddings = randomArray(3 * d, seed: 45)
        for chunk in [nil, 1] as [Int?] {
            let head = makeHead(k: 1, d: d, centers: centers, margin: ArcFaceMargin(margin: 0.5), chunkSize: chunk)
            let (out, gradient) = try run(head, embeddings, [0, 0, 0], d: d)
            let reference = makeHead(k: 1, d: d, centers: centers, margin: ArcFaceMargin(margin: 0.5))
            let ref = try reference.referenceLoss(embeddings: Tensor(shape: [3, d], storage: embeddings), labels: [0, 0, 0],
                                                  reduction: .mean, computeGradients: true)
            #expect(out.loss == 0 && ref.loss == 0 && out.correctCount == 3)
            #expect(gradient.allSatisfy { $0 == 0 } && out.embeddingGradient.storage.allSatisfy { $0 == 0 })
        }
    }

    @Test("the memory budget chooses the plan; an impossible budget or state is a typed error")
    func plans() throws {
        // A chunk's class costs its N logits (4·N bytes); fixed: ê, ∂ê, ∂e (3·N·D floats), row
        // statistics (16·N), the inverse norms of all K rows, one tile T of gathered centers and
        // its gradient (2·T·D), the row maxima of each tile of the chunk C (N·⌈C/T⌉).
        let n = 8, d = 16, k = 1000
        let perClass = 4 * n
        func fixed(_ tile: Int, _ chunk: Int = k) -> Int {
            4 * (3 * n * d + 16 * n + k + 2 * tile * d + n * ((chunk + tile - 1) / tile))
        }
        let whole = try HeadPlan(batchSize: n, classCount: k, subcenters: 1, embeddingDimension: d,
                                 memoryBudgetBytes: 1 << 30, chunkSize: nil)
        // Default tile: 2²⁰/D = 65,536 rows, clamped to K.
        #expect(whole.chunkCount == 1 && whole.tileSize == k && whole.extraBytes == fixed(k) + k * perClass)
        let tightBudget = fixed(64) + 100 * perClass + 7
        let tight = try HeadPlan(batchSize: n, classCount: k, subcenters: 1, embeddingDimension: d,
                                 memoryBudgetBytes: tightBudget, chunkSize: nil, tileSize: 64)
        #expect(tight.chunkSize == 100 && tight.chunkCount == 10 && tight.tileSize == 64)
        // Room for 400 classes: 3 chunks, made equal (334, 334, 332) rather than 400, 400, 200.
        let balanced = try HeadPlan(batchSize: n, classCount: k, subcenters: 1, embeddingDimension: d,
                                    memoryBudgetBytes: fixed(64) + 400 * perClass, chunkSize: nil, tileSize: 64)
        #expect(balanced.chunkSize == 334 && balanced.chunkCount == 3)
        #expect(tight.extraBytes == fixed(64, 100) + 100 * perClass && tight.extraBytes <= tightBudget)
        #expect(throws: HeadMemoryError.budgetTooSmall(budgetBytes: fixed(64), neededBytes: fixed(64) + perClass)) {
            try HeadPlan(batchSize: n, classCount: k, subcenters: 1, embeddingDimension: d, memoryBudgetBytes: fixed(64),
                         chunkSize: nil, tileSize: 64)
        }
        // A tile never exceeds its chunk.
        let small = try HeadPlan(batchSize: n, classCount: k, subcenters: 1, embeddingDimension: d,
                                 memoryBudgetBytes: 1 << 30, chunkSize: 10, tileSize: 64)
        #expect(small.chunkSize == 10 && small.tileSize == 10 && small.chunkCount == 100)
        // Default pass: 4 tiles, balanced over the chunk (1000 / 256 → 4 passes of 250); never
        // below a tile, never above the chunk.
        #expect(HeadPlan.defaultPassTiles == 4)
        #expect(try HeadPlan(batchSize: n, classCount: k, subcenters: 1, embeddingDimension: d,
                             memoryBudgetBytes: 1 << 30, chunkSize: nil, tileSize: 64).passTileSize == 250)
        #expect(try HeadPlan(batchSize: n, classCount: k, subcenters: 1, embeddingDimension: d,
                             memoryBudgetBytes: 1 << 30, chunkSize: nil, tileSize: 300).passTileSize == 1000)
        #expect(try HeadPlan(batchSize: n, classCount: k, subcenters: 1, embeddingDimension: d, memoryBudgetBytes: 1 << 30,
                             chunkSize: nil, tileSize: 64, passTileSize: 10).passTileSize == 64)
        #expect(small.passTileSize == 10)
        // K = 10⁶, D = 512: state 3·10⁶·512·4 = 6,144,000,000 bytes; does not fit in 4 GiB.
        var generator = SeededGenerator(seed: 1)
        do {
            _ = try MarginHead(checkingMemoryFor: 512, classCount: 1_000_000, embeddingDimension: 512, scale: 64,
                               margin: ArcFaceMargin(margin: 0.5), availableBytes: 4 << 30, generator: &generator)
            Issue.record("expected stateDoesNotFit")
        } catch let error {
            guard case let .stateDoesNotFit(needed, available, _, _, _) = error else { Issue.record("\(error)"); return }
            #expect(needed > 6_144_000_000 && needed < 6_144_000_000 + (1 << 30) && available == 4 << 30)
            #expect(error.description.contains("GiB"))
        }
        let (plan, needed) = try MarginHead.checkMemory(batchSize: 512, classCount: 1_000_000, embeddingDimension: 512,
                                                        availableBytes: 24 << 30)
        #expect(plan.chunkCount > 1 && plan.extraBytes <= MarginHead.defaultMemoryBudgetBytes && needed < 8 << 30)
        // A small budget makes the head chunk by itself, with the same results.
        let p = Self.problem(seed: 42)
        let budget = makeHead(k: Self.k, d: Self.d, centers: p.centers, margin: ArcFaceMargin(margin: 0.5),
                              memoryBudgetBytes: 4 * (3 * Self.n * Self.d + 16 * Self.n + Self.k + 2 * Self.k * Self.d
                                                      + Self.n) + 8 * 4 * Self.n)
        let (out, _) = try run(budget, p.embeddings, p.labels, d: Self.d)
        #expect(budget.lastPlan?.chunkSize == 8)
        let (expected, _) = try run(makeHead(k: Self.k, d: Self.d, centers: p.centers, margin: ArcFaceMargin(margin: 0.5)),
                                    p.embeddings, p.labels, d: Self.d)
        #expect(abs(out.loss - expected.loss) < 1e-5)
    }
}
