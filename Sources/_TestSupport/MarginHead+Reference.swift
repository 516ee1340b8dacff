// The margin head's reference path, for tests of the fused engine.
import MarginLosses
import TensorCore

extension MarginHead {
    /// The reference path of the first version of `MarginHead.loss`: the whole `[N, K]` cosine
    /// matrix from normalized copies of the embeddings and centers (one sgemm), the
    /// cross-entropy of `marginSoftmaxCrossEntropy` (Double, glibc's `exp`), and the backward
    /// through two sgemm and `l2NormalizedRowsBackward`. Slow; the algorithmic reference the
    /// fused and chunked paths are tested against. Plain heads only (`subcenters == 1`, all
    /// classes, no Partial FC sampling).
    ///
    /// With `computeGradients`, accumulates `∂L/∂W` into `centers.gradient` and returns `∂L/∂e`.
    ///
    /// - Throws: `MarginLossError` as `loss`, except that a non-finite input row is found in the
    ///   cosines (a non-finite embedding row makes its cosine row NaN; so does a non-finite center).
    public func referenceLoss(embeddings: Tensor, labels: [Int], reduction: Reduction,
                              computeGradients: Bool) throws(MarginLossError) -> HeadOutput {
        precondition(subcenters == 1, "MarginHead.referenceLoss: sub-centers are not supported")
        precondition(embeddings.rank == 2 && embeddings.shape[1] == embeddingDimension,
                     "MarginHead.referenceLoss: embeddings must be [N, \(embeddingDimension)], got \(embeddings.shape)")
        let n = embeddings.shape[0], k = classCount, d = embeddingDimension
        let (unitEmbeddings, embeddingNorms) = l2NormalizedRows(embeddings)   // ê [N, D]
        let (unitCenters, centerNorms) = l2NormalizedRows(centers.value)     // Ŵ [K, D]
        var cosines = [Float](repeating: 0, count: n * k)                   // cos = ê·Ŵᵀ [N, K]
        gemm(transposeB: true, m: n, n: k, k: d, a: unitEmbeddings.storage, lda: d,
             b: unitCenters.storage, ldb: d, c: &cosines, ldc: k)
        let result = try marginSoftmaxCrossEntropy(cosines: Tensor(shape: [n, k], storage: cosines), labels: labels,
                                                   scale: scale, margin: margin, gradientMode: gradientMode,
                                                   reduction: reduction)
        guard computeGradients else {
            return HeadOutput(loss: result.loss, perSampleLoss: result.perSample,
                              embeddingGradient: Tensor(shape: [0]), correctCount: result.correctCount)
        }
        let g = result.cosineGradient.storage                             // G = ∂L/∂cos [N, K]
        var unitEmbeddingGradient = [Float](repeating: 0, count: n * d)   // ∂ê = G·Ŵ [N, D]
        gemm(m: n, n: d, k: k, a: g, lda: k, b: unitCenters.storage, ldb: d, c: &unitEmbeddingGradient, ldc: d)
        var unitCenterGradient = [Float](repeating: 0, count: k * d)      // ∂Ŵ = Gᵀ·ê [K, D]
        gemm(transposeA: true, m: k, n: d, k: n, a: g, lda: k, b: unitEmbeddings.storage, ldb: d,
             c: &unitCenterGradient, ldc: d)
        centers.gradient += l2NormalizedRowsBackward(
            gradient: Tensor(shape: [k, d], storage: unitCenterGradient), normalized: unitCenters, norms: centerNorms)
        let embeddingGradient = l2NormalizedRowsBackward(
            gradient: Tensor(shape: [n, d], storage: unitEmbeddingGradient), normalized: unitEmbeddings,
            norms: embeddingNorms)
        return HeadOutput(loss: result.loss, perSampleLoss: result.perSample,
                          embeddingGradient: embeddingGradient, correctCount: result.correctCount)
    }
}
