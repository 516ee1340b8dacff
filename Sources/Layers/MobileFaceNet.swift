import TensorCore

/// arcface_torch's `DepthWise` block: `layers.0` (1×1 ConvBlock to the expansion), `layers.1`
/// (3×3 depthwise ConvBlock, stride), `layers.2` (1×1 LinearBlock), plus the input when residual.
///
/// Concretely, for `x` `[N, Cin, H, W]` and expansion `E`:
/// ```
/// y = bn(conv1×1_{E→Cout}(prelu(bn(dwconv3×3_s(prelu(bn(conv1×1_{Cin→E}(x))))))))  (+ x if residual)
/// ```
public final class MobileFaceNetDepthWise: Layer {
    public let name: String
    /// The three blocks, each a `Sequential` (conv, BatchNorm[, PReLU]).
    public let body: Sequential
    /// Whether the input is added to the output (stride 1, `Cin == Cout`).
    public let residual: Bool
    /// Whether `backward` computes `∂x`; default `true`.
    public var computesInputGradient = true {
        didSet { ((body.layers[0] as? Sequential)?.layers[0] as? Conv2D)?.computesInputGradient = computesInputGradient }
    }

    /// - Parameters:
    ///   - name: prefix, e.g. `"layers.2"` → `layers.2.layers.0.layers.0.weight`.
    ///   - generator: the seeded initialization stream (advanced).
    public init(inputChannels: Int, outputChannels: Int, expansion: Int, stride: Int, residual: Bool, name: String,
                generator: inout SeededGenerator) {
        precondition(!residual || (stride == 1 && inputChannels == outputChannels),
                     "MobileFaceNetDepthWise \(name): a residual block needs stride 1 and Cin == Cout")
        self.name = name
        self.residual = residual
        body = Sequential([
            mobileFaceNetBlock(inputChannels, expansion, kernelSize: 1, stride: 1, groups: 1, activation: true,
                               name: qualified(name, "layers.0"), generator: &generator),
            mobileFaceNetBlock(expansion, expansion, kernelSize: 3, stride: stride, groups: expansion, activation: true,
                               name: qualified(name, "layers.1"), generator: &generator),
            mobileFaceNetBlock(expansion, outputChannels, kernelSize: 1, stride: 1, groups: 1, activation: false,
                               name: qualified(name, "layers.2"), generator: &generator),
        ])
    }

    public var parameters: [Parameter] { body.parameters }
    public var buffers: [Buffer] { body.buffers }

    /// - Parameter input: `[N, Cin, H, W]`. - Returns: `[N, Cout, ⌈H/s⌉, ⌈W/s⌉]`.
    public func forward(_ input: Tensor, mode: Mode) -> (output: Tensor, cache: any LayerCache) {
        var (y, cache) = body.forward(input, mode: mode)
        if residual { y += input }
        return (y, cache)
    }

    public func backward(_ outputGradient: Tensor, cache: any LayerCache) -> Tensor {
        var g = body.backward(outputGradient, cache: cache)
        if residual && computesInputGradient { g += outputGradient }
        return g
    }
}

/// arcface_torch's MobileFaceNet (`get_mbf` by default; Chen et al. 2018, with arcface_torch's
/// width `scale` and its global depthwise head `GDC`).
///
/// Concretely, for `get_mbf` (blocks 1, 4, 6, 2, scale 2) and `[N, 3, 112, 112]` in, `[N, 512]` out (`ConvBlock` = conv → BN → PReLU,
/// `LinearBlock` = conv → BN, `DepthWise` = `MobileFaceNetDepthWise`):
/// ```
/// layers.0  ConvBlock 3×3 s2, 3 → 128                                 56×56
/// layers.1  ConvBlock 3×3, 128 → 128, groups 64                        56×56
/// layers.2  DepthWise 128 → 128, expansion 128, s2                     28×28
/// layers.3  Residual: 4 × DepthWise 128, expansion 128
/// layers.4  DepthWise 128 → 256, expansion 256, s2                     14×14
/// layers.5  Residual: 6 × DepthWise 256, expansion 256
/// layers.6  DepthWise 256 → 256, expansion 512, s2                     7×7
/// layers.7  Residual: 2 × DepthWise 256, expansion 256
/// conv_sep  ConvBlock 1×1, 256 → 512
/// features  LinearBlock 7×7 depthwise (groups 512, no padding) → flatten 512
///           → Linear 512 → 512 (no bias) → BatchNorm1d(512)           (GDC)
/// ```
/// 2,059,520 trainable parameters. Other `MobileFaceNetArchitecture.blocks` and `scale`
/// (`get_mbf_large`: 2, 8, 12, 4 and 4) change the block counts and the 128/256 widths
/// (`64·scale`, `128·scale`); `blocks[0]` > 1 makes `layers.1` a `Residual` of that many
/// DepthWise blocks (expansion 128) instead of the grouped ConvBlock. The expansion widths
/// (128, 256, 512), `conv_sep`'s 512 and the head do not change. BatchNorm ε = 1e-5, momentum 0.1 (PyTorch's defaults).
/// Weights: Kaiming-normal in fan-out mode with ReLU's gain, `𝒩(0, 2/(Cout·k²))` for
/// convolutions and `𝒩(0, 2/D)` for the Linear, as `_initialize_weights`. arcface_torch's `fp16`
/// (autocast) has no counterpart; there is no dropout.
///
/// Names are arcface_torch's `state_dict` keys, unprefixed: `layers.0.layers.0.weight`,
/// `layers.3.layers.1.layers.2.layers.1.running_var`, `conv_sep.layers.2.weight`,
/// `features.layers.0.layers.0.weight`, `features.layers.2.weight`, `features.layers.3.bias` …
public final class MobileFaceNet: EmbeddingBackbone {
    public let configuration: BackboneConfiguration
    public let architecture: MobileFaceNetArchitecture
    /// `layers.0` … `layers.7`, `conv_sep`, then the head's `features.layers.0` (LinearBlock),
    /// Flatten, `features.layers.2` (Linear), `features.layers.3` (BatchNorm1D).
    public let layers: [any Layer]
    /// Never advanced (the network has no dropout); kept for the checkpoint's dropout stream.
    public var dropoutGenerator: SeededGenerator
    private let network: Sequential

    /// Builds the network of a `.mobilefacenet` configuration (its `blocks`, `scale` and `D`;
    /// `get_mbf` by default).
    /// - Precondition: `configuration.familyProblems` is empty.
    public convenience init(configuration: BackboneConfiguration, generator: inout SeededGenerator) {
        guard configuration.familyProblems.isEmpty, let architecture = configuration.mobileFaceNetArchitecture else {
            preconditionFailure("MobileFaceNet: invalid configuration: \(configuration.familyProblems) (kind \(configuration.kind))")
        }
        self.init(architecture: architecture, generator: &generator)
    }

    /// Builds the network of `architecture`, weights drawn from `generator` (advanced) in parameter order.
    public init(architecture a: MobileFaceNetArchitecture, generator: inout SeededGenerator) {
        architecture = a
        configuration = .mobileFaceNet(blocks: a.blocks, scale: a.scale, embeddingDimension: a.embeddingDimension)
        var layers: [any Layer] = []
        var c = a.inputChannels
        for (index, module) in a.modules.enumerated() {
            let name = "layers.\(index)"
            switch module {
            case let .convolution(cout, kernel, stride, groups):
                layers.append(mobileFaceNetBlock(c, cout, kernelSize: kernel, stride: stride, groups: groups, activation: true,
                                                 name: name, generator: &generator))
                c = cout
            case let .depthwise(cout, expansion, stride):
                layers.append(MobileFaceNetDepthWise(inputChannels: c, outputChannels: cout, expansion: expansion, stride: stride,
                                                     residual: false, name: name, generator: &generator))
                c = cout
            case let .residual(channels, count, expansion):
                precondition(channels == c, "MobileFaceNet: \(name) has \(channels) channels after \(c)")
                layers.append(Sequential((0..<count).map { block in
                    MobileFaceNetDepthWise(inputChannels: c, outputChannels: c, expansion: expansion, stride: 1, residual: true,
                                           name: "\(name).layers.\(block)", generator: &generator)
                }))
            }
        }
        layers.append(mobileFaceNetBlock(c, 512, kernelSize: 1, stride: 1, groups: 1, activation: true, name: "conv_sep",
                                         generator: &generator))
        layers.append(mobileFaceNetBlock(512, 512, kernelSize: 7, stride: 1, groups: 512, activation: false, padding: 0,
                                         name: "features.layers.0", generator: &generator))
        layers.append(Flatten())
        let linear = Linear(inputFeatures: 512, outputFeatures: a.embeddingDimension, bias: false, name: "features.layers.2",
                            generator: &generator)
        // kaiming_normal_(mode="fan_out", nonlinearity="relu"): fan-out of a Linear is its output count.
        rescaleKaimingDraw(linear.weight, to: (2 / Float(a.embeddingDimension)).squareRoot())
        layers.append(linear)
        layers.append(BatchNorm1D(channels: a.embeddingDimension, name: "features.layers.3"))
        self.layers = layers
        dropoutGenerator = generator.split()
        network = Sequential(layers)
    }

    public var parameters: [Parameter] { network.parameters }
    public var buffers: [Buffer] { network.buffers }

    /// Whether `backward` computes `∂L/∂input` (the stem convolution's input gradient). Default `true`.
    public var computesInputGradient: Bool {
        get { firstConvolution.computesInputGradient }
        set { firstConvolution.computesInputGradient = newValue }
    }

    private var firstConvolution: Conv2D { (layers[0] as! Sequential).layers[0] as! Conv2D }

    /// - Parameter input: `[N, 3, 112, 112]` (N > 1 in training).
    /// - Returns: embeddings `[N, D]` (not normalized).
    public func forward(_ input: Tensor, mode: Mode) -> (output: Tensor, cache: any LayerCache) {
        let a = architecture
        precondition(input.rank == 4 && Array(input.shape.dropFirst()) == [a.inputChannels, a.inputHeight, a.inputWidth],
                     "MobileFaceNet: input \(input.shape), expected [N, \(a.inputChannels), \(a.inputHeight), \(a.inputWidth)]")
        return network.forward(input, mode: mode)
    }

    public func backward(_ outputGradient: Tensor, cache: any LayerCache) -> Tensor {
        network.backward(outputGradient, cache: cache)
    }
}

/// arcface_torch's `ConvBlock` (conv → BatchNorm → PReLU) or, without `activation`, its
/// `LinearBlock` (conv → BatchNorm), named `<name>.layers.0/1/2`; the convolution has padding
/// `k/2` unless given, no bias, and weights 𝒩(0, 2/(Cout·k²)) (Kaiming-normal, fan-out, ReLU gain).
func mobileFaceNetBlock(_ inputChannels: Int, _ outputChannels: Int, kernelSize: Int, stride: Int, groups: Int,
                        activation: Bool, padding: Int? = nil, name: String, generator: inout SeededGenerator) -> Sequential {
    let conv = Conv2D(inputChannels: inputChannels, outputChannels: outputChannels, kernelSize: kernelSize, stride: stride,
                      padding: padding ?? kernelSize / 2, groups: groups, bias: false, nonlinearity: .linear,
                      name: qualified(name, "layers.0"), generator: &generator)
    rescaleKaimingDraw(conv.weight, to: (2 / Float(outputChannels * kernelSize * kernelSize)).squareRoot())
    var layers: [any Layer] = [conv, BatchNorm2D(channels: outputChannels, name: qualified(name, "layers.1"))]
    if activation { layers.append(PReLU(channels: outputChannels, name: qualified(name, "layers.2"))) }
    return Sequential(layers)
}
