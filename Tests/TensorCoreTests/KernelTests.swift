import Testing
import TensorCore
import _TestSupport

@Suite struct KernelTests {
    @Test("row L2 normalization: hand-computed values")
    func normalizationLiteral() {
        // Row [3, 4] has norm 5 → [0.6, 0.8]; a zero row stays zero (ε clamp).
        let (y, norms) = l2NormalizedRows(Tensor(shape: [2, 2], storage: [3, 4, 0, 0]))
        #expect(y.storage == [0.6, 0.8, 0, 0])
        #expect(norms == [5, 0])
    }

    @Test("row L2 normalization backward matches finite differences")
    func normalizationGradient() {
        let rows = 3, columns = 37
        let x = randomArray(rows * columns, seed: 11)
        let weights = randomArray(rows * columns, seed: 12)  // L = Σ w ⊙ x̂
        let (y, norms) = l2NormalizedRows(Tensor(shape: [rows, columns], storage: x))
        let analytic = l2NormalizedRowsBackward(gradient: Tensor(shape: [rows, columns], storage: weights),
                                                normalized: y, norms: norms)
        // Reference in Double: the same function written independently.
        let numeric = numericalGradient(at: x.map(Double.init)) { xd in
            var total = 0.0
            for r in 0..<rows {
                let row = xd[(r * columns)..<((r + 1) * columns)]
                let norm = row.reduce(0) { $0 + $1 * $1 }.squareRoot()
                for (j, v) in row.enumerated() { total += Double(weights[r * columns + j]) * v / norm }
            }
            return total
        }
        let result = compare(analytic.storage, numeric, atol: 1e-5, rtol: 1e-3, label: "∂L/∂x")
        #expect(result.passed, "\(result)")
    }

    @Test("sum and dot accumulate exactly on representable data")
    func reductions() {
        let x = [Float](repeating: 0.5, count: 1001)
        #expect(sum(x) == 500.5)
        #expect(dot(x, x) == 250.25)
    }

    @Test("seeded generator is reproducible and roughly standard normal")
    func generator() {
        var a = SeededGenerator(seed: 42), b = SeededGenerator(seed: 42)
        #expect((0..<10).map { _ in a.next() } == (0..<10).map { _ in b.next() })
        var g = SeededGenerator(seed: 7)
        let samples = (0..<20_000).map { _ in Double(g.nextNormal()) }
        let mean = samples.reduce(0, +) / Double(samples.count)
        let variance = samples.reduce(0) { $0 + ($1 - mean) * ($1 - mean) } / Double(samples.count)
        #expect(abs(mean) < 0.03)
        #expect(abs(variance - 1) < 0.05)
    }
}
