import Foundation
import Testing
import RunConfiguration

/// Issue 10's recipe keys: the default margin gradient, the no-progress policy, and old files.
@Suite struct RecipeDefaultsTests {
    @Test("marginGradient defaults to straightThrough; exact and onNoProgress stop decode; old warm-up files load")
    func recipeKeys() throws {
        #expect(TrainingConfiguration.base.marginGradient == .straightThrough)
        #expect(TrainingConfiguration.base.onNoProgress == .warn)
        let explicit = try TrainingConfiguration.decode(json: Data(#"{"marginGradient": "exact", "onNoProgress": "stop"}"#.utf8))
        #expect(explicit.marginGradient == .exact && explicit.onNoProgress == .stop)
        let old = try TrainingConfiguration.decode(json: Data(#"{"marginWarmupEpochs": 20}"#.utf8))
        #expect(old.marginWarmupEpochs == 20)
        #expect(throws: ConfigurationError.self) {
            try TrainingConfiguration.decode(json: Data(#"{"onNoProgress": "maybe"}"#.utf8))
        }
    }
}
