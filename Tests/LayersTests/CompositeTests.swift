import Foundation
import Testing
import Layers
import TensorCore
import _TestSupport

@Suite struct SequentialTests {
    @Test("conv → BN → PReLU → pool → flatten → linear → BN1D backward matches finite differences")
    func gradients() {
        var generator = SeededGenerator(seed: 60)
        let network = Sequential([
            Conv2D(inputChannels: 2, outputChannels: 3, kernelSize: 3, padding: 1, name: "conv", generator: &generator),
            BatchNorm2D(channels: 3, name: "bn"),
            PReLU(channels: 3, name: "prelu"),
            MaxPool2D(),
            Flatten(),
            Linear(inputFeatures: 3 * 2 * 2, outputFeatures: 4, name: "fc", generator: &generator),
            BatchNorm1D(channels: 4, name: "features"),
        ])
        let x = Tensor(shape: [3, 2, 4, 5], storage: randomArray(120, seed: 61))
        let report = checkGradients(network, input: x, step: 1e-3, atol: 3e-3, rtol: 1e-2)
        #expect(report.passed, "\(report)")
        #expect(network.parameters.count == 8 && network.buffers.count == 4)
    }
}

@Suite struct ResidualBlockTests {
    @Test("backward matches finite differences (identity and projection shortcuts)", arguments: [2, 3])
    func gradients(outputChannels: Int) {
        var generator = SeededGenerator(seed: 70)
        let block = ResidualBlock(inputChannels: 2, outputChannels: outputChannels, name: "block", generator: &generator)
        #expect((block.shortcut == nil) == (outputChannels == 2))
        let x = Tensor(shape: [2, 2, 4, 3], storage: randomArray(48, seed: 71))
        let report = checkGradients(block, input: x, step: 1e-3, atol: 3e-3, rtol: 1e-2)
        #expect(report.passed, "\(report)")
    }

    @Test("the identity shortcut adds the input: a zeroed main path returns x")
    func identityShortcut() {
        var generator = SeededGenerator(seed: 72)
        let block = ResidualBlock(inputChannels: 2, outputChannels: 2, name: "block", generator: &generator)
        // γ = 0 in the last BN makes main(x) = β = 0.
        (block.main.layers[4] as? BatchNorm2D)?.weight.value.storage = [0, 0]
        let x = Tensor(shape: [2, 2, 3, 3], storage: randomArray(36, seed: 73))
        #expect(block.forward(x, mode: .training).output == x)
    }
}

@Suite struct AccumulationTests {
    @Test("two backward calls accumulate twice the gradient of one")
    func accumulates() {
        var generator = SeededGenerator(seed: 80)
        let cases: [(any Layer, Tensor)] = [
            (Conv2D(inputChannels: 2, outputChannels: 3, kernelSize: 3, padding: 1, bias: true, name: "conv",
                    generator: &generator), Tensor(shape: [2, 2, 4, 4], storage: randomArray(64, seed: 81))),
            (BatchNorm2D(channels: 2, name: "bn"), Tensor(shape: [2, 2, 3, 3], storage: randomArray(36, seed: 82))),
            (BatchNorm1D(channels: 3, name: "bn1"), Tensor(shape: [4, 3], storage: randomArray(12, seed: 83))),
            (PReLU(channels: 2, name: "prelu"), Tensor(shape: [2, 2, 3, 3], storage: randomArray(36, seed: 84))),
            (Linear(inputFeatures: 4, outputFeatures: 3, name: "fc", generator: &generator),
             Tensor(shape: [2, 4], storage: randomArray(8, seed: 85))),
            (ResidualBlock(inputChannels: 1, outputChannels: 2, name: "block", generator: &generator),
             Tensor(shape: [2, 1, 3, 3], storage: randomArray(18, seed: 86))),
        ]
        for (layer, x) in cases {
            let (y, cache) = layer.forward(x, mode: .training)
            let g = Tensor(shape: y.shape, storage: randomArray(y.count, seed: 87))
            for p in layer.parameters { p.zeroGradient() }
            let dx1 = layer.backward(g, cache: cache)
            let once = layer.parameters.map(\.gradient.storage)
            let dx2 = layer.backward(g, cache: cache)
            #expect(dx1 == dx2, "input gradient must not depend on accumulated state")
            for (p, single) in zip(layer.parameters, once) {
                let result = compare(p.gradient.storage, single.map { 2 * Double($0) }, atol: 1e-6, rtol: 1e-5,
                                     label: p.name)
                #expect(result.passed, "\(result)")
                #expect(single.contains { $0 != 0 }, "\(p.name): gradient is all zero")
            }
        }
    }

    @Test("backward with another layer's cache traps")
    func cacheMismatchTraps() async {
        await #expect(processExitsWith: .failure) {
            var generator = SeededGenerator(seed: 1)
            let linear = Linear(inputFeatures: 2, outputFeatures: 2, name: "fc", generator: &generator)
            let (_, reluCache) = ReLU().forward(Tensor(shape: [1, 2]), mode: .training)
            _ = linear.backward(Tensor(shape: [1, 2]), cache: reluCache)
        }
    }
}

@Suite struct BackboneTests {
    @Test("default backbone: [N, 128] embeddings, 671,456 parameters, unique names")
    func defaultShape() {
        let backbone = Backbone(seed: 1)
        // conv 16·1·9 + BN 32 + PReLU 16 = 192; 32·16·9 + 64 + 32 = 4704; 64·32·9 + 128 + 64 = 18,624;
        // 128·64·9 + 256 + 128 = 74,112; Linear 4480·128 + 128 = 573,568; BN1D 256. Total 671,456.
        #expect(backbone.parameterCount == 671_456)
        #expect(backbone.configuration.flattenedFeatureCount == 4480)
        let names = backbone.parameters.map(\.name) + backbone.buffers.map(\.name)
        #expect(Set(names).count == names.count)
        #expect(backbone.parameters.first?.name == "backbone.stage1.conv.weight")
        #expect(backbone.parameters.last?.name == "backbone.features.bias")
        #expect(backbone.buffers.count == 10)
        let x = Tensor(shape: [2, 1, 112, 92], storage: randomArray(2 * 112 * 92, seed: 2))
        let y = backbone.forward(x, mode: .training).output
        #expect(y.shape == [2, 128])
        #expect(y.isFinite)
    }

    @Test("the same seed gives the same weights and outputs; another seed does not")
    func seededDeterminism() {
        let configuration = BackboneConfiguration(inputHeight: 16, inputWidth: 12, stageChannels: [4, 8],
                                                  embeddingDimension: 8)
        let a = Backbone(configuration: configuration, seed: 5)
        let b = Backbone(configuration: configuration, seed: 5)
        let c = Backbone(configuration: configuration, seed: 6)
        #expect(a.parameters.map(\.value) == b.parameters.map(\.value))
        #expect(a.parameters.map(\.value) != c.parameters.map(\.value))
        let x = Tensor(shape: [3, 1, 16, 12], storage: randomArray(3 * 16 * 12, seed: 7))
        #expect(a.forward(x, mode: .training).output == b.forward(x, mode: .training).output)
        #expect(a.forward(x, mode: .inference).output == b.forward(x, mode: .inference).output)
    }

    /// Central differences are only valid where no PReLU input crosses 0 and no max-pool argmax
    /// changes within ±step. The seeds are ones whose points stay clear of such kinks: with seed 90
    /// the residual variant has one (input element 115 disagrees by 0.69, 0.59, 0.30 at steps
    /// 1e-2, 3e-3, 1e-3: a kink, not a wrong gradient, since the mismatch shrinks with the step).
    @Test("small backbone backward matches finite differences on a few entries",
          arguments: [(false, 90 as UInt64), (true, 93)])
    func gradients(residual: Bool, seed: UInt64) {
        let configuration = BackboneConfiguration(inputHeight: 8, inputWidth: 6, stageChannels: [2, 3],
                                                  embeddingDimension: 4, dropout: 0.25, residual: residual)
        let backbone = Backbone(configuration: configuration, seed: seed)
        let saved = backbone.dropout.generator
        let x = Tensor(shape: [3, 1, 8, 6], storage: randomArray(144, seed: 91))
        let report = checkGradients(backbone, input: x, step: 1e-3, atol: 3e-3, rtol: 1e-2,
                                    parameterEntries: [0, 1, 2, 7]) { backbone.dropout.generator = saved }
        #expect(report.passed, "\(report)")
        #expect(report.comparisons.count == backbone.parameters.count + 1)
    }

    @Test("residual backbone: shape and names")
    func residual() {
        let configuration = BackboneConfiguration(stageChannels: [4, 8], embeddingDimension: 16, residual: true)
        let backbone = Backbone(configuration: configuration, seed: 3)
        let names = backbone.parameters.map(\.name)
        #expect(Set(names).count == names.count)
        #expect(names.contains("backbone.stage1.block.shortcut.conv.weight"))
        let y = backbone.forward(Tensor(shape: [2, 1, 112, 92], storage: randomArray(2 * 112 * 92, seed: 4)),
                                 mode: .inference).output
        #expect(y.shape == [2, 16])
    }

    @Test("configuration decoding: missing keys take defaults, unknown keys are rejected")
    func configurationCoding() throws {
        let decoded = try JSONDecoder().decode(BackboneConfiguration.self,
                                               from: Data(#"{"stageChannels": [8, 16], "residual": true}"#.utf8))
        #expect(decoded == BackboneConfiguration(stageChannels: [8, 16], residual: true))
        let roundTrip = try JSONDecoder().decode(BackboneConfiguration.self, from: JSONEncoder().encode(decoded))
        #expect(roundTrip == decoded)
        #expect(throws: DecodingError.self) {
            try JSONDecoder().decode(BackboneConfiguration.self, from: Data(#"{"stageChanels": [8]}"#.utf8))
        }
    }
}

@Suite struct InputGradientSwitchTests {
    @Test("computesInputGradient = false keeps parameter gradients and returns zeros", arguments: [false, true])
    func skipInputGradient(residual: Bool) {
        let configuration = BackboneConfiguration(inputHeight: 8, inputWidth: 6, stageChannels: [2, 3],
                                                  embeddingDimension: 4, dropout: 0, residual: residual)
        let backbone = Backbone(configuration: configuration, seed: 95)
        let x = Tensor(shape: [3, 1, 8, 6], storage: randomArray(144, seed: 96))
        let g = Tensor(shape: [3, 4], storage: randomArray(12, seed: 97))
        let (_, cache) = backbone.forward(x, mode: .training)
        for p in backbone.parameters { p.zeroGradient() }
        let full = backbone.backward(g, cache: cache)
        let expected = backbone.parameters.map(\.gradient.storage)
        #expect(full.storage.contains { $0 != 0 })

        backbone.computesInputGradient = false
        #expect(backbone.computesInputGradient == false)
        for p in backbone.parameters { p.zeroGradient() }
        let skipped = backbone.backward(g, cache: cache)
        #expect(skipped == Tensor(shape: x.shape))
        #expect(backbone.parameters.map(\.gradient.storage) == expected)
    }
}
