import TensorCore

/// The nonlinearity that follows a layer, which sets the gain of its Kaiming initialization.
public enum Nonlinearity: Sendable, Equatable {
    /// No nonlinearity (gain 1).
    case linear
    /// ReLU (gain √2).
    case relu
    /// Leaky ReLU or PReLU with the given negative slope `a` (gain √(2 / (1 + a²))).
    case leakyReLU(slope: Float)

    /// The gain `g` of Kaiming initialization (He et al. 2015, "Delving Deep into Rectifiers",
    /// eq. 10 and §2.2), as PyTorch's `torch.nn.init.calculate_gain`.
    public var gain: Float {
        switch self {
        case .linear: return 1
        case .relu: return Float(2).squareRoot()
        case .leakyReLU(let a): return (2 / (1 + a * a)).squareRoot()
        }
    }
}

/// Kaiming-normal ("He") initialization in fan-in mode.
///
/// Concretely: `w ~ 𝒩(0, σ²)` with `σ = gain / √fanIn` (He et al. 2015, eq. 10), matching
/// `torch.nn.init.kaiming_normal_(w, mode="fan_in")`.
/// - Parameters:
///   - shape: the stored weight shape, e.g. `[Cout, Cin, kh, kw]` or `[out, in]`.
///   - fanIn: inputs per output unit (`Cin·kh·kw`, or `in`), > 0.
///   - nonlinearity: the activation that follows the layer.
///   - generator: the seeded stream the samples come from (advanced).
public func kaimingNormal(shape: [Int], fanIn: Int, nonlinearity: Nonlinearity,
                          using generator: inout SeededGenerator) -> Tensor {
    precondition(fanIn > 0, "kaimingNormal: fanIn must be positive, got \(fanIn)")
    let standardDeviation = nonlinearity.gain / Float(fanIn).squareRoot()
    return Tensor.randomNormal(shape, standardDeviation: standardDeviation, using: &generator)
}
