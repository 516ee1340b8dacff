import Testing
import Layers
import TensorCore
import _TestSupport

@Suite struct LinearTests {
    @Test("hand-computed forward and backward")
    func literals() {
        // W = [[1, 0], [0, 1], [1, 1]] ([out 3, in 2]), b = [0.5, 0, −1], x = [[1, 2], [3, −1]]:
        // y = x·Wᵀ + b = [[1.5, 2, 2], [3.5, −1, 1]].
        var generator = SeededGenerator(seed: 0)
        let linear = Linear(inputFeatures: 2, outputFeatures: 3, name: "fc", generator: &generator)
        linear.weight.value.storage = [1, 0, 0, 1, 1, 1]
        linear.bias!.value.storage = [0.5, 0, -1]
        let (y, cache) = linear.forward(Tensor(shape: [2, 2], storage: [1, 2, 3, -1]), mode: .training)
        #expect(y.storage == [1.5, 2, 2, 3.5, -1, 1])
        // g = [[1, 0, 0], [0, 0, 1]]: ∂x = g·W = [[1, 0], [1, 1]]; ∂W = gᵀ·x = [[1, 2], [0, 0], [3, −1]];
        // ∂b = [1, 0, 1].
        linear.weight.zeroGradient(); linear.bias!.zeroGradient()
        let dx = linear.backward(Tensor(shape: [2, 3], storage: [1, 0, 0, 0, 0, 1]), cache: cache)
        #expect(dx.storage == [1, 0, 1, 1])
        #expect(linear.weight.gradient.storage == [1, 2, 0, 0, 3, -1])
        #expect(linear.bias!.gradient.storage == [1, 0, 1])
        #expect(linear.parameters.map(\.name) == ["fc.weight", "fc.bias"])
        #expect(linear.bias!.appliesWeightDecay == false && linear.weight.appliesWeightDecay)
    }

    @Test("backward matches finite differences", arguments: [true, false])
    func gradients(bias: Bool) {
        var generator = SeededGenerator(seed: 50)
        let linear = Linear(inputFeatures: 5, outputFeatures: 3, bias: bias, name: "fc", generator: &generator)
        linear.bias?.value.storage = randomArray(3, seed: 51)
        let report = checkGradients(linear, input: Tensor(shape: [4, 5], storage: randomArray(20, seed: 52)),
                                    atol: 1e-4, rtol: 1e-3)
        #expect(report.passed, "\(report)")
    }
}
