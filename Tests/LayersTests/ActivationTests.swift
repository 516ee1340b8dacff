import Testing
import Layers
import TensorCore
import _TestSupport

@Suite struct PReLUTests {
    @Test("hand-computed forward and backward")
    func literals() {
        // [N=1, C=2, H=1, W=2]; channel 0: −2, 3 with a = 0.25; channel 1: −4, 0.5 with a = 0.1.
        let prelu = PReLU(channels: 2, name: "act")
        prelu.weight.value.storage = [0.25, 0.1]
        let (y, cache) = prelu.forward(Tensor(shape: [1, 2, 1, 2], storage: [-2, 3, -4, 0.5]), mode: .training)
        #expect(y.storage == [-0.5, 3, -0.4, 0.5])
        prelu.weight.zeroGradient()
        let dx = prelu.backward(Tensor(shape: [1, 2, 1, 2], repeating: 1), cache: cache)
        // ∂x = 1 where x > 0, else a; ∂a_c = Σ_{x≤0} g·x = −2 and −4.
        #expect(dx.storage == [0.25, 1, 0.1, 1])
        #expect(prelu.weight.gradient.storage == [-2, -4])
        #expect(PReLU(channels: 3, name: "p").weight.value.storage == [0.25, 0.25, 0.25])
    }

    @Test("backward matches finite differences on [N, C, H, W] (SIMD path) and [N, C]",
          arguments: [[2, 3, 4, 5], [3, 4]])
    func gradients(shape: [Int]) {
        let prelu = PReLU(channels: shape[1], name: "act")
        prelu.weight.value.storage = randomArray(shape[1], seed: 30).map { 0.25 + 0.1 * $0 }
        let report = checkGradients(prelu, input: awayFromZero(shape, seed: 31), step: 1e-2, atol: 1e-4, rtol: 1e-4)
        #expect(report.passed, "\(report)")
    }
}

@Suite struct ReLUTests {
    @Test("hand-computed forward and backward")
    func literals() {
        let relu = ReLU()
        let (y, cache) = relu.forward(Tensor(shape: [1, 4], storage: [-1, 0, 2, -3]), mode: .training)
        #expect(y.storage == [0, 0, 2, 0])
        let dx = relu.backward(Tensor(shape: [1, 4], storage: [5, 6, 7, 8]), cache: cache)
        #expect(dx.storage == [0, 0, 7, 0])   // the subgradient at 0 is 0, as PyTorch
    }

    @Test("backward matches finite differences")
    func gradients() {
        let report = checkGradients(ReLU(), input: awayFromZero([2, 3, 3], seed: 32), atol: 1e-4, rtol: 1e-4)
        #expect(report.passed, "\(report)")
    }
}

@Suite struct MaxPool2DTests {
    @Test("hand-computed 2×2 pooling, argmax routing and floor mode")
    func literals() {
        // 4×4 plane, windows: [[3,1],[0,2]] → 3 at (0,0); [[5,9],[4,6]] → 9 at (0,3);
        // [[7,8],[2,1]] → 8 at (2,1); [[0,-1],[-2,-3]] → 0 at (2,2).
        let x: [Float] = [3, 1, 5, 9,
                          0, 2, 4, 6,
                          7, 8, 0, -1,
                          2, 1, -2, -3]
        let pool = MaxPool2D()
        let (y, cache) = pool.forward(Tensor(shape: [1, 1, 4, 4], storage: x), mode: .training)
        #expect(y.shape == [1, 1, 2, 2])
        #expect(y.storage == [3, 9, 8, 0])
        let dx = pool.backward(Tensor(shape: [1, 1, 2, 2], storage: [1, 2, 3, 4]), cache: cache)
        #expect(dx.storage == [1, 0, 0, 2,
                               0, 0, 0, 0,
                               0, 3, 4, 0,
                               0, 0, 0, 0])
        // Odd sides pool in floor mode: 5×3 → 2×1, the last row and column are dropped.
        let odd = pool.forward(Tensor(shape: [1, 1, 5, 3], storage: (0..<15).map(Float.init)), mode: .inference).output
        #expect(odd.shape == [1, 1, 2, 1])
        #expect(odd.storage == [4, 10])   // max of {0,1,3,4} and {6,7,9,10}
        let big = pool.forward(Tensor(shape: [2, 3, 23, 23]), mode: .inference).output
        #expect(big.shape == [2, 3, 11, 11])
    }

    @Test("ties keep the first maximum; NaN propagates")
    func tiesAndNaN() {
        let pool = MaxPool2D()
        let (_, cache) = pool.forward(Tensor(shape: [1, 1, 2, 2], storage: [1, 1, 1, 1]), mode: .training)
        #expect(pool.backward(Tensor(shape: [1, 1, 1, 1], storage: [1]), cache: cache).storage == [1, 0, 0, 0])
        let y = pool.forward(Tensor(shape: [1, 1, 2, 2], storage: [1, .nan, 2, 0]), mode: .training).output
        #expect(y.storage[0].isNaN)
    }

    /// The reference: each window scanned row-major, a later element wins when greater or NaN.
    func referencePool(_ x: [Float], planes: Int, h: Int, w: Int) -> (values: [Float], argmax: [Int]) {
        let ho = h / 2, wo = w / 2
        var values: [Float] = [], argmax: [Int] = []
        for p in 0..<planes {
            for oy in 0..<ho {
                for ox in 0..<wo {
                    var best = Float.nan, index = -1
                    for (dy, dx) in [(0, 0), (0, 1), (1, 0), (1, 1)] {
                        let i = p * h * w + (2 * oy + dy) * w + 2 * ox + dx
                        if index < 0 || x[i] > best || x[i].isNaN { best = x[i]; index = i }
                    }
                    values.append(best)
                    argmax.append(index)
                }
            }
        }
        return (values, argmax)
    }

    @Test("2×2 pooling matches the reference for every row length (scalar and SIMD paths), ties and NaN",
          arguments: [1, 3, 4, 5, 7, 8, 9, 11, 15, 16, 17, 23, 33])
    func matchesReference(outputWidth: Int) {
        let (planes, h) = (3, 5)
        let w = 2 * outputWidth + outputWidth % 2   // odd widths drop their last column
        // Values on a coarse grid (many ties), with one NaN.
        var x = randomArray(planes * h * w, seed: UInt64(200 + outputWidth)).map { ($0 * 2).rounded() / 2 }
        x[x.count / 2] = .nan
        let pool = MaxPool2D()
        let (y, cache) = pool.forward(Tensor(shape: [1, planes, h, w], storage: x), mode: .training)
        let reference = referencePool(x, planes: planes, h: h, w: w)
        #expect(y.shape == [1, planes, h / 2, outputWidth])
        #expect(zip(y.storage, reference.values).allSatisfy { $0 == $1 || ($0.isNaN && $1.isNaN) })
        #expect(reference.values.contains { $0.isNaN } == y.storage.contains { $0.isNaN })
        // Routing 1, 2, 3, … back must land exactly on the reference argmax.
        let g = (0..<y.count).map { Float($0 + 1) }
        let dx = pool.backward(Tensor(shape: y.shape, storage: g), cache: cache)
        var expected = [Float](repeating: 0, count: x.count)
        for (j, i) in reference.argmax.enumerated() { expected[i] += g[j] }
        let routed = compare(dx.storage, expected, atol: 0, rtol: 0, label: "routed gradient")
        #expect(routed.passed, "\(routed)")
    }

    @Test("backward matches finite differences (distinct values)")
    func gradients() {
        // A permutation of 0…(n−1), scaled by 0.1: every window has a unique maximum ≥ 0.1 above the rest.
        let count = 2 * 2 * 5 * 6
        var generator = SeededGenerator(seed: 33)
        let values = (0..<count).map { Float($0) * 0.1 }.shuffled(using: &generator)
        let report = checkGradients(MaxPool2D(), input: Tensor(shape: [2, 2, 5, 6], storage: values), step: 1e-2,
                                    atol: 1e-4, rtol: 1e-4)
        #expect(report.passed, "\(report)")
    }
}

@Suite struct DropoutTests {
    @Test("inference (and p = 0) is the identity")
    func identity() {
        let x = Tensor(shape: [3, 4], storage: randomArray(12, seed: 40))
        let dropout = Dropout(probability: 0.5, generator: SeededGenerator(seed: 1))
        let (y, cache) = dropout.forward(x, mode: .inference)
        #expect(y == x)
        #expect(dropout.backward(x, cache: cache) == x)
        #expect(Dropout(probability: 0, generator: SeededGenerator(seed: 1)).forward(x, mode: .training).output == x)
    }

    @Test("training keeps the mean: kept elements are scaled by 1/(1 − p)")
    func meanPreserved() {
        let count = 100_000, p: Float = 0.3
        let dropout = Dropout(probability: p, generator: SeededGenerator(seed: 41))
        let y = dropout.forward(Tensor(shape: [1, count], repeating: 1), mode: .training).output
        let zeros = y.storage.filter { $0 == 0 }.count
        #expect(y.storage.allSatisfy { $0 == 0 || $0 == 1 / (1 - p) })
        // Binomial(100000, 0.3): σ ≈ 145 zeros, so ±1% (1000) is ≈ 7σ.
        #expect(abs(Double(zeros) / Double(count) - 0.3) < 0.01)
        #expect(abs(sum(y.storage) / Double(count) - 1) < 0.015)
    }

    @Test("masks are reproducible from the seed; backward applies the same mask")
    func reproducible() {
        let x = Tensor(shape: [4, 8], storage: randomArray(32, seed: 42))
        let a = Dropout(probability: 0.5, generator: SeededGenerator(seed: 7))
        let b = Dropout(probability: 0.5, generator: SeededGenerator(seed: 7))
        let c = Dropout(probability: 0.5, generator: SeededGenerator(seed: 8))
        let (ya, cacheA) = a.forward(x, mode: .training)
        #expect(ya == b.forward(x, mode: .training).output)
        #expect(ya != c.forward(x, mode: .training).output)
        #expect(ya != a.forward(x, mode: .training).output)   // the stream advances
        let g = Tensor(shape: [4, 8], repeating: 1)
        let dx = a.backward(g, cache: cacheA)
        for i in 0..<32 { #expect(dx.storage[i] == (ya.storage[i] == 0 ? 0 : 2)) }
        let saved = a.generator
        let report = checkGradients(a, input: x, atol: 1e-4, rtol: 1e-4) { a.generator = saved }
        #expect(report.passed, "\(report)")
    }
}

@Suite struct FlattenTests {
    @Test("reshapes [N, C, H, W] to [N, C·H·W] and back")
    func flatten() {
        let x = Tensor(shape: [2, 3, 2, 2], storage: (0..<24).map(Float.init))
        let flatten = Flatten()
        let (y, cache) = flatten.forward(x, mode: .training)
        #expect(y.shape == [2, 12])
        #expect(y.storage == x.storage)
        let dx = flatten.backward(y, cache: cache)
        #expect(dx == x)
    }
}
