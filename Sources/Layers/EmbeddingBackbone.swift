import TensorCore

/// A network that maps a batch of face images to embeddings: what the trainer, evaluation and
/// `embed` use, whichever family it is (`Backbone`, `IResNet`, `MobileFaceNet`).
///
/// Input `[N, C, H, W]` as `configuration` says (N > 1 in training, for the BatchNorms), output
/// `[N, D]` with `D = configuration.embeddingDimension`, not normalized.
public protocol EmbeddingBackbone: Layer {
    /// The configuration the network was built from (input size, `D`, kind).
    var configuration: BackboneConfiguration { get }
    /// Whether `backward` computes `∂L/∂input`; a training loop that never uses the image
    /// gradient sets it to `false` (the first convolution skips its input-gradient work and
    /// `backward` returns zeros). Default `true`.
    var computesInputGradient: Bool { get set }
    /// The stream of the network's dropout masks, saved in training checkpoints so that a
    /// resumed run draws the same masks (a network without dropout keeps one that nothing advances).
    var dropoutGenerator: SeededGenerator { get set }
    /// The top-level layers in forward order (each a leaf layer, a block or a `Sequential`),
    /// for code that walks the network (export); their leaves carry the parameter names.
    var layers: [any Layer] { get }
}

/// Builds the embedding network `configuration.kind` names, drawing the weights from
/// `generator` (advanced).
///
/// Parameter and buffer names: the default CNN's are prefixed `name` (`backbone.stage1.conv.weight`);
/// the field's backbones carry arcface_torch's `state_dict` keys, unprefixed (`conv1.weight`,
/// `layer2.0.downsample.1.running_var`, `features.weight`), so their `model.safetensors` tensors
/// map one to one onto arcface_torch's (<doc:Backbones>).
///
/// - Precondition: the configuration passes `TrainingConfiguration`'s validation (a family's
///   `familyProblems` is empty).
public func makeEmbeddingBackbone(configuration: BackboneConfiguration, generator: inout SeededGenerator,
                                  name: String = "backbone") -> any EmbeddingBackbone {
    switch configuration.kind {
    case .default:
        return Backbone(configuration: configuration, generator: &generator, name: name)
    case .iresnet:
        return IResNet(configuration: configuration, generator: &generator)
    case .mobilefacenet:
        return MobileFaceNet(configuration: configuration, generator: &generator)
    }
}

extension Backbone: EmbeddingBackbone {
    /// The dropout layer's mask stream.
    public var dropoutGenerator: SeededGenerator {
        get { dropout.generator }
        set { dropout.generator = newValue }
    }

    /// The stages, then Flatten, Dropout, the embedding Linear and the feature BatchNorm.
    public var layers: [any Layer] { network.layers }
}
