import Testing
import Layers
import TensorCore
import _TestSupport

/// Direct convolution in `Double` (the algorithmic reference): `[N, Cin, H, W]` ⊛ `[Cout, Cin, k, k]`.
func directConvolution(_ x: [Float], n: Int, cin: Int, h: Int, w: Int, weight: [Float], cout: Int, k: Int,
                       stride: Int, padding: Int, bias: [Float]?) -> (values: [Double], ho: Int, wo: Int) {
    let ho = (h + 2 * padding - k) / stride + 1, wo = (w + 2 * padding - k) / stride + 1
    var out = [Double](repeating: 0, count: n * cout * ho * wo)
    for b in 0..<n {
        for o in 0..<cout {
            for i in 0..<ho {
                for j in 0..<wo {
                    var total = Double(bias?[o] ?? 0)
                    for c in 0..<cin {
                        for p in 0..<k {
                            for q in 0..<k {
                                let y = i * stride - padding + p, xx = j * stride - padding + q
                                guard y >= 0, y < h, xx >= 0, xx < w else { continue }
                                total += Double(weight[((o * cin + c) * k + p) * k + q]) * Double(x[((b * cin + c) * h + y) * w + xx])
                            }
                        }
                    }
                    out[((b * cout + o) * ho + i) * wo + j] = total
                }
            }
        }
    }
    return (out, ho, wo)
}

@Suite struct Conv2DTests {
    func makeConv(cin: Int, cout: Int, k: Int, stride: Int, padding: Int, bias: Bool, seed: UInt64) -> Conv2D {
        var generator = SeededGenerator(seed: seed)
        let conv = Conv2D(inputChannels: cin, outputChannels: cout, kernelSize: k, stride: stride, padding: padding,
                          bias: bias, name: "conv", generator: &generator)
        if let b = conv.bias { b.value.storage = randomArray(cout, seed: seed + 1) }
        return conv
    }

    @Test("forward matches a direct convolution", arguments: [
        (3, 1, 0), (3, 2, 1), (3, 1, 1), (1, 1, 0), (2, 2, 0), (3, 3, 2),
    ])
    func forwardMatchesDirect(k: Int, stride: Int, padding: Int) {
        let (n, cin, cout, h, w) = (2, 2, 3, 5, 6)
        let conv = makeConv(cin: cin, cout: cout, k: k, stride: stride, padding: padding, bias: true, seed: 3)
        let x = randomArray(n * cin * h * w, seed: 4)
        let y = conv.forward(Tensor(shape: [n, cin, h, w], storage: x), mode: .training).output
        let reference = directConvolution(x, n: n, cin: cin, h: h, w: w, weight: conv.weight.value.storage,
                                          cout: cout, k: k, stride: stride, padding: padding,
                                          bias: conv.bias!.value.storage)
        #expect(y.shape == [n, cout, reference.ho, reference.wo])
        let result = compare(y.storage, reference.values, atol: 1e-5, rtol: 1e-5, label: "conv k\(k) s\(stride) p\(padding)")
        #expect(result.passed, "\(result)")
    }

    @Test("a hand-computed 1-channel convolution")
    func literal() {
        // x = [[1, 2], [3, 4]], 2×2 kernel [[1, 0], [0, -1]], padding 0: one output 1·1 + 4·(−1) = −3,
        // plus bias 0.5 → −2.5.
        var generator = SeededGenerator(seed: 0)
        let conv = Conv2D(inputChannels: 1, outputChannels: 1, kernelSize: 2, bias: true, name: "c", generator: &generator)
        conv.weight.value.storage = [1, 0, 0, -1]
        conv.bias!.value.storage = [0.5]
        let y = conv.forward(Tensor(shape: [1, 1, 2, 2], storage: [1, 2, 3, 4]), mode: .inference).output
        #expect(y.shape == [1, 1, 1, 1])
        #expect(y.storage == [-2.5])
    }

    @Test("backward matches finite differences (input, weight, bias)", arguments: [(3, 2, 1), (3, 1, 1), (1, 1, 0)])
    func gradients(k: Int, stride: Int, padding: Int) {
        let conv = makeConv(cin: 2, cout: 3, k: k, stride: stride, padding: padding, bias: true, seed: 5)
        let x = Tensor(shape: [2, 2, 5, 4], storage: randomArray(80, seed: 6))
        let report = checkGradients(conv, input: x, step: 1e-2, atol: 1e-3, rtol: 1e-3)
        #expect(report.passed, "\(report)")
    }

    @Test("an older cache stays valid after another forward pass (scratch buffers are copy-on-write)")
    func olderCacheStaysValid() {
        let conv = makeConv(cin: 2, cout: 3, k: 3, stride: 1, padding: 1, bias: false, seed: 7)
        let x1 = Tensor(shape: [2, 2, 4, 4], storage: randomArray(64, seed: 8))
        let x2 = Tensor(shape: [2, 2, 4, 4], storage: randomArray(64, seed: 9))
        let g = Tensor(shape: [2, 3, 4, 4], storage: randomArray(96, seed: 10))
        let (_, cache1) = conv.forward(x1, mode: .training)
        conv.weight.zeroGradient()
        let expectedInput = conv.backward(g, cache: cache1)
        let expectedWeight = conv.weight.gradient.storage

        let (_, olderCache) = conv.forward(x1, mode: .training)
        let (_, _) = conv.forward(x2, mode: .training)   // reuses (or must copy) the scratch buffers
        conv.weight.zeroGradient()
        let dx = conv.backward(g, cache: olderCache)
        #expect(dx.storage == expectedInput.storage)
        #expect(conv.weight.gradient.storage == expectedWeight)
    }

    @Test("Kaiming-normal initialization has standard deviation gain/√fan_in")
    func initialization() {
        // 64 × 32·3·3 = 18,432 samples; PReLU gain √(2/(1+0.25²)) ≈ 1.3720, fan_in 288 → σ ≈ 0.080845.
        var generator = SeededGenerator(seed: 11)
        let conv = Conv2D(inputChannels: 32, outputChannels: 64, kernelSize: 3, nonlinearity: .leakyReLU(slope: 0.25),
                          name: "c", generator: &generator)
        let values = conv.weight.value.storage.map(Double.init)
        let mean = values.reduce(0, +) / Double(values.count)
        let std = (values.reduce(0) { $0 + ($1 - mean) * ($1 - mean) } / Double(values.count)).squareRoot()
        #expect(abs(mean) < 0.003)
        #expect(abs(std / 0.080845 - 1) < 0.03, "std \(std)")
        #expect(conv.weight.name == "c.weight" && conv.bias == nil && conv.parameters.count == 1)
    }
}
