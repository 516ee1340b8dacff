import TensorCore

/// Max pooling over `k × k` windows with stride `s`, no padding, floor mode (PyTorch's
/// `MaxPool2d(k, s)`): `Ho = (H − k)/s + 1`, so a 23-pixel side pools to 11 with `k = s = 2`.
///
/// The forward pass caches the argmax of every window; the backward pass routes each output
/// gradient to it (ties: the first maximum in row-major window order; NaN propagates).
public final class MaxPool2D: Layer {
    public let kernelSize: Int
    public let stride: Int
    private var output: [Float] = []          // reused between steps (copy-on-write keeps old tensors intact)
    private var argmax: [Int32] = []
    private var inputGradient: [Float] = []

    public struct Cache: LayerCache {
        let inputShape: [Int]
        let argmax: [Int32]   // [N·C·Ho·Wo], index within the input plane
    }

    /// - Parameters:
    ///   - kernelSize: window side `k` (> 0), default 2.
    ///   - stride: step `s` (> 0), default `kernelSize`.
    public init(kernelSize: Int = 2, stride: Int? = nil) {
        precondition(kernelSize > 0 && (stride ?? 1) > 0, "MaxPool2D: kernel \(kernelSize), stride \(String(describing: stride))")
        self.kernelSize = kernelSize
        self.stride = stride ?? kernelSize
    }

    public var parameters: [Parameter] { [] }
    public var buffers: [Buffer] { [] }

    /// - Parameter input: `[N, C, H, W]` with `H, W ≥ k`.
    /// - Returns: output `[N, C, Ho, Wo]`.
    public func forward(_ input: Tensor, mode: Mode) -> (output: Tensor, cache: any LayerCache) {
        precondition(input.rank == 4 && input.shape[2] >= kernelSize && input.shape[3] >= kernelSize,
                     "MaxPool2D: input \(input.shape), expected [N, C, H ≥ \(kernelSize), W ≥ \(kernelSize)]")
        let (n, c, h, w) = (input.shape[0], input.shape[1], input.shape[2], input.shape[3])
        maxPool2D(input.storage, planes: n * c, height: h, width: w, kernelSize: kernelSize, stride: stride,
                  into: &output, argmax: &argmax)
        let ho = (h - kernelSize) / stride + 1, wo = (w - kernelSize) / stride + 1
        return (Tensor(shape: [n, c, ho, wo], storage: output), Cache(inputShape: input.shape, argmax: argmax))
    }

    public func backward(_ outputGradient: Tensor, cache: any LayerCache) -> Tensor {
        let cache = layerCache(cache, as: Cache.self, layer: "MaxPool2D")
        let s = cache.inputShape
        precondition(outputGradient.rank == 4 && Array(outputGradient.shape.prefix(2)) == Array(s.prefix(2))
                     && outputGradient.count == cache.argmax.count,
                     "MaxPool2D: output gradient \(outputGradient.shape) does not match input \(s)")
        maxPool2DBackward(gradient: outputGradient.storage, argmax: cache.argmax,
                          planes: s[0] * s[1], height: s[2], width: s[3], into: &inputGradient)
        return Tensor(shape: s, storage: inputGradient)
    }
}
