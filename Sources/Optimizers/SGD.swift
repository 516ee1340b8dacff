// Stochastic gradient descent with momentum, Nesterov momentum, coupled (L2) or decoupled
// weight decay and global-norm gradient clipping: one pass over all parameters per step.
import TensorCore

/// The hyperparameters of `SGD`, independent of the learning rate (which a
/// `LearningRateScheduler` supplies per step).
public struct SGDConfiguration: Codable, Sendable, Equatable {
    /// The momentum factor μ, in [0, 1). `0` disables momentum.
    public var momentum: Float = 0.9
    /// Whether to use Nesterov momentum (Sutskever et al. 2013, as in `torch.optim.SGD`);
    /// requires `momentum > 0`.
    public var nesterov = false
    /// The weight-decay factor λ, ≥ 0, per step (dimensionless). Parameters whose
    /// `appliesWeightDecay` is false are never decayed.
    public var weightDecay: Float = 5e-4
    /// `false`: L2 regularization coupled into the gradient (`torch.optim.SGD`);
    /// `true`: decoupled weight decay (SGDW, Loshchilov & Hutter 2019), applied to the
    /// parameter directly and kept out of the momentum buffer.
    public var decoupledWeightDecay = false
    /// If set, gradients are rescaled before the step so that their global L2 norm (over all
    /// parameters together) is at most this value (> 0). `nil` disables clipping.
    public var gradientClipNorm: Float? = nil

    public init(momentum: Float = 0.9, nesterov: Bool = false, weightDecay: Float = 5e-4,
                decoupledWeightDecay: Bool = false, gradientClipNorm: Float? = nil) {
        self.momentum = momentum
        self.nesterov = nesterov
        self.weightDecay = weightDecay
        self.decoupledWeightDecay = decoupledWeightDecay
        self.gradientClipNorm = gradientClipNorm
    }

    /// Traps with the offending value when a hyperparameter is outside its documented range.
    public func validate() {
        precondition(momentum.isFinite && momentum >= 0 && momentum < 1,
                     "SGD momentum must be in [0, 1): \(momentum)")
        precondition(!nesterov || momentum > 0, "SGD Nesterov momentum requires momentum > 0: \(momentum)")
        precondition(weightDecay.isFinite && weightDecay >= 0, "SGD weight decay must be finite and ≥ 0: \(weightDecay)")
        if let clip = gradientClipNorm {
            precondition(clip.isFinite && clip > 0, "SGD gradient clip norm must be finite and > 0: \(clip)")
        }
    }
}

/// Stochastic gradient descent with momentum and weight decay, with the semantics of
/// `torch.optim.SGD` (dampening 0).
///
/// Concretely, for each parameter `p` with gradient `g` (after optional clipping), learning
/// rate `lr`, momentum μ and weight decay λ:
/// ```
/// coupled (L2) decay:  g ← g + λ·p                      (only if p.appliesWeightDecay)
/// momentum buffer:     b ← μ·b + g                      (b starts at 0, so the first b = g)
/// direction:           d = g + μ·b  (Nesterov)   or   d = b
/// decoupled decay:     p ← p·(1 − lr·λ)                 (instead of the coupled form;
///                                                        only if p.appliesWeightDecay)
/// update:              p ← p − lr·d
/// ```
/// Nesterov momentum in this form is Sutskever et al., "On the importance of initialization
/// and momentum in deep learning" (ICML 2013), eq. 3–4 rewritten as in PyTorch. Decoupled decay
/// is SGDW from Loshchilov & Hutter, "Decoupled Weight Decay Regularization" (ICLR 2019),
/// Algorithm 1 line 9, with the decay multiplied by the current learning rate (as PyTorch's
/// `AdamW` does) rather than by the schedule multiplier alone: `p ← p − lr·λ·p`.
///
/// A step can be restricted to some rows of some parameters (`step(learningRate:updatingOnly:)`,
/// Partial FC): the other rows of those parameters are skipped entirely, with no update, no
/// momentum and no weight decay for them this step.
///
/// Because dampening is 0, a zero-initialized buffer gives exactly PyTorch's "first step
/// `b = g`" rule, so `momentumBuffers` can always be saved and restored as plain tensors.
public final class SGD {
    /// The parameters updated by `step`, in a fixed order.
    public let parameters: [Parameter]
    /// The momentum buffer `b` of each parameter, aligned with `parameters` and of the same
    /// shapes; zeros until the first step. Save and restore them to resume training exactly.
    public var momentumBuffers: [Tensor]
    /// The hyperparameters.
    public let configuration: SGDConfiguration
    /// A multiplier of the learning rate per parameter, aligned with `parameters`: parameter
    /// `i` steps with `learningRate · learningRateScales[i]` (its decoupled decay too); all 1
    /// by default. Parameter groups with their own rate, e.g. a pretrained backbone at 0.1 of
    /// the head's (`backboneLearningRateScale`); 0 leaves a parameter's value unchanged (its
    /// momentum buffer still accumulates). Each finite and ≥ 0.
    public var learningRateScales: [Float]

    /// An optimizer over `parameters` with zero momentum buffers.
    ///
    /// - Precondition: the configuration is valid (see `SGDConfiguration.validate()`) and no
    ///   parameter appears twice.
    public init(parameters: [Parameter], configuration: SGDConfiguration) {
        configuration.validate()
        let identities = Set(parameters.map { ObjectIdentifier($0) })
        precondition(identities.count == parameters.count, "SGD: a parameter appears more than once")
        self.parameters = parameters
        self.configuration = configuration
        self.momentumBuffers = parameters.map { Tensor(shape: $0.value.shape) }
        self.learningRateScales = [Float](repeating: 1, count: parameters.count)
    }

    /// Applies one update to every parameter.
    ///
    /// The global gradient norm is computed first; if `gradientClipNorm` is set and the norm
    /// exceeds it, every gradient is scaled in place by `clip / norm` (so the clipped global
    /// norm is `clip`; PyTorch's `clip_grad_norm_` divides by `norm + 1e-6` instead).
    /// If the norm is not finite (a NaN or ±∞ gradient), **nothing is changed** — neither
    /// parameters nor momentum buffers — and the non-finite norm is returned, so that the caller
    /// can stop with an error instead of writing NaN into the model.
    ///
    /// - Parameters:
    ///   - learningRate: the step size for this step, finite and ≥ 0 (times `learningRateScales`).
    ///   - rowSubsets: for some parameters, the only rows this step may change (e.g. a Partial FC
    ///     head's `HeadOutput.updatedRows`): their other rows keep value and momentum buffer
    ///     exactly. Each listed parameter must be one of `parameters`, at most once; every
    ///     parameter not listed is updated in full (the default: all of them).
    /// - Returns: the global L2 norm of all gradients before clipping (see `globalGradientNorm`).
    @discardableResult
    public func step(learningRate: Float, updatingOnly rowSubsets: [ParameterRows] = []) -> Double {
        precondition(learningRate.isFinite && learningRate >= 0, "SGD learning rate must be finite and ≥ 0: \(learningRate)")
        precondition(momentumBuffers.count == parameters.count,
                     "SGD: \(momentumBuffers.count) momentum buffers for \(parameters.count) parameters")
        precondition(learningRateScales.count == parameters.count && learningRateScales.allSatisfy { $0.isFinite && $0 >= 0 },
                     "SGD: learning-rate scales \(learningRateScales.count) for \(parameters.count) parameters, each finite and ≥ 0")
        var restrictedRows = [ObjectIdentifier: [Int]](minimumCapacity: rowSubsets.count)
        for subset in rowSubsets {
            let id = ObjectIdentifier(subset.parameter)
            precondition(parameters.contains { $0 === subset.parameter },
                         "SGD: rows given for '\(subset.parameter.name)', which this optimizer does not update")
            precondition(restrictedRows.updateValue(subset.rows, forKey: id) == nil,
                         "SGD: rows given twice for '\(subset.parameter.name)'")
        }
        let norm = globalGradientNorm(parameters)
        guard norm.isFinite else { return norm }
        if let clip = configuration.gradientClipNorm, norm > Double(clip) {
            let factor = Float(Double(clip) / norm)
            for parameter in parameters { scale(&parameter.gradient.storage, by: factor) }
        }
        for index in parameters.indices {
            let parameter = parameters[index]
            precondition(momentumBuffers[index].shape == parameter.value.shape,
                         "SGD: momentum buffer \(momentumBuffers[index].shape) does not match parameter '\(parameter.name)' \(parameter.value.shape)")
            precondition(parameter.gradient.shape == parameter.value.shape,
                         "SGD: gradient \(parameter.gradient.shape) does not match parameter '\(parameter.name)' \(parameter.value.shape)")
            let decay = parameter.appliesWeightDecay ? configuration.weightDecay : 0
            let count = parameter.value.count
            var ranges = [0..<count]
            if let rows = restrictedRows[ObjectIdentifier(parameter)] {
                let rowCount = parameter.value.shape.first ?? 1
                let rowSize = rowCount > 0 ? count / rowCount : 0
                ranges = rows.map { row in
                    precondition(row >= 0 && row < rowCount, "SGD: row \(row) of '\(parameter.name)' outside 0..<\(rowCount)")
                    return (row * rowSize)..<((row + 1) * rowSize)
                }
            }
            for range in ranges {
                updateParameter(&parameter.value.storage, buffer: &momentumBuffers[index].storage,
                                gradient: parameter.gradient.storage, range: range,
                                learningRate: learningRate * learningRateScales[index],
                                coupledDecay: configuration.decoupledWeightDecay ? 0 : decay,
                                decoupledDecay: configuration.decoupledWeightDecay ? decay : 0)
            }
        }
        return norm
    }

    /// Sets every parameter's gradient to zero (call once per step, before backward).
    public func zeroGradients() {
        for parameter in parameters { parameter.zeroGradient() }
    }

    /// One fused pass over the elements `range` of a parameter (the formula in the type's
    /// documentation).
    private func updateParameter(_ value: inout [Float], buffer: inout [Float], gradient: [Float], range: Range<Int>,
                                 learningRate lr: Float, coupledDecay: Float, decoupledDecay: Float) {
        let mu = configuration.momentum
        let nesterov = configuration.nesterov
        let shrink: Float = 1 - lr * decoupledDecay
        var p = value.mutableSpan
        var b = buffer.mutableSpan
        let g = gradient.span
        for i in range {
            var gi = g[i]
            if coupledDecay != 0 { gi = gi + coupledDecay * p[i] }
            let bi = mu * b[i] + gi
            b[i] = bi
            let direction = nesterov ? gi + mu * bi : bi
            var pi = p[i]
            if decoupledDecay != 0 { pi = pi * shrink }
            p[i] = pi - lr * direction
        }
    }
}

/// The L2 norm of all gradients of `parameters` taken together, `sqrt(Σ_p Σ_i g_{p,i}²)`,
/// accumulated in `Double` (as `torch.nn.utils.clip_grad_norm_` with `norm_type = 2`).
/// NaN or ±∞ if any gradient element is not finite.
public func globalGradientNorm(_ parameters: [Parameter]) -> Double {
    var total = 0.0
    for parameter in parameters {
        total += dot(parameter.gradient.storage, parameter.gradient.storage)
    }
    return total.squareRoot()
}
