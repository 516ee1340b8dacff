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
    /// 112×112 input, `D` = 512, dropout 0.
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
    }

    /// The configuration problems of the field's backbones, one sentence each (empty for the
    /// default CNN, whose checks are `TrainingConfiguration`'s):
    ///
    /// - the input must be RGB 112×112 (`[3, 112, 112]`): the stem takes 3 channels and the
    ///   embedding layer expects the 7×7 map of four stride-2 stages (IResNet: `512·7·7` inputs
    ///   of `fc`; MobileFaceNet: the 7×7 depthwise `features` convolution);
    /// - IResNet's `depth` must be 18, 34, 50 or 100; other kinds take no `depth`;
    /// - MobileFaceNet has no dropout (`dropout` must be 0); IResNet's is in [0, 1).
    public var familyProblems: [String] {
        guard kind != .default else { return [] }
        var problems: [String] = []
        if inputChannels != 3 || inputHeight != 112 || inputWidth != 112 {
            problems.append("backbone kind \(kind.rawValue) needs RGB 112×112 input (inputChannels 3, inputHeight and "
                            + "inputWidth 112: its embedding layer expects a 7×7 map), got \(inputChannels)×\(inputHeight)×\(inputWidth)")
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
        case .default:
            break
        }
        return problems
    }
}
