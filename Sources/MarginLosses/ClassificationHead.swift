import TensorCore

/// The result of a classification head on one batch.
public struct HeadOutput {
    /// The reduced loss (see `Reduction`; the mean over the batch for `.mean`), in nats.
    public var loss: Double
    /// Each sample's cross-entropy `ℓᵢ`, `[N]`, in nats.
    public var perSampleLoss: [Double]
    /// `∂loss/∂embeddings`, `[N, D]`; an empty tensor of shape `[0]` when gradients were not
    /// requested.
    public var embeddingGradient: Tensor
    /// The number of samples whose margin-free prediction (argmax over the logits without the
    /// margin, i.e. what the head predicts when the label is unknown) equals the label;
    /// ties go to the lowest class index.
    public var correctCount: Int

    public init(loss: Double, perSampleLoss: [Double], embeddingGradient: Tensor, correctCount: Int) {
        self.loss = loss
        self.perSampleLoss = perSampleLoss
        self.embeddingGradient = embeddingGradient
        self.correctCount = correctCount
    }
}

/// A classifier on top of the embedding network that turns embeddings and identity labels
/// into a softmax cross-entropy loss, its gradient with respect to the embeddings, and
/// (accumulated) gradients of its own parameters.
///
/// Gradient convention (llm.c): `loss(…, computeGradients: true)` ADDS `∂loss/∂θ` into each
/// parameter's `gradient` (`+=`); the training loop clears them with `zeroGradient()` once
/// per step. Data problems throw `MarginLossError` before any gradient is touched.
public protocol ClassificationHead: AnyObject {
    /// The trainable parameters, in a stable order (for the optimizer and checkpoints).
    var parameters: [Parameter] { get }
    /// `K`, the number of identities.
    var classCount: Int { get }

    /// The loss of a batch.
    ///
    /// - Parameters:
    ///   - embeddings: `[N, D]` row-major, finite.
    ///   - labels: `[N]`, each in `0..<K`.
    ///   - reduction: how per-sample losses and gradients are combined.
    ///   - computeGradients: whether to return `∂L/∂embeddings` and accumulate (`+=`) the
    ///     parameter gradients.
    /// - Throws: `MarginLossError` for a label outside `0..<K`, a non-finite embedding row,
    ///   `N ≠ labels.count` or `N = 0`; nothing is accumulated then.
    /// - Precondition: `embeddings` is rank 2 with `D` columns.
    func loss(embeddings: Tensor, labels: [Int], reduction: Reduction,
              computeGradients: Bool) throws(MarginLossError) -> HeadOutput
}
