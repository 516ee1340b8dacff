// Pointer-speed kernels for the `Layers` module: axis permutations around the convolution GEMM,
// per-channel reductions and affine maps (BatchNorm, bias), PReLU/ReLU, max pooling, and row
// broadcasts (Linear). Every function checks its sizes with a precondition before borrowing
// pointers, so callers stay in safe Swift.
//
// Legend: a tensor viewed as `[outer, C, inner]` row-major has channel `c` at
// `x[(o·C + c)·inner + i]`; an NCHW batch is `outer = N`, `inner = H·W`; an `[N, C]` matrix is
// `outer = N`, `inner = 1`. Reductions use SIMD accumulators (Float reductions never
// auto-vectorize; PLATFORM.md); the per-channel statistics are accumulated in `Double` lanes.

// MARK: - Uninitialized allocation

/// A new array of `count` elements written entirely by `body` (no zero-fill pass first).
@inline(__always)
private func makeArray(count: Int, _ body: (UnsafeMutablePointer<Float>) -> Void) -> [Float] {
    [Float](unsafeUninitializedCapacity: count) { buffer, initialized in
        if count > 0 { body(buffer.baseAddress!) }
        initialized = count
    }
}

/// Gives `buffer` exactly `count` elements whose values the caller then overwrites; an array of
/// the right size is reused (copy-on-write still protects any other owner of its storage).
@inline(__always)
private func prepare(_ buffer: inout [Float], count: Int) {
    if buffer.count != count { buffer = makeArray(count: count) { _ in } }
}

@inline(__always)
private func checkView(_ label: StaticString, _ count: Int, outer: Int, channels: Int, inner: Int) {
    precondition(outer >= 0 && channels >= 0 && inner >= 0,
                 "\(label): negative view [\(outer), \(channels), \(inner)]")
    precondition(count == outer * channels * inner,
                 "\(label): \(count) elements do not match the view [outer \(outer), C \(channels), inner \(inner)]")
}

// MARK: - Axis permutation

/// Swaps the two leading axes of a `[A, B, S]` tensor: `output[b, a, s] = input[a, b, s] (+ bias[a])`.
///
/// Used around the convolution GEMM: `[N, C, H·W] ↔ [C, N·H·W]`. Each move is a contiguous run of
/// `S` elements.
/// - Parameters:
///   - input: `[A, B, S]` row-major.
///   - bias: optional `[A]`, added to every element of input slice `a` (a convolution bias when
///     `[A, B, S] = [C, N, H·W]`).
///   - output: resized to `[B, A, S]` if needed and overwritten (its buffer is reused when unique).
public func swapLeadingAxes(_ input: [Float], _ a: Int, _ b: Int, inner s: Int,
                            adding bias: [Float]? = nil, into output: inout [Float]) {
    checkView("swapLeadingAxes", input.count, outer: a, channels: b, inner: s)
    if let bias { precondition(bias.count == a, "swapLeadingAxes: bias has \(bias.count) elements, expected \(a)") }
    prepare(&output, count: input.count)
    if input.isEmpty { return }
    input.withUnsafeBufferPointer { pin in
        output.withUnsafeMutableBufferPointer { pout in
            let src = pin.baseAddress!, dst = pout.baseAddress!
            for i in 0..<a {
                for j in 0..<b {
                    let from = src + (i * b + j) * s
                    let to = dst + (j * a + i) * s
                    if let bias {
                        let shift = bias[i]
                        for k in 0..<s { to[k] = from[k] + shift }
                    } else {
                        to.update(from: from, count: s)
                    }
                }
            }
        }
    }
}

// MARK: - Per-channel reductions

/// The sum of `n` floats, accumulated in `Double` lanes.
@inline(__always)
private func doubleSum(_ p: UnsafePointer<Float>, _ n: Int) -> Double {
    var acc0 = SIMD8<Double>(), acc1 = SIMD8<Double>()
    var i = 0
    while i + 16 <= n {
        let v = UnsafeRawPointer(p + i).loadUnaligned(as: SIMD16<Float>.self)
        acc0 += SIMD8<Double>(v.lowHalf)
        acc1 += SIMD8<Double>(v.highHalf)
        i += 16
    }
    var total = (acc0 + acc1).sum()
    while i < n { total += Double(p[i]); i += 1 }
    return total
}

/// `Σ (x − m)²` over `n` floats, accumulated in `Double` lanes.
@inline(__always)
private func doubleCenteredSquares(_ p: UnsafePointer<Float>, _ n: Int, mean m: Float) -> Double {
    var acc0 = SIMD8<Double>(), acc1 = SIMD8<Double>()
    let mv = SIMD16<Float>(repeating: m)
    var i = 0
    while i + 16 <= n {
        let d = UnsafeRawPointer(p + i).loadUnaligned(as: SIMD16<Float>.self) - mv
        let d0 = SIMD8<Double>(d.lowHalf), d1 = SIMD8<Double>(d.highHalf)
        acc0 += d0 * d0
        acc1 += d1 * d1
        i += 16
    }
    var total = (acc0 + acc1).sum()
    while i < n { let d = Double(p[i] - m); total += d * d; i += 1 }
    return total
}

/// `Σ g` and `Σ g·(x − m)` over `n` floats, accumulated in `Double` lanes.
@inline(__always)
private func doubleGradientSums(_ g: UnsafePointer<Float>, _ x: UnsafePointer<Float>, _ n: Int,
                                mean m: Float) -> (Double, Double) {
    var s0 = SIMD8<Double>(), s1 = SIMD8<Double>(), d0 = SIMD8<Double>(), d1 = SIMD8<Double>()
    let mv = SIMD16<Float>(repeating: m)
    var i = 0
    while i + 16 <= n {
        let gv = UnsafeRawPointer(g + i).loadUnaligned(as: SIMD16<Float>.self)
        let xv = UnsafeRawPointer(x + i).loadUnaligned(as: SIMD16<Float>.self) - mv
        let g0 = SIMD8<Double>(gv.lowHalf), g1 = SIMD8<Double>(gv.highHalf)
        s0 += g0
        s1 += g1
        d0 += g0 * SIMD8<Double>(xv.lowHalf)
        d1 += g1 * SIMD8<Double>(xv.highHalf)
        i += 16
    }
    var sum = (s0 + s1).sum(), dot = (d0 + d1).sum()
    while i < n { sum += Double(g[i]); dot += Double(g[i]) * Double(x[i] - m); i += 1 }
    return (sum, dot)
}

/// Per-channel sums of a `[outer, C, inner]` tensor, accumulated in `Double`: `Σ_{o,i} x[o, c, i]`.
/// - Returns: `[C]`.
public func channelSums(_ x: [Float], outer: Int, channels: Int, inner: Int) -> [Double] {
    checkView("channelSums", x.count, outer: outer, channels: channels, inner: inner)
    var sums = [Double](repeating: 0, count: channels)
    if x.isEmpty { return sums }
    x.withUnsafeBufferPointer { px in
        let base = px.baseAddress!
        for o in 0..<outer {
            for c in 0..<channels {
                sums[c] += doubleSum(base + (o * channels + c) * inner, inner)
            }
        }
    }
    return sums
}

/// Per-channel mean and biased variance of a `[outer, C, inner]` tensor, in one pass over the
/// data with `Double` accumulation of shifted values (the "shifted data" algorithm: with `K_c`
/// the channel's first element, `S₁ = Σ (x − K)`, `S₂ = Σ (x − K)²`, so no cancellation when
/// `|μ| ≫ σ`).
///
/// Concretely, with `M = outer·inner`: `μ_c = K + S₁/M`, `σ²_c = (S₂ − S₁²/M) / M` (clamped at 0),
/// i.e. `μ_c = Σ x / M` and `σ²_c = Σ (x − μ_c)² / M` to `Double` round-off.
/// - Precondition: `outer·inner > 0`.
/// - Returns: `mean` and `variance`, each `[C]`.
public func channelMeanAndVariance(_ x: [Float], outer: Int, channels: Int,
                                   inner: Int) -> (mean: [Double], variance: [Double]) {
    checkView("channelMeanAndVariance", x.count, outer: outer, channels: channels, inner: inner)
    let m = outer * inner
    precondition(m > 0, "channelMeanAndVariance: no elements per channel ([\(outer), \(channels), \(inner)])")
    var mean = [Double](repeating: 0, count: channels), variance = [Double](repeating: 0, count: channels)
    if x.isEmpty { return (mean, variance) }
    // Channels are independent: split them over workers (each channel's sums keep their order,
    // so the result does not depend on the worker count).
    x.withUnsafeBufferPointer { px in
        mean.withUnsafeMutableBufferPointer { pm in
            variance.withUnsafeMutableBufferPointer { pv in
                let base = SharedConstPointer(base: px.baseAddress!)
                let means = SharedPointer(base: pm.baseAddress!), variances = SharedPointer(base: pv.baseAddress!)
                forEachTask(channels, workers: elementwiseWorkers(x.count)) { c, _ in
                    let shift = Double(base.base[c * inner])
                    let shiftLanes = SIMD8<Double>(repeating: shift)
                    var s1 = 0.0, s2 = 0.0
                    for o in 0..<outer {
                        let p = base.base + (o * channels + c) * inner
                        var a1 = SIMD8<Double>(), a2 = SIMD8<Double>(), b1 = SIMD8<Double>(), b2 = SIMD8<Double>()
                        var i = 0
                        while i + 16 <= inner {
                            let v = UnsafeRawPointer(p + i).loadUnaligned(as: SIMD16<Float>.self)
                            let d0 = widened(v.lowHalf) - shiftLanes, d1 = widened(v.highHalf) - shiftLanes
                            a1 += d0
                            a2 += d0 * d0
                            b1 += d1
                            b2 += d1 * d1
                            i += 16
                        }
                        s1 += (a1 + b1).sum()
                        s2 += (a2 + b2).sum()
                        while i < inner { let d = Double(p[i]) - shift; s1 += d; s2 += d * d; i += 1 }
                    }
                    means.base[c] = shift + s1 / Double(m)
                    variances.base[c] = max(0, s2 - s1 * s1 / Double(m))
                }
            }
        }
    }
    for c in 0..<channels { variance[c] /= Double(m) }
    return (mean, variance)
}

/// Per-channel `Σ g` and `Σ g·(x − μ_c)` of two `[outer, C, inner]` tensors, in `Double`
/// (the two reductions of the BatchNorm backward pass).
/// - Parameters:
///   - gradient: `g`, `[outer, C, inner]`.
///   - input: `x`, `[outer, C, inner]`.
///   - mean: `μ`, `[C]`.
/// - Returns: `sum` and `centeredDot`, each `[C]`.
public func channelGradientSums(gradient: [Float], input: [Float], mean: [Float], outer: Int, channels: Int,
                                inner: Int) -> (sum: [Double], centeredDot: [Double]) {
    checkView("channelGradientSums", gradient.count, outer: outer, channels: channels, inner: inner)
    precondition(input.count == gradient.count && mean.count == channels,
                 "channelGradientSums: gradient \(gradient.count), input \(input.count), mean \(mean.count), C \(channels)")
    var sums = [Double](repeating: 0, count: channels)
    var dots = [Double](repeating: 0, count: channels)
    if gradient.isEmpty { return (sums, dots) }
    gradient.withUnsafeBufferPointer { pg in
        input.withUnsafeBufferPointer { px in
            for o in 0..<outer {
                for c in 0..<channels {
                    let offset = (o * channels + c) * inner
                    let (s, d) = doubleGradientSums(pg.baseAddress! + offset, px.baseAddress! + offset, inner,
                                                    mean: mean[c])
                    sums[c] += s
                    dots[c] += d
                }
            }
        }
    }
    return (sums, dots)
}

// MARK: - Per-channel affine maps

/// A per-channel affine map of a `[outer, C, inner]` tensor: `y[o, c, i] = a_c·x[o, c, i] + b_c`.
/// (BatchNorm's normalization and affine step folded into one scale and shift.)
/// - Parameters:
///   - scale: `a`, `[C]`; shift: `b`, `[C]`.
///   - output: resized to `[outer, C, inner]` if needed and overwritten.
public func channelAffine(_ x: [Float], outer: Int, channels: Int, inner: Int,
                          scale: [Float], shift: [Float], into output: inout [Float]) {
    checkView("channelAffine", x.count, outer: outer, channels: channels, inner: inner)
    precondition(scale.count == channels && shift.count == channels,
                 "channelAffine: scale \(scale.count), shift \(shift.count), C \(channels)")
    prepare(&output, count: x.count)
    if x.isEmpty { return }
    x.withUnsafeBufferPointer { px in
        output.withUnsafeMutableBufferPointer { po in
            let src = px.baseAddress!, dst = po.baseAddress!
            for o in 0..<outer {
                for c in 0..<channels {
                    let offset = (o * channels + c) * inner
                    let a = scale[c], b = shift[c]
                    let s = src + offset, d = dst + offset
                    for i in 0..<inner { d[i] = a * s[i] + b }
                }
            }
        }
    }
}

/// A per-channel combination of two `[outer, C, inner]` tensors:
/// `z[o, c, i] = p_c·g[o, c, i] + q_c·x[o, c, i] + r_c` (BatchNorm's input gradient).
/// - Parameter output: resized to `[outer, C, inner]` if needed and overwritten.
public func channelLinearCombination(_ g: [Float], _ x: [Float], outer: Int, channels: Int, inner: Int,
                                     gradientScale p: [Float], inputScale q: [Float], shift r: [Float],
                                     into output: inout [Float]) {
    checkView("channelLinearCombination", g.count, outer: outer, channels: channels, inner: inner)
    precondition(x.count == g.count && p.count == channels && q.count == channels && r.count == channels,
                 "channelLinearCombination: g \(g.count), x \(x.count), coefficients \(p.count)/\(q.count)/\(r.count), C \(channels)")
    prepare(&output, count: g.count)
    if g.isEmpty { return }
    g.withUnsafeBufferPointer { pg in
        x.withUnsafeBufferPointer { px in
            output.withUnsafeMutableBufferPointer { po in
                for o in 0..<outer {
                    for c in 0..<channels {
                        let offset = (o * channels + c) * inner
                        let a = p[c], b = q[c], shift = r[c]
                        let gs = pg.baseAddress! + offset, xs = px.baseAddress! + offset, d = po.baseAddress! + offset
                        for i in 0..<inner { d[i] = a * gs[i] + b * xs[i] + shift }
                    }
                }
            }
        }
    }
}

// MARK: - Activations

/// PReLU of a `[outer, C, inner]` tensor: `y = x` where `x > 0`, else `a_c·x` (He et al. 2015,
/// "Delving Deep into Rectifiers", eq. 1).
/// - Parameters:
///   - slopes: `a`, `[C]`.
///   - output: resized to `[outer, C, inner]` if needed and overwritten.
public func preluForward(_ x: [Float], outer: Int, channels: Int, inner: Int, slopes: [Float],
                         into output: inout [Float]) {
    checkView("preluForward", x.count, outer: outer, channels: channels, inner: inner)
    precondition(slopes.count == channels, "preluForward: \(slopes.count) slopes for \(channels) channels")
    prepare(&output, count: x.count)
    if x.isEmpty { return }
    x.withUnsafeBufferPointer { px in
        output.withUnsafeMutableBufferPointer { po in
            for o in 0..<outer {
                for c in 0..<channels {
                    let offset = (o * channels + c) * inner
                    let a = slopes[c]
                    let s = px.baseAddress! + offset, d = po.baseAddress! + offset
                    for i in 0..<inner { let v = s[i]; d[i] = v > 0 ? v : a * v }
                }
            }
        }
    }
}

/// The backward pass of `preluForward`: `∂x = g` where `x > 0`, else `a_c·g`; `∂a_c = Σ_{x ≤ 0} g·x`
/// (He et al. 2015, eq. 2–4).
/// - Parameter inputGradient: resized to `[outer, C, inner]` if needed and overwritten with `∂x`.
/// - Returns: the slope gradient `[C]`, accumulated in `Double`.
public func preluBackward(gradient: [Float], input: [Float], outer: Int, channels: Int, inner: Int,
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
                for o in 0..<outer {
                    for c in 0..<channels {
                        let offset = (o * channels + c) * inner
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
    }
    return slopeGradient
}

/// ReLU: `y = max(x, 0)` elementwise (a NaN input stays NaN).
public func reluForward(_ x: [Float]) -> [Float] {
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
public func reluBackward(gradient: [Float], output: [Float]) -> [Float] {
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
public func multiplied(_ x: [Float], _ y: [Float]) -> [Float] {
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

// MARK: - Max pooling

/// Max pooling over each `H × W` plane of a `[P, H, W]` tensor (`P = N·C`), window `k × k`, stride
/// `s`, no padding, floor mode: `Ho = (H − k)/s + 1`, `Wo = (W − k)/s + 1`.
///
/// Scanning each window in row-major order, a later element replaces the current maximum when it
/// is greater or NaN (PyTorch's rule): ties keep the first maximum and a NaN propagates. The
/// common `k = s = 2` case has its own SIMD loop.
/// - Parameters:
///   - output: resized to `[P, Ho, Wo]` if needed and overwritten.
///   - argmax: resized to `[P, Ho, Wo]` if needed and overwritten with the index of each chosen
///     element within its input plane (`y·W + x`).
public func maxPool2D(_ x: [Float], planes: Int, height: Int, width: Int, kernelSize k: Int, stride s: Int,
                      into output: inout [Float], argmax: inout [Int32]) {
    precondition(planes >= 0 && k > 0 && s > 0 && height >= k && width >= k,
                 "maxPool2D: planes \(planes), \(height)×\(width) input, kernel \(k), stride \(s)")
    precondition(x.count == planes * height * width,
                 "maxPool2D: \(x.count) elements, expected \(planes)·\(height)·\(width)")
    precondition(height * width <= Int(Int32.max), "maxPool2D: plane \(height)×\(width) too large for Int32 indices")
    let ho = (height - k) / s + 1, wo = (width - k) / s + 1
    let count = planes * ho * wo
    prepare(&output, count: count)
    if argmax.count != count { argmax = [Int32](repeating: 0, count: count) }
    if count == 0 { return }
    x.withUnsafeBufferPointer { px in
        output.withUnsafeMutableBufferPointer { po in
            argmax.withUnsafeMutableBufferPointer { pa in
                let dst = po.baseAddress!, arg = pa.baseAddress!
                for p in 0..<planes {
                    let plane = px.baseAddress! + p * height * width
                    let outBase = p * ho * wo
                    if k == 2 && s == 2 {
                        for oy in 0..<ho {
                            let top = plane + 2 * oy * width, bottom = top + width
                            let o = dst + outBase + oy * wo, a = arg + outBase + oy * wo
                            let rowIndex = Int32(truncatingIfNeeded: 2 * oy * width)
                            maxPool2x2Row(top: top, bottom: bottom, output: o, argmax: a, count: wo,
                                          rowIndex: rowIndex, width: Int32(truncatingIfNeeded: width))
                        }
                        continue
                    }
                    for oy in 0..<ho {
                        for ox in 0..<wo {
                            var best = (oy * s) * width + ox * s
                            var bestValue = plane[best]
                            for ky in 0..<k {
                                let row = (oy * s + ky) * width + ox * s
                                for kx in 0..<k {
                                    let v = plane[row + kx]
                                    if v > bestValue || v.isNaN { bestValue = v; best = row + kx }
                                }
                            }
                            dst[outBase + oy * wo + ox] = bestValue
                            arg[outBase + oy * wo + ox] = Int32(truncatingIfNeeded: best)
                        }
                    }
                }
            }
        }
    }
}

/// One output row of 2×2/stride-2 max pooling: windows `ox` read `top[2ox ..< 2ox+2]` and
/// `bottom[2ox ..< 2ox+2]`.
///
/// Measured at batch 32 (default backbone): long rows (≥ 16 windows) are fastest as a plain loop,
/// which LLVM vectorizes with selects; shorter rows would run that loop's scalar remainder, whose
/// compare-and-branch code mispredicts about twice per window on real data (≈ 13 ns per window),
/// so they take four windows at a time in SIMD lanes, recomputing the row's last four windows for
/// a partial group (28×23 planes: 4.6 → 1.5 ms; 14×11: 2.2 → 0.9 ms).
@inline(__always)
private func maxPool2x2Row(top: UnsafePointer<Float>, bottom: UnsafePointer<Float>, output: UnsafeMutablePointer<Float>,
                           argmax: UnsafeMutablePointer<Int32>, count: Int, rowIndex: Int32, width: Int32) {
    guard count >= 4 && count < 16 else {
        for ox in 0..<count {
            let v0 = top[2 * ox], v1 = top[2 * ox + 1], v2 = bottom[2 * ox], v3 = bottom[2 * ox + 1]
            let c0 = Int32(truncatingIfNeeded: 2 * ox) &+ rowIndex
            var best = v0, index = c0
            if v1 > best || v1.isNaN { best = v1; index = c0 &+ 1 }
            if v2 > best || v2.isNaN { best = v2; index = c0 &+ width }
            if v3 > best || v3.isNaN { best = v3; index = c0 &+ width &+ 1 }
            output[ox] = best
            argmax[ox] = index
        }
        return
    }
    var ox = 0
    while ox + 4 <= count {
        maxPool2x2Windows(top: top, bottom: bottom, output: output, argmax: argmax, first: ox, rowIndex: rowIndex, width: width)
        ox += 4
    }
    if ox < count {
        maxPool2x2Windows(top: top, bottom: bottom, output: output, argmax: argmax, first: count - 4,
                          rowIndex: rowIndex, width: width)
    }
}

/// Windows `first ..< first+4` of a 2×2/stride-2 pooling row; a later element wins when greater or NaN.
@inline(__always)
private func maxPool2x2Windows(top: UnsafePointer<Float>, bottom: UnsafePointer<Float>,
                               output: UnsafeMutablePointer<Float>, argmax: UnsafeMutablePointer<Int32>,
                               first: Int, rowIndex: Int32, width: Int32) {
    let (best, index) = maxOf2x2Windows(top: UnsafeRawPointer(top + 2 * first).loadUnaligned(as: SIMD8<Float>.self),
                                        bottom: UnsafeRawPointer(bottom + 2 * first).loadUnaligned(as: SIMD8<Float>.self),
                                        firstIndex: Int32(truncatingIfNeeded: 2 * first) &+ rowIndex, width: width)
    UnsafeMutableRawPointer(output + first).storeBytes(of: best, as: SIMD4<Float>.self)
    UnsafeMutableRawPointer(argmax + first).storeBytes(of: index, as: SIMD4<Int32>.self)
}

/// Four 2×2 windows in SIMD lanes: window `w` covers `top[2w], top[2w+1], bottom[2w],
/// bottom[2w+1]`; returns each window's maximum and its plane index (`firstIndex + 2w`, `+1`,
/// `+width`, `+width+1`). A later element wins when greater or NaN (NaN propagates), as in the
/// scalar loops. Shared by `maxPool2D` and the fused BatchNorm → PReLU → MaxPool kernel.
@inline(__always)
func maxOf2x2Windows(top t: SIMD8<Float>, bottom b: SIMD8<Float>, firstIndex: Int32,
                     width: Int32) -> (SIMD4<Float>, SIMD4<Int32>) {
    let c0 = SIMD4<Int32>(0, 2, 4, 6) &+ firstIndex
    var best = t.evenHalf, index = c0
    var v = t.oddHalf
    var take = (v .> best) .| (v .!= v)
    best.replace(with: v, where: take)
    index.replace(with: c0 &+ 1, where: take)
    v = b.evenHalf
    take = (v .> best) .| (v .!= v)
    best.replace(with: v, where: take)
    index.replace(with: c0 &+ width, where: take)
    v = b.oddHalf
    take = (v .> best) .| (v .!= v)
    best.replace(with: v, where: take)
    index.replace(with: c0 &+ width &+ 1, where: take)
    return (best, index)
}

/// The backward pass of `maxPool2D`: scatters each output gradient to its argmax (summing where
/// windows overlap).
/// - Parameters:
///   - gradient: `[P, Ho, Wo]`; argmax: from the forward pass, same count.
///   - planes, height, width: the input `[P, H, W]`.
///   - inputGradient: resized to `[P, H, W]` if needed and overwritten.
public func maxPool2DBackward(gradient: [Float], argmax: [Int32], planes: Int, height: Int, width: Int,
                              into inputGradient: inout [Float]) {
    precondition(gradient.count == argmax.count && planes > 0 && gradient.count % planes == 0,
                 "maxPool2DBackward: gradient \(gradient.count), argmax \(argmax.count), planes \(planes)")
    let perPlane = gradient.count / planes, planeSize = height * width
    prepare(&inputGradient, count: planes * planeSize)
    gradient.withUnsafeBufferPointer { pg in
        argmax.withUnsafeBufferPointer { pa in
            inputGradient.withUnsafeMutableBufferPointer { pr in
                pr.update(repeating: 0)
                for p in 0..<planes {
                    let plane = pr.baseAddress! + p * planeSize
                    let g = pg.baseAddress! + p * perPlane, a = pa.baseAddress! + p * perPlane
                    for j in 0..<perPlane {
                        let index = Int(a[j])
                        precondition(index >= 0 && index < planeSize, "maxPool2DBackward: argmax \(index) outside plane of \(planeSize)")
                        plane[index] += g[j]
                    }
                }
            }
        }
    }
}

// MARK: - Row broadcasts (Linear)

/// Adds a row vector to every row of a `[rows, columns]` matrix in place: `y[r, j] += v[j]`.
public func addRowVector(_ y: inout [Float], rows: Int, columns: Int, _ v: [Float]) {
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
public func columnSums(_ x: [Float], rows: Int, columns: Int) -> [Double] {
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
