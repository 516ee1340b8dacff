import TensorCore

/// A 2-D convolution (cross-correlation, as PyTorch's `Conv2d`) computed as im2col of the whole
/// batch followed by one GEMM (the unfolding of Chellapilla, Puri & Simard 2006, "High Performance
/// Convolutional Neural Networks for Document Processing", §2.1).
///
/// Concretely, for input `x` `[N, Cin, H, W]` and weight `w` `[Cout, Cin, kh, kw]`:
/// ```
/// y[n, o, i, j] = b[o] + Σ_{c,p,q} w[o, c, p, q] · x[n, c, i·s − pad + p, j·s − pad + q]
/// Y = W · cols(x)            W: [Cout, Cin·kh·kw], cols(x): [Cin·kh·kw, N·Ho·Wo]
/// ```
/// with zeros outside the image and `Ho = (H + 2·pad − kh)/s + 1` (likewise `Wo`). The backward
/// pass is two GEMMs: `∂W += ∂Y · colsᵀ` and `∂cols = Wᵀ · ∂Y`, then `col2im` folds `∂cols` into
/// `∂x`.
///
/// The layer keeps its im2col matrix, GEMM scratch, output and input-gradient arrays between calls
/// and writes into them again once the previous step's tensors and caches have been released
/// (no allocation or page faults in a steady training loop). A tensor or cache still alive is
/// never overwritten: the arrays are copy-on-write, so sharing only costs a copy.
public final class Conv2D: Layer {
    public let name: String
    public let inputChannels: Int
    public let outputChannels: Int
    /// Square window size `k` (so `kh = kw = k`), stride and zero padding, in pixels.
    public let kernelSize: Int, stride: Int, padding: Int
    /// `[Cout, Cin, k, k]`, Kaiming-normal initialized.
    public let weight: Parameter
    /// `[Cout]`, zero-initialized; `nil` when the layer has no bias (e.g. before BatchNorm).
    public let bias: Parameter?
    /// Whether `backward` computes `∂x` (the `Wᵀ·∂Y` GEMM and col2im). When `false` it still
    /// accumulates the parameter gradients but returns zeros of the input's shape: set it on a
    /// network's first layer, whose input (the image batch) needs no gradient. Default `true`.
    public var computesInputGradient = true

    private var columns: [Float] = []          // [Cin·k·k, N·Ho·Wo], shared with the last cache
    private var channelMajor: [Float] = []     // [Cout, N·Ho·Wo]
    private var columnGradient: [Float] = []   // [Cin·k·k, N·Ho·Wo]
    private var output: [Float] = []           // [N, Cout, Ho, Wo]
    private var inputGradient: [Float] = []    // [N, Cin, H, W]

    /// The per-call saved state: the input's im2col matrix and geometry.
    public struct Cache: LayerCache {
        let geometry: ConvolutionGeometry
        let batchSize: Int
        let columns: [Float]
    }

    /// - Parameters:
    ///   - inputChannels, outputChannels: `Cin`, `Cout` (> 0).
    ///   - kernelSize: the square window `k` (> 0); stride (> 0); padding (≥ 0), in pixels.
    ///   - bias: whether the layer adds a learned bias `[Cout]`.
    ///   - nonlinearity: the activation after this layer, for the Kaiming gain.
    ///   - name: parameter name prefix, e.g. `"backbone.stage1.conv"` → `…conv.weight`.
    ///   - generator: the seeded initialization stream (advanced).
    public init(inputChannels: Int, outputChannels: Int, kernelSize: Int, stride: Int = 1, padding: Int = 0,
                bias: Bool = false, nonlinearity: Nonlinearity = .relu, name: String,
                generator: inout SeededGenerator) {
        precondition(inputChannels > 0 && outputChannels > 0 && kernelSize > 0 && stride > 0 && padding >= 0,
                     "Conv2D \(name): Cin \(inputChannels), Cout \(outputChannels), kernel \(kernelSize), stride \(stride), padding \(padding)")
        self.name = name
        self.inputChannels = inputChannels
        self.outputChannels = outputChannels
        self.kernelSize = kernelSize
        self.stride = stride
        self.padding = padding
        let fanIn = inputChannels * kernelSize * kernelSize
        weight = Parameter(name: qualified(name, "weight"),
                           value: kaimingNormal(shape: [outputChannels, inputChannels, kernelSize, kernelSize],
                                                fanIn: fanIn, nonlinearity: nonlinearity, using: &generator))
        self.bias = bias ? Parameter(name: qualified(name, "bias"), value: Tensor(shape: [outputChannels]),
                                     appliesWeightDecay: false) : nil
    }

    public var parameters: [Parameter] { bias.map { [weight, $0] } ?? [weight] }
    public var buffers: [Buffer] { [] }

    /// The geometry for an input of `[N, Cin, H, W]`.
    public func geometry(height: Int, width: Int) -> ConvolutionGeometry {
        ConvolutionGeometry(channels: inputChannels, height: height, width: width,
                            kernelHeight: kernelSize, kernelWidth: kernelSize,
                            strideHeight: stride, strideWidth: stride,
                            paddingHeight: padding, paddingWidth: padding)
    }

    /// - Parameter input: `[N, Cin, H, W]`.
    /// - Returns: output `[N, Cout, Ho, Wo]`.
    public func forward(_ input: Tensor, mode: Mode) -> (output: Tensor, cache: any LayerCache) {
        precondition(input.rank == 4 && input.shape[1] == inputChannels,
                     "Conv2D \(name): input \(input.shape), expected [N, \(inputChannels), H, W]")
        let batchSize = input.shape[0]
        let g = geometry(height: input.shape[2], width: input.shape[3])
        let spatial = g.outputHeight * g.outputWidth
        let columnCount = batchSize * spatial
        im2col(input.storage, batchSize: batchSize, geometry: g, into: &columns)   // [Cin·k·k, N·S]
        resize(&channelMajor, to: outputChannels * columnCount)
        gemm(m: outputChannels, n: columnCount, k: g.patchSize,
             a: weight.value.storage, lda: g.patchSize, b: columns, ldb: columnCount,
             c: &channelMajor, ldc: columnCount)                                      // [Cout, N·S]
        swapLeadingAxes(channelMajor, outputChannels, batchSize, inner: spatial,
                        adding: bias?.value.storage, into: &output)                  // [N, Cout, S]
        return (Tensor(shape: [batchSize, outputChannels, g.outputHeight, g.outputWidth], storage: output),
                Cache(geometry: g, batchSize: batchSize, columns: columns))
    }

    /// - Parameter outputGradient: `[N, Cout, Ho, Wo]`.
    /// - Returns: `[N, Cin, H, W]`; accumulates into `weight.gradient` (and `bias.gradient`).
    public func backward(_ outputGradient: Tensor, cache: any LayerCache) -> Tensor {
        let cache = layerCache(cache, as: Cache.self, layer: "Conv2D \(name)")
        let g = cache.geometry, batchSize = cache.batchSize
        let spatial = g.outputHeight * g.outputWidth
        let columnCount = batchSize * spatial
        precondition(outputGradient.shape == [batchSize, outputChannels, g.outputHeight, g.outputWidth],
                     "Conv2D \(name): output gradient \(outputGradient.shape), expected [\(batchSize), \(outputChannels), \(g.outputHeight), \(g.outputWidth)]")
        swapLeadingAxes(outputGradient.storage, batchSize, outputChannels, inner: spatial,
                        into: &channelMajor)                                          // ∂Y [Cout, N·S]
        // ∂W [Cout, Cin·k·k] += ∂Y · colsᵀ
        gemm(transposeB: true, m: outputChannels, n: g.patchSize, k: columnCount,
             a: channelMajor, lda: columnCount, b: cache.columns, ldb: columnCount,
             beta: 1, c: &weight.gradient.storage, ldc: g.patchSize)
        if let bias {
            accumulate(channelSums(channelMajor, outer: 1, channels: outputChannels, inner: columnCount), into: bias)
        }
        guard computesInputGradient else { return Tensor(shape: [batchSize, inputChannels, g.height, g.width]) }
        // ∂cols [Cin·k·k, N·S] = Wᵀ · ∂Y
        resize(&columnGradient, to: g.patchSize * columnCount)
        gemm(transposeA: true, m: g.patchSize, n: columnCount, k: outputChannels,
             a: weight.value.storage, lda: g.patchSize, b: channelMajor, ldb: columnCount,
             c: &columnGradient, ldc: columnCount)
        col2im(columnGradient, batchSize: batchSize, geometry: g, into: &inputGradient)
        return Tensor(shape: [batchSize, inputChannels, g.height, g.width], storage: inputGradient)
    }
}

/// Gives a scratch array exactly `count` elements (contents unspecified afterwards).
func resize(_ buffer: inout [Float], to count: Int) {
    if buffer.count != count { buffer = [Float](repeating: 0, count: count) }
}
