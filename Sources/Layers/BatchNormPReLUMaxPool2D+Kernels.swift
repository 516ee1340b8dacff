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
import TensorCore

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
func affinePReLUMaxPool(_ x: [Float], batchSize: Int, channels: Int, height: Int, width: Int,
                        scale: [Float], shift: [Float], slopes: [Float], kernelSize k: Int, stride s: Int,
                        into output: inout [Float], argmax: inout [Int32]) {
    let (ho, wo) = checkPooling("affinePReLUMaxPool", x.count, batchSize: batchSize, channels: channels, height: height,
                                width: width, kernelSize: k, stride: s, coefficients: [scale, shift, slopes])
    let count = batchSize * channels * ho * wo
    prepare(&output, count: count)
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
        let (best, index) = maxOf2x2Windows(top: t, bottom: u, firstIndex: Int32(truncatingIfNeeded: 2 * first) &+ rowIndex,
                                            width: width)
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

/// For 4 consecutive 2×2/stride-2 windows starting at window `first` of a row pair (`top`, and
/// `top + width` below it), the input value at each window's argmax: the four candidates are read
/// densely and the one whose plane index equals `argmax` is kept (the others contribute exact
/// zeros), so no gather is needed.
@inline(__always)
private func argmaxValues2x2(top: UnsafePointer<Float>, width: Int, first: Int, rowIndex: Int32,
                             argmax: SIMD4<Int32>) -> SIMD4<Float> {
    let t = UnsafeRawPointer(top + 2 * first).loadUnaligned(as: SIMD8<Float>.self)
    let u = UnsafeRawPointer(top + width + 2 * first).loadUnaligned(as: SIMD8<Float>.self)
    let c0 = SIMD4<Int32>(0, 2, 4, 6) &+ (Int32(truncatingIfNeeded: 2 * first) &+ rowIndex)
    let w = Int32(truncatingIfNeeded: width)
    var x = SIMD4<Float>()
    x.replace(with: t.evenHalf, where: argmax .== c0)
    x.replace(with: t.oddHalf, where: argmax .== c0 &+ 1)
    x.replace(with: u.evenHalf, where: argmax .== c0 &+ w)
    x.replace(with: u.oddHalf, where: argmax .== c0 &+ w &+ 1)
    return x
}

/// Each lane of `v` twice: `[v0, v0, v1, v1, v2, v2, v3, v3]`.
@inline(__always)
private func doubled(_ v: SIMD4<Float>) -> SIMD8<Float> { SIMD8(v[0], v[0], v[1], v[1], v[2], v[2], v[3], v[3]) }

@inline(__always)
private func doubled(_ v: SIMD4<Int32>) -> SIMD8<Int32> { SIMD8(v[0], v[0], v[1], v[1], v[2], v[2], v[3], v[3]) }

/// `SIMD4<Double>(v)` lane by lane (inlines to packed conversions).
@inline(__always)
private func widened(_ v: SIMD4<Float>) -> SIMD4<Double> { SIMD4(Double(v[0]), Double(v[1]), Double(v[2]), Double(v[3])) }

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
///   - input: `x`, `[N, C, H, W]`; kernelSize, stride, scale, shift, slopes: as in the forward
///     pass; mean: `μ`, `[C]`.
/// - Returns: `sum`, `centeredDot`, `slope`, each `[C]`.
func affinePReLUMaxPoolGradientSums(gradient: [Float], argmax: [Int32], input: [Float], batchSize: Int,
                                    channels: Int, height: Int, width: Int, kernelSize k: Int, stride s: Int,
                                    scale: [Float], shift: [Float], slopes: [Float], mean: [Float])
    -> (sum: [Double], centeredDot: [Double], slope: [Double]) {
    let (ho, wo) = checkPooling("affinePReLUMaxPoolGradientSums", input.count, batchSize: batchSize, channels: channels,
                                height: height, width: width, kernelSize: k, stride: s, coefficients: [scale, shift, slopes, mean])
    precondition(gradient.count == argmax.count && gradient.count == batchSize * channels * ho * wo,
                 "affinePReLUMaxPoolGradientSums: gradient \(gradient.count), argmax \(argmax.count), expected N·C·Ho·Wo = \(batchSize)·\(channels)·\(ho)·\(wo)")
    let pooledSize = ho * wo, planeSize = height * width
    let dense = k == 2 && s == 2 && wo >= 4
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
                            // Eight windows at a time (x at the argmax gathered), or, for 2×2/2 pooling,
                            // four (x read densely); SIMD math with Double lanes; the rest one by one.
                            var sumLanes = SIMD8<Double>(), dotLanes = SIMD8<Double>(), slopeLanes = SIMD8<Double>()
                            @inline(__always) func accumulate(_ xv: SIMD8<Float>, _ gv: SIMD8<Float>) {
                                let z = a * xv + b
                                let dz = gv.replacing(with: alpha * gv, where: .!(z .> 0))
                                let dzd = widened(dz)
                                sumLanes += dzd
                                dotLanes += dzd * widened(xv - mv)
                                slopeLanes += widened((gv * z).replacing(with: 0, where: z .> 0))
                            }
                            var j = 0
                            if dense {
                                var sum4 = SIMD4<Double>(), dot4 = SIMD4<Double>(), slope4 = SIMD4<Double>()
                                let m4 = SIMD4<Float>(repeating: m)
                                for oy in 0..<ho {
                                    let top = plane + 2 * oy * width, rowIndex = Int32(truncatingIfNeeded: 2 * oy * width)
                                    var ox = 0
                                    while ox + 4 <= wo {
                                        let w0 = oy * wo + ox
                                        let xv = argmaxValues2x2(top: top, width: width, first: ox, rowIndex: rowIndex,
                                                                 argmax: UnsafeRawPointer(indices + w0).loadUnaligned(as: SIMD4<Int32>.self))
                                        let gv = UnsafeRawPointer(gs + w0).loadUnaligned(as: SIMD4<Float>.self)
                                        let z = a * xv + b
                                        let dz = widened(gv.replacing(with: alpha * gv, where: .!(z .> 0)))
                                        sum4 += dz
                                        dot4 += dz * widened(xv - m4)
                                        slope4 += widened((gv * z).replacing(with: 0, where: z .> 0))
                                        ox += 4
                                    }
                                    for w0 in (oy * wo + ox)..<((oy + 1) * wo) {
                                        let xv = plane[checkedIndex(indices[w0], planeSize)], gv = gs[w0]
                                        let z = a * xv + b
                                        let dz = z > 0 ? gv : alpha * gv
                                        sum += Double(dz)
                                        dot += Double(dz) * Double(xv - m)
                                        if !(z > 0) { slope += Double(gv) * Double(z) }
                                    }
                                }
                                sum += sum4.sum()
                                dot += dot4.sum()
                                slope += slope4.sum()
                                j = pooledSize
                            }
                            while j + 8 <= pooledSize {
                                var xv = SIMD8<Float>()
                                for l in 0..<8 { xv[l] = plane[checkedIndex(indices[j + l], planeSize)] }
                                accumulate(xv, UnsafeRawPointer(gs + j).loadUnaligned(as: SIMD8<Float>.self))
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
///   - input: `x`, `[N, C, H, W]`; kernelSize, stride, scale, shift, slopes: as in the forward pass.
///   - gradientScale, inputScale, offset: `p`, `q`, `r`, `[C]`.
///   - inputGradient: resized to `[N, C, H, W]` if needed and overwritten.
func affinePReLUMaxPoolInputGradient(gradient: [Float], argmax: [Int32], input: [Float], batchSize: Int,
                                     channels: Int, height: Int, width: Int, kernelSize k: Int, stride s: Int,
                                     scale: [Float], shift: [Float], slopes: [Float], gradientScale: [Float],
                                     inputScale: [Float], offset: [Float], into inputGradient: inout [Float]) {
    let (ho, wo) = checkPooling("affinePReLUMaxPoolInputGradient", input.count, batchSize: batchSize, channels: channels,
                                height: height, width: width, kernelSize: k, stride: s,
                                coefficients: [scale, shift, slopes, gradientScale, inputScale, offset])
    precondition(gradient.count == argmax.count && gradient.count == batchSize * channels * ho * wo,
                 "affinePReLUMaxPoolInputGradient: gradient \(gradient.count), argmax \(argmax.count), expected N·C·Ho·Wo = \(batchSize)·\(channels)·\(ho)·\(wo)")
    let pooledSize = ho * wo, planeSize = height * width
    let dense = k == 2 && s == 2 && wo >= 4
    let count = input.count
    prepare(&inputGradient, count: count)
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
                            let gs = g.base + (n * channels + c) * pooledSize, indices = arg.base + (n * channels + c) * pooledSize
                            if dense {
                                // Row pairs of 4 windows at once: ∂x = (p·∂z + q·x) + r with ∂z nonzero at
                                // the argmax lanes only; every pixel is written once (a recomputed last
                                // group writes the same values again). Pixels outside every window: q·x + r.
                                for oy in 0..<ho {
                                    let top = plane + 2 * oy * width, dTop = d + 2 * oy * width
                                    let rowIndex = Int32(truncatingIfNeeded: 2 * oy * width)
                                    @inline(__always) func windows4(_ first: Int) {
                                        let w0 = oy * wo + first
                                        let gv = doubled(UnsafeRawPointer(gs + w0).loadUnaligned(as: SIMD4<Float>.self))
                                        let chosen = doubled(UnsafeRawPointer(indices + w0).loadUnaligned(as: SIMD4<Int32>.self))
                                        let lanes = SIMD8<Int32>(0, 1, 2, 3, 4, 5, 6, 7) &+ (Int32(truncatingIfNeeded: 2 * first) &+ rowIndex)
                                        @inline(__always) func row(_ input: UnsafePointer<Float>, _ out: UnsafeMutablePointer<Float>,
                                                                   _ indices: SIMD8<Int32>) {
                                            let xv = UnsafeRawPointer(input + 2 * first).loadUnaligned(as: SIMD8<Float>.self)
                                            let z = a * xv + b
                                            var dz = gv.replacing(with: alpha * gv, where: .!(z .> 0))
                                            dz.replace(with: 0, where: chosen .!= indices)
                                            UnsafeMutableRawPointer(out + 2 * first).storeBytes(of: (p * dz + q * xv) + r, as: SIMD8<Float>.self)
                                        }
                                        row(top, dTop, lanes)
                                        row(top + width, dTop + width, lanes &+ Int32(truncatingIfNeeded: width))
                                    }
                                    var ox = 0
                                    while ox + 4 <= wo { windows4(ox); ox += 4 }
                                    if ox < wo { windows4(wo - 4) }
                                    for column in (2 * wo)..<width {   // the column right of the last window
                                        dTop[column] = q * top[column] + r
                                        dTop[width + column] = q * top[width + column] + r
                                    }
                                }
                                for i in (2 * ho * width)..<planeSize { d[i] = q * plane[i] + r }   // the row below
                                continue
                            }
                            for i in 0..<planeSize { d[i] = q * plane[i] + r }
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
