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
