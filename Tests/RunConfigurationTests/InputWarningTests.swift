import Foundation
import Testing
import RunConfiguration

/// `TrainingConfiguration.inputWarnings`: what a small input silently does to the network and
/// the augmentation (warnings only; nothing is changed).
@Suite struct InputWarningTests {
    @Test("24×24: stage 4 floors 3×3 to 1×1 and ±4 px is 17 % of the image; the configuration is unchanged")
    func small() {
        var configuration = TrainingConfiguration.base
        configuration.backbone.inputHeight = 24
        configuration.backbone.inputWidth = 24
        let warnings = configuration.inputWarnings
        #expect(warnings.count == 2, "\(warnings)")
        #expect(warnings.first == "backbone.stage4 max-pool floors 3×3 to 1×1: its last row (1 of 3) and last column (1 of 3) are dropped (input 24×24)")
        #expect(warnings.last?.contains("maxTranslation 4 shifts images by up to ±4 px, 17 % of the smaller input side (24 px)") == true,
                "\(warnings)")
        #expect(warnings.last?.contains("maxTranslation ≤ 2") == true)
        #expect(configuration.maxTranslation == 4 && configuration.backbone.stageChannels.count == 4)
        #expect(configuration.validationProblems().isEmpty)
        // A shift within 10 % of the side is quiet: 2 px of 24 (8 %).
        configuration.maxTranslation = 2
        #expect(!configuration.inputWarnings.contains { $0.contains("maxTranslation") })
        configuration.maxTranslation = 3  // 12.5 %
        #expect(configuration.inputWarnings.contains { $0.contains("13 % of the smaller input side") })
    }

    @Test("the default 112×92 names its two floored widths truthfully and no shift (4 px is 4 % of 92)")
    func defaults() {
        let warnings = TrainingConfiguration.base.inputWarnings
        #expect(warnings == [
            "backbone.stage3 max-pool floors 28×23 to 14×11: its last column (1 of 23) is dropped (input 112×92)",
            "backbone.stage4 max-pool floors 14×11 to 7×5: its last column (1 of 11) is dropped (input 112×92)",
        ])
        var even = TrainingConfiguration.base
        even.backbone.inputWidth = 96
        #expect(even.inputWarnings.isEmpty)
    }
}
