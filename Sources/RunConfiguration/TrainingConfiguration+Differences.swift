import Foundation

extension TrainingConfiguration {
    /// The top-level keys (dotted for `backbone`) whose values differ between `a` and `b`.
    package static func differingKeys(_ a: TrainingConfiguration, _ b: TrainingConfiguration) -> [String] {
        func flattened(_ c: TrainingConfiguration) -> [String: NSObject] {
            let object = (try? JSONSerialization.jsonObject(with: c.jsonData())) as? [String: Any] ?? [:]
            var result: [String: NSObject] = [:]
            for (key, value) in object {
                if let nested = value as? [String: Any] {
                    for (k, v) in nested { result[key + "." + k] = v as? NSObject }
                } else {
                    result[key] = value as? NSObject
                }
            }
            return result
        }
        // Settings that do not change the arithmetic of a step may differ on resume.
        let free: Set = ["onNonFinite", "onBadImage", "keepCheckpoints", "checkpointEverySteps", "onNoProgress"]
        let x = flattened(a).filter { !free.contains($0.key) }, y = flattened(b).filter { !free.contains($0.key) }
        let differing = Set(x.keys).union(y.keys).filter { x[$0] != y[$0] }.sorted()
        return differing
    }
}
