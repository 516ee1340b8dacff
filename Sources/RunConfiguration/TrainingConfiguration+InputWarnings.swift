// Warnings about how the input size changes the network and the augmentation (never errors: the
// configuration is valid, but may not do what its author expects).
import Layers

extension TrainingConfiguration {
    /// The largest `maxTranslation` as a share of the smaller input side that passes without a
    /// warning (`inputWarnings`): 10 %.
    public static let quietTranslationFraction = 0.1

    /// What the input size silently does to this run, one sentence each (empty when nothing):
    ///
    /// - each stage pooling that floors an odd size and so drops a row or column
    ///   (`BackboneConfiguration.flooredPoolings`): the default 112×92 gives two (stages 3 and 4
    ///   each drop the last column of an odd width), a 24×24 input one (stage 4: 3×3 → 1×1);
    /// - a random shift `maxTranslation` above `quietTranslationFraction` of the smaller input side
    ///   (±4 px is 17 % of a 24-pixel side; 4.3 % of the default 92).
    ///
    /// Only a report: the network and the augmentation are as configured.
    public var inputWarnings: [String] {
        var warnings = backbone.flooredPoolings.map { "\($0) (input \(backbone.inputHeight)×\(backbone.inputWidth))" }
        let side = min(backbone.inputHeight, backbone.inputWidth)
        if side > 0, Double(maxTranslation) > Self.quietTranslationFraction * Double(side) {
            let percent = Int((100 * Double(maxTranslation) / Double(side)).rounded())
            let quiet = Int((Self.quietTranslationFraction * Double(side)).rounded(.down))
            warnings.append("maxTranslation \(maxTranslation) shifts images by up to ±\(maxTranslation) px, "
                            + "\(percent) % of the smaller input side (\(side) px); more than "
                            + "\(Int(Self.quietTranslationFraction * 100)) % moves the face a lot (maxTranslation ≤ \(quiet) stays within it)")
        }
        return warnings
    }
}
