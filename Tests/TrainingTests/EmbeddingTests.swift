import Foundation
import Testing
import ArcFace
import _TestSupport

@Suite struct EmbeddingTests {
    @Test("flip-sum embeddings are invariant to mirroring the input images")
    func flipSumSymmetry() throws {
        let dataset = try attSlice(identityCount: 2)
        var mirrored = dataset
        for i in mirrored.images.indices {
            let image = dataset.images[i]
            for y in 0..<image.height {
                for x in 0..<image.width {
                    mirrored.images[i].pixels[y * image.width + x] = image.pixels[y * image.width + image.width - 1 - x]
                }
            }
        }
        var generator = SeededGenerator(seed: 3)
        var backboneConfiguration = BackboneConfiguration()
        backboneConfiguration.stageChannels = [4, 8]
        backboneConfiguration.embeddingDimension = 8
        let backbone = Backbone(configuration: backboneConfiguration, generator: &generator, name: "b")
        let a = embeddings(of: dataset, backbone: backbone, flipSum: true, batchSize: 7)
        let b = embeddings(of: mirrored, backbone: backbone, flipSum: true, batchSize: 7)
        let plain = embeddings(of: dataset, backbone: backbone, flipSum: false, batchSize: 7)
        #expect(a.shape == [20, 8])
        let result = compare(a.storage, b.storage, atol: 1e-5, rtol: 1e-5, label: "e(x)+e(flip x) vs mirrored")
        #expect(result.passed, "\(result)")
        #expect(a != plain)
    }

    @Test("the raw-pixel baseline is the image scaled to [−1, 1]")
    func rawPixels() throws {
        let dataset = try attSlice(identityCount: 2)
        let pixels = rawPixelEmbeddings(of: dataset)
        #expect(pixels.shape == [20, 112 * 92])
        #expect(pixels[3, 500] == dataset.images[3].pixels[500] * 2 - 1)
    }

    @Test("mean ± sample standard deviation, hand-computed")
    func meanAndDeviation() {
        // [1, 2, 3, 4]: mean 2.5, sample variance (2.25+0.25+0.25+2.25)/3 = 5/3.
        let s = MeanAndDeviation([1, 2, 3, 4])
        #expect(s.mean == 2.5)
        #expect(abs(s.standardDeviation - (5.0 / 3).squareRoot()) < 1e-12)
        #expect(MeanAndDeviation([7]).standardDeviation == 0)
    }
}
