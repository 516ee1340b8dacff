// The engine of one rank of the class-parallel head (`ClassParallelMarginHead`): the forward
// over this rank's classes, three small collectives that turn the per-row local statistics
// into the global ones, the losses (identical on every rank), and the backward over this
// rank's classes. The forward and backward are those of `MarginEngine`, unchanged; only the
// statistics between them are combined.
//
// Per sample i of the global batch (N rows, every rank sees all of them), rank r's forward
// leaves (`ForwardStatistics`):
//   m_r   the largest non-target cosine over its classes (−∞ if none), S_r = Σ exp(s·(cos − m_r))
//   c_r   the target cosine if r holds the label (else 0), b_r the best cosine, a_r its class
// Combined (exact max, sums in Double):
//   MAX:  m = max_r m_r, b = max_r b_r, and −(first non-finite center row) if any rank found one
//   SUM:  S = Σ_r S_r·exp(s·(m_r − m)),  c_y = Σ_r c_r,  the accuracy vote (below)
// Then ℓ, Z, the row factors and target gradients are `sampleLosses` of (m, S, c_y), computed
// by every rank from the same numbers, so every rank has the same losses bit for bit. With
// P = 1 every combination is the identity (exp(0) = 1, x + 0 = x): the result is the
// single-process engine's, bit for bit.
//
// The accuracy vote: the margin-free prediction is the lowest class index with the best cosine
// b. Ranks hold ascending classes, so it lies on the lowest rank whose b_r = b. The rank o
// holding the label votes 1 if its own arg-max is the label and b_o = b; every rank r < o with
// b_r = b votes −2 (a lower class ties); others vote 0. The sample is correct iff the votes sum
// to exactly 1.
import Collectives
#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// What one rank knows of the class partition for combining its statistics.
struct ClassParallelContext {
    var communicator: any Communicator
    /// The global batch's labels `[N]` (global classes) and the rank holding each.
    var labels: [Int]
    var owners: [Int]
    /// This rank's first global class, and (Partial FC) its local classes in play, slice-local
    /// and ascending (nil: the whole slice).
    var classStart: Int
    var localClasses: [Int]?
    /// The global row of this rank's first center row (`classStart·k`), for errors.
    var firstRow: Int
}

/// A failure of the class-parallel engine, the same on every rank.
enum ClassParallelEngineError: Error {
    /// The lowest non-finite center row in play of any rank (global row `c·k + s`).
    case nonFiniteCenterRow(Int)
    case communication(CommunicatorError)
}

/// One rank's engine run (see the file header). `batch` is nil when this rank has no class in
/// play (the last ranks when `K < P`, or no sampled class in its slice); it still takes part in
/// every collective. `∂ê` of the result is this rank's contribution over its classes, `[N, D]`;
/// the caller sums it over the ranks.
func runClassParallelEngine(_ batch: EngineBatch?, rows n: Int, d: Int, loss settings: EngineLoss,
                            computeGradients: Bool, centerGradient: inout [Float], scratch: inout HeadScratch,
                            context: ClassParallelContext) throws(ClassParallelEngineError) -> EngineResult {
    var engine = batch.map { MarginEngine(batch: $0, scale: settings.scale, scratch: &scratch) }
    defer { if engine != nil { engine!.returnBuffers(to: &scratch) } }
    var local = ForwardStatistics.empty(rows: n)
    var failedRow: Int?
    if engine != nil {
        do {
            local = try engine!.forward(keepsLastChunk: computeGradients)
        } catch {
            failedRow = context.firstRow + error.row
        }
    }
    let merged: CombinedStatistics
    do {
        merged = try combineStatistics(local, failedRow: failedRow, scale: settings.scale, context: context)
    } catch {
        throw .communication(error)
    }
    if let row = merged.failedRow { throw .nonFiniteCenterRow(row) }
    let labels = batch?.labels ?? [Int](repeating: -1, count: n)
    var losses = sampleLosses(merged.statistics, labels: labels, settings: settings)
    losses.summary.correctCount = merged.correct.count(where: { $0 })
    guard computeGradients else { return EngineResult(summary: losses.summary, unitEmbeddingGradient: []) }
    let unitEmbeddingGradient = engine != nil
        ? engine!.backward(merged.statistics, losses, centerGradient: &centerGradient)
        : [Float](repeating: 0, count: n * d)
    return EngineResult(summary: losses.summary, unitEmbeddingGradient: unitEmbeddingGradient)
}

/// The statistics combined over the ranks, each sample's correctness, and the lowest
/// non-finite center row any rank found.
private struct CombinedStatistics {
    var statistics: ForwardStatistics
    var correct: [Bool]
    /// The lowest non-finite center row in play of any rank (then the rest is not combined).
    var failedRow: Int?
}

private func combineStatistics(_ local: ForwardStatistics, failedRow: Int?, scale: Double,
                               context: ClassParallelContext) throws(CommunicatorError) -> CombinedStatistics {
    let n = context.labels.count
    let communicator = context.communicator
    // MAX: the non-target maxima, the best cosines, a failed row as −row.
    var maxima = [Double](repeating: 0, count: 2 * n + 1)
    for i in 0..<n {
        maxima[i] = Double(local.referenceCosine[i])
        maxima[n + i] = Double(local.bestCosine[i])
    }
    maxima[2 * n] = failedRow.map { -Double($0) } ?? -.infinity
    try communicator.allReduce(&maxima, .max)
    var combined = local
    guard maxima[2 * n] == -.infinity else {
        return CombinedStatistics(statistics: local, correct: [], failedRow: Int(-maxima[2 * n]))
    }
    // SUM: the non-target sums rescaled to the global maximum, the target cosines, the votes.
    var sums = [Double](repeating: 0, count: 3 * n)
    for i in 0..<n {
        let globalReference = maxima[i]
        let others = local.others[i]
        if others.sum > 0 { sums[i] = others.sum * exp(others.maximum - scale * globalReference) }
        sums[n + i] = Double(local.targetCosine[i])
        sums[2 * n + i] = vote(sample: i, local: local, best: maxima[n + i], context: context)
    }
    try communicator.allReduce(&sums, .sum)
    var correct = [Bool](repeating: false, count: n)
    for i in 0..<n {
        let reference = Float(maxima[i])
        combined.referenceCosine[i] = reference
        combined.others[i] = reference > -.infinity
            ? LogSumExp(maximum: scale * Double(reference), sum: sums[i]) : LogSumExp()
        combined.targetCosine[i] = Float(sums[n + i])
        combined.bestCosine[i] = Float(maxima[n + i])
        correct[i] = sums[2 * n + i] == 1
    }
    return CombinedStatistics(statistics: combined, correct: correct, failedRow: nil)
}

/// This rank's vote on whether sample `i`'s margin-free prediction is its label (see the file
/// header).
private func vote(sample i: Int, local: ForwardStatistics, best: Double, context: ClassParallelContext) -> Double {
    let rank = context.communicator.rank, owner = context.owners[i]
    guard local.bestCosine[i] > -.infinity, Double(local.bestCosine[i]) == best, rank <= owner else { return 0 }
    if rank < owner { return -2 }
    let localClass = local.bestClass[i]
    let bestClass = context.classStart + (context.localClasses?[localClass] ?? localClass)
    return bestClass == context.labels[i] ? 1 : 0
}

extension ForwardStatistics {
    /// The statistics of a rank with no class in play: no maximum, no sum, no target.
    static func empty(rows n: Int) -> ForwardStatistics {
        ForwardStatistics(others: .init(repeating: LogSumExp(), count: n),
                          referenceCosine: .init(repeating: -.infinity, count: n),
                          targetCosine: .init(repeating: 0, count: n), bestCosine: .init(repeating: -.infinity, count: n),
                          bestClass: .init(repeating: 0, count: n), residentMaxima: [])
    }
}
