// Kernels of the margin head's folded normalization: the class centers W are never
// normalized into a copy. The head multiplies by raw W and rescales columns instead.
//
// For a center row w_k with inverse norm ν_k = 1/max(‖w_k‖, ε) and ŵ_k = ν_k·w_k:
//   cosines      cos_ik = (ê_i·w_k)·ν_k                    (raw sgemm, then a column rescale)
//   ∂ê           Σ_k G_ik·ŵ_k = Σ_k (G_ik·ν_k)·w_k = G'·W  (G' = G with column k scaled by ν_k)
//   ∂W_k         (∂Ŵ_k − ŵ_k·(ŵ_k·∂Ŵ_k))·ν_k  with ∂Ŵ_k = Σ_i G_ik·ê_i
//                = Σ_i G'_ik·ê_i − p_k·ν_k²·w_k,   p_k = ŵ_k·∂Ŵ_k = Σ_i G_ik·cos_ik
// so ∂W is one sgemm accumulated straight into the parameter gradient (β = 1) plus a per-row
// correction, and p_k is summed in the same pass that writes G' over the logits tile.
//
// Buffers are tiles of a row-major matrix: `rows` rows `ld` elements apart, the tile starting
// at column `columnOffset`, `width` columns wide. Rows run in parallel over `BLAS.threadCount`
// workers between GEMMs (never during one); each worker writes only its rows, and column
// sums (p) go to per-worker partial buffers added up at the end.
import Dispatch

/// Runs `body(worker, rows)` over `0..<rows` split into `workers` contiguous ranges (1 when the
/// work is too small to pay for the dispatch).
///
/// - Returns: the number of workers used.
@discardableResult
func forEachRowRangeIndexed(rows: Int, columns: Int, _ body: @Sendable (Int, Range<Int>) -> Void) -> Int {
    let workers = workerCount(rows: rows, columns: columns)
    if workers <= 1 {
        body(0, 0..<rows)
        return 1
    }
    DispatchQueue.concurrentPerform(iterations: workers) { w in
        body(w, (rows * w / workers)..<(rows * (w + 1) / workers))
    }
    return workers
}

@inline(__always)
func workerCount(rows: Int, columns: Int) -> Int {
    let workers = min(max(BLAS.threadCount, 1), rows)
    return workers <= 1 || rows * columns < 1 << 15 ? 1 : workers
}

// MARK: - Center rows

/// The inverse norms of contiguous rows: `inverseNorms[offset + r] = 1/max(‖source[firstRow + r]‖, ε)`
/// for `r` in `0..<rows` (ε = `l2NormalizationEpsilon`, as `l2NormalizedRows`).
///
/// - Parameters:
///   - source: `[R, columns]` row-major, `firstRow + rows ≤ R`.
///   - inverseNorms: at least `offset + rows` elements.
public func rowInverseNorms(_ source: [Float], firstRow: Int, rows: Int, columns: Int,
                            into inverseNorms: inout [Float], offset: Int) {
    precondition(firstRow >= 0 && rows >= 0 && (firstRow + rows) * columns <= source.count
                 && offset >= 0 && offset + rows <= inverseNorms.count,
                 "rowInverseNorms: rows \(firstRow)..<\(firstRow + rows) of \(source.count / max(columns, 1)), "
                 + "output \(offset)..<\(offset + rows) of \(inverseNorms.count)")
    source.withUnsafeBufferPointer { ps in
        inverseNorms.withUnsafeMutableBufferPointer { pi in
            let s = SharedPointer(base: UnsafeMutablePointer(mutating: ps.baseAddress! + firstRow * columns))
            let v = SharedPointer(base: pi.baseAddress! + offset)
            forEachRowRange(rows: rows, columns: columns) { range in
                for r in range {
                    let row = s.base + r * columns
                    v.base[r] = 1 / max(Float(simdDot(row, row, columns).squareRoot()), l2NormalizationEpsilon)
                }
            }
        }
    }
}

/// Copies selected rows into a compact buffer and records their inverse norms:
/// `destination[r] = source[rowIndices[r]]`, `inverseNorms[offset + r] = 1/max(‖source[rowIndices[r]]‖, ε)`.
///
/// - Parameters:
///   - source: `[R, columns]`.
///   - rowIndices: each in `0..<R`.
///   - destination: at least `rowIndices.count·columns` elements.
///   - inverseNorms: at least `offset + rowIndices.count` elements.
public func gatherRowsWithInverseNorms(_ source: [Float], rowIndices: [Int], columns: Int,
                                       into destination: inout [Float], inverseNorms: inout [Float], offset: Int) {
    let rows = rowIndices.count
    precondition(destination.count >= rows * columns && offset >= 0 && offset + rows <= inverseNorms.count,
                 "gatherRowsWithInverseNorms: buffers too small for \(rows) rows")
    for index in rowIndices {
        precondition(index >= 0 && (index + 1) * columns <= source.count, "gatherRowsWithInverseNorms: row \(index) out of range")
    }
    source.withUnsafeBufferPointer { ps in
        destination.withUnsafeMutableBufferPointer { pd in
            inverseNorms.withUnsafeMutableBufferPointer { pi in
                rowIndices.withUnsafeBufferPointer { px in
                    let s = SharedPointer(base: UnsafeMutablePointer(mutating: ps.baseAddress!))
                    let d = SharedPointer(base: pd.baseAddress!), v = SharedPointer(base: pi.baseAddress! + offset)
                    let x = SharedPointer(base: UnsafeMutablePointer(mutating: px.baseAddress!))
                    forEachRowRange(rows: rows, columns: columns) { range in
                        for r in range {
                            let row = s.base + x.base[r] * columns
                            let dst = d.base + r * columns
                            for j in 0..<columns { dst[j] = row[j] }
                            v.base[r] = 1 / max(Float(simdDot(row, row, columns).squareRoot()), l2NormalizationEpsilon)
                        }
                    }
                }
            }
        }
    }
}

/// The per-row correction of the folded normalization backward, for contiguous rows:
/// `gradient[firstRow + r] −= projections[r]·ν_r²·centers[firstRow + r]`, `ν_r = inverseNorms[offset + r]`.
/// Together with `∂W += G'ᵀ·ê` it gives `∂W` through the row normalization (see the file header).
///
/// - Parameters:
///   - centers, gradient: `[R, columns]` each.
///   - projections: `p`, at least `rows` elements.
///   - inverseNorms: at least `offset + rows` elements.
public func subtractNormalizationProjection(centers: [Float], firstRow: Int, rows: Int, columns: Int,
                                            projections: [Float], inverseNorms: [Float], offset: Int,
                                            from gradient: inout [Float]) {
    precondition(firstRow >= 0 && (firstRow + rows) * columns <= centers.count && centers.count == gradient.count
                 && projections.count >= rows && offset >= 0 && offset + rows <= inverseNorms.count,
                 "subtractNormalizationProjection: sizes do not match rows \(firstRow)..<\(firstRow + rows)")
    centers.withUnsafeBufferPointer { pc in
        gradient.withUnsafeMutableBufferPointer { pg in
            projections.withUnsafeBufferPointer { pp in
                inverseNorms.withUnsafeBufferPointer { pi in
                    let c = SharedPointer(base: UnsafeMutablePointer(mutating: pc.baseAddress! + firstRow * columns))
                    let g = SharedPointer(base: pg.baseAddress! + firstRow * columns)
                    let p = SharedPointer(base: UnsafeMutablePointer(mutating: pp.baseAddress!))
                    let v = SharedPointer(base: UnsafeMutablePointer(mutating: pi.baseAddress! + offset))
                    forEachRowRange(rows: rows, columns: columns) { range in
                        for r in range {
                            let q = p.base[r] * v.base[r] * v.base[r]
                            if q == 0 { continue }
                            let src = c.base + r * columns, dst = g.base + r * columns
                            for j in 0..<columns { dst[j] -= q * src[j] }
                        }
                    }
                }
            }
        }
    }
}

/// The gathered form of `subtractNormalizationProjection`, accumulating a compact gradient into
/// selected rows: `gradient[rowIndices[r]] += compact[r] − projections[r]·ν_r²·rows[r]`.
///
/// - Parameters:
///   - compact: `Σ_i G'_ir·ê_i`, at least `[rowIndices.count, columns]`.
///   - gatheredCenters: the gathered rows of W, at least `[rowIndices.count, columns]`.
///   - rowIndices: distinct rows of `gradient`.
///   - gradient: `[R, columns]`.
public func accumulateGatheredRows(_ compact: [Float], gatheredCenters: [Float], rowIndices: [Int], columns: Int,
                                   projections: [Float], inverseNorms: [Float], offset: Int,
                                   into gradient: inout [Float]) {
    let rows = rowIndices.count
    precondition(compact.count >= rows * columns && gatheredCenters.count >= rows * columns
                 && projections.count >= rows && offset >= 0 && offset + rows <= inverseNorms.count,
                 "accumulateGatheredRows: sizes do not match \(rows) rows")
    for index in rowIndices {
        precondition(index >= 0 && (index + 1) * columns <= gradient.count, "accumulateGatheredRows: row \(index) out of range")
    }
    compact.withUnsafeBufferPointer { pa in
        gatheredCenters.withUnsafeBufferPointer { pc in
            gradient.withUnsafeMutableBufferPointer { pg in
                let a = SharedPointer(base: UnsafeMutablePointer(mutating: pa.baseAddress!))
                let c = SharedPointer(base: UnsafeMutablePointer(mutating: pc.baseAddress!))
                let g = SharedPointer(base: pg.baseAddress!)
                forEachRowRange(rows: rows, columns: columns) { range in
                    for r in range {
                        let q = projections[r] * inverseNorms[offset + r] * inverseNorms[offset + r]
                        let src = a.base + r * columns, w = c.base + r * columns
                        let dst = g.base + rowIndices[r] * columns
                        for j in 0..<columns { dst[j] += src[j] - q * w[j] }
                    }
                }
            }
        }
    }
}

// MARK: - Logit tiles

/// Multiplies each column of a tile by its scale, in place: `x_ij ← x_ij·scales[scalesOffset + j]`.
public func scaleColumns(_ buffer: inout [Float], rows: Int, ld: Int, columnOffset: Int, width: Int,
                         scales: [Float], scalesOffset: Int) {
    checkTile("scaleColumns", buffer.count, rows: rows, ld: ld, columnOffset: columnOffset, width: width)
    precondition(scalesOffset >= 0 && scalesOffset + width <= scales.count, "scaleColumns: scales too short")
    buffer.withUnsafeMutableBufferPointer { pb in
        scales.withUnsafeBufferPointer { ps in
            let b = SharedPointer(base: pb.baseAddress! + columnOffset)
            let s = SharedPointer(base: UnsafeMutablePointer(mutating: ps.baseAddress! + scalesOffset))
            forEachRowRange(rows: rows, columns: width) { range in
                for i in range { multiplyColumns(b.base + i * ld, s.base, width) }
            }
        }
    }
}

/// Row statistics of a softmax over `s·c(x)` on a tile (`softmaxRowStatistics` semantics, see
/// there), after first rescaling the tile's columns in place when `columnScales` is given
/// (`x_ij ← x_ij·columnScales[scalesOffset + j]`: raw products `ê·w` become cosines).
///
/// - Parameters:
///   - excluded: `[rows]`, each row's target column within the tile, or −1.
/// - Returns: per row `m`, `S`, the tile-local arg-maximum and its value.
public func softmaxTileStatistics(_ buffer: inout [Float], rows: Int, ld: Int, columnOffset: Int, width: Int,
                                  columnScales: [Float]?, scalesOffset: Int = 0, excluded: [Int],
                                  scale: Float, clampsToUnitInterval: Bool) -> SoftmaxRowStatistics {
    checkTile("softmaxTileStatistics", buffer.count, rows: rows, ld: ld, columnOffset: columnOffset, width: width)
    precondition(width >= 1 && excluded.count == rows, "softmaxTileStatistics: width \(width), excluded \(excluded.count)")
    if let columnScales {
        precondition(scalesOffset >= 0 && scalesOffset + width <= columnScales.count, "softmaxTileStatistics: scales too short")
    }
    var result = SoftmaxRowStatistics(maxima: .init(repeating: 0, count: rows), sums: .init(repeating: 0, count: rows),
                                      argmax: .init(repeating: 0, count: rows), argmaxValues: .init(repeating: 0, count: rows))
    let scales = columnScales ?? []
    buffer.withUnsafeMutableBufferPointer { pb in
        scales.withUnsafeBufferPointer { pscale in
            result.maxima.withUnsafeMutableBufferPointer { pm in
                result.sums.withUnsafeMutableBufferPointer { ps in
                    result.argmax.withUnsafeMutableBufferPointer { pa in
                        result.argmaxValues.withUnsafeMutableBufferPointer { pv in
                            let b = SharedPointer(base: pb.baseAddress! + columnOffset)
                            let sc = columnScales == nil ? nil
                                : SharedPointer(base: UnsafeMutablePointer(mutating: pscale.baseAddress! + scalesOffset))
                            let m = SharedPointer(base: pm.baseAddress!), s = SharedPointer(base: ps.baseAddress!)
                            let a = SharedPointer(base: pa.baseAddress!), v = SharedPointer(base: pv.baseAddress!)
                            forEachRowRange(rows: rows, columns: width) { range in
                                for i in range {
                                    let row = b.base + i * ld
                                    let t = excluded[i]
                                    precondition(t >= -1 && t < width, "softmaxTileStatistics: target \(t) outside 0..<\(width)")
                                    if let sc { multiplyColumns(row, sc.base, width) }
                                    let stats = rowStatistics(row, width, target: t, scale: scale,
                                                              clamps: clampsToUnitInterval, stores: false)
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

/// The softmax gradient over a tile, in place, with the column sums the folded normalization
/// backward needs.
///
/// Per row i with `c_j = c(x_j)` (x first multiplied by `columnScales` when `inputsAreUnscaled`):
/// ```
/// g_ij = factor_i·exp(s·(c_j − reference_i))   (0 when reference_i = −∞),  g_it = targetValue_i
/// x_ij ← g_ij·columnScales_j                   (g_ij when columnScales is nil)
/// projections[j] = Σ_i g_ij·x_ij               (x the unclamped input; only with columnScales)
/// ```
/// - Parameters:
///   - references, factors, targets, targetValues: `[rows]` each (`targets` tile-local or −1).
///   - columnScales: the inverse norms ν (nil: no column scaling and no projections).
///   - projections: at least `width` elements; overwritten with the sums (when `columnScales`).
public func softmaxGradientTile(_ buffer: inout [Float], rows: Int, ld: Int, columnOffset: Int, width: Int,
                                scale: Float, clampsToUnitInterval: Bool, references: [Float], factors: [Float],
                                targets: [Int], targetValues: [Float], columnScales: [Float]?, scalesOffset: Int = 0,
                                inputsAreUnscaled: Bool, projections: inout [Float]) {
    checkTile("softmaxGradientTile", buffer.count, rows: rows, ld: ld, columnOffset: columnOffset, width: width)
    precondition(references.count == rows && factors.count == rows && targets.count == rows && targetValues.count == rows,
                 "softmaxGradientTile: per-row arrays must have \(rows) elements")
    if let columnScales {
        precondition(scalesOffset >= 0 && scalesOffset + width <= columnScales.count && projections.count >= width,
                     "softmaxGradientTile: scales or projections too short")
    } else {
        precondition(!inputsAreUnscaled, "softmaxGradientTile: unscaled inputs need column scales")
    }
    let workers = workerCount(rows: rows, columns: width)
    let withSums = columnScales != nil
    var partial = [Float](repeating: 0, count: withSums ? workers * width : 0)   // [workers, width]
    let scales = columnScales ?? []
    buffer.withUnsafeMutableBufferPointer { pb in
        scales.withUnsafeBufferPointer { pscale in
            partial.withUnsafeMutableBufferPointer { pp in
                let b = SharedPointer(base: pb.baseAddress! + columnOffset)
                let sc = withSums ? SharedPointer(base: UnsafeMutablePointer(mutating: pscale.baseAddress! + scalesOffset)) : nil
                let p = withSums ? SharedPointer(base: pp.baseAddress!) : nil
                forEachRowRangeIndexed(rows: rows, columns: width) { worker, range in
                    let sums = p.map { $0.base + worker * width }
                    for i in range {
                        let row = b.base + i * ld
                        gradientRow(row, width, target: targets[i], targetValue: targetValues[i], factor: factors[i],
                                    reference: references[i], scale: scale, clamps: clampsToUnitInterval,
                                    columnScales: sc?.base, unscaled: inputsAreUnscaled, sums: sums)
                    }
                }
            }
        }
    }
    if withSums {
        partial.withUnsafeBufferPointer { pp in
            projections.withUnsafeMutableBufferPointer { po in
                for j in 0..<width { po[j] = pp[j] }
                for w in 1..<max(workers, 1) {
                    let src = pp.baseAddress! + w * width
                    for j in 0..<width { po[j] += src[j] }
                }
            }
        }
    }
}

/// The sub-center maxima of a tile: `output[i, c] = max_s input[i, c·g + s]`, first arg-max in
/// `choice[i, c]` (`groupMaxima` on strided tiles: input columns `inputOffset ..< inputOffset + groups·g`,
/// output columns `outputOffset ..< outputOffset + groups`).
public func groupMaximaTile(_ input: [Float], rows: Int, inputLD: Int, inputOffset: Int, groups: Int, groupSize: Int,
                            into output: inout [Float], choice: inout [Int32], outputLD: Int, outputOffset: Int) {
    checkTile("groupMaximaTile input", input.count, rows: rows, ld: inputLD, columnOffset: inputOffset, width: groups * groupSize)
    checkTile("groupMaximaTile output", output.count, rows: rows, ld: outputLD, columnOffset: outputOffset, width: groups)
    checkTile("groupMaximaTile choice", choice.count, rows: rows, ld: outputLD, columnOffset: outputOffset, width: groups)
    for i in 0..<rows {
        for c in 0..<groups {
            let base = i * inputLD + inputOffset + c * groupSize
            var best = input[base], which: Int32 = 0
            for s in 1..<max(groupSize, 1) where input[base + s] > best { best = input[base + s]; which = Int32(s) }
            output[i * outputLD + outputOffset + c] = best
            choice[i * outputLD + outputOffset + c] = which
        }
    }
}

/// The backward of `groupMaximaTile` with the folded normalization: the gradient `g_ic` of each
/// class goes to its chosen sub-center column `j = c·g + choice`, scaled by that column's
/// inverse norm, every other column of the group gets 0; `projections[j] += g_ic·x_ij` with
/// `x` the cosine the tile held before (tile-local `j`).
///
/// - Parameters:
///   - gradient: `[rows, ·]` with row stride `gradientLD`, columns `gradientOffset ..< + groups`.
///   - buffer: the cosine tile on entry, `G'` on return.
///   - projections: at least `groups·groupSize` elements; overwritten.
public func scatterGroupGradientTile(_ gradient: [Float], choice: [Int32], gradientLD: Int, gradientOffset: Int,
                                     rows: Int, groups: Int, groupSize: Int, into buffer: inout [Float], ld: Int,
                                     columnOffset: Int, columnScales: [Float], scalesOffset: Int,
                                     projections: inout [Float]) {
    let width = groups * groupSize
    checkTile("scatterGroupGradientTile", buffer.count, rows: rows, ld: ld, columnOffset: columnOffset, width: width)
    checkTile("scatterGroupGradientTile gradient", gradient.count, rows: rows, ld: gradientLD,
              columnOffset: gradientOffset, width: groups)
    precondition(projections.count >= width && scalesOffset + width <= columnScales.count,
                 "scatterGroupGradientTile: scales or projections too short")
    for j in 0..<width { projections[j] = 0 }
    for i in 0..<rows {
        for c in 0..<groups {
            let g = gradient[i * gradientLD + gradientOffset + c]
            let s = Int(choice[i * gradientLD + gradientOffset + c])
            let base = i * ld + columnOffset + c * groupSize
            let j = c * groupSize + s
            projections[j] += g * buffer[base + s]
            for t in 0..<groupSize { buffer[base + t] = 0 }
            buffer[base + s] = g * columnScales[scalesOffset + j]
        }
    }
}

// MARK: - Row internals

private func checkTile(_ label: String, _ count: Int, rows: Int, ld: Int, columnOffset: Int, width: Int) {
    precondition(rows >= 0 && width >= 0 && columnOffset >= 0 && columnOffset + width <= ld,
                 "\(label): tile columns \(columnOffset)..<\(columnOffset + width) outside the row stride \(ld)")
    precondition(rows == 0 || (rows - 1) * ld + columnOffset + width <= count,
                 "\(label): [\(rows), \(ld)] tile does not fit a buffer of \(count) elements")
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
                 reference: Float, scale: Float, clamps: Bool, columnScales: UnsafeMutablePointer<Float>?,
                 unscaled: Bool, sums: UnsafeMutablePointer<Float>?) {
    precondition(t >= -1 && t < width, "softmaxGradientTile: target \(t) outside 0..<\(width)")
    // The target's input before it is overwritten (for its projection term).
    // Zeroed so that the loops below add nothing to its column sum (g·0): adding g_it there and
    // subtracting it again would cancel catastrophically when the target logit dominates.
    var targetInput: Float = 0
    if t >= 0 {
        targetInput = row[t]
        if unscaled, let columnScales { targetInput *= columnScales[t] }
        row[t] = 0
    }
    if reference == -.infinity {
        for j in 0..<width { row[j] = 0 }
    } else if let columnScales, let sums {
        var j = 0
        while j + 16 <= width {
            let s = UnsafeRawPointer(columnScales + j).loadUnaligned(as: SIMD16<Float>.self)
            var x = UnsafeRawPointer(row + j).loadUnaligned(as: SIMD16<Float>.self)
            if unscaled { x = x * s }
            let g = vectorExp((clampVector(x, clamps) - reference) * scale) * factor
            let p = UnsafeRawPointer(sums + j).loadUnaligned(as: SIMD16<Float>.self)
            UnsafeMutableRawPointer(sums + j).storeBytes(of: p + g * x, as: SIMD16<Float>.self)
            UnsafeMutableRawPointer(row + j).storeBytes(of: g * s, as: SIMD16<Float>.self)
            j += 16
        }
        while j < width {
            var x = row[j]
            if unscaled { x *= columnScales[j] }
            let g = vectorExp((clampScalar(x, clamps) - reference) * scale) * factor
            sums[j] += g * x
            row[j] = g * columnScales[j]
            j += 1
        }
    } else {
        scaledExponentials(row, width, scale: scale, reference: reference, factor: factor, clamps: clamps)
    }
    guard t >= 0 else { return }
    if let columnScales {
        if let sums { sums[t] += targetValue * targetInput }
        row[t] = targetValue * columnScales[t]
    } else {
        row[t] = targetValue
    }
}
