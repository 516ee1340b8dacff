// Fused kernels for the backbone's `BatchNorm → PReLU → MaxPool` sequence on an `[N, C, H, W]`
// batch: one pass forward (the per-channel affine map, the activation and the pooling, writing
// only the pooled output and its argmax) and two backward passes (the per-channel sums over the
// pooled positions, then the input gradient). They compute what `channelAffine`, `preluForward`,
// `maxPool2D` and their backward kernels compute, element for element in the forward pass (the
// same Float operations, so the same values and argmax), and to round-off in the backward pass
// (the same sums, added in another order).
//
// Work is split over channels (each worker owns a block of channels for every image), so the
// results do not depend on the thread count.
//
// Notation, per channel c: z = a_c·x + b_c (BatchNorm's normalization and affine map folded into
// a scale and shift), u = PReLU(z) = z if z > 0 else α_c·z, y = max over each pooling window of u.

/// Checks the fused kernels' sizes; returns the pooled extent `(Ho, Wo)`.
private func checkPooling(_ label: StaticString, _ count: Int, batchSize: Int, channels: Int, height: Int, width: Int,
                          kernelSize k: Int, stride s: Int, coefficients: [[Float]]) -> (Int, Int) {
    precondition(batchSize >= 0 && channels > 0 && k > 0 && s > 0 && height >= k && width >= k,
                 "\(label): N \(batchSize), C \(channels), \(height)×\(width) input, kernel \(k), stride \(s)")
    precondition(count == batchSize * channels * height * width,
                 "\(label): \(count) elements, expected N·C·H·W = \(batchSize)·\(channels)·\(height)·\(width)")
    precondition(height * width <= Int(Int32.max), "\(label): plane \(height)×\(width) too large for Int32 indices")
    for coefficient in coefficients {
        precondition(coefficient.count == channels, "\(label): a per-channel coefficient has \(coefficient.count) values for \(channels) channels")
    }
    return ((height - k) / s + 1, (width - k) / s + 1)
}

/// The fused forward pass: `y[n, c, i, j] = max_{window (i, j)} PReLU(a_c·x + b_c)` with the
/// argmax of every window, exactly as `channelAffine` → `preluForward` → `maxPool2D` (same tie
/// and NaN rules: a later element wins when greater or NaN).
/// - Parameters:
///   - x: `[N, C, H, W]`.
///   - scale, shift: `a`, `b`, `[C]`; slopes: `α`, `[C]`.
///   - kernelSize, stride: the pooling window `k` and step `s`; `Ho = (H − k)/s + 1`, likewise `Wo`.
///   - output: resized to `[N, C, Ho, Wo]` if needed and overwritten.
///   - argmax: resized to `[N, C, Ho, Wo]` if needed and overwritten with each window's chosen
///     index within its input plane (`y·W + x`).
public func affinePReLUMaxPool(_ x: [Float], batchSize: Int, channels: Int, height: Int, width: Int,
                               scale: [Float], shift: [Float], slopes: [Float], kernelSize k: Int, stride s: Int,
                               into output: inout [Float], argmax: inout [Int32]) {
    let (ho, wo) = checkPooling("affinePReLUMaxPool", x.count, batchSize: batchSize, channels: channels, height: height,
                                width: width, kernelSize: k, stride: s, coefficients: [scale, shift, slopes])
    let count = batchSize * channels * ho * wo
    if output.count != count { output = [Float](unsafeUninitializedCapacity: count) { _, n in n = count } }
    if argmax.count != count { argmax = [Int32](repeating: 0, count: count) }
    if count == 0 { return }
    let planeSize = height * width, pooledSize = ho * wo
    x.withUnsafeBufferPointer { px in
        output.withUnsafeMutableBufferPointer { po in
            argmax.withUnsafeMutableBufferPointer { pa in
                let src = SharedConstPointer(base: px.baseAddress!)
                let dst = SharedPointer(base: po.baseAddress!), arg = SharedPointer(base: pa.baseAddress!)
                forEachTask(channels, workers: elementwiseWorkers(x.count)) { c, _ in
                    let a = scale[c], b = shift[c], alpha = slopes[c]
                    for n in 0..<batchSize {
                        let plane = src.base + (n * channels + c) * planeSize
                        let out = dst.base + (n * channels + c) * pooledSize, index = arg.base + (n * channels + c) * pooledSize
                        if k == 2 && s == 2 {
                            for oy in 0..<ho {
                                let top = plane + 2 * oy * width
                                pool2x2Row(top: top, bottom: top + width, a: a, b: b, alpha: alpha,
                                           output: out + oy * wo, argmax: index + oy * wo, count: wo,
                                           rowIndex: Int32(truncatingIfNeeded: 2 * oy * width), width: Int32(truncatingIfNeeded: width))
                            }
                            continue
                        }
                        for oy in 0..<ho {
                            for ox in 0..<wo {
                                var best = (oy * s) * width + ox * s
                                var bestValue = activated(plane[best], a, b, alpha)
                                for ky in 0..<k {
                                    let row = (oy * s + ky) * width + ox * s
                                    for kx in 0..<k {
                                        let v = activated(plane[row + kx], a, b, alpha)
                                        if v > bestValue || v.isNaN { bestValue = v; best = row + kx }
                                    }
                                }
                                out[oy * wo + ox] = bestValue
                                index[oy * wo + ox] = Int32(truncatingIfNeeded: best)
                            }
                        }
                    }
                }
            }
        }
    }
}

/// `PReLU(a·x + b)` with slope `α`, as `channelAffine` then `preluForward` compute it.
@inline(__always)
private func activated(_ x: Float, _ a: Float, _ b: Float, _ alpha: Float) -> Float {
    let z = a * x + b
    return z > 0 ? z : alpha * z
}

@inline(__always)
private func activated(_ x: SIMD8<Float>, _ a: Float, _ b: Float, _ alpha: Float) -> SIMD8<Float> {
    let z = a * x + b
    return z.replacing(with: alpha * z, where: .!(z .> 0))
}

/// One output row of the fused 2×2/stride-2 pooling: windows `ox` read `top[2ox ..< 2ox+2]` and
/// `bottom[2ox ..< 2ox+2]`. Eight (or, in rows of 4–7 windows, four) windows at a time in SIMD
/// lanes (branch-free selects; the row's last group is recomputed when partial), scalar below
/// four windows.
@inline(__always)
private func pool2x2Row(top: UnsafePointer<Float>, bottom: UnsafePointer<Float>, a: Float, b: Float, alpha: Float,
                        output: UnsafeMutablePointer<Float>, argmax: UnsafeMutablePointer<Int32>, count: Int,
                        rowIndex: Int32, width: Int32) {
    guard count >= 4 else {
        for ox in 0..<count {
            let v0 = activated(top[2 * ox], a, b, alpha), v1 = activated(top[2 * ox + 1], a, b, alpha)
            let v2 = activated(bottom[2 * ox], a, b, alpha), v3 = activated(bottom[2 * ox + 1], a, b, alpha)
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
    @inline(__always) func windows(_ first: Int) {
        let t = activated(UnsafeRawPointer(top + 2 * first).loadUnaligned(as: SIMD8<Float>.self), a, b, alpha)
        let u = activated(UnsafeRawPointer(bottom + 2 * first).loadUnaligned(as: SIMD8<Float>.self), a, b, alpha)
        let c0 = SIMD4<Int32>(0, 2, 4, 6) &+ (Int32(truncatingIfNeeded: 2 * first) &+ rowIndex)
        var best = t.evenHalf, index = c0
        var v = t.oddHalf
        var take = (v .> best) .| (v .!= v)
        best.replace(with: v, where: take)
        index.replace(with: c0 &+ 1, where: take)
        v = u.evenHalf
        take = (v .> best) .| (v .!= v)
        best.replace(with: v, where: take)
        index.replace(with: c0 &+ width, where: take)
        v = u.oddHalf
        take = (v .> best) .| (v .!= v)
        best.replace(with: v, where: take)
        index.replace(with: c0 &+ width &+ 1, where: take)
        UnsafeMutableRawPointer(output + first).storeBytes(of: best, as: SIMD4<Float>.self)
        UnsafeMutableRawPointer(argmax + first).storeBytes(of: index, as: SIMD4<Int32>.self)
    }
    @inline(__always) func windows8(_ first: Int) {
        let t = activated16(UnsafeRawPointer(top + 2 * first).loadUnaligned(as: SIMD16<Float>.self), a, b, alpha)
        let u = activated16(UnsafeRawPointer(bottom + 2 * first).loadUnaligned(as: SIMD16<Float>.self), a, b, alpha)
        let c0 = SIMD8<Int32>(0, 2, 4, 6, 8, 10, 12, 14) &+ (Int32(truncatingIfNeeded: 2 * first) &+ rowIndex)
        var best = t.evenHalf, index = c0
        var v = t.oddHalf
        var take = (v .> best) .| (v .!= v)
        best.replace(with: v, where: take)
        index.replace(with: c0 &+ 1, where: take)
        v = u.evenHalf
        take = (v .> best) .| (v .!= v)
        best.replace(with: v, where: take)
        index.replace(with: c0 &+ width, where: take)
        v = u.oddHalf
        take = (v .> best) .| (v .!= v)
        best.replace(with: v, where: take)
        index.replace(with: c0 &+ width &+ 1, where: take)
        UnsafeMutableRawPointer(output + first).storeBytes(of: best, as: SIMD8<Float>.self)
        UnsafeMutableRawPointer(argmax + first).storeBytes(of: index, as: SIMD8<Int32>.self)
    }
    if count < 8 {
        windows(0)
        if count > 4 { windows(count - 4) }
        return
    }
    var ox = 0
    while ox + 8 <= count {
        windows8(ox)
        ox += 8
    }
    if ox < count { windows8(count - 8) }
}

@inline(__always)
private func activated16(_ x: SIMD16<Float>, _ a: Float, _ b: Float, _ alpha: Float) -> SIMD16<Float> {
    let z = a * x + b
    return z.replacing(with: alpha * z, where: .!(z .> 0))
}

/// An argmax entry as an index into its plane, trapping when it lies outside (a corrupted cache).
@inline(__always)
private func checkedIndex(_ index: Int32, _ planeSize: Int) -> Int {
    let i = Int(index)
    precondition(i >= 0 && i < planeSize, "fused max-pool backward: argmax \(i) outside plane of \(planeSize)")
    return i
}

/// The per-channel sums of the fused backward pass, over the pooled positions only (the
/// activation gradient is zero elsewhere).
///
/// Concretely, with `g` the pooled output gradient and `p = argmax` of each window, the
/// activation's input gradient is `∂z[p] += g·(z[p] > 0 ? 1 : α_c)` (summed where windows share an
/// argmax), and per channel:
/// ```
/// sum         = Σ ∂z                      (BatchNorm's Σ∂y)
/// centeredDot = Σ ∂z · (x − μ_c)          (BatchNorm's Σ∂y·(x − μ))
/// slope       = Σ_{z ≤ 0} g · z           (PReLU's ∂α_c, He et al. 2015, eq. 4)
/// ```
/// accumulated in `Double` (as `channelGradientSums` and `preluBackward`).
/// - Parameters:
///   - gradient: `g`, `[N, C, Ho, Wo]`; argmax: from `affinePReLUMaxPool`, same count.
///   - input: `x`, `[N, C, H, W]`; scale, shift, slopes: as in the forward pass; mean: `μ`, `[C]`.
/// - Returns: `sum`, `centeredDot`, `slope`, each `[C]`.
public func affinePReLUMaxPoolGradientSums(gradient: [Float], argmax: [Int32], input: [Float], batchSize: Int,
                                           channels: Int, height: Int, width: Int, scale: [Float], shift: [Float],
                                           slopes: [Float], mean: [Float])
    -> (sum: [Double], centeredDot: [Double], slope: [Double]) {
    _ = checkPooling("affinePReLUMaxPoolGradientSums", input.count, batchSize: batchSize, channels: channels,
                     height: height, width: width, kernelSize: 1, stride: 1, coefficients: [scale, shift, slopes, mean])
    precondition(gradient.count == argmax.count && batchSize > 0 && gradient.count % (batchSize * channels) == 0,
                 "affinePReLUMaxPoolGradientSums: gradient \(gradient.count), argmax \(argmax.count), N·C = \(batchSize)·\(channels)")
    let pooledSize = gradient.count / (batchSize * channels), planeSize = height * width
    var sums = [Double](repeating: 0, count: 3 * channels)   // [sum | centeredDot | slope]
    gradient.withUnsafeBufferPointer { pg in
        argmax.withUnsafeBufferPointer { pa in
            input.withUnsafeBufferPointer { px in
                sums.withUnsafeMutableBufferPointer { ps in
                    let g = SharedConstPointer(base: pg.baseAddress!), arg = SharedConstPointer(base: pa.baseAddress!)
                    let x = SharedConstPointer(base: px.baseAddress!), out = SharedPointer(base: ps.baseAddress!)
                    forEachTask(channels, workers: elementwiseWorkers(input.count)) { c, _ in
                        let a = scale[c], b = shift[c], alpha = slopes[c], m = mean[c]
                        var sum = 0.0, dot = 0.0, slope = 0.0
                        let mv = SIMD8<Float>(repeating: m)
                        for n in 0..<batchSize {
                            let plane = x.base + (n * channels + c) * planeSize
                            let gs = g.base + (n * channels + c) * pooledSize, indices = arg.base + (n * channels + c) * pooledSize
                            // Eight windows at a time: gather x at the argmax, then SIMD math with Double lanes.
                            var sumLanes = SIMD8<Double>(), dotLanes = SIMD8<Double>(), slopeLanes = SIMD8<Double>()
                            var j = 0
                            while j + 8 <= pooledSize {
                                var xv = SIMD8<Float>()
                                for l in 0..<8 { xv[l] = plane[checkedIndex(indices[j + l], planeSize)] }
                                let gv = UnsafeRawPointer(gs + j).loadUnaligned(as: SIMD8<Float>.self)
                                let z = a * xv + b
                                let negative = .!(z .> 0)
                                let dz = gv.replacing(with: alpha * gv, where: negative)
                                let dzd = SIMD8<Double>(dz)
                                sumLanes += dzd
                                dotLanes += dzd * SIMD8<Double>(xv - mv)
                                slopeLanes += SIMD8<Double>((gv * z).replacing(with: 0, where: z .> 0))
                                j += 8
                            }
                            sum += sumLanes.sum()
                            dot += dotLanes.sum()
                            slope += slopeLanes.sum()
                            while j < pooledSize {
                                let xv = plane[checkedIndex(indices[j], planeSize)], gv = gs[j]
                                let z = a * xv + b
                                let dz = z > 0 ? gv : alpha * gv
                                sum += Double(dz)
                                dot += Double(dz) * Double(xv - m)
                                if !(z > 0) { slope += Double(gv) * Double(z) }
                                j += 1
                            }
                        }
                        out.base[c] = sum
                        out.base[channels + c] = dot
                        out.base[2 * channels + c] = slope
                    }
                }
            }
        }
    }
    return (Array(sums[0..<channels]), Array(sums[channels..<(2 * channels)]), Array(sums[(2 * channels)...]))
}

/// The input gradient of the fused pass: `∂x = p_c·∂z + q_c·x + r_c` (BatchNorm's input
/// gradient, as `channelLinearCombination`), where `∂z` is zero except at each window's argmax,
/// which receives `g·(z > 0 ? 1 : α_c)`.
/// - Parameters:
///   - gradient: `g`, `[N, C, Ho, Wo]`; argmax: from `affinePReLUMaxPool`.
///   - input: `x`, `[N, C, H, W]`; scale, shift, slopes: as in the forward pass.
///   - gradientScale, inputScale, offset: `p`, `q`, `r`, `[C]`.
///   - inputGradient: resized to `[N, C, H, W]` if needed and overwritten.
public func affinePReLUMaxPoolInputGradient(gradient: [Float], argmax: [Int32], input: [Float], batchSize: Int,
                                            channels: Int, height: Int, width: Int, scale: [Float], shift: [Float],
                                            slopes: [Float], gradientScale: [Float], inputScale: [Float], offset: [Float],
                                            into inputGradient: inout [Float]) {
    _ = checkPooling("affinePReLUMaxPoolInputGradient", input.count, batchSize: batchSize, channels: channels,
                     height: height, width: width, kernelSize: 1, stride: 1,
                     coefficients: [scale, shift, slopes, gradientScale, inputScale, offset])
    precondition(gradient.count == argmax.count && batchSize > 0 && gradient.count % (batchSize * channels) == 0,
                 "affinePReLUMaxPoolInputGradient: gradient \(gradient.count), argmax \(argmax.count), N·C = \(batchSize)·\(channels)")
    let pooledSize = gradient.count / (batchSize * channels), planeSize = height * width
    let count = input.count
    if inputGradient.count != count { inputGradient = [Float](unsafeUninitializedCapacity: count) { _, n in n = count } }
    gradient.withUnsafeBufferPointer { pg in
        argmax.withUnsafeBufferPointer { pa in
            input.withUnsafeBufferPointer { px in
                inputGradient.withUnsafeMutableBufferPointer { pd in
                    let g = SharedConstPointer(base: pg.baseAddress!), arg = SharedConstPointer(base: pa.baseAddress!)
                    let x = SharedConstPointer(base: px.baseAddress!), dx = SharedPointer(base: pd.baseAddress!)
                    forEachTask(channels, workers: elementwiseWorkers(count)) { c, _ in
                        let a = scale[c], b = shift[c], alpha = slopes[c]
                        let p = gradientScale[c], q = inputScale[c], r = offset[c]
                        for n in 0..<batchSize {
                            let plane = x.base + (n * channels + c) * planeSize, d = dx.base + (n * channels + c) * planeSize
                            for i in 0..<planeSize { d[i] = q * plane[i] + r }
                            let gs = g.base + (n * channels + c) * pooledSize, indices = arg.base + (n * channels + c) * pooledSize
                            var j = 0
                            while j + 8 <= pooledSize {
                                var xv = SIMD8<Float>()
                                for l in 0..<8 { xv[l] = plane[checkedIndex(indices[j + l], planeSize)] }
                                let gv = UnsafeRawPointer(gs + j).loadUnaligned(as: SIMD8<Float>.self)
                                let z = a * xv + b
                                let contribution = p * gv.replacing(with: alpha * gv, where: .!(z .> 0))
                                for l in 0..<8 { d[Int(indices[j + l])] += contribution[l] }   // windows may share an argmax
                                j += 8
                            }
                            while j < pooledSize {
                                let index = checkedIndex(indices[j], planeSize)
                                let z = a * plane[index] + b
                                d[index] += p * (z > 0 ? gs[j] : alpha * gs[j])
                                j += 1
                            }
                        }
                    }
                }
            }
        }
    }
}
