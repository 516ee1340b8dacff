import FaceData
import FaceEvaluation

extension Experiment {
    /// `evaluate` with the data behind the report: the ROC, the genuine and impostor similarity
    /// histograms and the chosen threshold (what `report.html` plots).
    public static func evaluateInDetail(_ model: FaceRecognitionModel, on heldOut: FaceDataset,
                                        configuration: TrainingConfiguration) -> VerificationEvaluation {
        let embedded = embeddings(of: heldOut, backbone: model.backbone, flipSum: configuration.flipEmbeddings)
        return evaluateVerificationInDetail(embeddings: embedded, labels: heldOut.labels, folds: configuration.folds,
                                            seed: configuration.seed)
    }
}
