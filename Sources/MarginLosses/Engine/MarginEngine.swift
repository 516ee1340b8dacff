// The fused, class-chunked engine behind `MarginHead.loss`.
//
// One batch, embeddings ê [N, D] already normalized; the classes in play split into memory
// chunks of C classes (C = K: one chunk, the fused path), each chunk into passes of P classes
// (≈ 16 MiB of centers: one forward GEMM, one row pass, one ∂ê GEMM each) and each pass into
// cache tiles of T classes (≈ 4 MiB of centers: one ∂W GEMM and its correction pass each) so
// that the centers and center gradient stay in cache between the passes that touch them
// (with Partial FC sampling P = T: the gathered rows live in a one-tile buffer). The centers
// are never normalized into a copy: with ν_r = 1/max(‖w_r‖, ε) the head multiplies by raw W
// and rescales columns (`CenterRowKernels.swift` derives the folded backward).
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

/// One batch as the engine sees it: the inputs, and how the classes in play split into
/// chunks, passes and tiles (see the file header).
struct EngineBatch {
    /// `ê`, `[N, D]`.
    var unitEmbeddings: [Float]
    /// `N` and `D`.
    var n: Int, d: Int
    /// The unnormalized center storage `W`, `[R, D]`, `R ≥ (max class + 1)·k`.
    var centers: [Float]
    /// The global class of each local class `0..<K'` (Partial FC), or nil: the identity over `0..<K`.
    var classes: [Int]?
    /// `K'`, the local classes in play.
    var classCount: Int
    /// `k ≥ 1`, centers per class.
    var subcenters: Int
    /// Local labels in `0..<K'` (validated by the caller).
    var labels: [Int]
    /// Chunk, pass and tile sizes.
    var plan: HeadPlan

    /// Whether the center rows are gathered into a compact tile buffer (Partial FC).
    var gathers: Bool { classes != nil }

    /// The memory chunks: `0..<K'` in consecutive ranges of `C` classes (the last may be shorter).
    var chunks: [Range<Int>] { consecutiveRanges(0..<classCount, size: plan.chunkSize) }

    /// The passes of a chunk: ranges of `P` classes, one forward GEMM, row pass and `∂ê` GEMM
    /// each. Gathered rows (Partial FC) live in a one-tile buffer, so then `P = T`.
    func passes(of chunk: Range<Int>) -> [EnginePass] {
        consecutiveRanges(chunk, size: gathers ? plan.tileSize : plan.passTileSize).map {
            EnginePass(chunk: chunk, classes: $0, subcenters: subcenters)
        }
    }

    /// The cache tiles of a pass: ranges of `T` classes, one `∂W` GEMM and correction each.
    func tiles(of pass: EnginePass) -> [Range<Int>] {
        consecutiveRanges(pass.classes, size: plan.tileSize)
    }

    /// The global center rows of local classes `range`, `[range.count·k]` (Partial FC).
    func centerRows(of range: Range<Int>) -> [Int] {
        var rows = [Int]()
        rows.reserveCapacity(range.count * subcenters)
        for local in range {
            let global = classes?[local] ?? local
            for s in 0..<subcenters { rows.append(global * subcenters + s) }
        }
        return rows
    }

    /// Each sample's target column within `range` (relative to its start), or −1, `[N]`.
    func localTargets(in range: Range<Int>) -> [Int] {
        labels.map { $0 >= range.lowerBound && $0 < range.upperBound ? $0 - range.lowerBound : -1 }
    }
}

/// `range` cut into consecutive ranges of `size` (the last may be shorter).
private func consecutiveRanges(_ range: Range<Int>, size: Int) -> [Range<Int>] {
    stride(from: range.lowerBound, to: range.upperBound, by: size).map { $0..<min($0 + size, range.upperBound) }
}

/// Where one pass's classes sit in the chunk's buffers: the logits buffer holds the chunk as
/// `[N, C·k]` (row stride `logitsStride`), `grouped` as `[N, C]` (row stride `chunkWidth`).
struct EnginePass {
    /// The chunk's local classes and the pass's, a sub-range of them.
    var chunk: Range<Int>, classes: Range<Int>
    /// `k`.
    var subcenters: Int

    /// `C` of this chunk: the row stride of `grouped` (and of the logits when `k = 1`).
    var chunkWidth: Int { chunk.count }
    /// The row stride of the logits buffer, `C·k`.
    var logitsStride: Int { chunk.count * subcenters }
    /// The pass's first class column in `grouped`.
    var classOffset: Int { classes.lowerBound - chunk.lowerBound }
    /// The pass's first column in the logits buffer.
    var logitsOffset: Int { classOffset * subcenters }
    /// The pass's center rows, `P·k`, starting at row (and ν index) `firstRow`.
    var rowCount: Int { classes.count * subcenters }
    var firstRow: Int { classes.lowerBound * subcenters }
    /// The logits-buffer column of a tile of the pass.
    func logitsOffset(of tile: Range<Int>) -> Int { (tile.lowerBound - chunk.lowerBound) * subcenters }
}

/// The loss settings of the head: the scale `s`, the margin ψ, its gradient mode and the reduction.
struct EngineLoss {
    var scale: Double
    var margin: any Margin
    var gradientMode: MarginGradient
    var reduction: Reduction
}

/// The engine (see the file header): the forward over every chunk, the per-sample losses, and,
/// with `computeGradients`, the backward. `∂L/∂W` is accumulated (`+=`) into the rows in play of
/// `centerGradient` (`[R, D]`).
///
/// - Throws: `NonFiniteCenterRow` when a center row in play holds NaN or ±Inf (found from its
///   inverse norm in the forward, before any margin is evaluated or gradient touched).
func runMarginEngine(_ batch: EngineBatch, loss settings: EngineLoss, computeGradients: Bool,
                     centerGradient: inout [Float], scratch: inout HeadScratch) throws(NonFiniteCenterRow) -> EngineResult {
    var engine = MarginEngine(batch: batch, scale: settings.scale, scratch: &scratch)
    defer { engine.returnBuffers(to: &scratch) }
    let forward = try engine.forward(keepsLastChunk: computeGradients)
    let losses = sampleLosses(forward, labels: batch.labels, settings: settings)
    guard computeGradients else { return EngineResult(summary: losses.summary, unitEmbeddingGradient: []) }
    let unitEmbeddingGradient = engine.backward(forward, losses, centerGradient: &centerGradient)
    return EngineResult(summary: losses.summary, unitEmbeddingGradient: unitEmbeddingGradient)
}

/// What the forward leaves for the loss and the backward, per sample (`[N]` each).
struct ForwardStatistics {
    /// The non-target log-sum-exp, merged over passes and chunks (logit units).
    var others: [LogSumExp]
    /// The largest non-target cosine `max m` over all passes (−∞ if none).
    var referenceCosine: [Float]
    /// The target class's cosine.
    var targetCosine: [Float]
    /// The arg-maximum class over all columns (target included) and its cosine, for accuracy.
    var bestCosine: [Float]
    var bestClass: [Int]
    /// The last chunk's per-pass row maxima `m_pass` (`[N]` each), when its exponentials were
    /// kept in the buffers for the backward.
    var residentMaxima: [[Float]]
}

/// The per-sample losses and what the backward needs of them.
struct SampleLosses {
    var summary: CrossEntropySummary
    /// `w·s·exp(s·max m − M)/Z` per sample: the factor of a non-target exponential relative to
    /// `referenceCosine`.
    var factors: [Float]
    /// `−w·(S/Z)·∂z_y/∂cos`, the gradient of the target slot.
    var targetGradients: [Float]
}

/// The loss of each sample from the forward's merged statistics: `ℓ = log(e_y + S) − z_y`
/// relative to `M = max(z_y, s·m)`, in `Double`.
func sampleLosses(_ forward: ForwardStatistics, labels: [Int], settings: EngineLoss) -> SampleLosses {
    let n = labels.count, scale = settings.scale
    let weight = settings.reduction.gradientWeight(batchSize: n)
    var perSample = [Double](repeating: 0, count: n)
    var factors = [Float](repeating: 0, count: n)
    var targetGradients = [Float](repeating: 0, count: n)
    var correct = 0
    for i in 0..<n {
        let target = TargetLogit(cosine: Double(forward.targetCosine[i]), scale: scale, margin: settings.margin,
                                 gradientMode: settings.gradientMode)
        let others = forward.others[i]
        let (loss, normalizer, othersSum) = sampleLoss(target: target, others: others)
        perSample[i] = loss
        if forward.bestClass[i] == labels[i] { correct += 1 }
        let m = max(target.logit, others.maximum)
        let reference = forward.referenceCosine[i] > -.infinity ? scale * Double(forward.referenceCosine[i]) : m
        factors[i] = Float(weight * scale * exp(reference - m) / normalizer)
        targetGradients[i] = Float(-weight * (othersSum / normalizer) * target.logitDerivative)
    }
    let summary = CrossEntropySummary(loss: settings.reduction.reduce(perSample), perSample: perSample,
                                      correctCount: correct)
    return SampleLosses(summary: summary, factors: factors, targetGradients: targetGradients)
}

/// The engine's stages over one batch, holding the head's buffers for the duration of the call.
struct MarginEngine {
    let batch: EngineBatch
    let scale: Double
    /// The buffers of `HeadScratch`, moved out of it (swap, no copy) and back at the end.
    var logits: [Float] = [], grouped: [Float] = [], choice: [Int32] = [], inverseNorms: [Float] = []
    var tileCenters: [Float] = [], tileGradient: [Float] = []

    init(batch: EngineBatch, scale: Double, scratch: inout HeadScratch) {
        self.batch = batch
        self.scale = scale
        scratch.prepare(n: batch.n, plan: batch.plan, classCount: batch.classCount, subcenters: batch.subcenters,
                        d: batch.d, gathers: batch.gathers)
        swapBuffers(with: &scratch)
    }

    mutating func returnBuffers(to scratch: inout HeadScratch) {
        swapBuffers(with: &scratch)
    }

    private mutating func swapBuffers(with scratch: inout HeadScratch) {
        swap(&logits, &scratch.logits); swap(&grouped, &scratch.grouped); swap(&choice, &scratch.choice)
        swap(&inverseNorms, &scratch.inverseNorms); swap(&tileCenters, &scratch.tileCenters)
        swap(&tileGradient, &scratch.tileGradient)
    }

    // MARK: Forward

    /// Every chunk's cosines and softmax statistics, merged per sample. With `keepsLastChunk`,
    /// the last chunk stays in the buffers for the backward: its passes keep
    /// `exp(s·(cos − m_pass))` in place of the non-target cosines.
    /// Throws `NonFiniteCenterRow` at the first pass whose centers hold NaN or ±Inf.
    mutating func forward(keepsLastChunk: Bool) throws(NonFiniteCenterRow) -> ForwardStatistics {
        let n = batch.n
        var result = ForwardStatistics(
            others: .init(repeating: LogSumExp(), count: n), referenceCosine: .init(repeating: -.infinity, count: n),
            targetCosine: .init(repeating: 0, count: n), bestCosine: .init(repeating: -.infinity, count: n),
            bestClass: .init(repeating: 0, count: n), residentMaxima: [])
        for chunk in batch.chunks {
            let resident = keepsLastChunk && chunk.upperBound == batch.classCount
            for pass in batch.passes(of: chunk) {
                computeProducts(of: pass, recordsNorms: true)
                if let r = firstNonFiniteRow(inverseNorms: inverseNorms, offset: pass.firstRow, count: pass.rowCount) {
                    throw NonFiniteCenterRow(row: batch.gathers ? batch.centerRows(of: pass.classes)[r] : pass.firstRow + r)
                }
                if batch.subcenters > 1 { groupSubcenters(of: pass) }
                let targets = batch.localTargets(in: pass.classes)
                let scaleF = Float(scale)
                let stats = withClassCosines(of: pass) { buffer, columnScales, scalesOffset in
                    softmaxTileStatistics(&buffer, rows: n, ld: pass.chunkWidth, columnOffset: pass.classOffset,
                                          width: pass.classes.count, columnScales: columnScales,
                                          scalesOffset: scalesOffset, excluded: targets, scale: scaleF,
                                          clampsToUnitInterval: true, storesExponentials: resident)
                }
                // The target slot keeps its cosine (k = 1: rescaled by ν in place above).
                let cosines = batch.subcenters > 1 ? grouped : logits
                for i in 0..<n where targets[i] >= 0 {
                    result.targetCosine[i] = cosines[i * pass.chunkWidth + pass.classOffset + targets[i]]
                }
                if resident { result.residentMaxima.append(stats.maxima) }
                for i in 0..<n {
                    if stats.maxima[i] > -.infinity {
                        result.others[i].merge(maximum: scale * Double(stats.maxima[i]), sum: stats.sums[i])
                        result.referenceCosine[i] = max(result.referenceCosine[i], stats.maxima[i])
                    }
                    if stats.argmaxValues[i] > result.bestCosine[i] {
                        result.bestCosine[i] = stats.argmaxValues[i]
                        result.bestClass[i] = pass.classes.lowerBound + stats.argmax[i]
                    }
                }
            }
        }
        return result
    }

    // MARK: Backward

    /// `∂L/∂ê` (`[N, D]`), accumulating `∂L/∂W` into `centerGradient`. The last chunk first (its
    /// exponentials are in the buffers); every other chunk's products are recomputed.
    mutating func backward(_ forward: ForwardStatistics, _ losses: SampleLosses,
                           centerGradient: inout [Float]) -> [Float] {
        let (n, d) = (batch.n, batch.d)
        var unitEmbeddingGradient = [Float](repeating: 0, count: n * d)   // ∂ê [N, D]
        for (position, chunk) in batch.chunks.reversed().enumerated() {
            let resident = position == 0
            for (index, pass) in batch.passes(of: chunk).enumerated() {
                if !resident {
                    computeProducts(of: pass, recordsNorms: false)
                    if batch.subcenters > 1 { groupSubcenters(of: pass) }
                } else if batch.gathers {
                    gatherCenters(of: pass)
                }
                writeGradient(of: pass, forward, losses, residentMaxima: resident ? forward.residentMaxima[index] : nil)
                // The logits of the pass now hold G' [N, P·k].
                let (passCenters, centersOffset) = centersOperand(of: pass)
                gemm(m: n, n: d, k: pass.rowCount, a: logits, aOffset: pass.logitsOffset, lda: pass.logitsStride,
                     b: passCenters, bOffset: centersOffset, ldb: d, beta: 1, c: &unitEmbeddingGradient, ldc: d)
                for tile in batch.tiles(of: pass) {
                    accumulateCenterGradient(of: tile, in: pass, into: &centerGradient)
                }
            }
        }
        return unitEmbeddingGradient
    }

    /// Writes G' = `∂L/∂X` of a pass into its logits columns (`[N, P·k]`, G·diag(ν)): from the
    /// exponentials the forward kept (`residentMaxima` given) or recomputed from the cosines.
    /// With sub-centers, G is first written per class in `grouped`, then scattered to each
    /// class's arg-max sub-center column.
    private mutating func writeGradient(of pass: EnginePass, _ forward: ForwardStatistics, _ losses: SampleLosses,
                                        residentMaxima maxima: [Float]?) {
        let (n, scale, scaleF) = (batch.n, self.scale, Float(self.scale))
        let targets = batch.localTargets(in: pass.classes)
        let (factors, targetGradients, referenceCosine) = (losses.factors, losses.targetGradients, forward.referenceCosine)
        if let maxima {
            let rowFactors = (0..<n).map { i -> Float in
                maxima[i] == -.infinity ? 0
                    : Float(Double(factors[i]) * exp(scale * Double(maxima[i] - referenceCosine[i])))
            }
            withClassCosines(of: pass) { buffer, columnScales, scalesOffset in
                scaleExponentialsTile(&buffer, rows: n, ld: pass.chunkWidth, columnOffset: pass.classOffset,
                                      width: pass.classes.count, rowFactors: rowFactors, targets: targets,
                                      targetValues: targetGradients, columnScales: columnScales, scalesOffset: scalesOffset)
            }
        } else {
            withClassCosines(of: pass) { buffer, columnScales, scalesOffset in
                softmaxGradientTile(&buffer, rows: n, ld: pass.chunkWidth, columnOffset: pass.classOffset,
                                    width: pass.classes.count, scale: scaleF, clampsToUnitInterval: true,
                                    references: referenceCosine, factors: factors, targets: targets,
                                    targetValues: targetGradients, columnScales: columnScales, scalesOffset: scalesOffset)
            }
        }
        if batch.subcenters > 1 {
            scatterGroupGradientTile(grouped, choice: choice, gradientLD: pass.chunkWidth, gradientOffset: pass.classOffset,
                                     rows: n, groups: pass.classes.count, groupSize: batch.subcenters, into: &logits,
                                     ld: pass.logitsStride, columnOffset: pass.logitsOffset, columnScales: inverseNorms,
                                     scalesOffset: pass.firstRow)
        }
    }

    /// `∂W_r += t_r − p_r·ν_r²·w_r` for the rows of one cache tile, with `t = G'_tᵀ·ê` (one
    /// GEMM into `tileGradient`).
    private mutating func accumulateCenterGradient(of tile: Range<Int>, in pass: EnginePass,
                                                   into centerGradient: inout [Float]) {
        let (n, d, k) = (batch.n, batch.d, batch.subcenters)
        let tileRows = tile.count * k
        gemm(transposeA: true, m: tileRows, n: d, k: n, a: logits, aOffset: pass.logitsOffset(of: tile),
             lda: pass.logitsStride, b: batch.unitEmbeddings, ldb: d, c: &tileGradient, ldc: d)
        accumulateNormalizedRowsGradient(tileGradient, rows: tileRows, centers: batch.centers,
                                         firstRow: tile.lowerBound * k,
                                         rowIndices: batch.gathers ? batch.centerRows(of: tile) : nil, columns: d,
                                         inverseNorms: inverseNorms, offset: tile.lowerBound * k, into: &centerGradient)
    }

    // MARK: Pieces shared by both directions

    /// Partial FC: copies the pass's center rows into `tileCenters` and writes their ν.
    private mutating func gatherCenters(of pass: EnginePass) {
        gatherRowsWithInverseNorms(batch.centers, rowIndices: batch.centerRows(of: pass.classes), columns: batch.d,
                                   into: &tileCenters, inverseNorms: &inverseNorms, offset: pass.firstRow)
    }

    /// The pass's centers as a GEMM operand: the gathered tile (Partial FC) or the pass's rows
    /// of `W`, with the offset of their first element.
    private func centersOperand(of pass: EnginePass) -> (centers: [Float], offset: Int) {
        batch.gathers ? (tileCenters, 0) : (batch.centers, pass.firstRow * batch.d)
    }

    /// X = ê·W_pᵀ for a pass, raw products into its logits columns (`[N, P·k]`). Gathers the
    /// rows first with Partial FC (writing their ν); otherwise writes the ν of the pass's rows
    /// when `recordsNorms`.
    private mutating func computeProducts(of pass: EnginePass, recordsNorms: Bool) {
        let d = batch.d
        if batch.gathers {
            gatherCenters(of: pass)
        } else if recordsNorms {
            rowInverseNorms(batch.centers, firstRow: pass.firstRow, rows: pass.rowCount, columns: d,
                            into: &inverseNorms, offset: pass.firstRow)
        }
        let (passCenters, centersOffset) = centersOperand(of: pass)
        gemm(transposeB: true, m: batch.n, n: pass.rowCount, k: d, a: batch.unitEmbeddings, lda: d, b: passCenters,
             bOffset: centersOffset, ldb: d, c: &logits, cOffset: pass.logitsOffset, ldc: pass.logitsStride)
    }

    /// Sub-centers: turns the pass's products into cosines in place and writes each class's
    /// maximum over its `k` columns into `grouped` (arg-max into `choice`).
    private mutating func groupSubcenters(of pass: EnginePass) {
        scaleColumns(&logits, rows: batch.n, ld: pass.logitsStride, columnOffset: pass.logitsOffset,
                     width: pass.rowCount, scales: inverseNorms, scalesOffset: pass.firstRow)
        groupMaximaTile(logits, rows: batch.n, inputLD: pass.logitsStride, inputOffset: pass.logitsOffset,
                        groups: pass.classes.count, groupSize: batch.subcenters, into: &grouped, choice: &choice,
                        outputLD: pass.chunkWidth, outputOffset: pass.classOffset)
    }

    /// Runs `body` on the buffer holding the pass's class columns: with sub-centers `grouped`
    /// (already cosines; no column scales), else the logits (`k = 1`: one column per class),
    /// whose raw products are scaled by ν (`inverseNorms` from the pass's first row) on the way.
    private mutating func withClassCosines<R>(
        of pass: EnginePass, _ body: (_ buffer: inout [Float], _ columnScales: [Float]?, _ scalesOffset: Int) -> R
    ) -> R {
        batch.subcenters > 1 ? body(&grouped, nil, 0) : body(&logits, inverseNorms, pass.firstRow)
    }
}
