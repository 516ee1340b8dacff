import Foundation
import Testing
import ArcFace

@Suite struct MarginFallbackConfigurationTests {
    func decode(_ json: String) throws(ConfigurationError) -> TrainingConfiguration {
        try TrainingConfiguration.decode(json: Data(json.utf8), source: "test.json")
    }

    @Test("marginFallback: hard (default), easy, none; the earlier easyMargin key maps to easy/hard")
    func keys() throws {
        #expect(TrainingConfiguration.base.marginFallback == .hard)
        for fallback in MarginFallback.allCases {
            #expect(try decode(#"{"marginFallback": "\#(fallback.rawValue)"}"#).marginFallback == fallback)
        }
        #expect(try decode(#"{"easyMargin": true}"#).marginFallback == .easy)
        #expect(try decode(#"{"easyMargin": false}"#).marginFallback == .hard)
        #expect(try decode(#"{"easyMargin": true, "marginFallback": "easy"}"#).marginFallback == .easy)
        // The encoded form has the new key only, and round-trips.
        var configuration = TrainingConfiguration.base
        configuration.marginFallback = .plain
        let object = try #require(JSONSerialization.jsonObject(with: configuration.jsonData()) as? [String: Any])
        #expect(object["marginFallback"] as? String == "none" && object["easyMargin"] == nil)
        #expect(try TrainingConfiguration.decode(json: configuration.jsonData()) == configuration)
        // The model builds the configured mode.
        configuration.loss = .arcface
        #expect((FaceRecognitionModel.margin(for: configuration, fraction: 1) as? ArcFaceMargin)?.fallback == .plain)
    }

    @Test("easyMargin and marginFallback disagreeing, or a non-Bool easyMargin, is an error naming the keys")
    func conflicts() {
        for json in [#"{"easyMargin": true, "marginFallback": "hard"}"#, #"{"easyMargin": false, "marginFallback": "none"}"#,
                     #"{"marginFallback": "easy", "easyMargin": false}"#] {
            do {
                _ = try decode(json)
                Issue.record("\(json) was accepted")
            } catch {
                guard case let .invalidValue(source, key, reason) = error else { Issue.record("\(error)"); continue }
                #expect(source == "test.json" && key == "easyMargin" && reason.contains("marginFallback"))
            }
        }
        #expect(throws: ConfigurationError.self) { try decode(#"{"easyMargin": "yes"}"#) }
    }

    @Test("a checkpoint's configuration JSON of an earlier version (easyMargin, no marginFallback) loads")
    func olderCheckpointConfiguration() throws {
        var object = try #require(JSONSerialization.jsonObject(with: TrainingConfiguration.base.jsonData()) as? [String: Any])
        object["marginFallback"] = nil
        object["easyMargin"] = true
        let old = try JSONSerialization.data(withJSONObject: object)
        #expect(try TrainingConfiguration.decode(json: old).marginFallback == .easy)
    }
}
