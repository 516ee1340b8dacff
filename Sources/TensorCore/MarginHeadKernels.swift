// Kernels of the margin head's folded normalization: the class centers W are never
// normalized into a copy. The head multiplies by raw W and rescales columns instead.
//
// For a center row w_k with inverse norm ν_k = 1/max(‖w_k‖, ε) and ŵ_k = ν_k·w_k:
//   cosines      cos_ik = (ê_i·w_k)·ν_k                    (raw sgemm, then a column rescale)
//   ∂ê           Σ_k G_ik·ŵ_k = Σ_k (G_ik·ν_k)·w_k = G'·W  (G' = G with column k scaled by ν_k)
//   ∂W_k         (∂Ŵ_k − ŵ_k·(ŵ_k·∂Ŵ_k))·ν_k  with ∂Ŵ_k = Σ_i G_ik·ê_i
//                = Σ_i G'_ik·ê_i − p_k·ν_k²·w_k,   p_k = ŵ_k·∂Ŵ_k = Σ_i G_ik·cos_ik
// With t_k = Σ_i G'_ik·ê_i (one sgemm into a compact tile buffer), p_k = w_k·t_k, so
// ∂W_k += t_k − p_k·ν_k²·w_k is one pass over the tile's rows; and G' is the stored
// exponentials of the forward times a per-row factor and a per-column ν (one exp per logit).
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

/// The center gradient through the folded row normalization, accumulated:
/// `gradient[row_r] += t_r − (w_r·t_r)·ν_r²·w_r` for `r` in `0..<rows`, where `t_r` is row r of
/// `compact` (`Σ_i G'_ir·ê_i`), `w_r = centers[row_r]`, `ν_r = inverseNorms[offset + r]`, and
/// `row_r = rowIndices[r]` (or `firstRow + r` when `rowIndices` is nil). This equals the
/// backward of `l2NormalizedRows` (`(g − ŵ(ŵ·g))·ν` with `g = t/ν`) followed by `+=`.
///
/// - Parameters:
///   - compact: at least `[rows, columns]`.
///   - centers, gradient: `[R, columns]` each.
///   - rowIndices: distinct rows, or nil for `firstRow ..< firstRow + rows`.
public func accumulateNormalizedRowsGradient(_ compact: [Float], rows: Int, centers: [Float], firstRow: Int = 0,
                                             rowIndices: [Int]?, columns: Int, inverseNorms: [Float], offset: Int,
                                             into gradient: inout [Float]) {
    precondition(compact.count >= rows * columns && centers.count == gradient.count && offset >= 0
                 && offset + rows <= inverseNorms.count && (rowIndices.map { $0.count == rows } ?? true),
                 "accumulateNormalizedRowsGradient: sizes do not match \(rows) rows")
    if let rowIndices {
        for index in rowIndices {
            precondition(index >= 0 && (index + 1) * columns <= gradient.count,
                         "accumulateNormalizedRowsGradient: row \(index) out of range")
        }
    } else {
        precondition(firstRow >= 0 && (firstRow + rows) * columns <= gradient.count,
                     "accumulateNormalizedRowsGradient: rows \(firstRow)..<\(firstRow + rows) out of range")
    }
    let indices = rowIndices ?? []
    compact.withUnsafeBufferPointer { pa in
        centers.withUnsafeBufferPointer { pc in
            gradient.withUnsafeMutableBufferPointer { pg in
                let a = SharedPointer(base: UnsafeMutablePointer(mutating: pa.baseAddress!))
                let c = SharedPointer(base: UnsafeMutablePointer(mutating: pc.baseAddress!))
                let g = SharedPointer(base: pg.baseAddress!)
                let gathered = rowIndices != nil
                forEachRowRange(rows: rows, columns: columns) { range in
                    for r in range {
                        let row = gathered ? indices[r] : firstRow + r
                        let t = a.base + r * columns, w = c.base + row * columns, dst = g.base + row * columns
                        let v = inverseNorms[offset + r]
                        let q = Float(simdDot(w, t, columns)) * v * v
                        for j in 0..<columns { dst[j] += t[j] - q * w[j] }
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
/// (`x_ij ← x_ij·columnScales[scalesOffset + j]`: raw products `ê·w` become cosines). With
/// `storesExponentials`, every non-target element is then replaced by `exp(s·(c(x_j) − m))`.
///
/// - Parameters:
///   - excluded: `[rows]`, each row's target column within the tile, or −1.
/// - Returns: per row `m`, `S`, the tile-local arg-maximum and its value.
public func softmaxTileStatistics(_ buffer: inout [Float], rows: Int, ld: Int, columnOffset: Int, width: Int,
                                  columnScales: [Float]?, scalesOffset: Int = 0, excluded: [Int],
                                  scale: Float, clampsToUnitInterval: Bool,
                                  storesExponentials: Bool = false) -> SoftmaxRowStatistics {
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

/// The softmax gradient over a tile from the exponentials `softmaxTileStatistics` stored, in
/// place: `x_ij ← rowFactors_i·x_ij·ν_j` for every column, then `x_it ← targetValue_i·ν_t`,
/// with `ν_j = columnScales[scalesOffset + j]` (1 when `columnScales` is nil).
///
/// - Parameters:
///   - rowFactors: `[rows]`, `w·s·exp(s·m_tile − M)/Z` per row (0 for a row without stored
///     exponentials in this tile).
///   - targets, targetValues: `[rows]` each (`targets` tile-local or −1).
public func scaleExponentialsTile(_ buffer: inout [Float], rows: Int, ld: Int, columnOffset: Int, width: Int,
                                  rowFactors: [Float], targets: [Int], targetValues: [Float],
                                  columnScales: [Float]?, scalesOffset: Int = 0) {
    checkTile("scaleExponentialsTile", buffer.count, rows: rows, ld: ld, columnOffset: columnOffset, width: width)
    precondition(rowFactors.count == rows && targets.count == rows && targetValues.count == rows,
                 "scaleExponentialsTile: per-row arrays must have \(rows) elements")
    if let columnScales {
        precondition(scalesOffset >= 0 && scalesOffset + width <= columnScales.count, "scaleExponentialsTile: scales too short")
    }
    let scales = columnScales ?? []
    buffer.withUnsafeMutableBufferPointer { pb in
        scales.withUnsafeBufferPointer { pscale in
            let b = SharedPointer(base: pb.baseAddress! + columnOffset)
            let sc = columnScales == nil ? nil
                : SharedPointer(base: UnsafeMutablePointer(mutating: pscale.baseAddress! + scalesOffset))
            forEachRowRange(rows: rows, columns: width) { range in
                for i in range {
                    let row = b.base + i * ld
                    let f = rowFactors[i]
                    if let sc {
                        var j = 0
                        while j + 16 <= width {
                            let x = UnsafeRawPointer(row + j).loadUnaligned(as: SIMD16<Float>.self)
                            let v = UnsafeRawPointer(sc.base + j).loadUnaligned(as: SIMD16<Float>.self)
                            UnsafeMutableRawPointer(row + j).storeBytes(of: x * f * v, as: SIMD16<Float>.self)
                            j += 16
                        }
                        while j < width { row[j] = row[j] * f * sc.base[j]; j += 1 }
                    } else {
                        for j in 0..<width { row[j] *= f }
                    }
                    let t = targets[i]
                    if t >= 0 {
                        precondition(t < width, "scaleExponentialsTile: target \(t) ≥ \(width)")
                        row[t] = targetValues[i] * (sc?.base[t] ?? 1)
                    }
                }
            }
        }
    }
}

/// The softmax gradient over a tile recomputed from its inputs, in place:
/// `x_ij ← factor_i·exp(s·(c(x_ij·ν_j) − reference_i))·ν_j`, then `x_it ← targetValue_i·ν_t`
/// (`ν = 1` and no input scaling when `columnScales` is nil). A row whose reference is −∞ (no
/// non-target column anywhere) gets zeros.
///
/// - Parameters:
///   - references, factors, targets, targetValues: `[rows]` each (`targets` tile-local or −1).
///   - columnScales: the inverse norms ν of the tile's columns, or nil.
public func softmaxGradientTile(_ buffer: inout [Float], rows: Int, ld: Int, columnOffset: Int, width: Int,
                                scale: Float, clampsToUnitInterval: Bool, references: [Float], factors: [Float],
                                targets: [Int], targetValues: [Float], columnScales: [Float]?, scalesOffset: Int = 0) {
    checkTile("softmaxGradientTile", buffer.count, rows: rows, ld: ld, columnOffset: columnOffset, width: width)
    precondition(references.count == rows && factors.count == rows && targets.count == rows && targetValues.count == rows,
                 "softmaxGradientTile: per-row arrays must have \(rows) elements")
    if let columnScales {
        precondition(scalesOffset >= 0 && scalesOffset + width <= columnScales.count, "softmaxGradientTile: scales too short")
    }
    let scales = columnScales ?? []
    buffer.withUnsafeMutableBufferPointer { pb in
        scales.withUnsafeBufferPointer { pscale in
            let b = SharedPointer(base: pb.baseAddress! + columnOffset)
            let sc = columnScales == nil ? nil
                : SharedPointer(base: UnsafeMutablePointer(mutating: pscale.baseAddress! + scalesOffset))
            forEachRowRange(rows: rows, columns: width) { range in
                for i in range {
                    gradientRow(b.base + i * ld, width, target: targets[i], targetValue: targetValues[i],
                                factor: factors[i], reference: references[i], scale: scale,
                                clamps: clampsToUnitInterval, columnScales: sc?.base)
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
/// inverse norm; every other column of the group gets 0.
///
/// - Parameters:
///   - gradient: `[rows, ·]` with row stride `gradientLD`, columns `gradientOffset ..< + groups`.
///   - buffer: receives `G'` in columns `columnOffset ..< + groups·groupSize`.
public func scatterGroupGradientTile(_ gradient: [Float], choice: [Int32], gradientLD: Int, gradientOffset: Int,
                                     rows: Int, groups: Int, groupSize: Int, into buffer: inout [Float], ld: Int,
                                     columnOffset: Int, columnScales: [Float], scalesOffset: Int) {
    let width = groups * groupSize
    checkTile("scatterGroupGradientTile", buffer.count, rows: rows, ld: ld, columnOffset: columnOffset, width: width)
    checkTile("scatterGroupGradientTile gradient", gradient.count, rows: rows, ld: gradientLD,
              columnOffset: gradientOffset, width: groups)
    precondition(scalesOffset + width <= columnScales.count, "scatterGroupGradientTile: scales too short")
    for i in 0..<rows {
        for c in 0..<groups {
            let g = gradient[i * gradientLD + gradientOffset + c]
            let s = Int(choice[i * gradientLD + gradientOffset + c])
            let base = i * ld + columnOffset + c * groupSize
            for t in 0..<groupSize { buffer[base + t] = 0 }
            buffer[base + s] = g * columnScales[scalesOffset + c * groupSize + s]
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
