import TensorCore

/// A fully connected layer: `y = x·Wᵀ + b` (one GEMM), as PyTorch's `Linear`.
///
/// Concretely, for `x` `[N, in]`: `y[n, o] = b[o] + Σ_i x[n, i]·W[o, i]`; backward
/// `∂W += ∂yᵀ·x`, `∂b += Σ_n ∂y[n, ·]`, `∂x = ∂y·W`.
public final class Linear: Layer {
    public let name: String
    public let inputFeatures: Int
    public let outputFeatures: Int
    /// `[out, in]` (stored orientation), Kaiming-normal initialized.
    public let weight: Parameter
    /// `[out]`, zero-initialized; `nil` without bias.
    public let bias: Parameter?

    public struct Cache: LayerCache {
        let input: Tensor
    }

    /// - Parameters:
    ///   - inputFeatures, outputFeatures: `in`, `out` (> 0).
    ///   - bias: whether to add a learned bias `[out]`.
    ///   - nonlinearity: the activation after this layer, for the Kaiming gain.
    ///   - name: name prefix, e.g. `"backbone.fc"` → `…fc.weight`, `…fc.bias`.
    ///   - generator: the seeded initialization stream (advanced).
    public init(inputFeatures: Int, outputFeatures: Int, bias: Bool = true, nonlinearity: Nonlinearity = .linear,
                name: String, generator: inout SeededGenerator) {
        precondition(inputFeatures > 0 && outputFeatures > 0,
                     "Linear \(name): features \(inputFeatures) → \(outputFeatures) must be positive")
        self.name = name
        self.inputFeatures = inputFeatures
        self.outputFeatures = outputFeatures
        weight = Parameter(name: qualified(name, "weight"),
                           value: kaimingNormal(shape: [outputFeatures, inputFeatures], fanIn: inputFeatures,
                                                nonlinearity: nonlinearity, using: &generator))
        self.bias = bias ? Parameter(name: qualified(name, "bias"), value: Tensor(shape: [outputFeatures]),
                                     appliesWeightDecay: false) : nil
    }

    public var parameters: [Parameter] { bias.map { [weight, $0] } ?? [weight] }
    public var buffers: [Buffer] { [] }

    /// - Parameter input: `[N, in]`. - Returns: output `[N, out]`.
    public func forward(_ input: Tensor, mode: Mode) -> (output: Tensor, cache: any LayerCache) {
        precondition(input.rank == 2 && input.shape[1] == inputFeatures,
                     "Linear \(name): input \(input.shape), expected [N, \(inputFeatures)]")
        let n = input.shape[0]
        var y = [Float](repeating: 0, count: n * outputFeatures)
        gemm(transposeB: true, m: n, n: outputFeatures, k: inputFeatures,
             a: input.storage, lda: inputFeatures, b: weight.value.storage, ldb: inputFeatures,
             c: &y, ldc: outputFeatures)
        if let bias { addRowVector(&y, rows: n, columns: outputFeatures, bias.value.storage) }
        return (Tensor(shape: [n, outputFeatures], storage: y), Cache(input: input))
    }

    public func backward(_ outputGradient: Tensor, cache: any LayerCache) -> Tensor {
        let cache = layerCache(cache, as: Cache.self, layer: "Linear \(name)")
        let n = cache.input.shape[0]
        precondition(outputGradient.shape == [n, outputFeatures],
                     "Linear \(name): output gradient \(outputGradient.shape), expected [\(n), \(outputFeatures)]")
        let g = outputGradient.storage
        // ∂W [out, in] += ∂yᵀ · x
        gemm(transposeA: true, m: outputFeatures, n: inputFeatures, k: n,
             a: g, lda: outputFeatures, b: cache.input.storage, ldb: inputFeatures,
             beta: 1, c: &weight.gradient.storage, ldc: inputFeatures)
        if let bias { accumulate(columnSums(g, rows: n, columns: outputFeatures), into: bias) }
        // ∂x [N, in] = ∂y · W
        var dx = [Float](repeating: 0, count: n * inputFeatures)
        gemm(m: n, n: inputFeatures, k: outputFeatures, a: g, lda: outputFeatures,
             b: weight.value.storage, ldb: inputFeatures, c: &dx, ldc: inputFeatures)
        return Tensor(shape: [n, inputFeatures], storage: dx)
    }
}
