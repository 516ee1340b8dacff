// MobileFaceNet (arcface_torch's mobilefacenet.py, get_mbf): the DepthWise block against a Double
// reference by finite differences (grouped convolution reference of GroupedConvolutionTests), and
// the whole network's parameter count, state_dict keys and shapes against
// scripts/arcface_torch_keys.py's fixture, its output shape and its memory tally.
import Testing
import Layers
import TensorCore
import _TestSupport

/// BatchNorm γ around 1 and β ~ 𝒩(0, 0.5²), PReLU slopes distinct in [0.1, 0.4], by the
/// arcface_torch names (`….layers.1.weight/bias` a BatchNorm, a `[C]` `….layers.2.weight` a PReLU).
func randomizeMobileFaceNetAffine(_ layer: any Layer, seed: UInt64) {
    for (k, p) in layer.parameters.enumerated() where p.value.rank == 1 {
        let s = seed + UInt64(k)
        if p.name.hasSuffix("layers.1.weight") {
            p.value.storage = randomArray(p.value.count, seed: s, standardDeviation: 0.3).map { 1 + $0 }
        } else if p.name.hasSuffix("layers.1.bias") {
            p.value.storage = randomArray(p.value.count, seed: s, standardDeviation: 0.5)
        } else if p.name.hasSuffix("layers.2.weight") {
            p.value.storage = (0..<p.value.count).map { 0.1 + 0.3 * Float($0 + 1) / Float(p.value.count + 1) }
        }
    }
}

@Suite struct MobileFaceNetTests {
    /// conv1×1 → BN → PReLU → depthwise 3×3 (stride) → BN → PReLU → conv1×1 → BN (+ x).
    static func depthwiseReference(_ x: [Double], _ t: [[Double]], kinks: Kinks, n: Int, cin: Int, expansion e: Int,
                                   cout: Int, h: Int, w: Int, stride: Int, residual: Bool) -> [Double] {
        var a = Reference.groupedConv2D(x, n: n, cin: cin, h: h, w: w, weight: t[0], bias: nil, cout: e, groups: 1,
                                        k: 1, stride: 1, padding: 0).y
        a = Reference.batchNorm(a, outer: n, channels: e, inner: h * w, gamma: t[1], beta: t[2])
        a = Reference.prelu(a, outer: n, channels: e, inner: h * w, slopes: t[3], kinks: kinks)
        let (b, ho, wo) = Reference.groupedConv2D(a, n: n, cin: e, h: h, w: w, weight: t[4], bias: nil, cout: e, groups: e,
                                                  k: 3, stride: stride, padding: 1)
        a = Reference.batchNorm(b, outer: n, channels: e, inner: ho * wo, gamma: t[5], beta: t[6])
        a = Reference.prelu(a, outer: n, channels: e, inner: ho * wo, slopes: t[7], kinks: kinks)
        a = Reference.groupedConv2D(a, n: n, cin: e, h: ho, w: wo, weight: t[8], bias: nil, cout: cout, groups: 1,
                                    k: 1, stride: 1, padding: 0).y
        a = Reference.batchNorm(a, outer: n, channels: cout, inner: ho * wo, gamma: t[9], beta: t[10])
        return residual ? zip(a, x).map { $0 + $1 } : a
    }

    @Test("MobileFaceNetDepthWise matches a Double reference: residual 3→3 (expansion 4), and 3→5 stride 2",
          arguments: [(3, 3, 1, true, 11 as UInt64), (3, 5, 2, false, 21)])
    func depthwise(cin: Int, cout: Int, stride: Int, residual: Bool, seed: UInt64) {
        var generator = SeededGenerator(seed: seed)
        let block = MobileFaceNetDepthWise(inputChannels: cin, outputChannels: cout, expansion: 4, stride: stride,
                                           residual: residual, name: "layers.2", generator: &generator)
        randomizeMobileFaceNetAffine(block, seed: seed + 1)
        #expect(block.parameters.map(\.name) == [
            "layers.2.layers.0.layers.0.weight", "layers.2.layers.0.layers.1.weight", "layers.2.layers.0.layers.1.bias",
            "layers.2.layers.0.layers.2.weight", "layers.2.layers.1.layers.0.weight", "layers.2.layers.1.layers.1.weight",
            "layers.2.layers.1.layers.1.bias", "layers.2.layers.1.layers.2.weight", "layers.2.layers.2.layers.0.weight",
            "layers.2.layers.2.layers.1.weight", "layers.2.layers.2.layers.1.bias"])
        #expect(block.parameters[4].value.shape == [4, 1, 3, 3])   // depthwise: [C, 1, k, k]
        let n = 2, h = 5, w = 4
        let input = distinctValues([n, cin, h, w], seed: seed + 2)
        let result = checkAgainstDouble("DepthWise \(cin)→\(cout) s\(stride)", block, input: input,
                                        forwardTolerance: (5e-5, 5e-4)) { x, theta, kinks in
            Self.depthwiseReference(x, theta, kinks: kinks, n: n, cin: cin, expansion: 4, cout: cout, h: h, w: w,
                                    stride: stride, residual: residual)
        }
        #expect(result.passed, "\(result)")
        #expect(result.vanishingGradients == [], "gradients identically zero: \(result.vanishingGradients)")
        #expect(result.kinkMargin >= DoubleReferenceTests.minimumKinkMargin, "PReLU input too close to 0: \(result.kinkMargin)")
    }

    @Test("get_mbf: trainable parameters, state_dict keys and shapes equal arcface_torch's; [N, 512] out; memory tally")
    func arcfaceTorch() throws {
        let configuration = BackboneConfiguration(kind: .mobilefacenet)
        var generator = SeededGenerator(seed: 3)
        let net = makeEmbeddingBackbone(configuration: configuration, generator: &generator)
        let expected = try #require(ArcFaceTorchKeys.trainableParameterCounts["mbf"])
        #expect(net.parameterCount == expected)
        #expect(MobileFaceNetArchitecture().parameterCount == expected)
        #expect(configuration.parameterCountEstimate == Double(expected))
        let keys = try #require(ArcFaceTorchKeys.stateDictionaries["mbf"])
        let theirs = Dictionary(uniqueKeysWithValues: keys.filter { !$0.key.hasSuffix(".num_batches_tracked") }.map { ($0.key, $0.shape) })
        let ours = net.parameters.map { ($0.name, $0.value.shape) } + net.buffers.map { ($0.name, $0.value.shape) }
        #expect(ours.count == theirs.count)
        #expect(Dictionary(ours, uniquingKeysWith: { a, _ in a }) == theirs)
        #expect(net.layers.count == 13)   // layers.0…7, conv_sep, features.layers.0, flatten, .2, .3
        #expect(net.configuration == configuration)
        let tally = MobileFaceNetArchitecture().memoryTally(training: true, workers: 1)
        #expect(tally.bufferFloats == Double(net.buffers.reduce(0) { $0 + $1.value.count }))
        let x = Tensor(shape: [2, 3, 112, 112], storage: randomArray(2 * 3 * 112 * 112, seed: 4))
        let y = net.forward(x, mode: .training).output
        #expect(y.shape == [2, 512] && y.isFinite)
    }

    @Test("get_mbf_large and other blocks / scale: parameter count, state_dict keys and shapes equal arcface_torch's",
          arguments: [("mbf_large", [2, 8, 12, 4], 4), ("mbf_s1_b2111", [2, 1, 1, 1], 1), ("mbf", [1, 4, 6, 2], 2)])
    func widthAndDepth(fixture: String, blocks: [Int], scale: Int) throws {
        let configuration = BackboneConfiguration.mobileFaceNet(blocks: blocks, scale: scale)
        #expect(configuration.familyProblems.isEmpty)
        var generator = SeededGenerator(seed: 5)
        let net = makeEmbeddingBackbone(configuration: configuration, generator: &generator)
        let expected = try #require(ArcFaceTorchKeys.trainableParameterCounts[fixture])
        #expect(net.parameterCount == expected)
        #expect(MobileFaceNetArchitecture(blocks: blocks, scale: scale).parameterCount == expected)
        #expect(configuration.parameterCountEstimate == Double(expected))
        let keys = try #require(ArcFaceTorchKeys.stateDictionaries[fixture])
        let theirs = Dictionary(uniqueKeysWithValues: keys.filter { !$0.key.hasSuffix(".num_batches_tracked") }.map { ($0.key, $0.shape) })
        let ours = net.parameters.map { ($0.name, $0.value.shape) } + net.buffers.map { ($0.name, $0.value.shape) }
        #expect(ours.count == theirs.count)
        #expect(Dictionary(ours, uniquingKeysWith: { a, _ in a }) == theirs)
        #expect(net.configuration == configuration)
        let tally = try #require(configuration.mobileFaceNetArchitecture).memoryTally(training: true, workers: 1)
        #expect(tally.bufferFloats == Double(net.buffers.reduce(0) { $0 + $1.value.count }))
    }
}
