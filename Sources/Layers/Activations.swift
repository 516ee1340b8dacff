import TensorCore

/// The `[outer, C, inner]` view of an `[N, C, …]` tensor (`inner` = product of the trailing axes).
private func channelView(_ shape: [Int]) -> (outer: Int, channels: Int, inner: Int) {
    (shape[0], shape[1], shape.dropFirst(2).reduce(1, *))
}

/// Parametric ReLU with one learned slope per channel (He et al. 2015, "Delving Deep into
/// Rectifiers", eq. 1; PyTorch's `PReLU(num_parameters: C)`).
///
/// Concretely: `y = x` where `x > 0`, else `a_c·x`; `∂a_c = Σ_{x ≤ 0} ∂y·x` (eq. 2–4).
/// Works on `[N, C, H, W]` and on `[N, C]`.
public final class PReLU: Layer {
    public let name: String
    public let channels: Int
    /// The slopes `a`, `[C]`, initialized to 0.25 (the paper's and PyTorch's default); no weight decay.
    public let weight: Parameter
    private var output: [Float] = []          // reused between steps (copy-on-write keeps old tensors intact)
    private var inputGradient: [Float] = []

    public struct Cache: LayerCache {
        let input: Tensor
    }

    /// - Parameters:
    ///   - channels: `C` (> 0).
    ///   - initialSlope: the starting value of every `a_c`.
    ///   - name: name prefix, e.g. `"backbone.stage1.prelu"` → `…prelu.weight`.
    public init(channels: Int, initialSlope: Float = 0.25, name: String) {
        precondition(channels > 0, "PReLU \(name): channels must be positive, got \(channels)")
        self.name = name
        self.channels = channels
        weight = Parameter(name: qualified(name, "weight"), value: Tensor(shape: [channels], repeating: initialSlope),
                           appliesWeightDecay: false)
    }

    public var parameters: [Parameter] { [weight] }
    public var buffers: [Buffer] { [] }

    /// - Parameter input: `[N, C, …]` (rank ≥ 2).
    /// - Returns: output, the shape of `input`.
    public func forward(_ input: Tensor, mode: Mode) -> (output: Tensor, cache: any LayerCache) {
        precondition(input.rank >= 2 && input.shape[1] == channels,
                     "PReLU \(name): input \(input.shape), expected [N, \(channels), …]")
        let view = channelView(input.shape)
        preluForward(input.storage, outer: view.outer, channels: channels, inner: view.inner,
                     slopes: weight.value.storage, into: &output)
        return (Tensor(shape: input.shape, storage: output), Cache(input: input))
    }

    public func backward(_ outputGradient: Tensor, cache: any LayerCache) -> Tensor {
        let cache = layerCache(cache, as: Cache.self, layer: "PReLU \(name)")
        precondition(outputGradient.shape == cache.input.shape,
                     "PReLU \(name): output gradient \(outputGradient.shape), expected \(cache.input.shape)")
        let view = channelView(cache.input.shape)
        let slopeGradient = preluBackward(gradient: outputGradient.storage, input: cache.input.storage,
                                          outer: view.outer, channels: channels, inner: view.inner,
                                          slopes: weight.value.storage, into: &inputGradient)
        accumulate(slopeGradient, into: weight)
        return Tensor(shape: cache.input.shape, storage: inputGradient)
    }
}

/// The rectified linear unit, `y = max(x, 0)` elementwise, any shape (Nair & Hinton 2010).
/// Its backward passes `∂y` where `y > 0` (the subgradient at 0 is 0, as PyTorch).
public final class ReLU: Layer {
    public struct Cache: LayerCache {
        let output: Tensor
    }

    public init() {}

    public var parameters: [Parameter] { [] }
    public var buffers: [Buffer] { [] }

    public func forward(_ input: Tensor, mode: Mode) -> (output: Tensor, cache: any LayerCache) {
        let output = Tensor(shape: input.shape, storage: reluForward(input.storage))
        return (output, Cache(output: output))
    }

    public func backward(_ outputGradient: Tensor, cache: any LayerCache) -> Tensor {
        let cache = layerCache(cache, as: Cache.self, layer: "ReLU")
        precondition(outputGradient.shape == cache.output.shape,
                     "ReLU: output gradient \(outputGradient.shape), expected \(cache.output.shape)")
        return Tensor(shape: outputGradient.shape,
                      storage: reluBackward(gradient: outputGradient.storage, output: cache.output.storage))
    }
}

/// Inverted dropout (Srivastava et al. 2014, "Dropout", §10 with the rescaling moved to training
/// time, as PyTorch's `Dropout`).
///
/// Concretely, in training: `y = x ⊙ mask`, `mask_i = 1/(1 − p)` with probability `1 − p`, else 0,
/// so `E[y] = x`; in inference `y = x`. The mask comes from the layer's own seeded generator, so
/// a run is reproducible from its seed.
public final class Dropout: Layer {
    /// The probability `p` of zeroing an element, in [0, 1).
    public let probability: Float
    /// The stream the masks are drawn from (advanced by every training forward pass with `p > 0`).
    public var generator: SeededGenerator

    public struct Cache: LayerCache {
        /// `[count]` of 0 or `1/(1 − p)`; `nil` when the forward pass was the identity.
        let mask: [Float]?
        let shape: [Int]
    }

    /// - Parameters:
    ///   - probability: `p` in [0, 1).
    ///   - generator: the mask stream (owned and advanced by the layer).
    public init(probability: Float, generator: SeededGenerator) {
        precondition(probability >= 0 && probability < 1, "Dropout: probability must be in [0, 1), got \(probability)")
        self.probability = probability
        self.generator = generator
    }

    public var parameters: [Parameter] { [] }
    public var buffers: [Buffer] { [] }

    /// - Parameter input: any shape. - Returns: the same shape.
    public func forward(_ input: Tensor, mode: Mode) -> (output: Tensor, cache: any LayerCache) {
        guard mode == .training, probability > 0 else {
            return (input, Cache(mask: nil, shape: input.shape))
        }
        let keep = 1 / (1 - probability)
        var mask = [Float](repeating: 0, count: input.count)
        var stream = generator   // a local copy avoids per-element exclusivity checks on the property
        for i in mask.indices where stream.nextUniform() >= probability { mask[i] = keep }
        generator = stream
        return (Tensor(shape: input.shape, storage: multiplied(input.storage, mask)), Cache(mask: mask, shape: input.shape))
    }

    public func backward(_ outputGradient: Tensor, cache: any LayerCache) -> Tensor {
        let cache = layerCache(cache, as: Cache.self, layer: "Dropout")
        precondition(outputGradient.shape == cache.shape,
                     "Dropout: output gradient \(outputGradient.shape), expected \(cache.shape)")
        guard let mask = cache.mask else { return outputGradient }
        return Tensor(shape: cache.shape, storage: multiplied(outputGradient.storage, mask))
    }
}

/// Reshapes `[N, d1, d2, …]` to `[N, d1·d2·…]` (row-major order is unchanged, so no data moves).
public final class Flatten: Layer {
    public struct Cache: LayerCache {
        let inputShape: [Int]
    }

    public init() {}

    public var parameters: [Parameter] { [] }
    public var buffers: [Buffer] { [] }

    /// - Parameter input: `[N, …]` (rank ≥ 1). - Returns: `[N, product of the rest]`.
    public func forward(_ input: Tensor, mode: Mode) -> (output: Tensor, cache: any LayerCache) {
        precondition(input.rank >= 1, "Flatten: input must have a batch axis, got \(input.shape)")
        let features = input.shape.dropFirst().reduce(1, *)
        return (input.reshaped([input.shape[0], features]), Cache(inputShape: input.shape))
    }

    public func backward(_ outputGradient: Tensor, cache: any LayerCache) -> Tensor {
        let cache = layerCache(cache, as: Cache.self, layer: "Flatten")
        return outputGradient.reshaped(cache.inputShape)
    }
}
