/// A trainable tensor with its gradient, shared by reference between a layer (or loss head)
/// that owns it, the optimizer that updates it and the checkpoint that saves it.
///
/// Backward passes *accumulate* into `gradient`; `zeroGradient()` clears it (llm.c convention).
public final class Parameter {
    /// A stable, unique name within a model, e.g. `"backbone.stage1.conv.weight"`;
    /// used as the tensor name in checkpoints.
    public let name: String
    /// The current value.
    public var value: Tensor
    /// ∂loss/∂value, same shape as `value`, accumulated by backward passes.
    public var gradient: Tensor
    /// Whether the optimizer applies weight decay to this parameter (false for biases and
    /// BatchNorm/PReLU parameters by convention).
    public var appliesWeightDecay: Bool
    /// The rows (first-dimension indices, ascending, distinct) the optimizer may change this
    /// step, or nil for all. A sampling head (Partial FC) sets it during its forward pass to
    /// the rows it used; `SGD.step` then updates, decays and moves the momentum of only those
    /// rows, so unsampled rows stay exactly as they were (value and momentum buffer).
    /// It persists until the owner sets it again.
    public var activeRows: [Int]?

    public init(name: String, value: Tensor, appliesWeightDecay: Bool = true) {
        self.name = name
        self.value = value
        self.gradient = Tensor(shape: value.shape)
        self.appliesWeightDecay = appliesWeightDecay
    }

    /// Sets every element of `gradient` to zero.
    public func zeroGradient() {
        fill(&gradient.storage, with: 0)
    }
}
