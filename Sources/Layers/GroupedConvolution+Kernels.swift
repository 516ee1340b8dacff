// The grouped convolution's kernels (`1 < groups`, not depthwise): per image and group, im2col of
// the group's `Cg = Cin/g` input channels into a per-worker column buffer, then one GEMM with the
// group's `[Cout/g, Pg]` rows of the weight, writing the group's `[Cout/g, S]` slice of the
// image's output. A 1×1, stride-1, unpadded window skips the im2col (the group's channels are
// already its `[Cg, S]` matrix). Tasks (image, group) are spread over `BLAS.threadCount` Swift
// workers, each issuing single-threaded GEMMs.
//
// Determinism: as in `Conv2D+Kernels.swift`, the weight gradient is summed over a fixed partition
// of the batch into at most `weightGradientGroups` parts (one partial per part, summed in part
// order), so it does not depend on the worker count.
//
// Legend: `N` batch, `g` groups, `Cg = Cin/g`, `Og = Cout/g`, `Pg = Cg·kh·kw` patch size of one
// group, `S = Ho·Wo` output pixels. The weight `[Cout, Cg, kh, kw]` is `g` blocks `[Og, Pg]`.
import TensorCore

/// The geometry of one group: `geometry` with `Cin/groups` channels.
@inline(__always)
private func groupGeometry(_ g: ConvolutionGeometry, groups: Int) -> ConvolutionGeometry {
    var group = g
    group.channels = g.channels / groups
    return group
}

@inline(__always)
private func isPointwiseGroup(_ g: ConvolutionGeometry) -> Bool {
    g.kernelHeight == 1 && g.kernelWidth == 1 && g.strideHeight == 1 && g.strideWidth == 1
        && g.paddingHeight == 0 && g.paddingWidth == 0
}

/// The forward pass of a grouped convolution: `Y_{n,gr} = W_gr · cols(x_{n,gr}) (+ b)` for every
/// image `n` and group `gr`.
///
/// - Parameters:
///   - input: `x`, `[N, Cin, H, W]` (`geometry.channels == Cin`).
///   - groups: `g` (> 0, divides `Cin` and `outputChannels`).
///   - weight: `W`, `[Cout, Cin/g, kh, kw]`.
///   - bias: `b`, `[Cout]`, or `nil`.
///   - output: resized to `[N, Cout, Ho, Wo]` if needed and overwritten.
///   - scratch: per-worker column buffers; grown as needed, contents unspecified afterwards.
func groupedConvolutionForward(_ input: [Float], batchSize: Int, geometry g: ConvolutionGeometry, groups: Int,
                               weight: [Float], outputChannels: Int, bias: [Float]?,
                               into output: inout [Float], scratch: inout [Float]) {
    precondition(groups > 0 && g.channels % groups == 0 && outputChannels % groups == 0,
                 "groupedConvolutionForward: groups \(groups) must divide Cin \(g.channels) and Cout \(outputChannels)")
    let gg = groupGeometry(g, groups: groups)
    let patch = gg.patchSize, spatial = g.outputHeight * g.outputWidth, groupOutputs = outputChannels / groups
    precondition(batchSize >= 0, "groupedConvolutionForward: N \(batchSize)")
    precondition(input.count == batchSize * g.inputSize,
                 "groupedConvolutionForward: input has \(input.count) elements, expected N·C·H·W = \(batchSize)·\(g.inputSize)")
    precondition(weight.count == outputChannels * patch,
                 "groupedConvolutionForward: weight has \(weight.count) elements, expected Cout·Cin/g·kh·kw = \(outputChannels)·\(patch)")
    if let bias { precondition(bias.count == outputChannels, "groupedConvolutionForward: bias \(bias.count), Cout \(outputChannels)") }
    let outputSize = outputChannels * spatial
    prepare(&output, count: batchSize * outputSize)
    if batchSize == 0 { return }
    let pointwise = isPointwiseGroup(gg)
    let tasks = batchSize * groups
    withSingleThreadedBLAS { threads in
        let workers = min(threads, tasks)
        let columnSize = pointwise ? 0 : patch * spatial
        growScratch(&scratch, count: workers * columnSize)
        input.withUnsafeBufferPointer { pin in
            weight.withUnsafeBufferPointer { pw in
                output.withUnsafeMutableBufferPointer { pout in
                    scratch.withUnsafeMutableBufferPointer { ps in
                        let x = SharedConstPointer(base: pin.baseAddress!), w = SharedConstPointer(base: pw.baseAddress!)
                        let y = SharedPointer(base: pout.baseAddress!)
                        let columns = SharedPointer(base: ps.baseAddress ?? y.base)
                        forEachTask(tasks, workers: workers) { task, worker in
                            let n = task / groups, group = task % groups
                            let cols = columns.base + worker * columnSize              // [Pg, S]
                            let image = x.base + n * g.inputSize + group * gg.inputSize   // [Cg, H, W]
                            let b: UnsafePointer<Float>
                            if pointwise {
                                b = image
                            } else {
                                im2colImage(image, geometry: gg, into: cols)
                                b = UnsafePointer(cols)
                            }
                            let out = y.base + n * outputSize + group * groupOutputs * spatial   // [Og, S]
                            uncheckedSGEMM(transposeA: false, transposeB: false, m: groupOutputs, n: spatial, k: patch,
                                           alpha: 1, a: w.base + group * groupOutputs * patch, lda: patch, b: b, ldb: spatial,
                                           beta: 0, c: out, ldc: spatial)
                            if let bias {
                                for o in 0..<groupOutputs {
                                    let shift = bias[group * groupOutputs + o], plane = out + o * spatial
                                    for i in 0..<spatial { plane[i] += shift }
                                }
                            }
                        }
                    }
                }
            }
        }
    }
}

/// The backward pass of `groupedConvolutionForward`: `∂W_gr += Σ_n ∂Y_{n,gr} · cols(x_{n,gr})ᵀ`
/// and, optionally, `∂x_{n,gr} = col2im(W_grᵀ · ∂Y_{n,gr})`.
///
/// - Parameters:
///   - outputGradient: `∂Y`, `[N, Cout, Ho, Wo]`.
///   - input: `x`, `[N, Cin, H, W]`, as given to the forward pass.
///   - weight: `W`, `[Cout, Cin/g, kh, kw]`.
///   - weightGradient: like `weight`; the gradient is ADDED to it.
///   - computesInputGradient: whether to compute `∂x`.
///   - inputGradient: when `computesInputGradient`, resized to `[N, Cin, H, W]` and overwritten
///     with `∂x`; untouched otherwise.
///   - scratch: per-worker buffers and the `∂W` partials; grown as needed.
func groupedConvolutionBackward(outputGradient: [Float], input: [Float], batchSize: Int, geometry g: ConvolutionGeometry,
                                groups: Int, weight: [Float], outputChannels: Int, weightGradient: inout [Float],
                                computesInputGradient: Bool, into inputGradient: inout [Float],
                                scratch: inout [Float]) {
    precondition(groups > 0 && g.channels % groups == 0 && outputChannels % groups == 0,
                 "groupedConvolutionBackward: groups \(groups) must divide Cin \(g.channels) and Cout \(outputChannels)")
    let gg = groupGeometry(g, groups: groups)
    let patch = gg.patchSize, spatial = g.outputHeight * g.outputWidth, groupOutputs = outputChannels / groups
    let outputSize = outputChannels * spatial
    precondition(batchSize >= 0, "groupedConvolutionBackward: N \(batchSize)")
    precondition(outputGradient.count == batchSize * outputSize,
                 "groupedConvolutionBackward: output gradient has \(outputGradient.count) elements, expected N·Cout·S = \(batchSize)·\(outputSize)")
    precondition(input.count == batchSize * g.inputSize,
                 "groupedConvolutionBackward: input has \(input.count) elements, expected N·C·H·W = \(batchSize)·\(g.inputSize)")
    precondition(weight.count == outputChannels * patch && weightGradient.count == weight.count,
                 "groupedConvolutionBackward: weight \(weight.count), weight gradient \(weightGradient.count), expected Cout·Pg = \(outputChannels)·\(patch)")
    if computesInputGradient { prepare(&inputGradient, count: batchSize * g.inputSize) }
    if batchSize == 0 { return }
    let pointwise = isPointwiseGroup(gg)
    let parts = min(weightGradientGroups, batchSize), weightSize = outputChannels * patch
    let columnSize = pointwise ? 0 : patch * spatial
    let tasks = parts * groups
    withSingleThreadedBLAS { threads in
        let workers = min(threads, tasks)
        let perWorker = columnSize * (computesInputGradient ? 2 : 1)
        growScratch(&scratch, count: workers * perWorker + parts * weightSize)
        outputGradient.withUnsafeBufferPointer { pg in
            input.withUnsafeBufferPointer { pin in
                weight.withUnsafeBufferPointer { pw in
                    inputGradient.withUnsafeMutableBufferPointer { pdx in
                        scratch.withUnsafeMutableBufferPointer { ps in
                            let dy = SharedConstPointer(base: pg.baseAddress!), x = SharedConstPointer(base: pin.baseAddress!)
                            let w = SharedConstPointer(base: pw.baseAddress!), s = SharedPointer(base: ps.baseAddress!)
                            let dx = computesInputGradient ? SharedPointer(base: pdx.baseAddress!) : nil
                            forEachTask(tasks, workers: workers) { task, worker in
                                let part = task / groups, group = task % groups
                                let cols = s.base + worker * perWorker, columnGradient = cols + columnSize
                                let groupWeight = w.base + group * groupOutputs * patch                      // [Og, Pg]
                                let partial = s.base + workers * perWorker + part * weightSize + group * groupOutputs * patch
                                let images = (batchSize * part / parts)..<(batchSize * (part + 1) / parts)
                                for n in images {
                                    let image = x.base + n * g.inputSize + group * gg.inputSize
                                    let b: UnsafePointer<Float>
                                    if pointwise {
                                        b = image
                                    } else {
                                        im2colImage(image, geometry: gg, into: cols)
                                        b = UnsafePointer(cols)
                                    }
                                    let gradient = dy.base + n * outputSize + group * groupOutputs * spatial   // [Og, S]
                                    uncheckedSGEMM(transposeA: false, transposeB: true, m: groupOutputs, n: patch, k: spatial,
                                                   alpha: 1, a: gradient, lda: spatial, b: b, ldb: spatial,
                                                   beta: n == images.lowerBound ? 0 : 1, c: partial, ldc: patch)
                                    guard let dx else { continue }
                                    let imageGradient = dx.base + n * g.inputSize + group * gg.inputSize
                                    uncheckedSGEMM(transposeA: true, transposeB: false, m: patch, n: spatial, k: groupOutputs,
                                                   alpha: 1, a: groupWeight, lda: patch, b: gradient, ldb: spatial,
                                                   beta: 0, c: pointwise ? imageGradient : columnGradient, ldc: spatial)
                                    if !pointwise { col2imImage(columnGradient, geometry: gg, into: imageGradient) }
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
                    let partial = partials + part * weightSize
                    for i in 0..<weightSize { dw[i] += partial[i] }
                }
            }
        }
    }
}
