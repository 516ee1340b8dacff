// The backbone table (issue 11): arcface_torch's IResNet-18/34/50/100 and MobileFaceNet on
// synthetic RGB 112×112 images, forward (inference mode) and a training step of the backbone
// alone, in images/s and GFLOP/s against the network's FLOPs; IResNet-50's 3×3 convolutions
// against the GEMMs they issue; and an optional per-layer profile of one training step.
import ArcFace

/// One family of the backbone table: a name for the CLI and JSON, the configuration it builds,
/// and its forward FLOPs per image (2 × the multiply-adds insightface's tables quote).
struct BackboneFamily {
    var name: String
    var configuration: BackboneConfiguration
    var forwardFLOPs: Double

    /// The families `--backbones` accepts, in table order.
    static let all: [BackboneFamily] = [
        BackboneFamily(name: "r18", configuration: BackboneConfiguration(kind: .iresnet, depth: 18), forwardFLOPs: 5.2e9),
        BackboneFamily(name: "r34", configuration: BackboneConfiguration(kind: .iresnet, depth: 34), forwardFLOPs: 8.9e9),
        BackboneFamily(name: "r50", configuration: BackboneConfiguration(kind: .iresnet, depth: 50), forwardFLOPs: 12.6e9),
        BackboneFamily(name: "r100", configuration: BackboneConfiguration(kind: .iresnet, depth: 100), forwardFLOPs: 24.2e9),
        BackboneFamily(name: "mbf", configuration: BackboneConfiguration(kind: .mobilefacenet), forwardFLOPs: 0.88e9),
    ]

    /// The families named in a comma-separated list (`r18,r50,mbf`), in the list's order.
    static func parse(_ text: String) -> [BackboneFamily]? {
        let names = text.split(separator: ",").map { $0.trimmingCharacters(in: .whitespaces) }
        let families = names.map { name in all.first { $0.name == name } }
        guard !families.isEmpty, families.allSatisfy({ $0 != nil }) else { return nil }
        return families.map { $0! }
    }
}

/// One row of the backbone table.
struct BackboneResult: Codable {
    var family: String, batchSize: Int
    /// Forward FLOPs per image (the convention: forward = 1×, training step = 3×).
    var forwardFLOPsPerImage: Double
    /// `forward(_:mode: .inference)` of the batch.
    var forward: Timing
    /// A training step of the backbone: zero gradients, forward in training mode, backward from a
    /// random `[N, D]` ∂embedding without the image gradient (as the Trainer), SGD step
    /// (momentum 0.9, weight decay 5e-4). No margin head.
    var training: Timing
    var forwardImagesPerSecond: Double, trainingImagesPerSecond: Double
    var forwardGFLOPs: Double, trainingGFLOPs: Double
}

func benchmarkBackbone(_ family: BackboneFamily, n: Int, warmup: Int, repetitions: Int) -> BackboneResult {
    let (network, images, embeddingGradient) = profiledStep(family, n: n)
    let optimizer = SGD(parameters: network.parameters, configuration: SGDConfiguration(momentum: 0.9, weightDecay: 5e-4))
    let forward = measure(warmup: warmup, repetitions: repetitions) {
        let (y, _) = network.forward(images, mode: .inference)
        blackHole(Double(y.storage[0]))
    }
    let training = measure(warmup: warmup, repetitions: repetitions) {
        optimizer.zeroGradients()
        let (y, cache) = network.forward(images, mode: .training)
        _ = network.backward(embeddingGradient, cache: cache)
        blackHole(optimizer.step(learningRate: 1e-4) + Double(y.storage[0]))
    }
    let flops = family.forwardFLOPs * Double(n)
    return BackboneResult(family: family.name, batchSize: n, forwardFLOPsPerImage: family.forwardFLOPs,
                          forward: forward, training: training,
                          forwardImagesPerSecond: Double(n) / forward.median,
                          trainingImagesPerSecond: Double(n) / training.median,
                          forwardGFLOPs: flops / forward.median / 1e9, trainingGFLOPs: 3 * flops / training.median / 1e9)
}

/// Images in [-1, 1] of the configuration's shape `[N, C, H, W]`.
func syntheticImages(n: Int, configuration c: BackboneConfiguration, seed: UInt64) -> Tensor {
    let count = n * c.inputChannels * c.inputHeight * c.inputWidth
    return Tensor(shape: [n, c.inputChannels, c.inputHeight, c.inputWidth],
                  storage: randomFloats(count, seed: seed).map { max(-1, min(1, $0 * 0.5)) })
}

/// IResNet-50's stride-1 3×3 convolutions with as many input as output channels,
/// `(C, H=W, how many r50 has)`: `conv1` and `conv2` of every block but each stage's first
/// (2 × (blocks − 1) per stage at the stage's resolution), plus the first block's `conv1` of
/// stage 1 (64 → 64 on the stem's 112×112). Left out: the stem (3 → 64), the other stages' first
/// `conv1` (C/2 → C at twice the resolution) and the four stride-2 `conv2`. 41 of r50's 49 3×3
/// convolutions; stage 3 (256 channels, 14×14) has 26.
let iresnet50ConvolutionShapes: [(channels: Int, size: Int, count: Int)] = [
    (64, 112, 1), (64, 56, 4), (128, 28, 6), (256, 14, 26), (512, 7, 4),
]

/// The network (no input gradient), synthetic images and a random ∂embedding of one timed step.
private func profiledStep(_ family: BackboneFamily, n: Int) -> (any EmbeddingBackbone, Tensor, Tensor) {
    var generator = SeededGenerator(seed: 41)
    let network = makeEmbeddingBackbone(configuration: family.configuration, generator: &generator)
    network.computesInputGradient = false
    let c = family.configuration
    let images = syntheticImages(n: n, configuration: c, seed: 42)
    let embeddingGradient = Tensor(shape: [n, c.embeddingDimension],
                                   storage: randomFloats(n * c.embeddingDimension, seed: 43).map { $0 / Float(n) })
    return (network, images, embeddingGradient)
}

/// One time per top-level layer of a training step (forward, then backward in reverse order).
struct LayerProfileRow: Codable {
    var family: String, batchSize: Int, index: Int, layer: String
    var forward: Double, backward: Double
}

/// Times each top-level layer of `network.layers` (the stem, stages, heads) through one
/// training-mode forward and the backward from a random ∂embedding, medians over `repetitions`.
func profileBackbone(_ family: BackboneFamily, n: Int, warmup: Int, repetitions: Int) -> [LayerProfileRow] {
    let (network, images, embeddingGradient) = profiledStep(family, n: n)
    let layers = network.layers
    var forward = [[Double]](repeating: [], count: layers.count), backward = forward
    let clock = ContinuousClock()
    for repetition in 0..<(warmup + max(repetitions, 1)) {
        var x = images
        var caches: [any LayerCache] = []
        for (i, layer) in layers.enumerated() {
            let start = clock.now
            let (y, cache) = layer.forward(x, mode: .training)
            if repetition >= warmup { forward[i].append(seconds(clock.now - start)) }
            caches.append(cache)
            x = y
        }
        var g = embeddingGradient
        for i in layers.indices.reversed() {
            let start = clock.now
            g = layers[i].backward(g, cache: caches[i])
            if repetition >= warmup { backward[i].append(seconds(clock.now - start)) }
        }
        blackHole(Double(g.storage[0]))
    }
    return layers.indices.map { i in
        LayerProfileRow(family: family.name, batchSize: n, index: i, layer: describe(layers[i]),
                        forward: Timing(samples: forward[i]).median, backward: Timing(samples: backward[i]).median)
    }
}

/// A short label of a layer: its type and the name of its first parameter (`layer3.0.bn1.weight`).
func describe(_ layer: any Layer) -> String {
    let type = String(describing: Swift.type(of: layer))
    guard let first = layer.parameters.first?.name else { return type }
    return "\(type) \(first)"
}

/// One IResNet-50 convolution row: `Conv2D` C → C, 3×3, stride 1, padding 1 forward+backward
/// (with ∂x, as inside the network) against the GEMMs it issues, timed alternately.
struct BackboneConvolutionResult: Codable {
    var batchSize: Int, channels: Int, size: Int
    /// How many convolutions of this shape IResNet-50 has (weights of the weighted ratio).
    var count: Int
    var layer: Timing, gemms: Timing
    var ratio: Double
    /// The GEMMs' rate: 3 × 2·N·C·9C·H·W FLOPs (forward, ∂W, ∂columns) over their median.
    var gemmGFLOPs: Double
}

func benchmarkBackboneConvolution(n: Int, channels: Int, size: Int, count: Int, warmup: Int,
                                  repetitions: Int) -> BackboneConvolutionResult {
    var generator = SeededGenerator(seed: 51)
    let layer = Conv2D(inputChannels: channels, outputChannels: channels, kernelSize: 3, padding: 1,
                       name: "conv", generator: &generator)
    let g = layer.geometry(height: size, width: size)
    let spatial = g.outputHeight * g.outputWidth
    let input = Tensor(shape: [n, channels, size, size], storage: randomFloats(n * channels * size * size, seed: 52))
    let outputGradient = Tensor(shape: [n, channels, g.outputHeight, g.outputWidth],
                                storage: randomFloats(n * channels * spatial, seed: 53))
    let columns = randomFloats(g.patchSize * spatial, seed: 54), weight = layer.weight.value.storage
    var issuedOutput: [Float] = [], issuedScratch: [Float] = []
    let timings = measureAlternately(warmup: warmup, repetitions: repetitions, [{
        let (y, cache) = layer.forward(input, mode: .training)
        let dx = layer.backward(outputGradient, cache: cache)
        blackHole(Double(y.storage[0] + dx.storage[0]))
    }, {
        convolutionGEMMsOnly(batchSize: n, geometry: g, weight: weight, outputChannels: channels,
                             columns: columns, output: &issuedOutput, scratch: &issuedScratch)
        blackHole(Double(issuedOutput[0] + issuedScratch[0]))
    }])
    return BackboneConvolutionResult(batchSize: n, channels: channels, size: size, count: count, layer: timings[0],
                                     gemms: timings[1], ratio: timings[0].median / timings[1].median,
                                     gemmGFLOPs: 3 * 2 * Double(n * channels * g.patchSize * spatial) / timings[1].median / 1e9)
}

/// The time of one kind of leaf layer (3×3 conv, depthwise conv, BatchNorm2D, …) summed over a
/// training step, medians over the repetitions.
struct LayerKindProfileRow: Codable {
    var family: String, batchSize: Int, kind: String, count: Int
    var forward: Double, backward: Double
}

/// Runs one training step by hand through the network's tree (`Sequential`, `IResNetBlock`,
/// `MobileFaceNetDepthWise` opened up; the residual additions timed as their own kind) and
/// sums the forward and backward time of every leaf layer by kind.
func profileBackboneByKind(_ family: BackboneFamily, n: Int, warmup: Int, repetitions: Int) -> [LayerKindProfileRow] {
    let (network, images, embeddingGradient) = profiledStep(family, n: n)
    var forward: [String: [Double]] = [:], backward: [String: [Double]] = [:], counts: [String: Int] = [:]
    for repetition in 0..<(warmup + max(repetitions, 1)) {
        let profiler = KindProfiler()
        var caches: [any LayerCache] = []
        var x = images
        for layer in network.layers {
            let (y, cache) = profiler.forward(layer, x)
            caches.append(cache)
            x = y
        }
        var g = embeddingGradient
        for (layer, cache) in zip(network.layers, caches).reversed() { g = profiler.backward(layer, g, cache) }
        blackHole(Double(g.storage[0]))
        guard repetition >= warmup else { continue }
        for (kind, time) in profiler.forward { forward[kind, default: []].append(time) }
        for (kind, time) in profiler.backward { backward[kind, default: []].append(time) }
        counts = profiler.counts
    }
    return counts.keys.sorted().map { kind in
        LayerKindProfileRow(family: family.name, batchSize: n, kind: kind, count: counts[kind]!,
                            forward: Timing(samples: forward[kind] ?? [0]).median,
                            backward: Timing(samples: backward[kind] ?? [0]).median)
    }
}

/// Times leaf layers by kind through one forward and backward pass.
final class KindProfiler {
    var forward: [String: Double] = [:], backward: [String: Double] = [:], counts: [String: Int] = [:]
    private let clock = ContinuousClock()

    struct Node: LayerCache {
        var children: [any LayerCache]
    }

    static func kind(of layer: any Layer) -> String {
        if let conv = layer as? Conv2D {
            let shape = "\(conv.kernelSize)×\(conv.kernelSize)" + (conv.stride > 1 ? " s\(conv.stride)" : "")
            if conv.groups > 1 && conv.groups == conv.inputChannels { return "Conv2D depthwise \(shape)" }
            if conv.groups > 1 { return "Conv2D grouped \(shape)" }
            return "Conv2D \(shape)"
        }
        return String(describing: type(of: layer))
    }

    private func timed<T>(_ kind: String, forward isForward: Bool, _ body: () -> T) -> T {
        let start = clock.now
        let result = body()
        let time = seconds(clock.now - start)
        if isForward {
            forward[kind, default: 0] += time
            counts[kind, default: 0] += 1
        } else {
            backward[kind, default: 0] += time
        }
        return result
    }

    func forward(_ layer: any Layer, _ x: Tensor) -> (Tensor, any LayerCache) {
        switch layer {
        case let sequential as Sequential:
            var h = x
            var caches: [any LayerCache] = []
            for child in sequential.layers {
                let (y, cache) = forward(child, h)
                caches.append(cache)
                h = y
            }
            return (h, Node(children: caches))
        case let block as IResNetBlock:
            var (y, main) = forward(block.main, x)
            if let downsample = block.downsample {
                let (s, cache) = forward(downsample, x)
                timed("residual add", forward: true) { y += s }
                return (y, Node(children: [main, cache]))
            }
            timed("residual add", forward: true) { y += x }
            return (y, Node(children: [main]))
        case let block as MobileFaceNetDepthWise:
            var (y, body) = forward(block.body, x)
            if block.residual { timed("residual add", forward: true) { y += x } }
            return (y, Node(children: [body]))
        default:
            return timed(Self.kind(of: layer), forward: true) { layer.forward(x, mode: .training) }
        }
    }

    func backward(_ layer: any Layer, _ g: Tensor, _ cache: any LayerCache) -> Tensor {
        switch layer {
        case let sequential as Sequential:
            let node = cache as! Node
            var h = g
            for (child, childCache) in zip(sequential.layers, node.children).reversed() { h = backward(child, h, childCache) }
            return h
        case let block as IResNetBlock:
            let node = cache as! Node
            var dx = backward(block.main, g, node.children[0])
            if let downsample = block.downsample {
                let s = backward(downsample, g, node.children[1])
                timed("residual add", forward: false) { dx += s }
            } else {
                timed("residual add", forward: false) { dx += g }
            }
            return dx
        case let block as MobileFaceNetDepthWise:
            var dx = backward(block.body, g, (cache as! Node).children[0])
            if block.residual { timed("residual add", forward: false) { dx += g } }
            return dx
        default:
            return timed(Self.kind(of: layer), forward: false) { layer.backward(g, cache: cache) }
        }
    }
}
