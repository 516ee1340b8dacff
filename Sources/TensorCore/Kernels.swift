// Elementwise and reduction kernels over contiguous `Float` buffers. Reductions use
// `SIMD16<Float>` accumulators (Float reductions never auto-vectorize; PLATFORM.md) and
// finish in `Double`.

/// Sets every element of `x` to `value`.
public func fill(_ x: inout [Float], with value: Float) {
    x.withUnsafeMutableBufferPointer { p in
        for i in p.indices { p[i] = value }
    }
}

/// `y ← y + x` elementwise; counts must match.
public func addInPlace(_ y: inout [Float], _ x: [Float]) {
    precondition(y.count == x.count, "addInPlace: \(y.count) vs \(x.count) elements")
    y.withUnsafeMutableBufferPointer { py in
        x.withUnsafeBufferPointer { px in
            for i in py.indices { py[i] += px[i] }
        }
    }
}

/// `y ← y + α·x` elementwise; counts must match. (BLAS `saxpy` semantics, as a Swift loop.)
public func axpy(_ alpha: Float, _ x: [Float], _ y: inout [Float]) {
    precondition(y.count == x.count, "axpy: \(x.count) vs \(y.count) elements")
    y.withUnsafeMutableBufferPointer { py in
        x.withUnsafeBufferPointer { px in
            for i in py.indices { py[i] += alpha * px[i] }
        }
    }
}

/// `x ← α·x` elementwise.
public func scale(_ x: inout [Float], by alpha: Float) {
    x.withUnsafeMutableBufferPointer { p in
        for i in p.indices { p[i] *= alpha }
    }
}

/// The sum of `x[offset ..< offset+count]`, accumulated in 16 float lanes and finished in `Double`.
public func sum(_ x: [Float], offset: Int = 0, count: Int? = nil) -> Double {
    let n = count ?? (x.count - offset)
    precondition(offset >= 0 && n >= 0 && offset + n <= x.count, "sum: range out of bounds")
    return x.withUnsafeBufferPointer { p in simdSum(p.baseAddress! + offset, n) }
}

/// The dot product `Σ x[i]·y[i]` over equal-length arrays, 16 float lanes, finished in `Double`.
public func dot(_ x: [Float], _ y: [Float]) -> Double {
    precondition(x.count == y.count, "dot: \(x.count) vs \(y.count) elements")
    return x.withUnsafeBufferPointer { px in
        y.withUnsafeBufferPointer { py in simdDot(px.baseAddress!, py.baseAddress!, x.count) }
    }
}

@inline(__always)
func simdSum(_ p: UnsafePointer<Float>, _ n: Int) -> Double {
    var acc = SIMD16<Float>()
    var i = 0
    while i + 16 <= n {
        acc += UnsafeRawPointer(p + i).loadUnaligned(as: SIMD16<Float>.self)
        i += 16
    }
    var total = Double(acc.sum())
    while i < n { total += Double(p[i]); i += 1 }
    return total
}

@inlinable @inline(__always)
package func simdDot(_ x: UnsafePointer<Float>, _ y: UnsafePointer<Float>, _ n: Int) -> Double {
    var acc = SIMD16<Float>()
    var i = 0
    while i + 16 <= n {
        let a = UnsafeRawPointer(x + i).loadUnaligned(as: SIMD16<Float>.self)
        let b = UnsafeRawPointer(y + i).loadUnaligned(as: SIMD16<Float>.self)
        acc += a * b
        i += 16
    }
    var total = Double(acc.sum())
    while i < n { total += Double(x[i]) * Double(y[i]); i += 1 }
    return total
}

// MARK: - Row L2 normalization

/// The smallest norm a row is divided by (as `torch.nn.functional.normalize`'s `eps`).
public let l2NormalizationEpsilon: Float = 1e-12

/// Divides each row of a `[rows, columns]` matrix by its Euclidean norm.
///
/// Concretely: `x̂ᵢ = xᵢ / max(‖xᵢ‖₂, ε)` with `ε = 1e-12`.
/// - Parameter x: `[rows, columns]` row-major.
/// - Returns: the normalized rows `[rows, columns]` and the norms `[rows]` (before the ε clamp
///   is applied, so a zero row reports norm 0).
public func l2NormalizedRows(_ x: Tensor) -> (normalized: Tensor, norms: [Float]) {
    precondition(x.rank == 2, "l2NormalizedRows: rank-2 input required, got \(x.shape)")
    let rows = x.shape[0], columns = x.shape[1]
    var out = [Float](repeating: 0, count: x.count)
    var norms = [Float](repeating: 0, count: rows)
    x.storage.withUnsafeBufferPointer { px in
        out.withUnsafeMutableBufferPointer { po in
            for r in 0..<rows {
                let row = px.baseAddress! + r * columns
                let norm = Float(simdDot(row, row, columns).squareRoot())
                norms[r] = norm
                let inverse = 1 / max(norm, l2NormalizationEpsilon)
                let dst = po.baseAddress! + r * columns
                for j in 0..<columns { dst[j] = row[j] * inverse }
            }
        }
    }
    return (Tensor(shape: x.shape, storage: out), norms)
}

/// The backward pass of `l2NormalizedRows`: given `g = ∂L/∂x̂`, returns `∂L/∂x`.
///
/// Concretely, for each row: `∂L/∂x = (g − x̂·(x̂·g)) / max(‖x‖, ε)`.
/// - Parameters:
///   - gradient: `∂L/∂x̂`, `[rows, columns]`.
///   - normalized: the forward output `x̂`, `[rows, columns]`.
///   - norms: the forward norms, `[rows]`.
/// - Returns: `∂L/∂x`, `[rows, columns]`.
public func l2NormalizedRowsBackward(gradient: Tensor, normalized: Tensor, norms: [Float]) -> Tensor {
    precondition(gradient.shape == normalized.shape && gradient.rank == 2 && norms.count == gradient.shape[0],
                 "l2NormalizedRowsBackward: gradient \(gradient.shape), normalized \(normalized.shape), norms \(norms.count)")
    let rows = gradient.shape[0], columns = gradient.shape[1]
    var out = [Float](repeating: 0, count: gradient.count)
    gradient.storage.withUnsafeBufferPointer { pg in
        normalized.storage.withUnsafeBufferPointer { pn in
            out.withUnsafeMutableBufferPointer { po in
                for r in 0..<rows {
                    let g = pg.baseAddress! + r * columns
                    let n = pn.baseAddress! + r * columns
                    let projection = Float(simdDot(n, g, columns))
                    let inverse = 1 / max(norms[r], l2NormalizationEpsilon)
                    let dst = po.baseAddress! + r * columns
                    for j in 0..<columns { dst[j] = (g[j] - n[j] * projection) * inverse }
                }
            }
        }
    }
    return Tensor(shape: gradient.shape, storage: out)
}
