// The `Linear` layer's row broadcasts over a `[rows, columns]` matrix: adding the bias to every
// row, and the bias gradient's column sums.

/// Adds a row vector to every row of a `[rows, columns]` matrix in place: `y[r, j] += v[j]`.
func addRowVector(_ y: inout [Float], rows: Int, columns: Int, _ v: [Float]) {
    precondition(y.count == rows * columns && v.count == columns,
                 "addRowVector: matrix \(y.count) elements for [\(rows), \(columns)], vector \(v.count)")
    if y.isEmpty { return }
    y.withUnsafeMutableBufferPointer { py in
        v.withUnsafeBufferPointer { pv in
            for r in 0..<rows {
                let row = py.baseAddress! + r * columns
                for j in 0..<columns { row[j] += pv[j] }
            }
        }
    }
}

/// Column sums of a `[rows, columns]` matrix, accumulated in `Double`: `Σ_r x[r, j]`.
/// - Returns: `[columns]`.
func columnSums(_ x: [Float], rows: Int, columns: Int) -> [Double] {
    precondition(x.count == rows * columns, "columnSums: \(x.count) elements for [\(rows), \(columns)]")
    var sums = [Double](repeating: 0, count: columns)
    if x.isEmpty { return sums }
    x.withUnsafeBufferPointer { px in
        sums.withUnsafeMutableBufferPointer { ps in
            for r in 0..<rows {
                let row = px.baseAddress! + r * columns
                for j in 0..<columns { ps[j] += Double(row[j]) }
            }
        }
    }
    return sums
}
