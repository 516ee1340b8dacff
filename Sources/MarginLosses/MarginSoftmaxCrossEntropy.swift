import TensorCore

/// The angular-margin softmax cross-entropy on a given cosine matrix: what `MarginHead` computes
/// after its GEMM.
///
/// Concretely, for sample `i` with label `y` and cosines `c_j = clamp(cos θ_j, −1, 1)`:
/// ```
/// z_j = s·c_j (j ≠ y),   z_y = s·ψ(c_y)
/// ℓᵢ  = −log(exp(z_y) / Σ_j exp(z_j)) = log Σ_j exp(z_j) − z_y
/// ∂ℓᵢ/∂cos θ_j = s·p_j (j ≠ y),   ∂ℓᵢ/∂cos θ_y = s·(p_y − 1)·ψ'(c_y)   (p = softmax(z))
/// ```
/// (ArcFace, Deng et al., CVPR 2019, arXiv:1801.07698, Eq. 3; CosFace, arXiv:1801.09414, Eq. 4;
/// NormFace, arXiv:1704.06369.) With `.straightThrough`, ψ' is replaced by 1. The log-sum-exp
/// subtracts the row maximum and accumulates in `Double`; gradients pass through the clamp.
///
/// - Parameters:
///   - cosines: `[N, K]` row-major, the cosines between normalized embeddings and normalized
///     class centers.
///   - labels: `[N]`, each in `0..<K`.
///   - scale: `s > 0` (dimensionless; ArcFace uses 64).
///   - margin: the target-logit function ψ.
///   - gradientMode: exact chain rule through ψ or straight-through.
///   - reduction: how per-sample losses (and gradients) are combined.
/// - Returns: the reduced `loss`, `perSample` losses `[N]`, `cosineGradient` = `∂loss/∂cosines`
///   `[N, K]`, and `correctCount`, the samples whose largest cosine is their label's.
/// - Throws: `MarginLossError` for `N ≠ labels.count`, `N = 0`, a label outside `0..<K`, or a
///   non-finite cosine (reported as `.nonFiniteEmbedding(sample:)` for its row).
public func marginSoftmaxCrossEntropy(
    cosines: Tensor, labels: [Int], scale: Double, margin: any Margin,
    gradientMode: MarginGradient, reduction: Reduction
) throws(MarginLossError) -> (loss: Double, perSample: [Double], cosineGradient: Tensor, correctCount: Int) {
    precondition(cosines.rank == 2, "marginSoftmaxCrossEntropy: cosines must be [N, K], got \(cosines.shape)")
    precondition(scale.isFinite && scale > 0, "marginSoftmaxCrossEntropy: scale must be finite and > 0: \(scale)")
    let columns = cosines.shape[1]
    try validateBatch(rowCount: cosines.shape[0], labels: labels, classCount: columns)
    try validateFiniteRows(cosines.storage, columns: columns)
    var buffer = cosines.storage  // [N, K]: cosines, then ∂L/∂cos in place
    let targets = marginTargetLogits(cosines: buffer, columns: columns, labels: labels, scale: scale,
                                     margin: margin, gradientMode: gradientMode)
    let summary = softmaxCrossEntropyInPlace(
        &buffer, columns: columns, labels: labels, targets: targets,
        map: LogitMap(scale: scale, clampsToUnitInterval: true), reduction: reduction, computeGradient: true)
    return (summary.loss, summary.perSample, Tensor(shape: cosines.shape, storage: buffer), summary.correctCount)
}

/// Plain softmax cross-entropy on logits: the baseline classifier's loss.
///
/// Concretely: `ℓᵢ = log Σ_j exp(z_ij) − z_{i,y}`, `∂ℓᵢ/∂z_ij = softmax(zᵢ)_j − [j = y]`,
/// with the row maximum subtracted and sums accumulated in `Double`.
///
/// - Parameters:
///   - logits: `[N, K]` row-major.
///   - labels: `[N]`, each in `0..<K`.
///   - reduction: how per-sample losses (and gradients) are combined.
/// - Returns: the reduced `loss`, `perSample` losses `[N]`, `logitGradient` = `∂loss/∂logits`
///   `[N, K]`, and `correctCount` (argmax equals label).
/// - Throws: `MarginLossError` as `marginSoftmaxCrossEntropy`.
public func softmaxCrossEntropy(
    logits: Tensor, labels: [Int], reduction: Reduction
) throws(MarginLossError) -> (loss: Double, perSample: [Double], logitGradient: Tensor, correctCount: Int) {
    precondition(logits.rank == 2, "softmaxCrossEntropy: logits must be [N, K], got \(logits.shape)")
    let columns = logits.shape[1]
    try validateBatch(rowCount: logits.shape[0], labels: labels, classCount: columns)
    try validateFiniteRows(logits.storage, columns: columns)
    var buffer = logits.storage  // [N, K]: logits, then ∂L/∂logits in place
    let targets = plainTargetLogits(logits: buffer, columns: columns, labels: labels)
    let summary = softmaxCrossEntropyInPlace(
        &buffer, columns: columns, labels: labels, targets: targets,
        map: LogitMap(scale: 1, clampsToUnitInterval: false), reduction: reduction, computeGradient: true)
    return (summary.loss, summary.perSample, Tensor(shape: logits.shape, storage: buffer), summary.correctCount)
}
