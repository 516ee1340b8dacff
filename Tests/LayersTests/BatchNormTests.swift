import Testing
import Layers
import TensorCore
import _TestSupport

@Suite struct BatchNormTests {
    /// Input [N=2, C=2, H=1, W=2]. Channel 0 holds 1, 2 (n=0) and 3, 4 (n=1): μ = 2.5,
    /// σ² = (2.25+0.25+0.25+2.25)/4 = 1.25, unbiased 5/3. Channel 1 holds 0, 0 and 0, 8:
    /// μ = 2, σ² = (4+4+4+36)/4 = 12, unbiased 16.
    let input = Tensor(shape: [2, 2, 1, 2], storage: [1, 2, 0, 0, 3, 4, 0, 8])

    @Test("training: batch statistics normalize, running statistics follow PyTorch")
    func trainingLiterals() {
        let bn = BatchNorm2D(channels: 2, name: "bn")
        let y = bn.forward(input, mode: .training).output
        let s0 = (1.25 + 1e-5).squareRoot(), s1 = (12 + 1e-5).squareRoot()
        let expected: [Double] = [(1 - 2.5) / s0, (2 - 2.5) / s0, (0 - 2) / s1, (0 - 2) / s1,
                                  (3 - 2.5) / s0, (4 - 2.5) / s0, (0 - 2) / s1, (8 - 2) / s1]
        let result = compare(y.storage, expected, atol: 1e-6, rtol: 1e-5, label: "y")
        #expect(result.passed, "\(result)")
        // running_mean = 0.9·0 + 0.1·μ = [0.25, 0.2]; running_var = 0.9·1 + 0.1·unbiased = [0.9 + 1/6, 2.5].
        let mean = compare(bn.runningMean.value.storage, [0.25, 0.2], atol: 1e-7, rtol: 1e-6, label: "running_mean")
        let variance = compare(bn.runningVariance.value.storage, [0.9 + 1.0 / 6.0, 2.5], atol: 1e-7, rtol: 1e-6,
                               label: "running_var")
        #expect(mean.passed, "\(mean)")
        #expect(variance.passed, "\(variance)")
        #expect(bn.buffers.map(\.name) == ["bn.running_mean", "bn.running_var"])
        #expect(bn.parameters.map(\.name) == ["bn.weight", "bn.bias"])
    }

    @Test("inference uses the running statistics and leaves them unchanged")
    func inferenceLiterals() {
        let bn = BatchNorm2D(channels: 2, name: "bn")
        bn.runningMean.value.storage = [1, -1]
        bn.runningVariance.value.storage = [4, 0.25]
        bn.weight.value.storage = [2, 1]
        bn.bias.value.storage = [0.5, 0]
        let y = bn.forward(input, mode: .inference).output
        // y = γ(x − m)/√(v + ε) + β per channel.
        let a0 = 2 / (4 + 1e-5).squareRoot(), a1 = 1 / (0.25 + 1e-5).squareRoot()
        let expected: [Double] = [a0 * 0 + 0.5, a0 * 1 + 0.5, a1 * 1, a1 * 1,
                                  a0 * 2 + 0.5, a0 * 3 + 0.5, a1 * 1, a1 * 9]
        let result = compare(y.storage, expected, atol: 1e-6, rtol: 1e-5, label: "y")
        #expect(result.passed, "\(result)")
        #expect(bn.runningMean.value.storage == [1, -1])
        #expect(bn.runningVariance.value.storage == [4, 0.25])
    }

    @Test("BatchNorm1D: training literals on [N, C]")
    func batchNorm1DLiterals() {
        // Column 0: 1, 3, 5 → μ 3, σ² 8/3, unbiased 4. Column 1: 2, 2, 2 → μ 2, σ² 0 → y = β.
        let bn = BatchNorm1D(channels: 2, name: "features")
        bn.bias.value.storage = [0, 0.75]
        let y = bn.forward(Tensor(shape: [3, 2], storage: [1, 2, 3, 2, 5, 2]), mode: .training).output
        let s = (8.0 / 3.0 + 1e-5).squareRoot()
        let result = compare(y.storage, [-2 / s, 0.75, 0, 0.75, 2 / s, 0.75], atol: 1e-6, rtol: 1e-5, label: "y")
        #expect(result.passed, "\(result)")
        let variance = compare(bn.runningVariance.value.storage, [0.9 + 0.4, 0.9], atol: 1e-7, rtol: 1e-6, label: "running_var")
        #expect(variance.passed, "\(variance)")
        #expect(bn.runningMean.value.storage == [0.3, 0.2])
    }

    func randomAffine(_ weight: Parameter, _ bias: Parameter, seed: UInt64) {
        weight.value.storage = randomArray(weight.value.count, seed: seed).map { 1 + 0.5 * $0 }
        bias.value.storage = randomArray(bias.value.count, seed: seed + 1)
    }

    @Test("BatchNorm2D backward matches finite differences", arguments: [Mode.training, Mode.inference])
    func gradients2D(mode: Mode) {
        let bn = BatchNorm2D(channels: 3, name: "bn")
        randomAffine(bn.weight, bn.bias, seed: 20)
        bn.runningMean.value.storage = [0.3, -0.2, 0.1]
        bn.runningVariance.value.storage = [1.5, 0.7, 2]
        let x = Tensor(shape: [2, 3, 2, 3], storage: randomArray(36, seed: 21).map { 2 * $0 + 0.5 })
        let report = checkGradients(bn, input: x, mode: mode, step: 1e-2, atol: 1e-3, rtol: 2e-3)
        #expect(report.passed, "\(report)")
    }

    @Test("BatchNorm1D backward matches finite differences", arguments: [Mode.training, Mode.inference])
    func gradients1D(mode: Mode) {
        let bn = BatchNorm1D(channels: 4, name: "features")
        randomAffine(bn.weight, bn.bias, seed: 22)
        let x = Tensor(shape: [5, 4], storage: randomArray(20, seed: 23))
        let report = checkGradients(bn, input: x, mode: mode, step: 1e-2, atol: 1e-3, rtol: 2e-3)
        #expect(report.passed, "\(report)")
    }

    @Test("statistics of a large channel are accurate (Double accumulation)")
    func largeChannelStatistics() {
        // 100,000 values 1000 + (−1)^i: μ = 1000, σ² = 1 exactly; a naive Float sum drifts.
        let count = 100_000
        let x = Tensor(shape: [1, 1, 1, count], storage: (0..<count).map { 1000 + ($0 % 2 == 0 ? 1 : -1) })
        let bn = BatchNorm2D(channels: 1, momentum: 1, name: "bn")
        let y = bn.forward(x, mode: .training).output
        #expect(abs(bn.runningMean.value.storage[0] - 1000) < 1e-4)
        // running_var with momentum 1 is the unbiased variance, n/(n−1).
        #expect(abs(Double(bn.runningVariance.value.storage[0]) - Double(count) / Double(count - 1)) < 1e-5)
        #expect(abs(Double(y.storage[0]) - 1 / (1 + 1e-5).squareRoot()) < 1e-5)
    }
}
