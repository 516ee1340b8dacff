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
    /// The parameters of which the head used only some rows, with those rows: the only rows the
    /// optimizer may change this step (pass it to `SGD.step(learningRate:updatingOnly:)`).
    /// Empty when every row of every parameter may change (a dense head, or no gradients).
    /// A Partial FC `MarginHead` lists its centers' sampled rows.
    public var updatedRows: [ParameterRows]

    public init(loss: Double, perSampleLoss: [Double], embeddingGradient: Tensor, correctCount: Int,
                updatedRows: [ParameterRows] = []) {
        self.loss = loss
        self.perSampleLoss = perSampleLoss
        self.embeddingGradient = embeddingGradient
        self.correctCount = correctCount
        self.updatedRows = updatedRows
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

    /// Sets the head's epoch-dependent state before training epoch `epoch` (0-based), e.g. a
    /// `MarginHead`'s margin warm-up. The default does nothing.
    func beginEpoch(_ epoch: Int)

    /// Sets the head's step-dependent state before global training step `step` (0-based,
    /// counting every batch of the run) of a run with `stepsPerEpoch` steps per epoch, e.g. a
    /// `MarginHead`'s margin warm-up. The trainer calls it before every step. The default does
    /// nothing.
    func beginStep(_ step: Int, stepsPerEpoch: Int)
}

extension ClassificationHead {
    public func beginEpoch(_ epoch: Int) {}
    public func beginStep(_ step: Int, stepsPerEpoch: Int) {}
}
