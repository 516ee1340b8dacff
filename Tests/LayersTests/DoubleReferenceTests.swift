// Every layer against an independent Double-precision reference.
//
// For each layer the test (1) re-implements the forward pass in Double with plain loops from the
// textbook formula (no call into Layers/TensorCore kernels), (2) checks our Float forward against it,
// (3) differentiates L = Σ w ⊙ y by central differences ON THE DOUBLE REFERENCE (step 1e-6, so the
// numerical gradient is accurate to ~1e-9 and is not limited by fp32 round-off), with respect to
// the input and every entry of every parameter, and (4) compares our Float analytic backward with it.
// Parameter gradients are checked as ACCUMULATED: each gradient is pre-filled with random values G₀
// and must end as G₀ + ∂L/∂θ.
//
// Tolerances. Forward: fp32 round-off of sums of a few dozen O(1) terms is ~1e-6, so atol 1e-5,
// rtol 1e-4 (deeper compositions: 5e-5 / 5e-4). Backward: atol 1e-4, rtol 1e-3 — two to three
// orders of magnitude above fp32 round-off of the analytic formulas (ε_fp32 ≈ 6e-8 times sums of
// ≤ a few hundred O(1) terms) and far below the error of any wrong formula on these shapes.
// Measured worst |diff|: ≤ 1e-6 forward everywhere; backward ≤ 5e-6 for single layers and the
// residual block, ≤ 1e-5 for the backbone (its fc bias gradient is exactly 0 behind BatchNorm1D).
// Deliberately broken backwards (wrong BN centering term, overwrite instead of accumulate, ignored
// dropout mask, dropped shortcut gradient, shifted max-pool argmax, …) fail with |diff| 2e-3 … 3.
//
// Kinks (ReLU/PReLU at 0, max-pool ties) make the function non-differentiable; the references
// record the smallest distance of any evaluated point to a kink (`Kinks`), and every test asserts
// it stays ≥ 1e-4 — a hundred times the 1e-6 finite-difference step and the ~1e-6 Float/Double forward
// difference, so the analytic branch taken in Float is the one differentiated in Double. Inputs
// come from `distinctValues` (no zeros, no ties), which keeps single layers ≥ 1e-2 from any kink.
// A check whose numerical gradient is identically zero tests nothing, so each test also asserts
// which gradients vanish (none, except the backbone's fc bias).
import Foundation
import Testing
import Layers
import TensorCore
import _TestSupport

// MARK: - Double references (plain loops, textbook formulas)

/// The smallest distance to a non-differentiable point seen by the references.
final class Kinks {
    var margin = Double.infinity
    func record(_ distance: Double) { margin = min(margin, distance) }
}

enum Reference {
    /// Cross-correlation `y[n,o,i,j] = b[o] + Σ_{c,u,v} W[o,c,u,v] · x[n,c,i·s+u−p, j·s+v−p]`
    /// (zero padding), x `[N, Cin, H, W]`, W `[Cout, Cin, k, k]`.
    static func conv2D(_ x: [Double], n: Int, cin: Int, h: Int, w: Int, weight: [Double], bias: [Double]?,
                       cout: Int, k: Int, stride: Int, padding: Int) -> (y: [Double], ho: Int, wo: Int) {
        let ho = (h + 2 * padding - k) / stride + 1, wo = (w + 2 * padding - k) / stride + 1
        var y = [Double](repeating: 0, count: n * cout * ho * wo)
        for b in 0..<n { for o in 0..<cout { for i in 0..<ho { for j in 0..<wo {
            var s = bias?[o] ?? 0
            for c in 0..<cin { for u in 0..<k { for v in 0..<k {
                let r = i * stride + u - padding, q = j * stride + v - padding
                guard r >= 0, r < h, q >= 0, q < w else { continue }
                s += weight[((o * cin + c) * k + u) * k + v] * x[((b * cin + c) * h + r) * w + q]
            } } }
            y[((b * cout + o) * ho + i) * wo + j] = s
        } } } }
        return (y, ho, wo)
    }

    /// Training-mode batch normalization (Ioffe & Szegedy 2015, Alg. 1) over `[outer, C, inner]`:
    /// `y = γ (x − μ_c)/√(σ²_c + ε) + β` with the biased batch variance.
    static func batchNorm(_ x: [Double], outer: Int, channels: Int, inner: Int,
                          gamma: [Double], beta: [Double], epsilon: Double = 1e-5) -> [Double] {
        var y = x
        let m = Double(outer * inner)
        for c in 0..<channels {
            var mean = 0.0
            for o in 0..<outer { for i in 0..<inner { mean += x[(o * channels + c) * inner + i] } }
            mean /= m
            var variance = 0.0
            for o in 0..<outer { for i in 0..<inner {
                let d = x[(o * channels + c) * inner + i] - mean
                variance += d * d
            } }
            variance /= m
            for o in 0..<outer { for i in 0..<inner {
                let index = (o * channels + c) * inner + i
                y[index] = gamma[c] * (x[index] - mean) / (variance + epsilon).squareRoot() + beta[c]
            } }
        }
        return y
    }

    /// PReLU (He et al. 2015): `y = x` for x > 0, `a_c · x` otherwise, over `[outer, C, inner]`.
    static func prelu(_ x: [Double], outer: Int, channels: Int, inner: Int, slopes: [Double],
                      kinks: Kinks) -> [Double] {
        var y = x
        for o in 0..<outer { for c in 0..<channels { for i in 0..<inner {
            let index = (o * channels + c) * inner + i
            kinks.record(abs(x[index]))
            y[index] = x[index] > 0 ? x[index] : slopes[c] * x[index]
        } } }
        return y
    }

    static func relu(_ x: [Double], kinks: Kinks) -> [Double] {
        x.map { kinks.record(abs($0)); return max($0, 0) }
    }

    /// Max pooling over `k×k` windows with stride `s` (no padding, floor), planes `[P, H, W]`;
    /// the kink distance is the gap between the largest and second-largest value of a window.
    static func maxPool(_ x: [Double], planes: Int, h: Int, w: Int, k: Int, stride: Int,
                        kinks: Kinks) -> (y: [Double], ho: Int, wo: Int) {
        let ho = (h - k) / stride + 1, wo = (w - k) / stride + 1
        var y = [Double](repeating: 0, count: planes * ho * wo)
        for p in 0..<planes { for i in 0..<ho { for j in 0..<wo {
            var window: [Double] = []
            for u in 0..<k { for v in 0..<k { window.append(x[(p * h + i * stride + u) * w + j * stride + v]) } }
            window.sort(by: >)
            if window.count > 1 { kinks.record(window[0] - window[1]) }
            y[(p * ho + i) * wo + j] = window[0]
        } } }
        return (y, ho, wo)
    }

    /// `y[n, o] = b[o] + Σ_i W[o, i] · x[n, i]`, W `[out, in]`.
    static func linear(_ x: [Double], n: Int, inputs: Int, outputs: Int, weight: [Double], bias: [Double]?) -> [Double] {
        var y = [Double](repeating: 0, count: n * outputs)
        for b in 0..<n { for o in 0..<outputs {
            var s = bias?[o] ?? 0
            for i in 0..<inputs { s += weight[o * inputs + i] * x[b * inputs + i] }
            y[b * outputs + o] = s
        } }
        return y
    }
}

// MARK: - Harness

/// Worst errors of one check, for the report printed by each test.
struct DoubleCheckResult: CustomStringConvertible {
    var comparisons: [Comparison] = []
    var kinkMargin = Double.infinity
    /// Parameters whose numerical gradient is (numerically) zero everywhere: such a check tests nothing.
    var vanishingGradients: [String] = []
    var passed: Bool { comparisons.allSatisfy(\.passed) }
    var description: String {
        comparisons.map { "  \($0.label): max|diff| \(String(format: "%.2e", $0.maxAbsoluteDifference))"
                          + ($0.passed ? "" : "  ← \($0)") }.joined(separator: "\n")
            + (kinkMargin.isFinite ? "\n  smallest kink distance \(String(format: "%.2e", kinkMargin))" : "")
    }
}

/// Runs steps 2–4 described at the top of the file for `layer` on `input`.
///
/// - Parameters:
///   - reference: the Double forward as a function of the input and of the parameter values
///     (in `layer.parameters` order); it records kink distances into the given `Kinks`.
///   - prepare: run before the Float forward (e.g. to reset a dropout generator).
func checkAgainstDouble(_ name: String, _ layer: any Layer, input: Tensor, mode: Mode = .training,
                        forwardTolerance: (atol: Double, rtol: Double) = (1e-5, 1e-4),
                        gradientTolerance: (atol: Double, rtol: Double) = (1e-4, 1e-3),
                        seed: UInt64 = 7, prepare: () -> Void = {},
                        reference: @escaping ([Double], [[Double]], Kinks) -> [Double]) -> DoubleCheckResult {
    var result = DoubleCheckResult()
    let x = input.storage.map(Double.init)
    let theta = layer.parameters.map { $0.value.storage.map(Double.init) }
    // Step 2: forward.
    prepare()
    let (y, cache) = layer.forward(input, mode: mode)
    let kinks = Kinks()
    let yRef = reference(x, theta, kinks)
    result.comparisons.append(compare(y.storage, yRef, atol: forwardTolerance.atol, rtol: forwardTolerance.rtol,
                                      label: "\(name) forward"))
    // Step 4 (analytic): backward with parameter gradients pre-filled, to check accumulation.
    let w = randomArray(y.count, seed: seed)
    let wD = w.map(Double.init)
    var initial: [[Float]] = []
    for (k, p) in layer.parameters.enumerated() {
        p.gradient.storage = randomArray(p.gradient.count, seed: seed + 100 + UInt64(k))
        initial.append(p.gradient.storage)
    }
    let dx = layer.backward(Tensor(shape: y.shape, storage: w), cache: cache)
    // Step 3: central differences of L = Σ w ⊙ reference(x, θ), in Double.
    func loss(_ x: [Double], _ theta: [[Double]]) -> Double {
        let y = reference(x, theta, kinks)
        var total = 0.0
        for i in y.indices { total += wD[i] * y[i] }
        return total
    }
    let numericInput = numericalGradient(at: x, step: 1e-6) { loss($0, theta) }
    if numericInput.allSatisfy({ abs($0) < 1e-6 }) { result.vanishingGradients.append("input") }
    result.comparisons.append(compare(dx.storage, numericInput, atol: gradientTolerance.atol,
                                      rtol: gradientTolerance.rtol, label: "\(name) ∂L/∂input"))
    for (k, p) in layer.parameters.enumerated() {
        let numeric = numericalGradient(at: theta[k], step: 1e-6) { value in
            var perturbed = theta
            perturbed[k] = value
            return loss(x, perturbed)
        }
        let expected = zip(initial[k], numeric).map { Double($0) + $1 }
        if numeric.allSatisfy({ abs($0) < 1e-6 }) { result.vanishingGradients.append(p.name) }
        result.comparisons.append(compare(p.gradient.storage, expected, atol: gradientTolerance.atol,
                                          rtol: gradientTolerance.rtol, label: "\(name) ∂L/∂\(p.name) (accumulated)"))
    }
    result.kinkMargin = kinks.margin
    print("Double reference check \(name):\n\(result)")
    return result
}

/// Distinct values with magnitudes in [0.2, 1.7] and random signs: no zeros, no ties (adjacent
/// values of the permuted grid differ by ≥ 1.5/count), so ReLU/PReLU/max-pool kinks are avoided.
func distinctValues(_ shape: [Int], seed: UInt64) -> Tensor {
    let count = shape.reduce(1, *)
    var generator = SeededGenerator(seed: seed)
    let magnitudes = (0..<count).map { 0.2 + 1.5 * Float($0) / Float(max(count - 1, 1)) }.shuffled(using: &generator)
    let values = magnitudes.map { generator.nextUniform() < 0.5 ? -$0 : $0 }
    return Tensor(shape: shape, storage: values)
}

/// Sets every parameter of `layer` to a deterministic, non-trivial value: BatchNorm γ around 1,
/// β and biases ~N(0, 0.5²), PReLU slopes distinct in [0.1, 0.4]; convolution/linear weights keep
/// their Kaiming initialization.
func randomizeAffine(_ layer: any Layer, seed: UInt64) {
    for (k, p) in layer.parameters.enumerated() {
        let s = seed + UInt64(k)
        if p.name.hasSuffix("prelu.weight") || p.name == "prelu.weight" {
            p.value.storage = (0..<p.value.count).map { 0.1 + 0.3 * Float($0 + 1) / Float(p.value.count + 1) }
        } else if p.name.contains("bn") || p.name.contains("features") {
            p.value.storage = p.name.hasSuffix("weight")
                ? randomArray(p.value.count, seed: s, standardDeviation: 0.3).map { 1 + $0 }
                : randomArray(p.value.count, seed: s, standardDeviation: 0.5)
        } else if p.name.hasSuffix("bias") {
            p.value.storage = randomArray(p.value.count, seed: s, standardDeviation: 0.5)
        }
    }
}

// MARK: - Tests

@Suite struct DoubleReferenceTests {
    static let minimumKinkMargin = 1e-4

    @Test("Conv2D matches a Double reference (forward and finite differences)",
          arguments: [(1, 0, false), (1, 1, true), (2, 1, false), (2, 0, true)])
    func conv2D(stride: Int, padding: Int, bias: Bool) {
        var generator = SeededGenerator(seed: 1)
        let conv = Conv2D(inputChannels: 2, outputChannels: 3, kernelSize: 3, stride: stride, padding: padding,
                          bias: bias, name: "conv", generator: &generator)
        randomizeAffine(conv, seed: 2)
        let x = distinctValues([2, 2, 5, 6], seed: 3)
        let result = checkAgainstDouble("Conv2D s\(stride) p\(padding) bias \(bias)", conv, input: x) { x, theta, _ in
            Reference.conv2D(x, n: 2, cin: 2, h: 5, w: 6, weight: theta[0], bias: bias ? theta[1] : nil,
                             cout: 3, k: 3, stride: stride, padding: padding).y
        }
        #expect(result.passed, "\(result)")
        #expect(result.vanishingGradients == [], "gradients identically zero: \(result.vanishingGradients)")
    }

    @Test("BatchNorm2D (training) matches a Double reference")
    func batchNorm2D() {
        let bn = BatchNorm2D(channels: 3, name: "bn")
        randomizeAffine(bn, seed: 4)
        // Shifted and scaled per element so channels have non-zero means and unequal variances.
        let x = Tensor(shape: [2, 3, 2, 3], storage: distinctValues([2, 3, 2, 3], seed: 5).storage.map { 2 * $0 + 0.5 })
        let result = checkAgainstDouble("BatchNorm2D", bn, input: x) { x, theta, _ in
            Reference.batchNorm(x, outer: 2, channels: 3, inner: 6, gamma: theta[0], beta: theta[1])
        }
        #expect(result.passed, "\(result)")
        #expect(result.vanishingGradients == [], "gradients identically zero: \(result.vanishingGradients)")
    }

    @Test("BatchNorm1D (training) matches a Double reference")
    func batchNorm1D() {
        let bn = BatchNorm1D(channels: 4, name: "features")
        randomizeAffine(bn, seed: 6)
        let x = Tensor(shape: [5, 4], storage: distinctValues([5, 4], seed: 7).storage.map { 1.5 * $0 - 0.3 })
        let result = checkAgainstDouble("BatchNorm1D", bn, input: x) { x, theta, _ in
            Reference.batchNorm(x, outer: 5, channels: 4, inner: 1, gamma: theta[0], beta: theta[1])
        }
        #expect(result.passed, "\(result)")
        #expect(result.vanishingGradients == [], "gradients identically zero: \(result.vanishingGradients)")
    }

    @Test("PReLU matches a Double reference", arguments: [[3, 4], [2, 3, 2, 3]])
    func prelu(shape: [Int]) {
        let layer = PReLU(channels: shape[1], name: "prelu")
        randomizeAffine(layer, seed: 8)
        let inner = shape.dropFirst(2).reduce(1, *)
        let result = checkAgainstDouble("PReLU rank \(shape.count)", layer, input: distinctValues(shape, seed: 9)) { x, theta, kinks in
            Reference.prelu(x, outer: shape[0], channels: shape[1], inner: inner, slopes: theta[0], kinks: kinks)
        }
        #expect(result.passed, "\(result)")
        #expect(result.vanishingGradients == [], "gradients identically zero: \(result.vanishingGradients)")
        #expect(result.kinkMargin >= Self.minimumKinkMargin, "input too close to the PReLU kink: \(result.kinkMargin)")
    }

    @Test("ReLU matches a Double reference")
    func relu() {
        let result = checkAgainstDouble("ReLU", ReLU(), input: distinctValues([2, 3, 2, 2], seed: 10)) { x, _, kinks in
            Reference.relu(x, kinks: kinks)
        }
        #expect(result.passed, "\(result)")
        #expect(result.vanishingGradients == [], "gradients identically zero: \(result.vanishingGradients)")
        #expect(result.kinkMargin >= Self.minimumKinkMargin, "input too close to the ReLU kink: \(result.kinkMargin)")
    }

    @Test("MaxPool2D matches a Double reference", arguments: [(2, 2), (3, 2), (2, 1)])
    func maxPool(kernelSize: Int, stride: Int) {
        let pool = MaxPool2D(kernelSize: kernelSize, stride: stride)
        // Odd sizes exercise the floor (the last row/column is dropped for 2/2).
        let result = checkAgainstDouble("MaxPool2D k\(kernelSize) s\(stride)", pool,
                                        input: distinctValues([2, 2, 5, 7], seed: 11)) { x, _, kinks in
            Reference.maxPool(x, planes: 4, h: 5, w: 7, k: kernelSize, stride: stride, kinks: kinks).y
        }
        #expect(result.passed, "\(result)")
        #expect(result.vanishingGradients == [], "gradients identically zero: \(result.vanishingGradients)")
        #expect(result.kinkMargin >= Self.minimumKinkMargin, "max-pool window too close to a tie: \(result.kinkMargin)")
    }

    @Test("Linear matches a Double reference", arguments: [true, false])
    func linear(bias: Bool) {
        var generator = SeededGenerator(seed: 12)
        let layer = Linear(inputFeatures: 5, outputFeatures: 3, bias: bias, name: "fc", generator: &generator)
        randomizeAffine(layer, seed: 13)
        let result = checkAgainstDouble("Linear bias \(bias)", layer, input: distinctValues([4, 5], seed: 14)) { x, theta, _ in
            Reference.linear(x, n: 4, inputs: 5, outputs: 3, weight: theta[0], bias: bias ? theta[1] : nil)
        }
        #expect(result.passed, "\(result)")
        #expect(result.vanishingGradients == [], "gradients identically zero: \(result.vanishingGradients)")
    }

    @Test("Dropout (training) matches a Double reference with the mask the layer drew")
    func dropout() {
        let probability: Float = 0.3
        let layer = Dropout(probability: probability, generator: SeededGenerator(seed: 15))
        let start = layer.generator
        let shape = [4, 3, 2, 2]
        // The mask the layer draws from `start`: forward a tensor of ones (y = mask).
        let drawn = layer.forward(Tensor(shape: shape, repeating: 1), mode: .training).output.storage
        let keep = 1 / (1 - Double(probability))
        let mask = drawn.map { $0 == 0 ? 0 : keep }
        #expect(drawn.allSatisfy { $0 == 0 || abs(Double($0) - keep) < 1e-6 }, "mask values \(Set(drawn))")
        #expect(mask.contains(0) && mask.contains(keep), "degenerate mask")
        let result = checkAgainstDouble("Dropout p \(probability)", layer, input: distinctValues(shape, seed: 16),
                                        prepare: { layer.generator = start }) { x, _, _ in
            zip(x, mask).map { $0 * $1 }
        }
        #expect(result.passed, "\(result)")
        #expect(result.vanishingGradients == [], "gradients identically zero: \(result.vanishingGradients)")
    }

    @Test("Flatten matches a Double reference")
    func flatten() {
        let layer = Flatten()
        let x = distinctValues([2, 3, 2, 2], seed: 17)
        #expect(layer.forward(x, mode: .training).output.shape == [2, 12])
        let result = checkAgainstDouble("Flatten", layer, input: x) { x, _, _ in x }
        #expect(result.passed, "\(result)")
        #expect(result.vanishingGradients == [], "gradients identically zero: \(result.vanishingGradients)")
    }

    /// conv3×3 → BN → PReLU → conv3×3 → BN, plus shortcut conv1×1 → BN (He et al. 2016).
    static func residualReference(_ x: [Double], _ theta: [[Double]], kinks: Kinks,
                                  n: Int, cin: Int, cout: Int, h: Int, w: Int) -> [Double] {
        let inner = h * w
        var a = Reference.conv2D(x, n: n, cin: cin, h: h, w: w, weight: theta[0], bias: nil, cout: cout,
                                 k: 3, stride: 1, padding: 1).y
        a = Reference.batchNorm(a, outer: n, channels: cout, inner: inner, gamma: theta[1], beta: theta[2])
        a = Reference.prelu(a, outer: n, channels: cout, inner: inner, slopes: theta[3], kinks: kinks)
        a = Reference.conv2D(a, n: n, cin: cout, h: h, w: w, weight: theta[4], bias: nil, cout: cout,
                             k: 3, stride: 1, padding: 1).y
        a = Reference.batchNorm(a, outer: n, channels: cout, inner: inner, gamma: theta[5], beta: theta[6])
        var s = Reference.conv2D(x, n: n, cin: cin, h: h, w: w, weight: theta[7], bias: nil, cout: cout,
                                 k: 1, stride: 1, padding: 0).y
        s = Reference.batchNorm(s, outer: n, channels: cout, inner: inner, gamma: theta[8], beta: theta[9])
        return zip(a, s).map { $0 + $1 }
    }

    @Test("ResidualBlock with projection shortcut matches a Double reference")
    func residualBlock() {
        var generator = SeededGenerator(seed: 18)
        let block = ResidualBlock(inputChannels: 2, outputChannels: 3, name: "block", generator: &generator)
        randomizeAffine(block, seed: 19)
        #expect(block.parameters.map(\.name) == ["block.conv1.weight", "block.bn1.weight", "block.bn1.bias",
                                                 "block.prelu.weight", "block.conv2.weight", "block.bn2.weight",
                                                 "block.bn2.bias", "block.shortcut.conv.weight",
                                                 "block.shortcut.bn.weight", "block.shortcut.bn.bias"])
        let result = checkAgainstDouble("ResidualBlock 2→3", block, input: distinctValues([2, 2, 3, 4], seed: 20),
                                        forwardTolerance: (5e-5, 5e-4)) { x, theta, kinks in
            Self.residualReference(x, theta, kinks: kinks, n: 2, cin: 2, cout: 3, h: 3, w: 4)
        }
        #expect(result.passed, "\(result)")
        #expect(result.vanishingGradients == [], "gradients identically zero: \(result.vanishingGradients)")
        #expect(result.kinkMargin >= Self.minimumKinkMargin, "PReLU input too close to 0: \(result.kinkMargin)")
    }

    @Test("Backbone (2 stages [2, 3], 12×10, D = 4, dropout 0) matches a Double reference")
    func backbone() {
        let configuration = BackboneConfiguration(inputChannels: 1, inputHeight: 12, inputWidth: 10,
                                                  stageChannels: [2, 3], embeddingDimension: 4, dropout: 0)
        let net = Backbone(configuration: configuration, seed: 21)
        randomizeAffine(net, seed: 22)
        // Negative BatchNorm shifts, so that negative PReLU inputs survive the 2×2 max-pooling and
        // the PReLU slopes influence the embedding (with β ~ N(0, 0.5²) stage 1's did not at all).
        for case let tail as BatchNormPReLUMaxPool2D in net.stages.map({ $0.layers[1] }) {
            let bn = tail.batchNorm
            bn.bias.value.storage = bn.bias.value.storage.map { -0.8 + 0.2 * $0 }
        }
        #expect(net.parameters.map(\.name) == [
            "backbone.stage1.conv.weight", "backbone.stage1.bn.weight", "backbone.stage1.bn.bias",
            "backbone.stage1.prelu.weight", "backbone.stage2.conv.weight", "backbone.stage2.bn.weight",
            "backbone.stage2.bn.bias", "backbone.stage2.prelu.weight", "backbone.fc.weight", "backbone.fc.bias",
            "backbone.features.weight", "backbone.features.bias"])
        let n = 3
        let result = checkAgainstDouble("Backbone", net, input: distinctValues([n, 1, 12, 10], seed: 23),
                                        forwardTolerance: (5e-5, 5e-4)) { x, theta, kinks in
            var a = x, c = 1, h = 12, w = 10
            for (stage, channels) in [2, 3].enumerated() {
                let t = stage * 4
                a = Reference.conv2D(a, n: n, cin: c, h: h, w: w, weight: theta[t], bias: nil, cout: channels,
                                     k: 3, stride: 1, padding: 1).y
                a = Reference.batchNorm(a, outer: n, channels: channels, inner: h * w,
                                        gamma: theta[t + 1], beta: theta[t + 2])
                a = Reference.prelu(a, outer: n, channels: channels, inner: h * w, slopes: theta[t + 3], kinks: kinks)
                a = Reference.maxPool(a, planes: n * channels, h: h, w: w, k: 2, stride: 2, kinks: kinks).y
                c = channels; h /= 2; w /= 2
            }
            // Flatten is the identity on the row-major storage; dropout 0 is the identity.
            a = Reference.linear(a, n: n, inputs: c * h * w, outputs: 4, weight: theta[8], bias: theta[9])
            return Reference.batchNorm(a, outer: n, channels: 4, inner: 1, gamma: theta[10], beta: theta[11])
        }
        #expect(result.passed, "\(result)")
        // The fc bias is removed by the following training-mode BatchNorm1D (∂L/∂b = 0 exactly).
        #expect(result.vanishingGradients == ["backbone.fc.bias"], "gradients identically zero: \(result.vanishingGradients)")
        #expect(result.kinkMargin >= Self.minimumKinkMargin, "too close to a PReLU/max-pool kink: \(result.kinkMargin)")
    }
}
