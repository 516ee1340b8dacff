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
}
