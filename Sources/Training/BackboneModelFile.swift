// Backbone-only model files (a model-zoo backbone converted by scripts/convert_arcface_torch.py,
// or `Experiment.saveBackbone`): loaded for inference (`embed`, `evaluate-protocol`, `export`)
// without a margin head.
import Foundation
import TensorCore
import Layers
import FaceData
import RunConfiguration
import Checkpointing

/// A backbone and the configuration it was built from: everything inference needs (embeddings,
/// pair protocols, ONNX export), loaded from a full model file or a backbone-only one.
public struct EmbeddingModel {
    /// Where the configuration came from.
    public enum ConfigurationSource: String, Sendable, Equatable {
        /// The file's `configuration` metadata.
        case stored
        /// Inferred from the tensor names and shapes of a file without configuration metadata
        /// (`BackboneConfiguration.inferred(fromTensorShapes:)`; other keys at their defaults).
        case inferred
    }

    /// The configuration (backbone, preprocessing, folds, flip-sum).
    public let configuration: TrainingConfiguration
    /// Images `[N, C, H, W]` in [−1, 1] → embeddings `[N, D]`.
    public let backbone: any EmbeddingBackbone
    /// The full model when the file holds a margin head, `nil` for a backbone-only file.
    public let model: FaceRecognitionModel?
    /// Where `configuration` came from.
    public let configurationSource: ConfigurationSource
    /// The training identities a full model file lists (empty for a backbone-only file).
    public let identities: [String]
}

extension EmbeddingModel {
    /// One line saying which backbone was loaded and where its configuration came from, as
    /// `embed`, `evaluate-protocol` and `export` print it: e.g. "mobilefacenet blocks [2, 8, 12, 4]
    /// scale 4, D 512, configuration stored in the file" or "iresnet-18, D 512, configuration
    /// inferred from the tensor names (no configuration metadata)".
    public var summary: String {
        let b = configuration.backbone
        let family = switch b.kind {
        case .iresnet: "iresnet-\(b.depth.map(String.init) ?? "?")"
        case .mobilefacenet: "mobilefacenet blocks \(b.blocks ?? []) scale \(b.scale ?? 0)"
        case .default: "default CNN stages \(b.stageChannels)"
        }
        let origin = switch configurationSource {
        case .stored: model == nil ? "configuration stored in the file" : "full model file, configuration stored in it"
        case .inferred: "configuration inferred from the tensor names (no configuration metadata)"
        }
        return "\(family), D \(b.embeddingDimension), \(origin)"
    }
}

/// Why a model file could not be loaded as a backbone for inference.
public enum BackboneFileError: Error, CustomStringConvertible, Equatable, Sendable {
    /// The file could not be read, is not safetensors, or (holding a head) is not a loadable model.
    case file(CheckpointError)
    /// The backbone has tensor `name`, the file does not.
    case missingTensor(path: String, name: String)
    /// Tensor `name` has shape `file` in the file, the backbone's is `expected`.
    case shapeMismatch(path: String, name: String, file: [Int], expected: [Int])
    /// The file holds tensor `name`, which is not one of the backbone's.
    case unexpectedTensor(path: String, name: String)
    /// Tensor `name` holds NaN or ±∞.
    case nonFiniteTensor(path: String, name: String)
    /// The file has no configuration metadata and its tensor names are not those of an
    /// arcface_torch IResNet or MobileFaceNet (`reason` says what was found).
    case unknownFamily(path: String, reason: String)
    /// `command` needs what only a full model file holds (`reason`), the file holds a backbone only.
    case needsFullModel(path: String, command: String, reason: String)

    public var description: String {
        switch self {
        case let .file(error): error.description
        case let .missingTensor(path, name):
            "\(path): the backbone's tensor '\(name)' is not in the file (a backbone of another kind or depth?)"
        case let .shapeMismatch(path, name, file, expected):
            "\(path): tensor '\(name)' has shape \(file) in the file, the backbone's is \(expected) (another width or embedding size?)"
        case let .unexpectedTensor(path, name): "\(path): tensor '\(name)' is not a tensor of this backbone"
        case let .nonFiniteTensor(path, name): "\(path): tensor '\(name)' holds NaN or infinite values"
        case let .unknownFamily(path, reason):
            "\(path) has no configuration metadata and is not an arcface_torch IResNet-18/34/50/100 or MobileFaceNet state_dict: \(reason)"
        case let .needsFullModel(path, command, reason):
            "\(command): \(path) holds a backbone without a margin head or training run; \(reason)"
        }
    }
}

extension BackboneConfiguration {
    /// The arcface_torch backbone whose `state_dict` has these tensor names and shapes: IResNet
    /// (`conv1.weight` or `layer1.…`; the depth from the number of blocks `layer1.<i>` …
    /// `layer4.<i>`, `D` from `fc.weight` `[D, 512·7·7]`) or MobileFaceNet (`layers.0.…` or
    /// `conv_sep.…`; `scale` from the stem `layers.0.layers.0.weight` `[64·scale, 3, 3, 3]` (or its
    /// BatchNorm or PReLU `[64·scale]`; 2 when none is a multiple of 64),
    /// `blocks` from the blocks `layers.3.layers.<i>`, `layers.5…`, `layers.7…` and `layers.1`:
    /// 1 when it is the grouped ConvBlock `layers.1.layers.0.weight`, else its blocks; `D` from
    /// `features.layers.2.weight` `[D, 512]`: `get_mbf`, `get_mbf_large` or any other
    /// `MobileFaceNet(blocks, scale)`), RGB 112×112. The shapes are checked when the tensors load.
    ///
    /// - Returns: the configuration, or a sentence saying why none fits.
    public static func inferred(fromTensorShapes shapes: [String: [Int]]) -> Result<BackboneConfiguration, InferenceFailure> {
        if shapes["conv1.weight"] != nil || shapes.keys.contains(where: { $0.hasPrefix("layer1.") }) {
            let counts = (1...4).map { stage in
                Set(shapes.keys.compactMap { key -> String? in
                    let parts = key.split(separator: ".")
                    return parts.count > 2 && parts[0] == "layer\(stage)" ? String(parts[1]) : nil
                }).count
            }
            guard let depth = IResNetArchitecture.supportedDepths.first(where: { IResNetArchitecture.blocks(depth: $0) == counts }) else {
                return .failure(InferenceFailure(reason: "IResNet with blocks \(counts) per stage (arcface_torch depths: "
                    + IResNetArchitecture.supportedDepths.map { "\($0) \(IResNetArchitecture.blocks(depth: $0)!)" }.joined(separator: ", ") + ")"))
            }
            guard let fc = shapes["fc.weight"], fc.count == 2, fc[0] >= 1 else {
                return .failure(InferenceFailure(reason: "IResNet-\(depth) without a 2-D 'fc.weight'"))
            }
            return .success(BackboneConfiguration(kind: .iresnet, depth: depth, embeddingDimension: fc[0]))
        }
        if shapes.keys.contains(where: { $0.hasPrefix("layers.0.") || $0.hasPrefix("conv_sep.") }) {
            guard let linear = shapes["features.layers.2.weight"], linear.count == 2, linear[0] >= 1 else {
                return .failure(InferenceFailure(reason: "MobileFaceNet without a 2-D 'features.layers.2.weight'"))
            }
            // 64·scale channels in the stem's convolution, BatchNorm or PReLU (the first that is a
            // multiple of 64), else get_mbf's scale: the tensor check then names what does not fit.
            let stemWidth = ["layers.0.layers.0.weight", "layers.0.layers.1.weight", "layers.0.layers.2.weight"]
                .compactMap { shapes[$0]?.first }.first { $0 >= 64 && $0 % 64 == 0 }
            let scale = stemWidth.map { $0 / 64 } ?? MobileFaceNetArchitecture().scale
            // Blocks of the Residual `layers.<module>`: the distinct `<i>` of `layers.<module>.layers.<i>.…`;
            // `layers.1` is the grouped ConvBlock (one block) when it holds `layers.1.layers.0.weight`.
            func residualBlocks(_ module: Int) -> Int {
                let prefix = "layers.\(module).layers."
                return Set(shapes.keys.compactMap { key -> Substring? in
                    guard key.hasPrefix(prefix) else { return nil }
                    let rest = key.dropFirst(prefix.count).split(separator: ".")
                    return rest.count > 1 ? rest[0] : nil
                }).count
            }
            let first = shapes["layers.1.layers.0.weight"] != nil ? 1 : residualBlocks(1)
            let configuration = BackboneConfiguration.mobileFaceNet(blocks: [first] + [3, 5, 7].map(residualBlocks), scale: scale,
                                                                    embeddingDimension: linear[0])
            if let problem = configuration.familyProblems.first {
                return .failure(InferenceFailure(reason: "MobileFaceNet with blocks \(configuration.blocks ?? []) and scale \(configuration.scale ?? 0) "
                                                 + "(from 'layers.1/3/5/7.layers.<i>' and the stem's channels): \(problem)"))
            }
            return .success(configuration)
        }
        let sample = shapes.keys.sorted().prefix(3).map { "'\($0)'" }.joined(separator: ", ")
        return .failure(InferenceFailure(reason: shapes.isEmpty ? "the file holds no tensors"
            : "neither 'conv1.weight' / 'layer1.…' (IResNet) nor 'layers.0.…' / 'conv_sep.…' (MobileFaceNet) among \(shapes.count) tensors (\(sample), …)"))
    }

    /// Why `inferred(fromTensorShapes:)` found no backbone.
    public struct InferenceFailure: Error, Sendable, Equatable {
        public var reason: String
    }
}

extension Experiment {
    /// The metadata `kind` of a backbone-only file written by `saveBackbone`.
    public static let backboneFileKind = "backbone"

    /// Writes `model`'s backbone alone (parameters and BatchNorm statistics, no head) to `file`
    /// with the `format`, `version`, `configuration` and `preprocessing` metadata of
    /// `model.safetensors` and `kind` = `backboneFileKind`: a file `loadEmbeddingModel(path:)`
    /// and `--init-from` read.
    ///
    /// - Throws: `CheckpointError.nonFiniteWrite` or `.writeFailed`.
    public static func saveBackbone(_ model: FaceRecognitionModel, to file: String) throws(CheckpointError) {
        let tensors = model.backbone.parameters.map { ($0.name, $0.value) } + model.backbone.buffers.map { ($0.name, $0.value) }
        if let bad = tensors.first(where: { !$0.1.isFinite }) { throw .nonFiniteWrite(path: file, name: bad.0) }
        let metadata = [
            "format": checkpointFormat, "version": checkpointVersion, "kind": backboneFileKind,
            "configuration": String(decoding: model.configuration.jsonData(), as: UTF8.self),
            InputPreprocessing.metadataKey: model.configuration.preprocessing.json,
        ]
        try Safetensors.write(tensors, metadata: metadata, checksum: true, to: file)
    }

    /// Loads the backbone of the safetensors file at `path` (a run folder: its
    /// `model.safetensors`) for inference:
    ///
    /// - a model file or training checkpoint with a head (`head.…` tensors): `loadCheckpoint(path:)`,
    ///   `model` set;
    /// - a backbone-only file (`saveBackbone`, or a converted arcface_torch `state_dict`, with or
    ///   without `num_batches_tracked`): its `configuration` metadata when present (with the
    ///   `format` and `version` of this package), else the backbone inferred from the tensor
    ///   names and shapes (`BackboneConfiguration.inferred(fromTensorShapes:)`, every other key
    ///   at its default: RGB 112×112, `(v − 127.5)/127.5`, 10 folds, flip-sum on); `model` `nil`.
    ///
    /// Both give the same embeddings for the same backbone tensors.
    ///
    /// - Throws: `BackboneFileError` naming the file and the tensor (missing, other shape,
    ///   unexpected, non-finite) or why no family fits (`.unknownFamily`).
    public static func loadEmbeddingModel(path: String) throws(BackboneFileError) -> EmbeddingModel {
        let file = modelFile(at: path)
        var (tensors, metadata): ([String: Tensor], [String: String])
        do { (tensors, metadata) = try Safetensors.read(path: file) } catch { throw .file(error) }
        if tensors.keys.contains(where: { $0.hasPrefix("head.") }) {
            let (model, identities): (FaceRecognitionModel, [String])
            do { (model, identities) = try loadCheckpoint(path: file) } catch { throw .file(error) }
            return EmbeddingModel(configuration: model.configuration, backbone: model.backbone, model: model,
                                  configurationSource: .stored, identities: identities)
        }
        if metadata["kind"] == TrainingCheckpoint.kind { tensors = tensors.filter { !$0.key.hasPrefix("momentum.") } }
        let configuration: TrainingConfiguration, source: EmbeddingModel.ConfigurationSource
        if let json = metadata["configuration"] {
            guard metadata["format"] == checkpointFormat else {
                throw .file(.malformed(path: file, reason: "configuration metadata without swift-arcface's format (format = \(metadata["format"] ?? "none"))"))
            }
            guard metadata["version"] == checkpointVersion else {
                throw .file(.incompatibleVersion(path: file, found: metadata["version"] ?? "none", expected: checkpointVersion))
            }
            do { configuration = try TrainingConfiguration.decode(json: Data(json.utf8), source: file) }
            catch { throw .file(.invalidConfiguration(path: file, reason: error.description)) }
            source = .stored
        } else {
            switch BackboneConfiguration.inferred(fromTensorShapes: tensors.mapValues(\.shape)) {
            case let .success(backbone):
                var inferred = TrainingConfiguration()
                inferred.backbone = backbone
                configuration = inferred
            case let .failure(failure): throw .unknownFamily(path: file, reason: failure.reason)
            }
            source = .inferred
        }
        do { try checkPreprocessing(metadata, configuration: configuration, path: file) } catch { throw .file(error) }
        do { try configuration.backbone.checkMemory(batchSize: 50, training: false) }
        catch { throw .file(.invalidConfiguration(path: file, reason: error.description)) }
        var generator = SeededGenerator(seed: configuration.seed)
        let backbone = makeEmbeddingBackbone(configuration: configuration.backbone, generator: &generator, name: "backbone")
        do { try backbone.replaceTensors(with: tensors) } catch {
            switch error {
            case let .missing(name): throw .missingTensor(path: file, name: name)
            case let .shape(name, shape, expected): throw .shapeMismatch(path: file, name: name, file: shape, expected: expected)
            case let .unexpected(name): throw .unexpectedTensor(path: file, name: name)
            case let .nonFinite(name): throw .nonFiniteTensor(path: file, name: name)
            }
        }
        return EmbeddingModel(configuration: configuration, backbone: backbone, model: nil, configurationSource: source, identities: [])
    }
}
