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
// Output rows of at least `ARCFACE_DEPTHWISE_MIN_DIRECT_WIDTH` are computed in place instead
// (each row in chunks of 32, 16, 8 and 4 summed over all taps in registers, the last chunk moved
// back to end at the row's end), and so is the stride-1 `∂x` (the adjoint's taps are the
// forward's, negated, read from the zero-padded `∂Y`): no flat vector, no copy. Stride-1 3 × 3
// windows on rows of 8 or more (MobileFaceNet's 56×56, 28×28, 14×14) go further: four output rows
// at a time, each input vector loaded once for the three rows it meets (half the loads), for the
// output, for `∂x` (the reversed window over `∂Y`) and for `∂W`. Smaller stride-1 "same" planes
// (`2p = k − 1`, `k² ≤ 9`, `H·W ≤ 256`: MobileFaceNet's 7×7) are not copied at all: each tap is
// a flat shift of the plane itself, `y[q] += w(i, j) · x[q + d]` with `d = (i − p)·W + (j − p)`,
// ANDed with a mask that zeroes the taps falling outside the plane (computed once per call,
// `k²·⌈H·W⌉₁₆` ints); `∂x` is the same masked correlation of `∂y` with the window reversed, `∂w`
// the masked dot products of `∂y` with the shifted `x` (both in one pass, each mask loaded once).
// A plane whose shifted loads would leave the tensor (the first and last few) takes the copying
// path. The padding of the phase planes and the zero columns of `∂Y` are never written, so each
// worker's scratch is zeroed once per call, not per plane.
// All of a task's per-plane work — the polyphase copies, the correlations, the `k²`
// weight-gradient dot products in one pass over `∂Y`, the adjoint — is one call into the C target
// `CDepthwiseKernels`, compiled for AVX-512, AVX2 + FMA and the baseline and run with
// `DepthwiseInstructionSet.processDefault` (the CPU's widest): Swift code here is baseline x86-64,
// where `SIMD16<Float>` is four SSE operations and `a * b + c` a separate multiply and add, and
// a call per row of 7 or 14 floats cost more than the row. What stays in Swift is the plan
// (geometry, tap offsets, masks) and the task partition.
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

    /// Calls `body` with this plan as the C kernels take it (valid during the call only), with the
    /// in-place masks filled in when `includingMasks` and the geometry has them.
    func withCPlan<R>(includingMasks: Bool = true, _ body: (UnsafePointer<ArcFaceDepthwisePlan>) -> R) -> R {
        let phaseTapBegin = phaseTapRanges.map { Int32($0.lowerBound) } + [Int32(phaseTapRanges.last?.upperBound ?? 0)]
        return tapOffsets.withUnsafeBufferPointer { po in
            adjointOffsets.withUnsafeBufferPointer { pao in
                adjointTaps.withUnsafeBufferPointer { pat in
                    phaseTapBegin.withUnsafeBufferPointer { pb in
                        var plan = ArcFaceDepthwisePlan(
                            height: Int32(g.height), width: Int32(g.width),
                            output_height: Int32(g.outputHeight), output_width: Int32(g.outputWidth),
                            kernel: Int32(kernel), stride: Int32(stride), padding: Int32(g.paddingWidth),
                            phase_width: Int32(phaseWidth), phase_stride: phaseStride, phase_block: phaseBlock,
                            output_length: outputLength, phase_length: phaseLength, max_shift: maxShift,
                            gradient_length: gradientLength, tap_offsets: po.baseAddress, adjoint_offsets: pao.baseAddress,
                            adjoint_taps: pat.baseAddress, phase_tap_begin: pb.baseAddress, masks: nil)
                        // Small "same" planes are read in place through per-tap masks (see the C file).
                        let maskCount = includingMasks ? arcface_depthwise_mask_count(&plan) : 0
                        if maskCount == 0 { return withUnsafePointer(to: &plan) { body($0) } }
                        var masks = [Int32](repeating: 0, count: maskCount)
                        return masks.withUnsafeMutableBufferPointer { pm in
                            arcface_depthwise_fill_masks(&plan, pm.baseAddress!)
                            plan.masks = UnsafePointer(pm.baseAddress!)
                            return withUnsafePointer(to: &plan) { body($0) }
                        }
                    }
                }
            }
        }
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
    let perWorker = plan.withCPlan(includingMasks: false) { arcface_depthwise_forward_scratch($0) }
    growScratch(&scratch, count: workers * perWorker)
    plan.withCPlan { cPlan in
        let p = SharedConstPointer(base: cPlan)
        input.withUnsafeBufferPointer { pin in
            weight.withUnsafeBufferPointer { pw in
                output.withUnsafeMutableBufferPointer { pout in
                    scratch.withUnsafeMutableBufferPointer { ps in
                        let withBias = { (body: (UnsafePointer<Float>?) -> Void) in
                            if let bias { bias.withUnsafeBufferPointer { body($0.baseAddress!) } } else { body(nil) }
                        }
                        withBias { pb in
                            let x = SharedConstPointer(base: pin.baseAddress!), w = SharedConstPointer(base: pw.baseAddress!)
                            let b = pb.map { SharedConstPointer(base: $0) }
                            let y = SharedPointer(base: pout.baseAddress!), s = SharedPointer(base: ps.baseAddress!)
                            // The padding is never written: zero each worker's phases once.
                            s.base.update(repeating: 0, count: workers * perWorker)
                            forEachTask(tasks, workers: workers) { task, worker in
                                let first = task * chunk, count = min(planes, first + chunk) - first
                                arcface_depthwise_forward(plan.isa, p.base, x.base, w.base, b?.base, Int32(channels), planes,
                                                          first, count, y.base, s.base + worker * perWorker)
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
    let partialSize = channels * taps
    let perWorker = plan.withCPlan(includingMasks: false) { arcface_depthwise_backward_scratch($0, computesInputGradient ? 1 : 0, Int32(block)) }
    growScratch(&scratch, count: workers * perWorker + parts * partialSize)
    plan.withCPlan { cPlan in
        let p = SharedConstPointer(base: cPlan)
        outputGradient.withUnsafeBufferPointer { pg in
            input.withUnsafeBufferPointer { pin in
                weight.withUnsafeBufferPointer { pw in
                    inputGradient.withUnsafeMutableBufferPointer { pdx in
                        scratch.withUnsafeMutableBufferPointer { ps in
                            let dy = SharedConstPointer(base: pg.baseAddress!), x = SharedConstPointer(base: pin.baseAddress!)
                            let w = SharedConstPointer(base: pw.baseAddress!), s = SharedPointer(base: ps.baseAddress!)
                            let dx = computesInputGradient ? SharedPointer(base: pdx.baseAddress!) : nil
                            // x's padding and ∂Y's zero columns are never written: zero each worker's scratch once.
                            s.base.update(repeating: 0, count: workers * perWorker)
                            forEachTask(tasks, workers: workers) { task, worker in
                                let part = task / blocks, firstChannel = task % blocks * block
                                let channelCount = min(channels, firstChannel + block) - firstChannel
                                let firstImage = batchSize * part / parts, imageCount = batchSize * (part + 1) / parts - firstImage
                                let partial = s.base + workers * perWorker + part * partialSize + firstChannel * taps
                                arcface_depthwise_backward(plan.isa, p.base, dy.base, x.base, w.base, Int32(channels), batchSize * channels,
                                                           firstImage, imageCount, Int32(firstChannel), Int32(channelCount),
                                                           dx?.base, s.base + worker * perWorker, partial)
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
