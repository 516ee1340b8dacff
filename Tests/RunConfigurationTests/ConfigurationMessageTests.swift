import Foundation
import Testing
import RunConfiguration

/// Configuration files that are not JSON, or give null, are errors that say so and name the key.
@Suite struct ConfigurationMessageTests {
    func decodeError(_ json: String) -> ConfigurationError? {
        do { _ = try TrainingConfiguration.decode(json: Data(json.utf8), source: "c.json"); return nil } catch { return error }
    }

    @Test("null names the key (it used to be \"bad value for '?'\")")
    func null() {
        let reason = "null is not a value here (leave the key out to keep its default)"
        #expect(decodeError(#"{"epochs": null}"#) == .invalidValue(source: "c.json", key: "epochs", reason: reason))
        #expect(decodeError(#"{"backbone": {"dropout": null}}"#) == .invalidValue(source: "c.json", key: "backbone.dropout", reason: reason))
        #expect(decodeError(#"{"backbone": {"stageChannels": [8, null]}}"#)?.description.contains("'backbone.stageChannels.") == true)
    }

    @Test("an empty file, 1e400 and broken JSON say the file is not valid JSON, with Foundation's position")
    func notJSON() {
        #expect(decodeError("") == .invalidJSON(source: "c.json", reason: "the file is empty (expected a JSON object such as {\"epochs\": 100})"))
        #expect(decodeError(" \n") == decodeError(""))
        #expect(decodeError(#"{"scale": 1e400}"#) == .invalidJSON(source: "c.json", reason: "Number 1e400 is not representable in Swift."))
        #expect(decodeError("{\"scale\": \n,}")?.description == "c.json: not valid configuration JSON: Invalid value around character 11.")
    }
}
