import Testing
import _TestSupport
import ArcFace

/// Issue 11's training check of the field's backbone on real faces: a small IResNet (arcface_torch's
/// block structure, one block per stage, 8–64 channels, so the test stays fast in a debug build)
/// on AT&T faces converted to RGB 112 × 112, ArcFace (s = 16, m = 0.5) and SGD with momentum.
@Suite struct IResNetTrainingTests {
    @Test("a small IResNet on AT&T faces as RGB 112×112 learns: the mean ArcFace loss halves from the first epoch to the third (24 steps)")
    func smallIResNetLossFalls() throws {
        let faces = try attSlice(identityCount: 4)   // 4 people × 10 images
        let rgb = faces.images.map { $0.prepared(channels: 3, size: ImageSize(width: 112, height: 112)) }
        #expect(rgb.allSatisfy { ($0.channels, $0.width, $0.height) == (3, 112, 112) })
        let architecture = IResNetArchitecture(inputChannels: 3, inputHeight: 112, inputWidth: 112, stemChannels: 8,
                                               stageChannels: [8, 16, 32, 64], blocks: [1, 1, 1, 1], embeddingDimension: 32)
        var generator = SeededGenerator(seed: 111)
        let backbone = IResNet(architecture: architecture, generator: &generator)
        let head = MarginHead(classCount: 4, embeddingDimension: 32, scale: 16, margin: ArcFaceMargin(margin: 0.5),
                              generator: &generator)
        let optimizer = SGD(parameters: backbone.parameters + head.parameters, configuration: SGDConfiguration())
        var order = SeededGenerator(seed: 112)
        var losses: [Double] = []
        for _ in 0..<3 {                                  // 3 epochs of 8 batches of 5
            let permutation = Array(rgb.indices).shuffled(using: &order)
            for start in stride(from: 0, to: permutation.count, by: 5) {
                let indices = Array(permutation[start..<(start + 5)])
                optimizer.zeroGradients()
                let (embeddings, cache) = backbone.forward(makeInputTensor(images: indices.map { rgb[$0] }), mode: .training)
                let output = try head.loss(embeddings: embeddings, labels: indices.map { faces.labels[$0] },
                                           reduction: .mean, computeGradients: true)
                _ = backbone.backward(output.embeddingGradient, cache: cache)
                _ = optimizer.step(learningRate: 0.05)
                losses.append(output.loss)
            }
        }
        #expect(losses.allSatisfy { $0.isFinite })
        let first = losses.prefix(8).reduce(0, +) / 8, last = losses.suffix(8).reduce(0, +) / 8
        #expect(last < 0.5 * first, "mean loss of the first epoch \(first), of the last \(last): \(losses)")
        #expect(backbone.parameters.allSatisfy { $0.value.storage.allSatisfy { $0.isFinite } })
    }
}
