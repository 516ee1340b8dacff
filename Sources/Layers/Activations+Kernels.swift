// The activation kernels: PReLU per channel of an `[outer, C, inner]` view (legend in
// `Layer+Kernels.swift`), ReLU, and the elementwise product Dropout multiplies by its mask.

/// PReLU of a `[outer, C, inner]` tensor: `y = x` where `x > 0`, else `a_c·x` (He et al. 2015,
/// "Delving Deep into Rectifiers", eq. 1).
/// - Parameters:
///   - slopes: `a`, `[C]`.
///   - output: resized to `[outer, C, inner]` if needed and overwritten.
func preluForward(_ x: [Float], outer: Int, channels: Int, inner: Int, slopes: [Float],
                  into output: inout [Float]) {
    checkView("preluForward", x.count, outer: outer, channels: channels, inner: inner)
    precondition(slopes.count == channels, "preluForward: \(slopes.count) slopes for \(channels) channels")
    prepare(&output, count: x.count)
    if x.isEmpty { return }
    x.withUnsafeBufferPointer { px in
        output.withUnsafeMutableBufferPointer { po in
            forEachChannelSlice(outer: outer, channels: channels, inner: inner) { c, offset in
                let a = slopes[c]
                let s = px.baseAddress! + offset, d = po.baseAddress! + offset
                for i in 0..<inner { let v = s[i]; d[i] = v > 0 ? v : a * v }
            }
        }
    }
}

/// The backward pass of `preluForward`: `∂x = g` where `x > 0`, else `a_c·g`; `∂a_c = Σ_{x ≤ 0} g·x`
/// (He et al. 2015, eq. 2–4).
/// - Parameter inputGradient: resized to `[outer, C, inner]` if needed and overwritten with `∂x`.
/// - Returns: the slope gradient `[C]`, accumulated in `Double`.
func preluBackward(gradient: [Float], input: [Float], outer: Int, channels: Int, inner: Int,
                   slopes: [Float], into inputGradient: inout [Float]) -> [Double] {
    checkView("preluBackward", gradient.count, outer: outer, channels: channels, inner: inner)
    precondition(input.count == gradient.count && slopes.count == channels,
                 "preluBackward: gradient \(gradient.count), input \(input.count), slopes \(slopes.count), C \(channels)")
    var slopeGradient = [Double](repeating: 0, count: channels)
    prepare(&inputGradient, count: gradient.count)
    if gradient.isEmpty { return slopeGradient }
    gradient.withUnsafeBufferPointer { pg in
        input.withUnsafeBufferPointer { px in
            inputGradient.withUnsafeMutableBufferPointer { pd in
                forEachChannelSlice(outer: outer, channels: channels, inner: inner) { c, offset in
                    let a = slopes[c]
                    let gs = pg.baseAddress! + offset, xs = px.baseAddress! + offset, d = pd.baseAddress! + offset
                    // Elementwise select (auto-vectorizes), then the slope reduction in SIMD lanes.
                    for i in 0..<inner { let gv = gs[i]; d[i] = xs[i] > 0 ? gv : a * gv }
                    var acc = SIMD16<Float>()
                    var i = 0
                    while i + 16 <= inner {
                        let gv = UnsafeRawPointer(gs + i).loadUnaligned(as: SIMD16<Float>.self)
                        let xv = UnsafeRawPointer(xs + i).loadUnaligned(as: SIMD16<Float>.self)
                        acc += gv * xv.replacing(with: 0, where: xv .> 0)   // g·x where x ≤ 0
                        i += 16
                    }
                    var total = Double(acc.sum())
                    while i < inner { if xs[i] <= 0 { total += Double(gs[i]) * Double(xs[i]) }; i += 1 }
                    slopeGradient[c] += total
                }
            }
        }
    }
    return slopeGradient
}

/// ReLU: `y = max(x, 0)` elementwise (a NaN input stays NaN).
func reluForward(_ x: [Float]) -> [Float] {
    x.withUnsafeBufferPointer { px in
        makeArray(count: x.count) { dst in
            let s = px.baseAddress!
            for i in 0..<x.count { let v = s[i]; dst[i] = v > 0 ? v : (v.isNaN ? v : 0) }
        }
    }
}

/// The backward pass of ReLU: `∂x = g` where the forward output was positive, else 0.
/// - Parameters:
///   - gradient: `g`, any shape; output: the forward output `y`, same count.
func reluBackward(gradient: [Float], output: [Float]) -> [Float] {
    precondition(gradient.count == output.count, "reluBackward: gradient \(gradient.count) vs output \(output.count)")
    return gradient.withUnsafeBufferPointer { pg in
        output.withUnsafeBufferPointer { py in
            makeArray(count: gradient.count) { dst in
                let g = pg.baseAddress!, y = py.baseAddress!
                for i in 0..<gradient.count { dst[i] = y[i] > 0 ? g[i] : 0 }
            }
        }
    }
}

/// The elementwise product `x ⊙ y` of equal-length arrays.
func multiplied(_ x: [Float], _ y: [Float]) -> [Float] {
    precondition(x.count == y.count, "multiplied: \(x.count) vs \(y.count) elements")
    return x.withUnsafeBufferPointer { px in
        y.withUnsafeBufferPointer { py in
            makeArray(count: x.count) { dst in
                let a = px.baseAddress!, b = py.baseAddress!
                for i in 0..<x.count { dst[i] = a[i] * b[i] }
            }
        }
    }
}
