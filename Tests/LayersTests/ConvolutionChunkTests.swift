import Testing
@testable import Layers
import TensorCore
import _TestSupport

/// The direct convolution in `Double`, plain loops: `y [N, Cout, Ho, Wo]`, `∂W [Cout, P]` and
/// `∂x [N, Cin, H, W]` for the output gradient `dy`.
private func directConvolution(_ x: [Float], _ w: [Float], _ dy: [Float], n: Int, cout: Int,
                               g: ConvolutionGeometry) -> (y: [Double], dw: [Double], dx: [Double]) {
    let ho = g.outputHeight, wo = g.outputWidth, kh = g.kernelHeight, kw = g.kernelWidth
    var y = [Double](repeating: 0, count: n * cout * ho * wo)
    var dw = [Double](repeating: 0, count: cout * g.patchSize), dx = [Double](repeating: 0, count: n * g.inputSize)
    for b in 0..<n {
        for o in 0..<cout {
            for oy in 0..<ho {
                for ox in 0..<wo {
                    let out = ((b * cout + o) * ho + oy) * wo + ox
                    for c in 0..<g.channels {
                        for i in 0..<kh {
                            for j in 0..<kw {
                                let iy = oy * g.strideHeight - g.paddingHeight + i, ix = ox * g.strideWidth - g.paddingWidth + j
                                if iy < 0 || iy >= g.height || ix < 0 || ix >= g.width { continue }
                                let input = ((b * g.channels + c) * g.height + iy) * g.width + ix
                                let weight = o * g.patchSize + (c * kh + i) * kw + j
                                y[out] += Double(w[weight]) * Double(x[input])
                                dw[weight] += Double(dy[out]) * Double(x[input])
                                dx[input] += Double(dy[out]) * Double(w[weight])
                            }
                        }
                    }
                }
            }
        }
    }
    return (y, dw, dx)
}

/// The same-padded path in chunks of output positions (`chunkLength`): chunk boundaries inside
/// rows, chunks that do not divide `S`, single-position chunks, planes smaller than the window.
@Suite struct ConvolutionChunkTests {
    static let cases: [(ConvolutionGeometry, [Int])] = [
        // 5×7 = 35 positions: chunks of 1, 3 (smaller than a row), 8 and 16 (not dividing 35), 34, 35, 50
        (ConvolutionGeometry(channels: 2, height: 5, width: 7, kernelHeight: 3, kernelWidth: 3, paddingHeight: 1, paddingWidth: 1),
         [1, 3, 8, 16, 34, 35, 50]),
        // 5×5 window on 6×4 (wider than the image), 3×1 and 1×3 windows
        (ConvolutionGeometry(channels: 3, height: 6, width: 4, kernelHeight: 5, kernelWidth: 5, paddingHeight: 2, paddingWidth: 2),
         [1, 5, 7, 23]),
        (ConvolutionGeometry(channels: 2, height: 4, width: 6, kernelHeight: 3, kernelWidth: 1, paddingHeight: 1, paddingWidth: 0),
         [2, 5, 11]),
        (ConvolutionGeometry(channels: 2, height: 3, width: 5, kernelHeight: 1, kernelWidth: 3, paddingHeight: 0, paddingWidth: 1),
         [1, 4, 6]),
        // planes smaller than the window: 3×3 on 1×1 and 2×2, 5×5 on 1×3
        (ConvolutionGeometry(channels: 3, height: 1, width: 1, kernelHeight: 3, kernelWidth: 3, paddingHeight: 1, paddingWidth: 1),
         [1, 2]),
        (ConvolutionGeometry(channels: 2, height: 2, width: 2, kernelHeight: 3, kernelWidth: 3, paddingHeight: 1, paddingWidth: 1),
         [1, 3]),
        (ConvolutionGeometry(channels: 2, height: 1, width: 3, kernelHeight: 5, kernelWidth: 5, paddingHeight: 2, paddingWidth: 2),
         [1, 2]),
    ]

    @Test("chunked forward and backward equal the direct convolution in Double, for every chunk length",
          arguments: cases.indices)
    func matchesDirect(index: Int) {
        let (g, lengths) = Self.cases[index]
        let n = 3, cout = 5, spatial = g.outputHeight * g.outputWidth
        let x = randomArray(n * g.inputSize, seed: 61), w = randomArray(cout * g.patchSize, seed: 62)
        let dy = randomArray(n * cout * spatial, seed: 63)
        let reference = directConvolution(x, w, dy, n: n, cout: cout, g: g)
        for length in lengths {
            var y: [Float] = [], scratch: [Float] = [], dx: [Float] = []
            var dw = [Float](repeating: 0.25, count: w.count)   // ∂W accumulates onto 0.25
            convolutionForward(x, batchSize: n, geometry: g, weight: w, outputChannels: cout, bias: nil,
                               into: &y, scratch: &scratch, chunkLength: length)
            convolutionBackward(outputGradient: dy, input: x, batchSize: n, geometry: g, weight: w, outputChannels: cout,
                                weightGradient: &dw, computesInputGradient: true, into: &dx, scratch: &scratch,
                                chunkLength: length)
            let forward = compare(y, reference.y, atol: 1e-5, rtol: 1e-5, label: "y, chunks of \(length)")
            let weights = compare(dw, reference.dw.map { $0 + 0.25 }, atol: 1e-4, rtol: 1e-5, label: "∂W, chunks of \(length)")
            let inputs = compare(dx, reference.dx, atol: 1e-5, rtol: 1e-5, label: "∂x, chunks of \(length)")
            #expect(forward.passed, "\(forward)")
            #expect(weights.passed, "\(weights)")
            #expect(inputs.passed, "\(inputs)")

            // Without ∂x: the same ∂W from the same chunks, ∂x untouched.
            var dwOnly = [Float](repeating: 0.25, count: w.count), untouched: [Float] = [7]
            convolutionBackward(outputGradient: dy, input: x, batchSize: n, geometry: g, weight: w, outputChannels: cout,
                                weightGradient: &dwOnly, computesInputGradient: false, into: &untouched,
                                scratch: &scratch, chunkLength: length)
            #expect(dwOnly == dw, "chunks of \(length)")
            #expect(untouched == [7])
        }
    }

    @Test("chunked results do not depend on the thread count")
    func threadCountIndependent() {
        let g = ConvolutionGeometry(channels: 3, height: 9, width: 8, kernelHeight: 3, kernelWidth: 3, paddingHeight: 1, paddingWidth: 1)
        let n = 11, cout = 6
        let x = randomArray(n * g.inputSize, seed: 71), w = randomArray(cout * g.patchSize, seed: 72)
        let dy = randomArray(n * cout * g.outputHeight * g.outputWidth, seed: 73)
        func run(threads: Int) -> ([Float], [Float], [Float]) {
            let saved = BLAS.threadCount
            BLAS.threadCount = threads
            defer { BLAS.threadCount = saved }
            var y: [Float] = [], dx: [Float] = [], scratch: [Float] = []
            var dw = [Float](repeating: 0, count: w.count)
            convolutionForward(x, batchSize: n, geometry: g, weight: w, outputChannels: cout, bias: nil,
                               into: &y, scratch: &scratch, chunkLength: 13)
            convolutionBackward(outputGradient: dy, input: x, batchSize: n, geometry: g, weight: w, outputChannels: cout,
                                weightGradient: &dw, computesInputGradient: true, into: &dx, scratch: &scratch,
                                chunkLength: 13)
            return (y, dw, dx)
        }
        let one = run(threads: 1), two = run(threads: 2), three = run(threads: 3)
        #expect(one.0 == two.0 && one.1 == two.1 && one.2 == two.2)
        #expect(one.0 == three.0 && one.1 == three.1 && one.2 == three.2)
    }

    @Test("the default chunk fits the cache budget, is a multiple of 16 and splits IResNet's 56×56 layers")
    func defaultChunkLength() {
        func geometry(_ c: Int, _ size: Int) -> ConvolutionGeometry {
            ConvolutionGeometry(channels: c, height: size, width: size, kernelHeight: 3, kernelWidth: 3,
                                paddingHeight: 1, paddingWidth: 1)
        }
        for (c, size) in [(64, 112), (64, 56), (128, 28), (256, 14), (512, 7)] {
            let g = geometry(c, size), length = samePaddedChunkLength(g), spatial = size * size
            #expect(length <= spatial)
            #expect(length == spatial || (length % 16 == 0 && length * g.patchSize * 4 <= samePaddedChunkBytes),
                    "C \(c), \(size)×\(size): \(length)")
        }
        #expect(samePaddedChunkLength(geometry(64, 56)) < 56 * 56)
        #expect(samePaddedChunkLength(geometry(2, 5)) == 25)   // a small image is one chunk
    }
}
