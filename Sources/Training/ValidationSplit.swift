import FaceData
import FaceEvaluation
import RunConfiguration
import Inference

// The validation split of `TrainingConfiguration.validationIdentities`: training identities held
// out of the fit, verified at each epoch end to choose `best.safetensors` without the test set.
extension Trainer {
    /// Splits `trainingSet` into the identities to fit and `configuration.validationIdentities`
    /// validation identities (none when 0): a seeded identity split with seed
    /// `configuration.seed &+ 0x7A1D` (another stream than the test split's), so the same
    /// configuration and training set always give the same validation identities.
    ///
    /// - Throws: `TrainingError.data`: `.validationSplitTooSmall` when either side would have
    ///   fewer than 2 identities; `.validationWithoutGenuinePairs` when no validation identity has
    ///   2 images.
    public static func validationSplit(of trainingSet: FaceDataset, configuration: TrainingConfiguration)
        throws(TrainingError) -> (fit: FaceDataset, validation: FaceDataset?) {
        let count = configuration.validationIdentities, total = trainingSet.identities.count
        guard count > 0 else { return (trainingSet, nil) }
        guard count >= 2, total - count >= 2 else {
            throw .data(.validationSplitTooSmall(validationIdentities: count, trainingIdentities: total))
        }
        let parts: (train: FaceDataset, heldOut: FaceDataset)
        do { parts = try trainingSet.splitByIdentity(heldOutIdentityCount: count, seed: configuration.seed &+ 0x7A1D) }
        catch { throw .data(.dataset(error)) }
        let perIdentity = Dictionary(grouping: parts.heldOut.labels, by: { $0 })
        guard perIdentity.values.contains(where: { $0.count >= 2 }) else {
            throw .data(.validationWithoutGenuinePairs(identities: parts.heldOut.identities))
        }
        return (parts.train, parts.heldOut)
    }

    /// The validation metric of the current weights: ROC AUC of cosine-similarity verification on
    /// every pair of the validation images (genuine: same identity), embeddings in inference mode
    /// with `flipEmbeddings` as configured; nil without a validation split. Threshold-free and
    /// independent of folds; it changes no training state (no RNG draw, no BatchNorm update).
    public func validationAUC() -> Double? {
        guard let validationSet else { return nil }
        let embedded = embeddings(of: validationSet, backbone: model.backbone, flipSum: configuration.flipEmbeddings)
        let pairs = allPairs(labels: validationSet.labels)
        let scores = cosineSimilarities(embeddings: embedded, pairs: pairs)
        return areaUnderCurve(rocCurve(scores: scores, isSame: pairs.map(\.isSame)))
    }
}
