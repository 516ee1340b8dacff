// Row kernels of the margin head's softmax cross-entropy over an `[N, C]` logits buffer
// (C = all K classes, or one chunk of them): row maximum and arg-maximum, exponentials and
// their sum relative to the maximum, and the in-place gradient. Plus the row normalization
// of selected center rows and its accumulating backward, and the sub-center max/scatter.
//
// Rows are independent: each kernel splits them over `BLAS.threadCount` workers with
// `DispatchQueue.concurrentPerform`. The kernels run between GEMMs, never during one, so the
// cores are never oversubscribed (PLATFORM.md).
//
// Notation, per row with inputs x_j (cosines), scale s and the map c(x) = clamp(x, −1, 1)
// (identity when `clampsToUnitInterval` is false), target column t (excluded; −1 for none):
//   m = max_{j≠t} c(x_j)                 (in cosine units; the logit maximum is s·m)
//   S = Σ_{j≠t} exp(s·(c(x_j) − m))      (accumulated in 16 Float lanes, flushed to Double
//                                          every 1024 elements)
import Dispatch

/// A pointer shared by the workers of one parallel kernel. Contract: each worker reads and
/// writes only the rows it was given, so writes never overlap.
struct SharedPointer<T>: @unchecked Sendable {
    let base: UnsafeMutablePointer<T>
}

/// Runs `body` over `0..<rows` split into contiguous row ranges, in parallel when the work
/// (`rows·columns` elements) is large enough to pay for the dispatch.
func forEachRowRange(rows: Int, columns: Int, _ body: @Sendable (Range<Int>) -> Void) {
    let workers = min(max(BLAS.threadCount, 1), rows)
    if workers <= 1 || rows * columns < 1 << 15 {
        body(0..<rows)
        return
    }
    DispatchQueue.concurrentPerform(iterations: workers) { w in
        body((rows * w / workers)..<(rows * (w + 1) / workers))
    }
}

/// The per-row results of `softmaxRowStatistics`, each `[rows]`.
public struct SoftmaxRowStatistics: Sendable {
    /// `m`: the largest mapped input `c(x_j)` over the non-target columns; −∞ when the row has
    /// no non-target column.
    public var maxima: [Float]
    /// `S = Σ_{j≠t} exp(s·(c(x_j) − m))` (0 when there is no non-target column).
    public var sums: [Double]
    /// The first column of the largest `c(x_j)` over ALL columns, the target included.
    public var argmax: [Int]
    /// `c(x)` at `argmax`.
    public var argmaxValues: [Float]
}

/// Row statistics of a softmax over `s·c(x)`, optionally writing the exponentials in place.
///
/// - Parameters:
///   - buffer: at least `[rows, columns]` inputs x, finite (rows are `columns` apart). With `storesExponentials`, every non-target
///     element is replaced by `exp(s·(c(x_j) − m))`; the target slot keeps its input.
///   - excluded: `[rows]`, each row's target column in `0..<columns`, or −1 for none.
///   - scale: `s > 0`.
/// - Returns: `m`, `S`, the arg-maximum and its value per row (see `SoftmaxRowStatistics`).
public func softmaxRowStatistics(_ buffer: inout [Float], rows: Int, columns: Int, excluded: [Int],
                                 scale: Float, clampsToUnitInterval: Bool,
                                 storesExponentials: Bool) -> SoftmaxRowStatistics {
    precondition(buffer.count >= rows * columns && excluded.count == rows,
                 "softmaxRowStatistics: buffer \(buffer.count) vs [\(rows), \(columns)], excluded \(excluded.count)")
    precondition(columns >= 1, "softmaxRowStatistics: no columns")
    var result = SoftmaxRowStatistics(maxima: .init(repeating: 0, count: rows), sums: .init(repeating: 0, count: rows),
                                      argmax: .init(repeating: 0, count: rows), argmaxValues: .init(repeating: 0, count: rows))
    buffer.withUnsafeMutableBufferPointer { pb in
        result.maxima.withUnsafeMutableBufferPointer { pm in
            result.sums.withUnsafeMutableBufferPointer { ps in
                result.argmax.withUnsafeMutableBufferPointer { pa in
                    result.argmaxValues.withUnsafeMutableBufferPointer { pv in
                        excluded.withUnsafeBufferPointer { pe in
                            let b = SharedPointer(base: pb.baseAddress!), m = SharedPointer(base: pm.baseAddress!)
                            let s = SharedPointer(base: ps.baseAddress!), a = SharedPointer(base: pa.baseAddress!)
                            let v = SharedPointer(base: pv.baseAddress!)
                            let e = SharedPointer(base: UnsafeMutablePointer(mutating: pe.baseAddress!))
                            forEachRowRange(rows: rows, columns: columns) { range in
                                for i in range {
                                    let row = b.base + i * columns
                                    let t = e.base[i]
                                    precondition(t >= -1 && t < columns, "softmaxRowStatistics: target \(t) outside 0..<\(columns)")
                                    let stats = rowStatistics(row, columns, target: t, scale: scale,
                                                              clamps: clampsToUnitInterval, stores: storesExponentials)
                                    m.base[i] = stats.maximum
                                    s.base[i] = stats.sum
                                    a.base[i] = stats.argmax
                                    v.base[i] = stats.argmaxValue
                                }
                            }
                        }
                    }
                }
            }
        }
    }
    return result
}

/// Turns the exponentials left by `softmaxRowStatistics(storesExponentials: true)` into the
/// gradient, in place: `x_j ← factor·x_j` for every column, then `x_t ← targetValue`.
///
/// - Parameters:
///   - buffer: `[rows, columns]`.
///   - factors, targets, targetValues: `[rows]` each; `targets[i] = −1` leaves no slot to set.
public func scaleRowsSettingTargets(_ buffer: inout [Float], rows: Int, columns: Int, factors: [Float],
                                    targets: [Int], targetValues: [Float]) {
    precondition(buffer.count >= rows * columns && factors.count == rows && targets.count == rows
                 && targetValues.count == rows, "scaleRowsSettingTargets: sizes do not match [\(rows), \(columns)]")
    buffer.withUnsafeMutableBufferPointer { pb in
        let b = SharedPointer(base: pb.baseAddress!)
        forEachRowRange(rows: rows, columns: columns) { range in
            for i in range {
                let row = b.base + i * columns
                let f = factors[i]
                for j in 0..<columns { row[j] *= f }
                let t = targets[i]
                if t >= 0 { precondition(t < columns, "target \(t) ≥ \(columns)"); row[t] = targetValues[i] }
            }
        }
    }
}

/// The gradient from recomputed inputs, in place: `x_j ← factor·exp(s·(c(x_j) − reference))`,
/// then `x_t ← targetValue`. A row whose reference is −∞ (no non-target column anywhere) gets
/// zeros.
///
/// - Parameters:
///   - buffer: `[rows, columns]` inputs x.
///   - references, factors, targets, targetValues: `[rows]` each (reference in the units of `c(x)`).
public func exponentiateRowsSettingTargets(_ buffer: inout [Float], rows: Int, columns: Int, scale: Float,
                                           clampsToUnitInterval: Bool, references: [Float], factors: [Float],
                                           targets: [Int], targetValues: [Float]) {
    precondition(buffer.count >= rows * columns && references.count == rows && factors.count == rows
                 && targets.count == rows && targetValues.count == rows,
                 "exponentiateRowsSettingTargets: sizes do not match [\(rows), \(columns)]")
    buffer.withUnsafeMutableBufferPointer { pb in
        let b = SharedPointer(base: pb.baseAddress!)
        forEachRowRange(rows: rows, columns: columns) { range in
            for i in range {
                let row = b.base + i * columns
                let reference = references[i]
                if reference == -.infinity {
                    for j in 0..<columns { row[j] = 0 }
                } else {
                    scaledExponentials(row, columns, scale: scale, reference: reference, factor: factors[i],
                                       clamps: clampsToUnitInterval)
                }
                let t = targets[i]
                if t >= 0 { precondition(t < columns, "target \(t) ≥ \(columns)"); row[t] = targetValues[i] }
            }
        }
    }
}

// MARK: - Row internals

@inline(__always)
func clampVector(_ v: SIMD16<Float>, _ clamps: Bool) -> SIMD16<Float> {
    guard clamps else { return v }
    var c = v   // not `clamped(lowerBound:upperBound:)`: that is a call per vector (see vectorExp)
    c.replace(with: 1, where: v .> 1)
    c.replace(with: -1, where: v .< -1)
    return c
}

@inline(__always)
func clampScalar(_ v: Float, _ clamps: Bool) -> Float { clamps ? min(max(v, -1), 1) : v }

/// Maximum and first arg-maximum of `c(x)` over `row[range]`: one vector pass for the
/// maximum (`max c(x) = c(max x)`, c being monotone), then a search for its first occurrence
/// that stops there.
@inline(__always)
func maximumAndArgmax(_ row: UnsafeMutablePointer<Float>, _ range: Range<Int>, clamps: Bool) -> (Float, Int) {
    var best = SIMD16<Float>(repeating: -.infinity)
    var j = range.lowerBound
    while j + 16 <= range.upperBound {
        let v = UnsafeRawPointer(row + j).loadUnaligned(as: SIMD16<Float>.self)
        best.replace(with: v, where: v .> best)
        j += 16
    }
    var maximum = best.max()
    while j < range.upperBound { maximum = max(maximum, row[j]); j += 1 }
    maximum = clampScalar(maximum, clamps)
    j = range.lowerBound
    while j + 16 <= range.upperBound {
        let v = clampVector(UnsafeRawPointer(row + j).loadUnaligned(as: SIMD16<Float>.self), clamps)
        if any(v .== maximum) { break }
        j += 16
    }
    while j < range.upperBound && clampScalar(row[j], clamps) != maximum { j += 1 }
    return (maximum, j)
}

/// `Σ exp(s·(c(x_j) − m))` over `row[range]`, optionally storing each term in place.
@inline(never)   // a real function, so that the exponential is inlined into its loop
func exponentialSum(_ row: UnsafeMutablePointer<Float>, _ range: Range<Int>, scale: Float, reference: Float,
                    clamps: Bool, stores: Bool) -> Double {
    var total = 0.0
    var block = SIMD16<Float>()
    var inBlock = 0
    var j = range.lowerBound
    while j + 16 <= range.upperBound {
        let v = clampVector(UnsafeRawPointer(row + j).loadUnaligned(as: SIMD16<Float>.self), clamps)
        let e = softmaxExponential((v - reference) * scale)
        if stores { UnsafeMutableRawPointer(row + j).storeBytes(of: e, as: SIMD16<Float>.self) }
        block += e
        inBlock += 1
        if inBlock == 64 { total += Double(block.sum()); block = SIMD16(); inBlock = 0 }
        j += 16
    }
    total += Double(block.sum())
    while j < range.upperBound {
        let e = softmaxExponential((clampScalar(row[j], clamps) - reference) * scale)
        if stores { row[j] = e }
        total += Double(e)
        j += 1
    }
    return total
}

@inline(never)   // as exponentialSum
func scaledExponentials(_ row: UnsafeMutablePointer<Float>, _ n: Int, scale: Float, reference: Float,
                        factor: Float, clamps: Bool) {
    var j = 0
    while j + 16 <= n {
        let v = clampVector(UnsafeRawPointer(row + j).loadUnaligned(as: SIMD16<Float>.self), clamps)
        UnsafeMutableRawPointer(row + j).storeBytes(of: softmaxExponential((v - reference) * scale) * factor, as: SIMD16<Float>.self)
        j += 16
    }
    while j < n { row[j] = softmaxExponential((clampScalar(row[j], clamps) - reference) * scale) * factor; j += 1 }
}

func rowStatistics(_ row: UnsafeMutablePointer<Float>, _ columns: Int, target t: Int, scale: Float,
                   clamps: Bool, stores: Bool) -> (maximum: Float, sum: Double, argmax: Int, argmaxValue: Float) {
    // Non-target maximum over the two segments around the target.
    let left = 0..<(t >= 0 ? t : columns)
    let right = (t >= 0 ? t + 1 : columns)..<columns
    var (maximum, index) = left.isEmpty ? (-Float.infinity, Int.max) : maximumAndArgmax(row, left, clamps: clamps)
    if !right.isEmpty {
        let (m, i) = maximumAndArgmax(row, right, clamps: clamps)
        if m > maximum { maximum = m; index = i }
    }
    var argmax = index, argmaxValue = maximum
    if t >= 0 {
        let ct = clampScalar(row[t], clamps)
        if ct > maximum || (ct == maximum && t < index) { argmax = t; argmaxValue = ct }
    }
    guard maximum > -.infinity else { return (maximum, 0, argmax, argmaxValue) }
    var sum = 0.0
    if !left.isEmpty { sum += exponentialSum(row, left, scale: scale, reference: maximum, clamps: clamps, stores: stores) }
    if !right.isEmpty { sum += exponentialSum(row, right, scale: scale, reference: maximum, clamps: clamps, stores: stores) }
    return (maximum, sum, argmax, argmaxValue)
}

// MARK: - Selected-row normalization

/// Normalizes selected rows of a `[R, columns]` matrix into a compact buffer:
/// `destination[r] = source[rowIndices[r]] / max(‖source[rowIndices[r]]‖, ε)` — the same values
/// as `l2NormalizedRows` row by row.
///
/// - Parameters:
///   - source: `[R, columns]` row-major.
///   - rowIndices: `[rows]`, each in `0..<R`.
///   - destination: at least `rows·columns` elements; rows `0..<rows` are overwritten.
/// - Returns: the norms `[rows]` (before the ε clamp).
public func l2NormalizeRows(_ source: [Float], rowIndices: [Int], columns: Int,
                            into destination: inout [Float]) -> [Float] {
    let rows = rowIndices.count
    precondition(destination.count >= rows * columns, "l2NormalizeRows: destination too small")
    var norms = [Float](repeating: 0, count: rows)
    source.withUnsafeBufferPointer { ps in
        destination.withUnsafeMutableBufferPointer { pd in
            for r in 0..<rows {
                let index = rowIndices[r]
                precondition(index >= 0 && (index + 1) * columns <= source.count, "l2NormalizeRows: row \(index) out of range")
                let row = ps.baseAddress! + index * columns
                let norm = Float(simdDot(row, row, columns).squareRoot())
                norms[r] = norm
                let inverse = 1 / max(norm, l2NormalizationEpsilon)
                let dst = pd.baseAddress! + r * columns
                for j in 0..<columns { dst[j] = row[j] * inverse }
            }
        }
    }
    return norms
}

/// The backward of `l2NormalizeRows`, accumulated into selected rows:
/// `target[rowIndices[r]] += (g_r − x̂_r·(x̂_r·g_r)) / max(norm_r, ε)` — the same values as
/// `l2NormalizedRowsBackward` followed by `+=`.
///
/// - Parameters:
///   - gradient: `∂L/∂x̂`, at least `[rows, columns]` (compact).
///   - normalized: `x̂`, at least `[rows, columns]` (compact).
///   - norms: `[rows]`.
///   - rowIndices: `[rows]` rows of `target`, distinct.
///   - target: `[R, columns]`.
public func accumulateL2NormalizedRowsBackward(gradient: [Float], normalized: [Float], norms: [Float],
                                               rowIndices: [Int], columns: Int, into target: inout [Float]) {
    let rows = rowIndices.count
    precondition(gradient.count >= rows * columns && normalized.count >= rows * columns && norms.count == rows,
                 "accumulateL2NormalizedRowsBackward: sizes do not match [\(rows), \(columns)]")
    gradient.withUnsafeBufferPointer { pg in
        normalized.withUnsafeBufferPointer { pn in
            target.withUnsafeMutableBufferPointer { pt in
                for r in 0..<rows {
                    let index = rowIndices[r]
                    precondition(index >= 0 && (index + 1) * columns <= pt.count, "row \(index) out of range")
                    let g = pg.baseAddress! + r * columns
                    let n = pn.baseAddress! + r * columns
                    let projection = Float(simdDot(n, g, columns))
                    let inverse = 1 / max(norms[r], l2NormalizationEpsilon)
                    let dst = pt.baseAddress! + index * columns
                    for j in 0..<columns { dst[j] += (g[j] - n[j] * projection) * inverse }
                }
            }
        }
    }
}

// MARK: - Sub-center grouping

/// The maximum over consecutive groups of columns: `output[i, c] = max_{s<g} input[i, c·g + s]`,
/// with the first arg-maximum `s` in `choice[i, c]`.
///
/// - Parameters:
///   - input: `[rows, groups·groupSize]`.
///   - output, choice: at least `[rows, groups]` each; overwritten.
public func groupMaxima(_ input: [Float], rows: Int, groups: Int, groupSize: Int,
                        into output: inout [Float], choice: inout [Int32]) {
    precondition(input.count >= rows * groups * groupSize && output.count >= rows * groups
                 && choice.count >= rows * groups, "groupMaxima: sizes do not match")
    input.withUnsafeBufferPointer { pi in
        output.withUnsafeMutableBufferPointer { po in
            choice.withUnsafeMutableBufferPointer { pc in
                for cell in 0..<(rows * groups) {
                    let base = pi.baseAddress! + cell * groupSize
                    var best = base[0], which: Int32 = 0
                    for s in 1..<max(groupSize, 1) where base[s] > best { best = base[s]; which = Int32(s) }
                    po[cell] = best
                    pc[cell] = which
                }
            }
        }
    }
}

/// The backward of `groupMaxima`: `output[i, c·g + s] = gradient[i, c]` where `s = choice[i, c]`,
/// else 0.
public func scatterGroupGradient(_ gradient: [Float], choice: [Int32], rows: Int, groups: Int, groupSize: Int,
                                 into output: inout [Float]) {
    precondition(gradient.count >= rows * groups && choice.count >= rows * groups
                 && output.count >= rows * groups * groupSize, "scatterGroupGradient: sizes do not match")
    output.withUnsafeMutableBufferPointer { po in
        for cell in 0..<(rows * groups) {
            let base = po.baseAddress! + cell * groupSize
            for s in 0..<groupSize { base[s] = 0 }
            base[Int(choice[cell])] = gradient[cell]
        }
    }
}
