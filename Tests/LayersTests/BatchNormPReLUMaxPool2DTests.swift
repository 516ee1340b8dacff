import Testing
import Layers
import TensorCore
import _TestSupport

@Suite struct BatchNormPReLUMaxPool2DTests {
    /// A fused layer with random γ, β (negative-leaning, so the PReLU slopes matter after pooling)
    /// and distinct slopes, plus the unfused sequence over the SAME sublayers.
    func makeLayers(channels: Int, poolSize: Int) -> (fused: BatchNormPReLUMaxPool2D, unfused: Sequential) {
        let fused = BatchNormPReLUMaxPool2D(channels: channels, poolSize: poolSize, batchNormName: "bn", preluName: "prelu")
        randomizeAffine(fused, seed: 51)
        fused.batchNorm.bias.value.storage = fused.batchNorm.bias.value.storage.map { -0.6 + 0.3 * $0 }
        return (fused, Sequential([fused.batchNorm, fused.prelu, fused.pool]))
    }

    @Test("names and order of parameters and buffers are those of BatchNorm2D, PReLU")
    func names() {
        let layer = BatchNormPReLUMaxPool2D(channels: 3, batchNormName: "s.bn", preluName: "s.prelu")
        #expect(layer.parameters.map(\.name) == ["s.bn.weight", "s.bn.bias", "s.prelu.weight"])
        #expect(layer.buffers.map(\.name) == ["s.bn.running_mean", "s.bn.running_var"])
    }

    @Test("fused = unfused: the same forward values, argmax and running statistics; gradients to fp32 round-off",
          arguments: [([3, 4, 8, 6], 2), ([2, 3, 7, 5], 2), ([2, 2, 7, 8], 3), ([2, 5, 9, 11], 2), ([2, 3, 6, 38], 2), ([1, 2, 4, 16], 2), ([2, 2, 7, 21], 2)])
    func fusedEqualsUnfused(shape: [Int], poolSize: Int) {
        for mode in [Mode.training, .inference] {
            let (fused, unfused) = makeLayers(channels: shape[1], poolSize: poolSize)
            let x = Tensor(shape: shape, storage: randomArray(shape.reduce(1, *), seed: 52).map { 1.5 * $0 + 0.2 })
            let (yUnfused, cacheUnfused) = unfused.forward(x, mode: mode)
            let runningUnfused = fused.buffers.map(\.value.storage)
            for buffer in fused.buffers { buffer.value = Tensor(shape: buffer.value.shape, repeating: buffer.name.hasSuffix("var") ? 1 : 0) }
            let (yFused, cacheFused) = fused.forward(x, mode: mode)
            #expect(yFused.shape == yUnfused.shape)
            #expect(yFused.storage == yUnfused.storage, "forward values differ (\(mode))")
            #expect(fused.buffers.map(\.value.storage) == runningUnfused)

            let g = Tensor(shape: yFused.shape, storage: randomArray(yFused.count, seed: 53))
            for p in fused.parameters { p.zeroGradient() }
            let dxUnfused = unfused.backward(g, cache: cacheUnfused)
            let gradientsUnfused = fused.parameters.map(\.gradient.storage)
            for p in fused.parameters { p.zeroGradient() }
            let dxFused = fused.backward(g, cache: cacheFused)
            let input = compare(dxFused.storage, dxUnfused.storage.map(Double.init), atol: 1e-5, rtol: 1e-4, label: "∂x (\(mode))")
            #expect(input.passed, "\(input)")
            for (p, expected) in zip(fused.parameters, gradientsUnfused) {
                let result = compare(p.gradient.storage, expected.map(Double.init), atol: 1e-5, rtol: 1e-4, label: "\(p.name) (\(mode))")
                #expect(result.passed, "\(result)")
            }
        }
    }

    @Test("matches a Double reference (forward and finite differences)", arguments: [2, 3])
    func doubleReference(poolSize: Int) {
        let (fused, _) = makeLayers(channels: 3, poolSize: poolSize)
        // Strongly negative shifts: some windows' maxima stay negative, so every slope matters.
        fused.batchNorm.bias.value.storage = [-1.3, -1.1, -1.5]
        let (n, c, h, w) = (2, 3, 7, 6)
        let x = Tensor(shape: [n, c, h, w], storage: distinctValues([n, c, h, w], seed: 54).storage.map { 2 * $0 + 0.3 })
        let result = checkAgainstDouble("BatchNormPReLUMaxPool2D k\(poolSize)", fused, input: x) { x, theta, kinks in
            var a = Reference.batchNorm(x, outer: n, channels: c, inner: h * w, gamma: theta[0], beta: theta[1])
            a = Reference.prelu(a, outer: n, channels: c, inner: h * w, slopes: theta[2], kinks: kinks)
            return Reference.maxPool(a, planes: n * c, h: h, w: w, k: poolSize, stride: poolSize, kinks: kinks).y
        }
        #expect(result.passed, "\(result)")
        #expect(result.vanishingGradients == [], "gradients identically zero: \(result.vanishingGradients)")
        #expect(result.kinkMargin >= DoubleReferenceTests.minimumKinkMargin, "too close to a kink or tie: \(result.kinkMargin)")
    }

    @Test("backward matches finite differences (Float, central differences)",
          arguments: [[2, 2, 6, 5], [1, 2, 5, 17]])   // the second: rows of ≥ 4 windows (SIMD path), odd H and W
    func finiteDifferences(shape: [Int]) {
        let (fused, _) = makeLayers(channels: 2, poolSize: 2)
        let x = distinctValues(shape, seed: 55)
        let report = checkGradients(fused, input: x, step: 1e-3, atol: 2e-3, rtol: 1e-2)
        #expect(report.passed, "\(report)")
    }

    @Test("NaN propagates through the pooling as in MaxPool2D")
    func nanPropagates() {
        let (fused, unfused) = makeLayers(channels: 1, poolSize: 2)
        var values = randomArray(2 * 1 * 4 * 4, seed: 56)
        values[5] = .nan
        let x = Tensor(shape: [2, 1, 4, 4], storage: values)
        let y = fused.forward(x, mode: .inference).output, reference = unfused.forward(x, mode: .inference).output
        #expect(y.storage[0].isNaN && reference.storage[0].isNaN)
        #expect(Array(y.storage[1...]) == Array(reference.storage[1...]))
    }
}
