// Keys of earlier configuration files (and of the configuration JSON stored in older
// checkpoints) that the current `TrainingConfiguration` names differently.
import Foundation
import MarginLosses

extension TrainingConfiguration {
    /// `overrides` with the keys of earlier versions replaced by their current form:
    /// `"easyMargin": true/false` becomes `"marginFallback": "easy"/"hard"`.
    ///
    /// - Throws: `ConfigurationError.invalidValue` for a non-Bool `easyMargin`, or for
    ///   `easyMargin` and `marginFallback` given together with different meanings (the message
    ///   names both keys and their values).
    static func translatingLegacyKeys(_ overrides: [String: Any], source: String) throws(ConfigurationError) -> [String: Any] {
        guard let legacy = overrides["easyMargin"] else { return overrides }
        guard let easy = legacy as? Bool else {
            throw .invalidValue(source: source, key: "easyMargin",
                                reason: "expected true or false (or use marginFallback: \"hard\", \"easy\" or \"none\")")
        }
        let meaning = (easy ? MarginFallback.easy : .hard).rawValue
        var result = overrides
        result["easyMargin"] = nil
        if let given = overrides["marginFallback"] {
            if (given as? String) != meaning {
                throw .invalidValue(source: source, key: "easyMargin",
                                    reason: "\"easyMargin\": \(easy) means \"marginFallback\": \"\(meaning)\" but \"marginFallback\" is \(given); "
                                        + "give only marginFallback (\"hard\", \"easy\" or \"none\")")
            }
        } else {
            result["marginFallback"] = meaning
        }
        return result
    }
}

