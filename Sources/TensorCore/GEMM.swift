/// Single-precision general matrix multiply on row-major storage:
/// `C ← α·op(A)·op(B) + β·C`, where `op(X)` is `X` or `Xᵀ`.
///
/// Concretely, with `op(A)` of shape `[m, k]` and `op(B)` of shape `[k, n]`:
/// ```
/// C[i, j] = α · Σₚ op(A)[i, p] · op(B)[p, j] + β · C[i, j]
/// ```
/// - Parameters:
///   - transposeA: whether `A` is stored as `[k, m]` (then `op(A) = Aᵀ`); otherwise `[m, k]`.
///   - transposeB: whether `B` is stored as `[n, k]`; otherwise `[k, n]`.
///   - m, n, k: the sizes above (element counts, each ≥ 0).
///   - a, aOffset, lda: storage of `A`, the index of its first element, and its row stride
///     (≥ its stored column count).
///   - b, bOffset, ldb: the same for `B`.
///   - beta: multiplier of the existing `C`; with `beta == 0`, `C` is overwritten (NaNs in it
///     are not propagated).
///   - c, cOffset, ldc: storage of `C` (`[m, n]`, row stride `ldc ≥ n`).
/// - Precondition: every stored matrix lies inside its array; violations trap with the sizes.
///
/// The corresponding CBLAS routine is `cblas_sgemm`.
public func gemm(
    transposeA: Bool = false, transposeB: Bool = false,
    m: Int, n: Int, k: Int, alpha: Float = 1,
    a: [Float], aOffset: Int = 0, lda: Int,
    b: [Float], bOffset: Int = 0, ldb: Int,
    beta: Float = 0,
    c: inout [Float], cOffset: Int = 0, ldc: Int
) {
    precondition(m >= 0 && n >= 0 && k >= 0, "gemm: negative size m=\(m) n=\(n) k=\(k)")
    let (aRows, aCols) = transposeA ? (k, m) : (m, k)
    let (bRows, bCols) = transposeB ? (n, k) : (k, n)
    checkMatrix("A", rows: aRows, cols: aCols, offset: aOffset, ld: lda, count: a.count)
    checkMatrix("B", rows: bRows, cols: bCols, offset: bOffset, ld: ldb, count: b.count)
    checkMatrix("C", rows: m, cols: n, offset: cOffset, ld: ldc, count: c.count)
    if m == 0 || n == 0 { return }
    if k == 0 {
        scaleMatrix(&c, offset: cOffset, rows: m, cols: n, ld: ldc, by: beta)
        return
    }
    a.withUnsafeBufferPointer { pa in
        b.withUnsafeBufferPointer { pb in
            c.withUnsafeMutableBufferPointer { pc in
                uncheckedSGEMM(transposeA: transposeA, transposeB: transposeB, m: m, n: n, k: k,
                               alpha: alpha, a: pa.baseAddress! + aOffset, lda: max(lda, 1),
                               b: pb.baseAddress! + bOffset, ldb: max(ldb, 1), beta: beta,
                               c: pc.baseAddress! + cOffset, ldc: max(ldc, 1))
            }
        }
    }
}

/// The reference GEMM: the same contract as `gemm(...)`, computed with three plain loops and
/// `Double` accumulation. Slow; kept as the algorithmic reference for tests and odd shapes.
public func naiveGEMM(
    transposeA: Bool = false, transposeB: Bool = false,
    m: Int, n: Int, k: Int, alpha: Float = 1,
    a: [Float], aOffset: Int = 0, lda: Int,
    b: [Float], bOffset: Int = 0, ldb: Int,
    beta: Float = 0,
    c: inout [Float], cOffset: Int = 0, ldc: Int
) {
    let (aRows, aCols) = transposeA ? (k, m) : (m, k)
    let (bRows, bCols) = transposeB ? (n, k) : (k, n)
    checkMatrix("A", rows: aRows, cols: aCols, offset: aOffset, ld: lda, count: a.count)
    checkMatrix("B", rows: bRows, cols: bCols, offset: bOffset, ld: ldb, count: b.count)
    checkMatrix("C", rows: m, cols: n, offset: cOffset, ld: ldc, count: c.count)
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

/// The matrix product of two rank-2 tensors: `op(a) · op(b)`.
///
/// - Parameters:
///   - a: `[m, k]`, or `[k, m]` when `transposeA`.
///   - b: `[k, n]`, or `[n, k]` when `transposeB`.
/// - Returns: `[m, n]`.
/// The corresponding CBLAS routine is `cblas_sgemm`.
public func matmul(_ a: Tensor, _ b: Tensor, transposeA: Bool = false, transposeB: Bool = false) -> Tensor {
    precondition(a.rank == 2 && b.rank == 2, "matmul: \(a.shape) × \(b.shape) (rank 2 required)")
    let (m, ka) = transposeA ? (a.shape[1], a.shape[0]) : (a.shape[0], a.shape[1])
    let (kb, n) = transposeB ? (b.shape[1], b.shape[0]) : (b.shape[0], b.shape[1])
    precondition(ka == kb, "matmul: \(a.shape)\(transposeA ? "ᵀ" : "") × \(b.shape)\(transposeB ? "ᵀ" : "")")
    var c = [Float](repeating: 0, count: m * n)
    gemm(transposeA: transposeA, transposeB: transposeB, m: m, n: n, k: ka,
         a: a.storage, lda: a.shape[1], b: b.storage, ldb: b.shape[1], c: &c, ldc: n)
    return Tensor(shape: [m, n], storage: c)
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

private func scaleMatrix(_ c: inout [Float], offset: Int, rows: Int, cols: Int, ld: Int, by beta: Float) {
    for i in 0..<rows {
        for j in 0..<cols {
            let index = offset + i * ld + j
            c[index] = beta == 0 ? 0 : c[index] * beta
        }
    }
}
