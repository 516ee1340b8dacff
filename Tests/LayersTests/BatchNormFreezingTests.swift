import Testing
import Layers
import TensorCore
import _TestSupport

/// `freezesStatistics` (fine-tuning with frozen BatchNorm) and `setBatchNormStatisticsFrozen`.
@Suite struct BatchNormFreezingTests {
    /// Running statistics away from 0 / 1, and γ, β away from 1 / 0.
    private func perturb(_ layer: any Layer, seed: UInt64) {
        for (k, buffer) in layer.buffers.enumerated() {
            let v = randomArray(buffer.value.count, seed: seed + UInt64(k), standardDeviation: 0.3)
            buffer.value.storage = buffer.name.hasSuffix("running_var") ? v.map { 1 + abs($0) } : v
        }
        for (k, p) in layer.parameters.enumerated() where p.value.rank == 1 {
            p.value.storage = zip(p.value.storage, randomArray(p.value.count, seed: seed + 50 + UInt64(k), standardDeviation: 0.2)).map(+)
        }
    }

    @Test("a frozen BatchNorm2D/1D in training mode computes the inference output and backward, and keeps its statistics")
    func frozenLayer() {
        let bn2 = BatchNorm2D(channels: 3, name: "bn")
        let bn1 = BatchNorm1D(channels: 3, name: "features")
        for (layer, shape) in [(bn2 as any Layer, [2, 3, 2, 2]), (bn1, [4, 3])] {
            perturb(layer, seed: 7)
            let x = Tensor(shape: shape, storage: randomArray(shape.reduce(1, *), seed: 8))
            let g = Tensor(shape: shape, storage: randomArray(shape.reduce(1, *), seed: 9))
            let statistics = layer.buffers.map(\.value)
            let (inference, inferenceCache) = layer.forward(x, mode: .inference)
            let inferenceGradient = layer.backward(g, cache: inferenceCache)
            let parameterGradients = layer.parameters.map(\.gradient)
            layer.parameters.forEach { $0.zeroGradient() }
            if let bn = layer as? BatchNorm2D { bn.freezesStatistics = true } else { (layer as! BatchNorm1D).freezesStatistics = true }
            let (frozen, cache) = layer.forward(x, mode: .training)
            #expect(frozen.storage == inference.storage)
            #expect(layer.buffers.map(\.value) == statistics)
            #expect(layer.backward(g, cache: cache).storage == inferenceGradient.storage)
            #expect(layer.parameters.map(\.gradient) == parameterGradients)
            // Unfrozen, training mode uses the batch statistics and moves the running ones.
            if let bn = layer as? BatchNorm2D { bn.freezesStatistics = false } else { (layer as! BatchNorm1D).freezesStatistics = false }
            let (training, _) = layer.forward(x, mode: .training)
            #expect(training.storage != inference.storage)
            #expect(layer.buffers.map(\.value) != statistics)
        }
    }

    @Test("setBatchNormStatisticsFrozen reaches every BatchNorm of IResNet, MobileFaceNet blocks and the fused default CNN")
    func wholeNetworks() {
        var generator = SeededGenerator(seed: 3)
        let iresnet = IResNet(architecture: IResNetArchitecture(inputChannels: 1, inputHeight: 8, inputWidth: 8, stemChannels: 2,
                                                                stageChannels: [2, 3], blocks: [1, 2], embeddingDimension: 3),
                              generator: &generator)
        let block = MobileFaceNetDepthWise(inputChannels: 2, outputChannels: 2, expansion: 4, stride: 1, residual: true,
                                           name: "layers.3", generator: &generator)
        let cnn = Backbone(configuration: BackboneConfiguration(inputChannels: 1, inputHeight: 8, inputWidth: 8, stageChannels: [2, 3],
                                                                embeddingDimension: 4, dropout: 0), seed: 4)
        // Every running-statistics pair belongs to one BatchNorm layer.
        for (network, shape) in [(iresnet as any Layer, [3, 1, 8, 8]), (block, [3, 2, 4, 4]), (cnn, [3, 1, 8, 8])] {
            let count = network.buffers.filter { $0.name.hasSuffix("running_mean") }.count
            #expect(setBatchNormStatisticsFrozen(true, in: network) == count)
            let statistics = network.buffers.map(\.value)
            let x = Tensor(shape: shape, storage: randomArray(shape.reduce(1, *), seed: 5))
            _ = network.forward(x, mode: .training)
            #expect(network.buffers.map(\.value) == statistics)
            #expect(setBatchNormStatisticsFrozen(false, in: network) == count)
            _ = network.forward(x, mode: .training)
            #expect(network.buffers.map(\.value) != statistics)
        }
    }
}
