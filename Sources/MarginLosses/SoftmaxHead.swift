import TensorCore

/// The baseline classifier: a linear layer (no normalization, no margin) and softmax
/// cross-entropy.
///
/// Concretely, for embeddings `e [N, D]`, weight `W [K, D]`, bias `b [K]`:
/// ```
/// z = e·Wᵀ + b                          [N, K]  (one sgemm)
/// ℓᵢ = log Σ_j exp(z_ij) − z_{i,yᵢ}
/// G = ∂L/∂z;  ∂e = G·W,  ∂W += Gᵀ·e,  ∂b += Σᵢ Gᵢ
/// ```
public final class SoftmaxHead: ClassificationHead {
    /// `W`, stored as `[K, D]` (row k scores class k). Named `"<name>.weight"`; weight decay
    /// applies. Initialized uniform in `[−1/√D, 1/√D]` (PyTorch's `nn.Linear` default).
    public let weight: Parameter
    /// `b`, `[K]`. Named `"<name>.bias"`; no weight decay. Initialized as `weight`.
    public let bias: Parameter

    /// `K`.
    public let classCount: Int
    /// `D`.
    public let embeddingDimension: Int

    public var parameters: [Parameter] { [weight, bias] }

    /// - Parameters:
    ///   - classCount: `K ≥ 1`.
    ///   - embeddingDimension: `D ≥ 1`.
    ///   - generator: draws `K·D` weights then `K` biases.
    ///   - name: prefix of the parameter names.
    public init(classCount: Int, embeddingDimension: Int, generator: inout SeededGenerator, name: String = "head") {
        precondition(classCount >= 1 && embeddingDimension >= 1,
                     "SoftmaxHead: classCount \(classCount) and embeddingDimension \(embeddingDimension) must be ≥ 1")
        self.classCount = classCount
        self.embeddingDimension = embeddingDimension
        let bound = Float(1 / Double(embeddingDimension).squareRoot())
        weight = Parameter(name: "\(name).weight",
                           value: .randomUniform([classCount, embeddingDimension], in: -bound...bound, using: &generator))
        bias = Parameter(name: "\(name).bias", value: .randomUniform([classCount], in: -bound...bound, using: &generator),
                         appliesWeightDecay: false)
    }

    /// - Throws: `MarginLossError`: a bad batch, `.nonFiniteEmbedding(sample:)`, or
    ///   `.nonFiniteParameter(parameter:row:)` naming `weight` (its row) or `bias` (its element)
    ///   when either holds NaN or ±Inf. Nothing is accumulated on error.
    public func loss(embeddings: Tensor, labels: [Int], reduction: Reduction,
                     computeGradients: Bool) throws(MarginLossError) -> HeadOutput {
        let k = classCount, d = embeddingDimension
        precondition(embeddings.rank == 2 && embeddings.shape[1] == d,
                     "SoftmaxHead: embeddings must be [N, \(d)], got \(embeddings.shape)")
        precondition(weight.value.shape == [k, d] && bias.value.shape == [k],
                     "SoftmaxHead: weight \(weight.value.shape) / bias \(bias.value.shape) must be [\(k), \(d)] / [\(k)]")
        let n = embeddings.shape[0]
        try validateBatch(rowCount: n, labels: labels, classCount: k)
        try validateFiniteRows(embeddings.storage, columns: d)

        var buffer = [Float](repeating: 0, count: n * k)   // [N, K]: logits, then ∂L/∂logits
        for i in 0..<n {
            for j in 0..<k { buffer[i * k + j] = bias.value.storage[j] }
        }
        gemm(transposeB: true, m: n, n: k, k: d, a: embeddings.storage, lda: d,
             b: weight.value.storage, ldb: d, beta: 1, c: &buffer, ldc: k)
        let targets = plainTargetLogits(logits: buffer, columns: k, labels: labels)
        let summary = softmaxCrossEntropyInPlace(
            &buffer, columns: k, labels: labels, targets: targets,
            map: LogitMap(scale: 1, clampsToUnitInterval: false), reduction: reduction,
            computeGradient: computeGradients)
        // A NaN or +∞ logit (from a non-finite row of W or b) makes its sample's loss non-finite.
        if summary.perSample.contains(where: { !$0.isFinite }) { try checkFiniteParameters() }
        guard computeGradients else {
            // Without the ∂e check below, a −∞ in W or b (a logit of −∞, probability 0) could pass
            // the loss check: scan the parameters (evaluation only; one read of W beside the GEMM's).
            try checkFiniteParameters()
            return HeadOutput(loss: summary.loss, perSampleLoss: summary.perSample,
                              embeddingGradient: Tensor(shape: [0]), correctCount: summary.correctCount)
        }
        var embeddingGradient = [Float](repeating: 0, count: n * d)   // G·W [N, D]
        gemm(m: n, n: d, k: k, a: buffer, lda: k, b: weight.value.storage, ldb: d, c: &embeddingGradient, ldc: d)
        // ∂e = G·W holds NaN wherever a row of W holds NaN or ±∞ (even 0·∞ is NaN), and a −∞ bias
        // is scanned (K elements): the whole check costs N·D + K reads, and W is scanned only on error.
        if embeddingGradient.contains(where: { !$0.isFinite }) || bias.value.storage.contains(where: { !$0.isFinite }) {
            try checkFiniteParameters()
        }
        gemm(transposeA: true, m: k, n: d, k: n, a: buffer, lda: k, b: embeddings.storage, ldb: d,
             beta: 1, c: &weight.gradient.storage, ldc: d)                 // ∂W += Gᵀ·e [K, D]
        for i in 0..<n {
            for j in 0..<k { bias.gradient.storage[j] += buffer[i * k + j] }
        }
        return HeadOutput(loss: summary.loss, perSampleLoss: summary.perSample,
                          embeddingGradient: Tensor(shape: [n, d], storage: embeddingGradient),
                          correctCount: summary.correctCount)
    }

    /// Throws `.nonFiniteParameter` for the first row of `weight`, then element of `bias`, that
    /// holds NaN or ±Inf; returns when both are finite (then a non-finite loss is an overflow of
    /// finite values, left to the caller's loss check).
    private func checkFiniteParameters() throws(MarginLossError) {
        let d = embeddingDimension
        if let index = weight.value.storage.firstIndex(where: { !$0.isFinite }) {
            throw .nonFiniteParameter(parameter: weight.name, row: index / d)
        }
        if let index = bias.value.storage.firstIndex(where: { !$0.isFinite }) {
            throw .nonFiniteParameter(parameter: bias.name, row: index)
        }
    }
}
