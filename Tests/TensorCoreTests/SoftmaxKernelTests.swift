#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif
import Testing
import TensorCore
import _TestSupport

/// The distance in units in the last place between a Float result and a Double reference
/// (one ulp = the spacing of Floats at the reference's magnitude).
func ulpError(_ value: Float, _ reference: Double) -> Double {
    let magnitude = Float(reference)
    let ulp = Double(magnitude.ulp)
    return abs(Double(value) - reference) / ulp
}

@Suite struct VectorExpTests {
    @Test("vectorExp: ≤ 2 ulp from libm's exp over [−87.3, 88.7] on a dense grid")
    func accuracy() {
        // 200,000 points (kept small for debug builds), plus the exact range ends.
        let count = 200_000
        var x = (0..<count).map { Float(-87.33 + (88.7 + 87.33) * Double($0) / Double(count - 1)) }
        x += [0, -0.0, 1, -1, 1e-8, -1e-8, .ulpOfOne, 0.34657359, -0.34657359, -87.3365, 88.72]
        var y = x
        exponentiate(&y)
        var worst = 0.0, worstX: Float = 0
        for (xi, yi) in zip(x, y) {
            let error = ulpError(yi, exp(Double(xi)))
            if error > worst { worst = error; worstX = xi }
        }
        #expect(worst <= 2, "worst \(worst) ulp at x = \(worstX)")
    }

    @Test("vectorExp: underflow to +0 below ln(FLT_MIN), +∞ above ln(FLT_MAX), NaN propagates, exp(0) = 1")
    func specialValues() {
        var x: [Float] = [-87.34, -88, -100, -1e4, -.infinity, 88.73, 1e4, .infinity, .nan, 0]
        x += [Float](repeating: -200, count: 17)   // a full vector and a tail
        exponentiate(&x)
        #expect(x[0..<5].allSatisfy { $0 == 0 && $0.sign == .plus })
        #expect(x[5..<8].allSatisfy { $0 == .infinity })
        #expect(x[8].isNaN)
        #expect(x[9] == 1)
        #expect(x[10...].allSatisfy { $0 == 0 })
        // Large negatives: monotone non-increasing toward zero.
        var grid = (0..<1000).map { Float(-80 - Double($0) * 0.01) }
        exponentiate(&grid)
        #expect(zip(grid, grid.dropFirst()).allSatisfy { $0 >= $1 })
    }
}

@Test("softmaxExponential = vectorExp bit for bit on [−100, 88], 0 below ln(FLT_MIN), NaN propagates")
func softmaxExponentialMatches() {
    var worst: Float = 0
    for i in 0..<20_000 {
        let x = -100 + 188 * Float(i) / 19_999
        let v = SIMD16<Float>((0..<16).map { x - Float($0) * 1e-3 })
        let a = softmaxExponential(v), b = vectorExp(v)
        for lane in 0..<16 where a[lane] != b[lane] { worst = max(worst, abs(a[lane] - b[lane])) }
    }
    #expect(worst == 0, "largest difference \(worst)")
    #expect(softmaxExponential(-1e4) == 0 && softmaxExponential(-.infinity) == 0 && softmaxExponential(Float.nan).isNaN)
    #expect(softmaxExponential(0) == 1)
}

@Suite struct SoftmaxKernelTests {
    @Test("row statistics: hand-checked row [0.5, 1.0000002, −3 (target), 0.5] with s = 2")
    func literal() {
        // Clamped: [0.5, 1, −1(t), 0.5]; m = 1 (the target is excluded); S = e^{−1} + 1 + e^{−1};
        // the arg-maximum over all columns is column 1.
        var buffer: [Float] = [0.5, 1.0000002, -3, 0.5]
        let stats = softmaxRowStatistics(&buffer, rows: 1, columns: 4, excluded: [2], scale: 2,
                                         clampsToUnitInterval: true, storesExponentials: true)
        #expect(stats.maxima == [1])
        #expect(abs(stats.sums[0] - (1 + 2 * exp(-1.0))) < 1e-6)
        #expect(stats.argmax == [1] && stats.argmaxValues == [1])
        #expect(abs(buffer[0] - Float(exp(-1.0))) < 1e-7 && buffer[1] == 1 && buffer[2] == -3)
        scaleRowsSettingTargets(&buffer, rows: 1, columns: 4, factors: [2], targets: [2], targetValues: [-7])
        #expect(buffer[2] == -7 && buffer[1] == 2)
    }

    @Test("row statistics and gradients = scalar Double reference on random rows (parallel path too)")
    func randomRows() {
        for (rows, columns) in [(3, 37), (64, 1031)] {
            let x = randomArray(rows * columns, seed: 9, standardDeviation: 0.4)
            let targets = (0..<rows).map { $0 % 3 == 2 ? -1 : ($0 * 13) % columns }
            var buffer = x
            let s: Float = 30
            let stats = softmaxRowStatistics(&buffer, rows: rows, columns: columns, excluded: targets, scale: s,
                                             clampsToUnitInterval: true, storesExponentials: false)
            #expect(buffer == x)
            var recomputed = x
            exponentiateRowsSettingTargets(&recomputed, rows: rows, columns: columns, scale: s, clampsToUnitInterval: true,
                                           references: stats.maxima, factors: .init(repeating: 1, count: rows),
                                           targets: targets, targetValues: .init(repeating: 0, count: rows))
            for i in 0..<rows {
                let row = (0..<columns).map { min(max(Double(x[i * columns + $0]), -1), 1) }
                let others = row.indices.filter { $0 != targets[i] }
                let m = others.map { row[$0] }.max()!
                let sum = others.reduce(0.0) { $0 + exp(Double(s) * (row[$1] - m)) }
                let argmax = row.indices.max { row[$0] < row[$1] || (row[$0] == row[$1] && $0 > $1) }!
                #expect(Double(stats.maxima[i]) == m)
                #expect(abs(stats.sums[i] - sum) <= 1e-5 * sum, "row \(i): \(stats.sums[i]) vs \(sum)")
                #expect(stats.argmax[i] == argmax)
                for j in 0..<columns {
                    let expected = j == targets[i] ? 0 : exp(Double(s) * (row[j] - m))
                    #expect(abs(Double(recomputed[i * columns + j]) - expected) <= 1e-5 * expected + 1e-30)
                }
            }
        }
    }

    @Test("group maxima pick the first largest sub-center; the scatter puts the gradient back there")
    func groups() {
        // One row, two groups of three: [0.1, 0.7, 0.7 | −0.2, −0.5, 0.3].
        let input: [Float] = [0.1, 0.7, 0.7, -0.2, -0.5, 0.3]
        var output = [Float](repeating: 0, count: 2), choice = [Int32](repeating: 0, count: 2)
        groupMaxima(input, rows: 1, groups: 2, groupSize: 3, into: &output, choice: &choice)
        #expect(output == [0.7, 0.3] && choice == [1, 2])
        var back = [Float](repeating: 9, count: 6)
        scatterGroupGradient([5, -4], choice: choice, rows: 1, groups: 2, groupSize: 3, into: &back)
        #expect(back == [0, 5, 0, 0, 0, -4])
    }

    @Test("selected-row normalization and its accumulating backward equal the whole-matrix functions")
    func selectedRows() {
        let rows = 5, columns = 19
        let x = randomArray(rows * columns, seed: 3)
        let (whole, norms) = l2NormalizedRows(Tensor(shape: [rows, columns], storage: x))
        var compact = [Float](repeating: 0, count: 2 * columns)
        let selectedNorms = l2NormalizeRows(x, rowIndices: [3, 1], columns: columns, into: &compact)
        #expect(Array(compact[0..<columns]) == Array(whole.storage[(3 * columns)..<(4 * columns)]))
        #expect(selectedNorms == [norms[3], norms[1]])
        let g = randomArray(2 * columns, seed: 4)
        var target = [Float](repeating: 1, count: rows * columns)
        accumulateL2NormalizedRowsBackward(gradient: g, normalized: compact, norms: selectedNorms, rowIndices: [3, 1],
                                           columns: columns, into: &target)
        let reference = l2NormalizedRowsBackward(gradient: Tensor(shape: [1, columns], storage: Array(g[0..<columns])),
                                                 normalized: Tensor(shape: [1, columns], storage: Array(compact[0..<columns])),
                                                 norms: [selectedNorms[0]])
        #expect(Array(target[(3 * columns)..<(4 * columns)]) == reference.storage.map { 1 + $0 })
        #expect(target[0..<columns].allSatisfy { $0 == 1 })
    }
}
