import Testing
@testable import Layers
import TensorCore
import _TestSupport

// The whole-batch reference unfolding (`Im2colReference.swift`) itself: against a direct
// convolution, and col2im as its adjoint.
@Suite struct Im2colTests {
    /// Direct convolution (reference), `[N, C, H, W]` ⊛ `[O, C, kh, kw]`.
    func directConvolution(_ x: [Float], _ w: [Float], n: Int, o: Int, g: ConvolutionGeometry) -> [Float] {
        let ho = g.outputHeight, wo = g.outputWidth
        var out = [Float](repeating: 0, count: n * o * ho * wo)
        for b in 0..<n { for f in 0..<o { for oy in 0..<ho { for ox in 0..<wo {
            var s = 0.0
            for c in 0..<g.channels { for i in 0..<g.kernelHeight { for j in 0..<g.kernelWidth {
                let iy = oy * g.strideHeight - g.paddingHeight + i, ix = ox * g.strideWidth - g.paddingWidth + j
                if iy < 0 || iy >= g.height || ix < 0 || ix >= g.width { continue }
                s += Double(x[((b * g.channels + c) * g.height + iy) * g.width + ix])
                   * Double(w[((f * g.channels + c) * g.kernelHeight + i) * g.kernelWidth + j])
            }}}
            out[((b * o + f) * ho + oy) * wo + ox] = Float(s)
        }}}}
        return out
    }

    @Test("im2col + GEMM equals direct convolution", arguments: [
        ConvolutionGeometry(channels: 2, height: 5, width: 7, kernelHeight: 3, kernelWidth: 3, paddingHeight: 1, paddingWidth: 1),
        ConvolutionGeometry(channels: 3, height: 6, width: 5, kernelHeight: 2, kernelWidth: 3, strideHeight: 2, strideWidth: 2, paddingHeight: 0, paddingWidth: 1),
        ConvolutionGeometry(channels: 1, height: 4, width: 4, kernelHeight: 1, kernelWidth: 1),
    ])
    func convolution(g: ConvolutionGeometry) {
        let n = 2, o = 4
        let x = randomArray(n * g.inputSize, seed: 5), w = randomArray(o * g.patchSize, seed: 6)
        var columns: [Float] = []
        im2col(x, batchSize: n, geometry: g, into: &columns)
        let spatial = g.outputHeight * g.outputWidth
        var y = [Float](repeating: 0, count: o * n * spatial)  // [O, N·Ho·Wo]
        gemm(m: o, n: n * spatial, k: g.patchSize, a: w, lda: g.patchSize, b: columns, ldb: n * spatial, c: &y, ldc: n * spatial)
        var nchw = [Float](repeating: 0, count: y.count)
        for f in 0..<o { for b in 0..<n { for s in 0..<spatial { nchw[(b * o + f) * spatial + s] = y[f * n * spatial + b * spatial + s] } } }
        let result = compare(nchw, directConvolution(x, w, n: n, o: o, g: g), atol: 1e-5, rtol: 1e-5, label: "conv")
        #expect(result.passed, "\(result)")
    }

    @Test("col2im is the adjoint of im2col: ⟨im2col(x), y⟩ = ⟨x, col2im(y)⟩")
    func adjoint() {
        let g = ConvolutionGeometry(channels: 3, height: 7, width: 6, kernelHeight: 3, kernelWidth: 3,
                                    strideHeight: 2, strideWidth: 1, paddingHeight: 1, paddingWidth: 2)
        let n = 2
        let x = randomArray(n * g.inputSize, seed: 8)
        var columns: [Float] = []
        im2col(x, batchSize: n, geometry: g, into: &columns)
        let y = randomArray(columns.count, seed: 9)
        var folded: [Float] = []
        col2im(y, batchSize: n, geometry: g, into: &folded)
        let lhs = dot(columns, y), rhs = dot(x, folded)
        #expect(abs(lhs - rhs) <= 1e-4 * max(1, abs(lhs)), "⟨im2col x, y⟩ = \(lhs), ⟨x, col2im y⟩ = \(rhs)")
    }
}
