// The class-parallel head against the single-process head on the same global batch: one
// problem per case, the reference run, one rank's run and the comparison of that rank's part.
// Shared by the in-process tests (MarginLossesTests) and the tests under mpirun (MPITests).
import Collectives
import MarginLosses
import TensorCore

/// One head configuration and a global batch split over the ranks.
public struct ClassParallelCase: Sendable, CustomStringConvertible {
    public var name: String
    public var margin: any Margin
    public var subcenters = 1
    public var sampleRate = 1.0
    public var chunkSize: Int? = nil
    public var reduction = Reduction.mean
    public var gradientMode = MarginGradient.straightThrough
    public var classCount = 11
    public var embeddingDimension = 6
    public var scale = 16.0
    /// The rows of each rank, for a world of `rowCounts.count` ranks.
    public var rowCounts: [Int]

    public init(_ name: String, margin: any Margin, rowCounts: [Int]) {
        self.name = name
        self.margin = margin
        self.rowCounts = rowCounts
    }

    public var description: String { "\(name), P = \(rowCounts.count), rows \(rowCounts)" }
    public var batchSize: Int { rowCounts.reduce(0, +) }

    /// Centers `[K·k, D]` and embeddings `[N, D]` (every other row near its class center, so that
    /// margins and the sampled classes matter), labels spread over every rank's classes.
    public func problem() -> (centers: [Float], embeddings: [Float], labels: [Int]) {
        let (k, d, n) = (classCount, embeddingDimension, batchSize)
        let centers = randomArray(k * subcenters * d, seed: 400)
        var embeddings = randomArray(n * d, seed: 401)
        let labels = (0..<n).map { ($0 * 5 + 2) % k }
        for i in 0..<n where i % 2 == 0 {
            let row = labels[i] * subcenters + i % subcenters
            for j in 0..<d { embeddings[i * d + j] = 0.4 * embeddings[i * d + j] + centers[row * d + j] }
        }
        return (centers, embeddings, labels)
    }

    /// The single-process head of this case (centers of `problem()`).
    public func makeHead() -> MarginHead {
        var generator = SeededGenerator(seed: 402)
        let head = MarginHead(classCount: classCount, embeddingDimension: embeddingDimension, scale: scale, margin: margin,
                              gradientMode: gradientMode, subcenters: subcenters, sampleRate: sampleRate,
                              chunkSize: chunkSize, generator: &generator)
        head.centers.value = Tensor(shape: [classCount * subcenters, embeddingDimension], storage: problem().centers)
        return head
    }
}

/// What one run of a head gives.
public struct HeadRunResult: Sendable {
    public var loss: Double
    public var perSampleLoss: [Double]
    public var correctCount: Int
    /// `∂L/∂e` of the rows the run owns, `[rows, D]`.
    public var embeddingGradient: [Float]
    /// The center gradient of the rows the run holds.
    public var centerGradient: [Float]
    /// The center rows the run updated (Partial FC), in its own row numbering; nil: all.
    public var updatedRows: [Int]?
    public var sampledClasses: [Int]?
}

/// `MarginHead.loss` on the case's global batch (twice: the second step shows the sampling
/// generator advancing the same way), the output of the second step.
public func referenceRun(_ c: ClassParallelCase) throws -> HeadRunResult {
    let head = c.makeHead()
    let (_, embeddings, labels) = c.problem()
    let input = Tensor(shape: [c.batchSize, c.embeddingDimension], storage: embeddings)
    var output = try head.loss(embeddings: input, labels: labels, reduction: c.reduction, computeGradients: true)
    head.centers.zeroGradient()
    output = try head.loss(embeddings: input, labels: labels, reduction: c.reduction, computeGradients: true)
    return HeadRunResult(loss: output.loss, perSampleLoss: output.perSampleLoss, correctCount: output.correctCount,
                         embeddingGradient: output.embeddingGradient.storage, centerGradient: head.centers.gradient.storage,
                         updatedRows: output.updatedRows.first?.rows, sampledClasses: head.lastSampledClasses)
}

/// One rank's `ClassParallelMarginHead.loss` on its rows of the case's batch (two steps, as
/// `referenceRun`).
public func rankRun(_ c: ClassParallelCase, communicator: any Communicator) throws -> HeadRunResult {
    precondition(communicator.size == c.rowCounts.count, "rankRun: \(communicator.size) ranks for \(c)")
    let head = ClassParallelMarginHead(slicing: c.makeHead(), communicator: communicator)
    let (_, embeddings, labels) = c.problem()
    let d = c.embeddingDimension, rank = communicator.rank
    let first = c.rowCounts[..<rank].reduce(0, +), rows = c.rowCounts[rank]
    let input = Tensor(shape: [rows, d], storage: Array(embeddings[(first * d)..<((first + rows) * d)]))
    let localLabels = Array(labels[first..<(first + rows)])
    var output = try head.loss(embeddings: input, labels: localLabels, reduction: c.reduction, computeGradients: true)
    head.centers.zeroGradient()
    output = try head.loss(embeddings: input, labels: localLabels, reduction: c.reduction, computeGradients: true)
    return HeadRunResult(loss: output.loss, perSampleLoss: output.perSampleLoss, correctCount: output.correctCount,
                         embeddingGradient: output.embeddingGradient.storage, centerGradient: head.centers.gradient.storage,
                         updatedRows: output.updatedRows.first?.rows, sampledClasses: head.lastSampledClasses)
}

/// The differences between rank `rank`'s run and the reference beyond fp32 round-off
/// (`|a − b| ≤ 2e-6·max(max|b|, 1e-3) + 1e-4·|b|`; bit for bit with `exact`): the loss, the
/// per-sample losses and correct count of the global batch, this rank's rows of `∂L/∂e`, its
/// classes' center gradient and updated rows. Empty when they agree.
public func equivalenceIssues(_ c: ClassParallelCase, rank: Int, result: HeadRunResult, reference: HeadRunResult,
                              exact: Bool = false) -> [String] {
    let d = c.embeddingDimension, k = c.subcenters
    let partition = ClassPartition(classCount: c.classCount, worldSize: c.rowCounts.count)
    let slice = partition.classes(ofRank: rank)
    let first = c.rowCounts[..<rank].reduce(0, +), rows = c.rowCounts[rank]
    var issues = [String]()
    func check<T: BinaryFloatingPoint, U: BinaryFloatingPoint>(_ a: [T], _ b: [U], _ label: String) {
        if exact {
            if a.count != b.count || zip(a, b).contains(where: { Double($0) != Double($1) }) {
                issues.append("\(c), rank \(rank): \(label) differs from the single-process head")
            }
            return
        }
        let largest = b.map { abs(Double($0)) }.max() ?? 0
        let comparison = compare(a, b, atol: 2e-6 * max(largest, 1e-3), rtol: 1e-4, label: "\(c), rank \(rank): \(label)")
        if !comparison.passed { issues.append(comparison.description) }
    }
    check([result.loss], [reference.loss], "loss")
    check(result.perSampleLoss, reference.perSampleLoss, "per-sample loss")
    check(result.embeddingGradient, Array(reference.embeddingGradient[(first * d)..<((first + rows) * d)]), "∂L/∂e")
    check(result.centerGradient,
          Array(reference.centerGradient[(slice.lowerBound * k * d)..<(slice.upperBound * k * d)]), "∂L/∂W")
    if result.correctCount != reference.correctCount {
        issues.append("\(c), rank \(rank): correct count \(result.correctCount), single process \(reference.correctCount)")
    }
    if result.sampledClasses != reference.sampledClasses {
        issues.append("\(c), rank \(rank): sampled \(result.sampledClasses ?? []), single process \(reference.sampledClasses ?? [])")
    }
    if let referenceRows = reference.updatedRows {
        let expected = referenceRows.filter { ($0 / k) >= slice.lowerBound && ($0 / k) < slice.upperBound }
            .map { $0 - slice.lowerBound * k }
        if result.updatedRows != expected {
            issues.append("\(c), rank \(rank): updated rows \(result.updatedRows ?? []), expected \(expected)")
        }
    } else if result.updatedRows != nil {
        issues.append("\(c), rank \(rank): updated rows \(result.updatedRows!) without sampling")
    }
    return issues
}

/// The cases of the equivalence tests for a world of `rowCounts.count` ranks: every margin,
/// sub-centers, Partial FC sampling (with sub-centers too), chunks, `.sum`, the exact gradient.
public func classParallelCases(rowCounts: [Int]) -> [ClassParallelCase] {
    var cases = [
        ClassParallelCase("NormFace", margin: NormFaceMargin(), rowCounts: rowCounts),
        ClassParallelCase("CosFace", margin: CosFaceMargin(margin: 0.35), rowCounts: rowCounts),
        ClassParallelCase("ArcFace", margin: ArcFaceMargin(margin: 0.5), rowCounts: rowCounts),
        ClassParallelCase("SphereFace", margin: SphereFaceMargin(multiplier: 4), rowCounts: rowCounts),
        ClassParallelCase("combined", margin: CombinedMargin(angularMultiplier: 1, angularMargin: 0.3, cosineMargin: 0.2),
                          rowCounts: rowCounts),
    ]
    var exact = ClassParallelCase("ArcFace exact gradient", margin: ArcFaceMargin(margin: 0.5), rowCounts: rowCounts)
    exact.gradientMode = .exact
    var sum = ClassParallelCase("CosFace sum", margin: CosFaceMargin(margin: 0.35), rowCounts: rowCounts)
    sum.reduction = .sum
    var subcenters = ClassParallelCase("ArcFace k = 3", margin: ArcFaceMargin(margin: 0.5), rowCounts: rowCounts)
    subcenters.subcenters = 3
    var sampled = ClassParallelCase("ArcFace Partial FC 0.4", margin: ArcFaceMargin(margin: 0.5), rowCounts: rowCounts)
    sampled.sampleRate = 0.4
    var sampledSubcenters = ClassParallelCase("CosFace k = 2 Partial FC 0.5", margin: CosFaceMargin(margin: 0.35),
                                              rowCounts: rowCounts)
    sampledSubcenters.subcenters = 2
    sampledSubcenters.sampleRate = 0.5
    var chunked = ClassParallelCase("ArcFace chunks of 2", margin: ArcFaceMargin(margin: 0.5), rowCounts: rowCounts)
    chunked.chunkSize = 2
    var sampledChunked = ClassParallelCase("NormFace Partial FC 0.6 chunks of 1", margin: NormFaceMargin(), rowCounts: rowCounts)
    sampledChunked.sampleRate = 0.6
    sampledChunked.chunkSize = 1
    cases += [exact, sum, subcenters, sampled, sampledSubcenters, chunked, sampledChunked]
    return cases
}
