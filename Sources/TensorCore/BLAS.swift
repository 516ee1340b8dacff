// The one file that calls OpenBLAS. Everything else in the package reaches BLAS through the
// Swift-typed functions below: `gemm(...)` checks sizes and leading dimensions before the call;
// `uncheckedSGEMM` is for kernels that have checked their buffers themselves.
internal import COpenBLAS

/// Facts about and controls for the OpenBLAS library the package is linked against.
public enum BLAS {
    /// The number of threads OpenBLAS uses for level-3 calls (and the package's own parallel
    /// kernels use as workers); setting it takes effect at once.
    ///
    /// While a kernel runs its own workers that each issue single-threaded GEMMs (the
    /// convolution), OpenBLAS itself is set to one thread; this property still reports, and a
    /// new value set meanwhile replaces, the configured count, which is restored afterwards.
    /// The corresponding OpenBLAS routines are `openblas_get_num_threads` / `openblas_set_num_threads`.
    public static var threadCount: Int {
        get { configuredThreadCount() }
        set {
            precondition(newValue >= 1, "BLAS.threadCount must be at least 1: \(newValue)")
            configureThreadCount(newValue)
        }
    }

    /// OpenBLAS's own current thread count. The corresponding routine is `openblas_get_num_threads`.
    static var libraryThreadCount: Int {
        get { Int(openblas_get_num_threads()) }
        set { openblas_set_num_threads(Int32(clamping: newValue)) }
    }

    /// The CPU kernel family OpenBLAS selected (e.g. `"Haswell"`, `"SkylakeX"`), which
    /// `OPENBLAS_CORETYPE` overrides at load time. The corresponding routine is `openblas_get_corename`.
    public static var coreName: String {
        guard let name = openblas_get_corename() else { return "unknown" }
        return String(cString: name)
    }
}

/// Narrows a size to OpenBLAS's 32-bit `blasint`, trapping with a message on overflow.
@inline(__always)
private func blasInt(_ value: Int, _ what: StaticString) -> Int32 {
    guard let narrowed = Int32(exactly: value) else {
        preconditionFailure("\(what) = \(value) does not fit OpenBLAS's 32-bit blasint")
    }
    return narrowed
}

/// Unchecked single-precision GEMM on raw buffers: `C ← α·op(A)·op(B) + β·C`, row-major.
///
/// Callers validate sizes first (as `gemm(...)` does, or a kernel for the buffers it owns).
/// The corresponding CBLAS routine is `cblas_sgemm`.
package func uncheckedSGEMM(
    transposeA: Bool, transposeB: Bool, m: Int, n: Int, k: Int, alpha: Float,
    a: UnsafePointer<Float>, lda: Int, b: UnsafePointer<Float>, ldb: Int,
    beta: Float, c: UnsafeMutablePointer<Float>, ldc: Int
) {
    cblas_sgemm(
        CblasRowMajor,
        transposeA ? CblasTrans : CblasNoTrans,
        transposeB ? CblasTrans : CblasNoTrans,
        blasInt(m, "m"), blasInt(n, "n"), blasInt(k, "k"),
        alpha, a, blasInt(lda, "lda"), b, blasInt(ldb, "ldb"),
        beta, c, blasInt(ldc, "ldc"))
}

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
package func gemm(
    transposeA: Bool = false, transposeB: Bool = false,
    m: Int, n: Int, k: Int, alpha: Float = 1,
    a: [Float], aOffset: Int = 0, lda: Int,
    b: [Float], bOffset: Int = 0, ldb: Int,
    beta: Float = 0,
    c: inout [Float], cOffset: Int = 0, ldc: Int
) {
    precondition(m >= 0 && n >= 0 && k >= 0, "gemm: negative size m=\(m) n=\(n) k=\(k)")
    checkGEMMOperands(transposeA: transposeA, transposeB: transposeB, m: m, n: n, k: k,
                      a: (aOffset, lda, a.count), b: (bOffset, ldb, b.count), c: (cOffset, ldc, c.count))
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
