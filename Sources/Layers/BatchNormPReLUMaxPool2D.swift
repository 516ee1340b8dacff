import TensorCore

/// `BatchNorm2D → PReLU → MaxPool2D` as one layer with fused kernels: the backbone stage's tail
/// after its convolution.
///
/// Concretely, for `x` `[N, C, H, W]`: `y = maxpool_k,s(PReLU_α(γ·(x − μ_c)/√(σ²_c + ε) + β))`,
/// `[N, C, Ho, Wo]`, with the statistics, running averages and parameters of the `batchNorm`
/// layer (Ioffe & Szegedy 2015), the slopes of the `prelu` layer (He et al. 2015) and the window
/// of the `pool` layer. It computes what `Sequential([batchNorm, prelu, pool])` computes — the
/// same forward values and argmax, gradients equal to round-off — in fewer passes over memory:
/// forward, the statistics then one pass that writes only the pooled output; backward, one pass
/// over the pooled positions for the per-channel sums, then one that writes `∂x`. Neither the
/// normalized nor the activated `[N, C, H, W]` tensor is stored.
///
/// Parameter and buffer names (and order) are those of the three layers, so checkpoints are
/// interchangeable with the unfused sequence.
public final class BatchNormPReLUMaxPool2D: Layer {
    /// The normalization: owns `γ`, `β` and the running statistics.
    public let batchNorm: BatchNorm2D
    /// The activation: owns the slopes `α`.
    public let prelu: PReLU
    /// The pooling window.
    public let pool: MaxPool2D
    private var output: [Float] = []          // reused between steps (copy-on-write keeps old tensors intact)
    private var argmax: [Int32] = []
    private var inputGradient: [Float] = []

    public struct Cache: LayerCache {
        let inputShape: [Int]
        let input: [Float]              // x, [N, C, H, W]
        let mean: [Double]              // μ used to normalize, [C]
        let inverseDeviation: [Double]  // 1/√(σ² + ε), [C]
        let scale: [Float], shift: [Float]   // the folded map z = a·x + b, [C] each
        let usedBatchStatistics: Bool
        let argmax: [Int32]             // [N, C, Ho, Wo], index within the input plane
    }

    /// - Parameters:
    ///   - channels: `C` (> 0).
    ///   - poolSize: the pooling window side `k` (stride `k`).
    ///   - batchNormName, preluName: name prefixes, e.g. `"backbone.stage1.bn"`, `"backbone.stage1.prelu"`.
    public init(channels: Int, poolSize: Int = 2, batchNormName: String, preluName: String) {
        batchNorm = BatchNorm2D(channels: channels, name: batchNormName)
        prelu = PReLU(channels: channels, name: preluName)
        pool = MaxPool2D(kernelSize: poolSize)
    }

    public var parameters: [Parameter] { batchNorm.parameters + prelu.parameters }
    public var buffers: [Buffer] { batchNorm.buffers }

    /// - Parameter input: `[N, C, H, W]` (N·H·W > 1 in training, `H, W ≥ k`).
    /// - Returns: output `[N, C, Ho, Wo]`.
    public func forward(_ input: Tensor, mode: Mode) -> (output: Tensor, cache: any LayerCache) {
        let core = batchNorm.core
        precondition(input.rank == 4 && input.shape[1] == core.channels,
                     "BatchNormPReLUMaxPool2D \(core.name): input \(input.shape), expected [N, \(core.channels), H, W]")
        let (n, c, h, w) = (input.shape[0], input.shape[1], input.shape[2], input.shape[3])
        let x = input.storage
        let (mean, inverseDeviation, scale, shift) = core.normalization(x, outer: n, inner: h * w, mode: mode, shape: input.shape)
        affinePReLUMaxPool(x, batchSize: n, channels: c, height: h, width: w, scale: scale, shift: shift,
                           slopes: prelu.weight.value.storage, kernelSize: pool.kernelSize, stride: pool.stride,
                           into: &output, argmax: &argmax)
        let ho = (h - pool.kernelSize) / pool.stride + 1, wo = (w - pool.kernelSize) / pool.stride + 1
        return (Tensor(shape: [n, c, ho, wo], storage: output),
                Cache(inputShape: input.shape, input: x, mean: mean, inverseDeviation: inverseDeviation, scale: scale,
                      shift: shift, usedBatchStatistics: core.usesBatchStatistics(mode), argmax: argmax))
    }

    /// - Parameter outputGradient: `[N, C, Ho, Wo]`.
    /// - Returns: `[N, C, H, W]`; accumulates into `γ`, `β` and `α`'s gradients.
    public func backward(_ outputGradient: Tensor, cache: any LayerCache) -> Tensor {
        let core = batchNorm.core
        let cache = layerCache(cache, as: Cache.self, layer: "BatchNormPReLUMaxPool2D \(core.name)")
        let (n, c, h, w) = (cache.inputShape[0], cache.inputShape[1], cache.inputShape[2], cache.inputShape[3])
        let ho = (h - pool.kernelSize) / pool.stride + 1, wo = (w - pool.kernelSize) / pool.stride + 1
        precondition(outputGradient.shape == [n, c, ho, wo],
                     "BatchNormPReLUMaxPool2D \(core.name): output gradient \(outputGradient.shape), expected [\(n), \(c), \(ho), \(wo)]")
        let slopes = prelu.weight.value.storage
        let sums = affinePReLUMaxPoolGradientSums(gradient: outputGradient.storage, argmax: cache.argmax, input: cache.input,
                                                  batchSize: n, channels: c, height: h, width: w,
                                                  kernelSize: pool.kernelSize, stride: pool.stride, scale: cache.scale,
                                                  shift: cache.shift, slopes: slopes, mean: cache.mean.map(Float.init))
        accumulate(sums.slope, into: prelu.weight)
        let (p, q, r) = core.inputGradientCoefficients(sum: sums.sum, centeredDot: sums.centeredDot, mean: cache.mean,
                                                       inverseDeviation: cache.inverseDeviation, count: n * h * w,
                                                       usedBatchStatistics: cache.usedBatchStatistics)
        affinePReLUMaxPoolInputGradient(gradient: outputGradient.storage, argmax: cache.argmax, input: cache.input,
                                        batchSize: n, channels: c, height: h, width: w,
                                        kernelSize: pool.kernelSize, stride: pool.stride, scale: cache.scale,
                                        shift: cache.shift, slopes: slopes, gradientScale: p, inputScale: q, offset: r,
                                        into: &inputGradient)
        return Tensor(shape: cache.inputShape, storage: inputGradient)
    }
}
