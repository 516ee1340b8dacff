// Row kernels of the margin head's softmax cross-entropy over a tile of an `[N, C]` logits
// buffer (C = all K classes in play, or one chunk of them): row maximum and arg-maximum,
// exponentials and their sum relative to the maximum, and the in-place gradient. The tile
// kernels (`TileKernels.swift`) call them row by row.
//
// Rows are independent: each tile kernel splits them over `BLAS.threadCount` workers with
// `DispatchQueue.concurrentPerform`. The kernels run between GEMMs, never during one, so these
// workers and OpenBLAS's own threads never compete for the cores.
//
// Notation, per row with inputs x_j (cosines), scale s and the map c(x) = clamp(x, −1, 1)
// (identity when `clampsToUnitInterval` is false), target column t (excluded; −1 for none):
//   m = max_{j≠t} c(x_j)                 (in cosine units; the logit maximum is s·m)
//   S = Σ_{j≠t} exp(s·(c(x_j) − m))      (accumulated in 16 Float lanes, flushed to Double
//                                          every 1024 elements)
import Dispatch
import TensorCore

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

/// The per-row results of `softmaxTileStatistics`, each `[rows]`.
struct SoftmaxRowStatistics: Sendable {
    /// `m`: the largest mapped input `c(x_j)` over the non-target columns; −∞ when the row has
    /// no non-target column.
    var maxima: [Float]
    /// `S = Σ_{j≠t} exp(s·(c(x_j) − m))` (0 when there is no non-target column).
    var sums: [Double]
    /// The first column of the largest `c(x_j)` over ALL columns, the target included.
    var argmax: [Int]
    /// `c(x)` at `argmax`.
    var argmaxValues: [Float]

    /// Zeros for `rows` rows.
    init(rows: Int) {
        maxima = .init(repeating: 0, count: rows)
        sums = .init(repeating: 0, count: rows)
        argmax = .init(repeating: 0, count: rows)
        argmaxValues = .init(repeating: 0, count: rows)
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

@inline(__always)
func multiplyColumns(_ row: UnsafeMutablePointer<Float>, _ scales: UnsafePointer<Float>, _ width: Int) {
    var j = 0
    while j + 16 <= width {
        let x = UnsafeRawPointer(row + j).loadUnaligned(as: SIMD16<Float>.self)
        let s = UnsafeRawPointer(scales + j).loadUnaligned(as: SIMD16<Float>.self)
        UnsafeMutableRawPointer(row + j).storeBytes(of: x * s, as: SIMD16<Float>.self)
        j += 16
    }
    while j < width { row[j] *= scales[j]; j += 1 }
}

@inline(__always)
func gradientRow(_ row: UnsafeMutablePointer<Float>, _ width: Int, target t: Int, targetValue: Float, factor: Float,
                 reference: Float, scale: Float, clamps: Bool, columnScales: UnsafeMutablePointer<Float>?) {
    precondition(t >= -1 && t < width, "softmaxGradientTile: target \(t) outside 0..<\(width)")
    if reference == -.infinity {
        for j in 0..<width { row[j] = 0 }
    } else if let columnScales {
        var j = 0
        while j + 16 <= width {
            let s = UnsafeRawPointer(columnScales + j).loadUnaligned(as: SIMD16<Float>.self)
            let x = UnsafeRawPointer(row + j).loadUnaligned(as: SIMD16<Float>.self) * s
            let g = softmaxExponential((clampVector(x, clamps) - reference) * scale) * factor
            UnsafeMutableRawPointer(row + j).storeBytes(of: g * s, as: SIMD16<Float>.self)
            j += 16
        }
        while j < width {
            let x = row[j] * columnScales[j]
            row[j] = softmaxExponential((clampScalar(x, clamps) - reference) * scale) * factor * columnScales[j]
            j += 1
        }
    } else {
        scaledExponentials(row, width, scale: scale, reference: reference, factor: factor, clamps: clamps)
    }
    if t >= 0 { row[t] = targetValue * (columnScales?[t] ?? 1) }
}
