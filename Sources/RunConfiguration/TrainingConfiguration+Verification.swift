// The verification sets a run evaluates during training (`verificationSets`, `verifyEverySteps`,
// `bestBy`): how one entry is written, the name it goes by, and the checks of the three keys.
import Foundation

/// One entry of `TrainingConfiguration.verificationSets`, parsed.
///
/// Written as `PATH` for an InsightFace `.bin` verification set, or `PAIRS:ROOT` for LFW's
/// `pairs.txt` protocol with the folder of its images (`ROOT/Name/Name_0001.jpg`): the text
/// before the **first** `:` is the pairs file, the rest the image folder. (A `.bin` whose path
/// holds a `:` cannot be named; rename or link it.)
public struct VerificationSetSpec: Sendable, Equatable {
    /// The `.bin` or `pairs.txt` file.
    public var path: String
    /// The LFW image folder; nil for a `.bin`.
    public var root: String?

    /// Parses `text` (`PATH` or `PAIRS:ROOT`); nil when a part is empty.
    public init?(_ text: String) {
        if let colon = text.firstIndex(of: ":") {
            let path = String(text[..<colon]), root = String(text[text.index(after: colon)...])
            guard !path.isEmpty, !root.isEmpty else { return nil }
            (self.path, self.root) = (path, root)
        } else {
            guard !text.isEmpty else { return nil }
            (self.path, self.root) = (text, nil)
        }
    }

    /// The name the set goes by on the epoch line, in `metrics.json`, `report.html` and in
    /// `bestBy`: the file name without its extension (`data/lfw.bin` → `lfw`,
    /// `lfw/pairs.txt:lfw/images` → `pairs`).
    public var name: String {
        ((path as NSString).lastPathComponent as NSString).deletingPathExtension
    }
}

extension TrainingConfiguration {
    /// `verificationSets` parsed, in order; entries that do not parse are left out (they are
    /// `validationProblems()`).
    public var verificationSetSpecs: [VerificationSetSpec] { verificationSets.compactMap(VerificationSetSpec.init) }

    /// The problems of `verificationSets`, `verifyEverySteps` and `bestBy` (part of
    /// `validationProblems()`).
    func verificationProblems() -> [String] {
        var problems: [String] = []
        for text in verificationSets where VerificationSetSpec(text) == nil {
            problems.append("verificationSets: \"\(text)\" is neither a .bin path nor PAIRS:ROOT (pairs.txt and its image folder)")
        }
        let names = verificationSetSpecs.map(\.name)
        for name in Set(names).sorted() where names.count(where: { $0 == name }) > 1 {
            problems.append("verificationSets: more than one set is named '\(name)' (the file name without its extension); rename or link one")
        }
        if verifyEverySteps < 0 { problems.append("verifyEverySteps must be ≥ 0 (0: after the last step only): \(verifyEverySteps)") }
        if !bestBy.isEmpty && !names.contains(bestBy) {
            problems.append("bestBy '\(bestBy)' names no verification set"
                            + (names.isEmpty ? " (there are none: add verificationSets / --verify)" : " (sets: \(names.joined(separator: ", ")))"))
        }
        return problems
    }
}
