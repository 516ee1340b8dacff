import Testing
@testable import Layers
import TensorCore
import _TestSupport

/// The whole-batch reference: im2col of the batch (`Im2colReference.swift`), the three batch-wide GEMMs, col2im (the path
/// the per-image kernels replaced). Returns `y` `[N, Cout, S]`, `∂W` `[Cout, P]`, `∂x` `[N, Cin, H, W]`.
private func batchedConvolution(_ x: [Float], _ w: [Float], _ dy: [Float], n: Int, cout: Int, bias: [Float]?,
                                g: ConvolutionGeometry) -> (y: [Float], dw: [Float], dx: [Float]) {
    let spatial = g.outputHeight * g.outputWidth, columnCount = n * spatial, patch = g.patchSize
    var columns: [Float] = []
    im2col(x, batchSize: n, geometry: g, into: &columns)                          // [P, N·S]
    var channelMajor = [Float](repeating: 0, count: cout * columnCount)          // [Cout, N·S]
    gemm(m: cout, n: columnCount, k: patch, a: w, lda: patch, b: columns, ldb: columnCount, c: &channelMajor, ldc: columnCount)
    var y = [Float](repeating: 0, count: cout * columnCount)                     // [N, Cout, S]
    var dyChannelMajor = [Float](repeating: 0, count: cout * columnCount)
    for b in 0..<n {
        for o in 0..<cout {
            for s in 0..<spatial {
                y[(b * cout + o) * spatial + s] = channelMajor[o * columnCount + b * spatial + s] + (bias?[o] ?? 0)
                dyChannelMajor[o * columnCount + b * spatial + s] = dy[(b * cout + o) * spatial + s]
            }
        }
    }
    var dw = [Float](repeating: 0, count: cout * patch)
    gemm(transposeB: true, m: cout, n: patch, k: columnCount, a: dyChannelMajor, lda: columnCount, b: columns,
         ldb: columnCount, c: &dw, ldc: patch)
    var dcols = [Float](repeating: 0, count: patch * columnCount)
    gemm(transposeA: true, m: patch, n: columnCount, k: cout, a: w, lda: patch, b: dyChannelMajor, ldb: columnCount,
         c: &dcols, ldc: columnCount)
    var dx: [Float] = []
    col2im(dcols, batchSize: n, geometry: g, into: &dx)
    return (y, dw, dx)
}

@Suite struct ConvolutionKernelTests {
    static let geometries = [
        // same-padded (the contiguous shifted-copy path): 3×3 pad 1, 5×5 pad 2, asymmetric 3×1
        ConvolutionGeometry(channels: 2, height: 5, width: 7, kernelHeight: 3, kernelWidth: 3, paddingHeight: 1, paddingWidth: 1),
        ConvolutionGeometry(channels: 3, height: 6, width: 4, kernelHeight: 5, kernelWidth: 5, paddingHeight: 2, paddingWidth: 2),
        ConvolutionGeometry(channels: 2, height: 4, width: 6, kernelHeight: 3, kernelWidth: 1, paddingHeight: 1, paddingWidth: 0),
        // general paths: strided, unpadded, padding wider than the window needs, 1×1 (pointwise)
        ConvolutionGeometry(channels: 3, height: 6, width: 5, kernelHeight: 2, kernelWidth: 3, strideHeight: 2, strideWidth: 2, paddingHeight: 0, paddingWidth: 1),
        ConvolutionGeometry(channels: 2, height: 7, width: 6, kernelHeight: 3, kernelWidth: 3, strideHeight: 2, strideWidth: 1, paddingHeight: 1, paddingWidth: 2),
        ConvolutionGeometry(channels: 2, height: 5, width: 5, kernelHeight: 3, kernelWidth: 3),
        ConvolutionGeometry(channels: 3, height: 4, width: 4, kernelHeight: 1, kernelWidth: 1),
        ConvolutionGeometry(channels: 1, height: 3, width: 3, kernelHeight: 3, kernelWidth: 3, strideHeight: 3, strideWidth: 3, paddingHeight: 2, paddingWidth: 2),
    ]

    @Test("per-image forward and backward equal the whole-batch im2col + GEMM path", arguments: geometries)
    func matchesBatched(g: ConvolutionGeometry) {
        let n = 5, cout = 4   // 5 images: uneven splits over workers and ∂W groups
        let spatial = g.outputHeight * g.outputWidth
        let x = randomArray(n * g.inputSize, seed: 21), w = randomArray(cout * g.patchSize, seed: 22)
        let dy = randomArray(n * cout * spatial, seed: 23), bias = randomArray(cout, seed: 24)
        let reference = batchedConvolution(x, w, dy, n: n, cout: cout, bias: bias, g: g)

        var y: [Float] = [], scratch: [Float] = []
        convolutionForward(x, batchSize: n, geometry: g, weight: w, outputChannels: cout, bias: bias, into: &y, scratch: &scratch)
        let forward = compare(y, reference.y, atol: 1e-5, rtol: 1e-5, label: "y")
        #expect(forward.passed, "\(forward)")

        var dw = [Float](repeating: 0.5, count: w.count), dx: [Float] = []   // ∂W accumulates onto 0.5
        convolutionBackward(outputGradient: dy, input: x, batchSize: n, geometry: g, weight: w, outputChannels: cout,
                            weightGradient: &dw, computesInputGradient: true, into: &dx, scratch: &scratch)
        let weightResult = compare(dw, reference.dw.map { $0 + 0.5 }, atol: 1e-4, rtol: 1e-5, label: "∂W")
        let inputResult = compare(dx, reference.dx, atol: 1e-5, rtol: 1e-5, label: "∂x")
        #expect(weightResult.passed, "\(weightResult)")
        #expect(inputResult.passed, "\(inputResult)")

        // Without the input gradient: the same ∂W, and ∂x untouched.
        var dwOnly = [Float](repeating: 0.5, count: w.count), untouched: [Float] = [7]
        convolutionBackward(outputGradient: dy, input: x, batchSize: n, geometry: g, weight: w, outputChannels: cout,
                            weightGradient: &dwOnly, computesInputGradient: false, into: &untouched, scratch: &scratch)
        #expect(dwOnly == dw)
        #expect(untouched == [7])
    }

    @Test("results do not depend on the thread count (fixed ∂W partition, one OpenBLAS thread per GEMM)")
    func threadCountIndependent() {
        let g = ConvolutionGeometry(channels: 3, height: 9, width: 8, kernelHeight: 3, kernelWidth: 3, paddingHeight: 1, paddingWidth: 1)
        let n = 11, cout = 6
        let x = randomArray(n * g.inputSize, seed: 31), w = randomArray(cout * g.patchSize, seed: 32)
        let dy = randomArray(n * cout * g.outputHeight * g.outputWidth, seed: 33)
        func run(threads: Int) -> ([Float], [Float], [Float]) {
            let saved = BLAS.threadCount
            BLAS.threadCount = threads
            defer { BLAS.threadCount = saved }
            var y: [Float] = [], dx: [Float] = [], scratch: [Float] = []
            var dw = [Float](repeating: 0, count: w.count)
            convolutionForward(x, batchSize: n, geometry: g, weight: w, outputChannels: cout, bias: nil, into: &y, scratch: &scratch)
            convolutionBackward(outputGradient: dy, input: x, batchSize: n, geometry: g, weight: w, outputChannels: cout,
                                weightGradient: &dw, computesInputGradient: true, into: &dx, scratch: &scratch)
            return (y, dw, dx)
        }
        let one = run(threads: 1), two = run(threads: 2), three = run(threads: 3)
        #expect(one.0 == two.0 && one.1 == two.1 && one.2 == two.2)
        #expect(one.0 == three.0 && one.1 == three.1 && one.2 == three.2)
    }

    @Test("convolutionGEMMsOnly issues the layer's GEMMs: its output is W · columns for every image")
    func gemmsOnly() {
        let g = ConvolutionGeometry(channels: 2, height: 4, width: 5, kernelHeight: 3, kernelWidth: 3, paddingHeight: 1, paddingWidth: 1)
        let n = 3, cout = 2, spatial = 20
        let w = randomArray(cout * g.patchSize, seed: 41), columns = randomArray(g.patchSize * spatial, seed: 42)
        var output: [Float] = [], scratch: [Float] = []
        convolutionGEMMsOnly(batchSize: n, geometry: g, weight: w, outputChannels: cout, columns: columns,
                             output: &output, scratch: &scratch)
        var expected = [Float](repeating: 0, count: cout * spatial)
        naiveGEMM(m: cout, n: spatial, k: g.patchSize, a: w, lda: g.patchSize, b: columns, ldb: spatial, c: &expected, ldc: spatial)
        let result = compare(output, expected + expected + expected, atol: 1e-5, rtol: 1e-5, label: "Y")
        #expect(result.passed, "\(result)")
    }
}
