import Foundation

// Integer-valued configuration keys. JSON has one number type, and a fractional or out-of-range
// number where the configuration holds an integer reaches `JSONDecoder` as a "not valid JSON"
// error without a key; `TrainingConfiguration.decode` checks these keys itself first so that the
// error names the key and the value.

extension TrainingConfiguration {
    /// The dotted keys whose values are integers (`Int`, `UInt64`) or arrays of them, mapped to
    /// the smallest value allowed by the type (`Int.min`, or 0 for `UInt64`). Found by reflecting
    /// over `base`, so that new keys are covered, and among `optionalKeyPlaceholders`.
    static let integerKeys: [String: Double] = {
        var keys: [String: Double] = [:]
        func collect(_ value: Any, prefix: String) {
            for child in Mirror(reflecting: value).children {
                guard let label = child.label else { continue }
                let key = prefix + label
                switch child.value {
                case is Int, is [Int]: keys[key] = -0x1p63
                case is UInt64, is [UInt64]: keys[key] = 0
                case is Bool, is String, is Double, is Float, is [Double], is [Float]: break
                default: collect(child.value, prefix: key + ".")  // nested configuration (backbone)
                }
            }
        }
        collect(TrainingConfiguration.base, prefix: "")
        // Keys the base leaves out (`nil` there): `backbone.depth`, `.blocks`, `.scale`.
        for (key, placeholder) in optionalKeyPlaceholders where placeholder is Int || placeholder is [Int] { keys[key] = -0x1p63 }
        return keys
    }()

    /// Checks that `value`, given for the integer key `key`, is an integer (or array of integers)
    /// its type can hold.
    ///
    /// - Throws: `ConfigurationError.invalidValue` naming the key and the value.
    static func checkInteger(_ value: Any, key: String, minimum: Double, source: String) throws(ConfigurationError) {
        func check(_ element: Any) throws(ConfigurationError) {
            // Bools and strings are left to the decoder, whose type-mismatch error names the key.
            guard let number = element as? NSNumber, !(element is Bool) else { return }
            // An integer literal the type holds exactly (all 64 bits: a seed may be UInt64.max).
            let text = number.stringValue
            if minimum == 0 ? UInt64(text) != nil : Int(text) != nil { return }
            let x = number.doubleValue
            guard x.isFinite, x == x.rounded() else {
                throw .invalidValue(source: source, key: key, reason: "expected an integer, found \(number)")
            }
            // An integral number written otherwise (3.0, 1e2): exact up to 2⁵³.
            guard x >= minimum, abs(x) <= 0x1p53 else {
                throw .invalidValue(source: source, key: key,
                                    reason: "\(number) is out of range for an integer" + (minimum == 0 ? " ≥ 0" : ""))
            }
        }
        if let array = value as? [Any] { for element in array { try check(element) } } else { try check(value) }
    }
}
