import TensorCore

/// The sizes of a MobileFaceNet as arcface_torch's `mobilefacenet.py` builds it (Chen et al. 2018,
/// "MobileFaceNets: Efficient CNNs for Accurate Real-Time Face Verification on Mobile Devices",
/// Table 1, widened by `scale`): `MobileFaceNetArchitecture()` is `get_mbf` — `blocks`
/// (1, 4, 6, 2), `scale` 2, `D` = 512, RGB 112×112 input.
public struct MobileFaceNetArchitecture: Sendable, Equatable {
    /// One of arcface_torch's top-level modules `layers.<i>`.
    public enum Module: Sendable, Equatable {
        /// `ConvBlock`: convolution (`k×k`, padding `k/2`, no bias) → BatchNorm → PReLU.
        case convolution(outputChannels: Int, kernelSize: Int, stride: Int, groups: Int)
        /// `DepthWise` (an inverted bottleneck, Sandler et al. 2018): 1×1 `ConvBlock` to
        /// `expansion` channels → 3×3 depthwise `ConvBlock` (stride) → 1×1 `LinearBlock` to
        /// `outputChannels` (convolution → BatchNorm, no activation).
        case depthwise(outputChannels: Int, expansion: Int, stride: Int)
        /// `Residual`: `count` stride-1 `DepthWise` blocks of `channels`, each added to its input.
        case residual(channels: Int, count: Int, expansion: Int)
    }

    /// Input `[C, H, W]`, channels and pixels (RGB 112×112: the 7×7 `features` convolution
    /// needs the 7×7 map of four stride-2 layers).
    public var inputChannels = 3, inputHeight = 112, inputWidth = 112
    /// Blocks of the four residual groups; `blocks[0] == 1` gives the grouped 3×3 `ConvBlock`
    /// (`groups` 64) as `layers.1`, more a `Residual` of that many blocks.
    public var blocks: [Int]
    /// The width multiplier of the 64- and 128-channel stages (2 in `get_mbf`, 4 in `get_mbf_large`).
    public var scale: Int
    /// The largest `scale` a configuration takes (`backbone.scale`; a 1024-channel trunk at 16,
    /// already far past arcface_torch's 4): keeps the memory estimate's arithmetic in range.
    public static let maximumScale = 16
    /// The largest block count of one residual group a configuration takes (`backbone.blocks`;
    /// arcface_torch's largest is 12).
    public static let maximumBlocks = 64
    /// `D`, the embedding size (`num_features`, 512).
    public var embeddingDimension: Int

    /// arcface_torch's `get_mbf(fp16, num_features, blocks=(1, 4, 6, 2), scale=2)` by default;
    /// `get_mbf_large` is `blocks` `[2, 8, 12, 4]`, `scale` 4.
    ///
    /// - Precondition: four `blocks` ≥ 1, `scale` ≥ 1, `embeddingDimension` ≥ 1 (a configuration's
    ///   values are checked first: `BackboneConfiguration.familyProblems`).
    public init(blocks: [Int] = [1, 4, 6, 2], scale: Int = 2, embeddingDimension: Int = 512) {
        precondition(blocks.count == 4 && blocks.allSatisfy { $0 >= 1 } && scale >= 1 && embeddingDimension >= 1,
                     "MobileFaceNetArchitecture: blocks \(blocks), scale \(scale), D \(embeddingDimension)")
        self.blocks = blocks
        self.scale = scale
        self.embeddingDimension = embeddingDimension
    }

    /// `layers.0` … `layers.7` in order, as `MobileFaceNet.__init__` appends them (the
    /// expansion widths 128, 256, 512 are fixed there, whatever `scale`).
    public var modules: [Module] {
        let narrow = 64 * scale, wide = 128 * scale
        return [
            .convolution(outputChannels: narrow, kernelSize: 3, stride: 2, groups: 1),
            blocks[0] == 1 ? .convolution(outputChannels: narrow, kernelSize: 3, stride: 1, groups: 64)
                           : .residual(channels: narrow, count: blocks[0], expansion: 128),
            .depthwise(outputChannels: narrow, expansion: 128, stride: 2),
            .residual(channels: narrow, count: blocks[1], expansion: 128),
            .depthwise(outputChannels: wide, expansion: 256, stride: 2),
            .residual(channels: wide, count: blocks[2], expansion: 256),
            .depthwise(outputChannels: wide, expansion: 512, stride: 2),
            .residual(channels: wide, count: blocks[3], expansion: 256),
        ]
    }

    /// The exact number of trainable scalars (every BatchNorm's γ and β, `features.layers.3` included).
    public var parameterCount: Int { Int(memoryTally(training: true, workers: 1).parameterFloats) }
}
