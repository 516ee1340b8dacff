import Foundation
import Testing
import RunConfiguration

@Suite struct ConfigurationTests {
    @Test("a JSON file overrides only the keys it names")
    func partialOverride() throws {
        let json = #"{"loss": "cosface", "scale": 30, "backbone": {"embeddingDimension": 64}}"#
        let c = try TrainingConfiguration.decode(json: Data(json.utf8))
        #expect(c.loss == .cosface)
        #expect(c.scale == 30)
        #expect(c.backbone.embeddingDimension == 64)
        #expect(c.backbone.stageChannels == TrainingConfiguration.base.backbone.stageChannels)
        #expect(c.learningRate == TrainingConfiguration.base.learningRate)
    }

    @Test("unknown keys are an error, at any depth")
    func unknownKeys() {
        #expect(throws: ConfigurationError.self) { try TrainingConfiguration.decode(json: Data(#"{"sacle": 64}"#.utf8)) }
        do {
            _ = try TrainingConfiguration.decode(json: Data(#"{"backbone": {"embeddingDim": 64}}"#.utf8), source: "x.json")
            Issue.record("expected an error")
        } catch {
            guard case let .unknownKey(source, key, _) = error else { Issue.record("wrong error \(error)"); return }
            #expect(source == "x.json")
            #expect(key == "backbone.embeddingDim")
        }
    }

    @Test("values of the wrong type or out of range are errors")
    func badValues() {
        #expect(throws: ConfigurationError.self) { try TrainingConfiguration.decode(json: Data(#"{"scale": "big"}"#.utf8)) }
        #expect(throws: ConfigurationError.self) { try TrainingConfiguration.decode(json: Data(#"{"angularMargin": 2.0}"#.utf8)) }
        #expect(throws: ConfigurationError.self) { try TrainingConfiguration.decode(json: Data(#"[1, 2]"#.utf8)) }
        #expect(throws: ConfigurationError.self) { try TrainingConfiguration.decode(json: Data("{not json".utf8)) }
    }

    @Test("the angular margin range is ArcFaceMargin's: [0, π/2], both ends included")
    func angularMarginRange() {
        var c = TrainingConfiguration.base
        for m in [0, 0.5, Double.pi / 2] {
            c.angularMargin = m
            #expect(c.validationProblems().isEmpty, "m = \(m)")
        }
        for m in [-1e-9, Double.pi / 2 + 1e-9, .nan] {
            c.angularMargin = m
            #expect(c.validationProblems().contains { $0.hasPrefix("angularMargin must be in [0, π/2]") }, "m = \(m)")
        }
    }

    @Test("the encoded configuration decodes to itself")
    func roundTrip() throws {
        var c = TrainingConfiguration.base
        c.loss = .combined
        c.seed = 99
        #expect(try TrainingConfiguration.decode(json: c.jsonData()) == c)
    }

    @Test("values the model constructors would trap on are configuration errors")
    func constructorRanges() {
        for json in [#"{"combinedAngularMultiplier": 0}"#, #"{"combinedAngularMargin": 3}"#,
                     #"{"combinedAngularMultiplier": 4, "combinedAngularMargin": 0}"#,
                     #"{"backbone": {"stageChannels": []}}"#, #"{"backbone": {"stageChannels": [4, 0]}}"#,
                     #"{"backbone": {"stageChannels": [1,1,1,1,1,1,1,1]}}"#, #"{"maxTranslation": 200}"#,
                     #"{"learningRateSchedule": "exponential"}"#, #"{"epochs": 3}"#] {
            #expect(throws: ConfigurationError.self, "\(json)") { try TrainingConfiguration.decode(json: Data(json.utf8)) }
        }
        // Without validation (command-line overrides follow), the same file decodes.
        #expect(throws: Never.self) { try TrainingConfiguration.decode(json: Data(#"{"epochs": 3}"#.utf8), validate: false) }
    }

    func decodeError(_ json: String) -> ConfigurationError? {
        do { _ = try TrainingConfiguration.decode(json: Data(json.utf8), source: "c.json"); return nil } catch { return error }
    }

    @Test("a fractional or out-of-range number for an integer key names the key and the value")
    func nonIntegerNumbers() {
        #expect(decodeError(#"{"epochs": 2.5}"#) == .invalidValue(source: "c.json", key: "epochs", reason: "expected an integer, found 2.5"))
        #expect(decodeError(#"{"backbone": {"embeddingDimension": 1.5}}"#)
                == .invalidValue(source: "c.json", key: "backbone.embeddingDimension", reason: "expected an integer, found 1.5"))
        #expect(decodeError(#"{"stepDecayEpochs": [10, 2.5]}"#)
                == .invalidValue(source: "c.json", key: "stepDecayEpochs", reason: "expected an integer, found 2.5"))
        #expect(decodeError(#"{"backbone": {"stageChannels": [4, 8.5]}}"#)
                == .invalidValue(source: "c.json", key: "backbone.stageChannels", reason: "expected an integer, found 8.5"))
        #expect(decodeError(#"{"seed": -1}"#) == .invalidValue(source: "c.json", key: "seed", reason: "-1 is out of range for an integer ≥ 0"))
        #expect(decodeError(#"{"epochs": 1e30}"#)?.description.contains("'epochs'") == true)
        #expect(decodeError(#"{"validationIdentities": 0.5}"#)
                == .invalidValue(source: "c.json", key: "validationIdentities", reason: "expected an integer, found 0.5"))
        // Integral numbers are integers; strings still give the decoder's typed message with the key.
        #expect(decodeError(#"{"epochs": 30.0, "seed": 7}"#) == nil)
        #expect(decodeError(#"{"epochs": "3"}"#) == .invalidValue(source: "c.json", key: "epochs", reason: "expected an integer, found \"3\""))
        // The whole range of the types is accepted (a 64-bit seed, Int.max).
        let wide = try? TrainingConfiguration.decode(json: Data(#"{"seed": 18446744073709551615, "checkpointEverySteps": 9223372036854775807}"#.utf8))
        #expect(wide?.seed == UInt64.max && wide?.checkpointEverySteps == Int.max)
        #expect(decodeError(#"{"epochs": 9223372036854775808}"#)?.description.contains("'epochs'") == true)
        // Non-integer keys accept fractions.
        #expect(decodeError(#"{"scale": 2.5, "backbone": {"dropout": 0.25}}"#) == nil)
    }
}
