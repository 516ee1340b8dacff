// The stride-1 depthwise kernels (`groups == Cin == Cout`, stride 1, `p ≤ k − 1`): direct
// correlation of each plane in place, with no zero-padded copy, no compaction of the output and
// no `∂Y` copy. One plane at a time (it stays in L1/L2):
//   - forward `y[oy, ox] = b + Σ_{i,j} w[i, j] · x[oy − p + i, ox − p + j]` (zero outside x): for
//     each output row only the window rows that exist are visited; the interior columns
//     `p ≤ ox < W − k + 1 + p` (all `k` taps inside) run as contiguous `SIMD16`/`SIMD8`/`SIMD4`
//     loads of the input row, the at most `2p` border columns as bounds-checked scalars;
//   - `∂x` is the same correlation of `∂y` with the flipped window and padding `k − 1 − p`;
//   - `∂w[i, j] = Σ ∂y[oy, ox] · x[oy − p + i, ox − p + j]` over the output rectangle where the
//     tap is inside the input: one clamped dot product per row and tap, no border cases.
// Products are `a * b + c` (no FMA call without a CPU target that has it).
//
// Determinism: each output element is one task's fixed-order sum; `∂W` is summed per channel
// over the same fixed partition of the batch as in `DepthwiseConvolution+Kernels.swift`
// (`weightGradientGroups` parts, summed in part order), so nothing depends on the worker count.
import TensorCore

/// Whether the stride-1 direct kernels handle the geometry: stride 1, square, `p ≤ k − 1` (so
/// the transposed correlation of `∂x` has a non-negative padding).
@inline(__always)
func usesStrideOneDepthwise(_ g: ConvolutionGeometry) -> Bool {
    g.strideHeight == 1 && g.strideWidth == 1 && g.kernelHeight == g.kernelWidth && g.paddingHeight == g.paddingWidth
        && g.paddingWidth <= g.kernelWidth - 1
}

/// `dst[oy, ox] = bias + Σ_{i,j<k} w[i·k + j] · src[oy − p + i, ox − p + j]` for `oy < dh`,
/// `ox < dw`, `src` `[sh, sw]` read as zero outside.
@inline(__always)
private func correlatePlane(_ src: UnsafePointer<Float>, height sh: Int, width sw: Int, weights w: UnsafePointer<Float>,
                            kernel k: Int, padding p: Int, bias: Float,
                            into dst: UnsafeMutablePointer<Float>, height dh: Int, width dw: Int) {
    // Interior columns: ox − p ≥ 0 and ox − p + k − 1 ≤ sw − 1.
    let lo = min(p, dw), hi = max(lo, min(dw, sw - k + 1 + p))
    for oy in 0..<dh {
        let iLo = max(0, p - oy), iHi = min(k, sh + p - oy)
        let out = dst + oy * dw
        // Border columns (scalar, bounds-checked).
        @inline(__always) func border(_ ox: Int) {
            var s = bias
            for i in iLo..<iHi {
                let row = src + (oy - p + i) * sw, wr = w + i * k
                for j in 0..<k {
                    let c = ox - p + j
                    if c >= 0 && c < sw { s = wr[j] * row[c] + s }
                }
            }
            out[ox] = s
        }
        for ox in 0..<lo { border(ox) }
        var ox = lo
        while ox + 16 <= hi {
            var a = SIMD16<Float>(repeating: bias)
            for i in iLo..<iHi {
                let row = UnsafeRawPointer(src + (oy - p + i) * sw + ox - p), wr = w + i * k
                for j in 0..<k {
                    a = SIMD16<Float>(repeating: wr[j]) * row.loadUnaligned(fromByteOffset: 4 * j, as: SIMD16<Float>.self) + a
                }
            }
            UnsafeMutableRawPointer(out + ox).storeBytes(of: a, as: SIMD16<Float>.self)
            ox += 16
        }
        if ox + 8 <= hi {
            var a = SIMD8<Float>(repeating: bias)
            for i in iLo..<iHi {
                let row = UnsafeRawPointer(src + (oy - p + i) * sw + ox - p), wr = w + i * k
                for j in 0..<k {
                    a = SIMD8<Float>(repeating: wr[j]) * row.loadUnaligned(fromByteOffset: 4 * j, as: SIMD8<Float>.self) + a
                }
            }
            UnsafeMutableRawPointer(out + ox).storeBytes(of: a, as: SIMD8<Float>.self)
            ox += 8
        }
        if ox + 4 <= hi {
            var a = SIMD4<Float>(repeating: bias)
            for i in iLo..<iHi {
                let row = UnsafeRawPointer(src + (oy - p + i) * sw + ox - p), wr = w + i * k
                for j in 0..<k {
                    a = SIMD4<Float>(repeating: wr[j]) * row.loadUnaligned(fromByteOffset: 4 * j, as: SIMD4<Float>.self) + a
                }
            }
            UnsafeMutableRawPointer(out + ox).storeBytes(of: a, as: SIMD4<Float>.self)
            ox += 4
        }
        while ox < hi {
            var s = bias
            for i in iLo..<iHi {
                let row = src + (oy - p + i) * sw + ox - p, wr = w + i * k
                for j in 0..<k { s = wr[j] * row[j] + s }
            }
            out[ox] = s
            ox += 1
        }
        for ox in hi..<dw { border(ox) }
    }
}

/// `lanes[0..<8] += Σ_{q<n} a[q] · b[q]`, in fixed lane order.
@inline(__always)
private func accumulateDot(_ a: UnsafePointer<Float>, _ b: UnsafePointer<Float>, count n: Int,
                           into lanes: UnsafeMutablePointer<Float>) {
    let ra = UnsafeRawPointer(a), rb = UnsafeRawPointer(b)
    var s16 = SIMD16<Float>(), s8 = SIMD8<Float>(), s4 = SIMD4<Float>()
    var q = 0
    while q + 16 <= n {
        s16 = ra.loadUnaligned(fromByteOffset: 4 * q, as: SIMD16<Float>.self) * rb.loadUnaligned(fromByteOffset: 4 * q, as: SIMD16<Float>.self) + s16
        q += 16
    }
    if q + 8 <= n {
        s8 = ra.loadUnaligned(fromByteOffset: 4 * q, as: SIMD8<Float>.self) * rb.loadUnaligned(fromByteOffset: 4 * q, as: SIMD8<Float>.self) + s8
        q += 8
    }
    if q + 4 <= n {
        s4 = ra.loadUnaligned(fromByteOffset: 4 * q, as: SIMD4<Float>.self) * rb.loadUnaligned(fromByteOffset: 4 * q, as: SIMD4<Float>.self) + s4
        q += 4
    }
    var tail: Float = 0
    while q < n { tail = a[q] * b[q] + tail; q += 1 }
    let raw = UnsafeMutableRawPointer(lanes)
    var folded = s16.lowHalf + s16.highHalf + s8 + raw.loadUnaligned(as: SIMD8<Float>.self)
    folded.lowHalf += s4
    folded[0] += tail
    raw.storeBytes(of: folded, as: SIMD8<Float>.self)
}

/// The stride-1 forward pass (`usesStrideOneDepthwise(g)`); arguments as `depthwiseConvolutionForward`,
/// `output` already `[N, C, Ho, Wo]`.
func depthwiseStrideOneForward(_ input: [Float], batchSize: Int, geometry g: ConvolutionGeometry,
                               weight: [Float], bias: [Float]?, into output: inout [Float]) {
    let channels = g.channels, k = g.kernelWidth, taps = k * k, p = g.paddingWidth
    let h = g.height, w = g.width, ho = g.outputHeight, wo = g.outputWidth
    let tasks = batchSize * channels
    input.withUnsafeBufferPointer { pin in
        weight.withUnsafeBufferPointer { pw in
            output.withUnsafeMutableBufferPointer { pout in
                let x = SharedConstPointer(base: pin.baseAddress!), wt = SharedConstPointer(base: pw.baseAddress!)
                let y = SharedPointer(base: pout.baseAddress!)
                forEachTask(tasks, workers: min(BLAS.threadCount, tasks)) { plane, _ in
                    let c = plane % channels
                    correlatePlane(x.base + plane * h * w, height: h, width: w, weights: wt.base + c * taps, kernel: k,
                                   padding: p, bias: bias?[c] ?? 0, into: y.base + plane * ho * wo, height: ho, width: wo)
                }
            }
        }
    }
}

/// The stride-1 backward pass (`usesStrideOneDepthwise(g)`); arguments as
/// `depthwiseConvolutionBackward`, `inputGradient` already `[N, C, H, W]` when wanted.
func depthwiseStrideOneBackward(outputGradient: [Float], input: [Float], batchSize: Int, geometry g: ConvolutionGeometry,
                                weight: [Float], weightGradient: inout [Float], computesInputGradient: Bool,
                                into inputGradient: inout [Float], scratch: inout [Float]) {
    let channels = g.channels, k = g.kernelWidth, taps = k * k, p = g.paddingWidth
    let h = g.height, w = g.width, ho = g.outputHeight, wo = g.outputWidth
    let parts = min(weightGradientGroups, batchSize), tasks = parts * channels
    let workers = min(BLAS.threadCount, tasks)
    // Per worker: the flipped window (k²) and the [k², 8] ∂w lanes; then the [parts, C, k²] partials.
    let perWorker = 9 * taps, partialSize = channels * taps
    growScratch(&scratch, count: workers * perWorker + parts * partialSize)
    outputGradient.withUnsafeBufferPointer { pg in
        input.withUnsafeBufferPointer { pin in
            weight.withUnsafeBufferPointer { pw in
                inputGradient.withUnsafeMutableBufferPointer { pdx in
                    scratch.withUnsafeMutableBufferPointer { ps in
                        let dy = SharedConstPointer(base: pg.baseAddress!), x = SharedConstPointer(base: pin.baseAddress!)
                        let wt = SharedConstPointer(base: pw.baseAddress!), s = SharedPointer(base: ps.baseAddress!)
                        let dx = computesInputGradient ? SharedPointer(base: pdx.baseAddress!) : nil
                        forEachTask(tasks, workers: workers) { task, worker in
                            let part = task / channels, c = task % channels
                            let flipped = s.base + worker * perWorker, lanes = flipped + taps
                            let partial = s.base + workers * perWorker + part * partialSize + c * taps
                            let wc = wt.base + c * taps
                            for t in 0..<taps { flipped[t] = wc[taps - 1 - t] }
                            lanes.update(repeating: 0, count: 8 * taps)
                            for n in (batchSize * part / parts)..<(batchSize * (part + 1) / parts) {
                                let plane = n * channels + c
                                let gy = dy.base + plane * ho * wo, xs = x.base + plane * h * w
                                for i in 0..<k {
                                    let oyLo = max(0, p - i), oyHi = min(ho, h + p - i)
                                    for j in 0..<k {
                                        let oxLo = max(0, p - j), oxHi = min(wo, w + p - j)
                                        guard oxLo < oxHi else { continue }
                                        let tapLanes = lanes + 8 * (i * k + j)
                                        for oy in oyLo..<max(oyLo, oyHi) {
                                            accumulateDot(gy + oy * wo + oxLo, xs + (oy - p + i) * w + oxLo - p + j,
                                                          count: oxHi - oxLo, into: tapLanes)
                                        }
                                    }
                                }
                                if let dx {
                                    correlatePlane(gy, height: ho, width: wo, weights: flipped, kernel: k, padding: k - 1 - p,
                                                   bias: 0, into: dx.base + plane * h * w, height: h, width: w)
                                }
                            }
                            for t in 0..<taps {
                                let v = UnsafeRawPointer(lanes + 8 * t).loadUnaligned(as: SIMD8<Float>.self)
                                partial[t] = (v.lowHalf + v.highHalf).sum()
                            }
                        }
                    }
                }
            }
        }
    }
    scratch.withUnsafeBufferPointer { ps in
        weightGradient.withUnsafeMutableBufferPointer { pdw in
            let partials = ps.baseAddress! + workers * perWorker, dw = pdw.baseAddress!
            for part in 0..<parts {
                let partial = partials + part * partialSize
                for i in 0..<partialSize { dw[i] += partial[i] }
            }
        }
    }
}
