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
// chunks of 32, 16, 8 and 4 summed over all taps in registers, the last chunk moved back to end
// at the row's end), and so is the stride-1 `∂x` (the adjoint's taps are the forward's, negated,
// read from the zero-padded `∂Y`): no flat vector, no copy. The padding of the phase planes and
// the zero columns of `∂Y` are never written, so each worker's scratch is zeroed once per call,
// not per plane; rows are copied with inline SIMD loops (a `memmove` call per row of 7 or 14
// floats cost more than the copy).
// The arithmetic (the correlations, the `k²` weight-gradient dot products in one pass over `∂Y`,
// the adjoint) is in the C target `CDepthwiseKernels`, compiled for AVX-512, AVX2 + FMA and the
// baseline and run with `DepthwiseInstructionSet.processDefault` (the CPU's widest): Swift code
// here is baseline x86-64, where `SIMD16<Float>` is four SSE operations and `a * b + c` a separate
// multiply and add. What stays in Swift moves memory: the polyphase copies, the row copies, the
// task partition.
//
// Determinism: `∂W` is summed per channel over a fixed partition of the batch into at most
// `weightGradientGroups` parts (a `[parts, C, k²]` partial, then summed in part order), so it
// does not depend on the worker count. Nothing else is a sum across tasks.
//
// Legend: `N` batch, `C` channels, `k` window, `s` stride, `p` padding, `S = Ho·Wo`.
internal import CDepthwiseKernels
import TensorCore

// MARK: - The instruction set (the one file that calls CDepthwiseKernels)

extension DepthwiseInstructionSet {
    init(_ isa: ArcFaceDepthwiseISA) { self = DepthwiseInstructionSet(rawValue: Int(isa.rawValue)) ?? .baseline }
    var cValue: ArcFaceDepthwiseISA { ArcFaceDepthwiseISA(rawValue: UInt32(rawValue)) }
}

func depthwiseKernelsBestInstructionSet() -> DepthwiseInstructionSet { DepthwiseInstructionSet(arcface_depthwise_best_isa()) }
func depthwiseKernelsDefaultInstructionSet() -> DepthwiseInstructionSet { DepthwiseInstructionSet(arcface_depthwise_default_isa()) }
func setDepthwiseKernelsDefaultInstructionSet(_ set: DepthwiseInstructionSet) { _ = arcface_depthwise_set_default_isa(set.cValue) }

/// The polyphase layout of one depthwise geometry (see the file comment).
private struct DepthwisePlan {
    let g: ConvolutionGeometry
    /// The instruction set the C kernels run.
    let isa: ArcFaceDepthwiseISA
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
    /// Per phase, its range in `adjointOffsets` / `adjointTaps`: the taps that read it.
    let phaseTapRanges: [Range<Int>]
    /// The taps of phase 0, then of phase 1, …: their negated shifts `−d(i, j)` and indices `t`.
    let adjointOffsets: [Int], adjointTaps: [Int32]
    /// Floats of the backward pass's zero-padded `∂Y` vector: `maxShift` zeros in front.
    var gradientLength: Int { maxShift + max(outputLength, phaseLength) }

    init(_ g: ConvolutionGeometry, instructionSet: DepthwiseInstructionSet) {
        precondition(g.kernelHeight == g.kernelWidth && g.strideHeight == g.strideWidth && g.paddingHeight == g.paddingWidth,
                     "depthwise convolution: square window, stride and padding only, got \(g)")
        precondition(g.kernelWidth * g.kernelWidth <= Int(ARCFACE_DEPTHWISE_MAX_TAPS),
                     "depthwise convolution: at most \(ARCFACE_DEPTHWISE_MAX_TAPS) window elements, got \(g.kernelWidth)×\(g.kernelWidth)")
        self.g = g
        isa = instructionSet.cValue
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
        var ranges: [Range<Int>] = [], adjointOffsets: [Int] = [], adjointTaps: [Int32] = []
        for phase in taps {
            ranges.append(adjointOffsets.count..<(adjointOffsets.count + phase.count))
            adjointOffsets += phase.map { -$0.shift }
            adjointTaps += phase.map { Int32($0.tap) }
        }
        phaseTapRanges = ranges
        self.adjointOffsets = adjointOffsets
        self.adjointTaps = adjointTaps
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

    /// `out[q] = Σ_t w[t] · phases[tapOffsets[t] + q]` for `q < outputLength` (one row of
    /// `outputLength` in the C kernel: its longest runs of independent accumulators).
    @inline(__always)
    func correlate(_ phases: UnsafePointer<Float>, offsets: UnsafePointer<Int>, weights w: UnsafePointer<Float>,
                   into out: UnsafeMutablePointer<Float>) {
        arcface_depthwise_correlate_rows(isa, phases, offsets, w, nil, Int32(kernel * kernel), 0, 0, 1, Int32(outputLength), 0, out)
    }

    /// For `rows` rows of `width` results `out[r·width + x] = shift + Σ_t w[t] · phases[offsets[t] +
    /// start + r·Wh + x]` (the C kernel: chunks of 32, 16, 8 and 4 along the row, the last one moved
    /// back to end at the row's end). The forward pass (`start = 0`: the output plane) and the
    /// stride-1 adjoint (`offsets` negated, `start` the first interior pixel: `∂x`).
    @inline(__always)
    func correlateRows(_ phases: UnsafePointer<Float>, offsets: UnsafePointer<Int>, weights w: UnsafePointer<Float>,
                       start: Int, rows: Int, width: Int, shift: Float, into out: UnsafeMutablePointer<Float>) {
        arcface_depthwise_correlate_rows(isa, phases, offsets, w, nil, Int32(kernel * kernel), start, phaseWidth,
                                         Int32(rows), Int32(width), shift, out)
    }

    /// `lanes[16·t ..< 16·t + 16]` gain `Σ_{q < outputLength} dy[q] · phases[tapOffsets[t] + q]`
    /// for every tap `t` (one pass over `dy` per 9 taps; summed to scalars once per task).
    @inline(__always)
    func accumulateWeightGradient(_ dy: UnsafePointer<Float>, _ phases: UnsafePointer<Float>, offsets: UnsafePointer<Int>,
                                  into lanes: UnsafeMutablePointer<Float>) {
        arcface_depthwise_weight_gradient(isa, dy, phases, offsets, Int32(kernel * kernel), outputLength, lanes)
    }

    /// The adjoint of `correlate`: `∂P_ab[r] = Σ_{taps of phase ab} w[t] · dy[r − d_t]` for
    /// `r < phaseLength`, where `dy` points `maxShift` floats into a zero-padded gradient vector.
    @inline(__always)
    func correlateAdjoint(_ dy: UnsafePointer<Float>, weights w: UnsafePointer<Float>, adjointOffsets: UnsafePointer<Int>,
                          adjointTaps: UnsafePointer<Int32>, into phases: UnsafeMutablePointer<Float>) {
        for (phase, range) in phaseTapRanges.enumerated() {
            let out = phases + phase * phaseStride
            if range.isEmpty { out.update(repeating: 0, count: phaseLength); continue }
            arcface_depthwise_correlate_rows(isa, dy, adjointOffsets + range.lowerBound, w, adjointTaps + range.lowerBound,
                                             Int32(range.count), 0, 0, 1, Int32(phaseLength), 0, out)
        }
    }

    /// Whether `correlateAdjoint` should scatter (`k²` axpys over the `outputLength` outputs) rather
    /// than gather (every tap for each of the `s²·phaseLength` phase elements): when the output is
    /// much smaller than the padded input, as the 7×7 global depthwise conv's 1×1 output.
    var scattersAdjoint: Bool { 2 * outputLength < phaseLength }

    /// `correlateAdjoint` as scattered axpys: zero `phases`, then `phases[tapOffsets[t] + q] += w[t] · dy[q]`
    /// for `q < outputLength`, taps in order.
    @inline(__always)
    func scatterAdjoint(_ dy: UnsafePointer<Float>, weights w: UnsafePointer<Float>, offsets: UnsafePointer<Int>,
                        into phases: UnsafeMutablePointer<Float>) {
        phases.update(repeating: 0, count: phaseBlock)
        arcface_depthwise_scatter_adjoint(isa, dy, offsets, w, Int32(kernel * kernel), outputLength, phases)
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

/// Partial sums per tap of the weight gradient (`arcface_depthwise_weight_gradient`).
private let lanesPerTap = Int(ARCFACE_DEPTHWISE_LANES)

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
///   - instructionSet: the C kernels' instruction set (lowered to what the CPU runs).
func depthwiseConvolutionForward(_ input: [Float], batchSize: Int, geometry g: ConvolutionGeometry,
                                 weight: [Float], bias: [Float]?, into output: inout [Float], scratch: inout [Float],
                                 instructionSet: DepthwiseInstructionSet = .processDefault) {
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
    let plan = DepthwisePlan(g, instructionSet: instructionSet)
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
                                    plan.correlateRows(phases, offsets: offsets.base, weights: w.base + c * taps,
                                                       start: 0, rows: ho, width: wo, shift: shift, into: out)
                                } else {
                                    plan.correlate(phases, offsets: offsets.base, weights: w.base + c * taps, into: flat)
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
///   - instructionSet: the C kernels' instruction set (lowered to what the CPU runs).
func depthwiseConvolutionBackward(outputGradient: [Float], input: [Float], batchSize: Int, geometry g: ConvolutionGeometry,
                                  weight: [Float], weightGradient: inout [Float], computesInputGradient: Bool,
                                  into inputGradient: inout [Float], scratch: inout [Float],
                                  instructionSet: DepthwiseInstructionSet = .processDefault) {
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
    let plan = DepthwisePlan(g, instructionSet: instructionSet)
    // A task: one part of the batch × a block of consecutive channels, image by image (so that
    // it reads runs of consecutive planes, not one small plane every C planes).
    let parts = min(weightGradientGroups, batchSize)
    let block = min(channels, planesPerTask(outputs: spatial)), blocks = (channels + block - 1) / block
    let tasks = parts * blocks
    let workers = min(BLAS.threadCount, tasks)
    // ∂x: stride 1 straight into the [H, W] plane (the adjoint's taps are the forward's, negated);
    // otherwise ∂x's phases, then copied back (gathered or, when the output is much smaller, scattered).
    let directAdjoint = plan.stride == 1 && !plan.scattersAdjoint && g.width >= minimumDirectWidth
    // Per worker: x's phases, the padded ∂Y vector, ∂x's phases (if wanted), the [block, k², 16] ∂w lanes.
    let phaseGradientSize = computesInputGradient && !directAdjoint ? plan.phaseBlock : 0
    let perWorker = plan.phaseBlock + plan.gradientLength + phaseGradientSize + block * lanesPerTap * taps
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
                            plan.adjointOffsets.withUnsafeBufferPointer { pao in
                            plan.adjointTaps.withUnsafeBufferPointer { pat in
                        let adjointOffsets = SharedConstPointer(base: pao.baseAddress!)
                        let adjointTaps = SharedConstPointer(base: pat.baseAddress!)
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
                            let allLanes = phaseGradient + phaseGradientSize   // [block, k², 16]
                            allLanes.update(repeating: 0, count: block * lanesPerTap * taps)
                            for n in (batchSize * part / parts)..<(batchSize * (part + 1) / parts) {
                                for c in firstChannel..<lastChannel {
                                let plane = n * channels + c, wc = w.base + c * taps
                                let lanes = allLanes + (c - firstChannel) * lanesPerTap * taps
                                let source = dy.base + plane * spatial
                                for oy in 0..<ho { copyRow(source + oy * wo, into: flat + oy * wh, count: wo) }
                                plan.scatter(x.base + plane * planeSize, into: phases)
                                plan.accumulateWeightGradient(flat, phases, offsets: offsets.base, into: lanes)
                                if let dx {
                                    if directAdjoint {
                                        plan.correlateRows(flat, offsets: negated.base, weights: wc,
                                                           start: interiorStart, rows: g.height, width: g.width, shift: 0,
                                                           into: dx.base + plane * planeSize)
                                    } else {
                                        if plan.scattersAdjoint {
                                            plan.scatterAdjoint(flat, weights: wc, offsets: offsets.base, into: phaseGradient)
                                        } else {
                                            plan.correlateAdjoint(flat, weights: wc, adjointOffsets: adjointOffsets.base,
                                                                  adjointTaps: adjointTaps.base, into: phaseGradient)
                                        }
                                        plan.gather(phaseGradient, into: dx.base + plane * planeSize)
                                    }
                                }
                                }
                            }
                            for c in firstChannel..<lastChannel {
                                let lanes = allLanes + (c - firstChannel) * lanesPerTap * taps
                                let partial = s.base + workers * perWorker + part * partialSize + c * taps
                                for t in 0..<taps {
                                    let v = UnsafeRawPointer(lanes + lanesPerTap * t).loadUnaligned(as: SIMD16<Float>.self)
                                    partial[t] = v.sum()
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
