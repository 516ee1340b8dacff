import TensorCore

/// The shape of the embedding network: the default face-embedding CNN (`Backbone`), or one of the
/// field's backbones (`kind`: IResNet-18/34/50/100, MobileFaceNet; see <doc:Backbones>).
///
/// Each entry of `stageChannels` is one stage of the default CNN: conv3×3 (padding 1) →
/// BatchNorm2D → PReLU → MaxPool2D(2), or, with `residual`, a `ResidualBlock` → MaxPool2D(2).
/// Every stage halves the spatial size (floor): 112×92 → 56×46 → 28×23 → 14×11 → 7×5 (an odd
/// side loses its last row or column: `flooredPoolings`). `stageChannels` and `residual` apply to
/// the default CNN only; `depth` to IResNet only.
public struct BackboneConfiguration: Codable, Sendable, Equatable {
    /// Which network: the default CNN (`"default"`), `"iresnet"` (with `depth`) or `"mobilefacenet"`.
    public var kind: BackboneKind = .default
    /// IResNet's depth, 18, 34, 50 or 100 (`IResNetArchitecture.supportedDepths`); `nil` for the other kinds.
    public var depth: Int? = nil
    /// MobileFaceNet's blocks of its four residual groups (`MobileFaceNetArchitecture.blocks`,
    /// JSON `backbone.blocks`): `[1, 4, 6, 2]` as arcface_torch's `get_mbf`, `[2, 8, 12, 4]` as
    /// `get_mbf_large`; `nil` for the other kinds.
    public var blocks: [Int]? = nil
    /// MobileFaceNet's width multiplier of its 64- and 128-channel stages
    /// (`MobileFaceNetArchitecture.scale`, JSON `backbone.scale`, not the margin's top-level
    /// `scale`): 2 as `get_mbf`, 4 as `get_mbf_large`; `nil` for the other kinds.
    public var scale: Int? = nil
    /// Input image `[C, H, W]` (grey 112×92 faces by default; RGB 112×112 for the field's
    /// backbones), in channels and pixels.
    public var inputChannels = 1, inputHeight = 112, inputWidth = 92
    /// Output channels of each stage (default CNN only).
    public var stageChannels = [16, 32, 64, 128]
    /// `D`, the embedding size (128 by default; 512 for the field's backbones).
    public var embeddingDimension = 128
    /// Dropout probability before the final Linear, in [0, 1) (0.5 by default; 0 for IResNet,
    /// as arcface_torch; MobileFaceNet has no dropout and takes only 0).
    public var dropout: Float = 0.5
    /// Whether stages use `ResidualBlock` instead of a plain conv → BN → PReLU (default CNN only).
    public var residual = false

    public init(inputChannels: Int = 1, inputHeight: Int = 112, inputWidth: Int = 92,
                stageChannels: [Int] = [16, 32, 64, 128], embeddingDimension: Int = 128,
                dropout: Float = 0.5, residual: Bool = false) {
        self.inputChannels = inputChannels
        self.inputHeight = inputHeight
        self.inputWidth = inputWidth
        self.stageChannels = stageChannels
        self.embeddingDimension = embeddingDimension
        self.dropout = dropout
        self.residual = residual
    }

    /// The spatial size `(h, w)` after the last stage's pooling.
    public var finalSpatialSize: (height: Int, width: Int) {
        if kind != .default { return (7, 7) }
        var h = inputHeight, w = inputWidth
        for _ in stageChannels { h /= 2; w /= 2 }
        return (h, w)
    }

    /// Each stage whose 2×2 max-pooling floors an odd input height or width, dropping the input's
    /// last row or column, in stage order. Empty when every stage input is even (a side of
    /// `2^k · n` pixels through `k` stages). The default 112×92 floors two widths: stage 3 (28×23 →
    /// 14×11) and stage 4 (14×11 → 7×5); a 24×24 input floors stage 4 (3×3 → 1×1, a third of
    /// its rows and columns).
    public var flooredPoolings: [FlooredPooling] {
        guard kind == .default else { return [] }
        var result: [FlooredPooling] = []
        var h = inputHeight, w = inputWidth
        for stage in stageChannels.indices {
            if h % 2 == 1 || w % 2 == 1 {
                result.append(FlooredPooling(stage: stage + 1, inputHeight: h, inputWidth: w))
            }
            h /= 2
            w /= 2
        }
        return result
    }

    /// The length of the flattened feature vector fed to the embedding Linear: `C_last·h·w`
    /// (4480 = 128·7·5 by default).
    public var flattenedFeatureCount: Int {
        if kind != .default { return 512 * 7 * 7 }
        let (h, w) = finalSpatialSize
        return (stageChannels.last ?? inputChannels) * h * w
    }

    private enum CodingKeys: String, CodingKey, CaseIterable {
        case kind, depth, blocks, scale, inputChannels, inputHeight, inputWidth, stageChannels, embeddingDimension, dropout, residual
    }

    /// Decodes a configuration; missing keys take their defaults — the kind's: RGB 112×112,
    /// `D` = 512 and dropout 0 for the field's backbones (`BackboneConfiguration(kind:depth:)`) —
    /// and unknown keys are an error (`DecodingError.dataCorrupted` naming the key), so a typo
    /// never passes silently. So are an unknown `kind`, `depth` outside 18/34/50/100 or missing
    /// for `"iresnet"`, and a key that does not apply to the kind (`depth` without IResNet,
    /// `blocks` or `scale` without MobileFaceNet, `stageChannels` or `residual` with a family).
    /// MobileFaceNet's `blocks` and `scale` default to `get_mbf`'s; their ranges are checked by
    /// `familyProblems`.
    public init(from decoder: any Decoder) throws {
        let known = Set(CodingKeys.allCases.map(\.stringValue))
        let any = try decoder.container(keyedBy: AnyKey.self)
        if let unknown = any.allKeys.first(where: { !known.contains($0.stringValue) }) {
            throw DecodingError.dataCorrupted(.init(
                codingPath: decoder.codingPath + [unknown],
                debugDescription: "unknown backbone configuration key \"\(unknown.stringValue)\"; known keys: \(known.sorted())"))
        }
        let c = try decoder.container(keyedBy: CodingKeys.self)
        let kind = try Self.decodeKind(c)
        let depth = try Self.decodeDepth(c, kind: kind)
        for key in [CodingKeys.blocks, .scale] where kind != .mobilefacenet && c.contains(key) {
            throw DecodingError.dataCorrupted(.init(
                codingPath: c.codingPath + [key],
                debugDescription: "backbone.\(key.stringValue) applies to kind \"mobilefacenet\" only, not \"\(kind.rawValue)\""))
        }
        for key in [CodingKeys.stageChannels, .residual] where kind != .default && c.contains(key) {
            throw DecodingError.dataCorrupted(.init(
                codingPath: c.codingPath + [key],
                debugDescription: "backbone.\(key.stringValue) applies to kind \"default\" only, not \"\(kind.rawValue)\" (whose layers are fixed)"))
        }
        let defaults = kind == .default ? BackboneConfiguration() : BackboneConfiguration(kind: kind, depth: depth ?? 50)
        self = defaults
        self.depth = depth
        blocks = try c.decodeIfPresent([Int].self, forKey: .blocks) ?? defaults.blocks
        scale = try c.decodeIfPresent(Int.self, forKey: .scale) ?? defaults.scale
        inputChannels = try c.decodeIfPresent(Int.self, forKey: .inputChannels) ?? defaults.inputChannels
        inputHeight = try c.decodeIfPresent(Int.self, forKey: .inputHeight) ?? defaults.inputHeight
        inputWidth = try c.decodeIfPresent(Int.self, forKey: .inputWidth) ?? defaults.inputWidth
        stageChannels = try c.decodeIfPresent([Int].self, forKey: .stageChannels) ?? defaults.stageChannels
        embeddingDimension = try c.decodeIfPresent(Int.self, forKey: .embeddingDimension) ?? defaults.embeddingDimension
        dropout = try c.decodeIfPresent(Float.self, forKey: .dropout) ?? defaults.dropout
        residual = try c.decodeIfPresent(Bool.self, forKey: .residual) ?? defaults.residual
    }

    /// Encodes the keys that apply to the kind: `kind`, `depth` (IResNet), `blocks` and `scale`
    /// (MobileFaceNet), the input size,
    /// `stageChannels` and `residual` (default CNN), `embeddingDimension`, `dropout`.
    public func encode(to encoder: any Encoder) throws {
        var c = encoder.container(keyedBy: CodingKeys.self)
        try c.encode(kind, forKey: .kind)
        try c.encodeIfPresent(depth, forKey: .depth)
        try c.encodeIfPresent(blocks, forKey: .blocks)
        try c.encodeIfPresent(scale, forKey: .scale)
        try c.encode(inputChannels, forKey: .inputChannels)
        try c.encode(inputHeight, forKey: .inputHeight)
        try c.encode(inputWidth, forKey: .inputWidth)
        if kind == .default {
            try c.encode(stageChannels, forKey: .stageChannels)
            try c.encode(residual, forKey: .residual)
        }
        try c.encode(embeddingDimension, forKey: .embeddingDimension)
        try c.encode(dropout, forKey: .dropout)
    }

    private static func decodeKind(_ c: KeyedDecodingContainer<CodingKeys>) throws -> BackboneKind {
        guard let text = try c.decodeIfPresent(String.self, forKey: .kind) else { return .default }
        guard let kind = BackboneKind(rawValue: text) else {
            throw DecodingError.dataCorrupted(.init(
                codingPath: c.codingPath + [CodingKeys.kind],
                debugDescription: "unknown backbone kind \"\(text)\"; known kinds: \(BackboneKind.allCases.map(\.rawValue))"))
        }
        return kind
    }

    private static func decodeDepth(_ c: KeyedDecodingContainer<CodingKeys>, kind: BackboneKind) throws -> Int? {
        let depth = try c.decodeIfPresent(Int.self, forKey: .depth)
        let supported = IResNetArchitecture.supportedDepths
        switch (kind, depth) {
        case (.iresnet, nil):
            throw DecodingError.dataCorrupted(.init(
                codingPath: c.codingPath + [CodingKeys.kind],
                debugDescription: "backbone kind \"iresnet\" needs a depth, one of \(supported)"))
        case let (.iresnet, depth?) where !supported.contains(depth):
            throw DecodingError.dataCorrupted(.init(
                codingPath: c.codingPath + [CodingKeys.depth],
                debugDescription: "backbone.depth \(depth) is not an IResNet depth; supported: \(supported)"))
        case (.iresnet, _), (_, nil):
            return depth
        case (_, _?):
            throw DecodingError.dataCorrupted(.init(
                codingPath: c.codingPath + [CodingKeys.depth],
                debugDescription: "backbone.depth applies to kind \"iresnet\" only, not \"\(kind.rawValue)\""))
        }
    }

    private struct AnyKey: CodingKey {
        var stringValue: String
        var intValue: Int? { nil }
        init(stringValue: String) { self.stringValue = stringValue }
        init?(intValue: Int) { nil }
    }
}

/// A stage's 2×2 max-pooling (stride 2) over an odd height or width: the output is
/// `⌊H/2⌋ × ⌊W/2⌋`, so the input's last row (odd `H`) or last column (odd `W`) is never seen by
/// the later layers (`BackboneConfiguration.flooredPoolings`).
public struct FlooredPooling: Sendable, Equatable, CustomStringConvertible {
    /// The 1-based stage whose pooling it is (parameters `backbone.stage<k>.…`).
    public var stage: Int
    /// The pooling's input size, in pixels of the stage's feature map.
    public var inputHeight: Int, inputWidth: Int
    /// The output size: `⌊inputHeight/2⌋ × ⌊inputWidth/2⌋`.
    public var outputHeight: Int { inputHeight / 2 }
    public var outputWidth: Int { inputWidth / 2 }

    public init(stage: Int, inputHeight: Int, inputWidth: Int) {
        self.stage = stage
        self.inputHeight = inputHeight
        self.inputWidth = inputWidth
    }

    /// E.g. "backbone.stage4 max-pool floors 3×3 to 1×1: its last row (1 of 3) and last column
    /// (1 of 3) are dropped" (sizes height×width).
    public var description: String {
        var dropped: [String] = []
        if inputHeight % 2 == 1 { dropped.append("last row (1 of \(inputHeight))") }
        if inputWidth % 2 == 1 { dropped.append("last column (1 of \(inputWidth))") }
        return "backbone.stage\(stage) max-pool floors \(inputHeight)×\(inputWidth) to \(outputHeight)×\(outputWidth): "
            + "its \(dropped.joined(separator: " and ")) \(dropped.count == 1 ? "is" : "are") dropped"
    }
}

/// The default face-embedding CNN: stages → Flatten → Dropout → Linear → BatchNorm1D.
///
/// Concretely, with the default configuration (`[N, 1, 112, 92]` in, `[N, 128]` out):
/// ```
/// stage k (k = 1…4, C = 16, 32, 64, 128): conv3×3 pad 1 → BN2D → PReLU → MaxPool 2×2 (the last
///                                          three fused: `BatchNormPReLUMaxPool2D`)
/// 112×92 → 56×46 → 28×23 → 14×11 → 7×5;  flatten 128·7·5 = 4480
/// Dropout(0.5) → Linear 4480 → 128 → BatchNorm1D(128)   (arcface_torch's `fc` + `features`)
/// ```
/// 671,456 parameters and ≈ 74 MFLOPs per image forward. Weights are Kaiming-normal (fan-in;
/// He et al. 2015, eq. 10) with the PReLU gain for convolutions followed by PReLU and gain 1
/// otherwise; biases 0, BatchNorm γ = 1, β = 0, PReLU slopes 0.25. The same seed gives the same
/// weights and the same dropout masks.
///
/// Parameter names: `<name>.stage<k>.conv.weight`, `.bn.{weight,bias,running_mean,running_var}`,
/// `.prelu.weight` (residual: `<name>.stage<k>.block.{conv1,bn1,prelu,conv2,bn2,shortcut.conv,shortcut.bn}…`),
/// then `<name>.fc.{weight,bias}` and `<name>.features.{weight,bias,running_mean,running_var}`.
public final class Backbone: Layer {
    public let configuration: BackboneConfiguration
    public let name: String
    /// One `Sequential` per stage, ending with its pooling (`BatchNormPReLUMaxPool2D`, or `MaxPool2D` after a residual block).
    public let stages: [Sequential]
    /// The dropout before the embedding layer.
    public let dropout: Dropout
    /// The embedding layer, weight `[D, C_last·h·w]`, bias `[D]`.
    public let embedding: Linear
    /// The feature BatchNorm `[D]` after the embedding layer.
    public let features: BatchNorm1D
    let network: Sequential

    /// Builds the network with weights drawn from `SeededGenerator(seed: seed)`.
    public convenience init(configuration: BackboneConfiguration = BackboneConfiguration(), seed: UInt64,
                            name: String = "backbone") {
        var generator = SeededGenerator(seed: seed)
        self.init(configuration: configuration, generator: &generator, name: name)
    }

    /// Builds the network with weights drawn from `generator` (advanced), in parameter order;
    /// the dropout mask stream is split off it last.
    /// - Precondition: positive sizes, at least one stage, every stage input at least 2×2,
    ///   dropout in [0, 1).
    public init(configuration: BackboneConfiguration = BackboneConfiguration(), generator: inout SeededGenerator,
                name: String = "backbone") {
        let c = configuration
        precondition(c.inputChannels > 0 && c.inputHeight > 0 && c.inputWidth > 0 && c.embeddingDimension > 0,
                     "Backbone: sizes must be positive: \(c)")
        precondition(!c.stageChannels.isEmpty && c.stageChannels.allSatisfy { $0 > 0 },
                     "Backbone: stageChannels must be non-empty and positive: \(c.stageChannels)")
        precondition(c.dropout >= 0 && c.dropout < 1, "Backbone: dropout must be in [0, 1), got \(c.dropout)")
        self.configuration = c
        self.name = name
        let prelu = Nonlinearity.leakyReLU(slope: 0.25)
        var stages: [Sequential] = []
        var channels = c.inputChannels, h = c.inputHeight, w = c.inputWidth
        for (index, outputChannels) in c.stageChannels.enumerated() {
            precondition(h >= 2 && w >= 2,
                         "Backbone: stage \(index + 1) input is \(h)×\(w); \(c.inputHeight)×\(c.inputWidth) is too small for \(c.stageChannels.count) poolings")
            let prefix = qualified(name, "stage\(index + 1)")
            if c.residual {
                stages.append(Sequential([
                    ResidualBlock(inputChannels: channels, outputChannels: outputChannels,
                                  name: qualified(prefix, "block"), generator: &generator),
                    MaxPool2D(kernelSize: 2),
                ]))
            } else {
                stages.append(Sequential([
                    Conv2D(inputChannels: channels, outputChannels: outputChannels, kernelSize: 3, padding: 1,
                           nonlinearity: prelu, name: qualified(prefix, "conv"), generator: &generator),
                    // BatchNorm2D → PReLU → MaxPool2D(2), fused (same names, values to round-off).
                    BatchNormPReLUMaxPool2D(channels: outputChannels, poolSize: 2, batchNormName: qualified(prefix, "bn"),
                                            preluName: qualified(prefix, "prelu")),
                ]))
            }
            channels = outputChannels
            h /= 2
            w /= 2
        }
        self.stages = stages
        embedding = Linear(inputFeatures: c.flattenedFeatureCount, outputFeatures: c.embeddingDimension,
                           nonlinearity: .linear, name: qualified(name, "fc"), generator: &generator)
        features = BatchNorm1D(channels: c.embeddingDimension, name: qualified(name, "features"))
        dropout = Dropout(probability: c.dropout, generator: generator.split())
        network = Sequential(stages + [Flatten(), dropout, embedding, features])
    }

    public var parameters: [Parameter] { network.parameters }
    public var buffers: [Buffer] { network.buffers }

    /// Whether `backward` computes `∂L/∂input`. A training loop that never uses the image
    /// gradient sets it to `false`: the first convolution then skips its `Wᵀ·∂Y` GEMM and col2im
    /// (≈ 5 % of a default training step) and `backward` returns zeros `[N, C, H, W]`. Default `true`.
    public var computesInputGradient: Bool {
        get {
            if let conv = stages[0].layers[0] as? Conv2D { return conv.computesInputGradient }
            return (stages[0].layers[0] as? ResidualBlock)?.computesInputGradient ?? true
        }
        set {
            (stages[0].layers[0] as? Conv2D)?.computesInputGradient = newValue
            (stages[0].layers[0] as? ResidualBlock)?.computesInputGradient = newValue
        }
    }

    /// - Parameter input: `[N, C, H, W]` as configured (N > 1 in training, for the feature BatchNorm).
    /// - Returns: embeddings `[N, D]` (not normalized).
    public func forward(_ input: Tensor, mode: Mode) -> (output: Tensor, cache: any LayerCache) {
        let c = configuration
        precondition(input.rank == 4 && Array(input.shape.dropFirst()) == [c.inputChannels, c.inputHeight, c.inputWidth],
                     "Backbone \(name): input \(input.shape), expected [N, \(c.inputChannels), \(c.inputHeight), \(c.inputWidth)]")
        return network.forward(input, mode: mode)
    }

    /// - Parameter outputGradient: `∂L/∂embeddings`, `[N, D]`.
    /// - Returns: `∂L/∂input`, `[N, C, H, W]`; accumulates every parameter gradient.
    public func backward(_ outputGradient: Tensor, cache: any LayerCache) -> Tensor {
        network.backward(outputGradient, cache: cache)
    }
}
