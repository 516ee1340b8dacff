// The verification sets of a run in `metrics.json` (`"verificationSets"`, `"bestBy"`): per set,
// its pairs, its last evaluation, its best one and its history over steps.
import Checkpointing

/// One verification set's evaluations during a run (`RunMetrics.verificationSets`).
public struct VerificationSetMetrics: Codable, Sendable, Equatable {
    /// The set's name (`VerificationSetSpec.name`).
    public var name: String
    /// The configuration's entry (`PATH` or `PAIRS:ROOT`).
    public var source: String
    public var genuinePairCount: Int
    public var impostorPairCount: Int
    /// The number of folds of its k-fold accuracy.
    public var folds: Int
    /// The evaluation after the last step, with and without flip-summing.
    public var final: Point
    /// The evaluation with the highest accuracy of the configured setting (`flipEmbeddings`;
    /// ties: the earliest), arcface_torch's "Accuracy-Highest".
    public var best: Point
    /// Every evaluation, oldest first.
    public var history: [Point]

    /// One evaluation of the set.
    public struct Point: Codable, Sendable, Equatable {
        public var step: Int
        public var epoch: Int
        public var withFlip: VerificationScore
        public var withoutFlip: VerificationScore

        public init(step: Int, epoch: Int, withFlip: VerificationScore, withoutFlip: VerificationScore) {
            self.step = step
            self.epoch = epoch
            self.withFlip = withFlip
            self.withoutFlip = withoutFlip
        }
    }

    /// The metrics of the set `name` from a run's `records` (nil when no record holds it).
    public init?(name: String, source: String, genuinePairCount: Int, impostorPairCount: Int, folds: Int,
                 records: [VerificationRecord], flipEmbeddings: Bool) {
        let points = records.compactMap { record in
            record.set(named: name).map { Point(step: record.step, epoch: record.epoch, withFlip: $0.withFlip, withoutFlip: $0.withoutFlip) }
        }
        guard let last = points.last else { return nil }
        let accuracy = { (p: Point) in (flipEmbeddings ? p.withFlip : p.withoutFlip).accuracy }
        var best = points[0]
        for point in points.dropFirst() where accuracy(point) > accuracy(best) { best = point }
        self.name = name
        self.source = source
        self.genuinePairCount = genuinePairCount
        self.impostorPairCount = impostorPairCount
        self.folds = folds
        self.final = last
        self.best = best
        self.history = points
    }
}

/// Which evaluation chose `best.safetensors` with `bestBy` (`RunMetrics.bestBy`).
public struct BestByVerification: Codable, Sendable, Equatable {
    /// The set's name.
    public var set: String
    /// The step of the checkpoint that is `best.safetensors`.
    public var step: Int
    /// The set's accuracy there (configured flip setting).
    public var accuracy: Double

    public init(set: String, step: Int, accuracy: Double) {
        self.set = set
        self.step = step
        self.accuracy = accuracy
    }
}
