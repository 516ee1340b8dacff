import Collectives
import MarginLosses
import TensorCore
import Testing
import _TestSupport

@Suite struct ClassPartitionTests {
    @Test("rank r holds ⌊K/P⌋ classes, one more for r < K mod P, consecutive from rank 0; owner inverts it")
    func slices() {
        #expect((0..<3).map { ClassPartition(classCount: 11, worldSize: 3).classes(ofRank: $0) } == [0..<4, 4..<8, 8..<11])
        #expect((0..<4).map { ClassPartition(classCount: 8, worldSize: 4).classes(ofRank: $0) } == [0..<2, 2..<4, 4..<6, 6..<8])
        #expect((0..<3).map { ClassPartition(classCount: 2, worldSize: 3).classes(ofRank: $0) } == [0..<1, 1..<2, 2..<2])
        for (k, p) in [(11, 3), (8, 4), (2, 3), (1, 1), (100, 7), (5, 5)] {
            let partition = ClassPartition(classCount: k, worldSize: p)
            var next = 0
            for r in 0..<p {
                let slice = partition.classes(ofRank: r)
                #expect(slice.lowerBound == next && slice.count >= k / p && slice.count <= k / p + 1)
                for c in slice { #expect(partition.owner(ofClass: c) == r, "K = \(k), P = \(p), class \(c)") }
                next = slice.upperBound
            }
            #expect(next == k && partition.largestSliceCount == partition.classes(ofRank: 0).count)
        }
    }
}

/// Every rank's part of the result against the single-process head, and the ranks' losses equal
/// bit for bit.
private func check(_ c: ClassParallelCase) throws {
    let reference = try referenceRun(c)
    let results = runRanks(c.rowCounts.count) { communicator in try rankRun(c, communicator: communicator) }
    var losses = [Double]()
    for (rank, result) in results.enumerated() {
        let run = try result.get()
        losses.append(run.loss)
        let issues = equivalenceIssues(c, rank: rank, result: run, reference: reference)
        #expect(issues.isEmpty, "\(issues.joined(separator: "\n"))")
    }
    #expect(Set(losses.map(\.bitPattern)).count == 1, "\(c): the ranks' losses differ: \(losses)")
}

@Suite struct ClassParallelHeadTests {
    @Test("P = 1: bit for bit the single-process head (every margin, sub-centers, Partial FC, chunks)")
    func singleProcess() throws {
        for c in classParallelCases(rowCounts: [7]) {
            let reference = try referenceRun(c)
            let run = try rankRun(c, communicator: SingleProcessCommunicator())
            let issues = equivalenceIssues(c, rank: 0, result: run, reference: reference, exact: true)
            #expect(issues.isEmpty, "\(issues.joined(separator: "\n"))")
        }
    }

    @Test("P = 2 and 3 (one rank without samples): the single-process head to fp32 round-off",
          arguments: [[3, 4], [2, 0, 5]])
    func equivalence(rowCounts: [Int]) throws {
        for c in classParallelCases(rowCounts: rowCounts) { try check(c) }
    }

    @Test("K < P: ranks without classes take part; P = 4 over 3 classes, with and without sampling")
    func emptySlices() throws {
        var plain = ClassParallelCase("ArcFace K = 3", margin: ArcFaceMargin(margin: 0.5), rowCounts: [2, 1, 3, 1])
        plain.classCount = 3
        var sampled = plain
        sampled.name = "ArcFace K = 3 Partial FC 0.34"
        sampled.sampleRate = 0.34
        try check(plain)
        try check(sampled)
    }

    @Test("accuracy: a tie between classes on two ranks goes to the lower class, as in one process")
    func tie() throws {
        // K = 4 over 2 ranks ([0, 1], [2, 3]); class 2's center equals class 0's. A sample on
        // that center labelled 2 ties with class 0 and is wrong; labelled 0 it is right.
        let d = 4
        var tied = randomArray(4 * d, seed: 90)
        for j in 0..<d { tied[2 * d + j] = tied[j] }
        let centers = tied
        let embeddings = Array(centers[0..<d]) + Array(centers[0..<d]) + randomArray(d, seed: 91)
        let labels = [2, 0, 3]
        let reference = try Self.tieHead(centers, d: d).loss(embeddings: Tensor(shape: [3, d], storage: embeddings), labels: labels,
                                        reduction: .mean, computeGradients: false)
        let results = runRanks(2) { communicator -> Int in
            let rows = communicator.rank == 0 ? 0..<1 : 1..<3
            let local = ClassParallelMarginHead(slicing: Self.tieHead(centers, d: d), communicator: communicator)
            return try local.loss(embeddings: Tensor(shape: [rows.count, d], storage: Array(embeddings[(rows.lowerBound * d)..<(rows.upperBound * d)])),
                                  labels: Array(labels[rows]), reduction: .mean, computeGradients: false).correctCount
        }
        #expect(reference.correctCount >= 1 && reference.correctCount <= 2)
        for result in results { #expect(try result.get() == reference.correctCount) }
    }

    static func tieHead(_ centers: [Float], d: Int) -> MarginHead {
        var generator = SeededGenerator(seed: 1)
        let head = MarginHead(classCount: 4, embeddingDimension: d, scale: 8, margin: CosFaceMargin(margin: 0.2),
                              generator: &generator)
        head.centers.value = Tensor(shape: [4, d], storage: centers)
        return head
    }

    @Test("the drawing initializer keeps exactly its slice of MarginHead's centers and the same sampling seed")
    func initializer() throws {
        var generator = SeededGenerator(seed: 33)
        let full = MarginHead(classCount: 7, embeddingDimension: 5, scale: 32, margin: ArcFaceMargin(margin: 0.5),
                              subcenters: 2, sampleRate: 0.5, generator: &generator)
        let results = runRanks(3) { communicator -> (storage: [Float], generator: SeededGenerator, name: String) in
            var generator = SeededGenerator(seed: 33)
            let head = ClassParallelMarginHead(classCount: 7, embeddingDimension: 5, scale: 32, margin: ArcFaceMargin(margin: 0.5),
                                               subcenters: 2, sampleRate: 0.5, communicator: communicator, generator: &generator)
            return (head.centers.value.storage, head.samplingGenerator, head.centers.name)
        }
        let partition = ClassPartition(classCount: 7, worldSize: 3)
        for (rank, result) in results.enumerated() {
            let slice = partition.classes(ofRank: rank)
            let (storage, sampling, name) = try result.get()
            #expect(storage == Array(full.centers.value.storage[(slice.lowerBound * 10)..<(slice.upperBound * 10)]))
            #expect(sampling == full.samplingGenerator && name == full.centers.name)
        }
    }

    @Test("a bad batch or center on one rank throws the same error on every rank (global sample and row)")
    func errors() throws {
        let c = ClassParallelCase("errors", margin: ArcFaceMargin(margin: 0.5), rowCounts: [3, 4])
        let (_, embeddings, labels) = c.problem()
        let d = c.embeddingDimension
        func run(label: Int? = nil, nanEmbedding: Bool = false, nanCenterRow: Int? = nil,
                 dropLabel: Bool = false) -> [MarginLossError?] {
            runRanks(2) { communicator -> MarginLossError? in
                let head = ClassParallelMarginHead(slicing: c.makeHead(), communicator: communicator)
                let rows = communicator.rank == 0 ? 0..<3 : 3..<7
                var input = Array(embeddings[(rows.lowerBound * d)..<(rows.upperBound * d)])
                var local = Array(labels[rows])
                if communicator.rank == 1 {
                    if let label { local[2] = label }
                    if nanEmbedding { input[1 * d + 2] = .nan }
                    if dropLabel { local.removeLast() }
                    if let row = nanCenterRow { head.centers.value.storage[(row - head.localClasses.lowerBound) * d] = .infinity }
                }
                do {
                    _ = try head.loss(embeddings: Tensor(shape: [rows.count, d], storage: input), labels: local,
                                      reduction: .mean, computeGradients: true)
                    return nil
                } catch let error as MarginLossError {
                    #expect(head.centers.gradient.storage.allSatisfy { $0 == 0 }, "a gradient was touched before \(error)")
                    return error
                } catch {
                    Issue.record("unexpected \(error)")
                    return nil
                }
            }.map { try! $0.get() }
        }
        #expect(run(label: 11) == [.labelOutOfRange(sample: 5, label: 11, classCount: 11), .labelOutOfRange(sample: 5, label: 11, classCount: 11)])
        #expect(run(nanEmbedding: true) == [.nonFiniteEmbedding(sample: 4), .nonFiniteEmbedding(sample: 4)])
        #expect(run(dropLabel: true) == [.batchSizeMismatch(embeddings: 4, labels: 3), .batchSizeMismatch(embeddings: 4, labels: 3)])
        // Class 9 is on rank 1 (classes 6..<11): its row is reported on both ranks.
        #expect(run(nanCenterRow: 9) == [.nonFiniteParameter(parameter: "head.centers", row: 9),
                                         .nonFiniteParameter(parameter: "head.centers", row: 9)])
        #expect(run() == [nil, nil])
    }

    @Test("a rank that does not take part: the others throw .communication(.timedOut) naming the collective")
    func timeout() throws {
        let c = ClassParallelCase("timeout", margin: ArcFaceMargin(margin: 0.5), rowCounts: [3, 4])
        let results = runRanks(2, timeout: .milliseconds(150)) { communicator -> MarginLossError? in
            guard communicator.rank == 0 else { return nil }
            do { _ = try rankRun(c, communicator: communicator) } catch let error as MarginLossError { return error }
            return nil
        }
        #expect(try results[0].get() == .communication(.timedOut(operation: .allGather, seconds: 0.15)))
    }

    @Test("checkMemory knows P: a machine too small for the whole head holds a quarter of it per rank")
    func memory() throws {
        let (k, d, n) = (1_000_000, 512, 128)
        let whole = try ClassParallelMarginHead.checkMemory(batchSize: n, worldSize: 1, classCount: k, embeddingDimension: d,
                                                            availableBytes: .max).neededBytes
        let quarter = try ClassParallelMarginHead.checkMemory(batchSize: n / 4, worldSize: 4, classCount: k, embeddingDimension: d,
                                                              availableBytes: .max).neededBytes
        #expect(quarter < whole / 3, "\(quarter) vs \(whole)")
        let available = (quarter + whole) / 2
        #expect(throws: HeadMemoryError.self) {
            try ClassParallelMarginHead.checkMemory(batchSize: n, worldSize: 1, classCount: k, embeddingDimension: d,
                                                    availableBytes: available)
        }
        let (plan, _) = try ClassParallelMarginHead.checkMemory(batchSize: n / 4, worldSize: 4, classCount: k,
                                                                embeddingDimension: d, availableBytes: available)
        // The plan is for the global batch over one rank's classes.
        #expect(plan == (try HeadPlan(batchSize: n, classCount: k / 4, subcenters: 1, embeddingDimension: d,
                                      memoryBudgetBytes: MarginHead.defaultMemoryBudgetBytes, chunkSize: nil)))
        // The single-process numbers, for P = 1, agree with MarginHead's up to the gathered batch.
        let single = try MarginHead.checkMemory(batchSize: n, classCount: k, embeddingDimension: d, availableBytes: .max)
        #expect(whole == single.neededBytes + 2 * 4 * n * d)
    }

    @Test("a budget too small for one rank's plan throws on every rank and leaves the sampling generator as it was")
    func budget() throws {
        var budgetCase = ClassParallelCase("budget", margin: ArcFaceMargin(margin: 0.5), rowCounts: [3, 4])
        budgetCase.sampleRate = 0.5
        let c = budgetCase
        let results = runRanks(2) { communicator -> (MarginLossError?, Bool) in
            let head = ClassParallelMarginHead(slicing: c.makeHead(), communicator: communicator)
            head.memoryBudgetBytes = 64
            let before = head.samplingGenerator
            let d = c.embeddingDimension, rows = communicator.rank == 0 ? 3 : 4
            do {
                _ = try head.loss(embeddings: Tensor(shape: [rows, d], storage: randomArray(rows * d, seed: 5)),
                                  labels: [Int](repeating: communicator.rank, count: rows), reduction: .mean, computeGradients: true)
                return (nil, head.samplingGenerator == before)
            } catch let error as MarginLossError {
                return (error, head.samplingGenerator == before)
            } catch {
                Issue.record("unexpected \(error)")
                return (nil, false)
            }
        }
        for result in results {
            let (error, unchanged) = try result.get()
            guard case let .memoryBudgetTooSmall(batchSize, budgetBytes, _)? = error, batchSize == 7, budgetBytes == 64 else {
                Issue.record("expected .memoryBudgetTooSmall, got \(String(describing: error))")
                continue
            }
            #expect(unchanged)
        }
    }
}
