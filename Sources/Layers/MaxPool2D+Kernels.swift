// The max-pooling kernels: the forward pass with the argmax of every window, its scatter
// backward, and the 2×2 max-with-argmax SIMD step the fused `BatchNormPReLUMaxPool2D` kernel
// shares.

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
func maxPool2D(_ x: [Float], planes: Int, height: Int, width: Int, kernelSize k: Int, stride s: Int,
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
func maxPool2DBackward(gradient: [Float], argmax: [Int32], planes: Int, height: Int, width: Int,
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
