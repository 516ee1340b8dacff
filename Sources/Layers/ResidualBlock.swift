import TensorCore

/// A basic residual block (He et al. 2016, "Deep Residual Learning", Fig. 2 and eq. 1–2, with
/// arcface_torch's PReLU and no activation after the sum, as its `IBasicBlock`).
///
/// Concretely, for `x` `[N, Cin, H, W]`:
/// ```
/// main(x)     = BN(conv3×3(PReLU(BN(conv3×3(x)))))          (padding 1, no conv bias)
/// shortcut(x) = x                    when Cin == Cout
///             = BN(conv1×1(x))       otherwise (projection, eq. 2)
/// y = main(x) + shortcut(x)          [N, Cout, H, W]
/// ```
public final class ResidualBlock: Layer {
    public let name: String
    /// conv3×3 → BN → PReLU → conv3×3 → BN.
    public let main: Sequential
    /// conv1×1 → BN when the channel count changes, else `nil` (identity).
    public let shortcut: Sequential?
    /// Whether `backward` computes `∂x`; when `false` both convolutions that read the input skip
    /// their input-gradient work and `backward` returns zeros of the input's shape (for a
    /// network's first layer). Default `true`.
    public var computesInputGradient = true {
        didSet {
            (main.layers[0] as? Conv2D)?.computesInputGradient = computesInputGradient
            (shortcut?.layers[0] as? Conv2D)?.computesInputGradient = computesInputGradient
        }
    }

    public struct Cache: LayerCache {
        let main: any LayerCache
        let shortcut: (any LayerCache)?
    }

    /// - Parameters:
    ///   - inputChannels, outputChannels: `Cin`, `Cout` (> 0).
    ///   - name: name prefix, e.g. `"backbone.stage1.block"` → `…block.conv1.weight`,
    ///     `…block.shortcut.conv.weight`.
    ///   - generator: the seeded initialization stream (advanced).
    public init(inputChannels: Int, outputChannels: Int, name: String, generator: inout SeededGenerator) {
        self.name = name
        let prelu = Nonlinearity.leakyReLU(slope: 0.25)
        main = Sequential([
            Conv2D(inputChannels: inputChannels, outputChannels: outputChannels, kernelSize: 3, padding: 1,
                   nonlinearity: prelu, name: qualified(name, "conv1"), generator: &generator),
            BatchNorm2D(channels: outputChannels, name: qualified(name, "bn1")),
            PReLU(channels: outputChannels, name: qualified(name, "prelu")),
            Conv2D(inputChannels: outputChannels, outputChannels: outputChannels, kernelSize: 3, padding: 1,
                   nonlinearity: .linear, name: qualified(name, "conv2"), generator: &generator),
            BatchNorm2D(channels: outputChannels, name: qualified(name, "bn2")),
        ])
        if inputChannels == outputChannels {
            shortcut = nil
        } else {
            shortcut = Sequential([
                Conv2D(inputChannels: inputChannels, outputChannels: outputChannels, kernelSize: 1,
                       nonlinearity: .linear, name: qualified(name, "shortcut.conv"), generator: &generator),
                BatchNorm2D(channels: outputChannels, name: qualified(name, "shortcut.bn")),
            ])
        }
    }

    public var parameters: [Parameter] { main.parameters + (shortcut?.parameters ?? []) }
    public var buffers: [Buffer] { main.buffers + (shortcut?.buffers ?? []) }

    /// - Parameter input: `[N, Cin, H, W]`. - Returns: output `[N, Cout, H, W]`.
    public func forward(_ input: Tensor, mode: Mode) -> (output: Tensor, cache: any LayerCache) {
        var (y, mainCache) = main.forward(input, mode: mode)
        var shortcutCache: (any LayerCache)? = nil
        if let shortcut {
            let (s, cache) = shortcut.forward(input, mode: mode)
            shortcutCache = cache
            y += s
        } else {
            precondition(y.shape == input.shape, "ResidualBlock \(name): main output \(y.shape) vs input \(input.shape)")
            y += input
        }
        return (y, Cache(main: mainCache, shortcut: shortcutCache))
    }

    public func backward(_ outputGradient: Tensor, cache: any LayerCache) -> Tensor {
        let cache = layerCache(cache, as: Cache.self, layer: "ResidualBlock \(name)")
        var g = main.backward(outputGradient, cache: cache.main)
        if let shortcut {
            guard let shortcutCache = cache.shortcut else {
                preconditionFailure("ResidualBlock \(name): cache has no shortcut cache")
            }
            let s = shortcut.backward(outputGradient, cache: shortcutCache)
            if computesInputGradient { g += s }
        } else if computesInputGradient {
            g += outputGradient
        }
        return g
    }
}
