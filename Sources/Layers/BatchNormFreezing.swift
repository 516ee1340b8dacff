// Walking a network's layers, and freezing the BatchNorm statistics of a whole network
// (fine-tuning a pretrained backbone: `freezeBatchNorm`).

/// A layer built from other layers (a block, a stage, a network): its direct sublayers, in
/// forward order, for code that walks a network (`descendantLayers(of:)`).
public protocol LayerContainer {
    /// The layers this one is made of, each once, in forward order.
    var sublayers: [any Layer] { get }
}

extension Sequential: LayerContainer {
    public var sublayers: [any Layer] { layers }
}

extension ResidualBlock: LayerContainer {
    /// The main branch, then the projection shortcut (if any).
    public var sublayers: [any Layer] { [main] + (shortcut.map { [$0] } ?? []) }
}

extension BatchNormPReLUMaxPool2D: LayerContainer {
    /// The three layers it fuses (their state is the fused layer's).
    public var sublayers: [any Layer] { [batchNorm, prelu, pool] }
}

extension IResNetBlock: LayerContainer {
    /// The main branch, then the downsample (if any).
    public var sublayers: [any Layer] { [main] + (downsample.map { [$0] } ?? []) }
}

extension MobileFaceNetDepthWise: LayerContainer {
    public var sublayers: [any Layer] { [body] }
}

extension Backbone: LayerContainer {
    public var sublayers: [any Layer] { layers }
}

extension IResNet: LayerContainer {
    public var sublayers: [any Layer] { layers }
}

extension MobileFaceNet: LayerContainer {
    public var sublayers: [any Layer] { layers }
}

/// `layer` and every layer inside it, depth first in forward order (a container before its
/// sublayers).
public func descendantLayers(of layer: any Layer) -> [any Layer] {
    var result: [any Layer] = [layer]
    if let container = layer as? any LayerContainer {
        for sublayer in container.sublayers { result += descendantLayers(of: sublayer) }
    }
    return result
}

/// Sets `freezesStatistics` of every `BatchNorm2D` and `BatchNorm1D` in `network` (the fused
/// BatchNorm → PReLU → MaxPool's included): frozen, `.training` forward passes normalize with
/// the running statistics and leave them unchanged, and the backward pass treats them as
/// constants, as PyTorch's BatchNorm in `eval()` mode while the rest trains.
///
/// - Returns: how many BatchNorm layers were set.
@discardableResult
public func setBatchNormStatisticsFrozen(_ frozen: Bool, in network: any Layer) -> Int {
    var count = 0
    for layer in descendantLayers(of: network) {
        if let norm = layer as? BatchNorm2D {
            norm.freezesStatistics = frozen
            count += 1
        } else if let norm = layer as? BatchNorm1D {
            norm.freezesStatistics = frozen
            count += 1
        }
    }
    return count
}
