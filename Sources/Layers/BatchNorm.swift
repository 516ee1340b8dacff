import TensorCore

/// Batch normalization over the channel axis (Ioffe & Szegedy 2015, "Batch Normalization",
/// Algorithm 1), with PyTorch's running-statistics convention.
///
/// Concretely, per channel `c` over the `M` values of the batch (all of `N`, or `N·H·W`):
/// ```
/// training:  μ = Σx / M,  σ² = Σ(x − μ)² / M               (biased, used to normalize)
///            running_mean ← (1 − m)·running_mean + m·μ
///            running_var  ← (1 − m)·running_var  + m·σ²·M/(M − 1)   (unbiased)
/// inference: μ = running_mean,  σ² = running_var
/// y = γ · (x − μ) / √(σ² + ε) + β
/// ```
/// with momentum `m = 0.1` and `ε = 1e-5` by default (PyTorch's `BatchNorm2d`). Statistics are
/// accumulated in `Double`. The training-mode backward pass is Algorithm 1's chain rule:
/// `∂x = γ/√(σ²+ε) · (∂y − mean(∂y) − x̂·mean(∂y·x̂))`.
final class BatchNormCore {
    let name: String
    let channels: Int
    let momentum: Double
    let epsilon: Double
    let weight: Parameter          // γ [C], initialized to 1 (not read when `fixedWeight` is set)
    let fixedWeight: Buffer?       // γ [C] as a non-trained buffer (arcface_torch's `features.weight`), else nil
    let bias: Parameter            // β [C], initialized to 0
    let runningMean: Buffer        // [C], initialized to 0
    let runningVariance: Buffer    // [C], initialized to 1
    /// Normalize with the running statistics and leave them unchanged, also in `.training` mode.
    var freezesStatistics = false
    private var output: [Float] = []         // reused between steps (copy-on-write keeps old tensors intact)
    private var inputGradient: [Float] = []

    struct Cache: LayerCache {
        let shape: [Int]
        let input: [Float]           // x, [outer, C, inner]
        let mean: [Double]           // μ used to normalize, [C]
        let inverseDeviation: [Double] // 1/√(σ² + ε), [C]
        let usedBatchStatistics: Bool
    }

    init(channels: Int, momentum: Double, epsilon: Double, trainsWeight: Bool = true, name: String) {
        precondition(channels > 0, "BatchNorm \(name): channels must be positive, got \(channels)")
        precondition(momentum >= 0 && momentum <= 1, "BatchNorm \(name): momentum must be in [0, 1], got \(momentum)")
        precondition(epsilon > 0, "BatchNorm \(name): epsilon must be positive, got \(epsilon)")
        self.name = name
        self.channels = channels
        self.momentum = momentum
        self.epsilon = epsilon
        weight = Parameter(name: qualified(name, "weight"), value: Tensor(shape: [channels], repeating: 1),
                           appliesWeightDecay: false)
        fixedWeight = trainsWeight ? nil : Buffer(name: qualified(name, "weight"), value: Tensor(shape: [channels], repeating: 1))
        bias = Parameter(name: qualified(name, "bias"), value: Tensor(shape: [channels]), appliesWeightDecay: false)
        runningMean = Buffer(name: qualified(name, "running_mean"), value: Tensor(shape: [channels]))
        runningVariance = Buffer(name: qualified(name, "running_var"), value: Tensor(shape: [channels], repeating: 1))
    }

    /// The statistics that normalize `x` (`[outer, C, inner]`) and the folded per-channel map
    /// `y = a·x + b` with `a = γ/√(σ²+ε)`, `b = β − μ·a`: batch statistics in training (which also
    /// updates the running averages), running statistics in inference.
    func normalization(_ x: [Float], outer: Int, inner: Int, mode: Mode, shape: [Int])
        -> (mean: [Double], inverseDeviation: [Double], scale: [Float], shift: [Float]) {
        let mean: [Double], inverseDeviation: [Double]
        switch usesBatchStatistics(mode) ? Mode.training : Mode.inference {
        case .training:
            let count = outer * inner
            precondition(count > 1, "BatchNorm \(name): training needs more than one value per channel, got input \(shape)")
            let statistics = channelMeanAndVariance(x, outer: outer, channels: channels, inner: inner)
            mean = statistics.mean
            inverseDeviation = statistics.variance.map { 1 / ($0 + epsilon).squareRoot() }
            let correction = Double(count) / Double(count - 1)
            for c in 0..<channels {
                let oldMean = Double(runningMean.value.storage[c]), oldVariance = Double(runningVariance.value.storage[c])
                runningMean.value.storage[c] = Float((1 - momentum) * oldMean + momentum * statistics.mean[c])
                runningVariance.value.storage[c] = Float((1 - momentum) * oldVariance
                                                         + momentum * statistics.variance[c] * correction)
            }
        case .inference:
            mean = runningMean.value.storage.map(Double.init)
            inverseDeviation = runningVariance.value.storage.map { 1 / (Double($0) + epsilon).squareRoot() }
        }
        // y = a·x + b with a = γ/√(σ²+ε), b = β − μ·a.
        var scale = [Float](repeating: 0, count: channels), shift = [Float](repeating: 0, count: channels)
        let gamma = gammaValues
        for c in 0..<channels {
            let a = Double(gamma[c]) * inverseDeviation[c]
            scale[c] = Float(a)
            shift[c] = Float(Double(bias.value.storage[c]) - mean[c] * a)
        }
        return (mean, inverseDeviation, scale, shift)
    }

    /// Whether `mode` normalizes with the batch's statistics (and updates the running ones):
    /// `.training`, unless the statistics are frozen.
    func usesBatchStatistics(_ mode: Mode) -> Bool { mode == .training && !freezesStatistics }

    /// γ `[C]`: the trained weight, or the fixed one.
    var gammaValues: [Float] { fixedWeight?.value.storage ?? weight.value.storage }

    /// The trainable parameters: `[γ, β]`, or `[β]` with a fixed γ.
    var parameters: [Parameter] { fixedWeight == nil ? [weight, bias] : [bias] }
    /// The saved non-trainable state: the fixed γ (if any), running mean and variance.
    var buffers: [Buffer] { (fixedWeight.map { [$0] } ?? []) + [runningMean, runningVariance] }

    func forward(_ input: Tensor, outer: Int, inner: Int, mode: Mode) -> (output: Tensor, cache: any LayerCache) {
        let x = input.storage
        let (mean, inverseDeviation, scale, shift) = normalization(x, outer: outer, inner: inner, mode: mode, shape: input.shape)
        channelAffine(x, outer: outer, channels: channels, inner: inner, scale: scale, shift: shift, into: &output)
        return (Tensor(shape: input.shape, storage: output),
                Cache(shape: input.shape, input: x, mean: mean, inverseDeviation: inverseDeviation,
                      usedBatchStatistics: usesBatchStatistics(mode)))
    }

    /// Accumulates `∂γ += Σ∂y·x̂` and `∂β += Σ∂y` from the per-channel sums `Σ∂y` and `Σ∂y·(x − μ)`
    /// over `count` values, and returns the coefficients of the input gradient
    /// `∂x = p·∂y + q·x + r`, each `[C]`.
    func inputGradientCoefficients(sum: [Double], centeredDot: [Double], mean: [Double], inverseDeviation: [Double],
                                   count: Int, usedBatchStatistics: Bool) -> (p: [Float], q: [Float], r: [Float]) {
        let count = Double(count)
        var gradientScale = [Float](repeating: 0, count: channels)
        var inputScale = [Float](repeating: 0, count: channels)
        var shift = [Float](repeating: 0, count: channels)
        let gammaValues = gammaValues
        for c in 0..<channels {
            let inverse = inverseDeviation[c]
            let gamma = Double(gammaValues[c])
            let sumG = sum[c], sumGXHat = centeredDot[c] * inverse   // Σ∂y, Σ∂y·x̂
            bias.gradient.storage[c] += Float(sumG)
            if fixedWeight == nil { weight.gradient.storage[c] += Float(sumGXHat) }
            let p = gamma * inverse
            if usedBatchStatistics {
                // ∂x = p·(∂y − Σ∂y/M − x̂·Σ(∂y·x̂)/M), x̂ = (x − μ)·inverse, written as p·∂y + q·x + r.
                let q = -p * inverse * sumGXHat / count
                gradientScale[c] = Float(p)
                inputScale[c] = Float(q)
                shift[c] = Float(-p * sumG / count - q * mean[c])
            } else {
                gradientScale[c] = Float(p)   // μ and σ² are constants: ∂x = p·∂y
            }
        }
        return (gradientScale, inputScale, shift)
    }

    func backward(_ outputGradient: Tensor, cache: any LayerCache, outer: Int, inner: Int, layer: String) -> Tensor {
        let cache = layerCache(cache, as: Cache.self, layer: layer)
        precondition(outputGradient.shape == cache.shape,
                     "\(layer): output gradient \(outputGradient.shape), expected \(cache.shape)")
        let g = outputGradient.storage
        let sums = channelGradientSums(gradient: g, input: cache.input, mean: cache.mean.map(Float.init),
                                       outer: outer, channels: channels, inner: inner)
        let (p, q, r) = inputGradientCoefficients(sum: sums.sum, centeredDot: sums.centeredDot, mean: cache.mean,
                                                  inverseDeviation: cache.inverseDeviation, count: outer * inner,
                                                  usedBatchStatistics: cache.usedBatchStatistics)
        channelLinearCombination(g, cache.input, outer: outer, channels: channels, inner: inner,
                                 gradientScale: p, inputScale: q, shift: r, into: &inputGradient)
        return Tensor(shape: cache.shape, storage: inputGradient)
    }
}

/// Batch normalization of an image batch `[N, C, H, W]` per channel over `N·H·W` values
/// (Ioffe & Szegedy 2015, Algorithm 1; PyTorch's `BatchNorm2d`).
///
/// Concretely: `y = γ·(x − μ_c)/√(σ²_c + ε) + β`, with batch statistics in training (biased
/// variance; the running variance is updated with the unbiased one, momentum 0.1) and running
/// statistics in inference.
public final class BatchNorm2D: Layer {
    let core: BatchNormCore
    public var name: String { core.name }
    /// `γ`, `[C]`, initialized to 1.
    public var weight: Parameter { core.weight }
    /// `β`, `[C]`, initialized to 0.
    public var bias: Parameter { core.bias }
    /// Running mean `[C]` (initialized to 0) and running (unbiased) variance `[C]` (initialized to 1).
    public var runningMean: Buffer { core.runningMean }
    public var runningVariance: Buffer { core.runningVariance }
    /// `ε`, added to the variance before the square root.
    public var epsilon: Double { core.epsilon }
    /// Whether the layer normalizes with its running statistics and keeps them unchanged in
    /// `.training` mode too (fine-tuning with frozen BatchNorm, PyTorch's `bn.eval()` during
    /// training); `γ` and `β` still train. Default `false`.
    public var freezesStatistics: Bool {
        get { core.freezesStatistics }
        set { core.freezesStatistics = newValue }
    }

    /// - Parameters:
    ///   - channels: `C` (> 0).
    ///   - momentum: weight of the new batch statistic in the running averages, in [0, 1].
    ///   - epsilon: added to the variance before the square root (> 0).
    ///   - name: name prefix, e.g. `"backbone.stage1.bn"` → `…bn.weight`, `…bn.running_mean`.
    public init(channels: Int, momentum: Double = 0.1, epsilon: Double = 1e-5, name: String) {
        core = BatchNormCore(channels: channels, momentum: momentum, epsilon: epsilon, name: name)
    }

    public var parameters: [Parameter] { [core.weight, core.bias] }
    public var buffers: [Buffer] { [core.runningMean, core.runningVariance] }

    /// - Parameter input: `[N, C, H, W]` (N·H·W > 1 in training).
    /// - Returns: output `[N, C, H, W]`.
    public func forward(_ input: Tensor, mode: Mode) -> (output: Tensor, cache: any LayerCache) {
        precondition(input.rank == 4 && input.shape[1] == core.channels,
                     "BatchNorm2D \(name): input \(input.shape), expected [N, \(core.channels), H, W]")
        return core.forward(input, outer: input.shape[0], inner: input.shape[2] * input.shape[3], mode: mode)
    }

    public func backward(_ outputGradient: Tensor, cache: any LayerCache) -> Tensor {
        let shape = outputGradient.shape
        precondition(shape.count == 4, "BatchNorm2D \(name): output gradient \(shape), expected rank 4")
        return core.backward(outputGradient, cache: cache, outer: shape[0], inner: shape[2] * shape[3],
                             layer: "BatchNorm2D \(name)")
    }
}

/// Batch normalization of a feature batch `[N, C]` per feature over the `N` rows
/// (Ioffe & Szegedy 2015, Algorithm 1; PyTorch's `BatchNorm1d`). Used as arcface_torch's
/// `features` layer after the embedding `Linear`.
///
/// Concretely: `y = γ·(x − μ_c)/√(σ²_c + ε) + β`, statistics as in `BatchNorm2D`.
public final class BatchNorm1D: Layer {
    private let core: BatchNormCore
    public var name: String { core.name }
    /// `γ`, `[C]`, initialized to 1; not used when the weight is fixed (`fixedWeight`).
    public var weight: Parameter { core.weight }
    /// `γ` as a non-trainable buffer `[C]` of ones (named `<name>.weight`, saved and loaded like the
    /// running statistics, never updated by training), or `nil` when `γ` is trained.
    public var fixedWeight: Buffer? { core.fixedWeight }
    /// `β`, `[C]`, initialized to 0.
    public var bias: Parameter { core.bias }
    /// Running mean `[C]` (initialized to 0) and running (unbiased) variance `[C]` (initialized to 1).
    public var runningMean: Buffer { core.runningMean }
    public var runningVariance: Buffer { core.runningVariance }
    /// `ε`, added to the variance before the square root.
    public var epsilon: Double { core.epsilon }
    /// Whether the layer normalizes with its running statistics and keeps them unchanged in
    /// `.training` mode too (as `BatchNorm2D.freezesStatistics`). Default `false`.
    public var freezesStatistics: Bool {
        get { core.freezesStatistics }
        set { core.freezesStatistics = newValue }
    }

    /// - Parameters: as `BatchNorm2D.init`, and
    ///   - trainsWeight: whether `γ` is trained (a `Parameter`, the default) or fixed at 1 (a
    ///     `Buffer`, `fixedWeight`: arcface_torch's IResNet `features`, whose weight has
    ///     `requires_grad = False`). A fixed `γ` gets no gradient and is not in `parameters`.
    public init(channels: Int, momentum: Double = 0.1, epsilon: Double = 1e-5, trainsWeight: Bool = true, name: String) {
        core = BatchNormCore(channels: channels, momentum: momentum, epsilon: epsilon, trainsWeight: trainsWeight, name: name)
    }

    /// `[γ, β]`, or `[β]` when `γ` is fixed.
    public var parameters: [Parameter] { core.parameters }
    /// `[γ (fixed only), running_mean, running_var]`.
    public var buffers: [Buffer] { core.buffers }

    /// - Parameter input: `[N, C]` (N > 1 in training).
    /// - Returns: output `[N, C]`.
    public func forward(_ input: Tensor, mode: Mode) -> (output: Tensor, cache: any LayerCache) {
        precondition(input.rank == 2 && input.shape[1] == core.channels,
                     "BatchNorm1D \(name): input \(input.shape), expected [N, \(core.channels)]")
        return core.forward(input, outer: input.shape[0], inner: 1, mode: mode)
    }

    public func backward(_ outputGradient: Tensor, cache: any LayerCache) -> Tensor {
        precondition(outputGradient.rank == 2, "BatchNorm1D \(name): output gradient \(outputGradient.shape), expected rank 2")
        return core.backward(outputGradient, cache: cache, outer: outputGradient.shape[0], inner: 1,
                             layer: "BatchNorm1D \(name)")
    }
}
