// The one file that calls OpenBLAS. Everything else in the package reaches BLAS through the
// Swift-typed functions below, which check sizes and leading dimensions before the call.
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
/// Callers inside `TensorCore` validate sizes first (see `gemm(...)` in `GEMM.swift`).
/// The corresponding CBLAS routine is `cblas_sgemm`.
internal func uncheckedSGEMM(
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

/// Unchecked single-precision GEMV: `y ← α·op(A)·x + β·y`, row-major `A` of `m × n`.
/// The corresponding CBLAS routine is `cblas_sgemv`.
internal func uncheckedSGEMV(
    transpose: Bool, m: Int, n: Int, alpha: Float, a: UnsafePointer<Float>, lda: Int,
    x: UnsafePointer<Float>, beta: Float, y: UnsafeMutablePointer<Float>
) {
    cblas_sgemv(CblasRowMajor, transpose ? CblasTrans : CblasNoTrans,
                blasInt(m, "m"), blasInt(n, "n"), alpha, a, blasInt(lda, "lda"),
                x, 1, beta, y, 1)
}
