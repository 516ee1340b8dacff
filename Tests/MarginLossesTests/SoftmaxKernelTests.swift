#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif
import Testing
import TensorCore
@testable import MarginLosses
import _TestSupport

/// The head's tile kernels on whole rows (a tile as wide as the buffer, no column scales).
@Suite struct SoftmaxKernelTests {
    @Test("row statistics: hand-checked row [0.5, 1.0000002, −3 (target), 0.5] with s = 2")
    func literal() {
        // Clamped: [0.5, 1, −1(t), 0.5]; m = 1 (the target is excluded); S = e^{−1} + 1 + e^{−1};
        // the arg-maximum over all columns is column 1.
        var buffer: [Float] = [0.5, 1.0000002, -3, 0.5]
        let stats = softmaxTileStatistics(&buffer, rows: 1, ld: 4, columnOffset: 0, width: 4, columnScales: nil,
                                          excluded: [2], scale: 2, clampsToUnitInterval: true,
                                          storesExponentials: true)
        #expect(stats.maxima == [1])
        #expect(abs(stats.sums[0] - (1 + 2 * exp(-1.0))) < 1e-6)
        #expect(stats.argmax == [1] && stats.argmaxValues == [1])
        #expect(abs(buffer[0] - Float(exp(-1.0))) < 1e-7 && buffer[1] == 1 && buffer[2] == -3)
        scaleExponentialsTile(&buffer, rows: 1, ld: 4, columnOffset: 0, width: 4, rowFactors: [2], targets: [2],
                              targetValues: [-7], columnScales: nil)
        #expect(buffer[2] == -7 && buffer[1] == 2)
    }

    @Test("row statistics and gradients = scalar Double reference on random rows (parallel path too)")
    func randomRows() {
        for (rows, columns) in [(3, 37), (64, 1031)] {
            let x = randomArray(rows * columns, seed: 9, standardDeviation: 0.4)
            let targets = (0..<rows).map { $0 % 3 == 2 ? -1 : ($0 * 13) % columns }
            var buffer = x
            let s: Float = 30
            let stats = softmaxTileStatistics(&buffer, rows: rows, ld: columns, columnOffset: 0, width: columns,
                                              columnScales: nil, excluded: targets, scale: s,
                                              clampsToUnitInterval: true, storesExponentials: false)
            #expect(buffer == x)
            var recomputed = x
            softmaxGradientTile(&recomputed, rows: rows, ld: columns, columnOffset: 0, width: columns, scale: s,
                                clampsToUnitInterval: true, references: stats.maxima,
                                factors: .init(repeating: 1, count: rows), targets: targets,
                                targetValues: .init(repeating: 0, count: rows), columnScales: nil)
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
        // One row, two groups of three: [0.1, 0.7, 0.7 | −0.2, −0.5, 0.3]; column scales 1.
        let input: [Float] = [0.1, 0.7, 0.7, -0.2, -0.5, 0.3]
        var output = [Float](repeating: 0, count: 2), choice = [Int32](repeating: 0, count: 2)
        groupMaximaTile(input, rows: 1, inputLD: 6, inputOffset: 0, groups: 2, groupSize: 3, into: &output,
                        choice: &choice, outputLD: 2, outputOffset: 0)
        #expect(output == [0.7, 0.3] && choice == [1, 2])
        var back = [Float](repeating: 9, count: 6)
        scatterGroupGradientTile([5, -4], choice: choice, gradientLD: 2, gradientOffset: 0, rows: 1, groups: 2,
                                 groupSize: 3, into: &back, ld: 6, columnOffset: 0,
                                 columnScales: .init(repeating: 1, count: 6), scalesOffset: 0)
        #expect(back == [0, 5, 0, 0, 0, -4])
    }

    @Test("gathered rows and their inverse norms, and the folded accumulating backward, match the whole-matrix functions")
    func selectedRows() {
        let rows = 5, columns = 19
        let x = randomArray(rows * columns, seed: 3)
        let (whole, norms) = l2NormalizedRows(Tensor(shape: [rows, columns], storage: x))
        var compact = [Float](repeating: 0, count: 2 * columns)
        var inverseNorms = [Float](repeating: 0, count: 3)
        gatherRowsWithInverseNorms(x, rowIndices: [3, 1], columns: columns, into: &compact, inverseNorms: &inverseNorms,
                                   offset: 1)
        #expect(Array(compact[0..<columns]) == Array(x[(3 * columns)..<(4 * columns)]))
        #expect(Array(compact[columns...]) == Array(x[columns..<(2 * columns)]))
        #expect(inverseNorms == [0, 1 / max(norms[3], l2NormalizationEpsilon), 1 / max(norms[1], l2NormalizationEpsilon)])
        var contiguous = [Float](repeating: 0, count: 2)
        rowInverseNorms(x, firstRow: 3, rows: 2, columns: columns, into: &contiguous, offset: 0)
        #expect(contiguous == [1 / max(norms[3], l2NormalizationEpsilon), 1 / max(norms[4], l2NormalizationEpsilon)])
        // The folded backward takes t = g·ν (the compact tile of G'ᵀ·ê) and equals the backward
        // of the row normalization of ∂L/∂ŵ = g, added to the target rows.
        let g = randomArray(2 * columns, seed: 4)
        let t = (0..<(2 * columns)).map { g[$0] * inverseNorms[1 + $0 / columns] }
        var target = [Float](repeating: 1, count: rows * columns)
        accumulateNormalizedRowsGradient(t, rows: 2, centers: x, rowIndices: [3, 1], columns: columns,
                                         inverseNorms: inverseNorms, offset: 1, into: &target)
        for (r, row) in [3, 1].enumerated() {
            let span = (row * columns)..<((row + 1) * columns)
            let reference = l2NormalizedRowsBackward(
                gradient: Tensor(shape: [1, columns], storage: Array(g[(r * columns)..<((r + 1) * columns)])),
                normalized: Tensor(shape: [1, columns], storage: Array(whole.storage[span])), norms: [norms[row]])
            let result = compare(target[span].map { $0 - 1 }, reference.storage, atol: 1e-6, rtol: 1e-4,
                                 label: "row \(row)")
            #expect(result.passed, "\(result)")
        }
        #expect(target[0..<columns].allSatisfy { $0 == 1 })
    }
}
