// Grouped, depthwise and 1×1 convolutions (`Conv2D(groups:)`) against a naive direct grouped
// convolution in Double (plain indexing, no call into Layers kernels), with finite differences of
// the Double reference for every input and parameter entry (`checkAgainstDouble`), hand-computed
// literals, the two depthwise implementations against each other, thread-count independence and
// the initializer's preconditions.
import Testing
@testable import Layers
import TensorCore
import _TestSupport

extension Reference {
    /// Grouped cross-correlation with zero padding: x `[N, Cin, H, W]`, W `[Cout, Cin/g, k, k]`,
    /// `y[n,o,i,j] = b[o] + Σ_{c<Cin/g,u,v} W[o,c,u,v] · x[n, (o / (Cout/g))·Cin/g + c, i·s+u−p, j·s+v−p]`.
    static func groupedConv2D(_ x: [Double], n: Int, cin: Int, h: Int, w: Int, weight: [Double], bias: [Double]?,
                              cout: Int, groups: Int, k: Int, stride: Int, padding: Int) -> (y: [Double], ho: Int, wo: Int) {
        let ho = (h + 2 * padding - k) / stride + 1, wo = (w + 2 * padding - k) / stride + 1
        let cg = cin / groups, og = cout / groups
        var y = [Double](repeating: 0, count: n * cout * ho * wo)
        for b in 0..<n { for o in 0..<cout { for i in 0..<ho { for j in 0..<wo {
            var s = bias?[o] ?? 0
            let first = (o / og) * cg
            for c in 0..<cg { for u in 0..<k { for v in 0..<k {
                let r = i * stride + u - padding, q = j * stride + v - padding
                guard r >= 0, r < h, q >= 0, q < w else { continue }
                s += weight[((o * cg + c) * k + u) * k + v] * x[((b * cin + first + c) * h + r) * w + q]
            } } }
            y[((b * cout + o) * ho + i) * wo + j] = s
        } } } }
        return (y, ho, wo)
    }
}

/// One convolution case: channels, groups, window, input size.
struct ConvolutionCase: CustomTestStringConvertible, Sendable {
    var cin: Int, cout: Int, groups: Int, k: Int, stride: Int, padding: Int, bias: Bool
    var n = 2, h = 9, w = 10
    var testDescription: String {
        "Cin \(cin) Cout \(cout) g \(groups) k\(k) s\(stride) p\(padding) bias \(bias) [\(n), \(h)×\(w)]"
    }
}

private func makeConvolution(_ c: ConvolutionCase, seed: UInt64) -> Conv2D {
    var generator = SeededGenerator(seed: seed)
    let conv = Conv2D(inputChannels: c.cin, outputChannels: c.cout, kernelSize: c.k, stride: c.stride, padding: c.padding,
                      groups: c.groups, bias: c.bias, name: "conv", generator: &generator)
    randomizeAffine(conv, seed: seed + 1)
    return conv
}

@Suite struct GroupedConvolutionTests {
    static let gradientCases: [ConvolutionCase] = [
        // Depthwise: stride 1 and 2, padding 0 and 1, k 3 and 7 (odd and even widths for stride 2).
        ConvolutionCase(cin: 3, cout: 3, groups: 3, k: 3, stride: 1, padding: 1, bias: false),
        ConvolutionCase(cin: 3, cout: 3, groups: 3, k: 3, stride: 2, padding: 1, bias: true),
        ConvolutionCase(cin: 3, cout: 3, groups: 3, k: 3, stride: 1, padding: 0, bias: true),
        ConvolutionCase(cin: 3, cout: 3, groups: 3, k: 3, stride: 2, padding: 0, bias: false),
        ConvolutionCase(cin: 2, cout: 2, groups: 2, k: 7, stride: 1, padding: 0, bias: false),
        ConvolutionCase(cin: 2, cout: 2, groups: 2, k: 7, stride: 2, padding: 1, bias: true),
        ConvolutionCase(cin: 2, cout: 2, groups: 2, k: 7, stride: 1, padding: 0, bias: false, n: 2, h: 7, w: 7),  // the GDC
        // Planes at and below the window: 7×7 and 1×1 with k 3 p 1, a 3×23 row, padding k − 1,
        // stride 2 on a 7×7 plane.
        ConvolutionCase(cin: 2, cout: 2, groups: 2, k: 3, stride: 1, padding: 1, bias: true, n: 2, h: 7, w: 7),
        ConvolutionCase(cin: 2, cout: 2, groups: 2, k: 3, stride: 1, padding: 1, bias: false, n: 2, h: 1, w: 1),
        ConvolutionCase(cin: 2, cout: 2, groups: 2, k: 3, stride: 1, padding: 1, bias: false, n: 1, h: 3, w: 23),
        ConvolutionCase(cin: 2, cout: 2, groups: 2, k: 3, stride: 1, padding: 2, bias: true, n: 1, h: 4, w: 5),
        ConvolutionCase(cin: 2, cout: 2, groups: 2, k: 3, stride: 2, padding: 1, bias: false, n: 2, h: 7, w: 7),
        // Grouped (2 and 4 groups; 2 channels per group as MobileFaceNet's second block).
        ConvolutionCase(cin: 4, cout: 6, groups: 2, k: 3, stride: 1, padding: 1, bias: true),
        ConvolutionCase(cin: 8, cout: 4, groups: 4, k: 3, stride: 2, padding: 1, bias: false),
        ConvolutionCase(cin: 4, cout: 4, groups: 2, k: 1, stride: 1, padding: 0, bias: false),
        // A depthwise multiplier (groups == Cin, Cout = 2·Cin) takes the grouped path.
        ConvolutionCase(cin: 2, cout: 4, groups: 2, k: 3, stride: 1, padding: 1, bias: true),
        // 1×1, stride 1 (GEMM on the image) and stride 2 (IResNet's downsample).
        ConvolutionCase(cin: 3, cout: 4, groups: 1, k: 1, stride: 1, padding: 0, bias: true),
        ConvolutionCase(cin: 3, cout: 4, groups: 1, k: 1, stride: 2, padding: 0, bias: false),
        ConvolutionCase(cin: 3, cout: 4, groups: 1, k: 1, stride: 2, padding: 0, bias: true, n: 2, h: 8, w: 8),
    ]

    @Test("Conv2D(groups:) matches a Double reference (forward and finite differences)", arguments: gradientCases)
    func doubleReference(_ c: ConvolutionCase) {
        let conv = makeConvolution(c, seed: 1)
        let x = distinctValues([c.n, c.cin, c.h, c.w], seed: 3)
        let result = checkAgainstDouble(c.testDescription, conv, input: x) { x, theta, _ in
            Reference.groupedConv2D(x, n: c.n, cin: c.cin, h: c.h, w: c.w, weight: theta[0], bias: c.bias ? theta[1] : nil,
                                    cout: c.cout, groups: c.groups, k: c.k, stride: c.stride, padding: c.padding).y
        }
        #expect(result.passed, "\(result)")
        #expect(result.vanishingGradients == [], "gradients identically zero: \(result.vanishingGradients)")
    }

    static let forwardCases: [ConvolutionCase] = [
        // Wide enough rows for the vector loops, more images × channels than workers.
        ConvolutionCase(cin: 16, cout: 16, groups: 16, k: 3, stride: 1, padding: 1, bias: true, n: 3, h: 19, w: 37),
        ConvolutionCase(cin: 16, cout: 16, groups: 16, k: 3, stride: 2, padding: 1, bias: false, n: 3, h: 28, w: 28),
        ConvolutionCase(cin: 16, cout: 16, groups: 16, k: 3, stride: 2, padding: 1, bias: true, n: 2, h: 29, w: 33),
        ConvolutionCase(cin: 8, cout: 8, groups: 8, k: 7, stride: 1, padding: 0, bias: false, n: 5, h: 7, w: 7),
        ConvolutionCase(cin: 8, cout: 8, groups: 8, k: 5, stride: 3, padding: 2, bias: true, n: 2, h: 17, w: 23),
        ConvolutionCase(cin: 8, cout: 8, groups: 4, k: 3, stride: 1, padding: 1, bias: true, n: 3, h: 14, w: 14),
        ConvolutionCase(cin: 16, cout: 24, groups: 1, k: 1, stride: 2, padding: 0, bias: true, n: 3, h: 14, w: 15),
    ]

    @Test("forward matches the naive grouped reference on wider shapes", arguments: forwardCases)
    func forwardMatchesReference(_ c: ConvolutionCase) {
        let conv = makeConvolution(c, seed: 5)
        let x = Tensor(shape: [c.n, c.cin, c.h, c.w], storage: randomArray(c.n * c.cin * c.h * c.w, seed: 6))
        let y = conv.forward(x, mode: .training).output
        let reference = Reference.groupedConv2D(x.storage.map(Double.init), n: c.n, cin: c.cin, h: c.h, w: c.w,
                                                weight: conv.weight.value.storage.map(Double.init),
                                                bias: conv.bias?.value.storage.map(Double.init), cout: c.cout,
                                                groups: c.groups, k: c.k, stride: c.stride, padding: c.padding)
        #expect(y.shape == [c.n, c.cout, reference.ho, reference.wo])
        let result = compare(y.storage, reference.y, atol: 1e-5, rtol: 1e-4, label: c.testDescription)
        #expect(result.passed, "\(result)")
    }

    @Test("the direct depthwise kernel equals the grouped GEMM path (forward, ∂W, ∂x)", arguments: [
        // Gathered adjoint; the global 7×7 (one dot per plane); scattered adjoint (output ≪ input: 3×3 of 9×8).
        (3, 1, 1, 21, 19), (3, 2, 1, 28, 28), (3, 2, 0, 15, 18), (5, 2, 2, 13, 11), (7, 1, 0, 7, 7), (7, 1, 0, 9, 8),
        // Stride 1 on 7×7, 1×1 and 3×2 planes (the grouped path's same-padded im2col on planes smaller
        // than the window), odd widths, p 0, p = k − 1 and p > k − 1; stride 2 on odd and tiny planes.
        (3, 1, 1, 7, 7), (3, 1, 1, 1, 1), (3, 1, 1, 3, 2), (3, 1, 0, 9, 31), (3, 1, 1, 14, 14), (3, 1, 1, 5, 58),
        (5, 1, 4, 6, 5), (7, 1, 3, 9, 13), (3, 1, 3, 5, 5), (3, 2, 1, 7, 7), (3, 2, 1, 1, 1), (3, 2, 1, 13, 29),
        // Stride 3 (the general polyphase copies), with and without padding; a 1×1 depthwise window.
        (3, 3, 1, 10, 11), (4, 3, 0, 13, 12), (1, 1, 0, 5, 6),
    ])
    func depthwiseMatchesGrouped(k: Int, stride: Int, padding: Int, h: Int, w: Int) {
        let g = ConvolutionGeometry(channels: 5, height: h, width: w, kernelHeight: k, kernelWidth: k,
                                    strideHeight: stride, strideWidth: stride, paddingHeight: padding, paddingWidth: padding)
        let n = 3, c = 5, outputs = n * c * g.outputHeight * g.outputWidth
        let x = randomArray(n * g.inputSize, seed: 11), weight = randomArray(c * k * k, seed: 12)
        let bias = randomArray(c, seed: 13), dy = randomArray(outputs, seed: 14), dw0 = randomArray(c * k * k, seed: 15)
        var y1: [Float] = [], y2: [Float] = [], dx1: [Float] = [], dx2: [Float] = [], s1: [Float] = [], s2: [Float] = []
        var dw1 = dw0, dw2 = dw0
        depthwiseConvolutionForward(x, batchSize: n, geometry: g, weight: weight, bias: bias, into: &y1, scratch: &s1)
        groupedConvolutionForward(x, batchSize: n, geometry: g, groups: c, weight: weight, outputChannels: c, bias: bias,
                                  into: &y2, scratch: &s2)
        depthwiseConvolutionBackward(outputGradient: dy, input: x, batchSize: n, geometry: g, weight: weight,
                                     weightGradient: &dw1, computesInputGradient: true, into: &dx1, scratch: &s1)
        groupedConvolutionBackward(outputGradient: dy, input: x, batchSize: n, geometry: g, groups: c, weight: weight,
                                   outputChannels: c, weightGradient: &dw2, computesInputGradient: true,
                                   into: &dx2, scratch: &s2)
        for (label, a, b) in [("y", y1, y2), ("∂W", dw1, dw2), ("∂x", dx1, dx2)] {
            let result = compare(a, b.map(Double.init), atol: 1e-5, rtol: 1e-5, label: "\(label) k\(k) s\(stride) p\(padding)")
            #expect(result.passed, "\(result)")
        }
        #expect(dw1 != dw0 && dx1.contains { $0 != 0 })
    }

    @Test("depthwise kernel paths equal the grouped GEMM path under every instruction set the CPU runs: stride-1 3×3 rows four at a time (chunks of 16/8/4, last chunk moved back or masked), other rows of 32+ in place (chunks of 32/16/8/4), narrower rows via the flat output, several planes per task, channel blocks in the backward", arguments: [
        // (n, c, k, stride, padding, h, w): stride-1 3×3 at output widths 32, 37, 48, 16, 17, 21,
        // 8–14 and 28 with row counts ≡ 0–3 mod 4, p 0, 1 and 2; other rows in place: stride 2 with
        // 34 output columns, k 7; narrow rows at stride 2 on 33 and 34 input columns (even/odd SIMD8
        // splits); many 7×7 and 3×3 planes (several per task, channel blocks that do not divide C);
        // 2×2 planes (scalar row copies).
        (1, 2, 3, 1, 1, 3, 32), (2, 3, 3, 1, 1, 6, 37), (1, 2, 3, 1, 0, 3, 50), (2, 3, 3, 2, 1, 5, 67),
        (1, 2, 7, 1, 3, 9, 40), (2, 3, 3, 1, 1, 4, 16), (2, 3, 3, 1, 1, 5, 17), (1, 2, 3, 1, 0, 3, 23),
        (2, 3, 3, 1, 1, 9, 8), (2, 3, 3, 1, 1, 14, 14), (2, 3, 3, 1, 0, 9, 12), (1, 2, 3, 1, 2, 7, 9),
        (2, 3, 3, 1, 1, 11, 15), (1, 2, 3, 1, 1, 28, 28),
        (2, 3, 3, 2, 1, 9, 33), (2, 3, 3, 2, 1, 8, 34), (3, 2, 7, 2, 3, 11, 35),
        (5, 37, 3, 1, 1, 7, 7), (3, 250, 3, 1, 1, 3, 3), (4, 29, 3, 2, 1, 7, 7), (3, 5, 3, 1, 1, 2, 2),
    ])
    func depthwiseKernelPaths(n: Int, c: Int, k: Int, stride: Int, padding: Int, h: Int, w: Int) {
        let g = ConvolutionGeometry(channels: c, height: h, width: w, kernelHeight: k, kernelWidth: k,
                                    strideHeight: stride, strideWidth: stride, paddingHeight: padding, paddingWidth: padding)
        let outputs = n * c * g.outputHeight * g.outputWidth
        let x = randomArray(n * g.inputSize, seed: 41), weight = randomArray(c * k * k, seed: 42)
        let bias = randomArray(c, seed: 43), dy = randomArray(outputs, seed: 44)
        for isa in DepthwiseInstructionSet.available {
        var results: [[[Float]]] = []
        for threads in [1, 2] {
            let saved = BLAS.threadCount
            BLAS.threadCount = threads
            defer { BLAS.threadCount = saved }
            var y1: [Float] = [], y2: [Float] = [], dx1: [Float] = [], dx2: [Float] = [], s1: [Float] = [], s2: [Float] = []
            var dw1 = [Float](repeating: 0, count: weight.count), dw2 = dw1
            depthwiseConvolutionForward(x, batchSize: n, geometry: g, weight: weight, bias: bias, into: &y1, scratch: &s1,
                                        instructionSet: isa)
            groupedConvolutionForward(x, batchSize: n, geometry: g, groups: c, weight: weight, outputChannels: c, bias: bias,
                                      into: &y2, scratch: &s2)
            // A second backward on the same scratch: the zeroed padding must survive the first.
            for _ in 0..<2 {
                dw1 = [Float](repeating: 0, count: weight.count)
                depthwiseConvolutionBackward(outputGradient: dy, input: x, batchSize: n, geometry: g, weight: weight,
                                             weightGradient: &dw1, computesInputGradient: true, into: &dx1, scratch: &s1,
                                             instructionSet: isa)
            }
            groupedConvolutionBackward(outputGradient: dy, input: x, batchSize: n, geometry: g, groups: c, weight: weight,
                                       outputChannels: c, weightGradient: &dw2, computesInputGradient: true,
                                       into: &dx2, scratch: &s2)
            for (label, a, b) in [("y", y1, y2), ("∂W", dw1, dw2), ("∂x", dx1, dx2)] {
                let result = compare(a, b.map(Double.init), atol: 1e-5, rtol: 1e-5,
                                     label: "\(label) n\(n) c\(c) k\(k) s\(stride) p\(padding) \(h)×\(w) threads \(threads) \(isa)")
                #expect(result.passed, "\(result)")
            }
            results.append([y1, dw1, dx1])
        }
        #expect(results[0] == results[1], "the depthwise results differ between 1 and 2 threads (\(isa))")
        }
    }

    @Test("the depthwise kernels' instruction set is the widest /proc/cpuinfo lists; a missing one is lowered to it")
    func depthwiseInstructionSetDetection() throws {
        let best = DepthwiseInstructionSet.best
        #expect(DepthwiseInstructionSet.available.last == best && DepthwiseInstructionSet.available.first == .baseline)
        #expect(DepthwiseInstructionSet(name: "avx2") == .avx2 && DepthwiseInstructionSet(name: "sse9") == nil)
        #if os(Linux) && arch(x86_64)
        let cpuinfo = try String(contentsOfFile: "/proc/cpuinfo", encoding: .utf8)
        let flagsLine = try #require(cpuinfo.split(separator: "\n").first { $0.hasPrefix("flags") })
        let flags = Set(flagsLine.split(separator: " ").map(String.init))
        let expected: DepthwiseInstructionSet = flags.isSuperset(of: ["avx512f", "avx512vl"]) ? .avx512
            : flags.isSuperset(of: ["avx2", "fma"]) ? .avx2 : .baseline
        #expect(best == expected, "cpuid gave \(best), /proc/cpuinfo's flags say \(expected)")
        #endif
    }

    @Test("depthwise results do not depend on the thread count", arguments: [1, 2])
    func depthwiseThreadCountIndependent(stride: Int) {
        let g = ConvolutionGeometry(channels: 6, height: 14, width: 14, kernelHeight: 3, kernelWidth: 3,
                                    strideHeight: stride, strideWidth: stride, paddingHeight: 1, paddingWidth: 1)
        let n = 11, c = 6
        let x = randomArray(n * g.inputSize, seed: 21), weight = randomArray(c * 9, seed: 22)
        let dy = randomArray(n * c * g.outputHeight * g.outputWidth, seed: 23)
        func run(threads: Int) -> ([Float], [Float], [Float]) {
            let saved = BLAS.threadCount
            BLAS.threadCount = threads
            defer { BLAS.threadCount = saved }
            var y: [Float] = [], dx: [Float] = [], scratch: [Float] = []
            var dw = [Float](repeating: 0, count: weight.count)
            depthwiseConvolutionForward(x, batchSize: n, geometry: g, weight: weight, bias: nil, into: &y, scratch: &scratch)
            depthwiseConvolutionBackward(outputGradient: dy, input: x, batchSize: n, geometry: g, weight: weight,
                                         weightGradient: &dw, computesInputGradient: true, into: &dx, scratch: &scratch)
            return (y, dw, dx)
        }
        let one = run(threads: 1), two = run(threads: 2), three = run(threads: 3)
        #expect(one.0 == two.0 && one.1 == two.1 && one.2 == two.2)
        #expect(one.0 == three.0 && one.1 == three.1 && one.2 == three.2)
    }

    @Test("a NaN or Inf plane stays in its plane: small planes read in place (shifted loads into the neighbours, masked) and the padded path give the neighbours' exact values", arguments: [
        (7, 7), (14, 14), (3, 5), (17, 17),
    ])
    func depthwiseNonFinitePlaneStaysInPlace(h: Int, w: Int) {
        let n = 3, c = 4
        let g = ConvolutionGeometry(channels: c, height: h, width: w, kernelHeight: 3, kernelWidth: 3,
                                    strideHeight: 1, strideWidth: 1, paddingHeight: 1, paddingWidth: 1)
        let planeSize = h * w, weight = randomArray(c * 9, seed: 52)
        var x = randomArray(n * g.inputSize, seed: 51), dy = randomArray(n * c * planeSize, seed: 53)
        // Plane 5 (image 1, channel 1) of x and plane 6 of ∂y are not finite.
        for i in 0..<planeSize { x[5 * planeSize + i] = i % 2 == 0 ? .nan : .infinity }
        for i in 0..<planeSize { dy[6 * planeSize + i] = i % 2 == 0 ? -.infinity : .nan }
        for isa in DepthwiseInstructionSet.available {
            var y1: [Float] = [], y2: [Float] = [], dx1: [Float] = [], dx2: [Float] = [], s1: [Float] = [], s2: [Float] = []
            var dw1 = [Float](repeating: 0, count: weight.count), dw2 = dw1
            depthwiseConvolutionForward(x, batchSize: n, geometry: g, weight: weight, bias: nil, into: &y1, scratch: &s1,
                                        instructionSet: isa)
            groupedConvolutionForward(x, batchSize: n, geometry: g, groups: c, weight: weight, outputChannels: c, bias: nil,
                                      into: &y2, scratch: &s2)
            depthwiseConvolutionBackward(outputGradient: dy, input: x, batchSize: n, geometry: g, weight: weight,
                                         weightGradient: &dw1, computesInputGradient: true, into: &dx1, scratch: &s1,
                                         instructionSet: isa)
            groupedConvolutionBackward(outputGradient: dy, input: x, batchSize: n, geometry: g, groups: c, weight: weight,
                                       outputChannels: c, weightGradient: &dw2, computesInputGradient: true,
                                       into: &dx2, scratch: &s2)
            for plane in 0..<(n * c) {
                let range = (plane * planeSize)..<((plane + 1) * planeSize)
                // y: only plane 5 is not finite; ∂x: only plane 6 (∂x reads ∂y and w, not x).
                #expect(y1[range].allSatisfy(\.isFinite) == (plane != 5), "y plane \(plane) \(isa)")
                #expect(dx1[range].allSatisfy(\.isFinite) == (plane != 6), "∂x plane \(plane) \(isa)")
                if plane != 5 {
                    let r = compare(Array(y1[range]), y2[range].map(Double.init), atol: 1e-5, rtol: 1e-5, label: "y \(plane)")
                    #expect(r.passed, "\(r) \(isa)")
                }
                if plane != 6 {
                    let r = compare(Array(dx1[range]), dx2[range].map(Double.init), atol: 1e-5, rtol: 1e-5, label: "∂x \(plane)")
                    #expect(r.passed, "\(r) \(isa)")
                }
            }
            // ∂w of channel 1 (x's plane 5) and 2 (∂y's plane 6) is not finite; channels 0 and 3 are exact.
            for channel in [0, 3] {
                let range = (channel * 9)..<((channel + 1) * 9)
                let r = compare(Array(dw1[range]), dw2[range].map(Double.init), atol: 1e-5, rtol: 1e-5, label: "∂w \(channel)")
                #expect(r.passed, "\(r) \(isa)")
            }
        }
    }

    @Test("without the input gradient, a depthwise layer still accumulates ∂W and returns zeros")
    func depthwiseWithoutInputGradient() {
        let c = ConvolutionCase(cin: 4, cout: 4, groups: 4, k: 3, stride: 2, padding: 1, bias: true)
        let full = makeConvolution(c, seed: 31), partial = makeConvolution(c, seed: 31)
        partial.computesInputGradient = false
        let x = Tensor(shape: [2, 4, 9, 10], storage: randomArray(720, seed: 32))
        let (y, cacheFull) = full.forward(x, mode: .training)
        let (_, cachePartial) = partial.forward(x, mode: .training)
        let dy = Tensor(shape: y.shape, storage: randomArray(y.count, seed: 33))
        let dxFull = full.backward(dy, cache: cacheFull), dxPartial = partial.backward(dy, cache: cachePartial)
        #expect(dxPartial.shape == x.shape && dxPartial.storage.allSatisfy { $0 == 0 })
        #expect(dxFull.storage.contains { $0 != 0 })
        #expect(partial.weight.gradient.storage == full.weight.gradient.storage)
        #expect(partial.bias!.gradient.storage == full.bias!.gradient.storage)
    }

    @Test("hand-computed depthwise literal: each channel sees only its own 2×2 kernel")
    func depthwiseLiteral() {
        // Channel 0: x = [[1, 2], [3, 4]], kernel [[1, 0], [0, −1]] → 1 − 4 = −3, + bias 0.5 → −2.5.
        // Channel 1: x = [[1, 1], [2, 2]], kernel all 0.5 → 0.5·6 = 3, + bias −1 → 2.
        // (A dense 2→2 convolution would mix the channels.)
        var generator = SeededGenerator(seed: 0)
        let conv = Conv2D(inputChannels: 2, outputChannels: 2, kernelSize: 2, groups: 2, bias: true, name: "dw",
                          generator: &generator)
        #expect(conv.isDepthwise && conv.weight.value.shape == [2, 1, 2, 2])
        conv.weight.value.storage = [1, 0, 0, -1, 0.5, 0.5, 0.5, 0.5]
        conv.bias!.value.storage = [0.5, -1]
        let y = conv.forward(Tensor(shape: [1, 2, 2, 2], storage: [1, 2, 3, 4, 1, 1, 2, 2]), mode: .inference).output
        #expect(y.shape == [1, 2, 1, 1])
        #expect(y.storage == [-2.5, 2])
    }

    @Test("hand-computed grouped 1×1 literal: output o reads only its group's channels")
    func groupedLiteral() {
        // Cin 4, Cout 2, groups 2, one pixel x = [1, 2, 3, 4]: y0 = 1·1 + 2·10 = 21 (channels 0, 1),
        // y1 = 3·100 + 4·1000 = 4300 (channels 2, 3).
        var generator = SeededGenerator(seed: 0)
        let conv = Conv2D(inputChannels: 4, outputChannels: 2, kernelSize: 1, groups: 2, name: "g", generator: &generator)
        #expect(!conv.isDepthwise && conv.weight.value.shape == [2, 2, 1, 1])
        conv.weight.value.storage = [1, 10, 100, 1000]
        let y = conv.forward(Tensor(shape: [1, 4, 1, 1], storage: [1, 2, 3, 4]), mode: .inference).output
        #expect(y.storage == [21, 4300])
        // The input gradient of ∂y = [1, 1]: each channel gets its own weight.
        let (_, cache) = conv.forward(Tensor(shape: [1, 4, 1, 1], storage: [1, 2, 3, 4]), mode: .training)
        let dx = conv.backward(Tensor(shape: [1, 2, 1, 1], storage: [1, 1]), cache: cache)
        #expect(dx.storage == [1, 10, 100, 1000])
        #expect(conv.weight.gradient.storage == [1, 2, 3, 4])
    }

    @Test("hand-computed 1×1 stride-2 literal: every second pixel of every second row")
    func stridedPointwiseLiteral() {
        // x = 0…15 on 4×4; 1×1 weight 2, stride 2 → pixels (0,0) (0,2) (2,0) (2,2) = 0, 2, 8, 10, ×2.
        var generator = SeededGenerator(seed: 0)
        let conv = Conv2D(inputChannels: 1, outputChannels: 1, kernelSize: 1, stride: 2, name: "down", generator: &generator)
        conv.weight.value.storage = [2]
        let y = conv.forward(Tensor(shape: [1, 1, 4, 4], storage: (0..<16).map(Float.init)), mode: .inference).output
        #expect(y.shape == [1, 1, 2, 2])
        #expect(y.storage == [0, 4, 16, 20])
    }

    @Test("weight is [Cout, Cin/groups, k, k] with Kaiming fan-in Cin/groups·k·k")
    func shapesAndInitialization() {
        // Depthwise 512 channels, 7×7: fan-in 49, ReLU gain √2 → σ = √2/7 ≈ 0.20203; 25,088 samples.
        var generator = SeededGenerator(seed: 3)
        let conv = Conv2D(inputChannels: 512, outputChannels: 512, kernelSize: 7, groups: 512, name: "features.conv",
                          generator: &generator)
        #expect(conv.weight.value.shape == [512, 1, 7, 7] && conv.groups == 512 && conv.isDepthwise)
        let values = conv.weight.value.storage.map(Double.init)
        let std = (values.reduce(0) { $0 + $1 * $1 } / Double(values.count)).squareRoot()
        #expect(abs(std / 0.20203 - 1) < 0.03, "std \(std)")
        let grouped = Conv2D(inputChannels: 128, outputChannels: 128, kernelSize: 3, padding: 1, groups: 64, name: "g",
                             generator: &generator)
        #expect(grouped.weight.value.shape == [128, 2, 3, 3] && !grouped.isDepthwise)
        let y = grouped.forward(Tensor(shape: [1, 128, 5, 5]), mode: .inference).output
        #expect(y.shape == [1, 128, 5, 5])
    }

    @Test("groups that do not divide the channels trap, naming the values")
    func groupsPrecondition() async {
        let result = await #expect(processExitsWith: .failure, observing: [\.standardErrorContent]) {
            var generator = SeededGenerator(seed: 1)
            _ = Conv2D(inputChannels: 6, outputChannels: 4, kernelSize: 3, groups: 3, name: "bad", generator: &generator)
        }
        let message = String(decoding: result?.standardErrorContent ?? [], as: UTF8.self)
        #expect(message.contains("Conv2D bad: groups 3 must be positive and divide Cin 6 and Cout 4"), "\(message)")
    }

    @Test("an input with the wrong channel count traps, naming the shapes")
    func inputPrecondition() async {
        let result = await #expect(processExitsWith: .failure, observing: [\.standardErrorContent]) {
            var generator = SeededGenerator(seed: 1)
            let conv = Conv2D(inputChannels: 4, outputChannels: 4, kernelSize: 3, groups: 4, name: "dw", generator: &generator)
            _ = conv.forward(Tensor(shape: [1, 2, 5, 5]), mode: .inference)
        }
        let message = String(decoding: result?.standardErrorContent ?? [], as: UTF8.self)
        #expect(message.contains("Conv2D dw: input [1, 2, 5, 5], expected [N, 4, H, W]"), "\(message)")
    }
}
