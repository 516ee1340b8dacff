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

/// Some rows (first-dimension indices) of one parameter: the only rows a step changed, so that
/// an optimizer leaves every other row exactly as it was (value and optimizer state).
///
/// A sampling head (Partial FC) returns the rows of its centers it used in
/// `HeadOutput.updatedRows`; `SGD.step(learningRate:updatingOnly:)` takes them.
public struct ParameterRows {
    /// The parameter the rows belong to.
    public let parameter: Parameter
    /// First-dimension indices of `parameter.value`, ascending and distinct.
    public let rows: [Int]

    public init(parameter: Parameter, rows: [Int]) {
        self.parameter = parameter
        self.rows = rows
    }
}
