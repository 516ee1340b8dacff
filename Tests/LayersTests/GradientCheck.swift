// Finite-difference gradient checking for layers: L = Σ w ⊙ y with a fixed random w, summed in
// Double; central differences on every input element and every parameter element.
import Layers
import TensorCore
import _TestSupport

/// `Σ w ⊙ y`, accumulated in `Double`.
func weightedSum(_ y: Tensor, _ w: [Float]) -> Double {
    precondition(y.count == w.count, "weightedSum: \(y.count) vs \(w.count)")
    var total = 0.0
    for i in w.indices { total += Double(w[i]) * Double(y.storage[i]) }
    return total
}

/// The comparisons of a gradient check, one per checked tensor.
struct GradientReport: CustomStringConvertible {
    var comparisons: [Comparison] = []
    var passed: Bool { comparisons.allSatisfy(\.passed) }
    var description: String { comparisons.map(\.description).joined(separator: "\n") }
}

/// Checks `layer.backward` against central differences of `L = Σ w ⊙ forward(x)`.
///
/// - Parameters:
///   - prepare: run before every forward pass (e.g. to reset a dropout generator), so the
///     analytic and every numerical evaluation see the same function.
///   - parameterEntries: if given, only these flat indices of each parameter are checked.
///   - checkInput: whether to check ∂L/∂x as well.
func checkGradients(_ layer: any Layer, input: Tensor, mode: Mode = .training, seed: UInt64 = 99,
                    step: Float = 1e-2, atol: Double = 2e-3, rtol: Double = 1e-2,
                    parameterEntries: [Int]? = nil, checkInput: Bool = true,
                    prepare: () -> Void = {}) -> GradientReport {
    prepare()
    let (y, cache) = layer.forward(input, mode: mode)
    let w = randomArray(y.count, seed: seed)
    for p in layer.parameters { p.zeroGradient() }
    let dx = layer.backward(Tensor(shape: y.shape, storage: w), cache: cache)
    var report = GradientReport()
    func objective() -> Double {
        prepare()
        return weightedSum(layer.forward(input, mode: mode).output, w)
    }
    if checkInput {
        precondition(dx.shape == input.shape, "input gradient \(dx.shape) vs input \(input.shape)")
        let numeric = numericalGradient(at: input.storage, step: step) { x in
            prepare()
            return weightedSum(layer.forward(Tensor(shape: input.shape, storage: x), mode: mode).output, w)
        }
        report.comparisons.append(compare(dx.storage, numeric, atol: atol, rtol: rtol, label: "∂L/∂input"))
    }
    for p in layer.parameters {
        let original = p.value.storage
        let indices = parameterEntries.map { $0.filter { $0 < original.count } } ?? Array(original.indices)
        var analytic: [Float] = [], numeric: [Double] = []
        for i in indices {
            let g = numericalGradient(at: [original[i]], step: step) { v in
                p.value.storage[i] = v[0]
                return objective()
            }
            p.value.storage = original
            analytic.append(p.gradient.storage[i])
            numeric.append(g[0])
        }
        report.comparisons.append(compare(analytic, numeric, atol: atol, rtol: rtol, label: "∂L/∂\(p.name)"))
    }
    return report
}

/// A tensor of normal samples whose magnitudes are at least `margin` (keeps finite differences
/// away from the kinks of ReLU/PReLU).
func awayFromZero(_ shape: [Int], seed: UInt64, margin: Float = 0.1) -> Tensor {
    let values = randomArray(shape.reduce(1, *), seed: seed).map { $0 >= 0 ? $0 + margin : $0 - margin }
    return Tensor(shape: shape, storage: values)
}
