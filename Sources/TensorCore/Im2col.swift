/// The geometry of a 2-D convolution (or pooling) window over an NCHW image batch.
public struct ConvolutionGeometry: Sendable, Equatable, Codable {
    /// Input channels `C`, height `H`, width `W` (per image).
    public var channels: Int, height: Int, width: Int
    /// Window size `kh × kw`, stride and zero padding, in pixels.
    public var kernelHeight: Int, kernelWidth: Int
    public var strideHeight: Int, strideWidth: Int
    public var paddingHeight: Int, paddingWidth: Int

    public init(channels: Int, height: Int, width: Int,
                kernelHeight: Int, kernelWidth: Int,
                strideHeight: Int = 1, strideWidth: Int = 1,
                paddingHeight: Int = 0, paddingWidth: Int = 0) {
        precondition(channels > 0 && height > 0 && width > 0, "convolution input must be non-empty: C=\(channels) H=\(height) W=\(width)")
        precondition(kernelHeight > 0 && kernelWidth > 0 && strideHeight > 0 && strideWidth > 0,
                     "kernel \(kernelHeight)×\(kernelWidth) and stride \(strideHeight)×\(strideWidth) must be positive")
        precondition(paddingHeight >= 0 && paddingWidth >= 0, "padding must be non-negative")
        self.channels = channels; self.height = height; self.width = width
        self.kernelHeight = kernelHeight; self.kernelWidth = kernelWidth
        self.strideHeight = strideHeight; self.strideWidth = strideWidth
        self.paddingHeight = paddingHeight; self.paddingWidth = paddingWidth
        precondition(outputHeight > 0 && outputWidth > 0,
                     "kernel \(kernelHeight)×\(kernelWidth) does not fit input \(height)×\(width) with padding \(paddingHeight)×\(paddingWidth)")
    }

    /// `Ho = (H + 2·ph − kh) / sh + 1`.
    public var outputHeight: Int { (height + 2 * paddingHeight - kernelHeight) / strideHeight + 1 }
    /// `Wo = (W + 2·pw − kw) / sw + 1`.
    public var outputWidth: Int { (width + 2 * paddingWidth - kernelWidth) / strideWidth + 1 }
    /// `C·kh·kw`: the rows of the im2col matrix.
    public var patchSize: Int { channels * kernelHeight * kernelWidth }
    /// `C·H·W`: elements of one input image.
    public var inputSize: Int { channels * height * width }
}

/// Unfolds an image batch into the im2col matrix, so that a convolution becomes one GEMM.
///
/// `Conv2D` does not use this batch-wide form: it unfolds one image at a time into a
/// cache-resident buffer (`convolutionForward`, Convolution.swift). This straightforward version
/// is kept as the public batch-layout kernel and as the independent reference the per-image
/// kernels are tested against.
///
/// Concretely, `columns[(c·kh + i)·kw + j, n·Ho·Wo + y·Wo + x] = input[n, c, y·sh − ph + i, x·sw − pw + j]`
/// (zero outside the image).
/// - Parameters:
///   - input: `[N, C, H, W]` row-major, `N = batchSize`.
///   - columns: resized to `[C·kh·kw, N·Ho·Wo]` and overwritten.
public func im2col(_ input: [Float], batchSize: Int, geometry g: ConvolutionGeometry, into columns: inout [Float]) {
    precondition(input.count == batchSize * g.inputSize,
                 "im2col: input has \(input.count) elements, expected N·C·H·W = \(batchSize)·\(g.inputSize)")
    let ho = g.outputHeight, wo = g.outputWidth
    let spatial = ho * wo
    let columnCount = batchSize * spatial
    let needed = g.patchSize * columnCount
    if columns.count != needed { columns = [Float](repeating: 0, count: needed) }
    input.withUnsafeBufferPointer { pin in
        columns.withUnsafeMutableBufferPointer { pcol in
            let src = pin.baseAddress!, dst = pcol.baseAddress!
            for c in 0..<g.channels {
                for ki in 0..<g.kernelHeight {
                    for kj in 0..<g.kernelWidth {
                        let row = (c * g.kernelHeight + ki) * g.kernelWidth + kj
                        let rowBase = dst + row * columnCount
                        for n in 0..<batchSize {
                            let image = src + (n * g.channels + c) * g.height * g.width
                            let out = rowBase + n * spatial
                            for oy in 0..<ho {
                                let iy = oy * g.strideHeight - g.paddingHeight + ki
                                let outRow = out + oy * wo
                                if iy < 0 || iy >= g.height {
                                    for ox in 0..<wo { outRow[ox] = 0 }
                                    continue
                                }
                                let inRow = image + iy * g.width
                                if g.strideWidth == 1 {
                                    let shift = kj - g.paddingWidth  // ix = ox + shift
                                    let first = max(0, -shift), last = min(wo, g.width - shift)
                                    for ox in 0..<min(first, wo) { outRow[ox] = 0 }
                                    if first < last { for ox in first..<last { outRow[ox] = inRow[ox + shift] } }
                                    for ox in max(last, first)..<wo { outRow[ox] = 0 }
                                } else {
                                    for ox in 0..<wo {
                                        let ix = ox * g.strideWidth - g.paddingWidth + kj
                                        outRow[ox] = (ix >= 0 && ix < g.width) ? inRow[ix] : 0
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

/// Folds an im2col matrix back onto an image batch, summing overlapping windows: the adjoint of
/// `im2col`, used for the input gradient of a convolution.
///
/// - Parameters:
///   - columns: `[C·kh·kw, N·Ho·Wo]`.
///   - input: resized to `[N, C, H, W]` and overwritten with the folded sums.
public func col2im(_ columns: [Float], batchSize: Int, geometry g: ConvolutionGeometry, into input: inout [Float]) {
    let ho = g.outputHeight, wo = g.outputWidth
    let spatial = ho * wo
    let columnCount = batchSize * spatial
    precondition(columns.count == g.patchSize * columnCount,
                 "col2im: columns have \(columns.count) elements, expected \(g.patchSize)·\(columnCount)")
    let needed = batchSize * g.inputSize
    if input.count != needed { input = [Float](repeating: 0, count: needed) } else { fill(&input, with: 0) }
    columns.withUnsafeBufferPointer { pcol in
        input.withUnsafeMutableBufferPointer { pin in
            let src = pcol.baseAddress!, dst = pin.baseAddress!
            for c in 0..<g.channels {
                for ki in 0..<g.kernelHeight {
                    for kj in 0..<g.kernelWidth {
                        let row = (c * g.kernelHeight + ki) * g.kernelWidth + kj
                        let rowBase = src + row * columnCount
                        for n in 0..<batchSize {
                            let image = dst + (n * g.channels + c) * g.height * g.width
                            let col = rowBase + n * spatial
                            for oy in 0..<ho {
                                let iy = oy * g.strideHeight - g.paddingHeight + ki
                                if iy < 0 || iy >= g.height { continue }
                                let inRow = image + iy * g.width
                                let colRow = col + oy * wo
                                if g.strideWidth == 1 {
                                    let shift = kj - g.paddingWidth
                                    let first = max(0, -shift), last = min(wo, g.width - shift)
                                    if first < last { for ox in first..<last { inRow[ox + shift] += colRow[ox] } }
                                } else {
                                    for ox in 0..<wo {
                                        let ix = ox * g.strideWidth - g.paddingWidth + kj
                                        if ix >= 0 && ix < g.width { inRow[ix] += colRow[ox] }
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
