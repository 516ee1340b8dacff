/// How per-sample losses are combined into the batch loss, and therefore how gradients are
/// scaled.
public enum Reduction: String, Codable, Sendable {
    /// `L = (1/N)·Σᵢ ℓᵢ`; gradients are divided by `N`.
    case mean
    /// `L = Σᵢ ℓᵢ`.
    case sum
    /// No batch reduction: `perSampleLoss` is the result. Gradients are each sample's own:
    /// row `i` of `∂L/∂embeddings` is `∂ℓᵢ/∂eᵢ`, and parameter gradients are `Σᵢ ∂ℓᵢ/∂W`
    /// (the same numbers as `.sum`); `loss` reports `Σᵢ ℓᵢ` to stay consistent with them.
    case none

    /// The factor applied to each sample's gradient: `1/N` for `.mean`, else 1.
    func gradientWeight(batchSize: Int) -> Double {
        self == .mean ? 1 / Double(batchSize) : 1
    }

    /// The reduced loss from per-sample losses.
    func reduce(_ perSample: [Double]) -> Double {
        let total = perSample.reduce(0, +)
        return self == .mean ? total / Double(perSample.count) : total
    }
}
