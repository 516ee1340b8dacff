import Foundation
import TensorCore
import Layers
import MarginLosses
import RunConfiguration
import Checkpointing
import Collectives

/// A backbone that maps images to embeddings and the classification head trained on top of it.
///
/// At evaluation time only the backbone is used: embeddings of unseen identities are compared
/// by cosine similarity.
public final class FaceRecognitionModel {
    /// The run's configuration (backbone shape, loss, margin).
    public let configuration: TrainingConfiguration
    /// Images `[N, C, H, W]` in [−1, 1] → embeddings `[N, D]`: the network `configuration.backbone.kind`
    /// names (`makeEmbeddingBackbone`), the default CNN's tensors named `backbone.…`, the field's
    /// backbones' by arcface_torch's `state_dict` keys.
    public let backbone: any EmbeddingBackbone
    /// The margin head (class centers `[K, D]`) or the softmax baseline (weight `[K, D]`, bias `[K]`).
    public let head: any ClassificationHead
    /// The number of training identities `K`.
    public let classCount: Int

    /// A freshly initialized model; the same configuration and seed give identical weights.
    ///
    /// With a `communicator` of `P > 1` ranks and a margin loss the head is a
    /// `ClassParallelMarginHead` holding this rank's slice of the classes; its rows are exactly
    /// those of the one-process head (every rank draws every center and keeps its slice), and
    /// the backbone is the same on every rank.
    public init(configuration: TrainingConfiguration, classCount: Int,
                communicator: any Communicator = SingleProcessCommunicator()) {
        precondition(classCount >= 2, "a classification head needs at least 2 classes: \(classCount)")
        self.configuration = configuration
        self.classCount = classCount
        var generator = SeededGenerator(seed: configuration.seed &+ 0x1F2E_3D4C)
        backbone = makeEmbeddingBackbone(configuration: configuration.backbone, generator: &generator, name: "backbone")
        let dimension = configuration.backbone.embeddingDimension
        if communicator.size > 1 && configuration.loss != .softmax {
            head = ClassParallelMarginHead(classCount: classCount, embeddingDimension: dimension, scale: configuration.scale,
                                           margin: FaceRecognitionModel.margin(for: configuration, fraction: 1),
                                           marginWarmupEpochs: configuration.marginWarmupEpochs,
                                           gradientMode: configuration.marginGradient, subcenters: configuration.subcenters,
                                           sampleRate: configuration.partialFCSampleRate, communicator: communicator,
                                           generator: &generator, name: "head")
        } else if configuration.loss == .softmax {
            head = SoftmaxHead(classCount: classCount, embeddingDimension: dimension, generator: &generator, name: "head")
        } else {
            head = MarginHead(classCount: classCount, embeddingDimension: dimension, scale: configuration.scale,
                              margin: FaceRecognitionModel.margin(for: configuration, fraction: 1),
                              marginWarmupEpochs: configuration.marginWarmupEpochs,
                              gradientMode: configuration.marginGradient, subcenters: configuration.subcenters,
                              sampleRate: configuration.partialFCSampleRate, generator: &generator, name: "head")
        }
    }

    /// A freshly initialized model, after checking — before allocating anything — that the
    /// backbone (`BackboneConfiguration.memoryBytesEstimate`, training: parameters with gradients
    /// and momentum, one batch of `batchSize` with its caches and convolution scratch) and the
    /// margin head's state (centers, gradient, SGD momentum: `3·K·k·D·4` bytes) with one batch
    /// under its memory plan each fit in `availableBytes`.
    ///
    /// - Throws: `ModelMemoryError.backbone(.doesNotFit)` or `.head(.stateDoesNotFit)` (stating
    ///   the bytes needed and available), or `.batchTooLargeForHead` when one batch of
    ///   `batchSize` cannot fit the head's memory budget (`MarginHead.defaultMemoryBudgetBytes`)
    ///   even one class per chunk (stating the largest `batchSize` that fits); the softmax
    ///   baseline head is not checked.
    ///
    /// With a `communicator` of `P > 1` ranks, `batchSize` is one rank's batch and the head is
    /// checked for its slice (`ClassParallelMarginHead.checkMemory`).
    public convenience init(configuration: TrainingConfiguration, classCount: Int, checkingMemoryForBatchSize batchSize: Int,
                            availableBytes: Int = SystemMemory.availableBytes,
                            communicator: any Communicator = SingleProcessCommunicator()) throws(ModelMemoryError) {
        do { try configuration.backbone.checkMemory(batchSize: batchSize, training: true, availableBytes: availableBytes) }
        catch { throw .backbone(error) }
        if configuration.loss != .softmax && communicator.size > 1 {
            do {
                try ClassParallelMarginHead.checkMemory(batchSize: batchSize, worldSize: communicator.size, classCount: classCount,
                                                        embeddingDimension: configuration.backbone.embeddingDimension,
                                                        subcenters: configuration.subcenters, availableBytes: availableBytes)
            } catch { throw .head(error) }
        } else if configuration.loss != .softmax {
            do {
                try MarginHead.checkMemory(batchSize: batchSize, classCount: classCount,
                                           embeddingDimension: configuration.backbone.embeddingDimension,
                                           subcenters: configuration.subcenters,
                                           availableBytes: availableBytes)
            } catch {
                guard case let .budgetTooSmall(budget, needed) = error else { throw .head(error) }
                // The budget is the head's default (not a configuration key): say which keys to change.
                throw .batchTooLargeForHead(
                    batchSize: batchSize, embeddingDimension: configuration.backbone.embeddingDimension,
                    largestBatchSize: HeadPlan.largestBatchSize(classCount: classCount, subcenters: configuration.subcenters,
                                                                embeddingDimension: configuration.backbone.embeddingDimension,
                                                                memoryBudgetBytes: budget),
                    budgetBytes: budget, neededBytes: needed)
            }
        }
        self.init(configuration: configuration, classCount: classCount, communicator: communicator)
    }

    /// The margin of `configuration`'s loss with every margin term multiplied by `fraction`
    /// (used for margin warm-up; `fraction = 1` is the configured margin).
    public static func margin(for configuration: TrainingConfiguration, fraction: Double) -> any Margin {
        switch configuration.loss {
        case .arcface:
            return ArcFaceMargin(margin: configuration.angularMargin * fraction, fallback: configuration.marginFallback)
        case .cosface:
            return CosFaceMargin(margin: configuration.cosineMargin * fraction)
        case .normface, .softmax:
            return NormFaceMargin()
        case .combined:
            return CombinedMargin(angularMultiplier: 1 + (configuration.combinedAngularMultiplier - 1) * fraction,
                                  angularMargin: configuration.combinedAngularMargin * fraction,
                                  cosineMargin: configuration.combinedCosineMargin * fraction)
        }
    }

    /// Every trainable parameter: the backbone's, then the head's.
    public var parameters: [Parameter] { backbone.parameters + head.parameters }

    /// Every tensor a checkpoint stores, by name: parameters and buffers (BatchNorm running statistics).
    public var namedTensors: [(name: String, tensor: Tensor)] {
        parameters.map { ($0.name, $0.value) } + backbone.buffers.map { ($0.name, $0.value) }
    }

    /// The total number of trainable scalars.
    public var parameterCount: Int { parameters.reduce(0) { $0 + $1.value.count } }

    /// Replaces every parameter and buffer with the tensor of the same name.
    ///
    /// - Throws: `CheckpointError.missingTensor`, `.shapeMismatch`, `.unexpectedTensor` or
    ///   `.nonFiniteTensor` (a NaN or ±∞ value); on
    ///   error nothing has been changed.
    public func load(_ tensors: [String: Tensor], path: String) throws(CheckpointError) {
        let parameters = self.parameters, buffers = backbone.buffers
        var expected = Set<String>()
        for (name, shape) in parameters.map({ ($0.name, $0.value.shape) }) + buffers.map({ ($0.name, $0.value.shape) }) {
            expected.insert(name)
            guard let tensor = tensors[name] else { throw .missingTensor(path: path, name: name) }
            guard tensor.shape == shape else { throw .shapeMismatch(path: path, name: name, expected: shape, found: tensor.shape) }
        }
        if let extra = tensors.keys.sorted().first(where: { !expected.contains($0) }) {
            throw .unexpectedTensor(path: path, name: extra)
        }
        if let bad = tensors.keys.sorted().first(where: { !tensors[$0]!.isFinite }) {
            throw .nonFiniteTensor(path: path, name: bad)
        }
        for parameter in parameters { parameter.value = tensors[parameter.name]! }
        for buffer in buffers { buffer.value = tensors[buffer.name]! }
    }
}

/// A model that cannot fit in memory; thrown before anything large is allocated.
public enum ModelMemoryError: Error, CustomStringConvertible, Equatable {
    /// The backbone's parameters, caches and scratch do not fit.
    case backbone(BackboneMemoryError)
    /// The margin head does not fit in what the backbone leaves.
    case head(HeadMemoryError)
    /// One batch of `batchSize` (the configuration key `batchSize`) with embeddings of
    /// `embeddingDimension` (`backbone.embeddingDimension`) needs `neededBytes` of the margin
    /// head's memory budget (`budgetBytes`, `MarginHead.defaultMemoryBudgetBytes`) even one class
    /// per chunk; `largestBatchSize` is the largest `batchSize` that fits (0: none does at this
    /// dimension).
    case batchTooLargeForHead(batchSize: Int, embeddingDimension: Int, largestBatchSize: Int, budgetBytes: Int, neededBytes: Int)

    public var description: String {
        switch self {
        case let .backbone(error): error.description
        case let .head(error): error.description
        case let .batchTooLargeForHead(batchSize, dimension, largest, budget, needed):
            "batchSize \(batchSize) with backbone.embeddingDimension \(dimension) needs \(needed) bytes of the margin head's "
                + "memory budget of \(budget) bytes even one class per chunk; "
                + (largest > 0 ? "HINT: batchSize must be ≤ \(largest) at this embedding dimension (or lower backbone.embeddingDimension)"
                               : "HINT: lower backbone.embeddingDimension (no batchSize fits at \(dimension))")
        }
    }
}
