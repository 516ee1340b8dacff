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
// The kernels below handle the center rows: their inverse norms, the gathered rows of a Partial
// FC tile, and the accumulation of ∂W through the folded normalization. Rows run in parallel
// over `BLAS.threadCount` workers between GEMMs (never during one); each worker writes only
// its rows.
import TensorCore

/// The inverse norms of contiguous rows: `inverseNorms[offset + r] = 1/max(‖source[firstRow + r]‖, ε)`
/// for `r` in `0..<rows` (ε = `l2NormalizationEpsilon`, as `l2NormalizedRows`).
///
/// - Parameters:
///   - source: `[R, columns]` row-major, `firstRow + rows ≤ R`.
///   - inverseNorms: at least `offset + rows` elements.
func rowInverseNorms(_ source: [Float], firstRow: Int, rows: Int, columns: Int,
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
func gatherRowsWithInverseNorms(_ source: [Float], rowIndices: [Int], columns: Int,
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
func accumulateNormalizedRowsGradient(_ compact: [Float], rows: Int, centers: [Float], firstRow: Int = 0,
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

/// The first of `count` inverse norms from `offset` that marks a non-finite row, or nil.
///
/// `ν = 1/max(‖w‖, ε)` is NaN when the row holds a NaN and 0 when it holds ±Inf (‖w‖ = ∞);
/// for every finite row it lies in `(0, 1/ε]`. So `!(ν > 0)` identifies the rows holding NaN or
/// ±Inf from the `K·k` norms the head computes anyway, without another pass over `W`.
func firstNonFiniteRow(inverseNorms: [Float], offset: Int, count: Int) -> Int? {
    precondition(offset >= 0 && offset + count <= inverseNorms.count,
                 "firstNonFiniteRow: \(offset)..<\(offset + count) of \(inverseNorms.count)")
    for r in 0..<count where !(inverseNorms[offset + r] > 0) { return r }
    return nil
}

/// A center row holding NaN or ±Inf met by the engine's forward (`row` of the center storage,
/// `c·k + s`); the head turns it into `MarginLossError.nonFiniteParameter`.
struct NonFiniteCenterRow: Error {
    var row: Int
}
