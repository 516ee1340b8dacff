// Verification with and without flip-summing side by side (the field reports both:
// arcface_torch's verification prints "Accuracy" and "Accuracy-Flip").
import Foundation
import FaceEvaluation

/// The held-out verification of one model twice: with flip-summed embeddings (original +
/// mirrored image) and with the original images' embeddings alone. In `metrics.json` the keys
/// `withFlip` and `withoutFlip`, each a `VerificationReport` object; the top-level metrics keep
/// meaning the configured setting (`flipEmbeddings`), so one of the two repeats them.
public struct FlipComparison: Codable, Sendable, Equatable {
    public var withFlip: VerificationReport
    public var withoutFlip: VerificationReport

    public init(withFlip: VerificationReport, withoutFlip: VerificationReport) {
        self.withFlip = withFlip
        self.withoutFlip = withoutFlip
    }

    /// Rows of a two-column table (metric, with flip, without flip), formatted as the report's.
    public var rows: [(metric: String, withFlip: String, withoutFlip: String)] {
        func row(_ name: String, _ value: (VerificationReport) -> String) -> (String, String, String) {
            (name, value(withFlip), value(withoutFlip))
        }
        return [
            row("balanced accuracy") { String(format: "%.4f ± %.4f", $0.balancedAccuracy, $0.balancedAccuracyStdErr) },
            row("AUC") { String(format: "%.4f", $0.auc) },
            row("EER") { String(format: "%.4f", $0.eer) },
            row("TAR@FAR=1e-2") { String(format: "%.4f", $0.tarAtFar1e2) },
            row("TAR@FAR=1e-3") { String(format: "%.4f", $0.tarAtFar1e3) },
            row("rank-1") { String(format: "%.4f", $0.rank1) },
        ]
    }
}
