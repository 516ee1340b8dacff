import TensorCore

/// The sizes of an IResNet (Duta et al. 2020, "Improved Residual Networks for Image and Video
/// Recognition", as arcface_torch's `iresnet.py` builds it for faces; Deng et al. 2019, ArcFace §3.1).
///
/// arcface_torch's four depths are `IResNetArchitecture(depth:)`: RGB 112×112 input, a 64-channel
/// stem, stages of 64/128/256/512 channels with `blocks` [2,2,2,2] (r18), [3,4,6,3] (r34),
/// [3,4,14,3] (r50), [3,13,30,3] (r100), `D` = 512. The memberwise initializer builds reduced
/// networks of the same structure (fewer channels, smaller inputs) for tests.
public struct IResNetArchitecture: Sendable, Equatable {
    /// The depths arcface_torch defines (`r18`, `r34`, `r50`, `r100`).
    public static let supportedDepths = [18, 34, 50, 100]

    /// Input `[C, H, W]`, channels and pixels.
    public var inputChannels: Int, inputHeight: Int, inputWidth: Int
    /// The stem convolution's output channels (arcface_torch: 64).
    public var stemChannels: Int
    /// Each stage's channels (arcface_torch: 64, 128, 256, 512); every stage halves the spatial size.
    public var stageChannels: [Int]
    /// Blocks per stage, the first of each with stride 2.
    public var blocks: [Int]
    /// `D`, the embedding size (arcface_torch's `num_features`, 512).
    public var embeddingDimension: Int
    /// Dropout before `fc`, in [0, 1) (arcface_torch's default 0).
    public var dropout: Float

    /// The blocks per stage of an arcface_torch depth, `nil` for another depth.
    public static func blocks(depth: Int) -> [Int]? {
        switch depth {
        case 18: [2, 2, 2, 2]
        case 34: [3, 4, 6, 3]
        case 50: [3, 4, 14, 3]
        case 100: [3, 13, 30, 3]
        default: nil
        }
    }

    /// arcface_torch's IResNet of `depth` (18, 34, 50 or 100): RGB 112×112 in, `[N, D]` out.
    /// - Precondition: `depth` is one of `supportedDepths`.
    public init(depth: Int, embeddingDimension: Int = 512, dropout: Float = 0) {
        guard let blocks = Self.blocks(depth: depth) else {
            preconditionFailure("IResNetArchitecture: depth \(depth) is not one of \(Self.supportedDepths)")
        }
        self.init(inputChannels: 3, inputHeight: 112, inputWidth: 112, stemChannels: 64, stageChannels: [64, 128, 256, 512],
                  blocks: blocks, embeddingDimension: embeddingDimension, dropout: dropout)
    }

    public init(inputChannels: Int, inputHeight: Int, inputWidth: Int, stemChannels: Int, stageChannels: [Int],
                blocks: [Int], embeddingDimension: Int, dropout: Float = 0) {
        self.inputChannels = inputChannels
        self.inputHeight = inputHeight
        self.inputWidth = inputWidth
        self.stemChannels = stemChannels
        self.stageChannels = stageChannels
        self.blocks = blocks
        self.embeddingDimension = embeddingDimension
        self.dropout = dropout
    }

    /// The architecture of an `.iresnet` configuration (its depth, input size, `D`, dropout).
    /// - Precondition: `configuration.depth` is one of `supportedDepths`.
    public init(configuration: BackboneConfiguration) {
        self.init(depth: configuration.depth ?? 0, embeddingDimension: configuration.embeddingDimension,
                  dropout: configuration.dropout)
        inputChannels = configuration.inputChannels
        inputHeight = configuration.inputHeight
        inputWidth = configuration.inputWidth
    }

    /// The depth arcface_torch names this architecture by (2 + 2·Σblocks: 18, 34, 50, 100).
    public var depth: Int { 2 + 2 * blocks.reduce(0, +) }

    /// The spatial size after each stage: a stride-2 3×3 convolution with padding 1 (and the
    /// 1×1 stride-2 downsample) gives `⌈H/2⌉ × ⌈W/2⌉`; 112 → 56 → 28 → 14 → 7.
    public var stageOutputSizes: [(height: Int, width: Int)] {
        var h = inputHeight, w = inputWidth
        return stageChannels.map { _ in
            h = (h + 1) / 2
            w = (w + 1) / 2
            return (h, w)
        }
    }

    /// The length of the flattened map fed to `fc`, `C_last·h·w` (512·7·7 = 25,088).
    public var flattenedFeatureCount: Int {
        let (h, w) = stageOutputSizes.last ?? (inputHeight, inputWidth)
        return (stageChannels.last ?? stemChannels) * h * w
    }

    /// The exact number of trainable scalars (`features.weight` is fixed, not counted):
    /// stem `9·C_in·C₀ + 3·C₀`; per block from `c` to `C` channels `2c + 9cC + 3C + 9C² + 2C`,
    /// plus `cC + 2C` for a downsample (every stage's first block); `bn2` `2·C_last`;
    /// `fc` `F·D + D`; `features.bias` `D`.
    public var parameterCount: Int {
        var total = 9 * inputChannels * stemChannels + 3 * stemChannels
        var c = stemChannels
        for (channels, count) in zip(stageChannels, blocks) {
            for index in 0..<count {
                total += 2 * c + 9 * c * channels + 3 * channels + 9 * channels * channels + 2 * channels
                if index == 0 { total += c * channels + 2 * channels }
                c = channels
            }
        }
        return total + 2 * c + flattenedFeatureCount * embeddingDimension + 2 * embeddingDimension
    }
}

/// IResNet's basic block, arcface_torch's `IBasicBlock` (Duta et al. 2020, §3.1: BatchNorm
/// before the first convolution, no activation after the sum).
///
/// Concretely, for `x` `[N, Cin, H, W]` and stride `s` (2 in each stage's first block, else 1):
/// ```
/// main(x)     = bn3(conv2_s(prelu(bn2(conv1(bn1(x))))))     3×3 convolutions, padding 1, no bias
/// shortcut(x) = x                                   when s = 1 and Cin = Cout
///             = downsample.1(downsample.0_s(x))     1×1 stride-s convolution → BatchNorm, otherwise
/// y = main(x) + shortcut(x)                         [N, Cout, ⌈H/s⌉, ⌈W/s⌉]
/// ```
/// Names (under `name`): `bn1`, `conv1`, `bn2`, `prelu`, `conv2`, `bn3`, `downsample.0`, `downsample.1`.
public final class IResNetBlock: Layer {
    public let name: String
    /// bn1 → conv1 → bn2 → prelu → conv2 → bn3.
    public let main: Sequential
    /// conv1×1 (stride) → BatchNorm, or `nil` for the identity.
    public let downsample: Sequential?
    /// Whether `backward` computes `∂x` (the block's input); default `true`.
    public var computesInputGradient = true

    public struct Cache: LayerCache {
        let main: any LayerCache
        let downsample: (any LayerCache)?
    }

    /// - Parameters:
    ///   - inputChannels, outputChannels: `Cin`, `Cout` (> 0).
    ///   - stride: the second convolution's (and the downsample's) stride, 1 or 2.
    ///   - name: name prefix, e.g. `"layer2.0"` → `layer2.0.conv1.weight`, `layer2.0.downsample.1.running_var`.
    ///   - generator: the seeded initialization stream (advanced): convolution weights 𝒩(0, 0.1²)
    ///     as arcface_torch, BatchNorm γ = 1, β = 0, PReLU slopes 0.25.
    public init(inputChannels: Int, outputChannels: Int, stride: Int, name: String, generator: inout SeededGenerator) {
        precondition(stride == 1 || stride == 2, "IResNetBlock \(name): stride must be 1 or 2, got \(stride)")
        self.name = name
        let bn1 = BatchNorm2D(channels: inputChannels, name: qualified(name, "bn1"))
        let conv1 = iresnetConvolution(inputChannels, outputChannels, kernelSize: 3, stride: 1, name: qualified(name, "conv1"),
                                       generator: &generator)
        let bn2 = BatchNorm2D(channels: outputChannels, name: qualified(name, "bn2"))
        let prelu = PReLU(channels: outputChannels, name: qualified(name, "prelu"))
        let conv2 = iresnetConvolution(outputChannels, outputChannels, kernelSize: 3, stride: stride, name: qualified(name, "conv2"),
                                       generator: &generator)
        let bn3 = BatchNorm2D(channels: outputChannels, name: qualified(name, "bn3"))
        main = Sequential([bn1, conv1, bn2, prelu, conv2, bn3])
        if stride != 1 || inputChannels != outputChannels {
            downsample = Sequential([
                iresnetConvolution(inputChannels, outputChannels, kernelSize: 1, stride: stride,
                                   name: qualified(name, "downsample.0"), generator: &generator),
                BatchNorm2D(channels: outputChannels, name: qualified(name, "downsample.1")),
            ])
        } else {
            downsample = nil
        }
    }

    public var parameters: [Parameter] { main.parameters + (downsample?.parameters ?? []) }
    public var buffers: [Buffer] { main.buffers + (downsample?.buffers ?? []) }

    /// - Parameter input: `[N, Cin, H, W]`. - Returns: `[N, Cout, ⌈H/s⌉, ⌈W/s⌉]`.
    public func forward(_ input: Tensor, mode: Mode) -> (output: Tensor, cache: any LayerCache) {
        var (y, mainCache) = main.forward(input, mode: mode)
        var downsampleCache: (any LayerCache)? = nil
        if let downsample {
            let (s, cache) = downsample.forward(input, mode: mode)
            downsampleCache = cache
            y += s
        } else {
            precondition(y.shape == input.shape, "IResNetBlock \(name): main output \(y.shape) vs input \(input.shape)")
            y += input
        }
        return (y, Cache(main: mainCache, downsample: downsampleCache))
    }

    /// - Parameter outputGradient: `[N, Cout, Ho, Wo]`. - Returns: `∂x` `[N, Cin, H, W]`;
    ///   accumulates every parameter gradient of both paths.
    public func backward(_ outputGradient: Tensor, cache: any LayerCache) -> Tensor {
        let cache = layerCache(cache, as: Cache.self, layer: "IResNetBlock \(name)")
        var g = main.backward(outputGradient, cache: cache.main)
        if let downsample {
            guard let downsampleCache = cache.downsample else {
                preconditionFailure("IResNetBlock \(name): cache has no downsample cache")
            }
            let s = downsample.backward(outputGradient, cache: downsampleCache)
            if computesInputGradient { g += s }
        } else if computesInputGradient {
            g += outputGradient
        }
        return g
    }
}

/// arcface_torch's IResNet (`iresnet18` … `iresnet100`; Duta et al. 2020, with the face
/// recognition stem and head of Deng et al. 2019, ArcFace §3.1 and insightface's `iresnet.py`).
///
/// Concretely, for the arcface_torch depths (`[N, 3, 112, 112]` in, `[N, 512]` out):
/// ```
/// conv1 3×3 (3 → 64, stride 1, padding 1) → bn1 → prelu                       112×112
/// layer1 … layer4: 64, 128, 256, 512 channels, IResNetBlock × blocks,
///                  the first block of each stride 2 with a downsample         56, 28, 14, 7
/// bn2 → flatten (channel-first, 512·7·7 = 25,088) → dropout → fc (25,088 → 512, bias)
///     → features (BatchNorm1d(512), γ fixed at 1)
/// ```
/// BatchNorm ε = 1e-5 and momentum 0.1 everywhere (PyTorch's defaults, as `iresnet.py`);
/// convolutions have no bias. Trainable parameters: 24,025,088 (r18), 34,138,816 (r34),
/// 43,590,336 (r50), 65,155,648 (r100). arcface_torch's `fp16` flag (autocast of the
/// convolutions) has no counterpart: everything is `Float`.
///
/// Names are arcface_torch's `state_dict` keys, unprefixed: `conv1.weight`, `bn1.running_mean`,
/// `prelu.weight`, `layer1.0.bn1.weight`, `layer2.0.downsample.0.weight`, `bn2.bias`,
/// `fc.weight`, `features.weight` (a `Buffer`: fixed, not trained) … (`num_batches_tracked`
/// is not kept). Weights: convolutions 𝒩(0, 0.1²) as `iresnet.py`; `fc` PyTorch's default
/// `Linear` initialization, 𝒰(±1/√F) for weight and bias.
public final class IResNet: EmbeddingBackbone {
    public let configuration: BackboneConfiguration
    public let architecture: IResNetArchitecture
    /// The stem: `conv1`, `bn1`, `prelu`.
    public let stem: [any Layer]
    /// `layer1` … `layer4`: one `Sequential` of `IResNetBlock`s each.
    public let stages: [Sequential]
    /// The BatchNorm after the last stage, `bn2`.
    public let outputNorm: BatchNorm2D
    /// The dropout before `fc`.
    public let dropout: Dropout
    /// `fc`, weight `[D, F]`, bias `[D]`.
    public let embedding: Linear
    /// `features`, BatchNorm1D `[D]` with γ fixed at 1 (`fixedWeight`).
    public let features: BatchNorm1D
    private let network: Sequential

    /// Builds the network of an `.iresnet` configuration.
    /// - Precondition: `configuration.familyProblems` is empty.
    public convenience init(configuration: BackboneConfiguration, generator: inout SeededGenerator) {
        precondition(configuration.kind == .iresnet && configuration.familyProblems.isEmpty,
                     "IResNet: invalid configuration: \(configuration.familyProblems) (kind \(configuration.kind))")
        self.init(architecture: IResNetArchitecture(configuration: configuration), generator: &generator)
    }

    /// Builds the network of `architecture`, weights drawn from `generator` (advanced) in
    /// parameter order; the dropout mask stream is split off it last.
    /// - Precondition: positive sizes, as many `blocks` as `stageChannels`, each ≥ 1, dropout in [0, 1).
    public init(architecture a: IResNetArchitecture, generator: inout SeededGenerator) {
        precondition(a.inputChannels > 0 && a.inputHeight > 0 && a.inputWidth > 0 && a.stemChannels > 0
                     && a.embeddingDimension > 0 && !a.stageChannels.isEmpty && a.stageChannels.allSatisfy { $0 > 0 }
                     && a.blocks.count == a.stageChannels.count && a.blocks.allSatisfy { $0 >= 1 },
                     "IResNet: invalid architecture \(a)")
        precondition(a.dropout >= 0 && a.dropout < 1, "IResNet: dropout must be in [0, 1), got \(a.dropout)")
        architecture = a
        var configuration = BackboneConfiguration(kind: .iresnet, depth: a.depth, embeddingDimension: a.embeddingDimension)
        configuration.depth = IResNetArchitecture.blocks(depth: a.depth) == a.blocks ? a.depth : nil
        configuration.inputChannels = a.inputChannels
        configuration.inputHeight = a.inputHeight
        configuration.inputWidth = a.inputWidth
        configuration.dropout = a.dropout
        self.configuration = configuration
        stem = [
            iresnetConvolution(a.inputChannels, a.stemChannels, kernelSize: 3, stride: 1, name: "conv1", generator: &generator),
            BatchNorm2D(channels: a.stemChannels, name: "bn1"),
            PReLU(channels: a.stemChannels, name: "prelu"),
        ]
        var stages: [Sequential] = []
        var channels = a.stemChannels
        for (stage, (outputChannels, count)) in zip(a.stageChannels, a.blocks).enumerated() {
            var blocks: [any Layer] = []
            for index in 0..<count {
                blocks.append(IResNetBlock(inputChannels: channels, outputChannels: outputChannels, stride: index == 0 ? 2 : 1,
                                           name: "layer\(stage + 1).\(index)", generator: &generator))
                channels = outputChannels
            }
            stages.append(Sequential(blocks))
        }
        self.stages = stages
        outputNorm = BatchNorm2D(channels: channels, name: "bn2")
        let features = a.flattenedFeatureCount
        embedding = Linear(inputFeatures: features, outputFeatures: a.embeddingDimension, name: "fc", generator: &generator)
        // PyTorch's default Linear initialization (kaiming_uniform with a = √5): 𝒰(±1/√F), bias too.
        let bound = 1 / Float(features).squareRoot()
        embedding.weight.value = Tensor.randomUniform(embedding.weight.value.shape, in: -bound...bound, using: &generator)
        embedding.bias?.value = Tensor.randomUniform([a.embeddingDimension], in: -bound...bound, using: &generator)
        self.features = BatchNorm1D(channels: a.embeddingDimension, trainsWeight: false, name: "features")
        dropout = Dropout(probability: a.dropout, generator: generator.split())
        network = Sequential(stem + stages + [outputNorm, Flatten(), dropout, embedding, self.features])
    }

    public var layers: [any Layer] { network.layers }
    public var parameters: [Parameter] { network.parameters }
    public var buffers: [Buffer] { network.buffers }

    public var dropoutGenerator: SeededGenerator {
        get { dropout.generator }
        set { dropout.generator = newValue }
    }

    /// Whether `backward` computes `∂L/∂input` (the stem convolution's input gradient). Default `true`.
    public var computesInputGradient: Bool {
        get { (stem[0] as! Conv2D).computesInputGradient }
        set { (stem[0] as! Conv2D).computesInputGradient = newValue }
    }

    /// - Parameter input: `[N, C, H, W]` as the architecture (N > 1 in training).
    /// - Returns: embeddings `[N, D]` (not normalized).
    public func forward(_ input: Tensor, mode: Mode) -> (output: Tensor, cache: any LayerCache) {
        let a = architecture
        precondition(input.rank == 4 && Array(input.shape.dropFirst()) == [a.inputChannels, a.inputHeight, a.inputWidth],
                     "IResNet: input \(input.shape), expected [N, \(a.inputChannels), \(a.inputHeight), \(a.inputWidth)]")
        return network.forward(input, mode: mode)
    }

    /// - Parameter outputGradient: `∂L/∂embeddings`, `[N, D]`.
    /// - Returns: `∂L/∂input` `[N, C, H, W]`; accumulates every parameter gradient.
    public func backward(_ outputGradient: Tensor, cache: any LayerCache) -> Tensor {
        network.backward(outputGradient, cache: cache)
    }
}

/// A bias-free square convolution with padding `(k − 1)/2` and arcface_torch's IResNet
/// initialization 𝒩(0, 0.1²) (the Kaiming draw of `Conv2D`, gain 1, rescaled: one draw per weight).
func iresnetConvolution(_ inputChannels: Int, _ outputChannels: Int, kernelSize: Int, stride: Int, name: String,
                        generator: inout SeededGenerator) -> Conv2D {
    let conv = Conv2D(inputChannels: inputChannels, outputChannels: outputChannels, kernelSize: kernelSize, stride: stride,
                      padding: (kernelSize - 1) / 2, nonlinearity: .linear, name: name, generator: &generator)
    rescaleKaimingDraw(conv.weight, to: 0.1)
    return conv
}

/// Rescales a weight drawn Kaiming-normal with gain 1 (σ = 1/√fanIn, `fanIn` the product of
/// the shape after the first axis) to standard deviation `σ`.
func rescaleKaimingDraw(_ weight: Parameter, to standardDeviation: Float) {
    let fanIn = weight.value.shape.dropFirst().reduce(1, *)
    let factor = standardDeviation * Float(fanIn).squareRoot()
    for i in weight.value.storage.indices { weight.value.storage[i] *= factor }
}
