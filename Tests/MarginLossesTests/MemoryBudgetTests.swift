// A batch that the head's memory budget cannot hold, even one class per chunk, is a typed error
// from `MarginHead.loss` (it was a precondition trap), thrown before anything changes (issue 10).
import Testing
import MarginLosses
import TensorCore

@Suite struct MemoryBudgetTests {
    static let k = 12, d = 8

    static func embeddings(_ n: Int) -> Tensor {
        Tensor(shape: [n, d], storage: (0..<(n * d)).map { Float(($0 * 37) % 11) - 5 })
    }

    /// The bytes `HeadPlan` needs for a batch of `n` with one class per chunk: the budget below
    /// which it throws (from the plan itself, so the test does not restate the formula).
    static func minimumBudget(n: Int, classCount: Int) -> Int {
        do {
            _ = try HeadPlan(batchSize: n, classCount: classCount, subcenters: 1, embeddingDimension: d,
                             memoryBudgetBytes: 0, chunkSize: nil)
        } catch { if case let .budgetTooSmall(_, needed) = error { return needed } }
        Issue.record("a zero budget planned")
        return 0
    }

    @Test("loss: a batch over the budget throws .memoryBudgetTooSmall with the bytes needed; one that fits runs")
    func budgetTooSmall() throws {
        let minimum = Self.minimumBudget(n: 6, classCount: Self.k)
        let head = makeHead(k: Self.k, d: Self.d, centers: (0..<(Self.k * Self.d)).map { Float($0 % 7) - 3 },
                            margin: ArcFaceMargin(margin: 0.5), memoryBudgetBytes: minimum)
        // A batch of 6 fits (one class per chunk); a batch of 7 does not.
        _ = try head.loss(embeddings: Self.embeddings(6), labels: [0, 1, 2, 3, 4, 5], reduction: .mean, computeGradients: true)
        #expect(head.lastPlan?.chunkSize == 1)
        head.centers.zeroGradient()
        let needed = Self.minimumBudget(n: 7, classCount: Self.k)
        #expect(throws: MarginLossError.memoryBudgetTooSmall(batchSize: 7, budgetBytes: minimum, neededBytes: needed)) {
            _ = try head.loss(embeddings: Self.embeddings(7), labels: [0, 1, 2, 3, 4, 5, 6], reduction: .mean,
                              computeGradients: true)
        }
        #expect(head.centers.gradient.storage.allSatisfy { $0 == 0 })
        let message = MarginLossError.memoryBudgetTooSmall(batchSize: 7, budgetBytes: minimum, neededBytes: needed).description
        #expect(message.contains("memoryBudgetBytes") && message.contains("\(needed)") && message.contains("\(minimum)"))
    }

    @Test("with Partial FC the plan is checked for the sampled classes before anything is drawn")
    func sampledBudget() throws {
        // r = 0.5 of 12 classes: 6 in play. The budget holds a batch of 6 over 6 classes, not over 12.
        let minimum = Self.minimumBudget(n: 6, classCount: 6)
        #expect(minimum < Self.minimumBudget(n: 6, classCount: Self.k))
        var generator = SeededGenerator(seed: 3)
        let head = MarginHead(classCount: Self.k, embeddingDimension: Self.d, scale: 16, margin: CosFaceMargin(margin: 0.35),
                              sampleRate: 0.5, memoryBudgetBytes: minimum, generator: &generator)
        _ = try head.loss(embeddings: Self.embeddings(6), labels: [0, 1, 2, 0, 1, 2], reduction: .mean, computeGradients: true)
        #expect(head.lastSampledClasses?.count == 6)
        // 7 samples: over the budget; the sampling generator has not moved.
        let before = head.samplingGenerator
        #expect(throws: MarginLossError.self) {
            _ = try head.loss(embeddings: Self.embeddings(7), labels: [0, 1, 2, 0, 1, 2, 3], reduction: .mean,
                              computeGradients: true)
        }
        #expect(head.samplingGenerator == before)
    }

    @Test("HeadPlan.largestBatchSize is the boundary: N fits, N + 1 does not; 0 when nothing fits")
    func largestBatchSize() throws {
        for budget in [Self.minimumBudget(n: 1, classCount: 1000), 1 << 20, 3 << 20] {
            let largest = HeadPlan.largestBatchSize(classCount: 1000, subcenters: 1, embeddingDimension: Self.d,
                                                    memoryBudgetBytes: budget)
            #expect(largest >= 1)
            _ = try HeadPlan(batchSize: largest, classCount: 1000, subcenters: 1, embeddingDimension: Self.d,
                             memoryBudgetBytes: budget, chunkSize: nil)
            #expect(throws: HeadMemoryError.self) {
                try HeadPlan(batchSize: largest + 1, classCount: 1000, subcenters: 1, embeddingDimension: Self.d,
                             memoryBudgetBytes: budget, chunkSize: nil)
            }
        }
        #expect(HeadPlan.largestBatchSize(classCount: 1000, subcenters: 1, embeddingDimension: Self.d,
                                          memoryBudgetBytes: Self.minimumBudget(n: 1, classCount: 1000) - 1) == 0)
    }
}
