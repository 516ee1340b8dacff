// The depthwise convolution's direct kernels (`groups == Cin == Cout`): no im2col, no GEMM. One
// task is a run of consecutive image planes `[H, W]` of about 4096 outputs (forward), or a block
// of consecutive channels over a fixed part of the batch, image by image (backward: runs of
// consecutive planes, not one small plane every `C`); tasks are spread over `BLAS.threadCount`
// Swift workers.
//
// The plane trick. Each input plane is copied, zero-padded, into `s²` polyphase planes of one
// worker's scratch (`s` the stride): phase `(a, b)` holds the padded pixels `(r·s + a, c·s + b)`
// at `r·Wh + c`, `Wh = ⌈(W + 2p)/s⌉`. Then every window tap `(i, j)` of output `(y, x)` is the
// element `q + d(i, j)` of phase `(i mod s, j mod s)`, with `q = y·Wh + x` and the tap's flat
// shift `d(i, j) = ⌊i/s⌋·Wh + ⌊j/s⌋`: the whole output plane is `k²` shifted axpys over one flat
// vector, without edge cases, for any stride. Columns `x ≥ Wo` of that flat vector are computed
// and dropped (at most `⌈k/s⌉` per row). Three facts make it exact (`m = ⌊(k−1)/s⌋`):
//   - `Wo ≤ Wh − m`, so a valid output's taps never wrap into the next row;
//   - in the backward pass `∂Y` is laid out the same way with zeros at `x ≥ Wo` (and before and
//     after the plane), so the dropped columns contribute nothing to `∂W`, and a tap that wraps
//     (a column `< ⌊j/s⌋`) lands on such a zero column;
//   - `∂x` is the adjoint gather `∂P_ab[r] = Σ_{taps of phase (a,b)} w(i, j) · ∂Y[r − d(i, j)]`, then
//     the padded, polyphase `∂P` is copied back to `[H, W]`. (When the output is much smaller than
//     the input, as the 7×7 global depthwise conv's 1×1, the same sums are scattered instead:
//     `∂P[q + d(i, j)] += w(i, j) · ∂Y[q]`, `k²` axpys over the output.)
// Output rows of at least `minimumDirectWidth` are computed in place instead (each row in
// `SIMD16`/`SIMD8`/`SIMD4` chunks summed over all taps in registers, the last chunk moved back to
// end at the row's end), and so is the stride-1 `∂x` (the adjoint's taps are the forward's,
// negated, read from the zero-padded `∂Y`): no flat vector, no copy. The padding of the phase
// planes and the zero columns of `∂Y` are never written, so each worker's scratch is zeroed once
// per call, not per plane; rows are copied with inline SIMD loops (a `memmove` call per row of
// 7 or 14 floats cost more than the copy).
// Inner loops are explicit `SIMD16<Float>`/`SIMD8<Float>` loads (the shifts alias the output
// for the compiler); products are `a * b + c` (no FMA call without a CPU target that has it).
// Baseline x86-64 makes them SSE (4 lanes): the backward's `k²` dot products and `k²`-tap adjoint
// cost ≈ 18 multiply-adds per output, which keeps the small planes' backward several times the
// bandwidth bound (see the bench's depthwise table).
//
// Determinism: `∂W` is summed per channel over a fixed partition of the batch into at most
// `weightGradientGroups` parts (a `[parts, C, k²]` partial, then summed in part order), so it
// does not depend on the worker count. Nothing else is a sum across tasks.
//
// Legend: `N` batch, `C` channels, `k` window, `s` stride, `p` padding, `S = Ho·Wo`.
import TensorCore

/// The polyphase layout of one depthwise geometry (see the file comment).
private struct DepthwisePlan {
    let g: ConvolutionGeometry
    let stride: Int, kernel: Int
    /// Phase plane width `⌈(W + 2p)/s⌉` and rows `⌈(H + 2p)/s⌉`.
    let phaseWidth: Int, phaseRows: Int
    /// Computed output length `⌈Ho·Wh⌉₈` and computed phase length `⌈phaseRows·Wh⌉₈`.
    let outputLength: Int, phaseLength: Int
    /// Floats per phase plane (data, then zeros the shifted vector loads may read).
    let phaseStride: Int
    /// The largest tap shift `m·Wh + m`, `m = ⌊(k−1)/s⌋`.
    let maxShift: Int
    /// Per tap `t = i·k + j`: the offset of its element 0 in the phase block, `phase·phaseStride + d(i, j)`.
    let tapOffsets: [Int]
    /// Per phase: the taps that read it, as `(t, d(i, j))`.
    let phaseTaps: [[(tap: Int, shift: Int)]]
    /// Floats of the backward pass's zero-padded `∂Y` vector: `maxShift` zeros in front.
    var gradientLength: Int { maxShift + max(outputLength, phaseLength) }

    init(_ g: ConvolutionGeometry) {
        precondition(g.kernelHeight == g.kernelWidth && g.strideHeight == g.strideWidth && g.paddingHeight == g.paddingWidth,
                     "depthwise convolution: square window, stride and padding only, got \(g)")
        self.g = g
        stride = g.strideWidth; kernel = g.kernelWidth
        phaseWidth = (g.width + 2 * g.paddingWidth + stride - 1) / stride
        phaseRows = (g.height + 2 * g.paddingHeight + stride - 1) / stride
        let m = (kernel - 1) / stride
        maxShift = m * phaseWidth + m
        outputLength = (g.outputHeight * phaseWidth + 7) / 8 * 8
        phaseLength = (phaseRows * phaseWidth + 7) / 8 * 8
        phaseStride = (max(phaseLength, outputLength + maxShift) + 7) / 8 * 8
        var offsets: [Int] = [], taps = [[(tap: Int, shift: Int)]](repeating: [], count: stride * stride)
        for i in 0..<kernel {
            for j in 0..<kernel {
                let phase = (i % stride) * stride + j % stride, shift = (i / stride) * phaseWidth + j / stride
                offsets.append(phase * phaseStride + shift)
                taps[phase].append((i * kernel + j, shift))
            }
        }
        tapOffsets = offsets
        phaseTaps = taps
    }

    /// Floats of all phase planes of one image plane.
    var phaseBlock: Int { stride * stride * phaseStride }

    /// Writes the input pixels of `plane` (`[H, W]`) into the polyphase `phases` (`phaseBlock`
    /// floats). Only pixel positions are written: the padding stays as it was, so `phases` must be
    /// zeroed once before the first plane (a worker's planes all share the layout).
    @inline(__always)
    func scatter(_ plane: UnsafePointer<Float>, into phases: UnsafeMutablePointer<Float>) {
        let p = g.paddingWidth, w = g.width
        if stride == 1 {
            let first = phases + g.paddingHeight * phaseWidth + p
            for iy in 0..<g.height { copyRow(plane + iy * w, into: first + iy * phaseWidth, count: w) }
            return
        }
        for iy in 0..<g.height {
            let rp = iy + g.paddingHeight
            let rowBase = phases + (rp % stride) * stride * phaseStride + (rp / stride) * phaseWidth
            let source = plane + iy * w
            if stride == 1 {
                copyRow(source, into: rowBase + p, count: w)
            } else if stride == 2 {
                // Input column ix goes to phase (ix + p) mod 2, column (ix + p)/2.
                let even = rowBase + (p % 2) * phaseStride, odd = rowBase + (1 - p % 2) * phaseStride
                let evenShift = p / 2, oddShift = (p + 1) / 2   // for ix even and ix odd
                var ix = 0
                while ix + 16 <= w {
                    let v = UnsafeRawPointer(source + ix).loadUnaligned(as: SIMD16<Float>.self)
                    UnsafeMutableRawPointer(even + ix / 2 + evenShift).storeBytes(of: v.evenHalf, as: SIMD8<Float>.self)
                    UnsafeMutableRawPointer(odd + ix / 2 + oddShift).storeBytes(of: v.oddHalf, as: SIMD8<Float>.self)
                    ix += 16
                }
                while ix + 8 <= w {
                    let v = UnsafeRawPointer(source + ix).loadUnaligned(as: SIMD8<Float>.self)
                    UnsafeMutableRawPointer(even + ix / 2 + evenShift).storeBytes(of: v.evenHalf, as: SIMD4<Float>.self)
                    UnsafeMutableRawPointer(odd + ix / 2 + oddShift).storeBytes(of: v.oddHalf, as: SIMD4<Float>.self)
                    ix += 8
                }
                while ix < w {
                    if ix % 2 == 0 { even[ix / 2 + evenShift] = source[ix] } else { odd[ix / 2 + oddShift] = source[ix] }
                    ix += 1
                }
            } else {
                for ix in 0..<w {
                    let cp = ix + p
                    rowBase[(cp % stride) * phaseStride + cp / stride] = source[ix]
                }
            }
        }
    }

    /// `out[q] = Σ_t w[t] · phases[tapOffsets[t] + q]` for `q < outputLength`.
    @inline(__always)
    func correlate(_ phases: UnsafePointer<Float>, weights w: UnsafePointer<Float>, into out: UnsafeMutablePointer<Float>) {
        let taps = kernel * kernel
        tapOffsets.withUnsafeBufferPointer { offsets in
            let raw = UnsafeRawPointer(phases)
            var q = 0
            while q + 32 <= outputLength {
                var a0 = SIMD16<Float>(), a1 = SIMD16<Float>()
                for t in 0..<taps {
                    let wt = SIMD16<Float>(repeating: w[t]), byte = (offsets[t] + q) * 4
                    a0 = wt * raw.loadUnaligned(fromByteOffset: byte, as: SIMD16<Float>.self) + a0
                    a1 = wt * raw.loadUnaligned(fromByteOffset: byte + 64, as: SIMD16<Float>.self) + a1
                }
                UnsafeMutableRawPointer(out + q).storeBytes(of: a0, as: SIMD16<Float>.self)
                UnsafeMutableRawPointer(out + q + 16).storeBytes(of: a1, as: SIMD16<Float>.self)
                q += 32
            }
            while q < outputLength {
                var a = SIMD8<Float>()
                for t in 0..<taps {
                    a = SIMD8<Float>(repeating: w[t]) * raw.loadUnaligned(fromByteOffset: (offsets[t] + q) * 4, as: SIMD8<Float>.self) + a
                }
                UnsafeMutableRawPointer(out + q).storeBytes(of: a, as: SIMD8<Float>.self)
                q += 8
            }
        }
    }

    /// `Σ_t w[t] · phases[offsets[t] + q ..< + V.scalarCount]`, the taps summed in order from zero.
    @inline(__always)
    func tapSum<V: SIMD>(_ phases: UnsafeRawPointer, offsets: UnsafePointer<Int>, weights w: UnsafePointer<Float>,
                         at q: Int, as _: V.Type) -> V where V.Scalar == Float {
        var a = V()
        for t in 0..<(kernel * kernel) {
            a = V(repeating: w[t]) * phases.loadUnaligned(fromByteOffset: (offsets[t] + q) * 4, as: V.self) + a
        }
        return a
    }

    /// For `rows` rows of `width` results `out[r·width + x] = f(r·Wh + x) + shift`, `f(q) =
    /// tapSum(at: q + start)`: `SIMD16`, `SIMD8`, `SIMD4` chunks along the row, the last one moved
    /// back to end at the row's end (recomputing a few results, the same values) so that no store
    /// leaves the row; rows narrower than 4 are scalar. The forward pass (`start = 0`: the output
    /// plane) and the stride-1 adjoint (`offsets` negated, `start` the first interior pixel: `∂x`).
    @inline(__always)
    func correlateRows(_ phases: UnsafeRawPointer, offsets: UnsafePointer<Int>, weights w: UnsafePointer<Float>,
                       start: Int, rows: Int, width: Int, shift: Float, into out: UnsafeMutablePointer<Float>) {
        for r in 0..<rows {
            let q0 = start + r * phaseWidth, target = UnsafeMutableRawPointer(out + r * width)
            if width < 4 {
                for x in 0..<width {
                    var a: Float = 0
                    for t in 0..<(kernel * kernel) { a = w[t] * phases.load(fromByteOffset: (offsets[t] + q0 + x) * 4, as: Float.self) + a }
                    out[r * width + x] = a + shift
                }
                continue
            }
            var x = 0
            while x + 16 <= width {
                let v = tapSum(phases, offsets: offsets, weights: w, at: q0 + x, as: SIMD16<Float>.self) + SIMD16(repeating: shift)
                target.storeBytes(of: v, toByteOffset: x * 4, as: SIMD16<Float>.self)
                x += 16
            }
            if x + 8 <= width {
                let v = tapSum(phases, offsets: offsets, weights: w, at: q0 + x, as: SIMD8<Float>.self) + SIMD8(repeating: shift)
                target.storeBytes(of: v, toByteOffset: x * 4, as: SIMD8<Float>.self)
                x += 8
            }
            if x + 4 <= width {
                let v = tapSum(phases, offsets: offsets, weights: w, at: q0 + x, as: SIMD4<Float>.self) + SIMD4(repeating: shift)
                target.storeBytes(of: v, toByteOffset: x * 4, as: SIMD4<Float>.self)
                x += 4
            }
            if x < width {
                let v = tapSum(phases, offsets: offsets, weights: w, at: q0 + width - 4, as: SIMD4<Float>.self) + SIMD4(repeating: shift)
                target.storeBytes(of: v, toByteOffset: (width - 4) * 4, as: SIMD4<Float>.self)
            }
        }
    }

    /// `acc += Σ_{q < outputLength} a[q] · b[q]`, folded into 8 lanes (reduced to a scalar once per
    /// task, not per image).
    @inline(__always)
    func accumulateDot(_ a: UnsafePointer<Float>, _ b: UnsafePointer<Float>, into acc: UnsafeMutablePointer<Float>) {
        let ra = UnsafeRawPointer(a), rb = UnsafeRawPointer(b)
        var s0 = SIMD16<Float>(), s1 = SIMD16<Float>(), s8 = SIMD8<Float>()
        var q = 0
        while q + 32 <= outputLength {
            s0 = ra.loadUnaligned(fromByteOffset: q * 4, as: SIMD16<Float>.self) * rb.loadUnaligned(fromByteOffset: q * 4, as: SIMD16<Float>.self) + s0
            s1 = ra.loadUnaligned(fromByteOffset: q * 4 + 64, as: SIMD16<Float>.self) * rb.loadUnaligned(fromByteOffset: q * 4 + 64, as: SIMD16<Float>.self) + s1
            q += 32
        }
        while q < outputLength {
            s8 = ra.loadUnaligned(fromByteOffset: q * 4, as: SIMD8<Float>.self) * rb.loadUnaligned(fromByteOffset: q * 4, as: SIMD8<Float>.self) + s8
            q += 8
        }
        let sum = s0 + s1, raw = UnsafeMutableRawPointer(acc)
        let folded = (sum.lowHalf + sum.highHalf) + s8 + raw.loadUnaligned(as: SIMD8<Float>.self)
        raw.storeBytes(of: folded, as: SIMD8<Float>.self)
    }

    /// The adjoint of `correlate`: `∂P_ab[r] = Σ_{taps of phase ab} w[t] · dy[r − d_t]` for
    /// `r < phaseLength`, where `dy` points `maxShift` floats into a zero-padded gradient vector.
    @inline(__always)
    func correlateAdjoint(_ dy: UnsafePointer<Float>, weights w: UnsafePointer<Float>, into phases: UnsafeMutablePointer<Float>) {
        let raw = UnsafeRawPointer(dy)
        for (phase, taps) in phaseTaps.enumerated() {
            let out = phases + phase * phaseStride
            if taps.isEmpty { out.update(repeating: 0, count: phaseLength); continue }
            taps.withUnsafeBufferPointer { taps in
                var r = 0
                while r + 32 <= phaseLength {
                    var a0 = SIMD16<Float>(), a1 = SIMD16<Float>()
                    for (t, d) in taps {
                        let wt = SIMD16<Float>(repeating: w[t]), byte = (r - d) * 4
                        a0 = wt * raw.loadUnaligned(fromByteOffset: byte, as: SIMD16<Float>.self) + a0
                        a1 = wt * raw.loadUnaligned(fromByteOffset: byte + 64, as: SIMD16<Float>.self) + a1
                    }
                    UnsafeMutableRawPointer(out + r).storeBytes(of: a0, as: SIMD16<Float>.self)
                    UnsafeMutableRawPointer(out + r + 16).storeBytes(of: a1, as: SIMD16<Float>.self)
                    r += 32
                }
                while r < phaseLength {
                    var a = SIMD8<Float>()
                    for (t, d) in taps {
                        a = SIMD8<Float>(repeating: w[t]) * raw.loadUnaligned(fromByteOffset: (r - d) * 4, as: SIMD8<Float>.self) + a
                    }
                    UnsafeMutableRawPointer(out + r).storeBytes(of: a, as: SIMD8<Float>.self)
                    r += 8
                }
            }
        }
    }

    /// Whether `correlateAdjoint` should scatter (`k²` axpys over the `outputLength` outputs) rather
    /// than gather (every tap for each of the `s²·phaseLength` phase elements): when the output is
    /// much smaller than the padded input, as the 7×7 global depthwise conv's 1×1 output.
    var scattersAdjoint: Bool { 2 * outputLength < phaseLength }

    /// `correlateAdjoint` as scattered axpys: zero `phases`, then `phases[tapOffsets[t] + q] += w[t] · dy[q]`
    /// for `q < outputLength`.
    @inline(__always)
    func scatterAdjoint(_ dy: UnsafePointer<Float>, weights w: UnsafePointer<Float>, into phases: UnsafeMutablePointer<Float>) {
        phases.update(repeating: 0, count: phaseBlock)
        let raw = UnsafeMutableRawPointer(phases), source = UnsafeRawPointer(dy)
        tapOffsets.withUnsafeBufferPointer { offsets in
            for t in 0..<(kernel * kernel) {
                let wt = SIMD8<Float>(repeating: w[t])
                var q = 0
                while q < outputLength {
                    let byte = (offsets[t] + q) * 4
                    let sum = wt * source.loadUnaligned(fromByteOffset: q * 4, as: SIMD8<Float>.self)
                        + raw.loadUnaligned(fromByteOffset: byte, as: SIMD8<Float>.self)
                    raw.storeBytes(of: sum, toByteOffset: byte, as: SIMD8<Float>.self)
                    q += 8
                }
            }
        }
    }

    /// Copies the input pixels of the polyphase `phases` back to a `[H, W]` plane (the inverse of `scatter`).
    @inline(__always)
    func gather(_ phases: UnsafePointer<Float>, into plane: UnsafeMutablePointer<Float>) {
        let p = g.paddingWidth, w = g.width
        for iy in 0..<g.height {
            let rp = iy + g.paddingHeight
            let rowBase = phases + (rp % stride) * stride * phaseStride + (rp / stride) * phaseWidth
            let target = plane + iy * w
            if stride == 1 {
                copyRow(rowBase + p, into: target, count: w)
            } else if stride == 2 {
                let even = rowBase + (p % 2) * phaseStride + p / 2, odd = rowBase + (1 - p % 2) * phaseStride + (p + 1) / 2
                for j in 0..<(w / 2) {
                    target[2 * j] = even[j]
                    target[2 * j + 1] = odd[j]
                }
                if w % 2 == 1 { target[w - 1] = even[(w - 1) / 2] }
            } else {
                for ix in 0..<w {
                    let cp = ix + p
                    target[ix] = rowBase[(cp % stride) * phaseStride + cp / stride]
                }
            }
        }
    }
}

/// The narrowest rows `correlateRows` computes in place. Narrower rows are a few chunks each, some
/// of them `SIMD4` with one chain of `k²` dependent adds; the flat `correlate` has 8 independent
/// `SIMD4` accumulators (measured: 28-wide rows ≈ 1.15× slower in place, 56-wide ≈ 1.1× faster).
private let minimumDirectWidth = 32

/// `target[0 ..< n] = source[0 ..< n] + shift` in `SIMD16`/`SIMD4` chunks, the last one moved back to end at
/// `n` (rows of a few floats, where a `memmove` call costs more than the copy).
@inline(__always)
private func copyRow(_ source: UnsafePointer<Float>, into target: UnsafeMutablePointer<Float>, count n: Int, adding shift: Float = 0) {
    if n < 4 {
        for i in 0..<n { target[i] = source[i] + shift }
        return
    }
    let s = UnsafeRawPointer(source), t = UnsafeMutableRawPointer(target)
    let shift16 = SIMD16<Float>(repeating: shift), shift4 = SIMD4<Float>(repeating: shift)
    var i = 0
    while i + 16 <= n {
        t.storeBytes(of: s.loadUnaligned(fromByteOffset: i * 4, as: SIMD16<Float>.self) + shift16, toByteOffset: i * 4, as: SIMD16<Float>.self)
        i += 16
    }
    while i + 4 <= n {
        t.storeBytes(of: s.loadUnaligned(fromByteOffset: i * 4, as: SIMD4<Float>.self) + shift4, toByteOffset: i * 4, as: SIMD4<Float>.self)
        i += 4
    }
    if i < n {
        t.storeBytes(of: s.loadUnaligned(fromByteOffset: (n - 4) * 4, as: SIMD4<Float>.self) + shift4, toByteOffset: (n - 4) * 4, as: SIMD4<Float>.self)
    }
}

/// Planes per forward task: about 4096 outputs, so that 7×7 and 14×14 planes are not one
/// scheduling step (an atomic shared by the workers) each.
@inline(__always)
private func planesPerTask(outputs: Int) -> Int { max(1, 4096 / max(outputs, 1)) }

/// Whether the window covers the whole unpadded plane (`k = H = W`, `p = 0`, output 1×1): the
/// global depthwise convolution (MobileFaceNet's 7×7 GDC), run as one dot product per plane.
@inline(__always)
private func isGlobal(_ g: ConvolutionGeometry) -> Bool {
    g.kernelHeight == g.height && g.kernelWidth == g.width && g.paddingHeight == 0 && g.paddingWidth == 0
}

/// `Σ_{i<n} a[i] · b[i]` in `SIMD8` lanes.
@inline(__always)
private func dotProduct(_ a: UnsafePointer<Float>, _ b: UnsafePointer<Float>, _ n: Int) -> Float {
    let ra = UnsafeRawPointer(a), rb = UnsafeRawPointer(b)
    var acc = SIMD8<Float>()
    var i = 0
    while i + 8 <= n {
        acc = ra.loadUnaligned(fromByteOffset: i * 4, as: SIMD8<Float>.self) * rb.loadUnaligned(fromByteOffset: i * 4, as: SIMD8<Float>.self) + acc
        i += 8
    }
    var total = (acc.lowHalf + acc.highHalf).sum()
    while i < n { total += a[i] * b[i]; i += 1 }
    return total
}

/// The forward pass of a depthwise convolution:
/// `y[n, c, i, j] = b[c] + Σ_{u,v} w[c, u, v] · x[n, c, i·s − p + u, j·s − p + v]` (zero padding).
///
/// - Parameters:
///   - input: `x`, `[N, C, H, W]` (`geometry.channels == C`).
///   - geometry: square window `k`, stride `s`, padding `p` (equal in both directions).
///   - weight: `w`, `[C, 1, k, k]`.
///   - bias: `b`, `[C]`, or `nil`.
///   - output: resized to `[N, C, Ho, Wo]` if needed and overwritten.
///   - scratch: per-worker phase planes; grown as needed, contents unspecified afterwards.
func depthwiseConvolutionForward(_ input: [Float], batchSize: Int, geometry g: ConvolutionGeometry,
                                 weight: [Float], bias: [Float]?, into output: inout [Float], scratch: inout [Float]) {
    let channels = g.channels, taps = g.kernelHeight * g.kernelWidth
    let spatial = g.outputHeight * g.outputWidth
    precondition(batchSize >= 0, "depthwiseConvolutionForward: N \(batchSize)")
    precondition(input.count == batchSize * g.inputSize,
                 "depthwiseConvolutionForward: input has \(input.count) elements, expected N·C·H·W = \(batchSize)·\(g.inputSize)")
    precondition(weight.count == channels * taps,
                 "depthwiseConvolutionForward: weight has \(weight.count) elements, expected C·k·k = \(channels)·\(taps)")
    if let bias { precondition(bias.count == channels, "depthwiseConvolutionForward: bias \(bias.count), C \(channels)") }
    prepare(&output, count: batchSize * channels * spatial)
    if batchSize == 0 { return }
    if isGlobal(g) {
        // y[n, c] = b[c] + ⟨x[n, c], w[c]⟩: one dot product per plane, planes in chunks per task.
        let planes = batchSize * channels, chunk = 64, tasks = (planes + chunk - 1) / chunk
        input.withUnsafeBufferPointer { pin in
            weight.withUnsafeBufferPointer { pw in
                output.withUnsafeMutableBufferPointer { pout in
                    let x = SharedConstPointer(base: pin.baseAddress!), w = SharedConstPointer(base: pw.baseAddress!)
                    let y = SharedPointer(base: pout.baseAddress!)
                    forEachTask(tasks, workers: min(BLAS.threadCount, tasks)) { task, _ in
                        for plane in (task * chunk)..<min(planes, (task + 1) * chunk) {
                            let c = plane % channels
                            y.base[plane] = dotProduct(x.base + plane * taps, w.base + c * taps, taps) + (bias?[c] ?? 0)
                        }
                    }
                }
            }
        }
        return
    }
    let plan = DepthwisePlan(g)
    let planes = batchSize * channels, chunk = planesPerTask(outputs: spatial), tasks = (planes + chunk - 1) / chunk
    let workers = min(BLAS.threadCount, tasks)
    // Output rows of `minimumDirectWidth` or more: computed in place, row by row (no copy). Narrower: the whole
    // flat output at once (more independent accumulators), then its rows copied out.
    let rowsDirect = g.outputWidth >= minimumDirectWidth
    let perWorker = plan.phaseBlock + (rowsDirect ? 0 : plan.outputLength)
    growScratch(&scratch, count: workers * perWorker)
    let planeSize = g.height * g.width, ho = g.outputHeight, wo = g.outputWidth, wh = plan.phaseWidth
    input.withUnsafeBufferPointer { pin in
        weight.withUnsafeBufferPointer { pw in
            output.withUnsafeMutableBufferPointer { pout in
                scratch.withUnsafeMutableBufferPointer { ps in
                    plan.tapOffsets.withUnsafeBufferPointer { po in
                        let x = SharedConstPointer(base: pin.baseAddress!), w = SharedConstPointer(base: pw.baseAddress!)
                        let y = SharedPointer(base: pout.baseAddress!), s = SharedPointer(base: ps.baseAddress!)
                        let offsets = SharedConstPointer(base: po.baseAddress!)
                        // The padding is never written: zero each worker's phases once.
                        s.base.update(repeating: 0, count: workers * perWorker)
                        forEachTask(tasks, workers: workers) { task, worker in
                            let phases = s.base + worker * perWorker, flat = phases + plan.phaseBlock
                            for plane in (task * chunk)..<min(planes, (task + 1) * chunk) {
                                let c = plane % channels, shift = bias?[c] ?? 0, out = y.base + plane * spatial
                                plan.scatter(x.base + plane * planeSize, into: phases)
                                if rowsDirect {
                                    plan.correlateRows(UnsafeRawPointer(phases), offsets: offsets.base, weights: w.base + c * taps,
                                                       start: 0, rows: ho, width: wo, shift: shift, into: out)
                                } else {
                                    plan.correlate(phases, weights: w.base + c * taps, into: flat)
                                    for oy in 0..<ho { copyRow(flat + oy * wh, into: out + oy * wo, count: wo, adding: shift) }
                                }
                            }
                        }
                    }
                }
            }
        }
    }
}

/// The backward pass of `depthwiseConvolutionForward`: `∂w[c, u, v] += Σ_{n,i,j} ∂y[n, c, i, j] ·
/// x[n, c, i·s − p + u, j·s − p + v]` and, optionally, `∂x = Σ_{u,v}` of the same windows
/// weighted by `w[c, u, v]` (the transposed convolution).
///
/// - Parameters:
///   - outputGradient: `∂y`, `[N, C, Ho, Wo]`.
///   - input: `x`, `[N, C, H, W]`, as given to the forward pass.
///   - weight: `w`, `[C, 1, k, k]`.
///   - weightGradient: `[C, 1, k, k]`; the gradient is ADDED to it.
///   - computesInputGradient: whether to compute `∂x`.
///   - inputGradient: when `computesInputGradient`, resized to `[N, C, H, W]` and overwritten
///     with `∂x`; untouched otherwise.
///   - scratch: per-worker phase planes and the `∂w` partials; grown as needed.
func depthwiseConvolutionBackward(outputGradient: [Float], input: [Float], batchSize: Int, geometry g: ConvolutionGeometry,
                                  weight: [Float], weightGradient: inout [Float], computesInputGradient: Bool,
                                  into inputGradient: inout [Float], scratch: inout [Float]) {
    let channels = g.channels, taps = g.kernelHeight * g.kernelWidth
    let spatial = g.outputHeight * g.outputWidth
    precondition(batchSize >= 0, "depthwiseConvolutionBackward: N \(batchSize)")
    precondition(outputGradient.count == batchSize * channels * spatial,
                 "depthwiseConvolutionBackward: output gradient has \(outputGradient.count) elements, expected N·C·S = \(batchSize)·\(channels)·\(spatial)")
    precondition(input.count == batchSize * g.inputSize,
                 "depthwiseConvolutionBackward: input has \(input.count) elements, expected N·C·H·W = \(batchSize)·\(g.inputSize)")
    precondition(weight.count == channels * taps && weightGradient.count == weight.count,
                 "depthwiseConvolutionBackward: weight \(weight.count), weight gradient \(weightGradient.count), expected C·k·k = \(channels)·\(taps)")
    if computesInputGradient { prepare(&inputGradient, count: batchSize * g.inputSize) }
    if batchSize == 0 { return }
    if isGlobal(g) {
        return globalDepthwiseBackward(outputGradient: outputGradient, input: input, batchSize: batchSize, channels: channels,
                                       taps: taps, weight: weight, weightGradient: &weightGradient,
                                       computesInputGradient: computesInputGradient, into: &inputGradient, scratch: &scratch)
    }
    let plan = DepthwisePlan(g)
    // A task: one part of the batch × a block of consecutive channels, image by image (so that
    // it reads runs of consecutive planes, not one small plane every C planes).
    let parts = min(weightGradientGroups, batchSize)
    let block = min(channels, planesPerTask(outputs: spatial)), blocks = (channels + block - 1) / block
    let tasks = parts * blocks
    let workers = min(BLAS.threadCount, tasks)
    // ∂x: stride 1 straight into the [H, W] plane (the adjoint's taps are the forward's, negated);
    // otherwise ∂x's phases, then copied back (gathered or, when the output is much smaller, scattered).
    let directAdjoint = plan.stride == 1 && !plan.scattersAdjoint && g.width >= minimumDirectWidth
    // Per worker: x's phases, the padded ∂Y vector, ∂x's phases (if wanted), the [block, k², 8] ∂w lanes.
    let phaseGradientSize = computesInputGradient && !directAdjoint ? plan.phaseBlock : 0
    let perWorker = plan.phaseBlock + plan.gradientLength + phaseGradientSize + block * 8 * taps
    let partialSize = channels * taps
    growScratch(&scratch, count: workers * perWorker + parts * partialSize)
    let planeSize = g.height * g.width, ho = g.outputHeight, wo = g.outputWidth, wh = plan.phaseWidth
    let negatedOffsets = plan.tapOffsets.map { -$0 }
    let interiorStart = g.paddingHeight * wh + g.paddingWidth
    outputGradient.withUnsafeBufferPointer { pg in
        input.withUnsafeBufferPointer { pin in
            weight.withUnsafeBufferPointer { pw in
                inputGradient.withUnsafeMutableBufferPointer { pdx in
                    scratch.withUnsafeMutableBufferPointer { ps in
                        plan.tapOffsets.withUnsafeBufferPointer { po in
                            negatedOffsets.withUnsafeBufferPointer { pno in
                        let dy = SharedConstPointer(base: pg.baseAddress!), x = SharedConstPointer(base: pin.baseAddress!)
                        let w = SharedConstPointer(base: pw.baseAddress!), s = SharedPointer(base: ps.baseAddress!)
                        let offsets = SharedConstPointer(base: po.baseAddress!), negated = SharedConstPointer(base: pno.baseAddress!)
                        let dx = computesInputGradient ? SharedPointer(base: pdx.baseAddress!) : nil
                        // x's padding and ∂Y's zero columns are never written: zero each worker's scratch once.
                        s.base.update(repeating: 0, count: workers * perWorker)
                        forEachTask(tasks, workers: workers) { task, worker in
                            let part = task / blocks, firstChannel = task % blocks * block
                            let lastChannel = min(channels, firstChannel + block)
                            let phases = s.base + worker * perWorker
                            let gradientVector = phases + plan.phaseBlock             // maxShift zeros, then ∂Y flat
                            let phaseGradient = gradientVector + plan.gradientLength
                            let flat = gradientVector + plan.maxShift
                            let allLanes = phaseGradient + phaseGradientSize   // [block, k², 8]
                            allLanes.update(repeating: 0, count: block * 8 * taps)
                            for n in (batchSize * part / parts)..<(batchSize * (part + 1) / parts) {
                                for c in firstChannel..<lastChannel {
                                let plane = n * channels + c, wc = w.base + c * taps
                                let lanes = allLanes + (c - firstChannel) * 8 * taps
                                let source = dy.base + plane * spatial
                                for oy in 0..<ho { copyRow(source + oy * wo, into: flat + oy * wh, count: wo) }
                                plan.scatter(x.base + plane * planeSize, into: phases)
                                for t in 0..<taps { plan.accumulateDot(flat, phases + offsets.base[t], into: lanes + 8 * t) }
                                if let dx {
                                    if directAdjoint {
                                        plan.correlateRows(UnsafeRawPointer(flat), offsets: negated.base, weights: wc,
                                                           start: interiorStart, rows: g.height, width: g.width, shift: 0,
                                                           into: dx.base + plane * planeSize)
                                    } else {
                                        if plan.scattersAdjoint {
                                            plan.scatterAdjoint(flat, weights: wc, into: phaseGradient)
                                        } else {
                                            plan.correlateAdjoint(flat, weights: wc, into: phaseGradient)
                                        }
                                        plan.gather(phaseGradient, into: dx.base + plane * planeSize)
                                    }
                                }
                                }
                            }
                            for c in firstChannel..<lastChannel {
                                let lanes = allLanes + (c - firstChannel) * 8 * taps
                                let partial = s.base + workers * perWorker + part * partialSize + c * taps
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
            }
        }
    }
    // ∂w += Σ_part partial, in part order.
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

/// The backward pass of the global depthwise convolution (`isGlobal`): `∂w[c] += Σ_n ∂y[n, c] · x[n, c]`
/// (over a fixed partition of the batch, parts summed in order) and `∂x[n, c] = ∂y[n, c] · w[c]`.
private func globalDepthwiseBackward(outputGradient: [Float], input: [Float], batchSize: Int, channels: Int, taps: Int,
                                     weight: [Float], weightGradient: inout [Float], computesInputGradient: Bool,
                                     into inputGradient: inout [Float], scratch: inout [Float]) {
    let parts = min(weightGradientGroups, batchSize), partialSize = channels * taps
    growScratch(&scratch, count: parts * partialSize)
    outputGradient.withUnsafeBufferPointer { pg in
        input.withUnsafeBufferPointer { pin in
            weight.withUnsafeBufferPointer { pw in
                inputGradient.withUnsafeMutableBufferPointer { pdx in
                    scratch.withUnsafeMutableBufferPointer { ps in
                        let dy = SharedConstPointer(base: pg.baseAddress!), x = SharedConstPointer(base: pin.baseAddress!)
                        let w = SharedConstPointer(base: pw.baseAddress!), s = SharedPointer(base: ps.baseAddress!)
                        let dx = computesInputGradient ? SharedPointer(base: pdx.baseAddress!) : nil
                        forEachTask(parts, workers: min(BLAS.threadCount, parts)) { part, _ in
                            let partial = s.base + part * partialSize
                            partial.update(repeating: 0, count: partialSize)
                            for n in (batchSize * part / parts)..<(batchSize * (part + 1) / parts) {
                                for c in 0..<channels {
                                    let plane = n * channels + c, g = dy.base[plane]
                                    let xs = x.base + plane * taps, acc = partial + c * taps
                                    for t in 0..<taps { acc[t] += g * xs[t] }
                                    if let dx {
                                        let target = dx.base + plane * taps, wc = w.base + c * taps
                                        for t in 0..<taps { target[t] = g * wc[t] }
                                    }
                                }
                            }
                        }
                    }
                }
            }
        }
    }
    scratch.withUnsafeBufferPointer { ps in
        weightGradient.withUnsafeMutableBufferPointer { pdw in
            let partials = ps.baseAddress!, dw = pdw.baseAddress!
            for part in 0..<parts {
                let partial = partials + part * partialSize
                for i in 0..<partialSize { dw[i] += partial[i] }
            }
        }
    }
}
