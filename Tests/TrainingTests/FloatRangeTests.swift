import Foundation
import Testing
import ArcFace

/// Every Double hyperparameter that becomes a Float must be finite as a Float: a learning rate of
/// 4e38 used to pass validation and trap in `SGD.step`.
@Suite struct FloatRangeTests {
    func problems(_ json: String) -> [String] {
        do { _ = try TrainingConfiguration.decode(json: Data(json.utf8), source: "c.json"); return [] }
        catch { if case let .outOfRange(_, problems) = error { return problems }; return ["\(error)"] }
    }

    @Test("values beyond Float's range are refused, naming the key")
    func beyondFloat() {
        for (key, value) in [("learningRate", "4e38"), ("learningRate", "1e308"), ("scale", "1e39"), ("weightDecay", "1e39"),
                             ("gradientClipNorm", "5e38"), ("combinedAngularMultiplier", "1e300"),
                             ("combinedCosineMargin", "1e39"), ("stepDecayFactor", "1e39"), ("polynomialPower", "1e39")] {
            let found = problems(#"{"\#(key)": \#(value)}"#)
            #expect(found.count == 1 && found[0].hasPrefix(key) && found[0].contains("32-bit float"), "\(key): \(found)")
        }
        #expect(problems(#"{"learningRate": 3e38}"#).isEmpty)
        // A step schedule whose factor > 1 would overflow the rate after its milestones.
        let step = problems(#"{"learningRateSchedule": "step", "stepDecayEpochs": [1, 2, 3], "stepDecayFactor": 1e20}"#)
        #expect(step.count == 1 && step[0].hasPrefix("learningRate × stepDecayFactor^3"), "\(step)")
        var configuration = TrainingConfiguration.base
        configuration.learningRate = .nan
        configuration.weightDecay = .nan
        configuration.gradientClipNorm = -.infinity
        #expect(configuration.validationProblems().count == 3)
    }

    @Test("arcface train --lr 4e38 is a usage error, not a trap")
    func commandLine() throws {
        guard let executable = ArcFaceBinary.path else { return }
        let run = try ArcFaceBinary.start(executable, ["train", "--data", "/nonexistent", "--lr", "4e38"])
        run.waitUntilExit()
        #expect(run.process.terminationReason == .exit)
        #expect(run.text.contains("learningRate must be positive and finite as a 32-bit float"), "\(run.text)")
    }
}
