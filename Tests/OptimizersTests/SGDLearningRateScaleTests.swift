import Testing
import TensorCore
import _TestSupport
import Optimizers

/// Per-parameter learning-rate multipliers (parameter groups, `backboneLearningRateScale`).
@Test("learningRateScales: 0 leaves a parameter's value unchanged (decay included), 0.5 steps it by half the rate")
func learningRateScales() {
    let frozen = Parameter(name: "a", value: Tensor(shape: [2], storage: [1, -2]))
    let half = Parameter(name: "b", value: Tensor(shape: [2], storage: [1, -2]))
    let full = Parameter(name: "c", value: Tensor(shape: [2], storage: [1, -2]))
    for decoupled in [false, true] {
        for p in [frozen, half, full] { p.value.storage = [1, -2] }
        let optimizer = SGD(parameters: [frozen, half, full],
                            configuration: SGDConfiguration(momentum: 0, weightDecay: 0.1, decoupledWeightDecay: decoupled))
        #expect(optimizer.learningRateScales == [1, 1, 1])
        optimizer.learningRateScales = [0, 0.5, 1]
        for p in [frozen, half, full] { p.gradient.storage = [0.5, 0.25] }
        optimizer.step(learningRate: 0.2)
        #expect(frozen.value.storage == [1, -2], "decoupled \(decoupled)")
        // p − lr·s·(g + λp) coupled; p·(1 − lr·s·λ) − lr·s·g decoupled.
        let expected: (Double, Double) -> [Double] = { lr, s in
            decoupled ? [1 * (1 - lr * s * 0.1) - lr * s * 0.5, -2 * (1 - lr * s * 0.1) - lr * s * 0.25]
                      : [1 - lr * s * (0.5 + 0.1), -2 - lr * s * (0.25 - 0.2)]
        }
        let h = compare(half.value.storage, expected(0.2, 0.5), atol: 1e-6, rtol: 1e-6, label: "half")
        let f = compare(full.value.storage, expected(0.2, 1), atol: 1e-6, rtol: 1e-6, label: "full")
        #expect(h.passed, "\(h)")
        #expect(f.passed, "\(f)")
    }
}
