import TensorCore

/// The angular-margin classification head: cosines between normalized embeddings and
/// normalized class centers, a margin on each sample's target cosine, a scale, softmax
/// cross-entropy.
///
/// Concretely, for embeddings `e [N, D]`, centers `W [K, D]` and labels `y`:
/// ```
/// ê = e/‖e‖, Ŵ = W/‖W‖ (rows)          cos = ê·Ŵᵀ                       [N, K]  (one sgemm)
/// z_ij = s·clamp(cos_ij) (j ≠ yᵢ),      z_{i,yᵢ} = s·ψ(clamp(cos_{i,yᵢ}))
/// ℓᵢ = log Σ_j exp(z_ij) − z_{i,yᵢ}
/// G = ∂L/∂cos [N, K] (in place of cos);  ∂ê = G·Ŵ [N, D],  ∂Ŵ = Gᵀ·ê [K, D]  (two sgemm)
/// ∂e, ∂W through the row normalizations (`l2NormalizedRowsBackward`)
/// ```
/// ArcFace (Deng et al., CVPR 2019, arXiv:1801.07698, Eq. 3 and 4) with `ArcFaceMargin` /
/// `CombinedMargin`; CosFace (arXiv:1801.09414, Eq. 4) with `CosFaceMargin`; NormFace
/// (arXiv:1704.06369) with `NormFaceMargin`; SphereFace (arXiv:1704.08063) with
/// `SphereFaceMargin`.
///
/// A zero embedding row normalizes to zero (ε clamp of `l2NormalizedRows`): all its cosines
/// are 0, which is not an error.
public final class MarginHead: ClassificationHead {
    /// The class centers `W`, stored unnormalized as `[K, D]` (row k is class k's center);
    /// rows are normalized on every step. Named `"<name>.centers"`; weight decay applies.
    /// Initialized from `normal(0, 0.01)`, as arcface_torch's `PartialFC` initializes its
    /// weight (the scale is irrelevant to the forward pass, which normalizes the rows, but it
    /// sets the effective step size of SGD on the unnormalized centers).
    public let centers: Parameter
    /// The logit scale `s > 0` (dimensionless; ArcFace and CosFace use 64).
    public var scale: Double
    /// The target-logit function ψ.
    public var margin: any Margin
    /// Exact chain rule through ψ, or straight-through (arcface_torch since 2022).
    public var gradientMode: MarginGradient

    /// `K`.
    public let classCount: Int
    /// `D`.
    public let embeddingDimension: Int

    public var parameters: [Parameter] { [centers] }

    /// - Parameters:
    ///   - classCount: `K ≥ 1` identities.
    ///   - embeddingDimension: `D ≥ 1`.
    ///   - scale: `s > 0`.
    ///   - margin: ψ, e.g. `ArcFaceMargin(margin: 0.5)`.
    ///   - gradientMode: `.exact` (default) or `.straightThrough`.
    ///   - generator: draws the centers, `K·D` normal samples.
    ///   - name: prefix of the parameter name.
    public init(classCount: Int, embeddingDimension: Int, scale: Double, margin: any Margin,
                gradientMode: MarginGradient = .exact, generator: inout SeededGenerator, name: String = "head") {
        precondition(classCount >= 1 && embeddingDimension >= 1,
                     "MarginHead: classCount \(classCount) and embeddingDimension \(embeddingDimension) must be ≥ 1")
        precondition(scale.isFinite && scale > 0, "MarginHead: scale must be finite and > 0: \(scale)")
        self.classCount = classCount
        self.embeddingDimension = embeddingDimension
        self.scale = scale
        self.margin = margin
        self.gradientMode = gradientMode
        self.centers = Parameter(
            name: "\(name).centers",
            value: .randomNormal([classCount, embeddingDimension], standardDeviation: 0.01, using: &generator))
    }

    public func loss(embeddings: Tensor, labels: [Int], reduction: Reduction,
                     computeGradients: Bool) throws(MarginLossError) -> HeadOutput {
        let n = checkedBatchSize(embeddings)
        let k = classCount, d = embeddingDimension
        // Validate everything before any work, so an error leaves the gradients untouched.
        try validateBatch(rowCount: n, labels: labels, classCount: k)
        try validateFiniteRows(embeddings.storage, columns: d)

        let (unitEmbeddings, embeddingNorms) = l2NormalizedRows(embeddings)   // ê [N, D]
        let (unitCenters, centerNorms) = l2NormalizedRows(centers.value)     // Ŵ [K, D]
        var buffer = cosineMatrix(unitEmbeddings, unitCenters, n: n)          // [N, K]
        let targets = marginTargetLogits(cosines: buffer, columns: k, labels: labels, scale: scale,
                                         margin: margin, gradientMode: gradientMode)
        let summary = softmaxCrossEntropyInPlace(
            &buffer, columns: k, labels: labels, targets: targets,
            map: LogitMap(scale: scale, clampsToUnitInterval: true), reduction: reduction,
            computeGradient: computeGradients)
        guard computeGradients else {
            return HeadOutput(loss: summary.loss, perSampleLoss: summary.perSample,
                              embeddingGradient: Tensor(shape: [0]), correctCount: summary.correctCount)
        }
        // buffer now holds G = ∂L/∂cos [N, K].
        let embeddingGradient = backward(cosineGradient: buffer, unitEmbeddings: unitEmbeddings,
                                         embeddingNorms: embeddingNorms, unitCenters: unitCenters,
                                         centerNorms: centerNorms, n: n)
        return HeadOutput(loss: summary.loss, perSampleLoss: summary.perSample,
                          embeddingGradient: embeddingGradient, correctCount: summary.correctCount)
    }

    // MARK: - Pieces (shared with a future class-chunked path)

    private func checkedBatchSize(_ embeddings: Tensor) -> Int {
        precondition(embeddings.rank == 2 && embeddings.shape[1] == embeddingDimension,
                     "MarginHead: embeddings must be [N, \(embeddingDimension)], got \(embeddings.shape)")
        precondition(centers.value.shape == [classCount, embeddingDimension],
                     "MarginHead: centers must be [\(classCount), \(embeddingDimension)], got \(centers.value.shape)")
        return embeddings.shape[0]
    }

    /// `cos = ê·Ŵᵀ`, `[N, K]`. The corresponding CBLAS routine is `cblas_sgemm`.
    private func cosineMatrix(_ unitEmbeddings: Tensor, _ unitCenters: Tensor, n: Int) -> [Float] {
        let k = classCount, d = embeddingDimension
        var cosines = [Float](repeating: 0, count: n * k)
        gemm(transposeB: true, m: n, n: k, k: d, a: unitEmbeddings.storage, lda: d,
             b: unitCenters.storage, ldb: d, c: &cosines, ldc: k)
        return cosines
    }

    /// From `G = ∂L/∂cos [N, K]`: accumulates `∂L/∂W` into `centers.gradient` and returns
    /// `∂L/∂e [N, D]`.
    private func backward(cosineGradient g: [Float], unitEmbeddings: Tensor, embeddingNorms: [Float],
                          unitCenters: Tensor, centerNorms: [Float], n: Int) -> Tensor {
        let k = classCount, d = embeddingDimension
        var unitEmbeddingGradient = [Float](repeating: 0, count: n * d)   // ∂ê = G·Ŵ [N, D]
        gemm(m: n, n: d, k: k, a: g, lda: k, b: unitCenters.storage, ldb: d,
             c: &unitEmbeddingGradient, ldc: d)
        var unitCenterGradient = [Float](repeating: 0, count: k * d)      // ∂Ŵ = Gᵀ·ê [K, D]
        gemm(transposeA: true, m: k, n: d, k: n, a: g, lda: k, b: unitEmbeddings.storage, ldb: d,
             c: &unitCenterGradient, ldc: d)
        let centerGradient = l2NormalizedRowsBackward(
            gradient: Tensor(shape: [k, d], storage: unitCenterGradient), normalized: unitCenters, norms: centerNorms)
        centers.gradient += centerGradient
        return l2NormalizedRowsBackward(
            gradient: Tensor(shape: [n, d], storage: unitEmbeddingGradient), normalized: unitEmbeddings,
            norms: embeddingNorms)
    }
}
