// The verification history of a run (`TrainingConfiguration.verificationSets`): what one
// evaluation of the sets during training found. Part of the training state a checkpoint saves,
// so a resumed run keeps the evaluations of its earlier sessions.

/// One verification set's k-fold accuracy at one evaluation, for one embedding setting.
public struct VerificationScore: Codable, Sendable, Equatable {
    /// The mean of the held-out fold accuracies, in [0, 1].
    public var accuracy: Double
    /// The standard deviation of the fold accuracies (divisor k, as insightface's `np.std`).
    public var standardDeviation: Double
    /// The area under the ROC curve over all the set's pairs.
    public var auc: Double

    public init(accuracy: Double, standardDeviation: Double, auc: Double) {
        self.accuracy = accuracy
        self.standardDeviation = standardDeviation
        self.auc = auc
    }
}

/// One set's scores at one evaluation, with and without flip-summing.
public struct VerificationSetScore: Codable, Sendable, Equatable {
    /// The set's name (`VerificationSetSpec.name`).
    public var name: String
    /// Embeddings of the image plus its mirror image (arcface_torch's "Accuracy-Flip").
    public var withFlip: VerificationScore
    /// Embeddings of the image alone.
    public var withoutFlip: VerificationScore

    public init(name: String, withFlip: VerificationScore, withoutFlip: VerificationScore) {
        self.name = name
        self.withFlip = withFlip
        self.withoutFlip = withoutFlip
    }

    /// The score of the run's configured setting (`flipEmbeddings`).
    public func score(flipEmbeddings: Bool) -> VerificationScore { flipEmbeddings ? withFlip : withoutFlip }
}

/// One evaluation of every verification set during training.
public struct VerificationRecord: Codable, Sendable, Equatable {
    /// Steps trained when the sets were evaluated (≥ 1).
    public var step: Int
    /// The 1-based epoch the step belongs to.
    public var epoch: Int
    /// One entry per set, in the configuration's order.
    public var sets: [VerificationSetScore]

    public init(step: Int, epoch: Int, sets: [VerificationSetScore]) {
        self.step = step
        self.epoch = epoch
        self.sets = sets
    }

    /// The entry of the set named `name`.
    public func set(named name: String) -> VerificationSetScore? { sets.first { $0.name == name } }
}
