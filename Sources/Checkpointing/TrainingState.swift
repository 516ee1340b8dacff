// The state of a training run as a checkpoint saves it: what the trainer produces and restores,
// and the values it is made of (epoch summaries, timing, the epoch in progress).
import Foundation
import TensorCore
import RunConfiguration

/// One finished epoch of training.
public struct EpochSummary: Sendable, Codable, Equatable {
    /// 1-based epoch number.
    public var epoch: Int
    /// Mean training loss over the epoch's steps.
    public var loss: Double
    /// Fraction of training images whose largest logit was their own class.
    public var accuracy: Double
    /// Learning rate of the epoch's last step.
    public var learningRate: Double
    /// Training images per second over the epoch (data + forward + backward + optimizer).
    public var imagesPerSecond: Double
    /// Wall-clock seconds of the epoch, without the evaluations of the verification sets
    /// (`TrainingConfiguration.verificationSets`).
    public var seconds: Double
    /// Steps skipped for a non-finite value (policy `NonFinitePolicy.skip`); not in `loss`.
    public var skippedSteps: Int = 0
    /// ROC AUC of verification on every pair of the validation identities' images at the
    /// epoch's end (`TrainingConfiguration.validationIdentities`); nil without a validation split.
    public var validationAUC: Double?
    /// Mean and standard deviation of the validation pair cosines at the epoch's end (a sign of
    /// collapsed embeddings when the mean is near 1 or the spread near 0); nil without a
    /// validation split.
    public var validationCosineMean: Double?
    public var validationCosineStandardDeviation: Double?
    /// The take-off watchdog's warning for this epoch (near-chance accuracy, a loss not below
    /// the no-learning level, collapsed validation cosines), nil when it had none.
    public var noProgress: String?
    /// Seconds of the epoch's steps spent waiting for the next batch (the loader: batch assembly,
    /// or for a RecordIO pack reading and decoding not hidden by prefetching); nil in histories
    /// written before it was recorded.
    public var dataSeconds: Double?

    public init(epoch: Int, loss: Double, accuracy: Double, learningRate: Double, imagesPerSecond: Double,
                seconds: Double, skippedSteps: Int = 0) {
        self.epoch = epoch
        self.loss = loss
        self.accuracy = accuracy
        self.learningRate = learningRate
        self.imagesPerSecond = imagesPerSecond
        self.seconds = seconds
        self.skippedSteps = skippedSteps
    }

    enum CodingKeys: String, CodingKey {
        case epoch, loss, accuracy, learningRate, imagesPerSecond, seconds, skippedSteps, validationAUC
        case validationCosineMean, validationCosineStandardDeviation, noProgress, dataSeconds
    }

    /// Decodes a summary; `skippedSteps` may be absent (histories written before it existed).
    public init(from decoder: any Decoder) throws {
        let c = try decoder.container(keyedBy: CodingKeys.self)
        epoch = try c.decode(Int.self, forKey: .epoch)
        loss = try c.decode(Double.self, forKey: .loss)
        accuracy = try c.decode(Double.self, forKey: .accuracy)
        learningRate = try c.decode(Double.self, forKey: .learningRate)
        imagesPerSecond = try c.decode(Double.self, forKey: .imagesPerSecond)
        seconds = try c.decode(Double.self, forKey: .seconds)
        skippedSteps = try c.decodeIfPresent(Int.self, forKey: .skippedSteps) ?? 0
        validationAUC = try c.decodeIfPresent(Double.self, forKey: .validationAUC)
        validationCosineMean = try c.decodeIfPresent(Double.self, forKey: .validationCosineMean)
        validationCosineStandardDeviation = try c.decodeIfPresent(Double.self, forKey: .validationCosineStandardDeviation)
        noProgress = try c.decodeIfPresent(String.self, forKey: .noProgress)
        dataSeconds = try c.decodeIfPresent(Double.self, forKey: .dataSeconds)
    }
}

/// Where training time goes, summed over a run, in seconds.
public struct TimingBreakdown: Sendable, Codable, Equatable {
    /// Batch assembly: augmentation and scaling to [−1, 1].
    public var data: Double = 0
    /// Backbone forward and the head's loss (which also computes the head's gradients).
    public var forward: Double = 0
    /// Backbone backward.
    public var backward: Double = 0
    /// Gradient checks, clipping and the SGD update.
    public var optimizer: Double = 0
    /// Images processed.
    public var images: Int = 0

    /// No time, no images.
    public init() {}

    /// Images per second over the four phases together.
    public var imagesPerSecond: Double {
        let total = data + forward + backward + optimizer
        return total > 0 ? Double(images) / total : 0
    }
}

extension TimingBreakdown {
    /// The phase seconds and images of `self` minus those of `earlier` (the part of a run after
    /// `earlier` was taken, e.g. one session of a resumed run).
    public func subtracting(_ earlier: TimingBreakdown) -> TimingBreakdown {
        var result = TimingBreakdown()
        result.data = data - earlier.data
        result.forward = forward - earlier.forward
        result.backward = backward - earlier.backward
        result.optimizer = optimizer - earlier.optimizer
        result.images = images - earlier.images
        return result
    }
}

/// The running totals of the epoch in progress (saved in checkpoints to resume mid-epoch).
package struct EpochProgress: Codable, Sendable, Equatable {
    package init(epoch: Int = 0) { self.epoch = epoch }

    package var epoch = 0
    /// Batches of the epoch already consumed (trained or skipped).
    package var batch = 0
    package var lossSum = 0.0
    package var correct = 0
    package var images = 0
    package var steps = 0
    package var skipped = 0
    package var learningRate = 0.0
    package var seconds = 0.0
    /// Seconds spent waiting for batches (nil in checkpoints written before it was recorded).
    package var dataSeconds: Double?
}

/// What a training checkpoint stores besides tensors (JSON in the `progress` metadata key).
package struct TrainingProgress: Codable, Sendable, Equatable {
    package init(step: Int, history: [EpochSummary], epoch: EpochProgress, lastFiniteLoss: Double?, bestLoss: Double?,
                 bestValidationAUC: Double?, dropoutGenerator: SeededGenerator, timing: TimingBreakdown,
                 sessions: Int?, seconds: Double?) {
        self.step = step
        self.history = history
        self.epoch = epoch
        self.lastFiniteLoss = lastFiniteLoss
        self.bestLoss = bestLoss
        self.bestValidationAUC = bestValidationAUC
        self.dropoutGenerator = dropoutGenerator
        self.timing = timing
        self.sessions = sessions
        self.seconds = seconds
    }

    /// Batches consumed (the learning-rate schedule position).
    package var step: Int
    /// The finished epochs.
    package var history: [EpochSummary]
    /// The epoch in progress: its index, the batches already consumed and its running totals.
    package var epoch: EpochProgress
    package var lastFiniteLoss: Double?
    /// The lowest epoch training loss so far (the `best.safetensors` criterion without validation).
    package var bestLoss: Double?
    /// The highest epoch validation AUC so far (the criterion with a validation split).
    package var bestValidationAUC: Double?
    /// The backbone dropout's mask stream. The data loader's shuffles and augmentations are pure
    /// functions of `(seed, epoch)` and the head has no random stream after initialization, so
    /// this is the only generator state to save.
    package var dropoutGenerator: SeededGenerator
    /// Where training time went over all sessions up to this checkpoint.
    package var timing: TimingBreakdown
    /// Sessions so far (nil in checkpoints written before sessions were counted: 1).
    package var sessions: Int?
    /// Wall-clock seconds of `Trainer.run` over all sessions up to this checkpoint (nil: 0).
    package var seconds: Double?
    /// The evaluations of the verification sets so far (nil in checkpoints written before
    /// they existed, or of runs without sets: none).
    package var verifications: [VerificationRecord]?
    /// The highest accuracy of the `bestBy` set so far (the `best.safetensors` criterion with
    /// `bestBy`; nil: none yet).
    package var bestVerificationAccuracy: Double?
}

/// Everything a training-state checkpoint holds, enough to continue a run bit-identically: the
/// trainer produces it (`Trainer.trainingState`) and restores from it, `TrainingCheckpoint`
/// writes and reads it. Tensors are shared copy-on-write with the model and optimizer.
package struct TrainingState {
    /// The run's settings (metadata `configuration`, JSON).
    package var configuration: TrainingConfiguration
    /// The number of training identities `K` (metadata `classCount`).
    package var classCount: Int
    /// Every model tensor by name: the parameters, then the BatchNorm running statistics, in the
    /// model's order (the order written; a read state is in name order).
    package var modelTensors: [(name: String, tensor: Tensor)]
    /// The SGD momentum buffer of each parameter (same shape), by parameter name, in the
    /// optimizer's order; stored as tensors `momentum.<name>`.
    package var momentum: [(name: String, tensor: Tensor)]
    /// Step, history, epoch position and totals, best values, dropout stream, timing, sessions
    /// (metadata `progress`, JSON).
    package var progress: TrainingProgress
    /// The training identities held out of the fit for validation (metadata
    /// `validationIdentities`, JSON; absent when empty).
    package var validationIdentities: [String]
    /// Further string metadata: on write the caller's extra keys (the format's own keys win);
    /// on read every key of the file.
    package var metadata: [String: String]

    package init(configuration: TrainingConfiguration, classCount: Int, modelTensors: [(name: String, tensor: Tensor)],
                 momentum: [(name: String, tensor: Tensor)], progress: TrainingProgress,
                 validationIdentities: [String], metadata: [String: String]) {
        self.configuration = configuration
        self.classCount = classCount
        self.modelTensors = modelTensors
        self.momentum = momentum
        self.progress = progress
        self.validationIdentities = validationIdentities
        self.metadata = metadata
    }

    /// `modelTensors` as a dictionary (the form `FaceRecognitionModel.load` takes).
    package var modelTensorsByName: [String: Tensor] {
        Dictionary(uniqueKeysWithValues: modelTensors.map { ($0.name, $0.tensor) })
    }

    /// `momentum` as a dictionary by parameter name.
    package var momentumByName: [String: Tensor] {
        Dictionary(uniqueKeysWithValues: momentum.map { ($0.name, $0.tensor) })
    }
}
