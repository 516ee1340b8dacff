// The fused, class-chunked engine behind `MarginHead.loss`.
//
// One batch, embeddings ê [N, D] already normalized, classes split into chunks of C classes
// (C = K: one chunk, the fused path):
//   forward, per chunk:  Ŵ_c = rows of W normalized           [C·k, D]
//                        X_c = ê·Ŵ_cᵀ                          [N, C·k]  (sgemm)
//                        (sub-centers) cos_c = max over each class's k columns  [N, C]
//                        row max m, S = Σ exp(s·(cos − m)) over non-targets, arg-max; merged
//                        over chunks with the online log-sum-exp (`LogSumExp`)
//   loss per sample:     ℓ = log(e_y + S) − z_y relative to M = max(z_y, s·m)  (Double)
//   backward, per chunk: G_c = w·s·exp(s·cos − M)/Z, target slot −w·(S/Z)·∂z_y/∂cos [N, C]
//                        (one chunk: the exponentials kept from the forward are rescaled in
//                        place, the centers were normalized once; several chunks: Ŵ_c and X_c
//                        are recomputed — one extra sgemm and an O(C·k·D) normalization)
//                        ∂ê += G_c·Ŵ_c, ∂Ŵ_c = G_cᵀ·ê (two sgemm), ∂W rows += normalization
//                        backward of ∂Ŵ_c
// Extra memory: N·C·k floats of logits (+ N·C·2 with sub-centers) and 2·C·k·D floats of
// centers and their gradient for one chunk, plus O(N·D + N) — never [N, K] when chunked.
import TensorCore
#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// How `MarginHead` lays out one batch: how many classes per chunk, and the extra memory.
public struct HeadPlan: Sendable, Equatable, CustomStringConvertible {
    /// Classes per chunk `C` (`C = K`: one chunk, the logits buffer is reused in place for the
    /// gradient; `C < K`: online log-sum-exp over chunks, logits recomputed for the backward).
    public var chunkSize: Int
    /// `⌈K / C⌉`.
    public var chunkCount: Int
    /// The bytes the head allocates beyond its parameters and their gradient for this batch
    /// (logits chunk, normalized centers chunk and its gradient, embedding-sized buffers).
    public var extraBytes: Int

    /// The plan for a batch.
    ///
    /// - Parameters:
    ///   - batchSize: `N`.
    ///   - classCount: `K` (the classes in play: all, or the sampled ones).
    ///   - subcenters: `k ≥ 1` centers per class.
    ///   - embeddingDimension: `D`.
    ///   - memoryBudgetBytes: the most extra memory a batch may take; ignored when `chunkSize`
    ///     is given.
    ///   - chunkSize: an explicit `C` (clamped to `K`), or nil to choose the largest `C` that fits.
    /// - Throws: `HeadMemoryError.budgetTooSmall` when not even one class per chunk fits.
    public init(batchSize n: Int, classCount k: Int, subcenters: Int, embeddingDimension d: Int,
                memoryBudgetBytes: Int, chunkSize: Int?) throws(HeadMemoryError) {
        if let chunkSize {
            precondition(chunkSize >= 1, "HeadPlan: chunkSize must be ≥ 1: \(chunkSize)")
            self.chunkSize = min(chunkSize, k)
        } else {
            let fixed = HeadPlan.fixedBytes(batchSize: n, embeddingDimension: d)
            let perClass = HeadPlan.bytesPerClass(batchSize: n, subcenters: subcenters, embeddingDimension: d)
            let fitting = (memoryBudgetBytes - fixed) / perClass
            guard fitting >= 1 else {
                throw .budgetTooSmall(budgetBytes: memoryBudgetBytes, neededBytes: fixed + perClass)
            }
            self.chunkSize = min(fitting, k)
        }
        self.chunkCount = (k + self.chunkSize - 1) / self.chunkSize
        self.extraBytes = HeadPlan.fixedBytes(batchSize: n, embeddingDimension: d)
            + self.chunkSize * HeadPlan.bytesPerClass(batchSize: n, subcenters: subcenters, embeddingDimension: d)
    }

    /// Bytes per class of a chunk: logits `N·k` (+ `2·N` maxima and choices with sub-centers),
    /// normalized centers and their gradient `2·k·D`, all 4-byte elements.
    static func bytesPerClass(batchSize n: Int, subcenters k: Int, embeddingDimension d: Int) -> Int {
        4 * (n * k + (k > 1 ? 2 * n : 0) + 2 * k * d)
    }

    /// Bytes independent of the chunk: `ê`, `∂ê` and `∂e` (`3·N·D`) plus per-row statistics.
    static func fixedBytes(batchSize n: Int, embeddingDimension d: Int) -> Int {
        4 * 3 * n * d + 64 * n
    }

    public var description: String {
        chunkCount == 1 ? "unchunked (C = K = \(chunkSize)), extra \(extraBytes) bytes"
            : "\(chunkCount) chunks of \(chunkSize) classes, extra \(extraBytes) bytes"
    }
}

/// A head configuration that cannot fit in memory; thrown before anything large is allocated.
public enum HeadMemoryError: Error, CustomStringConvertible, Equatable {
    /// The centers, their gradient and their momentum buffer (`3·K·k·D·4` bytes) plus one
    /// batch's extra memory exceed what the machine has available.
    case stateDoesNotFit(neededBytes: Int, availableBytes: Int, classCount: Int, subcenters: Int, embeddingDimension: Int)
    /// The memory budget cannot hold even a chunk of one class.
    case budgetTooSmall(budgetBytes: Int, neededBytes: Int)

    public var description: String {
        switch self {
        case let .stateDoesNotFit(needed, available, k, sub, d):
            return "the margin head needs \(needed) bytes (\(gibibytes(needed)) GiB: centers, gradient and momentum "
                + "3·\(k)·\(sub)·\(d)·4 bytes plus one batch) but \(available) bytes (\(gibibytes(available)) GiB) "
                + "are available; HINT: use Partial FC sampling, fewer classes or a smaller embedding dimension"
        case let .budgetTooSmall(budget, needed):
            return "the head's memory budget of \(budget) bytes cannot hold one class per chunk (\(needed) bytes); "
                + "HINT: raise memoryBudgetBytes or lower the batch size"
        }
    }
}

private func gibibytes(_ bytes: Int) -> String {
    let value = Double(bytes) / Double(1 << 30)
    return String(Double(Int(value * 100)) / 100)
}

/// The engine's per-chunk buffers, kept by the head between batches and reallocated only when
/// the plan's sizes change.
struct HeadScratch {
    var unitChunk: [Float] = []
    var raw: [Float] = []
    var grouped: [Float] = []
    var choice: [Int32] = []
    var unitChunkGradient: [Float] = []

    mutating func prepare(n: Int, chunk: Int, subcenters k: Int, d: Int) {
        if unitChunk.count != chunk * k * d { unitChunk = [Float](repeating: 0, count: chunk * k * d) }
        if raw.count != n * chunk * k { raw = [Float](repeating: 0, count: n * chunk * k) }
        let groupedCount = k > 1 ? n * chunk : 0
        if grouped.count != groupedCount { grouped = [Float](repeating: 0, count: groupedCount) }
        if choice.count != groupedCount { choice = [Int32](repeating: 0, count: groupedCount) }
        if unitChunkGradient.count != chunk * k * d { unitChunkGradient = [Float](repeating: 0, count: chunk * k * d) }
    }
}

/// What the engine returns for a batch.
struct EngineResult {
    var summary: CrossEntropySummary
    /// `∂L/∂ê`, `[N, D]` (empty without gradients).
    var unitEmbeddingGradient: [Float]
}

/// The engine (see the file header).
///
/// - Parameters:
///   - unitEmbeddings: `ê`, `[N, D]`.
///   - centers: the unnormalized center storage, `[R, D]`, `R ≥ (max class + 1)·k`.
///   - classes: the global class of each local class `0..<K'` (nil: the identity over `0..<K`).
///   - classCount: `K'`, the local classes in play.
///   - labels: local labels in `0..<K'` (validated by the caller).
///   - centerGradient: `[R, D]`; `∂L/∂W` is accumulated (`+=`) into the rows in play.
func runMarginEngine(unitEmbeddings: [Float], n: Int, d: Int, centers: [Float], classes: [Int]?, classCount: Int,
                     subcenters k: Int, labels: [Int], scale: Double, margin: any Margin,
                     gradientMode: MarginGradient, reduction: Reduction, computeGradients: Bool,
                     plan: HeadPlan, centerGradient: inout [Float], scratch: inout HeadScratch) -> EngineResult {
    let chunk = plan.chunkSize
    let single = plan.chunkCount == 1
    let scaleF = Float(scale)
    // Scratch for one chunk, kept by the head between batches (no page faults per step).
    scratch.prepare(n: n, chunk: chunk, subcenters: k, d: d)
    // Moved out of `scratch` (swap, no copy) and back at the end.
    var unitChunk: [Float] = [], raw: [Float] = [], grouped: [Float] = [], unitChunkGradient: [Float] = []
    var choice: [Int32] = []
    swap(&unitChunk, &scratch.unitChunk)                 // Ŵ_c [C·k, D]
    swap(&raw, &scratch.raw)                             // X_c [N, C·k]
    swap(&grouped, &scratch.grouped)                     // cos_c [N, C] (sub-centers)
    swap(&choice, &scratch.choice)                       // argmax sub-center [N, C]
    swap(&unitChunkGradient, &scratch.unitChunkGradient) // ∂Ŵ_c [C·k, D]
    defer {
        swap(&unitChunk, &scratch.unitChunk); swap(&raw, &scratch.raw); swap(&grouped, &scratch.grouped)
        swap(&choice, &scratch.choice); swap(&unitChunkGradient, &scratch.unitChunkGradient)
    }

    func rowIndices(_ c0: Int, _ c1: Int) -> [Int] {
        var rows = [Int]()
        rows.reserveCapacity((c1 - c0) * k)
        for local in c0..<c1 {
            let global = classes?[local] ?? local
            for s in 0..<k { rows.append(global * k + s) }
        }
        return rows
    }
    /// Normalizes the chunk's centers and computes its cosines into `raw`, then `grouped` (k > 1).
    func cosines(_ c0: Int, _ c1: Int) -> [Float] {
        let rows = rowIndices(c0, c1)
        let norms = l2NormalizeRows(centers, rowIndices: rows, columns: d, into: &unitChunk)
        gemm(transposeB: true, m: n, n: rows.count, k: d, a: unitEmbeddings, lda: d,
             b: unitChunk, ldb: d, c: &raw, ldc: rows.count)
        if k > 1 { groupMaxima(raw, rows: n, groups: c1 - c0, groupSize: k, into: &grouped, choice: &choice) }
        return norms
    }
    func localTargets(_ c0: Int, _ c1: Int) -> [Int] {
        labels.map { $0 >= c0 && $0 < c1 ? $0 - c0 : -1 }
    }

    // MARK: forward
    var others = [LogSumExp](repeating: LogSumExp(), count: n)
    var referenceCosine = [Float](repeating: -.infinity, count: n)   // max over chunks of m
    var targetCosine = [Float](repeating: 0, count: n)
    var best = [Float](repeating: -.infinity, count: n)
    var bestClass = [Int](repeating: 0, count: n)
    var singleNorms: [Float] = []
    var c0 = 0
    while c0 < classCount {
        let c1 = min(c0 + chunk, classCount), width = c1 - c0
        let norms = cosines(c0, c1)
        if single { singleNorms = norms }
        let targets = localTargets(c0, c1)
        let stats: SoftmaxRowStatistics
        if k > 1 {
            for i in 0..<n where targets[i] >= 0 { targetCosine[i] = grouped[i * width + targets[i]] }
            stats = softmaxRowStatistics(&grouped, rows: n, columns: width, excluded: targets, scale: scaleF,
                                         clampsToUnitInterval: true, storesExponentials: single)
        } else {
            for i in 0..<n where targets[i] >= 0 { targetCosine[i] = raw[i * width + targets[i]] }
            stats = softmaxRowStatistics(&raw, rows: n, columns: width, excluded: targets, scale: scaleF,
                                         clampsToUnitInterval: true, storesExponentials: single)
        }
        for i in 0..<n {
            if stats.maxima[i] > -.infinity {
                others[i].merge(maximum: scale * Double(stats.maxima[i]), sum: stats.sums[i])
                referenceCosine[i] = max(referenceCosine[i], stats.maxima[i])
            }
            if stats.argmaxValues[i] > best[i] { best[i] = stats.argmaxValues[i]; bestClass[i] = c0 + stats.argmax[i] }
        }
        c0 = c1
    }

    // MARK: loss
    let weight = reduction.gradientWeight(batchSize: n)
    var perSample = [Double](repeating: 0, count: n)
    var factors = [Float](repeating: 0, count: n)
    var targetGradients = [Float](repeating: 0, count: n)
    var correct = 0
    for i in 0..<n {
        let (psi, derivative) = margin.target(cosine: Double(targetCosine[i]))
        let slope = gradientMode == .exact ? derivative : 1
        let target = TargetLogit(logit: scale * psi, logitDerivative: scale * slope)
        let (loss, normalizer, othersSum) = sampleLoss(target: target, others: others[i])
        perSample[i] = loss
        if bestClass[i] == labels[i] { correct += 1 }
        let m = max(target.logit, others[i].maximum)
        let reference = referenceCosine[i] > -.infinity ? scale * Double(referenceCosine[i]) : m
        factors[i] = Float(weight * scale * exp(reference - m) / normalizer)
        targetGradients[i] = Float(-weight * (othersSum / normalizer) * target.logitDerivative)
    }
    let summary = CrossEntropySummary(loss: reduction.reduce(perSample), perSample: perSample, correctCount: correct)
    guard computeGradients else { return EngineResult(summary: summary, unitEmbeddingGradient: []) }

    // MARK: backward
    var unitEmbeddingGradient = [Float](repeating: 0, count: n * d)   // ∂ê [N, D]
    c0 = 0
    while c0 < classCount {
        let c1 = min(c0 + chunk, classCount), width = c1 - c0, rowCount = width * k
        let norms: [Float]
        let targets = localTargets(c0, c1)
        if single {
            norms = singleNorms
            if k > 1 {
                scaleRowsSettingTargets(&grouped, rows: n, columns: width, factors: factors, targets: targets,
                                        targetValues: targetGradients)
            } else {
                scaleRowsSettingTargets(&raw, rows: n, columns: width, factors: factors, targets: targets,
                                        targetValues: targetGradients)
            }
        } else {
            norms = cosines(c0, c1)
            if k > 1 {
                exponentiateRowsSettingTargets(&grouped, rows: n, columns: width, scale: scaleF, clampsToUnitInterval: true,
                                               references: referenceCosine, factors: factors, targets: targets,
                                               targetValues: targetGradients)
            } else {
                exponentiateRowsSettingTargets(&raw, rows: n, columns: width, scale: scaleF, clampsToUnitInterval: true,
                                               references: referenceCosine, factors: factors, targets: targets,
                                               targetValues: targetGradients)
            }
        }
        if k > 1 { scatterGroupGradient(grouped, choice: choice, rows: n, groups: width, groupSize: k, into: &raw) }
        // raw now holds G_c [N, C·k].
        gemm(m: n, n: d, k: rowCount, a: raw, lda: rowCount, b: unitChunk, ldb: d, beta: 1,
             c: &unitEmbeddingGradient, ldc: d)
        gemm(transposeA: true, m: rowCount, n: d, k: n, a: raw, lda: rowCount, b: unitEmbeddings, ldb: d,
             c: &unitChunkGradient, ldc: d)
        accumulateL2NormalizedRowsBackward(gradient: unitChunkGradient, normalized: unitChunk, norms: norms,
                                           rowIndices: rowIndices(c0, c1), columns: d, into: &centerGradient)
        c0 = c1
    }
    return EngineResult(summary: summary, unitEmbeddingGradient: unitEmbeddingGradient)
}
