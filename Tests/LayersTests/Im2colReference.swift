// The whole-batch im2col/col2im: the straightforward unfolding the per-image kernels of
// `Conv2D+Kernels.swift` replaced, kept here (plain indexing, no pointers) as the independent
// reference those kernels are tested against. Formerly `TensorCore.im2col`/`col2im`, which no
// production code called.
@testable import Layers

/// Unfolds an image batch into the im2col matrix, so that a convolution becomes one GEMM:
/// `columns[(c·kh + i)·kw + j, n·Ho·Wo + y·Wo + x] = input[n, c, y·sh − ph + i, x·sw − pw + j]`
/// (zero outside the image).
/// - Parameters:
///   - input: `[N, C, H, W]` row-major, `N = batchSize`.
///   - columns: resized to `[C·kh·kw, N·Ho·Wo]` and overwritten.
func im2col(_ input: [Float], batchSize: Int, geometry g: ConvolutionGeometry, into columns: inout [Float]) {
    precondition(input.count == batchSize * g.inputSize,
                 "im2col: input has \(input.count) elements, expected N·C·H·W = \(batchSize)·\(g.inputSize)")
    let ho = g.outputHeight, wo = g.outputWidth, spatial = ho * wo
    let columnCount = batchSize * spatial
    columns = [Float](repeating: 0, count: g.patchSize * columnCount)
    forEachWindowElement(batchSize: batchSize, geometry: g) { inputIndex, columnIndex in
        columns[columnIndex] = input[inputIndex]
    }
}

/// Folds an im2col matrix back onto an image batch, summing overlapping windows: the adjoint of
/// `im2col`, the input gradient of a convolution.
/// - Parameters:
///   - columns: `[C·kh·kw, N·Ho·Wo]`.
///   - input: resized to `[N, C, H, W]` and overwritten with the folded sums.
func col2im(_ columns: [Float], batchSize: Int, geometry g: ConvolutionGeometry, into input: inout [Float]) {
    let columnCount = batchSize * g.outputHeight * g.outputWidth
    precondition(columns.count == g.patchSize * columnCount,
                 "col2im: columns have \(columns.count) elements, expected \(g.patchSize)·\(columnCount)")
    input = [Float](repeating: 0, count: batchSize * g.inputSize)
    forEachWindowElement(batchSize: batchSize, geometry: g) { inputIndex, columnIndex in
        input[inputIndex] += columns[columnIndex]
    }
}

/// Calls `body(inputIndex, columnIndex)` for every im2col entry that lies inside the image, in the
/// order (c, i, j, n, y, x): rows of the im2col matrix outermost, as the original kernels ran.
private func forEachWindowElement(batchSize: Int, geometry g: ConvolutionGeometry, _ body: (Int, Int) -> Void) {
    let ho = g.outputHeight, wo = g.outputWidth, spatial = ho * wo
    let columnCount = batchSize * spatial
    for c in 0..<g.channels {
        for ki in 0..<g.kernelHeight {
            for kj in 0..<g.kernelWidth {
                let row = (c * g.kernelHeight + ki) * g.kernelWidth + kj
                for n in 0..<batchSize {
                    let image = (n * g.channels + c) * g.height * g.width
                    for oy in 0..<ho {
                        let iy = oy * g.strideHeight - g.paddingHeight + ki
                        if iy < 0 || iy >= g.height { continue }
                        for ox in 0..<wo {
                            let ix = ox * g.strideWidth - g.paddingWidth + kj
                            if ix < 0 || ix >= g.width { continue }
                            body(image + iy * g.width + ix, row * columnCount + n * spatial + oy * wo + ox)
                        }
                    }
                }
            }
        }
    }
}
