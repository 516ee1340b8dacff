import Foundation
import MarginLosses
import FaceData

// Checks of configuration JSON that `JSONSerialization` and `JSONDecoder` do not make, or make in
// Swift's words ("Cannot initialize LossKind from invalid String value foo", "expected
// Array<Any>"): duplicate keys, the accepted values of each named-value key, and the JSON kind a
// key takes. Every error names the dotted key.

extension TrainingConfiguration {
    /// The accepted values of each key that holds a name (a `String`-backed enum), by dotted key.
    static let namedValueKeys: [String: [String]] = [
        "loss": LossKind.allCases.map(\.rawValue),
        "marginGradient": marginGradientNames,
        "onNonFinite": NonFinitePolicy.allCases.map(\.rawValue),
        "onBadImage": BadImagePolicy.allCases.map(\.rawValue),
        "learningRateSchedule": ["cosine", "step", "polynomial", "constant"],
    ]

    /// `MarginGradient`'s names (it is not `CaseIterable`).
    private static let marginGradientNames: [String] = {
        // Exhaustive: a case added to `MarginGradient` fails to compile here until it is listed.
        func listed(_ gradient: MarginGradient) { switch gradient { case .exact, .straightThrough: break } }
        return [MarginGradient.exact, .straightThrough].map(\.rawValue)
    }()

    /// Checks a value given for a named-value key.
    ///
    /// - Throws: `ConfigurationError.invalidValue` naming the key, the value and the accepted names.
    static func checkNamedValue(_ value: Any, key: String, source: String) throws(ConfigurationError) {
        guard let accepted = namedValueKeys[key] else { return }
        guard let name = value as? String, accepted.contains(name) else {
            throw .invalidValue(source: source, key: key,
                                reason: "expected one of \(accepted.joined(separator: ", ")), found \(jsonText(value))")
        }
    }

    /// Checks that `value` has the JSON kind of `baseValue` where the two are an array and a
    /// non-array (the decoder's own words would be "expected Array<Any>").
    static func checkArrayKind(_ value: Any, base baseValue: Any, key: String, source: String) throws(ConfigurationError) {
        let baseIsArray = baseValue is [Any], valueIsArray = value is [Any]
        guard baseIsArray != valueIsArray else { return }
        let expected = baseIsArray
            ? "an array of " + (integerKeys[key] != nil ? "integers" : "numbers") + " such as \(jsonText(baseValue))"
            : "a single value such as \(jsonText(baseValue))"
        throw .invalidValue(source: source, key: key, reason: "expected \(expected), found \(jsonText(value))")
    }

    /// A Swift type as a JSON reader knows it: `Int` → "an integer", `Array<Any>` → "an array".
    static func jsonKind(of type: Any.Type) -> String {
        let name = String(describing: type)
        if name.hasPrefix("Array") { return "an array" }
        if name.hasPrefix("Dictionary") { return "an object" }
        switch name {
        case "Int", "UInt64", "Int64", "UInt", "Int32": return "an integer"
        case "Double", "Float": return "a number"
        case "String": return "a string"
        case "Bool": return "true or false"
        default: return "a value of another kind"
        }
    }

    /// `value` (from `JSONSerialization`) written as JSON, for messages.
    static func jsonText(_ value: Any) -> String {
        if let string = value as? String { return "\"\(string)\"" }
        if JSONSerialization.isValidJSONObject([value]),
           let data = try? JSONSerialization.data(withJSONObject: [value], options: [.fragmentsAllowed]) {
            let text = String(decoding: data, as: UTF8.self)
            return String(text.dropFirst().dropLast())
        }
        return "\(value)"
    }

    /// The value at the dotted `key` of `object`, if any.
    static func value(at key: [String], in object: Any) -> Any? {
        var current: Any? = object
        for part in key {
            if let dictionary = current as? [String: Any] { current = dictionary[part] }
            else if let array = current as? [Any], let index = Int(part.replacingOccurrences(of: "Index ", with: "")),
                    array.indices.contains(index) { current = array[index] }
            else { return nil }
        }
        return current
    }
}

/// Finds a key given twice in one JSON object, which `JSONSerialization` and `JSONDecoder` accept
/// silently (the last one wins). Runs over text that `JSONSerialization` has already parsed, so
/// it only tracks strings, escapes and nesting.
enum DuplicateKeyScanner {
    /// The dotted path of the first key that appears twice in the same object (`backbone.dropout`),
    /// or nil when every object's keys are distinct.
    static func firstDuplicate(in data: Data) -> String? {
        let bytes = [UInt8](data)
        // One frame per open object or array: an object's keys so far and its own dotted path.
        struct Frame { var keys: Set<String>?; var path: String }
        var stack: [Frame] = []
        var lastKey: String?  // the key whose value is being read in the innermost object
        var i = 0
        while i < bytes.count {
            let byte = bytes[i]
            switch byte {
            case UInt8(ascii: "\""):
                let start = i
                i += 1
                while i < bytes.count, bytes[i] != UInt8(ascii: "\"") { i += bytes[i] == UInt8(ascii: "\\") ? 2 : 1 }
                let literal = Data(bytes[start...min(i, bytes.count - 1)])
                var j = i + 1
                while j < bytes.count, [0x20, 0x09, 0x0A, 0x0D].contains(bytes[j]) { j += 1 }
                if j < bytes.count, bytes[j] == UInt8(ascii: ":"), var frame = stack.last, frame.keys != nil {
                    let key = (try? JSONSerialization.jsonObject(with: literal, options: [.fragmentsAllowed])) as? String
                        ?? String(decoding: literal.dropFirst().dropLast(), as: UTF8.self)
                    let path = frame.path.isEmpty ? key : frame.path + "." + key
                    if frame.keys!.contains(key) { return path }
                    frame.keys!.insert(key)
                    stack[stack.count - 1] = frame
                    lastKey = path
                }
            case UInt8(ascii: "{"), UInt8(ascii: "["):
                let parentPath = stack.last.map { $0.keys != nil ? (lastKey ?? $0.path) : $0.path + ".[]" } ?? ""
                stack.append(Frame(keys: byte == UInt8(ascii: "{") ? [] : nil, path: parentPath))
                lastKey = nil
            case UInt8(ascii: "}"), UInt8(ascii: "]"):
                if !stack.isEmpty { stack.removeLast() }
                lastKey = nil
            default: break
            }
            i += 1
        }
        return nil
    }
}
