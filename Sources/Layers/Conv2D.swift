import TensorCore

/// A 2-D convolution (cross-correlation, as PyTorch's `Conv2d`) computed as im2col followed by a
/// GEMM (the unfolding of Chellapilla, Puri & Simard 2006, "High Performance Convolutional Neural
/// Networks for Document Processing", §2.1), one image at a time.
///
/// Concretely, for input `x` `[N, Cin, H, W]` and weight `w` `[Cout, Cin, kh, kw]`:
/// ```
/// y[n, o, i, j] = b[o] + Σ_{c,p,q} w[o, c, p, q] · x[n, c, i·s − pad + p, j·s − pad + q]
/// Y_n = W · cols(x_n)        W: [Cout, Cin·kh·kw], cols(x_n): [Cin·kh·kw, Ho·Wo], Y_n: [Cout, Ho·Wo]
/// ```
/// with zeros outside the image and `Ho = (H + 2·pad − kh)/s + 1` (likewise `Wo`). The backward
/// pass is two GEMMs per image: `∂W += ∂Y_n · cols(x_n)ᵀ` and `∂cols = Wᵀ · ∂Y_n`, then `col2im`
/// folds `∂cols` into `∂x_n`.
///
/// Per image, the im2col matrix stays in cache (a same-padded window whose matrix would not,
/// e.g. 64 channels on 56×56, runs in chunks of output positions of ≤ 512 KiB) and each GEMM
/// writes the image's own slice of the `[N, Cout, Ho, Wo]` output, so there is no batch-wide
/// `[Cout, N·Ho·Wo]` matrix to transpose;
/// images are spread over `BLAS.threadCount` workers (see `convolutionForward` in `Conv2D+Kernels.swift`).
/// The cache keeps only the input tensor: the backward pass recomputes each image's im2col.
///
/// **Groups.** With `groups = g` the channels split into `g` groups that do not see each other
/// (PyTorch's `groups`): output channel `o` reads only the `Cin/g` input channels of its group
/// `o / (Cout/g)`, and the weight is `[Cout, Cin/g, k, k]`:
/// ```
/// y[n, o, i, j] = b[o] + Σ_{c<Cin/g, p, q} w[o, c, p, q] · x[n, gr·Cin/g + c, i·s − pad + p, j·s − pad + q],
///                 gr = o / (Cout/g)
/// ```
/// Three paths, chosen from the shape:
/// - `groups == Cin == Cout` (**depthwise**, Howard et al. 2017, "MobileNets: Efficient
///   Convolutional Neural Networks for Mobile Vision Applications", §3.1; the 3×3 blocks and the
///   7×7 global depthwise conv of Chen et al. 2018, "MobileFaceNets: Efficient CNNs for Accurate
///   Real-Time Face Verification on Mobile Devices"): a direct kernel, no im2col and no GEMM;
///   images × channels are spread over `BLAS.threadCount` workers (`DepthwiseConvolution+Kernels.swift`).
/// - `1 < groups`, otherwise: im2col of each group's channels and a GEMM per image and group.
/// - `groups == 1`: the path described above; a 1×1, stride-1, unpadded window multiplies the
///   image `[Cin, H·W]` directly (no im2col copy), a 1×1 stride-2 window gathers every second
///   pixel (its im2col) and multiplies that.
///
/// The layer keeps its output, input-gradient and scratch arrays between calls and writes into
/// them again once the previous step's tensors have been released (no allocation or page
/// faults in a steady training loop). A tensor still alive is never overwritten: the arrays are
/// copy-on-write, so sharing only costs a copy.
public final class Conv2D: Layer {
    public let name: String
    public let inputChannels: Int
    public let outputChannels: Int
    /// Square window size `k` (so `kh = kw = k`), stride and zero padding, in pixels.
    public let kernelSize: Int, stride: Int, padding: Int
    /// The number of channel groups `g` (divides `Cin` and `Cout`); 1 is a dense convolution,
    /// `Cin` (with `Cout == Cin`) a depthwise one.
    public let groups: Int
    /// `[Cout, Cin/groups, k, k]` (PyTorch's layout), Kaiming-normal initialized with
    /// fan-in `Cin/groups · k · k`.
    public let weight: Parameter
    /// `[Cout]`, zero-initialized; `nil` when the layer has no bias (e.g. before BatchNorm).
    public let bias: Parameter?
    /// Whether `backward` computes `∂x` (the `Wᵀ·∂Y` GEMM and col2im). When `false` it still
    /// accumulates the parameter gradients but returns zeros of the input's shape: set it on a
    /// network's first layer, whose input (the image batch) needs no gradient. Default `true`.
    public var computesInputGradient = true

    private var scratch: [Float] = []          // per-worker im2col (or padded-plane) buffers and ∂W partials
    private var output: [Float] = []           // [N, Cout, Ho, Wo]
    private var inputGradient: [Float] = []    // [N, Cin, H, W]

    /// The per-call saved state: the input and its geometry.
    public struct Cache: LayerCache {
        let geometry: ConvolutionGeometry
        let batchSize: Int
        let input: [Float]
    }

    /// - Parameters:
    ///   - inputChannels, outputChannels: `Cin`, `Cout` (> 0).
    ///   - kernelSize: the square window `k` (> 0); stride (> 0); padding (≥ 0), in pixels.
    ///   - groups: channel groups `g` (> 0, dividing both `Cin` and `Cout`); default 1.
    ///   - bias: whether the layer adds a learned bias `[Cout]`.
    ///   - nonlinearity: the activation after this layer, for the Kaiming gain.
    ///   - name: parameter name prefix, e.g. `"backbone.stage1.conv"` → `…conv.weight`.
    ///   - generator: the seeded initialization stream (advanced).
    public init(inputChannels: Int, outputChannels: Int, kernelSize: Int, stride: Int = 1, padding: Int = 0,
                groups: Int = 1, bias: Bool = false, nonlinearity: Nonlinearity = .relu, name: String,
                generator: inout SeededGenerator) {
        precondition(inputChannels > 0 && outputChannels > 0 && kernelSize > 0 && stride > 0 && padding >= 0,
                     "Conv2D \(name): Cin \(inputChannels), Cout \(outputChannels), kernel \(kernelSize), stride \(stride), padding \(padding)")
        precondition(groups > 0 && inputChannels % groups == 0 && outputChannels % groups == 0,
                     "Conv2D \(name): groups \(groups) must be positive and divide Cin \(inputChannels) and Cout \(outputChannels)")
        self.name = name
        self.inputChannels = inputChannels
        self.outputChannels = outputChannels
        self.kernelSize = kernelSize
        self.stride = stride
        self.padding = padding
        self.groups = groups
        let fanIn = inputChannels / groups * kernelSize * kernelSize
        weight = Parameter(name: qualified(name, "weight"),
                           value: kaimingNormal(shape: [outputChannels, inputChannels / groups, kernelSize, kernelSize],
                                                fanIn: fanIn, nonlinearity: nonlinearity, using: &generator))
        self.bias = bias ? Parameter(name: qualified(name, "bias"), value: Tensor(shape: [outputChannels]),
                                     appliesWeightDecay: false) : nil
    }

    public var parameters: [Parameter] { bias.map { [weight, $0] } ?? [weight] }

    /// Whether this is a depthwise convolution (`groups == Cin == Cout`), run by the direct kernel.
    public var isDepthwise: Bool { groups > 1 && groups == inputChannels && groups == outputChannels }
    public var buffers: [Buffer] { [] }

    /// The geometry for an input of `[N, Cin, H, W]`.
    package func geometry(height: Int, width: Int) -> ConvolutionGeometry {
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
        if isDepthwise {
            depthwiseConvolutionForward(input.storage, batchSize: batchSize, geometry: g, weight: weight.value.storage,
                                        bias: bias?.value.storage, into: &output, scratch: &scratch)
        } else if groups > 1 {
            groupedConvolutionForward(input.storage, batchSize: batchSize, geometry: g, groups: groups,
                                      weight: weight.value.storage, outputChannels: outputChannels,
                                      bias: bias?.value.storage, into: &output, scratch: &scratch)
        } else {
            convolutionForward(input.storage, batchSize: batchSize, geometry: g, weight: weight.value.storage,
                               outputChannels: outputChannels, bias: bias?.value.storage, into: &output, scratch: &scratch)
        }
        return (Tensor(shape: [batchSize, outputChannels, g.outputHeight, g.outputWidth], storage: output),
                Cache(geometry: g, batchSize: batchSize, input: input.storage))
    }

    /// - Parameter outputGradient: `[N, Cout, Ho, Wo]`.
    /// - Returns: `[N, Cin, H, W]`; accumulates into `weight.gradient` (and `bias.gradient`).
    public func backward(_ outputGradient: Tensor, cache: any LayerCache) -> Tensor {
        let cache = layerCache(cache, as: Cache.self, layer: "Conv2D \(name)")
        let g = cache.geometry, batchSize = cache.batchSize
        let spatial = g.outputHeight * g.outputWidth
        precondition(outputGradient.shape == [batchSize, outputChannels, g.outputHeight, g.outputWidth],
                     "Conv2D \(name): output gradient \(outputGradient.shape), expected [\(batchSize), \(outputChannels), \(g.outputHeight), \(g.outputWidth)]")
        if isDepthwise {
            depthwiseConvolutionBackward(outputGradient: outputGradient.storage, input: cache.input, batchSize: batchSize,
                                         geometry: g, weight: weight.value.storage,
                                         weightGradient: &weight.gradient.storage,
                                         computesInputGradient: computesInputGradient,
                                         into: &inputGradient, scratch: &scratch)
        } else if groups > 1 {
            groupedConvolutionBackward(outputGradient: outputGradient.storage, input: cache.input, batchSize: batchSize,
                                       geometry: g, groups: groups, weight: weight.value.storage,
                                       outputChannels: outputChannels, weightGradient: &weight.gradient.storage,
                                       computesInputGradient: computesInputGradient,
                                       into: &inputGradient, scratch: &scratch)
        } else {
            convolutionBackward(outputGradient: outputGradient.storage, input: cache.input, batchSize: batchSize, geometry: g,
                                weight: weight.value.storage, outputChannels: outputChannels,
                                weightGradient: &weight.gradient.storage, computesInputGradient: computesInputGradient,
                                into: &inputGradient, scratch: &scratch)
        }
        if let bias {
            accumulate(channelSums(outputGradient.storage, outer: batchSize, channels: outputChannels, inner: spatial), into: bias)
        }
        guard computesInputGradient else { return Tensor(shape: [batchSize, inputChannels, g.height, g.width]) }
        return Tensor(shape: [batchSize, inputChannels, g.height, g.width], storage: inputGradient)
    }
}
