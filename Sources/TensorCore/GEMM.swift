// The GEMM contract in safe Swift: the operand checks `gemm(...)` (BLAS.swift) makes before it
// calls OpenBLAS, and the naive reference with the same contract.

/// The reference GEMM: the same contract as `gemm(...)`, computed with three plain loops and
/// `Double` accumulation. Slow; kept as the algorithmic reference for tests and odd shapes.
package func naiveGEMM(
    transposeA: Bool = false, transposeB: Bool = false,
    m: Int, n: Int, k: Int, alpha: Float = 1,
    a: [Float], aOffset: Int = 0, lda: Int,
    b: [Float], bOffset: Int = 0, ldb: Int,
    beta: Float = 0,
    c: inout [Float], cOffset: Int = 0, ldc: Int
) {
    checkGEMMOperands(transposeA: transposeA, transposeB: transposeB, m: m, n: n, k: k,
                      a: (aOffset, lda, a.count), b: (bOffset, ldb, b.count), c: (cOffset, ldc, c.count))
    for i in 0..<m {
        for j in 0..<n {
            var sum = 0.0
            for p in 0..<k {
                let av = transposeA ? a[aOffset + p * lda + i] : a[aOffset + i * lda + p]
                let bv = transposeB ? b[bOffset + j * ldb + p] : b[bOffset + p * ldb + j]
                sum += Double(av) * Double(bv)
            }
            let old = beta == 0 ? 0 : Double(beta) * Double(c[cOffset + i * ldc + j])
            c[cOffset + i * ldc + j] = Float(Double(alpha) * sum + old)
        }
    }
}

/// Checks that `A` (`[m, k]`, or `[k, m]` stored when `transposeA`), `B` (`[k, n]`, or `[n, k]`)
/// and `C` (`[m, n]`) lie inside their arrays, each given as `(offset, ld, count)`: the first
/// element's index, the row stride and the array's element count. Traps with the sizes.
func checkGEMMOperands(transposeA: Bool, transposeB: Bool, m: Int, n: Int, k: Int,
                       a: (offset: Int, ld: Int, count: Int), b: (offset: Int, ld: Int, count: Int),
                       c: (offset: Int, ld: Int, count: Int)) {
    let (aRows, aCols) = transposeA ? (k, m) : (m, k)
    let (bRows, bCols) = transposeB ? (n, k) : (k, n)
    checkMatrix("A", rows: aRows, cols: aCols, offset: a.offset, ld: a.ld, count: a.count)
    checkMatrix("B", rows: bRows, cols: bCols, offset: b.offset, ld: b.ld, count: b.count)
    checkMatrix("C", rows: m, cols: n, offset: c.offset, ld: c.ld, count: c.count)
}

private func checkMatrix(_ label: String, rows: Int, cols: Int, offset: Int, ld: Int, count: Int) {
    precondition(offset >= 0, "gemm: \(label) offset \(offset) < 0")
    precondition(ld >= max(cols, 1) || rows == 0,
                 "gemm: \(label) leading dimension \(ld) < its \(cols) columns")
    if rows == 0 || cols == 0 { return }
    let last = offset + (rows - 1) * ld + cols
    precondition(last <= count,
                 "gemm: \(label) [\(rows), \(cols)] with ld \(ld) at offset \(offset) needs \(last) elements, array has \(count)")
}

/// `C ← β·C` on the `[rows, cols]` block at `offset` with row stride `ld` (`gemm` with `k = 0`);
/// `β = 0` writes zeros (NaNs in `C` are not propagated).
func scaleMatrix(_ c: inout [Float], offset: Int, rows: Int, cols: Int, ld: Int, by beta: Float) {
    for i in 0..<rows {
        for j in 0..<cols {
            let index = offset + i * ld + j
            c[index] = beta == 0 ? 0 : c[index] * beta
        }
    }
}
