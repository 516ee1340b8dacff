import Foundation
import Testing
@testable import RunConfiguration

/// Configuration errors name the key and what it accepts, never a Swift type; a key given twice
/// is refused.
@Suite struct ConfigurationValueMessageTests {
    func decodeError(_ json: String) -> ConfigurationError? {
        do { _ = try TrainingConfiguration.decode(json: Data(json.utf8), source: "c.json"); return nil } catch { return error }
    }

    @Test("a name that is not accepted lists the accepted names (it used to be \"Cannot initialize LossKind…\")")
    func namedValues() {
        #expect(decodeError(#"{"loss": "foo"}"#) == .invalidValue(
            source: "c.json", key: "loss", reason: "expected one of arcface, cosface, normface, softmax, combined, found \"foo\""))
        #expect(decodeError(#"{"loss": 3}"#)?.description == "c.json: bad value for 'loss': expected one of arcface, cosface, normface, softmax, combined, found 3")
        #expect(decodeError(#"{"marginGradient": "stright"}"#)?.description.contains("expected one of exact, straightThrough, found \"stright\"") == true)
        #expect(decodeError(#"{"onBadImage": "ignore"}"#)?.description.contains("'onBadImage': expected one of error, skip") == true)
        #expect(decodeError(#"{"onNonFinite": "stop"}"#) == nil)
        for json in [#"{"loss": "foo"}"#, #"{"loss": 3}"#, #"{"marginGradient": "x"}"#, #"{"onNonFinite": true}"#] {
            let text = decodeError(json)?.description ?? ""
            #expect(!text.contains("Cannot initialize") && !text.contains("LossKind") && !text.contains("Policy"), "\(text)")
        }
    }

    @Test("a wrong JSON kind names the key, the kind expected and the value found (it used to be \"expected Array<Any>\")")
    func kinds() {
        #expect(decodeError(#"{"stepDecayEpochs": 5}"#) == .invalidValue(
            source: "c.json", key: "stepDecayEpochs", reason: "expected an array of integers such as [60,80], found 5"))
        #expect(decodeError(#"{"backbone": {"stageChannels": "8"}}"#)?.description.contains("'backbone.stageChannels': expected an array of integers") == true)
        #expect(decodeError(#"{"epochs": [3]}"#) == .invalidValue(
            source: "c.json", key: "epochs", reason: "expected a single value such as 100, found [3]"))
        #expect(decodeError(#"{"scale": "big"}"#) == .invalidValue(source: "c.json", key: "scale", reason: "expected a number, found \"big\""))
        #expect(decodeError(#"{"epochs": "3"}"#) == .invalidValue(source: "c.json", key: "epochs", reason: "expected an integer, found \"3\""))
        #expect(decodeError(#"{"horizontalFlip": "yes"}"#) == .invalidValue(source: "c.json", key: "horizontalFlip", reason: "expected true or false, found \"yes\""))
        for json in [#"{"stepDecayEpochs": 5}"#, #"{"scale": "big"}"#, #"{"horizontalFlip": 1.5}"#] {
            let text = decodeError(json)?.description ?? ""
            #expect(!text.contains("Array<") && !text.contains("Double") && !text.contains("Bool"), "\(text)")
        }
    }

    @Test("a key given twice in one object is refused, naming it; the same key in different objects is fine")
    func duplicates() {
        let reason = "the key is given twice (remove one; JSON readers would silently keep the last)"
        #expect(decodeError(#"{"epochs": 3, "scale": 8, "epochs": 5}"#) == .invalidValue(source: "c.json", key: "epochs", reason: reason))
        #expect(decodeError(#"{"backbone": {"dropout": 0.1, "dropout": 0.2}}"#) == .invalidValue(source: "c.json", key: "backbone.dropout", reason: reason))
        // Escapes are decoded before comparing: "\u0065pochs" is "epochs".
        #expect(decodeError(#"{"epochs": 3, "\u0065pochs": 5}"#) == .invalidValue(source: "c.json", key: "epochs", reason: reason))
        // A key name inside a string value, or the same key nested elsewhere, is no duplicate.
        #expect(decodeError(#"{"learningRateSchedule": "step", "stepDecayEpochs": [1, 2], "backbone": {"dropout": 0.1}, "epochs": 50}"#) == nil)
        #expect(DuplicateKeyScanner.firstDuplicate(in: Data(#"{"a": {"x": 1}, "b": {"x": 2}, "c": "\"a\": "}"#.utf8)) == nil)
        #expect(DuplicateKeyScanner.firstDuplicate(in: Data(#"{"a": [{"x": 1, "x": 2}]}"#.utf8)) == "a.[].x")
        #expect(DuplicateKeyScanner.firstDuplicate(in: Data(#"{"a": [{"x": 1}, {"x": 2}]}"#.utf8)) == nil)
    }

    @Test("momentum and gradientClipNorm hold their bounds as the 32-bit floats SGD gets (they passed as Doubles and trapped in SGD)")
    func optimizerFloatBounds() {
        func problems(_ json: String) -> [String] {
            guard case let .outOfRange(_, problems)? = decodeError(json) else { return [] }
            return problems
        }
        // 0.9999999999 < 1, but Float(0.9999999999) == 1: SGD's momentum < 1 precondition.
        #expect(problems(#"{"momentum": 0.9999999999}"#).contains { $0.hasPrefix("momentum must be in [0, 1), also as a 32-bit float") })
        #expect(decodeError(#"{"momentum": 0.9999999}"#) == nil)
        // Nesterov needs momentum > 0: 0, and 1e-50 (0 as a Float), are refused naming both keys.
        for momentum in ["0", "1e-50"] {
            #expect(problems(#"{"nesterov": true, "momentum": \#(momentum)}"#).contains { $0.hasPrefix("nesterov needs momentum > 0") },
                    "momentum \(momentum)")
        }
        #expect(decodeError(#"{"nesterov": true, "momentum": 0.9}"#) == nil)
        #expect(decodeError(#"{"nesterov": false, "momentum": 0}"#) == nil)
        // A clip norm of 1e-50 is > 0 (clipping on) but 0 as a Float: SGD's clip > 0 precondition.
        #expect(problems(#"{"gradientClipNorm": 1e-50}"#).contains { $0.hasPrefix("gradientClipNorm must be 0 (disabled) or ≥") })
        #expect(decodeError(#"{"gradientClipNorm": 0}"#) == nil)
        #expect(decodeError(#"{"gradientClipNorm": 5}"#) == nil)
    }
}
