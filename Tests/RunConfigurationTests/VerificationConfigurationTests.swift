import Foundation
import Testing
import RunConfiguration

/// The keys `verificationSets`, `verifyEverySteps` and `bestBy`: how an entry parses, the name
/// it goes by, and the problems of each key.
@Suite struct VerificationConfigurationTests {
    @Test("PATH is a .bin, PAIRS:ROOT a pairs file and its folder (split at the first ':'); named by the file")
    func specs() throws {
        let bin = try #require(VerificationSetSpec("data/lfw.bin"))
        #expect(bin.path == "data/lfw.bin" && bin.root == nil && bin.name == "lfw")
        let pairs = try #require(VerificationSetSpec("lfw/pairs.txt:lfw/images:x"))
        #expect(pairs.path == "lfw/pairs.txt" && pairs.root == "lfw/images:x" && pairs.name == "pairs")
        #expect(VerificationSetSpec("") == nil && VerificationSetSpec("pairs.txt:") == nil && VerificationSetSpec(":root") == nil)
    }

    @Test("the keys decode from JSON; each problem names its key")
    func problems() throws {
        let c = try TrainingConfiguration.decode(json: Data(#"{"verificationSets": ["a/lfw.bin", "p.txt:r"], "verifyEverySteps": 50, "bestBy": "lfw"}"#.utf8))
        #expect(c.verificationSetSpecs.map(\.name) == ["lfw", "p"] && c.verifyEverySteps == 50 && c.bestBy == "lfw")
        #expect(TrainingConfiguration.base.verificationSets.isEmpty && TrainingConfiguration.base.verifyEverySteps == 0
                && TrainingConfiguration.base.bestBy.isEmpty)
        func problems(_ change: (inout TrainingConfiguration) -> Void) -> [String] {
            var c = TrainingConfiguration.base
            change(&c)
            return c.validationProblems()
        }
        #expect(problems { $0.verificationSets = ["x/lfw.bin", "y/lfw.bin"] }.contains { $0.contains("more than one set is named 'lfw'") })
        #expect(problems { $0.verificationSets = ["p.txt:"] }.contains { $0.contains("\"p.txt:\" is neither") })
        #expect(problems { $0.verifyEverySteps = -1 }.contains { $0.hasPrefix("verifyEverySteps must be ≥ 0") })
        #expect(problems { $0.bestBy = "lfw" }.contains { $0.contains("bestBy 'lfw' names no verification set (there are none") })
        #expect(problems { $0.verificationSets = ["cfp_fp.bin"]; $0.bestBy = "lfw" }.contains { $0.contains("(sets: cfp_fp)") })
        #expect(problems { $0.verificationSets = ["lfw.bin"]; $0.bestBy = "lfw"; $0.verifyEverySteps = 10 }.isEmpty)
        #expect(throws: ConfigurationError.self) { try TrainingConfiguration.decode(json: Data(#"{"verifyEverySteps": 1.5}"#.utf8)) }
        #expect(throws: ConfigurationError.self) { try TrainingConfiguration.decode(json: Data(#"{"verificationSets": "lfw.bin"}"#.utf8)) }
    }
}
