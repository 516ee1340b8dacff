// Which embedding network a configuration builds, the field's defaults for each, and the checks
// that keep a family's fixed layers consistent with the configured input.

/// The embedding network family of a `BackboneConfiguration` (JSON key `backbone.kind`).
public enum BackboneKind: String, Codable, Sendable, CaseIterable {
    /// The default face-embedding CNN (`Backbone`): configurable stages, pooling, small inputs.
    case `default` = "default"
    /// arcface_torch's IResNet-18/34/50/100 (`IResNet`, with `BackboneConfiguration.depth`).
    case iresnet
    /// arcface_torch's MobileFaceNet (`MobileFaceNet`, its `get_mbf` settings).
    case mobilefacenet
}

extension BackboneConfiguration {
    /// The configuration of one of the field's backbones with arcface_torch's defaults: RGB
    /// 112×112 input, `D` = 512, dropout 0; MobileFaceNet as `get_mbf` (blocks `[1, 4, 6, 2]`,
    /// scale 2).
    ///
    /// - Parameters:
    ///   - kind: `.iresnet` or `.mobilefacenet` (`.default` gives `BackboneConfiguration()`).
    ///   - depth: IResNet's depth (18, 34, 50, 100); ignored for the other kinds.
    public init(kind: BackboneKind, depth: Int = 50, embeddingDimension: Int = 512) {
        guard kind != .default else {
            self.init()
            return
        }
        self.init(inputChannels: 3, inputHeight: 112, inputWidth: 112, embeddingDimension: embeddingDimension, dropout: 0)
        self.kind = kind
        self.depth = kind == .iresnet ? depth : nil
        if kind == .mobilefacenet {
            let mbf = MobileFaceNetArchitecture()
            blocks = mbf.blocks
            scale = mbf.scale
        }
    }

    /// A MobileFaceNet configuration (RGB 112×112, dropout 0): `get_mbf` by default,
    /// `mobileFaceNet(blocks: [2, 8, 12, 4], scale: 4)` for `get_mbf_large`.
    ///
    /// - Parameters:
    ///   - blocks: the four residual groups' block counts, each in
    ///     1…`MobileFaceNetArchitecture.maximumBlocks` (`familyProblems` says otherwise).
    ///   - scale: the width multiplier, in 1…`MobileFaceNetArchitecture.maximumScale`.
    ///   - embeddingDimension: `D`.
    public static func mobileFaceNet(blocks: [Int] = [1, 4, 6, 2], scale: Int = 2,
                                     embeddingDimension: Int = 512) -> BackboneConfiguration {
        var configuration = BackboneConfiguration(kind: .mobilefacenet, embeddingDimension: embeddingDimension)
        configuration.blocks = blocks
        configuration.scale = scale
        return configuration
    }

    /// The MobileFaceNet of a `.mobilefacenet` configuration: its `blocks` and `scale` (`get_mbf`'s
    /// where `nil`), `D` and input size; `nil` for another kind or out-of-range values
    /// (`familyProblems` names them).
    public var mobileFaceNetArchitecture: MobileFaceNetArchitecture? {
        guard kind == .mobilefacenet, mobileFaceNetProblems.isEmpty, embeddingDimension >= 1 else { return nil }
        let defaults = MobileFaceNetArchitecture()
        var architecture = MobileFaceNetArchitecture(blocks: blocks ?? defaults.blocks, scale: scale ?? defaults.scale,
                                                     embeddingDimension: embeddingDimension)
        architecture.inputChannels = inputChannels
        architecture.inputHeight = inputHeight
        architecture.inputWidth = inputWidth
        return architecture
    }

    /// The problems of `blocks` and `scale` for kind mobilefacenet, one sentence each naming the key.
    var mobileFaceNetProblems: [String] {
        var problems: [String] = []
        let maximumBlocks = MobileFaceNetArchitecture.maximumBlocks, maximumScale = MobileFaceNetArchitecture.maximumScale
        if let blocks, blocks.count != 4 || blocks.contains(where: { !(1...maximumBlocks).contains($0) }) {
            problems.append("backbone.blocks must be 4 block counts, each in 1…\(maximumBlocks), for kind mobilefacenet "
                            + "(arcface_torch: [1, 4, 6, 2] get_mbf, [2, 8, 12, 4] get_mbf_large): \(blocks)")
        }
        if let scale, !(1...maximumScale).contains(scale) {
            problems.append("backbone.scale (MobileFaceNet's width multiplier) must be in 1…\(maximumScale) for kind mobilefacenet "
                            + "(arcface_torch: 2 get_mbf, 4 get_mbf_large): \(scale)")
        }
        return problems
    }

    /// The configuration problems of the field's backbones, one sentence each (empty for the
    /// default CNN, whose checks are `TrainingConfiguration`'s):
    ///
    /// - the input must be RGB 112×112 (`[3, 112, 112]`): the stem takes 3 channels and the
    ///   embedding layer expects the 7×7 map of four stride-2 stages (IResNet: `512·7·7` inputs
    ///   of `fc`; MobileFaceNet: the 7×7 depthwise `features` convolution);
    /// - IResNet's `depth` must be 18, 34, 50 or 100; other kinds take no `depth`;
    /// - MobileFaceNet's `blocks` must be four counts in 1…`MobileFaceNetArchitecture.maximumBlocks`
    ///   and its `scale` in 1…`MobileFaceNetArchitecture.maximumScale`; other kinds take neither;
    /// - MobileFaceNet has no dropout (`dropout` must be 0); IResNet's is in [0, 1).
    public var familyProblems: [String] {
        guard kind != .default else { return [] }
        var problems: [String] = []
        if inputChannels != 3 || inputHeight != 112 || inputWidth != 112 {
            problems.append("backbone kind \(kind.rawValue) needs RGB 112×112 input (inputChannels 3, inputHeight and "
                            + "inputWidth 112: its embedding layer expects a 7×7 map), got \(inputChannels)×\(inputHeight)×\(inputWidth)")
        }
        if kind != .mobilefacenet {
            if blocks != nil { problems.append("backbone.blocks applies to kind mobilefacenet only, not \(kind.rawValue)") }
            if scale != nil { problems.append("backbone.scale applies to kind mobilefacenet only, not \(kind.rawValue)") }
        }
        switch kind {
        case .iresnet:
            if let depth, !IResNetArchitecture.supportedDepths.contains(depth) {
                problems.append("backbone.depth must be one of \(IResNetArchitecture.supportedDepths) for kind iresnet: \(depth)")
            } else if depth == nil {
                problems.append("backbone kind iresnet needs a depth, one of \(IResNetArchitecture.supportedDepths)")
            }
        case .mobilefacenet:
            if depth != nil { problems.append("backbone.depth applies to kind iresnet only, not mobilefacenet") }
            if dropout != 0 { problems.append("backbone.dropout must be 0 for kind mobilefacenet (it has no dropout): \(dropout)") }
            problems += mobileFaceNetProblems
        case .default:
            break
        }
        return problems
    }
}
