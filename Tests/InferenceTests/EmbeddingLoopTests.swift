import Foundation
import Testing
import TensorCore
import Layers
import FaceData
import Inference
import _TestSupport

/// The one embedding loop: evaluation (`embeddings(of:)`), the pair protocols
/// (`embeddings(count:image:)`) and `arcface embed` (`embedImages`) give the same bits as the
/// per-batch loop each of them used to carry (`makeTensor` per batch, `original += mirrored`).
@Suite struct EmbeddingLoopTests {
    static let configuration = BackboneConfiguration(inputHeight: 16, inputWidth: 12, stageChannels: [4, 8],
                                                     embeddingDimension: 8, dropout: 0)

    /// 7 images (not a multiple of the batch size), a different ramp each.
    static func images() -> [FaceImage] {
        (0..<7).map { (index: Int) -> FaceImage in
            let pixels: [Float] = (0..<(12 * 16)).map { (pixel: Int) -> Float in Float((pixel * 7 + index * 31) % 256) / 255 }
            return FaceImage(width: 12, height: 16, pixels: pixels)
        }
    }

    /// The loop as `embeddings(of:)` wrote it before it was shared.
    static func reference(_ dataset: FaceDataset, backbone: Backbone, flipSum: Bool, batchSize: Int) -> Tensor {
        var result: [Float] = []
        var start = 0
        var dimension = 0
        while start < dataset.count {
            let range = start..<min(dataset.count, start + batchSize)
            var (output, _) = backbone.forward(dataset.makeTensor(indices: Array(range)), mode: .inference)
            if flipSum {
                let (mirrored, _) = backbone.forward(dataset.makeTensor(indices: Array(range), flipped: true), mode: .inference)
                output += mirrored
            }
            dimension = output.shape[1]
            result.append(contentsOf: output.storage)
            start = range.upperBound
        }
        return Tensor(shape: [dataset.count, dimension], storage: result)
    }

    @Test("every entry point gives the old loop's bits, with and without the flip sum", arguments: [false, true])
    func sameBits(flipSum: Bool) throws {
        let backbone = Backbone(configuration: Self.configuration, seed: 3)
        let directory = TemporaryDirectory()
        var paths: [String] = []
        for (index, image) in Self.images().enumerated() {
            let path = directory.path + "/\(index).pgm"
            try Data(encodePGM(image)).write(to: URL(fileURLWithPath: path))
            paths.append(path)
        }
        // The images as `embedImages` sees them: decoded and prepared for the input.
        let size = ImageSize(width: 12, height: 16)
        let decoded = try paths.map { path in try loadImage(path: path).prepared(channels: 1, size: size) }
        let dataset = FaceDataset(identities: ["a"], images: decoded, labels: Array(repeating: 0, count: decoded.count),
                                  paths: paths)
        let expected = Self.reference(dataset, backbone: backbone, flipSum: flipSum, batchSize: 3)
        #expect(embeddings(of: dataset, backbone: backbone, flipSum: flipSum, batchSize: 3) == expected)
        #expect(try embeddings(count: decoded.count, backbone: backbone, flipSum: flipSum, batchSize: 3) {
            index throws(ImageDecodingError) in decoded[index]
        } == expected)
        let list = ImageList(paths: paths, labels: Array(repeating: "", count: paths.count))
        #expect(try embedImages(list, backbone: backbone, flipSum: flipSum, batchSize: 3) == expected)
        // The default batch of 50 holds all 7: the same values as one batch of the reference.
        #expect(embeddings(of: dataset, backbone: backbone, flipSum: flipSum)
                == Self.reference(dataset, backbone: backbone, flipSum: flipSum, batchSize: 50))
    }

    @Test("progress counts images after each batch; no image gives [0, D]")
    func progressAndEmpty() {
        let backbone = Backbone(configuration: Self.configuration, seed: 3)
        var reported: [Int] = []
        let images = Self.images()
        _ = embeddings(count: images.count, backbone: backbone, flipSum: false, batchSize: 3,
                       progress: { done, _ in reported.append(done) }) { range in Array(images[range]) }
        #expect(reported == [3, 6, 7])
        let none = embeddings(count: 0, backbone: backbone, flipSum: true) { _ in [FaceImage]() }
        #expect(none.shape == [0, 8])
    }
}
