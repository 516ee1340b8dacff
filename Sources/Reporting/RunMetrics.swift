// What a run reports in `metrics.json`: the verification report plus throughput and timing,
// all sessions' totals and the last session's own share kept apart.
import Foundation
import FaceEvaluation
import Checkpointing
import FaceData

/// The metrics a run writes to `metrics.json`: the verification report on held-out identities
/// plus training throughput and its split. Throughput, timing and seconds cover **every session**
/// of the run (a run resumed with `--resume` included); `session` holds the last session's own
/// numbers when the run was resumed.
public struct RunMetrics: Codable, Sendable, Equatable {
    public var verification: VerificationReport
    /// Training images per second over all sessions.
    public var trainImagesPerSecond: Double
    /// Where training time went over all sessions.
    public var timing: TimingBreakdown
    public var finalTrainingLoss: Double
    /// Wall-clock seconds of training over all sessions.
    public var trainingSeconds: Double
    /// Training steps skipped for non-finite values (`NonFinitePolicy.skip`).
    public var skippedSteps: Int
    /// The last session's own numbers when the run was resumed (nil: one session, the totals).
    public var session: SessionMetrics?
    /// Whether the run took off (`"converged"` in metrics.json, with `"noProgress"` holding the
    /// evidence when it did not); nil in metrics written before the watchdog existed.
    public var takeOff: TakeOffVerdict?
    /// Verification with and without flip-summing (`withFlip` / `withoutFlip` in the JSON); nil
    /// in the metrics of earlier versions.
    public var flipComparison: FlipComparison?
    /// The model's input preprocessing the scores were measured with (`preprocessing` in the
    /// JSON); nil in the metrics of earlier versions.
    public var preprocessing: InputPreprocessing?

    /// The verification sets evaluated during training (`verificationSets`), in the
    /// configuration's order; nil without sets.
    public var verificationSets: [VerificationSetMetrics]?
    /// The evaluation that chose `best.safetensors` with `bestBy`; nil without `bestBy`.
    public var bestBy: BestByVerification?
    /// A run on several ranks: their number and rank 0's seconds in the trainer's collectives;
    /// nil for one process.
    public var distributed: DistributedMetrics?

    enum CodingKeys: String, CodingKey {
        case trainImagesPerSecond, timing, finalTrainingLoss, trainingSeconds, skippedSteps, session, converged, noProgress
        case withFlip, withoutFlip, verificationSets, bestBy, preprocessing, distributed
    }

    public init(verification: VerificationReport, trainImagesPerSecond: Double, timing: TimingBreakdown,
                finalTrainingLoss: Double, trainingSeconds: Double, skippedSteps: Int = 0, session: SessionMetrics? = nil) {
        self.skippedSteps = skippedSteps
        self.session = session
        self.verification = verification
        self.trainImagesPerSecond = trainImagesPerSecond
        self.timing = timing
        self.finalTrainingLoss = finalTrainingLoss
        self.trainingSeconds = trainingSeconds
    }

    // The verification keys sit at the top level of metrics.json, beside the throughput keys.
    public init(from decoder: any Decoder) throws {
        verification = try VerificationReport(from: decoder)
        let container = try decoder.container(keyedBy: CodingKeys.self)
        trainImagesPerSecond = try container.decode(Double.self, forKey: .trainImagesPerSecond)
        timing = try container.decode(TimingBreakdown.self, forKey: .timing)
        finalTrainingLoss = try container.decode(Double.self, forKey: .finalTrainingLoss)
        trainingSeconds = try container.decode(Double.self, forKey: .trainingSeconds)
        skippedSteps = try container.decodeIfPresent(Int.self, forKey: .skippedSteps) ?? 0
        session = try container.decodeIfPresent(SessionMetrics.self, forKey: .session)
        if let converged = try container.decodeIfPresent(Bool.self, forKey: .converged) {
            takeOff = TakeOffVerdict(converged: converged,
                                     evidence: try container.decodeIfPresent(NoProgressEvidence.self, forKey: .noProgress))
        }
        if let withFlip = try container.decodeIfPresent(VerificationReport.self, forKey: .withFlip),
           let withoutFlip = try container.decodeIfPresent(VerificationReport.self, forKey: .withoutFlip) {
            flipComparison = FlipComparison(withFlip: withFlip, withoutFlip: withoutFlip)
        }
        preprocessing = try container.decodeIfPresent(InputPreprocessing.self, forKey: .preprocessing)
        verificationSets = try container.decodeIfPresent([VerificationSetMetrics].self, forKey: .verificationSets)
        bestBy = try container.decodeIfPresent(BestByVerification.self, forKey: .bestBy)
        distributed = try container.decodeIfPresent(DistributedMetrics.self, forKey: .distributed)
    }

    public func encode(to encoder: any Encoder) throws {
        try verification.encode(to: encoder)
        var container = encoder.container(keyedBy: CodingKeys.self)
        try container.encode(trainImagesPerSecond, forKey: .trainImagesPerSecond)
        try container.encode(timing, forKey: .timing)
        try container.encode(finalTrainingLoss, forKey: .finalTrainingLoss)
        try container.encode(trainingSeconds, forKey: .trainingSeconds)
        try container.encode(skippedSteps, forKey: .skippedSteps)
        try container.encodeIfPresent(session, forKey: .session)
        if let takeOff {
            try container.encode(takeOff.converged, forKey: .converged)
            try container.encodeIfPresent(takeOff.evidence, forKey: .noProgress)
        }
        try container.encodeIfPresent(flipComparison?.withFlip, forKey: .withFlip)
        try container.encodeIfPresent(flipComparison?.withoutFlip, forKey: .withoutFlip)
        try container.encodeIfPresent(preprocessing, forKey: .preprocessing)
        try container.encodeIfPresent(verificationSets, forKey: .verificationSets)
        try container.encodeIfPresent(bestBy, forKey: .bestBy)
        try container.encodeIfPresent(distributed, forKey: .distributed)
    }
}

/// The last session of a resumed run (`RunMetrics.session`; nil for a run never resumed, whose
/// totals are its one session).
public struct SessionMetrics: Codable, Sendable, Equatable {
    /// 1-based number of the session (2 for the first resume); also the run's session count.
    public var number: Int
    /// Wall-clock seconds of training in this session (checkpoint writes and validation included).
    public var trainingSeconds: Double
    /// Training images per second in this session (data + forward + backward + optimizer).
    public var imagesPerSecond: Double
    /// Where this session's training time went.
    public var timing: TimingBreakdown

    public init(number: Int, trainingSeconds: Double, imagesPerSecond: Double, timing: TimingBreakdown) {
        self.number = number
        self.trainingSeconds = trainingSeconds
        self.imagesPerSecond = imagesPerSecond
        self.timing = timing
    }
}

/// `metrics.json`'s `"distributed"`: a run over `ranks > 1` processes.
public struct DistributedMetrics: Sendable, Codable, Equatable {
    /// `P`, the number of ranks.
    public var ranks: Int
    /// Rank 0's seconds in the trainer's collectives this session (backbone gradient all-reduce,
    /// BatchNorm averaging, agreements, checkpoint gathers); the class-parallel head's own
    /// collectives are inside `timing.forward`.
    public var communicationSeconds: Double

    public init(ranks: Int, communicationSeconds: Double) {
        self.ranks = ranks
        self.communicationSeconds = communicationSeconds
    }
}
