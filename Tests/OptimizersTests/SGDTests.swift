import Testing
import TensorCore
import _TestSupport
@testable import Optimizers

/// Runs three steps on `f(p) = ½·Σp²` (so the gradient equals the value) and returns the value
/// after each step and the final momentum buffer.
private func quadraticTrajectory(_ configuration: SGDConfiguration, start: [Float] = [1, -2],
                                 appliesWeightDecay: Bool = true,
                                 learningRate: Float = 0.1) -> (values: [[Float]], buffer: [Float]) {
    let parameter = Parameter(name: "w", value: Tensor(shape: [start.count], storage: start),
                              appliesWeightDecay: appliesWeightDecay)
    let optimizer = SGD(parameters: [parameter], configuration: configuration)
    var values: [[Float]] = []
    for _ in 0..<3 {
        optimizer.zeroGradients()
        parameter.gradient.storage = parameter.value.storage
        optimizer.step(learningRate: learningRate)
        values.append(parameter.value.storage)
    }
    return (values, optimizer.momentumBuffers[0].storage)
}

/// Checks a trajectory of the scalar recurrence started at 1; the second coordinate starts at
/// −2 and, the update being linear in p, must be exactly −2 times the first.
private func expectTrajectory(_ result: (values: [[Float]], buffer: [Float]),
                              _ expected: [Double], buffer expectedBuffer: Double, _ label: String) {
    for (step, values) in result.values.enumerated() {
        let check = compare(values, [expected[step], -2 * expected[step]], atol: 1e-6, rtol: 1e-6,
                            label: "\(label) step \(step + 1)")
        #expect(check.passed, "\(check)")
    }
    let bufferCheck = compare(result.buffer, [expectedBuffer, -2 * expectedBuffer], atol: 1e-6, rtol: 1e-6,
                              label: "\(label) buffer")
    #expect(bufferCheck.passed, "\(bufferCheck)")
}

@Test func plainGradientDescent() {
    // μ = 0, λ = 0, lr = 0.1, g = p: p ← 0.9·p, so 0.9, 0.81, 0.729; the buffer holds the
    // last gradient, 0.81.
    let result = quadraticTrajectory(SGDConfiguration(momentum: 0, weightDecay: 0))
    expectTrajectory(result, [0.9, 0.81, 0.729], buffer: 0.81, "plain")
}

@Test func heavyBallMomentum() {
    // μ = 0.9, lr = 0.1, g = p, p₀ = 1:
    // 1: g=1,    b=1,              p=1−0.1=0.9
    // 2: g=0.9,  b=0.9+0.9=1.8,    p=0.9−0.18=0.72
    // 3: g=0.72, b=1.62+0.72=2.34, p=0.72−0.234=0.486
    let result = quadraticTrajectory(SGDConfiguration(momentum: 0.9, weightDecay: 0))
    expectTrajectory(result, [0.9, 0.72, 0.486], buffer: 2.34, "momentum")
}

@Test func nesterovMomentum() {
    // μ = 0.9, lr = 0.1, g = p, p₀ = 1, d = g + μ·b:
    // 1: g=1,      b=1,      d=1.9,     p=0.81
    // 2: g=0.81,   b=1.71,   d=2.349,   p=0.5751
    // 3: g=0.5751, b=2.1141, d=2.47779, p=0.327321
    let result = quadraticTrajectory(SGDConfiguration(momentum: 0.9, nesterov: true, weightDecay: 0))
    expectTrajectory(result, [0.81, 0.5751, 0.327321], buffer: 2.1141, "nesterov")
}

@Test func coupledWeightDecay() {
    // λ = 0.1 coupled: g' = g + λp = 1.1p; μ = 0.9, lr = 0.1, p₀ = 1:
    // 1: g'=1.1,     b=1.1,     p=0.89
    // 2: g'=0.979,   b=1.969,   p=0.6931
    // 3: g'=0.76241, b=2.53451, p=0.439649
    let result = quadraticTrajectory(SGDConfiguration(momentum: 0.9, weightDecay: 0.1))
    expectTrajectory(result, [0.89, 0.6931, 0.439649], buffer: 2.53451, "coupled")
}

@Test func decoupledWeightDecay() {
    // λ = 0.1 decoupled: b = μb + g (no decay inside), p ← p·(1 − lr·λ) − lr·b, p₀ = 1:
    // 1: g=1,      b=1,      p=0.99−0.1=0.89
    // 2: g=0.89,   b=1.79,   p=0.8811−0.179=0.7021
    // 3: g=0.7021, b=2.3131, p=0.695079−0.23131=0.463769
    let result = quadraticTrajectory(SGDConfiguration(momentum: 0.9, weightDecay: 0.1, decoupledWeightDecay: true))
    expectTrajectory(result, [0.89, 0.7021, 0.463769], buffer: 2.3131, "decoupled")
}

@Test(arguments: [false, true])
func parameterWithoutWeightDecay(decoupled: Bool) {
    // appliesWeightDecay == false: the λ = 0.1 run must equal the λ = 0 momentum run.
    let result = quadraticTrajectory(SGDConfiguration(momentum: 0.9, weightDecay: 0.1, decoupledWeightDecay: decoupled),
                                     appliesWeightDecay: false)
    expectTrajectory(result, [0.9, 0.72, 0.486], buffer: 2.34, "no-decay")
}

@Test func clippingScalesToExactlyMaxNorm() {
    // Gradients [3, 0] and [0, 4]: global norm 5. With clip 1 they become [0.6, 0] and [0, 0.8];
    // with μ = 0, λ = 0 and lr = 1 the parameters move by exactly minus those.
    let a = Parameter(name: "a", value: Tensor(shape: [2], storage: [1, 1]))
    let b = Parameter(name: "b", value: Tensor(shape: [2], storage: [1, 1]))
    let optimizer = SGD(parameters: [a, b], configuration: SGDConfiguration(momentum: 0, weightDecay: 0, gradientClipNorm: 1))
    a.gradient.storage = [3, 0]
    b.gradient.storage = [0, 4]
    #expect(globalGradientNorm([a, b]) == 5)
    let norm = optimizer.step(learningRate: 1)
    #expect(norm == 5)
    #expect(compare(a.gradient.storage + b.gradient.storage, [0.6, 0, 0, 0.8], atol: 1e-7, rtol: 0).passed)
    #expect(abs(globalGradientNorm([a, b]) - 1) < 1e-6)
    #expect(compare(a.value.storage + b.value.storage, [0.4, 1, 1, 0.2], atol: 1e-6, rtol: 0).passed)
}

@Test func clippingLeavesSmallGradientsAlone() {
    let a = Parameter(name: "a", value: Tensor(shape: [2], storage: [1, 1]))
    let optimizer = SGD(parameters: [a], configuration: SGDConfiguration(momentum: 0, weightDecay: 0, gradientClipNorm: 10))
    a.gradient.storage = [3, 4]
    #expect(optimizer.step(learningRate: 0.5) == 5)
    #expect(a.gradient.storage == [3, 4])
    #expect(a.value.storage == [-0.5, -1])  // 1 − 0.5·3, 1 − 0.5·4
}

@Test func nonFiniteGradientChangesNothing() {
    let a = Parameter(name: "a", value: Tensor(shape: [2], storage: [1, 2]))
    let b = Parameter(name: "b", value: Tensor(shape: [1], storage: [3]))
    let optimizer = SGD(parameters: [a, b], configuration: SGDConfiguration())
    a.gradient.storage = [1, 1]
    b.gradient.storage = [1]
    optimizer.step(learningRate: 0.1)
    let valuesBefore = a.value.storage + b.value.storage
    let buffersBefore = optimizer.momentumBuffers
    b.gradient.storage = [.nan]
    let norm = optimizer.step(learningRate: 0.1)
    #expect(norm.isNaN)
    #expect(a.value.storage + b.value.storage == valuesBefore)
    #expect(optimizer.momentumBuffers == buffersBefore)
}

@Test func resumingFromSavedBuffersReproducesTheRun() {
    // Three uninterrupted steps versus two steps, then a fresh optimizer given the saved
    // buffers and values, then one more step: identical bits.
    let configuration = SGDConfiguration(momentum: 0.9, nesterov: true, weightDecay: 0.01)
    let start = randomArray(7, seed: 3)
    func gradient(_ p: [Float]) -> [Float] { p.map { 2 * $0 * $0 - 0.5 } }

    let continuous = Parameter(name: "w", value: Tensor(shape: [7], storage: start))
    let sgd = SGD(parameters: [continuous], configuration: configuration)
    for step in 0..<3 {
        sgd.zeroGradients()
        continuous.gradient.storage = gradient(continuous.value.storage)
        sgd.step(learningRate: 0.05 * Float(step + 1))
    }

    let interrupted = Parameter(name: "w", value: Tensor(shape: [7], storage: start))
    let first = SGD(parameters: [interrupted], configuration: configuration)
    for step in 0..<2 {
        first.zeroGradients()
        interrupted.gradient.storage = gradient(interrupted.value.storage)
        first.step(learningRate: 0.05 * Float(step + 1))
    }
    let restored = Parameter(name: "w", value: interrupted.value)
    let second = SGD(parameters: [restored], configuration: configuration)
    second.momentumBuffers = first.momentumBuffers
    restored.gradient.storage = gradient(restored.value.storage)
    second.step(learningRate: 0.15)

    #expect(restored.value == continuous.value)
    #expect(second.momentumBuffers == sgd.momentumBuffers)
}

@Test func zeroGradientsClearsEveryParameter() {
    let a = Parameter(name: "a", value: Tensor(shape: [2], repeating: 1))
    let b = Parameter(name: "b", value: Tensor(shape: [3], repeating: 1))
    a.gradient.storage = [1, 2]
    b.gradient.storage = [3, 4, 5]
    SGD(parameters: [a, b], configuration: SGDConfiguration()).zeroGradients()
    #expect(a.gradient.storage == [0, 0] && b.gradient.storage == [0, 0, 0])
}
