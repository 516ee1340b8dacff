// The convolution layer's kernels, one image at a time: im2col of one image into a per-worker
// column buffer that stays in cache, then GEMMs whose output is the image's own `[Cout, Ho·Wo]`
// slice of the `[N, Cout, Ho, Wo]` result (no `[Cout, N·Ho·Wo]` intermediate and no axis swap).
// Images are spread over `BLAS.threadCount` Swift workers (each takes the next image, or the next
// group of images in the backward pass), each issuing single-threaded GEMMs. When a same-padded
// image's column matrix is large (64 channels on 56×56: 7.2 MB), it is built and consumed in
// chunks of output positions that stay in L2 (`samePaddedChunkLength`): one GEMM per chunk into
// the chunk's columns of the output (`ldc = S`), ∂W accumulated chunk by chunk, each chunk's
// ∂columns folded into ∂x before the next.
//
// Determinism: the weight gradient is summed over a fixed partition of the batch into at most
// `weightGradientGroups` groups (one partial per group, then the partials in group order), and
// within an image over chunks that depend only on the geometry, so the result does not depend
// on the worker count; every GEMM runs on one OpenBLAS thread.
//
// Legend: `N` batch, `Cin`/`Cout` channels, `P = Cin·kh·kw` patch size, `S = Ho·Wo` output pixels.
// The bias gradient is the per-channel sum of `∂Y` over `[N, Cout, S]` (`channelSums`).
import TensorCore

/// The most weight-gradient partials `convolutionBackward` keeps (`[Cout, P]` each).
let weightGradientGroups = 8

/// Whether the geometry is a 1×1, stride-1, unpadded window, whose im2col matrix is the image itself.
@inline(__always)
private func isPointwise(_ g: ConvolutionGeometry) -> Bool {
    g.kernelHeight == 1 && g.kernelWidth == 1 && g.strideHeight == 1 && g.strideWidth == 1
        && g.paddingHeight == 0 && g.paddingWidth == 0
}

/// Gives a scratch buffer at least `count` elements, contents unspecified; it only grows, so the
/// forward and backward passes can share one without reallocating (and page-faulting) each call.
@inline(__always)
func growScratch(_ buffer: inout [Float], count: Int) {
    if buffer.count < count {
        buffer = [Float](unsafeUninitializedCapacity: count) { _, initialized in initialized = count }
    }
}

/// For window column `kj`: the shift `d = kj − pw` (input column `x·sw + d` for output column `x`)
/// and the output columns `first ..< last`, those with `0 ≤ x·sw + d < W`.
@inline(__always)
private func validColumns(_ g: ConvolutionGeometry, kernelColumn kj: Int) -> (shift: Int, first: Int, last: Int) {
    let wo = g.outputWidth, shift = kj - g.paddingWidth
    let first = min(wo, max(0, (-shift + g.strideWidth - 1) / g.strideWidth))
    let last = max(first, min(wo, (g.width - shift + g.strideWidth - 1) / g.strideWidth))
    return (shift, first, last)
}

/// im2col of one image: `columns[(c·kh + i)·kw + j, y·Wo + x] = image[c, y·sh − ph + i, x·sw − pw + j]`
/// (zero outside the image). `image` is `[Cin, H, W]`, `columns` `[P, S]`, every element written.
/// For stride 1 each row segment is a shifted copy of an input row with zero edges.
@inline(__always)
func im2colImage(_ image: UnsafePointer<Float>, geometry g: ConvolutionGeometry, into columns: UnsafeMutablePointer<Float>) {
    if isSamePadded(g) { return im2colSamePadded(image, geometry: g, positions: 0..<g.height * g.width, into: columns) }
    let ho = g.outputHeight, wo = g.outputWidth, spatial = ho * wo
    for c in 0..<g.channels {
        let plane = image + c * g.height * g.width
        for ki in 0..<g.kernelHeight {
            for kj in 0..<g.kernelWidth {
                let row = columns + ((c * g.kernelHeight + ki) * g.kernelWidth + kj) * spatial
                let (shift, first, last) = validColumns(g, kernelColumn: kj)
                for oy in 0..<ho {
                    let iy = oy * g.strideHeight - g.paddingHeight + ki
                    let out = row + oy * wo
                    if iy < 0 || iy >= g.height {
                        out.update(repeating: 0, count: wo)
                        continue
                    }
                    let inRow = plane + iy * g.width
                    if first > 0 { out.update(repeating: 0, count: first) }
                    if g.strideWidth == 1 {
                        (out + first).update(from: inRow + first + shift, count: last - first)
                    } else {
                        let sw = g.strideWidth
                        for ox in first..<last { out[ox] = inRow[ox * sw + shift] }
                    }
                    if last < wo { (out + last).update(repeating: 0, count: wo - last) }
                }
            }
        }
    }
}

/// col2im of one image: `image[c, y·sh − ph + i, x·sw − pw + j] += columns[(c·kh + i)·kw + j, y·Wo + x]`
/// over every window, after setting `image` (`[Cin, H, W]`) to zero. `columns` is `[P, S]`; its
/// entries that fall outside the image may be overwritten with zeros.
@inline(__always)
func col2imImage(_ columns: UnsafeMutablePointer<Float>, geometry g: ConvolutionGeometry, into image: UnsafeMutablePointer<Float>) {
    image.update(repeating: 0, count: g.inputSize)
    if isSamePadded(g) { return col2imSamePadded(columns, geometry: g, positions: 0..<g.height * g.width, into: image) }
    let ho = g.outputHeight, wo = g.outputWidth, spatial = ho * wo
    for c in 0..<g.channels {
        let plane = image + c * g.height * g.width
        for ki in 0..<g.kernelHeight {
            for kj in 0..<g.kernelWidth {
                let row = columns + ((c * g.kernelHeight + ki) * g.kernelWidth + kj) * spatial
                let (shift, first, last) = validColumns(g, kernelColumn: kj)
                if first == last { continue }
                for oy in 0..<ho {
                    let iy = oy * g.strideHeight - g.paddingHeight + ki
                    if iy < 0 || iy >= g.height { continue }
                    let inRow = plane + iy * g.width, colRow = row + oy * wo
                    if g.strideWidth == 1 {
                        for ox in first..<last { inRow[ox + shift] += colRow[ox] }
                    } else {
                        let sw = g.strideWidth
                        for ox in first..<last { inRow[ox * sw + shift] += colRow[ox] }
                    }
                }
            }
        }
    }
}

/// Whether the window has stride 1 and keeps the image size (`Ho = H`, `Wo = W`, e.g. 3×3 with
/// padding 1). Then im2col row `(c, i, j)` is the input plane shifted by the flat offset
/// `d = (i − ph)·W + (j − pw)`: `columns[row, p] = plane[p + d]`, except where the shift leaves the
/// image (rows above or below it, and the `|j − pw|` columns that would wrap to the next or
/// previous row), which are zero.
@inline(__always)
private func isSamePadded(_ g: ConvolutionGeometry) -> Bool {
    g.strideHeight == 1 && g.strideWidth == 1 && g.outputHeight == g.height && g.outputWidth == g.width
}

/// For a same-padded geometry and window offset `(i, j)`: the flat shift `d` and the range of
/// output positions `p` whose row `p / W` lies inside the image after the shift (wrapped columns
/// within that range still need masking).
@inline(__always)
private func shiftedRange(_ g: ConvolutionGeometry, _ i: Int, _ j: Int) -> (shift: Int, range: Range<Int>) {
    let w = g.width, planeSize = g.height * w
    let dy = i - g.paddingHeight, dx = j - g.paddingWidth
    let d = dy * w + dx
    // Clamped to the plane: on planes smaller than the window (a 3×3 on 1×1) `−d` can exceed it.
    let lower = min(planeSize, max(max(0, -dy) * w, -d)), upper = min(min(g.height, g.height - dy) * w, planeSize - d)
    return (d, lower..<max(lower, upper))
}

/// Calls `body(y·W + x)` for every position in `range` whose column `x` wraps when shifted by `dx`
/// (`x < −dx` or `x ≥ W − dx`).
@inline(__always)
private func forEachWrappedColumn(_ g: ConvolutionGeometry, dx: Int, in range: Range<Int>, _ body: (Int) -> Void) {
    if dx == 0 || range.isEmpty { return }
    let w = g.width
    let columns = dx < 0 ? 0..<min(w, -dx) : max(0, w - dx)..<w
    for y in (range.lowerBound / w)...((range.upperBound - 1) / w) {
        for x in columns {
            let p = y * w + x
            if range.contains(p) { body(p) }
        }
    }
}

/// `im2colImage` for a same-padded geometry, restricted to the output positions `positions`
/// (a range of `0 ..< H·W`): writes the `[P, L]` matrix `columns[row, p − p₀]` for `p` in
/// `positions = p₀ ..< p₀ + L`, one contiguous shifted copy per row, then zeros. The whole image
/// is `positions = 0 ..< H·W`.
@inline(__always)
private func im2colSamePadded(_ image: UnsafePointer<Float>, geometry g: ConvolutionGeometry, positions: Range<Int>,
                              into columns: UnsafeMutablePointer<Float>) {
    let planeSize = g.height * g.width, length = positions.count, first = positions.lowerBound
    for c in 0..<g.channels {
        let plane = image + c * planeSize
        for i in 0..<g.kernelHeight {
            for j in 0..<g.kernelWidth {
                let row = columns + ((c * g.kernelHeight + i) * g.kernelWidth + j) * length
                let (d, shifted) = shiftedRange(g, i, j)
                let range = shifted.clamped(to: positions)
                row.update(repeating: 0, count: range.lowerBound - first)
                (row + (range.lowerBound - first)).update(from: plane + range.lowerBound + d, count: range.count)
                (row + (range.upperBound - first)).update(repeating: 0, count: positions.upperBound - range.upperBound)
                forEachWrappedColumn(g, dx: j - g.paddingWidth, in: range) { row[$0 - first] = 0 }
            }
        }
    }
}

/// `col2imImage` for a same-padded geometry, restricted to the output positions `positions`
/// (`columns` is `[P, L]` as `im2colSamePadded` writes it for the same range): ADDS the chunk's
/// windows into `image`, shifted adds of whole rows, after zeroing each row's wrapped entries in
/// `columns`. Calling it for consecutive chunks covering `0 ..< H·W` on a zeroed image gives the
/// whole col2im. For `kw = 3` the three rows of one kernel row `i` are added in one pass
/// (`plane[q] += Σ_j row_j[q − d_j]` where all three apply, single terms at the ends), otherwise
/// one pass per row.
@inline(__always)
private func col2imSamePadded(_ columns: UnsafeMutablePointer<Float>, geometry g: ConvolutionGeometry,
                              positions: Range<Int>, into image: UnsafeMutablePointer<Float>) {
    let planeSize = g.height * g.width, length = positions.count, first = positions.lowerBound
    for c in 0..<g.channels {
        let plane = image + c * planeSize
        for i in 0..<g.kernelHeight {
            let rows = columns + (c * g.kernelHeight + i) * g.kernelWidth * length
            for j in 0..<g.kernelWidth {
                let range = shiftedRange(g, i, j).range.clamped(to: positions)
                let row = rows + j * length
                forEachWrappedColumn(g, dx: j - g.paddingWidth, in: range) { row[$0 - first] = 0 }
            }
            if g.kernelWidth == 3 {
                let (d0, s0) = shiftedRange(g, i, 0), (d1, s1) = shiftedRange(g, i, 1), (d2, s2) = shiftedRange(g, i, 2)
                let r0 = s0.clamped(to: positions), r1 = s1.clamped(to: positions), r2 = s2.clamped(to: positions)
                // Indexed by the position p (row_j[p − p₀] is the chunk's entry): offsets by −p₀.
                let row0 = rows - first, row1 = rows + length - first, row2 = rows + 2 * length - first
                // Target ranges q = p + d_j, and where all three overlap.
                let q0 = (r0.lowerBound + d0)..<(r0.upperBound + d0), q1 = (r1.lowerBound + d1)..<(r1.upperBound + d1)
                let q2 = (r2.lowerBound + d2)..<(r2.upperBound + d2)
                let lower = max(q0.lowerBound, q1.lowerBound, q2.lowerBound)
                let upper = max(lower, min(q0.upperBound, q1.upperBound, q2.upperBound))
                // Explicit 16-lane SIMD: the compiler's vectorizer would need runtime alias checks.
                let a0 = UnsafeRawPointer(row0 - d0), a1 = UnsafeRawPointer(row1 - d1), a2 = UnsafeRawPointer(row2 - d2)
                let target = UnsafeMutableRawPointer(plane)
                var q = lower
                while q + 16 <= upper {
                    let offset = q * MemoryLayout<Float>.stride
                    let sum = target.loadUnaligned(fromByteOffset: offset, as: SIMD16<Float>.self)
                        + (a0.loadUnaligned(fromByteOffset: offset, as: SIMD16<Float>.self)
                           + a1.loadUnaligned(fromByteOffset: offset, as: SIMD16<Float>.self)
                           + a2.loadUnaligned(fromByteOffset: offset, as: SIMD16<Float>.self))
                    target.storeBytes(of: sum, toByteOffset: offset, as: SIMD16<Float>.self)
                    q += 16
                }
                while q < upper { plane[q] += (row0[q - d0] + row1[q - d1]) + row2[q - d2]; q += 1 }
                @inline(__always) func ends(_ row: UnsafeMutablePointer<Float>, _ d: Int, _ targets: Range<Int>) {
                    for q in targets.lowerBound..<max(targets.lowerBound, min(lower, targets.upperBound)) { plane[q] += row[q - d] }
                    for q in min(targets.upperBound, max(upper, targets.lowerBound))..<targets.upperBound { plane[q] += row[q - d] }
                }
                ends(row0, d0, q0)
                ends(row1, d1, q1)
                ends(row2, d2, q2)
            } else {
                for j in 0..<g.kernelWidth {
                    let (d, shifted) = shiftedRange(g, i, j)
                    let row = rows + j * length
                    for p in shifted.clamped(to: positions) { plane[p + d] += row[p - first] }
                }
            }
        }
    }
}

/// The bytes one column chunk of the same-padded path may take (`[P, L]` floats; the backward
/// pass has two, the chunk and its gradient): small enough to stay in a core's L2 cache
/// (1 MiB on the measured AMD EPYC) between the im2col copy and the GEMM that reads it, instead
/// of a whole image's `[P, S]` (7.2 MB at 64 channels on 56×56) round-tripping through L3/DRAM.
let samePaddedChunkBytes = 512 * 1024

/// Whole-image column matrices up to this size are not chunked: chunks of a large patch `P`
/// would be only a few positions wide, and such skinny GEMMs (and the `∂W` partial re-read per
/// chunk) cost more than the cache misses they save (measured: 128 channels on 28×28, 3.6 MB,
/// ran slower in chunks of 112 positions).
let samePaddedChunkingThreshold = 4 * 1024 * 1024

/// The output positions per column chunk of a same-padded geometry: the whole image `S` when
/// its `[P, S]` column matrix takes at most `samePaddedChunkingThreshold` bytes, otherwise as
/// many as fit in `samePaddedChunkBytes`, a multiple of 16, at least 64 (at most `S`). Depends
/// only on the geometry (never on the worker count), so the `∂W` summation order is fixed.
func samePaddedChunkLength(_ g: ConvolutionGeometry) -> Int {
    let spatial = g.outputHeight * g.outputWidth, rowBytes = MemoryLayout<Float>.stride * g.patchSize
    if rowBytes * spatial <= samePaddedChunkingThreshold { return spatial }
    return min(spatial, max(64, samePaddedChunkBytes / rowBytes / 16 * 16))
}

/// The column chunks of one image: `(0 ..< S)` split into consecutive ranges of `length`
/// positions (the last one shorter).
@inline(__always)
private func positionChunks(spatial: Int, length: Int) -> [Range<Int>] {
    stride(from: 0, to: spatial, by: length).map { $0..<min(spatial, $0 + length) }
}

/// The forward pass of a 2-D convolution (cross-correlation) over an image batch, one image at a
/// time: `Y_n = W · cols(x_n) (+ b)`.
///
/// Concretely, `y[n, o, p] = b[o] + Σ_q W[o, q] · cols(x_n)[q, p]`, with `cols(x_n)` the im2col
/// matrix of image `n` (`[P, S]`, as `im2colImage` writes it). A same-padded window (stride 1,
/// `Ho = H`, `Wo = W`) builds `cols(x_n)` in chunks of `chunkLength` output positions
/// (`[P, L]`, cache-resident) and issues one GEMM per chunk into the chunk's columns of `Y_n`.
/// - Parameters:
///   - input: `x`, `[N, Cin, H, W]`.
///   - weight: `W`, `[Cout, P]` (a `[Cout, Cin, kh, kw]` tensor's storage).
///   - bias: `b`, `[Cout]`, or `nil`.
///   - output: resized to `[N, Cout, Ho, Wo]` if needed and overwritten.
///   - scratch: per-worker column buffers; grown as needed, contents unspecified afterwards.
///   - chunkLength: output positions per column chunk on the same-padded path (> 0; `nil`:
///     `samePaddedChunkLength(g)`); tests force small chunks with it.
///
/// The GEMMs are `cblas_sgemm` calls, one per image (or chunk), on one OpenBLAS thread each.
func convolutionForward(_ input: [Float], batchSize: Int, geometry g: ConvolutionGeometry,
                        weight: [Float], outputChannels: Int, bias: [Float]?,
                        into output: inout [Float], scratch: inout [Float], chunkLength: Int? = nil) {
    let patch = g.patchSize, spatial = g.outputHeight * g.outputWidth
    precondition(batchSize >= 0 && outputChannels > 0, "convolutionForward: N \(batchSize), Cout \(outputChannels)")
    precondition(input.count == batchSize * g.inputSize,
                 "convolutionForward: input has \(input.count) elements, expected N·C·H·W = \(batchSize)·\(g.inputSize)")
    precondition(weight.count == outputChannels * patch,
                 "convolutionForward: weight has \(weight.count) elements, expected Cout·P = \(outputChannels)·\(patch)")
    if let bias { precondition(bias.count == outputChannels, "convolutionForward: bias \(bias.count), Cout \(outputChannels)") }
    precondition(chunkLength.map { $0 > 0 } ?? true, "convolutionForward: chunk length \(chunkLength ?? 0)")
    let outputSize = outputChannels * spatial
    prepare(&output, count: batchSize * outputSize)
    if batchSize == 0 { return }
    let pointwise = isPointwise(g), chunked = !pointwise && isSamePadded(g)
    let length = chunked ? min(spatial, chunkLength ?? samePaddedChunkLength(g)) : spatial
    let chunks = positionChunks(spatial: spatial, length: length)
    let columnSize = pointwise ? 0 : patch * length
    withSingleThreadedBLAS { threads in
        let workers = min(threads, batchSize)
        growScratch(&scratch, count: workers * columnSize)
        input.withUnsafeBufferPointer { pin in
            weight.withUnsafeBufferPointer { pw in
                output.withUnsafeMutableBufferPointer { pout in
                    scratch.withUnsafeMutableBufferPointer { ps in
                        let x = SharedConstPointer(base: pin.baseAddress!), w = SharedConstPointer(base: pw.baseAddress!)
                        let y = SharedPointer(base: pout.baseAddress!)
                        let columns = SharedPointer(base: ps.baseAddress ?? y.base)
                        forEachTask(batchSize, workers: workers) { n, worker in
                            let cols = columns.base + worker * columnSize   // [P, L]
                            let image = x.base + n * g.inputSize
                            let out = y.base + n * outputSize                  // [Cout, S]
                            if chunked {
                                for positions in chunks {
                                    im2colSamePadded(image, geometry: g, positions: positions, into: cols)
                                    uncheckedSGEMM(transposeA: false, transposeB: false, m: outputChannels, n: positions.count,
                                                   k: patch, alpha: 1, a: w.base, lda: patch, b: cols, ldb: positions.count,
                                                   beta: 0, c: out + positions.lowerBound, ldc: spatial)
                                }
                            } else {
                                let b: UnsafePointer<Float>
                                if pointwise {
                                    b = image
                                } else {
                                    im2colImage(image, geometry: g, into: cols)
                                    b = UnsafePointer(cols)
                                }
                                uncheckedSGEMM(transposeA: false, transposeB: false, m: outputChannels, n: spatial, k: patch,
                                               alpha: 1, a: w.base, lda: patch, b: b, ldb: spatial,
                                               beta: 0, c: out, ldc: spatial)
                            }
                            if let bias {
                                for o in 0..<outputChannels {
                                    let shift = bias[o], plane = out + o * spatial
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

/// The backward pass of `convolutionForward`, one image at a time: `∂W += Σ_n ∂Y_n · cols(x_n)ᵀ`
/// and, optionally, `∂x_n = col2im(Wᵀ · ∂Y_n)`. The im2col matrix of each image is recomputed
/// (cheaper than keeping the whole batch's `[P, N·S]` matrix between the passes). A same-padded
/// window works in chunks of `chunkLength` output positions, as the forward pass: per chunk its
/// im2col, `∂W` accumulated over the chunk, then `∂cols = Wᵀ · ∂Y` of the chunk folded into `∂x_n`.
///
/// - Parameters:
///   - outputGradient: `∂Y`, `[N, Cout, Ho, Wo]`.
///   - input: `x`, `[N, Cin, H, W]`, as given to the forward pass.
///   - weight: `W`, `[Cout, P]`.
///   - weightGradient: `[Cout, P]`; the gradient is ADDED to it.
///   - computesInputGradient: whether to compute `∂x` (skipping its GEMM and col2im otherwise).
///   - inputGradient: when `computesInputGradient`, resized to `[N, Cin, H, W]` if needed and
///     overwritten with `∂x`; untouched otherwise.
///   - scratch: per-worker buffers; grown as needed, contents unspecified afterwards.
///   - chunkLength: output positions per column chunk on the same-padded path (> 0; `nil`:
///     `samePaddedChunkLength(g)`).
///
/// The weight gradient is summed over a fixed partition of the batch (and, within an image, over
/// the fixed chunks), so it does not depend on the thread count. The GEMMs are `cblas_sgemm`
/// calls on one OpenBLAS thread each.
func convolutionBackward(outputGradient: [Float], input: [Float], batchSize: Int, geometry g: ConvolutionGeometry,
                         weight: [Float], outputChannels: Int, weightGradient: inout [Float],
                         computesInputGradient: Bool, into inputGradient: inout [Float],
                         scratch: inout [Float], chunkLength: Int? = nil) {
    let patch = g.patchSize, spatial = g.outputHeight * g.outputWidth
    let outputSize = outputChannels * spatial
    precondition(batchSize >= 0 && outputChannels > 0, "convolutionBackward: N \(batchSize), Cout \(outputChannels)")
    precondition(outputGradient.count == batchSize * outputSize,
                 "convolutionBackward: output gradient has \(outputGradient.count) elements, expected N·Cout·S = \(batchSize)·\(outputSize)")
    precondition(input.count == batchSize * g.inputSize,
                 "convolutionBackward: input has \(input.count) elements, expected N·C·H·W = \(batchSize)·\(g.inputSize)")
    precondition(weight.count == outputChannels * patch && weightGradient.count == weight.count,
                 "convolutionBackward: weight \(weight.count), weight gradient \(weightGradient.count), expected Cout·P = \(outputChannels)·\(patch)")
    precondition(chunkLength.map { $0 > 0 } ?? true, "convolutionBackward: chunk length \(chunkLength ?? 0)")
    if computesInputGradient { prepare(&inputGradient, count: batchSize * g.inputSize) }
    if batchSize == 0 { return }
    let pointwise = isPointwise(g), chunked = !pointwise && isSamePadded(g)
    let length = chunked ? min(spatial, chunkLength ?? samePaddedChunkLength(g)) : spatial
    let chunks = positionChunks(spatial: spatial, length: length)
    let groups = min(weightGradientGroups, batchSize)
    let weightSize = outputChannels * patch
    let columnSize = pointwise ? 0 : patch * length
    withSingleThreadedBLAS { threads in
        let workers = min(threads, groups)
        // Per worker: cols [P, L] and ∂cols [P, L]; then one ∂W partial [Cout, P] per group.
        let perWorker = columnSize * (computesInputGradient ? 2 : 1)
        growScratch(&scratch, count: workers * perWorker + groups * weightSize)
        outputGradient.withUnsafeBufferPointer { pg in
            input.withUnsafeBufferPointer { pin in
                weight.withUnsafeBufferPointer { pw in
                    inputGradient.withUnsafeMutableBufferPointer { pdx in
                        scratch.withUnsafeMutableBufferPointer { ps in
                            let dy = SharedConstPointer(base: pg.baseAddress!), x = SharedConstPointer(base: pin.baseAddress!)
                            let w = SharedConstPointer(base: pw.baseAddress!), s = SharedPointer(base: ps.baseAddress!)
                            let dx = computesInputGradient ? SharedPointer(base: pdx.baseAddress!) : nil
                            forEachTask(groups, workers: workers) { group, worker in
                                let cols = s.base + worker * perWorker, columnGradient = cols + columnSize
                                let partial = s.base + workers * perWorker + group * weightSize   // [Cout, P]
                                let images = (batchSize * group / groups)..<(batchSize * (group + 1) / groups)
                                for n in images {
                                    let image = x.base + n * g.inputSize
                                    let gradient = dy.base + n * outputSize                      // ∂Y_n [Cout, S]
                                    if chunked {
                                        let imageGradient = dx.map { $0.base + n * g.inputSize }
                                        imageGradient?.update(repeating: 0, count: g.inputSize)
                                        for positions in chunks {
                                            let count = positions.count, chunkGradient = gradient + positions.lowerBound
                                            im2colSamePadded(image, geometry: g, positions: positions, into: cols)
                                            // ∂W_group (+)= ∂Y_n[:, chunk] · cols_chunkᵀ
                                            let first = n == images.lowerBound && positions.lowerBound == 0
                                            uncheckedSGEMM(transposeA: false, transposeB: true, m: outputChannels, n: patch, k: count,
                                                           alpha: 1, a: chunkGradient, lda: spatial, b: cols, ldb: count,
                                                           beta: first ? 0 : 1, c: partial, ldc: patch)
                                            guard let imageGradient else { continue }
                                            // ∂cols_chunk = Wᵀ · ∂Y_n[:, chunk], folded into ∂x_n.
                                            uncheckedSGEMM(transposeA: true, transposeB: false, m: patch, n: count, k: outputChannels,
                                                           alpha: 1, a: w.base, lda: patch, b: chunkGradient, ldb: spatial,
                                                           beta: 0, c: columnGradient, ldc: count)
                                            col2imSamePadded(columnGradient, geometry: g, positions: positions, into: imageGradient)
                                        }
                                        continue
                                    }
                                    let b: UnsafePointer<Float>
                                    if pointwise {
                                        b = image
                                    } else {
                                        im2colImage(image, geometry: g, into: cols)
                                        b = UnsafePointer(cols)
                                    }
                                    // ∂W_group (+)= ∂Y_n · cols_nᵀ
                                    uncheckedSGEMM(transposeA: false, transposeB: true, m: outputChannels, n: patch, k: spatial,
                                                   alpha: 1, a: gradient, lda: spatial, b: b, ldb: spatial,
                                                   beta: n == images.lowerBound ? 0 : 1, c: partial, ldc: patch)
                                    guard let dx else { continue }
                                    let imageGradient = dx.base + n * g.inputSize
                                    // ∂cols_n = Wᵀ · ∂Y_n, folded into ∂x_n (a 1×1 window writes ∂x_n directly).
                                    uncheckedSGEMM(transposeA: true, transposeB: false, m: patch, n: spatial, k: outputChannels,
                                                   alpha: 1, a: w.base, lda: patch, b: gradient, ldb: spatial,
                                                   beta: 0, c: pointwise ? imageGradient : columnGradient, ldc: spatial)
                                    if !pointwise { col2imImage(columnGradient, geometry: g, into: imageGradient) }
                                }
                            }
                        }
                    }
                }
            }
        }
        // ∂W += Σ_group partial, in group order.
        scratch.withUnsafeBufferPointer { ps in
            weightGradient.withUnsafeMutableBufferPointer { pdw in
                let partials = ps.baseAddress! + workers * perWorker, dw = pdw.baseAddress!
                for group in 0..<groups {
                    let partial = partials + group * weightSize
                    for i in 0..<weightSize { dw[i] += partial[i] }
                }
            }
        }
    }
}

/// Issues exactly the GEMMs of `convolutionForward` followed by `convolutionBackward` with the
/// input gradient — the same shapes, the same split of images over workers, one OpenBLAS thread
/// each — on a stand-in im2col matrix, and nothing else: the floor a benchmark compares the
/// convolution layer with.
/// - Parameters:
///   - columns: the stand-in `cols(x_n)`, `[P, S]`, used for every image.
///   - weight: `[Cout, P]`.
///   - output: resized to `[N, Cout, S]`; receives `Y_n` (then read as `∂Y_n`).
///   - scratch: resized as needed; receives `∂cols` and the `∂W` partials.
package func convolutionGEMMsOnly(batchSize: Int, geometry g: ConvolutionGeometry, weight: [Float], outputChannels: Int,
                                  columns: [Float], output: inout [Float], scratch: inout [Float]) {
    let patch = g.patchSize, spatial = g.outputHeight * g.outputWidth, outputSize = outputChannels * spatial
    precondition(batchSize > 0 && weight.count == outputChannels * patch && columns.count == patch * spatial,
                 "convolutionGEMMsOnly: N \(batchSize), weight \(weight.count), columns \(columns.count), Cout \(outputChannels), P \(patch), S \(spatial)")
    prepare(&output, count: batchSize * outputSize)
    let groups = min(weightGradientGroups, batchSize), weightSize = outputChannels * patch
    withSingleThreadedBLAS { threads in
        let workers = min(threads, batchSize)
        growScratch(&scratch, count: workers * patch * spatial + groups * weightSize)
        columns.withUnsafeBufferPointer { pc in
            weight.withUnsafeBufferPointer { pw in
                output.withUnsafeMutableBufferPointer { pout in
                    scratch.withUnsafeMutableBufferPointer { ps in
                        let cols = SharedConstPointer(base: pc.baseAddress!), w = SharedConstPointer(base: pw.baseAddress!)
                        let y = SharedPointer(base: pout.baseAddress!), s = SharedPointer(base: ps.baseAddress!)
                        forEachTask(batchSize, workers: workers) { n, _ in
                            do {
                                uncheckedSGEMM(transposeA: false, transposeB: false, m: outputChannels, n: spatial, k: patch,
                                               alpha: 1, a: w.base, lda: patch, b: cols.base, ldb: spatial,
                                               beta: 0, c: y.base + n * outputSize, ldc: spatial)
                            }
                        }
                        let backwardWorkers = min(threads, groups)
                        forEachTask(groups, workers: backwardWorkers) { group, worker in
                            let columnGradient = s.base + worker * patch * spatial
                            let partial = s.base + workers * patch * spatial + group * weightSize
                            let images = (batchSize * group / groups)..<(batchSize * (group + 1) / groups)
                            for n in images {
                                let gradient = UnsafePointer(y.base + n * outputSize)
                                uncheckedSGEMM(transposeA: false, transposeB: true, m: outputChannels, n: patch, k: spatial,
                                               alpha: 1, a: gradient, lda: spatial, b: cols.base, ldb: spatial,
                                               beta: n == images.lowerBound ? 0 : 1, c: partial, ldc: patch)
                                uncheckedSGEMM(transposeA: true, transposeB: false, m: patch, n: spatial, k: outputChannels,
                                               alpha: 1, a: w.base, lda: patch, b: gradient, ldb: spatial,
                                               beta: 0, c: columnGradient, ldc: spatial)
                            }
                        }
                    }
                }
            }
        }
    }
}

// MARK: - Bias gradient

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

/// Per-channel sums of a `[outer, C, inner]` tensor, accumulated in `Double`: `Σ_{o,i} x[o, c, i]`.
/// - Returns: `[C]`.
func channelSums(_ x: [Float], outer: Int, channels: Int, inner: Int) -> [Double] {
    checkView("channelSums", x.count, outer: outer, channels: channels, inner: inner)
    var sums = [Double](repeating: 0, count: channels)
    if x.isEmpty { return sums }
    x.withUnsafeBufferPointer { px in
        let base = px.baseAddress!
        forEachChannelSlice(outer: outer, channels: channels, inner: inner) { c, offset in
            sums[c] += doubleSum(base + offset, inner)
        }
    }
    return sums
}
