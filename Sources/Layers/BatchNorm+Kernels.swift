// The batch-normalization kernels over an `[outer, C, inner]` view (legend in
// `Layer+Kernels.swift`): the per-channel statistics of the forward pass and the two sums of the
// backward pass, accumulated in `Double` lanes, and the per-channel affine maps of both passes.
import TensorCore

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

/// Per-channel mean and biased variance of a `[outer, C, inner]` tensor, in one pass over the
/// data with `Double` accumulation of shifted values (the "shifted data" algorithm: with `K_c`
/// the channel's first element, `S₁ = Σ (x − K)`, `S₂ = Σ (x − K)²`, so no cancellation when
/// `|μ| ≫ σ`).
///
/// Concretely, with `M = outer·inner`: `μ_c = K + S₁/M`, `σ²_c = (S₂ − S₁²/M) / M` (clamped at 0),
/// i.e. `μ_c = Σ x / M` and `σ²_c = Σ (x − μ_c)² / M` to `Double` round-off.
/// - Precondition: `outer·inner > 0`.
/// - Returns: `mean` and `variance`, each `[C]`.
func channelMeanAndVariance(_ x: [Float], outer: Int, channels: Int,
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
func channelGradientSums(gradient: [Float], input: [Float], mean: [Float], outer: Int, channels: Int,
                         inner: Int) -> (sum: [Double], centeredDot: [Double]) {
    checkView("channelGradientSums", gradient.count, outer: outer, channels: channels, inner: inner)
    precondition(input.count == gradient.count && mean.count == channels,
                 "channelGradientSums: gradient \(gradient.count), input \(input.count), mean \(mean.count), C \(channels)")
    var sums = [Double](repeating: 0, count: channels)
    var dots = [Double](repeating: 0, count: channels)
    if gradient.isEmpty { return (sums, dots) }
    gradient.withUnsafeBufferPointer { pg in
        input.withUnsafeBufferPointer { px in
            forEachChannelSlice(outer: outer, channels: channels, inner: inner) { c, offset in
                let (s, d) = doubleGradientSums(pg.baseAddress! + offset, px.baseAddress! + offset, inner,
                                                mean: mean[c])
                sums[c] += s
                dots[c] += d
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
func channelAffine(_ x: [Float], outer: Int, channels: Int, inner: Int,
                   scale: [Float], shift: [Float], into output: inout [Float]) {
    checkView("channelAffine", x.count, outer: outer, channels: channels, inner: inner)
    precondition(scale.count == channels && shift.count == channels,
                 "channelAffine: scale \(scale.count), shift \(shift.count), C \(channels)")
    prepare(&output, count: x.count)
    if x.isEmpty { return }
    x.withUnsafeBufferPointer { px in
        output.withUnsafeMutableBufferPointer { po in
            let src = px.baseAddress!, dst = po.baseAddress!
            forEachChannelSlice(outer: outer, channels: channels, inner: inner) { c, offset in
                let a = scale[c], b = shift[c]
                let s = src + offset, d = dst + offset
                for i in 0..<inner { d[i] = a * s[i] + b }
            }
        }
    }
}

/// A per-channel combination of two `[outer, C, inner]` tensors:
/// `z[o, c, i] = p_c·g[o, c, i] + q_c·x[o, c, i] + r_c` (BatchNorm's input gradient).
/// - Parameter output: resized to `[outer, C, inner]` if needed and overwritten.
func channelLinearCombination(_ g: [Float], _ x: [Float], outer: Int, channels: Int, inner: Int,
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
                forEachChannelSlice(outer: outer, channels: channels, inner: inner) { c, offset in
                    let a = p[c], b = q[c], shift = r[c]
                    let gs = pg.baseAddress! + offset, xs = px.baseAddress! + offset, d = po.baseAddress! + offset
                    for i in 0..<inner { d[i] = a * gs[i] + b * xs[i] + shift }
                }
            }
        }
    }
}
