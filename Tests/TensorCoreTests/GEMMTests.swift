import Testing
import TensorCore
import _TestSupport

@Suite struct GEMMTests {
    @Test("2×2 GEMM, hand-computed")
    func handComputed() {
        // [1 2; 3 4] · [5 6; 7 8] = [19 22; 43 50]
        let a: [Float] = [1, 2, 3, 4], b: [Float] = [5, 6, 7, 8]
        var c = [Float](repeating: 0, count: 4)
        gemm(m: 2, n: 2, k: 2, a: a, lda: 2, b: b, ldb: 2, c: &c, ldc: 2)
        #expect(c == [19, 22, 43, 50])
        // Aᵀ·B = [1 3; 2 4] · [5 6; 7 8] = [26 30; 38 44]
        var ct = [Float](repeating: 0, count: 4)
        gemm(transposeA: true, m: 2, n: 2, k: 2, a: a, lda: 2, b: b, ldb: 2, c: &ct, ldc: 2)
        #expect(ct == [26, 30, 38, 44])
    }

    @Test("sgemm matches the naive GEMM", arguments: [(false, false), (true, false), (false, true), (true, true)])
    func matchesNaive(transpose: (Bool, Bool)) {
        for (m, n, k) in [(1, 1, 1), (3, 5, 7), (17, 1, 33), (64, 65, 63), (5, 129, 2)] {
            let (ta, tb) = transpose
            // Padded leading dimensions and offsets exercise the checked wrapper.
            let lda = (ta ? m : k) + 3, ldb = (tb ? k : n) + 1, ldc = n + 2
            let a = randomArray(2 + (ta ? k : m) * lda, seed: 1)
            let b = randomArray(1 + (tb ? n : k) * ldb, seed: 2)
            var c1 = randomArray(m * ldc, seed: 3)
            var c2 = c1
            gemm(transposeA: ta, transposeB: tb, m: m, n: n, k: k, alpha: 0.75, a: a, aOffset: 2, lda: lda,
                 b: b, bOffset: 1, ldb: ldb, beta: 0.5, c: &c1, ldc: ldc)
            naiveGEMM(transposeA: ta, transposeB: tb, m: m, n: n, k: k, alpha: 0.75, a: a, aOffset: 2, lda: lda,
                      b: b, bOffset: 1, ldb: ldb, beta: 0.5, c: &c2, ldc: ldc)
            let result = compare(c1, c2, atol: 1e-5, rtol: 1e-5, label: "C m=\(m) n=\(n) k=\(k) tA=\(ta) tB=\(tb)")
            #expect(result.passed, "\(result)")
        }
    }

    @Test("beta = 0 overwrites NaN in C; k = 0 scales C by beta")
    func betaAndEmpty() {
        var c: [Float] = [.nan, .nan]
        gemm(m: 1, n: 2, k: 1, a: [2], lda: 1, b: [3, 4], ldb: 2, c: &c, ldc: 2)
        #expect(c == [6, 8])
        var d: [Float] = [1, 2]
        gemm(m: 1, n: 2, k: 0, a: [], lda: 1, b: [], ldb: 2, beta: 0.5, c: &d, ldc: 2)
        #expect(d == [0.5, 1])
    }

    @Test("BLAS reports its kernel and thread count")
    func blasFacts() {
        #expect(!BLAS.coreName.isEmpty)
        let saved = BLAS.threadCount
        BLAS.threadCount = 1
        #expect(BLAS.threadCount == 1)
        BLAS.threadCount = saved
    }
}
