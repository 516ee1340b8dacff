import Foundation
import Testing
import Layers
import TensorCore

/// `BackboneConfiguration.flooredPoolings`: which stage poolings drop a row or column.
@Suite struct FlooredPoolingTests {
    /// The spatial size each stage of `configuration`'s backbone really outputs (forward pass).
    static func stageOutputSizes(_ configuration: BackboneConfiguration) -> [[Int]] {
        let backbone = Backbone(configuration: configuration, seed: 1)
        var x = Tensor(shape: [2, configuration.inputChannels, configuration.inputHeight, configuration.inputWidth],
                       storage: (0..<(2 * configuration.inputChannels * configuration.inputHeight * configuration.inputWidth))
                           .map { Float($0 % 7) / 7 })
        var sizes: [[Int]] = []
        for stage in backbone.stages {
            x = stage.forward(x, mode: .inference).output
            sizes.append(Array(x.shape.suffix(2)))
        }
        return sizes
    }

    @Test("24×24 floors stage 4's 3×3 to 1×1 (a row and a column), as the network really does")
    func small() {
        let configuration = BackboneConfiguration(inputHeight: 24, inputWidth: 24, stageChannels: [2, 2, 2, 2],
                                                  embeddingDimension: 4)
        let floors = configuration.flooredPoolings
        #expect(floors == [FlooredPooling(stage: 4, inputHeight: 3, inputWidth: 3)])
        #expect(floors.first?.description == "backbone.stage4 max-pool floors 3×3 to 1×1: its last row (1 of 3) and last column (1 of 3) are dropped")
        let sizes = Self.stageOutputSizes(configuration)
        #expect(sizes == [[12, 12], [6, 6], [3, 3], [1, 1]])
        #expect(sizes[3] == [floors[0].outputHeight, floors[0].outputWidth])
    }

    @Test("the default 112×92 floors the odd widths of stages 3 and 4; even sides floor nothing")
    func defaultAndEven() {
        let configuration = BackboneConfiguration(stageChannels: [2, 2, 2, 2], embeddingDimension: 4)
        let floors = configuration.flooredPoolings
        #expect(floors == [FlooredPooling(stage: 3, inputHeight: 28, inputWidth: 23),
                           FlooredPooling(stage: 4, inputHeight: 14, inputWidth: 11)])
        #expect(floors.map(\.description) == [
            "backbone.stage3 max-pool floors 28×23 to 14×11: its last column (1 of 23) is dropped",
            "backbone.stage4 max-pool floors 14×11 to 7×5: its last column (1 of 11) is dropped",
        ])
        #expect(Self.stageOutputSizes(configuration) == [[56, 46], [28, 23], [14, 11], [7, 5]])
        #expect(BackboneConfiguration(inputHeight: 112, inputWidth: 96).flooredPoolings.isEmpty)
        #expect(BackboneConfiguration(inputHeight: 112, inputWidth: 92, stageChannels: [4, 8]).flooredPoolings.isEmpty,
                "two stages see 112×92 and 56×46")
    }
}
