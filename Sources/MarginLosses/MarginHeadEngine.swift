// The fused, class-chunked engine behind `MarginHead.loss`.
//
// One batch, embeddings ê [N, D] already normalized; the classes in play split into memory
// chunks of C classes (C = K: one chunk, the fused path), each chunk into passes of P classes
// (≈ 16 MiB of centers: one forward GEMM, one row pass, one ∂ê GEMM each) and each pass into
// cache tiles of T classes (≈ 4 MiB of centers: one ∂W GEMM and its correction pass each) so
// that the centers and center gradient stay in cache between the passes that touch them
// (with Partial FC sampling P = T: the gathered rows live in a one-tile buffer). The centers
// are never normalized into a copy: with ν_r = 1/max(‖w_r‖, ε) the head multiplies by raw W
// and rescales columns (`MarginHeadKernels.swift` in TensorCore derives the folded backward).
//   forward, per pass:   ν of the pass's rows (one read of W_p)                [P·k]
//                        X_p = ê·W_pᵀ (sgemm), cos = X_p·diag(ν) in place     [N, P·k]
//                        (sub-centers) cos_p = max over each class's k columns [N, P]
//                        row max m, S = Σ exp(s·(cos − m)) over non-targets, arg-max; merged
//                        over passes and chunks with the online log-sum-exp (`LogSumExp`)
//   loss per sample:     ℓ = log(e_y + S) − z_y relative to M = max(z_y, s·m)  (Double)
//   backward, per pass:  G = w·s·exp(s·cos − M)/Z, target slot −w·(S/Z)·∂z_y/∂cos, written
//                        in place as G' = G·diag(ν)                          [N, P·k]
//                        ∂ê += G'·W_p (sgemm)
//             per tile:  t = G'_tᵀ·ê (sgemm into a tile buffer), then ∂W_r += t_r − p_r·ν_r²·w_r
//                        with p_r = w_r·t_r = Σ_i G_ir·cos_ir (per-row correction)
//   The last chunk of the forward is still in the logits buffer, so the backward starts with
//   it; every other chunk's X_p is recomputed (one extra sgemm over it, ν kept from the
//   forward). With Partial FC sampling the tile's rows are gathered into a compact buffer
//   and the tile's center gradient scattered back.
// Extra memory: N·C·k floats of logits (+ N·C·2 with sub-centers), K·k inverse norms, a tile
// of gathered centers and its gradient (2·T·k·D floats), plus O(N·D + N) — never [N, K]
// when chunked, never a normalized copy of W.
import TensorCore
#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// How `MarginHead` lays out one batch: classes per memory chunk and per cache tile, and the
/// extra memory.
public struct HeadPlan: Sendable, Equatable, CustomStringConvertible {
    /// Classes per chunk `C` (`C = K`: one chunk, the logits buffer is reused in place for the
    /// gradient; `C < K`: online log-sum-exp over chunks, logits recomputed for the backward).
    public var chunkSize: Int
    /// `⌈K / C⌉`.
    public var chunkCount: Int
    /// Classes per cache tile `T ≤ C`: the `∂W` GEMM and its correction pass run tile by tile
    /// (and, with Partial FC sampling, every pass: the tile's rows are gathered).
    public var tileSize: Int
    /// Classes per pass `P` (`T ≤ P ≤ C`): the forward GEMM, the row passes and the `∂ê` GEMM
    /// each run once per pass (fewer, larger GEMM calls and thread hand-offs than per tile),
    /// the `∂W` GEMM tile by tile within it. Default: `defaultPassTiles` tiles (≈ 16 MiB of
    /// centers, so a pass's centers stay in a shared L3 between its norms and its GEMM, and
    /// between its `∂ê` GEMM and its `∂W` corrections), balanced over the chunk.
    public var passTileSize: Int

    /// Tiles per default pass.
    public static let defaultPassTiles = 4
    /// The bytes the head allocates beyond its parameters and their gradient for this batch
    /// (logits chunk, inverse norms, tile buffers, embedding-sized buffers).
    public var extraBytes: Int

    /// The default tile: about 4 MiB of centers (`2²⁰/D` rows, at least one class).
    public static func defaultTileSize(subcenters k: Int, embeddingDimension d: Int) -> Int {
        max(1, (1 << 20) / max(d, 1) / max(k, 1))
    }

    /// The plan for a batch.
    ///
    /// - Parameters:
    ///   - batchSize: `N`.
    ///   - classCount: `K` (the classes in play: all, or the sampled ones).
    ///   - subcenters: `k ≥ 1` centers per class.
    ///   - embeddingDimension: `D`.
    ///   - memoryBudgetBytes: the most extra memory a batch may take; ignored when `chunkSize`
    ///     is given.
    ///   - chunkSize: an explicit `C` (clamped to `K`), or nil for the fewest chunks that fit the
    ///     budget, of equal size `⌈K / count⌉`.
    ///   - tileSize: an explicit `T` (clamped to `C`), or nil for `defaultTileSize`.
    /// - Throws: `HeadMemoryError.budgetTooSmall` when not even one class per chunk fits.
    public init(batchSize n: Int, classCount k: Int, subcenters: Int, embeddingDimension d: Int,
                memoryBudgetBytes: Int, chunkSize: Int?, tileSize: Int? = nil,
                passTileSize: Int? = nil) throws(HeadMemoryError) {
        precondition(tileSize.map { $0 >= 1 } ?? true, "HeadPlan: tileSize must be ≥ 1: \(tileSize ?? 0)")
        precondition(passTileSize.map { $0 >= 1 } ?? true, "HeadPlan: passTileSize must be ≥ 1: \(passTileSize ?? 0)")
        let tile = min(tileSize ?? HeadPlan.defaultTileSize(subcenters: subcenters, embeddingDimension: d), k)
        if let chunkSize {
            precondition(chunkSize >= 1, "HeadPlan: chunkSize must be ≥ 1: \(chunkSize)")
            self.chunkSize = min(chunkSize, k)
        } else {
            let fixed = HeadPlan.fixedBytes(batchSize: n, classCount: k, subcenters: subcenters, embeddingDimension: d,
                                            tileSize: tile, chunkSize: k)
            let perClass = HeadPlan.bytesPerClass(batchSize: n, subcenters: subcenters)
            let fitting = (memoryBudgetBytes - fixed) / perClass
            guard fitting >= 1 else {
                throw .budgetTooSmall(budgetBytes: memoryBudgetBytes, neededBytes: fixed + perClass)
            }
            // As few chunks as fit, of equal size (the last one, kept from the forward, is not
            // recomputed; equal chunks recompute the fewest classes for that count).
            let count = (k + fitting - 1) / fitting
            self.chunkSize = (k + count - 1) / count
        }
        self.chunkCount = (k + self.chunkSize - 1) / self.chunkSize
        self.tileSize = min(tile, self.chunkSize)
        if let passTileSize {
            self.passTileSize = min(max(passTileSize, self.tileSize), self.chunkSize)
        } else {
            let passes = (self.chunkSize + HeadPlan.defaultPassTiles * self.tileSize - 1) / (HeadPlan.defaultPassTiles * self.tileSize)
            self.passTileSize = max((self.chunkSize + passes - 1) / passes, self.tileSize)
        }
        self.extraBytes = HeadPlan.fixedBytes(batchSize: n, classCount: k, subcenters: subcenters, embeddingDimension: d,
                                              tileSize: self.tileSize, chunkSize: self.chunkSize)
            + self.chunkSize * HeadPlan.bytesPerClass(batchSize: n, subcenters: subcenters)
    }

    /// Bytes per class of a chunk: logits `N·k` (+ `2·N` maxima and choices with sub-centers),
    /// 4-byte elements.
    static func bytesPerClass(batchSize n: Int, subcenters k: Int) -> Int {
        4 * (n * k + (k > 1 ? 2 * n : 0))
    }

    /// Bytes independent of the chunk: `ê`, `∂ê` and `∂e` (`3·N·D`), per-row statistics
    /// (`16·N`), the inverse norms of all rows in play (`K·k`), one tile's gathered centers and
    /// its `G'ᵀ·ê` (`2·T·k·D`), and the resident chunk's per-tile row maxima (`N·⌈C/T⌉`).
    static func fixedBytes(batchSize n: Int, classCount: Int, subcenters k: Int, embeddingDimension d: Int,
                           tileSize t: Int, chunkSize c: Int) -> Int {
        4 * (3 * n * d + 16 * n + classCount * k + 2 * t * k * d + n * ((c + t - 1) / t))
    }

    public var description: String {
        chunkCount == 1 ? "unchunked (C = K = \(chunkSize), tiles of \(tileSize)), extra \(extraBytes) bytes"
            : "\(chunkCount) chunks of \(chunkSize) classes (tiles of \(tileSize)), extra \(extraBytes) bytes"
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


/// The engine's buffers, kept by the head between batches and reallocated only when the
/// plan's sizes change (no page faults per step).
struct HeadScratch {
    /// X of one chunk: raw products, then cosines, then G' `[N, C·k]`.
    var logits: [Float] = []
    /// Sub-centers: the class cosines and then G `[N, C]`, and the arg-max sub-center `[N, C]`.
    var grouped: [Float] = []
    var choice: [Int32] = []
    /// ν of every row in play `[K·k]`.
    var inverseNorms: [Float] = []
    /// Partial FC: one tile of gathered centers `[T·k, D]`.
    var tileCenters: [Float] = []
    /// `G'ᵀ·ê` of one tile `[T·k, D]`.
    var tileGradient: [Float] = []

    mutating func prepare(n: Int, plan: HeadPlan, classCount: Int, subcenters k: Int, d: Int, gathers: Bool) {
        func ensure<T: Numeric>(_ buffer: inout [T], _ count: Int) {
            if buffer.count != count { buffer = [T](repeating: 0, count: count) }
        }
        ensure(&logits, n * plan.chunkSize * k)
        ensure(&grouped, k > 1 ? n * plan.chunkSize : 0)
        ensure(&choice, k > 1 ? n * plan.chunkSize : 0)
        ensure(&inverseNorms, classCount * k)
        ensure(&tileCenters, gathers ? plan.tileSize * k * d : 0)
        ensure(&tileGradient, plan.tileSize * k * d)
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
    let chunk = plan.chunkSize, tile = plan.tileSize
    let scaleF = Float(scale)
    let gathers = classes != nil
    // Classes per forward GEMM, row pass and ∂ê GEMM; the ∂W GEMM and its correction run in
    // tiles of `tile` within it. Gathered rows (Partial FC) live in a one-tile buffer.
    let pass = gathers ? tile : plan.passTileSize
    scratch.prepare(n: n, plan: plan, classCount: classCount, subcenters: k, d: d, gathers: gathers)
    // Moved out of `scratch` (swap, no copy) and back at the end.
    var logits: [Float] = [], grouped: [Float] = [], choice: [Int32] = [], inverseNorms: [Float] = []
    var tileCenters: [Float] = [], tileGradient: [Float] = []
    swap(&logits, &scratch.logits); swap(&grouped, &scratch.grouped); swap(&choice, &scratch.choice)
    swap(&inverseNorms, &scratch.inverseNorms); swap(&tileCenters, &scratch.tileCenters)
    swap(&tileGradient, &scratch.tileGradient)
    defer {
        swap(&logits, &scratch.logits); swap(&grouped, &scratch.grouped); swap(&choice, &scratch.choice)
        swap(&inverseNorms, &scratch.inverseNorms); swap(&tileCenters, &scratch.tileCenters)
        swap(&tileGradient, &scratch.tileGradient)
    }

    /// The global center rows of local classes `t0..<t1` (Partial FC).
    func rowIndices(_ t0: Int, _ t1: Int) -> [Int] {
        var rows = [Int]()
        rows.reserveCapacity((t1 - t0) * k)
        for local in t0..<t1 {
            let global = classes?[local] ?? local
            for s in 0..<k { rows.append(global * k + s) }
        }
        return rows
    }
    /// Each sample's target column within `t0..<t1` (relative to t0), or −1.
    func localTargets(_ t0: Int, _ t1: Int) -> [Int] {
        labels.map { $0 >= t0 && $0 < t1 ? $0 - t0 : -1 }
    }
    /// X = ê·W_tᵀ for tile `t0..<t1` of the chunk starting at `c0` (width `cw` classes), raw
    /// products in the logits buffer; gathers the rows first when sampling (ν into
    /// `inverseNorms` when `recordsNorms`). Returns the tile's centers and their offset.
    func tileProducts(c0: Int, cw: Int, t0: Int, t1: Int, recordsNorms: Bool) -> (centers: [Float], offset: Int) {
        let rows = (t1 - t0) * k
        var b = centers, offset = t0 * k * d
        if gathers {
            gatherRowsWithInverseNorms(centers, rowIndices: rowIndices(t0, t1), columns: d, into: &tileCenters,
                                       inverseNorms: &inverseNorms, offset: t0 * k)
            b = tileCenters
            offset = 0
        } else if recordsNorms {
            rowInverseNorms(centers, firstRow: t0 * k, rows: rows, columns: d, into: &inverseNorms, offset: t0 * k)
        }
        gemm(transposeB: true, m: n, n: rows, k: d, a: unitEmbeddings, lda: d, b: b, bOffset: offset, ldb: d,
             c: &logits, cOffset: (t0 - c0) * k, ldc: cw * k)
        return (b, offset)
    }
    /// Sub-centers: cosines in place and the class maxima of a tile into `grouped`.
    func groupTile(c0: Int, cw: Int, t0: Int, t1: Int) {
        scaleColumns(&logits, rows: n, ld: cw * k, columnOffset: (t0 - c0) * k, width: (t1 - t0) * k,
                     scales: inverseNorms, scalesOffset: t0 * k)
        groupMaximaTile(logits, rows: n, inputLD: cw * k, inputOffset: (t0 - c0) * k, groups: t1 - t0, groupSize: k,
                        into: &grouped, choice: &choice, outputLD: cw, outputOffset: t0 - c0)
    }

    // MARK: forward
    var others = [LogSumExp](repeating: LogSumExp(), count: n)
    var referenceCosine = [Float](repeating: -.infinity, count: n)   // max over tiles of m
    var targetCosine = [Float](repeating: 0, count: n)
    var best = [Float](repeating: -.infinity, count: n)
    var bestClass = [Int](repeating: 0, count: n)
    var chunkStarts: [Int] = []
    // The last chunk stays in the buffer for the backward: its tiles keep exp(s·(cos − m_tile))
    // in place of the cosines, with m_tile per tile and row.
    var residentMaxima: [[Float]] = []
    var c0 = 0
    while c0 < classCount {
        chunkStarts.append(c0)
        let c1 = min(c0 + chunk, classCount), cw = c1 - c0
        let resident = c1 == classCount && computeGradients
        var t0 = c0
        while t0 < c1 {
            let t1 = min(t0 + pass, c1)
            _ = tileProducts(c0: c0, cw: cw, t0: t0, t1: t1, recordsNorms: true)
            let targets = localTargets(t0, t1)
            let stats: SoftmaxRowStatistics
            if k > 1 {
                groupTile(c0: c0, cw: cw, t0: t0, t1: t1)
                for i in 0..<n where targets[i] >= 0 { targetCosine[i] = grouped[i * cw + t0 - c0 + targets[i]] }
                stats = softmaxTileStatistics(&grouped, rows: n, ld: cw, columnOffset: t0 - c0, width: t1 - t0,
                                              columnScales: nil, excluded: targets, scale: scaleF, clampsToUnitInterval: true,
                                              storesExponentials: resident)
            } else {
                stats = softmaxTileStatistics(&logits, rows: n, ld: cw, columnOffset: t0 - c0, width: t1 - t0,
                                              columnScales: inverseNorms, scalesOffset: t0, excluded: targets,
                                              scale: scaleF, clampsToUnitInterval: true, storesExponentials: resident)
                for i in 0..<n where targets[i] >= 0 { targetCosine[i] = logits[i * cw + t0 - c0 + targets[i]] }
            }
            if resident { residentMaxima.append(stats.maxima) }
            for i in 0..<n {
                if stats.maxima[i] > -.infinity {
                    others[i].merge(maximum: scale * Double(stats.maxima[i]), sum: stats.sums[i])
                    referenceCosine[i] = max(referenceCosine[i], stats.maxima[i])
                }
                if stats.argmaxValues[i] > best[i] { best[i] = stats.argmaxValues[i]; bestClass[i] = t0 + stats.argmax[i] }
            }
            t0 = t1
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
    // The last chunk first (its exponentials are in the buffer); the others are recomputed.
    for (position, c0) in chunkStarts.reversed().enumerated() {
        let resident = position == 0
        let c1 = min(c0 + chunk, classCount), cw = c1 - c0
        var t0 = c0, tileIndex = 0
        while t0 < c1 {
            let t1 = min(t0 + pass, c1), rows = (t1 - t0) * k
            let targets = localTargets(t0, t1)
            var b = centers, offset = t0 * k * d
            if !resident {
                (b, offset) = tileProducts(c0: c0, cw: cw, t0: t0, t1: t1, recordsNorms: false)
                if k > 1 { groupTile(c0: c0, cw: cw, t0: t0, t1: t1) }
            } else if gathers {
                gatherRowsWithInverseNorms(centers, rowIndices: rowIndices(t0, t1), columns: d, into: &tileCenters,
                                           inverseNorms: &inverseNorms, offset: t0 * k)
                (b, offset) = (tileCenters, 0)
            }
            // G (k > 1: per class in `grouped`) or G' (k = 1: in the logits tile).
            if resident {
                let maxima = residentMaxima[tileIndex]
                let rowFactors = (0..<n).map { i -> Float in
                    maxima[i] == -.infinity ? 0
                        : Float(Double(factors[i]) * exp(scale * Double(maxima[i] - referenceCosine[i])))
                }
                if k > 1 {
                    scaleExponentialsTile(&grouped, rows: n, ld: cw, columnOffset: t0 - c0, width: t1 - t0,
                                          rowFactors: rowFactors, targets: targets, targetValues: targetGradients,
                                          columnScales: nil)
                } else {
                    scaleExponentialsTile(&logits, rows: n, ld: cw, columnOffset: t0 - c0, width: t1 - t0,
                                          rowFactors: rowFactors, targets: targets, targetValues: targetGradients,
                                          columnScales: inverseNorms, scalesOffset: t0)
                }
            } else if k > 1 {
                softmaxGradientTile(&grouped, rows: n, ld: cw, columnOffset: t0 - c0, width: t1 - t0, scale: scaleF,
                                    clampsToUnitInterval: true, references: referenceCosine, factors: factors,
                                    targets: targets, targetValues: targetGradients, columnScales: nil)
            } else {
                softmaxGradientTile(&logits, rows: n, ld: cw, columnOffset: t0 - c0, width: t1 - t0, scale: scaleF,
                                    clampsToUnitInterval: true, references: referenceCosine, factors: factors,
                                    targets: targets, targetValues: targetGradients, columnScales: inverseNorms,
                                    scalesOffset: t0)
            }
            if k > 1 {
                scatterGroupGradientTile(grouped, choice: choice, gradientLD: cw, gradientOffset: t0 - c0, rows: n,
                                         groups: t1 - t0, groupSize: k, into: &logits, ld: cw * k,
                                         columnOffset: (t0 - c0) * k, columnScales: inverseNorms, scalesOffset: t0 * k)
            }
            // The logits of the pass now hold G' [N, P·k].
            gemm(m: n, n: d, k: rows, a: logits, aOffset: (t0 - c0) * k, lda: cw * k, b: b, bOffset: offset, ldb: d,
                 beta: 1, c: &unitEmbeddingGradient, ldc: d)
            var u0 = t0
            while u0 < t1 {
                let u1 = min(u0 + tile, t1), tileRows = (u1 - u0) * k
                gemm(transposeA: true, m: tileRows, n: d, k: n, a: logits, aOffset: (u0 - c0) * k, lda: cw * k,
                     b: unitEmbeddings, ldb: d, c: &tileGradient, ldc: d)
                accumulateNormalizedRowsGradient(tileGradient, rows: tileRows, centers: centers, firstRow: u0 * k,
                                                 rowIndices: gathers ? rowIndices(u0, u1) : nil, columns: d,
                                                 inverseNorms: inverseNorms, offset: u0 * k, into: &centerGradient)
                u0 = u1
            }
            t0 = t1
            tileIndex += 1
        }
    }
    return EngineResult(summary: summary, unitEmbeddingGradient: unitEmbeddingGradient)
}
