// Tile kernels of the margin head: column rescales by the centers' inverse norms ν, softmax
// row statistics, the two ways of writing the gradient G' (from stored exponentials, or
// recomputed), and the sub-center max and scatter. `CenterRowKernels.swift` derives the
// folded normalization they implement; `RowKernels.swift` holds the per-row loops.
//
// Buffers are tiles of a row-major matrix: `rows` rows `ld` elements apart, the tile starting
// at column `columnOffset`, `width` columns wide. Rows run in parallel over `BLAS.threadCount`
// workers between GEMMs (never during one); each worker writes only its rows.
import TensorCore

/// Multiplies each column of a tile by its scale, in place: `x_ij ← x_ij·scales[scalesOffset + j]`.
func scaleColumns(_ buffer: inout [Float], rows: Int, ld: Int, columnOffset: Int, width: Int,
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

/// Row statistics of a softmax over `s·c(x)` on a tile, after first rescaling the tile's columns
/// in place when `columnScales` is given (`x_ij ← x_ij·columnScales[scalesOffset + j]`: raw
/// products `ê·w` become cosines). With `storesExponentials`, every non-target element is then
/// replaced by `exp(s·(c(x_j) − m))`; the target slot keeps its (rescaled) input.
///
/// - Parameters:
///   - buffer: the tile's inputs x, finite.
///   - excluded: `[rows]`, each row's target column within the tile, or −1.
///   - scale: `s > 0`.
/// - Returns: per row `m`, `S`, the tile-local arg-maximum and its value (see
///   `SoftmaxRowStatistics`).
func softmaxTileStatistics(_ buffer: inout [Float], rows: Int, ld: Int, columnOffset: Int, width: Int,
                           columnScales: [Float]?, scalesOffset: Int = 0, excluded: [Int],
                           scale: Float, clampsToUnitInterval: Bool,
                           storesExponentials: Bool = false) -> SoftmaxRowStatistics {
    checkTile("softmaxTileStatistics", buffer.count, rows: rows, ld: ld, columnOffset: columnOffset, width: width)
    precondition(width >= 1 && excluded.count == rows, "softmaxTileStatistics: width \(width), excluded \(excluded.count)")
    var result = SoftmaxRowStatistics(rows: rows)
    result.maxima.withUnsafeMutableBufferPointer { pm in
        result.sums.withUnsafeMutableBufferPointer { ps in
            result.argmax.withUnsafeMutableBufferPointer { pa in
                result.argmaxValues.withUnsafeMutableBufferPointer { pv in
                    let m = SharedPointer(base: pm.baseAddress!), s = SharedPointer(base: ps.baseAddress!)
                    let a = SharedPointer(base: pa.baseAddress!), v = SharedPointer(base: pv.baseAddress!)
                    forEachTileRow("softmaxTileStatistics", &buffer, rows: rows, ld: ld, columnOffset: columnOffset,
                                   width: width, columnScales: columnScales, scalesOffset: scalesOffset) { i, row, sc in
                        let t = excluded[i]
                        precondition(t >= -1 && t < width, "softmaxTileStatistics: target \(t) outside 0..<\(width)")
                        if let sc { multiplyColumns(row, sc, width) }
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
func scaleExponentialsTile(_ buffer: inout [Float], rows: Int, ld: Int, columnOffset: Int, width: Int,
                           rowFactors: [Float], targets: [Int], targetValues: [Float],
                           columnScales: [Float]?, scalesOffset: Int = 0) {
    checkTile("scaleExponentialsTile", buffer.count, rows: rows, ld: ld, columnOffset: columnOffset, width: width)
    precondition(rowFactors.count == rows && targets.count == rows && targetValues.count == rows,
                 "scaleExponentialsTile: per-row arrays must have \(rows) elements")
    forEachTileRow("scaleExponentialsTile", &buffer, rows: rows, ld: ld, columnOffset: columnOffset, width: width,
                   columnScales: columnScales, scalesOffset: scalesOffset) { i, row, sc in
        let f = rowFactors[i]
        if let sc {
            var j = 0
            while j + 16 <= width {
                let x = UnsafeRawPointer(row + j).loadUnaligned(as: SIMD16<Float>.self)
                let v = UnsafeRawPointer(sc + j).loadUnaligned(as: SIMD16<Float>.self)
                UnsafeMutableRawPointer(row + j).storeBytes(of: x * f * v, as: SIMD16<Float>.self)
                j += 16
            }
            while j < width { row[j] = row[j] * f * sc[j]; j += 1 }
        } else {
            for j in 0..<width { row[j] *= f }
        }
        let t = targets[i]
        if t >= 0 {
            precondition(t < width, "scaleExponentialsTile: target \(t) ≥ \(width)")
            row[t] = targetValues[i] * (sc?[t] ?? 1)
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
func softmaxGradientTile(_ buffer: inout [Float], rows: Int, ld: Int, columnOffset: Int, width: Int,
                         scale: Float, clampsToUnitInterval: Bool, references: [Float], factors: [Float],
                         targets: [Int], targetValues: [Float], columnScales: [Float]?, scalesOffset: Int = 0) {
    checkTile("softmaxGradientTile", buffer.count, rows: rows, ld: ld, columnOffset: columnOffset, width: width)
    precondition(references.count == rows && factors.count == rows && targets.count == rows && targetValues.count == rows,
                 "softmaxGradientTile: per-row arrays must have \(rows) elements")
    forEachTileRow("softmaxGradientTile", &buffer, rows: rows, ld: ld, columnOffset: columnOffset, width: width,
                   columnScales: columnScales, scalesOffset: scalesOffset) { i, row, sc in
        gradientRow(row, width, target: targets[i], targetValue: targetValues[i], factor: factors[i],
                    reference: references[i], scale: scale, clamps: clampsToUnitInterval, columnScales: sc)
    }
}

/// The sub-center maxima of a tile: `output[i, c] = max_s input[i, c·g + s]`, first arg-max in
/// `choice[i, c]` (input columns `inputOffset ..< inputOffset + groups·g`, output columns
/// `outputOffset ..< outputOffset + groups`, row strides `inputLD` and `outputLD`).
func groupMaximaTile(_ input: [Float], rows: Int, inputLD: Int, inputOffset: Int, groups: Int, groupSize: Int,
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
func scatterGroupGradientTile(_ gradient: [Float], choice: [Int32], gradientLD: Int, gradientOffset: Int,
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

private func checkTile(_ label: String, _ count: Int, rows: Int, ld: Int, columnOffset: Int, width: Int) {
    precondition(rows >= 0 && width >= 0 && columnOffset >= 0 && columnOffset + width <= ld,
                 "\(label): tile columns \(columnOffset)..<\(columnOffset + width) outside the row stride \(ld)")
    precondition(rows == 0 || (rows - 1) * ld + columnOffset + width <= count,
                 "\(label): [\(rows), \(ld)] tile does not fit a buffer of \(count) elements")
}

/// Runs `body(i, row, scales)` for every row `i` of a tile, the rows split over workers as in
/// `forEachRowRange`: `row` points at the tile's first column in row `i`, `scales` at
/// `columnScales[scalesOffset]` (nil when `columnScales` is nil). Each call writes only its row.
private func forEachTileRow(_ label: String, _ buffer: inout [Float], rows: Int, ld: Int, columnOffset: Int,
                            width: Int, columnScales: [Float]?, scalesOffset: Int,
                            _ body: @Sendable (_ i: Int, _ row: UnsafeMutablePointer<Float>,
                                               _ scales: UnsafeMutablePointer<Float>?) -> Void) {
    if let columnScales {
        precondition(scalesOffset >= 0 && scalesOffset + width <= columnScales.count, "\(label): scales too short")
    }
    let scales = columnScales ?? []
    buffer.withUnsafeMutableBufferPointer { pb in
        scales.withUnsafeBufferPointer { pscale in
            let b = SharedPointer(base: pb.baseAddress! + columnOffset)
            let sc = columnScales == nil ? nil
                : SharedPointer(base: UnsafeMutablePointer(mutating: pscale.baseAddress! + scalesOffset))
            forEachRowRange(rows: rows, columns: width) { range in
                for i in range { body(i, b.base + i * ld, sc?.base) }
            }
        }
    }
}
