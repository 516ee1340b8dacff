import Foundation
import Testing
import ArcFace

@Suite struct HeadOptionsTests {
    @Test("subcenters and partialFCSampleRate reach the MarginHead; defaults leave the model as it was")
    func headOptions() throws {
        let json = #"{"subcenters": 3, "partialFCSampleRate": 0.5, "backbone": {"embeddingDimension": 16}}"#
        let c = try TrainingConfiguration.decode(json: Data(json.utf8))
        let model = FaceRecognitionModel(configuration: c, classCount: 10)
        let head = try #require(model.head as? MarginHead)
        #expect(head.subcenters == 3 && head.sampleRate == 0.5)
        #expect(head.centers.value.shape == [30, 16])
        let base = FaceRecognitionModel(configuration: .base, classCount: 10)
        let plain = try #require(base.head as? MarginHead)
        #expect(plain.subcenters == 1 && plain.sampleRate == 1 && plain.centers.value.shape == [10, 128])
        #expect(throws: ConfigurationError.self) { try TrainingConfiguration.decode(json: Data(#"{"subcenters": 0}"#.utf8)) }
        #expect(throws: ConfigurationError.self) {
            try TrainingConfiguration.decode(json: Data(#"{"partialFCSampleRate": 0}"#.utf8))
        }
    }

    @Test("a head that cannot fit fails with the typed error before anything is allocated")
    func headMemoryCheck() throws {
        // K = 10⁶, D = 128: the centers, gradient and momentum alone are 3·10⁶·128·4 = 1,536,000,000 bytes.
        let json = #"{"backbone": {"embeddingDimension": 128}}"#
        let c = try TrainingConfiguration.decode(json: Data(json.utf8))
        do {
            _ = try FaceRecognitionModel(configuration: c, classCount: 1_000_000, checkingMemoryForBatchSize: 32,
                                         availableBytes: 1 << 30)
            Issue.record("expected HeadMemoryError.stateDoesNotFit")
        } catch let error {
            guard case let .head(.stateDoesNotFit(needed, available, classes, _, dimension)) = error else {
                Issue.record("\(error)"); return
            }
            #expect(needed > 1_536_000_000 && available == 1 << 30 && classes == 1_000_000 && dimension == 128)
        }
        let small = try FaceRecognitionModel(configuration: c, classCount: 10, checkingMemoryForBatchSize: 32)
        #expect((small.head as? MarginHead)?.centers.value.shape == [10, 128])
    }

    @Test("a configuration whose batch the head's memory budget cannot hold is a typed error naming batchSize and the largest that fits")
    func batchTooLargeForHead() throws {
        // Valid keys, but one batch of 2048 embeddings of 65536 floats (3·N·D·4 ≈ 1.6 GB of ê, ∂ê,
        // ∂e) exceeds the head's 1 GiB budget before a single class fits. It was a trap in the
        // first training step when no memory check came first.
        let json = #"{"batchSize": 2048, "backbone": {"embeddingDimension": 65536}}"#
        let c = try TrainingConfiguration.decode(json: Data(json.utf8))
        do {
            _ = try FaceRecognitionModel(configuration: c, classCount: 30, checkingMemoryForBatchSize: c.batchSize,
                                         availableBytes: .max)
            Issue.record("expected ModelMemoryError.batchTooLargeForHead")
        } catch let error {
            guard case let .batchTooLargeForHead(batchSize, dimension, largest, budget, needed) = error else {
                Issue.record("\(error)"); return
            }
            #expect(batchSize == 2048 && dimension == 65536 && budget == MarginHead.defaultMemoryBudgetBytes && needed > budget)
            #expect(largest >= 1 && largest < 2048)
            #expect(error.description.contains("batchSize must be ≤ \(largest)") && error.description.contains("backbone.embeddingDimension"))
            // The stated largest batch size is the boundary.
            _ = try MarginHead.checkMemory(batchSize: largest, classCount: 30, embeddingDimension: 65536, availableBytes: .max)
            #expect(throws: HeadMemoryError.self) {
                try MarginHead.checkMemory(batchSize: largest + 1, classCount: 30, embeddingDimension: 65536, availableBytes: .max)
            }
        }
    }
}
