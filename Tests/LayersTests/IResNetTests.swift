// IResNet (arcface_torch's iresnet.py): the block and a reduced network against Double
// references by finite differences (the harness of DoubleReferenceTests), the fixed-weight
// feature BatchNorm, and the four depths' parameter counts and state_dict keys against
// scripts/arcface_torch_keys.py's fixture (ArcFaceTorchKeys.swift).
import Testing
import Layers
import TensorCore
import _TestSupport

enum IResNetReference {
    /// bn1 → conv1 3×3 → bn2 → prelu → conv2 3×3 stride s → bn3, plus the identity or
    /// downsample (conv1×1 stride s → BN); `theta` in the block's parameter order
    /// (bn1 γ β, conv1, bn2 γ β, prelu, conv2, bn3 γ β[, downsample.0, downsample.1 γ β]).
    static func block(_ x: [Double], _ theta: ArraySlice<[Double]>, kinks: Kinks,
                      n: Int, cin: Int, cout: Int, h: Int, w: Int, stride: Int) -> (y: [Double], h: Int, w: Int) {
        let t = Array(theta)
        var a = Reference.batchNorm(x, outer: n, channels: cin, inner: h * w, gamma: t[0], beta: t[1])
        a = Reference.conv2D(a, n: n, cin: cin, h: h, w: w, weight: t[2], bias: nil, cout: cout, k: 3, stride: 1, padding: 1).y
        a = Reference.batchNorm(a, outer: n, channels: cout, inner: h * w, gamma: t[3], beta: t[4])
        a = Reference.prelu(a, outer: n, channels: cout, inner: h * w, slopes: t[5], kinks: kinks)
        let (b, ho, wo) = Reference.conv2D(a, n: n, cin: cout, h: h, w: w, weight: t[6], bias: nil, cout: cout,
                                           k: 3, stride: stride, padding: 1)
        let main = Reference.batchNorm(b, outer: n, channels: cout, inner: ho * wo, gamma: t[7], beta: t[8])
        var shortcut = x
        if t.count > 9 {
            shortcut = Reference.conv2D(x, n: n, cin: cin, h: h, w: w, weight: t[9], bias: nil, cout: cout,
                                        k: 1, stride: stride, padding: 0).y
            shortcut = Reference.batchNorm(shortcut, outer: n, channels: cout, inner: ho * wo, gamma: t[10], beta: t[11])
        }
        return (zip(main, shortcut).map { $0 + $1 }, ho, wo)
    }
}

@Suite struct IResNetBlockTests {
    @Test("IResNetBlock matches a Double reference: 4→8 stride 2 with downsample, and 4→4 identity",
          arguments: [(4, 8, 2, 31 as UInt64), (4, 4, 1, 41)])
    func block(cin: Int, cout: Int, stride: Int, seed: UInt64) {
        var generator = SeededGenerator(seed: seed)
        let block = IResNetBlock(inputChannels: cin, outputChannels: cout, stride: stride, name: "layer1.0", generator: &generator)
        randomizeAffine(block, seed: seed + 1)
        let expectedNames = ["bn1.weight", "bn1.bias", "conv1.weight", "bn2.weight", "bn2.bias", "prelu.weight",
                             "conv2.weight", "bn3.weight", "bn3.bias"]
            + (stride == 2 ? ["downsample.0.weight", "downsample.1.weight", "downsample.1.bias"] : [])
        #expect(block.parameters.map(\.name) == expectedNames.map { "layer1.0." + $0 })
        #expect((block.downsample == nil) == (stride == 1 && cin == cout))
        let n = 2, h = 4, w = 4
        let input = distinctValues([n, cin, h, w], seed: seed + 2)
        #expect(block.forward(input, mode: .training).output.shape == [n, cout, h / stride, w / stride])
        let result = checkAgainstDouble("IResNetBlock \(cin)→\(cout) s\(stride)", block, input: input,
                                        forwardTolerance: (5e-5, 5e-4)) { x, theta, kinks in
            IResNetReference.block(x, theta[...], kinks: kinks, n: n, cin: cin, cout: cout, h: h, w: w, stride: stride).y
        }
        #expect(result.passed, "\(result)")
        #expect(result.vanishingGradients == [], "gradients identically zero: \(result.vanishingGradients)")
        #expect(result.kinkMargin >= DoubleReferenceTests.minimumKinkMargin, "PReLU input too close to 0: \(result.kinkMargin)")
    }

    @Test("the feature BatchNorm1D with a fixed weight: γ is a buffer read from its value, not a parameter; backward by Double FD")
    func fixedWeightFeatures() {
        let bn = BatchNorm1D(channels: 3, trainsWeight: false, name: "features")
        #expect(bn.parameters.map(\.name) == ["features.bias"])
        #expect(bn.buffers.map(\.name) == ["features.weight", "features.running_mean", "features.running_var"])
        #expect(bn.fixedWeight?.value.storage == [1, 1, 1])
        // A loaded γ ≠ 1 is what normalizes (as a state_dict's features.weight would be).
        let gamma: [Float] = [1.5, 0.5, 2]
        bn.fixedWeight?.value.storage = gamma
        bn.bias.value.storage = [0.1, -0.2, 0.3]
        let result = checkAgainstDouble("BatchNorm1D fixed γ", bn, input: distinctValues([4, 3], seed: 51)) { x, theta, _ in
            Reference.batchNorm(x, outer: 4, channels: 3, inner: 1, gamma: gamma.map(Double.init), beta: theta[0])
        }
        #expect(result.passed, "\(result)")
        #expect(bn.weight.gradient.storage == [0, 0, 0], "the fixed γ must get no gradient")
        #expect(bn.fixedWeight?.value.storage == gamma)
        let trained = BatchNorm1D(channels: 3, name: "features")
        #expect(trained.parameters.map(\.name) == ["features.weight", "features.bias"])
        #expect(trained.fixedWeight == nil)
    }
}

@Suite struct IResNetTests {
    /// stem 1→2 on 8×8, layer1 (1 block, 2 ch, 8→4), layer2 (2 blocks, 3 ch, 4→2), fc 12 → 3.
    static let reduced = IResNetArchitecture(inputChannels: 1, inputHeight: 8, inputWidth: 8, stemChannels: 2,
                                             stageChannels: [2, 3], blocks: [1, 2], embeddingDimension: 3)

    @Test("a reduced IResNet (forward and backward of every parameter) matches a Double reference")
    func reducedNetwork() {
        var generator = SeededGenerator(seed: 61)
        let net = IResNet(architecture: Self.reduced, generator: &generator)
        randomizeAffine(net, seed: 62)
        #expect(net.parameterCount == Self.reduced.parameterCount)
        let names = net.parameters.map(\.name)
        #expect(names.prefix(4) == ["conv1.weight", "bn1.weight", "bn1.bias", "prelu.weight"])
        #expect(names.suffix(4) == ["bn2.bias", "fc.weight", "fc.bias", "features.bias"])
        let n = 3
        let input = distinctValues([n, 1, 8, 8], seed: 63)
        let result = checkAgainstDouble("reduced IResNet", net, input: input, forwardTolerance: (1e-4, 1e-3),
                                        gradientTolerance: (2e-4, 2e-3)) { x, theta, kinks in
            var a = Reference.conv2D(x, n: n, cin: 1, h: 8, w: 8, weight: theta[0], bias: nil, cout: 2, k: 3, stride: 1, padding: 1).y
            a = Reference.batchNorm(a, outer: n, channels: 2, inner: 64, gamma: theta[1], beta: theta[2])
            a = Reference.prelu(a, outer: n, channels: 2, inner: 64, slopes: theta[3], kinks: kinks)
            var t = 4, c = 2, h = 8, w = 8
            for (channels, blocks) in [(2, 1), (3, 2)] {
                for index in 0..<blocks {
                    let count = index == 0 ? 12 : 9
                    (a, h, w) = IResNetReference.block(a, theta[t..<(t + count)], kinks: kinks, n: n, cin: c, cout: channels,
                                                       h: h, w: w, stride: index == 0 ? 2 : 1)
                    t += count
                    c = channels
                }
            }
            a = Reference.batchNorm(a, outer: n, channels: c, inner: h * w, gamma: theta[t], beta: theta[t + 1])
            // Flatten (channel-first, the row-major storage) and dropout 0 are identities.
            a = Reference.linear(a, n: n, inputs: c * h * w, outputs: 3, weight: theta[t + 2], bias: theta[t + 3])
            return Reference.batchNorm(a, outer: n, channels: 3, inner: 1, gamma: [1, 1, 1], beta: theta[t + 4])
        }
        #expect(result.passed, "\(result)")
        // Behind the feature BatchNorm the fc bias shifts every row alike: its gradient is exactly 0.
        // A per-channel constant added to a block's output (bn3's and downsample.1's β) reaches the
        // loss only through BatchNorms (the next block's bn1 and, along the identities, bn2), which
        // remove it; the fc bias shifts every row alike before the feature BatchNorm. Their
        // gradients are exactly 0, in arcface_torch as here.
        #expect(result.vanishingGradients == ["layer1.0.bn3.bias", "layer1.0.downsample.1.bias", "layer2.0.bn3.bias",
                                              "layer2.0.downsample.1.bias", "layer2.1.bn3.bias", "bn2.bias", "fc.bias"],
                "gradients identically zero: \(result.vanishingGradients)")
        #expect(result.kinkMargin >= DoubleReferenceTests.minimumKinkMargin, "PReLU input too close to 0: \(result.kinkMargin)")
    }

    @Test("computesInputGradient = false skips the image gradient and keeps the parameter gradients")
    func inputGradientSwitch() {
        var generator = SeededGenerator(seed: 71)
        let net = IResNet(architecture: Self.reduced, generator: &generator)
        let x = Tensor(shape: [2, 1, 8, 8], storage: randomArray(128, seed: 72))
        let (y, cache) = net.forward(x, mode: .training)
        let g = Tensor(shape: y.shape, storage: randomArray(y.count, seed: 73))
        let dx = net.backward(g, cache: cache)
        let reference = net.parameters.map(\.gradient)
        for p in net.parameters { p.zeroGradient() }
        net.computesInputGradient = false
        let (_, cache2) = net.forward(x, mode: .training)
        let zeros = net.backward(g, cache: cache2)
        #expect(dx.storage.contains { $0 != 0 })
        #expect(zeros.shape == x.shape && zeros.storage.allSatisfy { $0 == 0 })
        #expect(net.parameters.map(\.gradient) == reference)
    }

    /// arcface_torch's widths → the narrow stand-ins of `narrow(depth:)` (input 3, kernels 3 and 1 stay).
    static let narrowWidths = [64: 1, 128: 2, 256: 5, 512: 4, 25_088: 4, 3: 3, 1: 1]

    /// An IResNet with the blocks of `depth` but 1/2/5/4 channels, a 16×16 input (1×1 after the
    /// stages) and D = 4: the same tensor names as arcface_torch's, tiny tensors (building the
    /// real widths draws 24–65 M weights, minutes in a debug build).
    static func narrow(depth: Int) -> IResNetArchitecture {
        IResNetArchitecture(inputChannels: 3, inputHeight: 16, inputWidth: 16, stemChannels: 1, stageChannels: [1, 2, 5, 4],
                            blocks: IResNetArchitecture.blocks(depth: depth)!, embeddingDimension: 4)
    }

    @Test("IResNet-18/34/50/100: state_dict keys equal arcface_torch's, shapes with the widths substituted; parameter counts",
          arguments: [18, 34, 50, 100])
    func arcfaceTorchDepths(depth: Int) throws {
        var generator = SeededGenerator(seed: 1)
        let net = IResNet(architecture: Self.narrow(depth: depth), generator: &generator)
        let keys = try #require(ArcFaceTorchKeys.stateDictionaries["r\(depth)"])
        let theirs = Dictionary(uniqueKeysWithValues: keys.filter { !$0.key.hasSuffix(".num_batches_tracked") }.map {
            ($0.key, $0.shape.map { Self.narrowWidths[$0] ?? -$0 })
        })
        let ours = net.parameters.map { ($0.name, $0.value.shape) } + net.buffers.map { ($0.name, $0.value.shape) }
        #expect(ours.count == theirs.count)
        #expect(Dictionary(ours, uniquingKeysWith: { a, _ in a }) == theirs)
        #expect(!net.parameters.contains { $0.name == "features.weight" })
        #expect(net.buffers.contains { $0.name == "features.weight" })
        #expect(net.layers.count == 12)   // conv1 bn1 prelu layer1…4 bn2 flatten dropout fc features
        #expect(net.parameterCount == Self.narrow(depth: depth).parameterCount)
        // The real widths: the closed formula and the configuration's tally against arcface_torch's count.
        let expected = try #require(ArcFaceTorchKeys.trainableParameterCounts["r\(depth)"])
        #expect(IResNetArchitecture(depth: depth).parameterCount == expected)
        #expect(BackboneConfiguration(kind: .iresnet, depth: depth).parameterCountEstimate == Double(expected))
        #expect(IResNetArchitecture(depth: depth).flattenedFeatureCount == 512 * 7 * 7)
    }

    @Test("a 112×112 RGB input reaches 7×7 after the four stages and gives [N, 512] embeddings (narrow channels)")
    func fullSizeInput() {
        let architecture = IResNetArchitecture(inputChannels: 3, inputHeight: 112, inputWidth: 112, stemChannels: 1,
                                               stageChannels: [1, 1, 1, 2], blocks: [1, 1, 1, 1], embeddingDimension: 512)
        #expect(architecture.stageOutputSizes.map { [$0.height, $0.width] } == [[56, 56], [28, 28], [14, 14], [7, 7]])
        #expect(architecture.flattenedFeatureCount == 2 * 7 * 7)
        var generator = SeededGenerator(seed: 2)
        let net = IResNet(architecture: architecture, generator: &generator)
        let x = Tensor(shape: [2, 3, 112, 112], storage: randomArray(2 * 3 * 112 * 112, seed: 3))
        let training = net.forward(x, mode: .training).output
        #expect(training.shape == [2, 512] && training.isFinite)
        let inference = net.forward(Tensor(shape: [1, 3, 112, 112], storage: Array(x.storage.prefix(3 * 112 * 112))),
                                    mode: .inference).output
        #expect(inference.shape == [1, 512] && inference.isFinite)
    }

    @Test("the configuration builds an IResNet with arcface_torch's defaults and names")
    func fromConfiguration() {
        var configuration = BackboneConfiguration(kind: .iresnet, depth: 18)
        #expect([configuration.inputChannels, configuration.inputHeight, configuration.inputWidth, configuration.embeddingDimension]
                 == [3, 112, 112, 512])
        #expect(configuration.dropout == 0 && configuration.familyProblems.isEmpty)
        #expect(IResNetArchitecture(configuration: configuration) == IResNetArchitecture(depth: 18))
        configuration.inputWidth = 96
        #expect(configuration.familyProblems.count == 1)
        configuration.depth = 20
        #expect(configuration.familyProblems.count == 2)
    }

    @Test("a reduced IResNet trains a batch: [N, D] out, finite, every parameter gets a gradient")
    func reducedTrainingStep() {
        var generator = SeededGenerator(seed: 81)
        let net = IResNet(architecture: Self.reduced, generator: &generator)
        let (y, cache) = net.forward(Tensor(shape: [4, 1, 8, 8], storage: randomArray(256, seed: 82)), mode: .training)
        #expect(y.shape == [4, 3])
        _ = net.backward(Tensor(shape: y.shape, storage: randomArray(12, seed: 83)), cache: cache)
        let silent = net.parameters.filter { $0.gradient.storage.allSatisfy { abs($0) < 1e-5 } }.map(\.name)
        // Zero up to round-off behind BatchNorms (see reducedNetwork).
        #expect(silent == ["layer1.0.bn3.bias", "layer1.0.downsample.1.bias", "layer2.0.bn3.bias",
                           "layer2.0.downsample.1.bias", "layer2.1.bn3.bias", "bn2.bias", "fc.bias"])
        #expect(net.features.runningMean.value.storage.contains { $0 != 0 })
    }
}

@Suite struct IResNetMemoryTests {
    /// 1×2×2 input, stem 1 channel, one stage of 2 channels with one block, D = 1; batch 1,
    /// one worker, training. Layer by layer (output + input gradient per image; scratch
    /// 2·k²·Cin·Ho·Wo + weight partial):
    /// ```
    ///                      params  buffers  per image      scratch
    /// conv1 1→1 3×3 2×2      9               4 + 4          2·9·4 + 9  = 81
    /// bn1 (1) 2×2            2       2       2·4
    /// prelu (1) 2×2          1               2·4
    /// block bn1 (1)          2       2       2·4
    ///   conv1 1→2 3×3       18               8 + 4          2·9·4 + 18 = 90
    ///   bn2 (2) 2×2          4       4       2·8
    ///   prelu (2)            2               2·8
    ///   conv2 2→2 s2 → 1×1  36               2 + 8          2·9·2 + 36 = 72
    ///   bn3 (2) 1×1          4       4       2·2
    ///   downsample.0 1×1 s2  2               2 + 4          2·1·1 + 2  = 4
    ///   downsample.1 (2)     4       4       2·2
    ///   sum                                  2·2
    /// bn2 (2) 1×1            4       4       2·2
    /// dropout F = 2                          3·2
    /// fc 2→1 + bias          3               1 + 2
    /// features (γ fixed)     1       3       2·1
    /// total                 92      23      119            247
    /// ```
    /// Bytes: 4·(3·92 + 23 + 1·(119 + 2·4 image and mirror) + 247) = 4·673 = 2692.
    @Test("the IResNet memory tally equals a hand computation for a small network")
    func handComputation() {
        let architecture = IResNetArchitecture(inputChannels: 1, inputHeight: 2, inputWidth: 2, stemChannels: 1,
                                               stageChannels: [2], blocks: [1], embeddingDimension: 1)
        let tally = architecture.memoryTally(training: true, workers: 1)
        #expect(tally.parameterFloats == 92)
        #expect(tally.bufferFloats == 23)
        #expect(tally.perImageFloats == 119)
        #expect(tally.scratchFloats == 247)
        #expect(tally.bytes(batchSize: 1, inputFloats: 4) == 2692)
        var generator = SeededGenerator(seed: 1)
        let net = IResNet(architecture: architecture, generator: &generator)
        #expect(Double(net.parameterCount) == tally.parameterFloats)
        #expect(Double(net.buffers.reduce(0) { $0 + $1.value.count }) == tally.bufferFloats)
        #expect(architecture.parameterCount == 92)
        // Inference: no input gradients, no ×3 on the parameters.
        let inference = architecture.memoryTally(training: false, workers: 1)
        #expect(inference.perImageFloats == 4 + 4 + 4 + 4 + 8 + 8 + 8 + 2 + 2 + 2 + 2 + 2 + 2 + 1 + 1)
    }

    @Test("the configuration's estimate uses the family tally: r100 needs more than r50, both above 3× their parameters")
    func configurationEstimate() {
        let r50 = BackboneConfiguration(kind: .iresnet, depth: 50), r100 = BackboneConfiguration(kind: .iresnet, depth: 100)
        let bytes50 = r50.memoryBytesEstimate(batchSize: 8, training: true, processorCount: 2)
        let bytes100 = r100.memoryBytesEstimate(batchSize: 8, training: true, processorCount: 2)
        #expect(bytes100 > bytes50)
        #expect(Double(bytes50) > 12 * r50.parameterCountEstimate)
        let tally = IResNetArchitecture(depth: 50).memoryTally(training: true, workers: 2)
        #expect(Double(bytes50) == tally.bytes(batchSize: 8, inputFloats: 3 * 112 * 112).rounded(.down))
        #expect(r50.memoryBytesEstimate(batchSize: 8, training: false, processorCount: 2) < bytes50)
        #expect(throws: BackboneMemoryError.self) { try r100.checkMemory(batchSize: 4096, training: true, availableBytes: 1 << 33) }
    }
}
