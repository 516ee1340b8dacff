import TensorCore
import Reporting
import FaceData
import FaceEvaluation
import RunConfiguration
import Inference

extension Experiment {
    /// `evaluate` with the data behind the report: the ROC, the genuine and impostor similarity
    /// histograms and the chosen threshold (what `report.html` plots).
    ///
    /// - Parameter progress: called after each batch of embedded images with (done, total).
    public static func evaluateInDetail(_ model: FaceRecognitionModel, on heldOut: FaceDataset,
                                        configuration: TrainingConfiguration,
                                        progress: (Int, Int) -> Void = { _, _ in }) -> VerificationEvaluation {
        let embedded = embeddings(of: heldOut, backbone: model.backbone, flipSum: configuration.flipEmbeddings,
                                  progress: progress)
        return evaluateVerificationInDetail(embeddings: embedded, labels: heldOut.labels, folds: configuration.folds,
                                            seed: configuration.seed)
    }
}

extension Experiment {
    /// `evaluateInDetail` for the configured `flipEmbeddings`, plus the verification report of the
    /// other setting, from one embedding loop (`embeddingsWithAndWithoutFlip`: one backbone pass
    /// over the images and one over their mirror images, as flip-summing alone costs).
    ///
    /// - Returns: `evaluation` with `flipEmbeddings` as configured (what `evaluateInDetail`
    ///   returns, bit for bit), and `flips`, both settings' reports.
    public static func evaluateInDetailWithAndWithoutFlip(
        _ model: FaceRecognitionModel, on heldOut: FaceDataset, configuration: TrainingConfiguration,
        progress: (Int, Int) -> Void = { _, _ in }
    ) -> (evaluation: VerificationEvaluation, flips: FlipComparison) {
        let both = embeddingsWithAndWithoutFlip(of: heldOut, backbone: model.backbone, progress: progress)
        return evaluateBoth(both, labels: heldOut.labels, configuration: configuration)
    }

    /// The detailed evaluation of the configured setting and the report of the other one.
    static func evaluateBoth(_ both: (original: Tensor, flipSummed: Tensor), labels: [Int],
                             configuration: TrainingConfiguration) -> (evaluation: VerificationEvaluation, flips: FlipComparison) {
        let (configured, other) = configuration.flipEmbeddings ? (both.flipSummed, both.original) : (both.original, both.flipSummed)
        let evaluation = evaluateVerificationInDetail(embeddings: configured, labels: labels, folds: configuration.folds,
                                                      seed: configuration.seed)
        let otherReport = evaluateVerification(embeddings: other, labels: labels, folds: configuration.folds,
                                               seed: configuration.seed)
        let flips = configuration.flipEmbeddings
            ? FlipComparison(withFlip: evaluation.report, withoutFlip: otherReport)
            : FlipComparison(withFlip: otherReport, withoutFlip: evaluation.report)
        return (evaluation, flips)
    }
}
