// The layer contract shared by every building block of a backbone.
//
// Legend used throughout the module: `N` batch size, `C` channels, `H`, `W` height and width in
// pixels, `D` embedding dimension. Tensors are row-major; image batches are `[N, C, H, W]`.
import TensorCore

/// Whether a forward pass trains (batch statistics, dropout active) or infers (running
/// statistics, dropout off).
public enum Mode: Sendable {
    case training, inference
}

/// What a layer's forward pass saves for its backward pass. Each layer defines its own cache type
/// (llm.c's named activation buffers, one small struct per layer instead of a closure tape).
public protocol LayerCache {}

/// A network building block with an explicit forward and backward pass.
///
/// The gradient convention (llm.c): `backward` **accumulates** (`+=`) into each
/// `Parameter.gradient` and *returns* the input gradient; the training loop clears parameter
/// gradients once per step (`Parameter.zeroGradient()`). Calling `backward` twice with the same
/// cache therefore doubles the parameter gradients.
///
/// Layers are reference types that own their parameters and some reusable scratch buffers; a
/// layer instance is not safe to use from two threads at once.
public protocol Layer: AnyObject {
    /// Computes the output and the cache that backward needs.
    /// - Parameters:
    ///   - input: the layer's input (shape documented per layer, e.g. `[N, C, H, W]`).
    ///   - mode: `.training` uses batch statistics and dropout; `.inference` does not.
    func forward(_ input: Tensor, mode: Mode) -> (output: Tensor, cache: any LayerCache)

    /// Returns ∂L/∂input and ACCUMULATES (+=) parameter gradients into its Parameters.
    /// - Parameters:
    ///   - outputGradient: ∂L/∂output, the shape of the forward output.
    ///   - cache: the cache returned by this layer's `forward` (a cache of another layer type traps).
    func backward(_ outputGradient: Tensor, cache: any LayerCache) -> Tensor

    /// Trainable parameters, stable order, names unique within the model.
    var parameters: [Parameter] { get }

    /// Non-trainable state saved in checkpoints (BatchNorm running mean/var).
    var buffers: [Buffer] { get }
}

extension Layer {
    /// The total number of trainable scalars (elements of all `parameters`).
    public var parameterCount: Int { parameters.reduce(0) { $0 + $1.value.count } }
}

/// Named non-trainable state of a layer, such as BatchNorm's running mean `[C]`; shared by
/// reference between the layer and the checkpoint code.
public final class Buffer {
    /// A stable, unique name within a model, e.g. `"backbone.stage1.bn.running_mean"`.
    public let name: String
    /// The current value.
    public var value: Tensor

    public init(name: String, value: Tensor) {
        self.name = name
        self.value = value
    }
}

/// Downcasts a type-erased cache to the layer's own cache type, trapping with the layer's name
/// when it was produced by another layer.
@inline(__always)
func layerCache<C: LayerCache>(_ cache: any LayerCache, as type: C.Type, layer: String) -> C {
    guard let typed = cache as? C else {
        preconditionFailure("\(layer).backward: expected a \(C.self), got a \(Swift.type(of: cache)) (cache from another layer?)")
    }
    return typed
}

/// Adds per-element values computed in `Double` to a parameter's gradient (`gradient += values`).
func accumulate(_ values: [Double], into parameter: Parameter) {
    precondition(values.count == parameter.gradient.count,
                 "\(parameter.name): \(values.count) gradient values for \(parameter.gradient.count) elements")
    for i in values.indices { parameter.gradient.storage[i] += Float(values[i]) }
}

/// Joins a name prefix and a component with a dot (`"" + "conv"` → `"conv"`).
func qualified(_ prefix: String, _ component: String) -> String {
    prefix.isEmpty ? component : "\(prefix).\(component)"
}
